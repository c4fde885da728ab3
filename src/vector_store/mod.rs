//! The vector store: the `VectorStore` trait, where an index lives (`VectorsLocation`), and
//! copying an index from one store to another (`migrate`).
//!
//! Two backends implement the trait with the same collections, point ids, payloads and payload
//! indexes: Qdrant Edge in process, one folder per collection under the workspace (`edge`, the
//! default), and a Qdrant server or cluster through `qdrant-client` (`server`, `[vectors] url`),
//! which several Quarry instances may share. What the points mean is decided by `index` and
//! `retrieve`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

mod edge;
mod server;

pub use edge::QdrantEdgeStore;
pub use server::QdrantServerStore;

/// The collections Quarry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Collection {
    /// One document per table: description, columns, tier, owner, deprecation.
    Tables,
    /// One document per past query: its intent and structure.
    Queries,
}

impl Collection {
    pub const ALL: [Collection; 2] = [Collection::Tables, Collection::Queries];

    pub fn name(self) -> &'static str {
        match self {
            Collection::Tables => "tables",
            Collection::Queries => "queries",
        }
    }
}

/// The one named dense vector of every point (cosine distance), in both backends.
const VECTOR_NAME: &str = "text";

/// The kind of a payload index.
#[derive(Debug, Clone, Copy)]
enum FieldKind {
    Integer,
    Bool,
    Keyword,
}

/// Payload fields each collection filters on, indexed so filtered search stays fast.
fn indexed_fields(collection: Collection) -> &'static [(&'static str, FieldKind)] {
    match collection {
        Collection::Tables => &[
            ("tier", FieldKind::Integer),
            ("deprecated", FieldKind::Bool),
            ("domain", FieldKind::Keyword),
            ("source", FieldKind::Keyword),
            ("db", FieldKind::Keyword),
        ],
        Collection::Queries => {
            &[("author", FieldKind::Keyword), ("verified", FieldKind::Bool), ("db", FieldKind::Keyword)]
        }
    }
}

/// A point to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: u64,
    pub vector: Vec<f32>,
    pub payload: serde_json::Map<String, Value>,
}

/// A search hit.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
    pub payload: serde_json::Map<String, Value>,
}

/// Only points whose payload `field` equals `value` (a string, a whole number or a boolean).
#[derive(Debug, Clone)]
pub struct Equals {
    pub field: &'static str,
    pub value: Value,
}

/// A filter value as both backends match it.
enum Matched<'a> {
    Bool(bool),
    Text(&'a str),
    Integer(i64),
}

impl Equals {
    /// The value to match; floats, arrays, objects and null are refused by name.
    fn matched(&self) -> Result<Matched<'_>, VectorStoreError> {
        match &self.value {
            Value::Bool(b) => Ok(Matched::Bool(*b)),
            Value::String(s) => Ok(Matched::Text(s)),
            Value::Number(n) => {
                n.as_i64().map(Matched::Integer).ok_or_else(|| op_err("filter numbers must be integers"))
            }
            other => Err(op_err(format!("unsupported filter value {other}"))),
        }
    }
}

/// One page of a collection's points in id order, with their vectors and payloads.
#[derive(Debug, Clone)]
pub struct Page {
    pub points: Vec<Point>,
    /// The id the next page starts from; None after the last page.
    pub next: Option<u64>,
}

/// Errors from the vector store.
#[derive(Debug, thiserror::Error)]
pub enum VectorStoreError {
    /// The store on disk could not be opened or created.
    #[error("cannot open the vector index at {path}: {message}. Delete that folder to rebuild the index")]
    Open { path: PathBuf, message: String },
    /// Another process has the store open (the embedded index is one process's at a time).
    #[error("the vector index at {path} is open in another Quarry process (one process at a time may hold a workspace's embedded index)")]
    InUse { path: PathBuf },
    /// The Qdrant server did not answer.
    #[error("cannot reach the Qdrant server at {url}: {message}. Start it, or correct [vectors] url (QUARRY_VECTORS_URL); Qdrant answers gRPC on port 6334, while 6333 is its REST port")]
    Unreachable { url: String, message: String },
    /// The Qdrant server refused the API key (or wants one).
    #[error("the Qdrant server at {url} refused the request: {message}. Set QUARRY_VECTORS_API_KEY to an API key it accepts")]
    Unauthorized { url: String, message: String },
    /// A collection exists but was made for other vectors than the embedding model's.
    #[error("the {store} collection {collection} {found}, but the embedding model makes vectors of size {expected} ({distance} distance, named '{name}'): choose another [vectors] collection_prefix for this index, or delete that collection to rebuild it", name = VECTOR_NAME, distance = "cosine")]
    Mismatch { store: String, collection: String, found: String, expected: usize },
    /// A server version this client does not speak.
    #[error("the Qdrant server at {url} is version {version}; Quarry's client (qdrant-client {client}) works with servers of the same major version")]
    Version { url: String, version: String, client: &'static str },
    /// A copy of an index does not hold what its source holds.
    #[error("the copy of {collection} in {target} holds {copied} points, its source {expected}: keep using the source and run `quarry index migrate` again")]
    Incomplete { collection: &'static str, target: String, copied: usize, expected: usize },
    /// An operation on an open store failed.
    #[error("vector store operation failed: {0}")]
    Operation(String),
}

fn op_err(e: impl std::fmt::Display) -> VectorStoreError {
    VectorStoreError::Operation(e.to_string())
}

/// Stores points and finds the nearest ones.
pub trait VectorStore: Send + Sync {
    /// Replaces all points of a collection: readers see the old points or the new ones, never
    /// a half-filled collection.
    fn replace_all(&self, collection: Collection, points: Vec<Point>) -> Result<(), VectorStoreError>;
    /// Inserts or replaces points by id.
    fn upsert(&self, collection: Collection, points: Vec<Point>) -> Result<(), VectorStoreError>;
    /// The `limit` nearest points to `vector` that pass every filter.
    fn search(
        &self,
        collection: Collection,
        vector: &[f32],
        limit: usize,
        filters: &[Equals],
    ) -> Result<Vec<Hit>, VectorStoreError>;
    /// Number of points in a collection.
    fn count(&self, collection: Collection) -> Result<usize, VectorStoreError>;
    /// Up to `limit` points with ids from `from` on (all from the first when None), in id order.
    fn scroll(
        &self,
        collection: Collection,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Page, VectorStoreError>;
    /// Builds search indexes (HNSW) for what was written, after bulk writes.
    fn optimize(&self, collection: Collection) -> Result<(), VectorStoreError>;
    /// The fingerprint of what was indexed (see `index`), if one was recorded.
    fn fingerprint(&self) -> Result<Option<String>, VectorStoreError>;
    /// Records (or, with None, forgets) the fingerprint of what was indexed.
    fn set_fingerprint(&self, fingerprint: Option<&str>) -> Result<(), VectorStoreError>;
    /// Where the store is, for messages: a folder or a server's URL and collections.
    fn describe(&self) -> String;
}

/// A Qdrant server to keep the index in (`[vectors]`).
#[derive(Clone)]
pub struct ServerSettings {
    /// gRPC URL, e.g. `http://127.0.0.1:6334` (`[vectors] url`, `QUARRY_VECTORS_URL`).
    pub url: String,
    /// From `QUARRY_VECTORS_API_KEY` only, never from the file.
    pub api_key: Option<String>,
    /// Collections are `<prefix>_tables` and `<prefix>_queries` (`[vectors] collection_prefix`):
    /// instances that share an index use the same prefix, other workspaces another.
    pub prefix: String,
    /// Longest one request may take (`[vectors] timeout_ms`).
    pub timeout: Duration,
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSettings")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where the vector index lives.
#[derive(Debug, Clone)]
pub enum VectorsLocation {
    /// Qdrant Edge, in process, under this folder.
    Embedded(PathBuf),
    /// A Qdrant server, through qdrant-client.
    Server(ServerSettings),
}

/// Opens (or creates) the index at `location` for vectors of `dimension`.
pub fn open(location: &VectorsLocation, dimension: usize) -> Result<Arc<dyn VectorStore>, VectorStoreError> {
    Ok(match location {
        VectorsLocation::Embedded(root) => Arc::new(QdrantEdgeStore::open(root, dimension)?),
        VectorsLocation::Server(settings) => Arc::new(QdrantServerStore::open(settings, dimension)?),
    })
}

/// What `migrate` copied.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub source: String,
    pub target: String,
    /// Points copied per collection, each checked against the source's count.
    pub copied: Vec<(Collection, usize)>,
}

/// Points per page while copying.
const MIGRATE_PAGE: usize = 256;

/// Copies every point (id, vector, payload) of every collection from `source` to `target`,
/// replacing what `target` held, then the fingerprint; `progress(collection, done, total)`.
/// The copy must hold exactly the source's count of each collection, else `Incomplete`; the
/// source is never changed.
pub fn migrate(
    source: &dyn VectorStore,
    target: &dyn VectorStore,
    progress: &mut dyn FnMut(Collection, usize, usize),
) -> Result<MigrateReport, VectorStoreError> {
    let mut copied = Vec::new();
    for collection in Collection::ALL {
        let expected = source.count(collection)?;
        target.replace_all(collection, Vec::new())?;
        let mut done = 0;
        let mut from = None;
        progress(collection, 0, expected);
        loop {
            let page = source.scroll(collection, from, MIGRATE_PAGE)?;
            done += page.points.len();
            target.upsert(collection, page.points)?;
            progress(collection, done, expected);
            match page.next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        target.optimize(collection)?;
        let held = target.count(collection)?;
        if held != expected || done != expected {
            return Err(VectorStoreError::Incomplete {
                collection: collection.name(),
                target: target.describe(),
                copied: held,
                expected,
            });
        }
        copied.push((collection, held));
    }
    target.set_fingerprint(source.fingerprint()?.as_deref())?;
    Ok(MigrateReport { source: source.describe(), target: target.describe(), copied })
}
