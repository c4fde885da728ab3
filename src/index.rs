//! Indexing: turns the catalog into table documents and the query history into intent
//! documents, embeds both, and stores them in the vector store.
//!
//! Indexing is idempotent: a fingerprint of everything that goes in (model, documents) is kept
//! with the index (`VectorStore::fingerprint`), and an unchanged input is not embedded again.

use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, Table};
use crate::embed::{EmbedError, Embedder};
use crate::history::{History, PastQuery, QueryUsage, SkippedLine};
use crate::vector_store::{Collection, Point, VectorStore, VectorStoreError};

/// Errors while indexing.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] VectorStoreError),
}

/// What indexing did.
#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    pub tables: usize,
    pub queries: usize,
    pub skipped: Vec<SkippedLine>,
    /// False when the existing index was already up to date.
    pub rebuilt: bool,
    pub elapsed_ms: u64,
}

/// The text embedded for a table: what it is, its columns, its governance.
pub fn table_document(table: &Table) -> String {
    let mut doc = format!("Table {}", table.name);
    if !table.description.is_empty() {
        doc.push_str(": ");
        doc.push_str(&table.description);
    }
    if let Some(domain) = &table.domain {
        doc.push_str(&format!(" Domain: {domain}."));
    }
    if table.source != crate::catalog::MAIN_SOURCE {
        doc.push_str(&format!(" Source: {}.", table.source));
    }
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            if c.description.is_empty() {
                c.name.clone()
            } else {
                format!("{} ({})", c.name, c.description)
            }
        })
        .collect();
    doc.push_str(&format!(" Columns: {}.", columns.join(", ")));
    doc
}

fn table_payload(table: &Table) -> Map<String, Value> {
    object(json!({
        "table": table.name,
        "tier": table.tier.map(|t| t.number()).unwrap_or(0),
        "deprecated": table.deprecated.is_some(),
        "domain": table.domain.clone().unwrap_or_default(),
        "source": table.source,
    }))
}

/// The map of a JSON object (empty for anything else).
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A table's point id: stable across catalog changes, so one table can be re-indexed alone.
fn table_point_id(table: &Table) -> u64 {
    point_id(&table.name.to_lowercase())
}

/// A point id from a hex digest: stable, so points can be replaced one at a time.
fn point_id(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default()) >> 1
}

/// A fingerprint of everything indexing embeds: the model, the documents, the history.
/// Bumped when the points' payload changes, so existing indexes are rebuilt.
const PAYLOAD_VERSION: &str = "payload 2";

fn fingerprint(catalog: &Catalog, history: &History, embedder: &dyn Embedder) -> String {
    let mut hasher = Sha256::new();
    hasher.update(PAYLOAD_VERSION);
    hasher.update(embedder.model_id());
    for doc in catalog.tables().map(table_document) {
        hasher.update((doc.len() as u64).to_le_bytes());
        hasher.update(doc);
    }
    for q in history.usable() {
        hasher.update(&q.hash);
        hasher.update(q.intent_text());
        hasher.update(q.tables.join(","));
        hasher.update([u8::from(q.verified)]);
    }
    format!("{:x}", hasher.finalize())
}

/// The payload of a past query's point: what retrieval shows and aggregates.
fn query_payload(query: &PastQuery, usage: Option<&QueryUsage>) -> Map<String, Value> {
    object(json!({
        "hash": query.hash,
        "sql_key": crate::history::sql_key(&query.logged.sql),
        "line": query.line,
        "label": query.label(),
        "sql": query.logged.sql,
        "author": query.logged.author,
        "timestamp": query.logged.timestamp,
        "tables": query.tables,
        "joins": query.structure.joins.iter().map(|j| format!("{} = {}", j.left, j.right)).collect::<Vec<_>>(),
        "verified": query.verified,
        "intent_source": query.intent_source,
        "runs": usage.map(|u| u.runs).unwrap_or(1),
    }))
}

/// Embeds past queries and adds them to the index (after an ingest), then records the
/// fingerprint of the whole history.
pub fn add_queries(
    catalog: &Catalog,
    history: &History,
    added: &[&PastQuery],
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
) -> Result<(), IndexError> {
    let usage = history.usage();
    for chunk in added.chunks(256) {
        let texts: Vec<String> = chunk.iter().map(|q| q.intent_text().to_string()).collect();
        let vectors = embedder.embed(&texts)?;
        let points = chunk
            .iter()
            .zip(vectors)
            .map(|(q, vector)| Point {
                id: point_id(&q.hash),
                vector,
                payload: query_payload(q, usage.get(&q.structure.normalized_hash)),
            })
            .collect();
        store.upsert(Collection::Queries, points)?;
    }
    store.optimize(Collection::Queries)?;
    Ok(store.set_fingerprint(Some(&fingerprint(catalog, history, embedder)))?)
}

/// Re-embeds one table's document after a steward edit, so the next question sees it, and
/// records the new fingerprint (the rest of the index is unchanged).
pub fn reindex_table(
    catalog: &Catalog,
    table: &Table,
    history: &History,
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
) -> Result<(), IndexError> {
    let vector = embedder.embed(&[table_document(table)])?.pop().unwrap_or_default();
    store.upsert(
        Collection::Tables,
        vec![Point { id: table_point_id(table), vector, payload: table_payload(table) }],
    )?;
    Ok(store.set_fingerprint(Some(&fingerprint(catalog, history, embedder)))?)
}

/// Makes sure the vector store holds the current catalog and history.
pub fn ensure_index(
    catalog: &Catalog,
    history: &History,
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
) -> Result<IndexReport, IndexError> {
    let started = Instant::now();
    let tables: Vec<&Table> = catalog.tables().collect();
    let table_docs: Vec<String> = tables.iter().map(|t| table_document(t)).collect();
    let usable: Vec<&PastQuery> = history.usable().collect();
    let fingerprint = fingerprint(catalog, history, embedder);
    let up_to_date = store.fingerprint()?.is_some_and(|f| f == fingerprint)
        && store.count(Collection::Tables)? == tables.len()
        && store.count(Collection::Queries)? == usable.len();
    let report = |rebuilt| IndexReport {
        tables: tables.len(),
        queries: usable.len(),
        skipped: history.skipped.clone(),
        rebuilt,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    if up_to_date {
        return Ok(report(false));
    }

    let vectors = embedder.embed(&table_docs)?;
    let points = tables
        .iter()
        .zip(vectors)
        .map(|(table, vector)| Point { id: table_point_id(table), vector, payload: table_payload(table) })
        .collect();
    store.replace_all(Collection::Tables, points)?;

    let usage = history.usage();
    let mut points = Vec::with_capacity(usable.len());
    for chunk in usable.chunks(256) {
        let texts: Vec<String> = chunk.iter().map(|q| q.intent_text().to_string()).collect();
        let vectors = embedder.embed(&texts)?;
        points.extend(chunk.iter().zip(vectors).map(|(q, vector)| Point {
            id: point_id(&q.hash),
            vector,
            payload: query_payload(q, usage.get(&q.structure.normalized_hash)),
        }));
    }
    store.replace_all(Collection::Queries, points)?;

    store.set_fingerprint(Some(&fingerprint))?;
    Ok(report(true))
}
