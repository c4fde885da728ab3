//! Retrieval: for a question, the candidate tables (with the evidence for each) and the closest
//! past queries as examples. Scores from table documents and from past queries that read a
//! table are fused with governance signals, so a certified table outranks a look-alike copy.
//!
//! It reads the vector store and the catalog; it never calls the LLM or the warehouse.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::catalog::{Catalog, Tier};
use crate::embed::{EmbedError, Embedder};
use crate::vector_store::{Collection, Equals, Hit, VectorStore, VectorStoreError};

/// How much to retrieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrievalBudget {
    /// Tables handed to the prompt.
    pub tables: usize,
    /// Past queries handed to the prompt as examples.
    pub examples: usize,
}

/// A table chosen for the question, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableCandidate {
    pub name: String,
    pub score: f32,
    pub tier: Option<Tier>,
    pub owner: Option<String>,
    pub deprecated_for: Option<String>,
    /// Plain-language reasons, e.g. "read by 3 similar past queries".
    pub evidence: Vec<String>,
}

/// A past query close to the question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub label: String,
    pub sql: String,
    pub author: String,
    pub tables: Vec<String>,
    pub score: f32,
}

/// What retrieval found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retrieved {
    pub tables: Vec<TableCandidate>,
    pub examples: Vec<Example>,
    pub embed_ms: u64,
    pub search_ms: u64,
}

/// Errors while retrieving.
#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] VectorStoreError),
}

/// Where to search: only points passing every filter; past queries whose payload matches
/// `exclude` are never used (the evaluation's leakage guard).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub filters: Vec<Equals>,
    pub exclude: Option<Equals>,
}

/// Nearest neighbours fetched per collection before fusion.
const HITS: usize = 12;

/// Governance adjustment of a table's relevance score.
fn governance_bonus(tier: Option<Tier>, deprecated: bool) -> f32 {
    let tier = match tier {
        Some(Tier::Certified) => 0.06,
        Some(Tier::Team) => 0.02,
        Some(Tier::Staging) => -0.10,
        None => -0.03,
    };
    tier - if deprecated { 0.2 } else { 0.0 }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn text(hit: &Hit, field: &str) -> String {
    hit.payload.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Retrieves tables and examples for `question`.
pub fn retrieve(
    question: &str,
    catalog: &Catalog,
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    budget: RetrievalBudget,
    scope: &Scope,
) -> Result<Retrieved, RetrieveError> {
    let started = std::time::Instant::now();
    let vector = embedder.embed(&[question.to_string()])?.pop().unwrap_or_default();
    let embed_ms = started.elapsed().as_millis() as u64;

    let started = std::time::Instant::now();
    let table_hits = store.search(Collection::Tables, &vector, HITS.max(budget.tables), &scope.filters)?;
    let mut query_hits = match &scope.exclude {
        None => store.search(Collection::Queries, &vector, HITS, &scope.filters)?,
        Some(exclude) => {
            let mut hits = store.search(Collection::Queries, &vector, HITS * 3, &scope.filters)?;
            hits.retain(|h| h.payload.get(exclude.field) != Some(&exclude.value));
            hits
        }
    };
    query_hits.truncate(HITS);

    #[derive(Default)]
    struct Signals {
        doc_score: f32,
        best_query_score: f32,
        query_count: usize,
        example_label: Option<String>,
    }
    let mut signals: BTreeMap<String, Signals> = BTreeMap::new();
    // Keyed by the catalog's spelling, so hits that name a table differently merge.
    let canonical = |name: &str| catalog.table(name).map(|t| t.name.clone());
    for hit in &table_hits {
        let Some(name) = canonical(&text(hit, "table")) else { continue };
        signals.entry(name).or_default().doc_score = hit.score;
    }
    for hit in &query_hits {
        for table in strings(hit.payload.get("tables")) {
            let Some(table) = canonical(&table) else { continue };
            let s = signals.entry(table).or_default();
            s.query_count += 1;
            if hit.score > s.best_query_score {
                s.best_query_score = hit.score;
                s.example_label = Some(text(hit, "label"));
            }
        }
    }

    let mut tables: Vec<TableCandidate> = signals
        .into_iter()
        .filter_map(|(name, s)| {
            let table = catalog.table(&name)?;
            let relevance =
                s.doc_score.max(s.best_query_score) + 0.02 * (s.query_count.saturating_sub(1)).min(5) as f32;
            let score = relevance + governance_bonus(table.tier, table.deprecated.is_some());
            let mut evidence = Vec::new();
            if s.doc_score > 0.0 {
                evidence
                    .push(format!("its description matches the question (similarity {:.2})", s.doc_score));
            }
            if s.query_count > 0 {
                let example = s.example_label.unwrap_or_default();
                let plural = if s.query_count == 1 { "query" } else { "queries" };
                evidence.push(format!("read by {} similar past {plural}, e.g. \"{example}\"", s.query_count));
            }
            let mut governance =
                table.tier.map(|t| t.to_string()).unwrap_or_else(|| "no tier assigned".into());
            if let Some(owner) = &table.owner {
                governance.push_str(&format!(", owner {owner}"));
            }
            evidence.push(governance);
            if let Some(dep) = &table.deprecated {
                evidence.push(format!("deprecated: use {} instead", dep.replacement));
            }
            Some(TableCandidate {
                name: table.name.clone(),
                score,
                tier: table.tier,
                owner: table.owner.clone(),
                deprecated_for: table.deprecated.as_ref().map(|d| d.replacement.clone()),
                evidence,
            })
        })
        .collect();
    tables.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    tables.truncate(budget.tables);

    let examples = query_hits
        .iter()
        .take(budget.examples)
        .map(|hit| Example {
            label: text(hit, "label"),
            sql: text(hit, "sql"),
            author: text(hit, "author"),
            tables: strings(hit.payload.get("tables")),
            score: hit.score,
        })
        .collect();
    Ok(Retrieved { tables, examples, embed_ms, search_ms: started.elapsed().as_millis() as u64 })
}
