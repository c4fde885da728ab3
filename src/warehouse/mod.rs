//! The warehouse — a SQLite file, or a PostgreSQL schema (`postgres`) — and every statement
//! Quarry runs on it. Untrusted SQL reaches it only as a
//! `ValidatedQuery`, run by the `Executor` behind a second wall (`execute`); the trusted
//! statements that read its shape and data into a catalog (`introspect`, `keys`) and attach
//! the configured sources are built here from quoted identifiers, on read-only connections.
//!
//! Three places write a warehouse of their own making before anything reads it: the demo
//! (`demo`), an evaluation's empty schema (`catalog::spider`), and the copy of a SQLite
//! warehouse into a PostgreSQL schema (`copy`, as a role that may write, given by the operator).

mod copy;
mod execute;
mod introspect;
mod keys;
mod postgres;

pub use copy::{copy_sqlite, grant_read, CopyError, CopyReport};
pub use execute::{
    Cancel, ExecuteError, ExecutionLimits, Executor, ResultSet, Truncation, DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
};
pub use introspect::{introspect, load_catalog, load_catalog_sources};
pub use postgres::{reader_grants, PostgresError, PostgresUrl, PostgresWarehouse};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::{governance, Catalog, CatalogError, Source};
use crate::config::WarehouseLocation;

/// Most connections Quarry holds to a PostgreSQL warehouse at once.
pub const POSTGRES_CONNECTIONS: u32 = 16;

/// The configured warehouse, reached: what the catalog is read from and what queries run on.
#[derive(Debug, Clone)]
pub enum Warehouse {
    /// A SQLite file and the sources attached beside it.
    Sqlite { path: PathBuf, sources: Vec<Source> },
    /// A PostgreSQL schema, through a pool of connections as a read-only role.
    Postgres(Arc<PostgresWarehouse>),
}

/// Why the configured warehouse cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(
        "the warehouse {0} does not exist; set [workspace].warehouse in quarry.toml or run `quarry demo`"
    )]
    Missing(PathBuf),
    #[error(transparent)]
    Postgres(#[from] PostgresError),
}

impl Warehouse {
    /// Reaches the warehouse at `location`: a SQLite file must exist; a PostgreSQL server must
    /// answer, and its role may only read.
    pub fn open(location: &WarehouseLocation, sources: &[Source]) -> Result<Warehouse, WarehouseError> {
        match location {
            WarehouseLocation::Sqlite(path) if path.is_file() => {
                Ok(Warehouse::Sqlite { path: path.clone(), sources: sources.to_vec() })
            }
            WarehouseLocation::Sqlite(path) => Err(WarehouseError::Missing(path.clone())),
            WarehouseLocation::Postgres { url, schema } => Ok(Warehouse::Postgres(Arc::new(
                PostgresWarehouse::connect(url, schema, POSTGRES_CONNECTIONS)?,
            ))),
        }
    }

    /// Introspects the warehouse and lays the governance files of `governance_dir` over it.
    pub fn load_catalog(&self, governance_dir: &Path) -> Result<Catalog, CatalogError> {
        match self {
            Warehouse::Sqlite { path, sources } => load_catalog_sources(path, sources, governance_dir),
            Warehouse::Postgres(postgres) => {
                let mut catalog =
                    postgres.introspect().map_err(|e| CatalogError::Server { message: e.to_string() })?;
                governance::apply_dir(&mut catalog, governance_dir)?;
                Ok(catalog)
            }
        }
    }

    /// An executor for validated queries on this warehouse.
    pub fn executor(&self, limits: ExecutionLimits) -> Executor {
        match self {
            Warehouse::Sqlite { path, sources } => Executor::with_limits(path, limits).with_sources(sources),
            Warehouse::Postgres(postgres) => Executor::postgres(Arc::clone(postgres), limits),
        }
    }
}
