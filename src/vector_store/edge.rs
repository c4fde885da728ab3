//! The embedded vector store: Qdrant Edge in process, one shard folder per collection under the
//! workspace's `vectors/`, and the index fingerprint in a file beside them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qdrant_edge::{
    Condition, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeVectorParams, FieldCondition,
    FieldIndexOperations, Filter, JsonPath, Match, NamedQuery, PayloadFieldSchema, PayloadSchemaType,
    PointId, PointInsertOperations, PointOperations, PointStruct, QueryEnum, QueryRequest, ScoringQuery,
    ScrollRequest, UpdateOperation, VectorInternal, VectorStructInternal, WithPayloadInterface, WithVector,
};
use serde_json::Value;

use super::{
    indexed_fields, op_err, Collection, Equals, FieldKind, Hit, Matched, Page, Point, VectorStore,
    VectorStoreError, VECTOR_NAME,
};

/// Qdrant Edge, in process, one shard directory per collection.
pub struct QdrantEdgeStore {
    root: PathBuf,
    dimension: usize,
    shards: HashMap<Collection, shard_slot::Slot>,
}

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

impl QdrantEdgeStore {
    /// Opens (or creates) the collections under `root`.
    pub fn open(root: &Path, dimension: usize) -> Result<Self, VectorStoreError> {
        let mut shards = HashMap::new();
        for collection in Collection::ALL {
            let path = root.join(collection.name());
            let shard = open_or_create(&path, dimension, collection)?;
            check_dimension(&shard, &path, dimension)?;
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

fn schema_type(kind: FieldKind) -> PayloadSchemaType {
    match kind {
        FieldKind::Integer => PayloadSchemaType::Integer,
        FieldKind::Bool => PayloadSchemaType::Bool,
        FieldKind::Keyword => PayloadSchemaType::Keyword,
    }
}

/// A shard made for vectors of another size than the embedding model's is refused by name.
fn check_dimension(shard: &EdgeShard, path: &Path, dimension: usize) -> Result<(), VectorStoreError> {
    let found = match shard.config().vectors.get(VECTOR_NAME) {
        Some(params) if params.size == dimension && params.distance == Distance::Cosine => return Ok(()),
        Some(params) => format!("holds vectors of size {} ({:?} distance)", params.size, params.distance),
        None => format!("has no vector named '{VECTOR_NAME}'"),
    };
    Err(VectorStoreError::Mismatch {
        store: "embedded index's".to_string(),
        collection: path.display().to_string(),
        found,
        expected: dimension,
    })
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
                field_schema: Some(PayloadFieldSchema::FieldType(schema_type(*kind))),
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
            let value: Match = match f.matched()? {
                Matched::Bool(b) => b.into(),
                Matched::Text(s) => s.to_string().into(),
                Matched::Integer(n) => n.into(),
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

    fn scroll(
        &self,
        collection: Collection,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Page, VectorStoreError> {
        let shard = self.slot(collection)?.get();
        let mut request = ScrollRequest::new();
        request.offset = from.map(PointId::NumId);
        request.limit = Some(limit.max(1));
        request.with_payload = Some(WithPayloadInterface::Bool(true));
        request.with_vector = WithVector::Bool(true);
        let (records, next) = shard.scroll(request).map_err(op_err)?;
        let mut points = Vec::with_capacity(records.len());
        for record in records {
            let PointId::NumId(id) = record.id else { continue };
            let vector = match record.vector {
                Some(VectorStructInternal::Named(mut named)) => match named.remove(VECTOR_NAME) {
                    Some(VectorInternal::Dense(dense)) => dense,
                    _ => return Err(op_err(format!("point {id} has no dense vector '{VECTOR_NAME}'"))),
                },
                Some(VectorStructInternal::Single(dense)) => dense,
                _ => return Err(op_err(format!("point {id} has no dense vector '{VECTOR_NAME}'"))),
            };
            points.push(Point { id, vector, payload: record.payload.map(|p| p.0).unwrap_or_default() });
        }
        let next = match next {
            Some(PointId::NumId(id)) => Some(id),
            _ => None,
        };
        Ok(Page { points, next })
    }

    fn fingerprint(&self) -> Result<Option<String>, VectorStoreError> {
        match std::fs::read_to_string(self.root.join(FINGERPRINT_FILE)) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(op_err(format!("cannot read {}: {e}", self.root.join(FINGERPRINT_FILE).display()))),
        }
    }

    fn set_fingerprint(&self, fingerprint: Option<&str>) -> Result<(), VectorStoreError> {
        let path = self.root.join(FINGERPRINT_FILE);
        let result = match fingerprint {
            Some(text) => std::fs::write(&path, text),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        result.map_err(|e| op_err(format!("cannot write {}: {e}", path.display())))
    }

    fn describe(&self) -> String {
        format!("the embedded index at {}", self.root.display())
    }
}

/// The fingerprint of what was indexed, beside the collections' folders.
const FINGERPRINT_FILE: &str = "fingerprint";
