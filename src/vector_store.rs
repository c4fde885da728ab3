//! The vector store: the `VectorStore` trait and its embedded default, Qdrant Edge, one shard
//! per collection on disk under the workspace.
//!
//! It stores and searches points (id, vector, JSON payload); what the points mean is decided
//! by `index` and `retrieve`. A Qdrant server backend (through `qdrant-client`) implements the
//! same trait when one machine is no longer enough.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qdrant_edge::{
    Condition, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeVectorParams, FieldCondition,
    FieldIndexOperations, Filter, JsonPath, Match, NamedQuery, PayloadFieldSchema, PayloadSchemaType,
    PointId, PointInsertOperations, PointOperations, PointStruct, QueryEnum, QueryRequest, ScoringQuery,
    UpdateOperation, VectorInternal, WithPayloadInterface,
};
use serde_json::Value;

/// The collections Quarry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// A point to store.
#[derive(Debug, Clone)]
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

/// Only points whose payload `field` equals `value`.
#[derive(Debug, Clone)]
pub struct Equals {
    pub field: &'static str,
    pub value: Value,
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
    /// An operation on an open store failed.
    #[error("vector store operation failed: {0}")]
    Operation(String),
}

/// Stores points and finds the nearest ones.
pub trait VectorStore: Send + Sync {
    /// Replaces all points of a collection.
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
    /// Builds search indexes (HNSW) for what was written, after bulk writes.
    fn optimize(&self, collection: Collection) -> Result<(), VectorStoreError>;
}

/// Qdrant Edge, in process, one shard directory per collection.
pub struct QdrantEdgeStore {
    root: PathBuf,
    dimension: usize,
    shards: HashMap<Collection, shard_slot::Slot>,
}

const VECTOR_NAME: &str = "text";

mod shard_slot {
    //! A shard that can be swapped out wholesale (for `replace_all`) while readers hold it.
    use std::sync::{Arc, RwLock};

    use qdrant_edge::EdgeShard;

    pub struct Slot(RwLock<Arc<EdgeShard>>);

    impl Slot {
        pub fn new(shard: EdgeShard) -> Self {
            Slot(RwLock::new(Arc::new(shard)))
        }
        pub fn get(&self) -> Arc<EdgeShard> {
            match self.0.read() {
                Ok(guard) => guard.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            }
        }
        pub fn set(&self, shard: EdgeShard) {
            match self.0.write() {
                Ok(mut guard) => *guard = Arc::new(shard),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(shard),
            }
        }
    }
}

fn op_err(e: impl std::fmt::Display) -> VectorStoreError {
    VectorStoreError::Operation(e.to_string())
}

impl QdrantEdgeStore {
    /// Opens (or creates) the collections under `root`.
    pub fn open(root: &Path, dimension: usize) -> Result<Self, VectorStoreError> {
        let mut shards = HashMap::new();
        for collection in Collection::ALL {
            let path = root.join(collection.name());
            let shard = open_or_create(&path, dimension, collection)?;
            shards.insert(collection, shard_slot::Slot::new(shard));
        }
        Ok(QdrantEdgeStore { root: root.to_path_buf(), dimension, shards })
    }

    fn slot(&self, collection: Collection) -> Result<&shard_slot::Slot, VectorStoreError> {
        self.shards.get(&collection).ok_or_else(|| {
            VectorStoreError::Operation(format!("collection {} is not open", collection.name()))
        })
    }
}

fn config(dimension: usize) -> EdgeConfig {
    #[allow(deprecated)] // `on_disk` is deprecated in favour of `memory`; both left unset here.
    let params = EdgeVectorParams {
        size: dimension,
        distance: Distance::Cosine,
        quantization_config: None,
        multivector_config: None,
        datatype: None,
        on_disk: None,
        memory: None,
        hnsw_config: None,
    };
    qdrant_edge::EdgeConfigBuilder::new().vector(VECTOR_NAME, params).build()
}

/// Payload fields each collection filters on, indexed so filtered search stays fast.
fn indexed_fields(collection: Collection) -> &'static [(&'static str, PayloadSchemaType)] {
    match collection {
        Collection::Tables => &[
            ("tier", PayloadSchemaType::Integer),
            ("deprecated", PayloadSchemaType::Bool),
            ("domain", PayloadSchemaType::Keyword),
            ("source", PayloadSchemaType::Keyword),
            ("db", PayloadSchemaType::Keyword),
        ],
        Collection::Queries => &[
            ("author", PayloadSchemaType::Keyword),
            ("verified", PayloadSchemaType::Bool),
            ("db", PayloadSchemaType::Keyword),
        ],
    }
}

/// Turns a shard error at `path` into `VectorStoreError::Open`.
fn open_error(path: &Path) -> impl Fn(qdrant_edge::OperationError) -> VectorStoreError + Copy + '_ {
    move |e| opened(path, e)
}

/// The error of opening the shard at `path`: held by another process, or broken.
fn opened(path: &Path, error: qdrant_edge::OperationError) -> VectorStoreError {
    let message = error.to_string();
    // The write-ahead log's file lock, taken by the process that has the shard open.
    if message.contains("WouldBlock") {
        VectorStoreError::InUse { path: path.to_path_buf() }
    } else {
        VectorStoreError::Open { path: path.to_path_buf(), message }
    }
}

/// A new shard with the collection's payload indexes.
fn create_shard(
    path: &Path,
    dimension: usize,
    collection: Collection,
) -> Result<EdgeShard, VectorStoreError> {
    let open_err = open_error(path);
    let shard = EdgeShard::new(path, config(dimension)).map_err(open_err)?;
    for (field, kind) in indexed_fields(collection) {
        let field_name: JsonPath = field.parse().map_err(|_| op_err(format!("bad payload field {field}")))?;
        shard
            .update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                field_name,
                field_schema: Some(PayloadFieldSchema::FieldType(*kind)),
            })))
            .map_err(open_err)?;
    }
    Ok(shard)
}

fn open_or_create(
    path: &Path,
    dimension: usize,
    collection: Collection,
) -> Result<EdgeShard, VectorStoreError> {
    let open_err = open_error(path);
    if path.join("edge_config.json").is_file() {
        EdgeShard::load(path, None).map_err(open_err)
    } else {
        let _ = std::fs::remove_dir_all(path);
        create_shard(path, dimension, collection)
    }
}

fn upsert_into(shard: &EdgeShard, points: Vec<Point>) -> Result<(), VectorStoreError> {
    if points.is_empty() {
        return Ok(());
    }
    let points = points
        .into_iter()
        .map(|p| {
            let vectors = HashMap::from([(VECTOR_NAME.to_string(), p.vector)]);
            PointStruct::new(p.id, vectors, Value::Object(p.payload)).0
        })
        .collect();
    shard
        .update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        )))
        .map_err(op_err)?;
    shard.flush().map_err(op_err)
}

impl VectorStore for QdrantEdgeStore {
    fn replace_all(&self, collection: Collection, points: Vec<Point>) -> Result<(), VectorStoreError> {
        // Build the new shard beside the old one, then swap directories: readers never see
        // a half-filled collection, and a crash leaves the old one intact.
        let live = self.root.join(collection.name());
        let fresh = self.root.join(format!("{}.building", collection.name()));
        let _ = std::fs::remove_dir_all(&fresh);
        let shard = create_shard(&fresh, self.dimension, collection)?;
        upsert_into(&shard, points)?;
        shard.optimize().map_err(op_err)?;
        drop(shard);
        let old = self.root.join(format!("{}.old", collection.name()));
        let _ = std::fs::remove_dir_all(&old);
        if live.exists() {
            std::fs::rename(&live, &old).map_err(op_err)?;
        }
        std::fs::rename(&fresh, &live).map_err(op_err)?;
        let shard = EdgeShard::load(&live, None).map_err(|e| opened(&live, e))?;
        self.slot(collection)?.set(shard);
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    fn upsert(&self, collection: Collection, points: Vec<Point>) -> Result<(), VectorStoreError> {
        upsert_into(&self.slot(collection)?.get(), points)
    }

    fn optimize(&self, collection: Collection) -> Result<(), VectorStoreError> {
        let shard = self.slot(collection)?.get();
        shard.optimize().map_err(op_err)?;
        shard.flush().map_err(op_err)
    }

    fn search(
        &self,
        collection: Collection,
        vector: &[f32],
        limit: usize,
        filters: &[Equals],
    ) -> Result<Vec<Hit>, VectorStoreError> {
        let shard = self.slot(collection)?.get();
        let mut must = Vec::new();
        for f in filters {
            let key = f.field.parse().map_err(|_| op_err(format!("bad payload field {}", f.field)))?;
            let value: Match = match &f.value {
                Value::Bool(b) => (*b).into(),
                Value::String(s) => s.clone().into(),
                Value::Number(n) => {
                    n.as_i64().ok_or_else(|| op_err("filter numbers must be integers"))?.into()
                }
                other => return Err(op_err(format!("unsupported filter value {other}"))),
            };
            must.push(Condition::Field(FieldCondition::new_match(key, value)));
        }
        let mut request = QueryRequest::new(limit);
        request.query = Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
            query: VectorInternal::from(vector.to_vec()),
            using: Some(VECTOR_NAME.to_string()),
        })));
        request.with_payload = WithPayloadInterface::Bool(true);
        if !must.is_empty() {
            request.filter =
                Some(Filter { should: None, min_should: None, must: Some(must), must_not: None });
        }
        let points = shard.query(request).map_err(op_err)?;
        Ok(points
            .into_iter()
            .filter_map(|p| {
                let id = match p.id {
                    PointId::NumId(id) => id,
                    PointId::Uuid(_) => return None,
                };
                Some(Hit { id, score: p.score, payload: p.payload.map(|p| p.0).unwrap_or_default() })
            })
            .collect())
    }

    fn count(&self, collection: Collection) -> Result<usize, VectorStoreError> {
        let shard = self.slot(collection)?.get();
        let info = shard.info().map_err(op_err)?;
        Ok(info.points_count)
    }
}
