//! The warehouse: every statement Quarry runs on it. Untrusted SQL reaches it only as a
//! `ValidatedQuery`, run by the `Executor` behind a second wall (`execute`); the trusted
//! statements that read its shape and data into a catalog (`introspect`, `keys`) and attach
//! the configured sources are built here from quoted identifiers, on read-only connections.
//!
//! Two places write a warehouse of their own making before anything reads it: the demo
//! (`demo`) and an evaluation's empty schema (`catalog::spider`).

mod execute;
mod introspect;
mod keys;

pub use execute::{
    Cancel, ExecuteError, ExecutionLimits, Executor, ResultSet, Truncation, DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
};
pub use introspect::{introspect, load_catalog, load_catalog_sources};
