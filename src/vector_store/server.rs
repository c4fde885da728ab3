//! The Qdrant server backend: the embedded store's collections, point ids, payloads and payload
//! indexes, kept in a Qdrant server (or cluster) through qdrant-client's gRPC API.
//!
//! Each collection is an alias (`<prefix>_tables`) of a physical collection
//! (`<prefix>_tables_<millis>_<n>`): `replace_all` fills a new one and moves the alias in one
//! step, so searches, from every instance sharing the server, see the old points or the new
//! ones. The index fingerprint is metadata of the tables collection. The trait is synchronous:
//! each call runs on the store's own small tokio runtime and is waited for, so it may come from
//! any thread, async or not. Transient failures (server unavailable, deadline, rate limit) are
//! retried with backoff.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::vector_output::Vector as OutputVector;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::vectors_output::VectorsOptions;
use qdrant_client::qdrant::{
    point_id::PointIdOptions, CollectionInfo, CollectionStatus, Condition, CountPointsBuilder,
    CreateAliasBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, Distance, FieldType,
    Filter, PointId, PointStruct, Query, QueryPoints, QueryPointsBuilder, ScrollPoints, ScrollPointsBuilder,
    UpdateCollectionBuilder, UpsertPointsBuilder, VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde_json::Value;

use super::{
    indexed_fields, op_err, Collection, Equals, FieldKind, Hit, Matched, Page, Point, ServerSettings,
    VectorStore, VectorStoreError, VECTOR_NAME,
};

/// Points per upsert request, and upsert requests in flight at once.
const UPSERT_BATCH: usize = 256;
const UPSERTS_IN_FLIGHT: usize = 4;
/// Tries of one request before its error is returned (transient errors only).
const ATTEMPTS: u32 = 5;
/// The tables collection's metadata key holding the index fingerprint.
const FINGERPRINT_KEY: &str = "quarry_fingerprint";
/// Longest `optimize` waits for the server to finish indexing.
const OPTIMIZE_WAIT: Duration = Duration::from_secs(1800);
/// The client's version, for the compatibility check (major versions must match).
const CLIENT_VERSION: &str = "1.19";

/// The index in a Qdrant server.
pub struct QdrantServerStore {
    client: Qdrant,
    /// Taken on drop and shut down in the background (a runtime may not be dropped on an
    /// async thread).
    runtime: Option<tokio::runtime::Runtime>,
    url: String,
    prefix: String,
    dimension: usize,
    version: String,
}

/// Makes physical collection names unique within a process.
static NEXT_BUILD: AtomicU64 = AtomicU64::new(0);

impl QdrantServerStore {
    /// Connects, checks the server's version, and creates the collections and payload indexes
    /// that are missing; an existing collection made for other vectors is `Mismatch`.
    pub fn open(settings: &ServerSettings, dimension: usize) -> Result<Self, VectorStoreError> {
        let store = Self::connect(settings, dimension)?;
        for collection in Collection::ALL {
            store.prepare(collection)?;
        }
        Ok(store)
    }

    /// Removes the collections of `settings` (and their aliases) from the server, whatever
    /// vectors they hold: benchmarks and tests clean up with it.
    pub fn remove_collections(settings: &ServerSettings) -> Result<(), VectorStoreError> {
        Self::connect(settings, 0)?.delete_collections()
    }

    /// A client for the server, its version checked; the collections are not touched.
    fn connect(settings: &ServerSettings, dimension: usize) -> Result<Self, VectorStoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quarry-qdrant")
            .enable_all()
            .build()
            .map_err(|e| op_err(format!("cannot start the Qdrant client's runtime: {e}")))?;
        let client = {
            let _inside = runtime.enter();
            Qdrant::from_url(&settings.url)
                .api_key(settings.api_key.clone())
                .timeout(settings.timeout)
                .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
                .skip_compatibility_check()
                .build()
                .map_err(|e| VectorStoreError::Unreachable {
                    url: settings.url.clone(),
                    message: e.to_string(),
                })?
        };
        let mut store = QdrantServerStore {
            client,
            runtime: Some(runtime),
            url: settings.url.clone(),
            prefix: settings.prefix.clone(),
            dimension,
            version: String::new(),
        };
        // Whatever else fails here (a REST port, another protocol) is not a Qdrant gRPC server.
        store.version = store
            .call("checking the server's health", |c| async move { c.health_check().await })
            .map_err(|e| match e {
                VectorStoreError::Operation(message) => {
                    VectorStoreError::Unreachable { url: settings.url.clone(), message }
                }
                other => other,
            })?
            .version;
        let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
        if major(&store.version) != major(CLIENT_VERSION) {
            return Err(VectorStoreError::Version {
                url: store.url.clone(),
                version: store.version.clone(),
                client: CLIENT_VERSION,
            });
        }
        Ok(store)
    }

    /// The server's version, as it reported it.
    pub fn server_version(&self) -> &str {
        &self.version
    }

    fn delete_collections(&self) -> Result<(), VectorStoreError> {
        for collection in Collection::ALL {
            let alias = self.alias(collection);
            match self.resolve(&alias)? {
                Target::Alias(physical) => {
                    self.call("deleting an alias", move |c| {
                        let alias = alias.clone();
                        async move { c.delete_alias(alias).await }
                    })?;
                    self.delete(&physical)?;
                }
                Target::Plain => self.delete(&alias)?,
                Target::Missing => {}
            }
        }
        Ok(())
    }

    /// The name searches use: an alias of the collection's current physical collection.
    fn alias(&self, collection: Collection) -> String {
        format!("{}_{}", self.prefix, collection.name())
    }

    /// Runs `request` on the store's runtime, retrying transient errors, and waits for it.
    fn call<T, F, Fut>(&self, what: &str, request: F) -> Result<T, VectorStoreError>
    where
        T: Send + 'static,
        F: Fn(Qdrant) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, QdrantError>> + Send,
    {
        let client = self.client.clone();
        let result = self.block_on(async move { retrying(|| request(client.clone())).await })?;
        result.map_err(|e| self.error(what, e))
    }

    fn block_on<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, VectorStoreError> {
        let runtime = self.runtime.as_ref().ok_or_else(|| op_err("the Qdrant client was shut down"))?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = sender.send(future.await);
        });
        receiver.recv().map_err(|_| op_err("the Qdrant client's runtime stopped"))
    }

    /// A server error as the store's error, naming the fix where there is one.
    fn error(&self, what: &str, error: QdrantError) -> VectorStoreError {
        if let QdrantError::ResponseError { status } = &error {
            match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                    return VectorStoreError::Unauthorized {
                        url: self.url.clone(),
                        message: status.message().to_string(),
                    }
                }
                _ if unreachable(status) => {
                    return VectorStoreError::Unreachable {
                        url: self.url.clone(),
                        message: status.message().to_string(),
                    }
                }
                _ => {}
            }
        }
        op_err(format!("{what} on the Qdrant server at {}: {error}", self.url))
    }

    /// What `name` is on the server.
    fn resolve(&self, name: &str) -> Result<Target, VectorStoreError> {
        let aliases = self.call("listing aliases", |c| async move { c.list_aliases().await })?.aliases;
        if let Some(alias) = aliases.into_iter().find(|a| a.alias_name == name) {
            return Ok(Target::Alias(alias.collection_name));
        }
        let owned = name.to_string();
        let exists = self.call("looking up a collection", move |c| {
            let name = owned.clone();
            async move { c.collection_exists(name).await }
        })?;
        Ok(if exists { Target::Plain } else { Target::Missing })
    }

    /// Makes sure the collection exists with Quarry's vector and payload indexes.
    fn prepare(&self, collection: Collection) -> Result<(), VectorStoreError> {
        let alias = self.alias(collection);
        let name = match self.resolve(&alias)? {
            Target::Alias(physical) => physical,
            // A collection of that name made by hand: used as it is (see `replace_all`).
            Target::Plain => alias.clone(),
            Target::Missing => {
                let physical = self.create(collection)?;
                self.point_alias(&alias, &physical)?;
                physical
            }
        };
        let info = self.info(&name)?;
        self.check_vectors(&alias, &info)?;
        for (field, kind) in indexed_fields(collection) {
            if !info.payload_schema.contains_key(*field) {
                self.create_index(&name, field, *kind)?;
            }
        }
        Ok(())
    }

    /// A new, empty physical collection with Quarry's vector and payload indexes.
    fn create(&self, collection: Collection) -> Result<String, VectorStoreError> {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let name =
            format!("{}_{millis}_{}", self.alias(collection), NEXT_BUILD.fetch_add(1, Ordering::Relaxed));
        let mut vectors = VectorsConfigBuilder::default();
        vectors.add_named_vector_params(
            VECTOR_NAME,
            VectorParamsBuilder::new(self.dimension as u64, Distance::Cosine),
        );
        let request = CreateCollectionBuilder::new(name.clone()).vectors_config(vectors).build();
        self.call("creating a collection", move |c| {
            let request = request.clone();
            async move { c.create_collection(request).await }
        })?;
        for (field, kind) in indexed_fields(collection) {
            self.create_index(&name, field, *kind)?;
        }
        Ok(name)
    }

    fn create_index(&self, name: &str, field: &str, kind: FieldKind) -> Result<(), VectorStoreError> {
        let field_type = match kind {
            FieldKind::Integer => FieldType::Integer,
            FieldKind::Bool => FieldType::Bool,
            FieldKind::Keyword => FieldType::Keyword,
        };
        let request = CreateFieldIndexCollectionBuilder::new(name, field, field_type).wait(true).build();
        self.call("creating a payload index", move |c| {
            let request = request.clone();
            async move { c.create_field_index(request).await }
        })?;
        Ok(())
    }

    /// Points `alias` at `physical` (replacing where it pointed), in one step.
    fn point_alias(&self, alias: &str, physical: &str) -> Result<(), VectorStoreError> {
        let request = CreateAliasBuilder::new(physical, alias).build();
        self.call("moving an alias", move |c| {
            let request = request.clone();
            async move { c.create_alias(request).await }
        })?;
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), VectorStoreError> {
        let name = name.to_string();
        self.call("deleting a collection", move |c| {
            let name = name.clone();
            async move { c.delete_collection(name).await }
        })?;
        Ok(())
    }

    fn info(&self, name: &str) -> Result<CollectionInfo, VectorStoreError> {
        let owned = name.to_string();
        let response = self.call("reading a collection's info", move |c| {
            let name = owned.clone();
            async move { c.collection_info(name).await }
        })?;
        response.result.ok_or_else(|| op_err(format!("the Qdrant server sent no info for collection {name}")))
    }

    /// The collection must hold one named cosine vector of the embedding model's size.
    fn check_vectors(&self, alias: &str, info: &CollectionInfo) -> Result<(), VectorStoreError> {
        let config =
            info.config.as_ref().and_then(|c| c.params.as_ref()).and_then(|p| p.vectors_config.as_ref());
        let found = match config.and_then(|c| c.config.as_ref()) {
            Some(VectorsConfigKind::ParamsMap(map)) => match map.map.get(VECTOR_NAME) {
                Some(p) if p.size == self.dimension as u64 && p.distance == Distance::Cosine as i32 => {
                    return Ok(())
                }
                Some(p) => format!(
                    "holds vectors of size {} ({} distance)",
                    p.size,
                    Distance::try_from(p.distance).map_or("unknown", |d| d.as_str_name())
                ),
                None => format!("has no vector named '{VECTOR_NAME}'"),
            },
            Some(VectorsConfigKind::Params(p)) => format!("has one unnamed vector of size {}", p.size),
            None => "has no vectors".to_string(),
        };
        Err(VectorStoreError::Mismatch {
            store: format!("Qdrant server's ({})", self.url),
            collection: alias.to_string(),
            found,
            expected: self.dimension,
        })
    }

    /// Writes points in batches, several requests in flight, each retried on transient errors.
    fn write(&self, name: &str, points: Vec<Point>) -> Result<(), VectorStoreError> {
        let mut batches = Vec::new();
        let mut points = points.into_iter().peekable();
        while points.peek().is_some() {
            let batch: Vec<PointStruct> = points
                .by_ref()
                .take(UPSERT_BATCH)
                .map(|p| {
                    let vectors = HashMap::from([(VECTOR_NAME.to_string(), p.vector)]);
                    PointStruct::new(p.id, vectors, Payload::from(p.payload))
                })
                .collect();
            batches.push(UpsertPointsBuilder::new(name, batch).wait(true).build());
        }
        let client = self.client.clone();
        let written = self.block_on(async move {
            let mut running = tokio::task::JoinSet::new();
            for request in batches {
                if running.len() >= UPSERTS_IN_FLIGHT {
                    joined(running.join_next().await)?;
                }
                let client = client.clone();
                running.spawn(async move {
                    retrying(|| {
                        let request = request.clone();
                        let client = client.clone();
                        async move { client.upsert_points(request).await }
                    })
                    .await
                    .map(|_| ())
                });
            }
            while let Some(done) = running.join_next().await {
                joined(Some(done))?;
            }
            Ok(())
        })?;
        written.map_err(|e| self.error("writing points", e))
    }
}

/// The result of one finished upsert task.
fn joined(done: Option<Result<Result<(), QdrantError>, tokio::task::JoinError>>) -> Result<(), QdrantError> {
    match done {
        None => Ok(()),
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(QdrantError::ConversionError(format!("an upsert task failed: {e}"))),
    }
}

/// What a collection's name is on the server.
enum Target {
    /// An alias of this physical collection (what Quarry makes).
    Alias(String),
    /// A collection of that name.
    Plain,
    Missing,
}

/// Runs `attempt` until it succeeds, fails for good, or has been tried `ATTEMPTS` times;
/// waits between tries (doubling from 100 ms, or what the server's `retry-after` says).
async fn retrying<T, Fut>(mut attempt: impl FnMut() -> Fut) -> Result<T, QdrantError>
where
    Fut: Future<Output = Result<T, QdrantError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if tries < ATTEMPTS && transient(&error) => {
                let wait = match &error {
                    QdrantError::ResourceExhaustedError { retry_after_seconds, .. } => {
                        Duration::from_secs(*retry_after_seconds).max(delay)
                    }
                    _ => delay,
                };
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                tries += 1;
            }
            result => return result,
        }
    }
}

/// An error worth another try: the server was unavailable, slow or rate-limiting.
fn transient(error: &QdrantError) -> bool {
    match error {
        QdrantError::ResourceExhaustedError { .. } => true,
        QdrantError::ResponseError { status } => {
            unreachable(status)
                || matches!(status.code(), tonic::Code::DeadlineExceeded | tonic::Code::Aborted)
        }
        _ => false,
    }
}

/// No connection: the server is down or elsewhere (qdrant-client reports a refused connection
/// as an internal error that says so).
fn unreachable(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable
        || (status.code() == tonic::Code::Internal && status.message().starts_with("Failed to connect"))
}

fn json_payload(payload: HashMap<String, qdrant_client::qdrant::Value>) -> serde_json::Map<String, Value> {
    payload.into_iter().map(|(key, value)| (key, value.into_json())).collect()
}

fn numeric_id(id: Option<PointId>) -> Option<u64> {
    match id?.point_id_options? {
        PointIdOptions::Num(id) => Some(id),
        PointIdOptions::Uuid(_) => None,
    }
}

impl VectorStore for QdrantServerStore {
    fn replace_all(&self, collection: Collection, points: Vec<Point>) -> Result<(), VectorStoreError> {
        let alias = self.alias(collection);
        let before = self.resolve(&alias)?;
        let fresh = self.create(collection)?;
        if let Err(e) = self.write(&fresh, points) {
            let _ = self.delete(&fresh);
            return Err(e);
        }
        // A collection made by hand under the alias's name must go before the alias can exist.
        if matches!(before, Target::Plain) {
            self.delete(&alias)?;
        }
        self.point_alias(&alias, &fresh)?;
        if let Target::Alias(old) = before {
            if old != fresh {
                let _ = self.delete(&old);
            }
        }
        Ok(())
    }

    fn upsert(&self, collection: Collection, points: Vec<Point>) -> Result<(), VectorStoreError> {
        if points.is_empty() {
            return Ok(());
        }
        self.write(&self.alias(collection), points)
    }

    fn search(
        &self,
        collection: Collection,
        vector: &[f32],
        limit: usize,
        filters: &[Equals],
    ) -> Result<Vec<Hit>, VectorStoreError> {
        let mut must = Vec::new();
        for f in filters {
            must.push(match f.matched()? {
                Matched::Bool(b) => Condition::matches(f.field, b),
                Matched::Text(s) => Condition::matches(f.field, s.to_string()),
                Matched::Integer(n) => Condition::matches(f.field, n),
            });
        }
        let mut builder = QueryPointsBuilder::new(self.alias(collection))
            .query(Query::new_nearest(vector.to_vec()))
            .using(VECTOR_NAME)
            .limit(limit as u64)
            .with_payload(true);
        if !must.is_empty() {
            builder = builder.filter(Filter::must(must));
        }
        let request: QueryPoints = builder.build();
        let response = self.call("searching", move |c| {
            let request = request.clone();
            async move { c.query(request).await }
        })?;
        Ok(response
            .result
            .into_iter()
            .filter_map(|p| {
                Some(Hit { id: numeric_id(p.id)?, score: p.score, payload: json_payload(p.payload) })
            })
            .collect())
    }

    fn count(&self, collection: Collection) -> Result<usize, VectorStoreError> {
        let request = CountPointsBuilder::new(self.alias(collection)).exact(true).build();
        let response = self.call("counting points", move |c| {
            let request = request.clone();
            async move { c.count(request).await }
        })?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }

    fn scroll(
        &self,
        collection: Collection,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Page, VectorStoreError> {
        let mut builder = ScrollPointsBuilder::new(self.alias(collection))
            .limit(limit.clamp(1, u32::MAX as usize) as u32)
            .with_payload(true)
            .with_vectors(true);
        if let Some(from) = from {
            builder = builder.offset(PointId::from(from));
        }
        let request: ScrollPoints = builder.build();
        let response = self.call("reading points", move |c| {
            let request = request.clone();
            async move { c.scroll(request).await }
        })?;
        let mut points = Vec::with_capacity(response.result.len());
        for record in response.result {
            let Some(id) = numeric_id(record.id) else { continue };
            let vector = match record.vectors.and_then(|v| v.vectors_options) {
                Some(VectorsOptions::Vectors(mut named)) => {
                    named.vectors.remove(VECTOR_NAME).map(|v| v.into_vector())
                }
                Some(VectorsOptions::Vector(v)) => Some(v.into_vector()),
                None => None,
            };
            let Some(OutputVector::Dense(dense)) = vector else {
                return Err(op_err(format!("point {id} has no dense vector '{VECTOR_NAME}'")));
            };
            points.push(Point { id, vector: dense.data, payload: json_payload(record.payload) });
        }
        Ok(Page { points, next: numeric_id(response.next_page_offset) })
    }

    /// The server indexes in the background; this waits until the collection is green.
    fn optimize(&self, collection: Collection) -> Result<(), VectorStoreError> {
        let alias = self.alias(collection);
        let started = Instant::now();
        while started.elapsed() < OPTIMIZE_WAIT {
            if self.info(&alias)?.status == CollectionStatus::Green as i32 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn fingerprint(&self) -> Result<Option<String>, VectorStoreError> {
        let info = self.info(&self.alias(Collection::Tables))?;
        let value = info.config.and_then(|mut c| c.metadata.remove(FINGERPRINT_KEY));
        Ok(match value.and_then(|v| v.kind) {
            Some(Kind::StringValue(text)) => Some(text),
            _ => None,
        })
    }

    fn set_fingerprint(&self, fingerprint: Option<&str>) -> Result<(), VectorStoreError> {
        let value = fingerprint.map_or(Value::Null, |f| Value::String(f.to_string()));
        let metadata = HashMap::from([(FINGERPRINT_KEY.to_string(), value)]);
        let request = UpdateCollectionBuilder::new(self.alias(Collection::Tables)).metadata(metadata).build();
        self.call("recording the index fingerprint", move |c| {
            let request = request.clone();
            async move { c.update_collection(request).await }
        })?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "the Qdrant server at {} (collections {}_tables and {}_queries)",
            self.url, self.prefix, self.prefix
        )
    }
}

impl Drop for QdrantServerStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
