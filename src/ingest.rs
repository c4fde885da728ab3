//! Ingesting query logs into the metadata database: idempotent (an entry is identified by
//! the hash of its SQL, author and timestamp), incremental (only new entries are processed),
//! resumable (entries are committed in batches, so an interrupted ingest continues where it
//! stopped), with every unusable line reported and skipped.

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::history::{intent, parse_log, prepare, History, IntentSource, LogFormat, PastQuery, SkippedLine};
use crate::llm::Llm;
use crate::metadata::{Metadata, MetadataError};
use crate::policy::{Policy, Principal};
use crate::validate::{validate, DraftSql};

/// Entries committed per transaction.
const BATCH: usize = 200;

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Entries in the log (lines that parsed).
    pub read: usize,
    /// Entries stored by this ingest.
    pub new: usize,
    /// Entries already stored (by an earlier ingest, or twice in this log).
    pub duplicates: usize,
    /// Lines that could not be used, with the reason.
    pub skipped: Vec<SkippedLine>,
    /// Intents written by the LLM (the others are built from the structure).
    pub llm_intents: usize,
    pub elapsed_ms: u64,
    /// New entries processed per second.
    pub queries_per_second: f64,
}

/// How to ingest.
pub struct IngestOptions<'a> {
    /// Writes intent texts when given; otherwise they are built from the structure.
    pub llm: Option<&'a dyn Llm>,
    /// Where the entries came from (a file name, `api:<principal>`), stored with each.
    pub source: String,
    /// Written with each batch, in the batch's own transaction (the count stored filled in).
    pub audit: Option<crate::metadata::AuditRecord>,
}

/// Ingests a log. `progress(done, total)` is called after each entry. Returns the report and
/// the queries stored, for indexing.
pub fn ingest(
    text: &str,
    format: LogFormat,
    catalog: &Catalog,
    metadata: &Metadata,
    options: &IngestOptions<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(IngestReport, Vec<PastQuery>), MetadataError> {
    let started = Instant::now();
    let (entries, mut skipped) = parse_log(text, format);
    let mut known = metadata.history_hashes()?;
    let mut report = IngestReport { read: entries.len(), ..IngestReport::default() };
    let mut stored = Vec::new();
    let mut batch = Vec::new();
    let total = entries.len();
    for (done, (line, logged)) in entries.into_iter().enumerate() {
        let hash = logged.content_hash();
        if !known.insert(hash) {
            report.duplicates += 1;
        } else {
            match prepare(line, logged, catalog) {
                Err(reason) => skipped.push(SkippedLine { line, reason }),
                Ok(mut query) => {
                    if let Some(llm) = options.llm {
                        match intent::with_llm(llm, &query.logged, &query.structure, catalog) {
                            Ok(text) => {
                                query.intent = text;
                                query.intent_source = IntentSource::Llm;
                                report.llm_intents += 1;
                            }
                            Err(e) => tracing::warn!(
                                "line {line}: the LLM wrote no intent ({e}); using the structure"
                            ),
                        }
                    }
                    batch.push(query);
                }
            }
        }
        if batch.len() == BATCH {
            report.new += metadata.insert_history(&batch, &options.source, options.audit.as_ref())?;
            stored.append(&mut batch);
        }
        progress(done + 1, total);
    }
    report.new += metadata.insert_history(&batch, &options.source, options.audit.as_ref())?;
    stored.append(&mut batch);
    skipped.sort_by_key(|s| s.line);
    report.skipped = skipped;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report.queries_per_second = stored.len() as f64 / started.elapsed().as_secs_f64().max(1e-6);
    Ok((report, stored))
}

/// The stored history, each entry checked against the current catalog (tables may have
/// gone since it was ingested: such entries are reported, not used).
pub fn load(metadata: &Metadata, catalog: &Catalog) -> Result<History, MetadataError> {
    let policy = Policy::unrestricted();
    let mut history = History::default();
    let mut seen = HashSet::new();
    for mut query in metadata.history()? {
        if !seen.insert(query.hash.clone()) {
            continue;
        }
        let principal = Principal::new(query.logged.author.clone(), policy.role());
        match validate(&DraftSql::new(query.logged.sql.clone()), catalog, &policy, &principal) {
            Ok(valid) => {
                query.tables = valid.tables().to_vec();
                history.queries.push(query);
            }
            Err(refusal) => history.skipped.push(SkippedLine {
                line: query.line,
                reason: format!("no longer valid against the catalog: {refusal}"),
            }),
        }
    }
    Ok(history)
}
