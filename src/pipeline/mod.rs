//! The pipeline: the one place that orders the stages. A question flows
//! retrieve -> prompt -> generate -> validate -> (repair) -> execute -> answer; SQL from a user
//! or tool flows validate -> execute -> answer. Every request leaves an audit record.
//!
//! Stages never call each other; they are called from here, each timed. This file holds the
//! public types and `Quarry`'s opening and accessors; `ask` answers a question (with `attempt`
//! for a round of candidates and the vote, `reuse` for verified queries, `answer_cache` for a
//! repeat), `sql` runs a user's SQL, `feedback` takes verdicts and reviews, and `catalog_ops`
//! has catalog browsing, steward edits, search and the audit log.

mod answer_cache;
mod ask;
mod attempt;
mod audit_log;
mod catalog_ops;
mod choices;
mod feedback;
mod history_ops;
pub mod metrics;
mod reuse;
mod search;
mod sql;
mod stewardship_ops;
mod sync;
mod threads;
mod trust;

use attempt::{vote, Attempting, Candidate, Group};
use reuse::Reusing;

pub use catalog_ops::{CatalogRequestError, TableDetail, TableFilter, TableSummary};
pub use choices::Choice;
pub use feedback::{Decision, Feedback, FeedbackOutcome, ReviewDecision, ReviewFilter, Verdict};
pub use history_ops::Suggestion;
pub use stewardship_ops::EditOutcome;
pub use sync::TakenIn;
pub use threads::{PriorTurn, ThreadChoice, ThreadPosition};

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catalog::{Catalog, CatalogError, Tier};
use crate::check::{check, Confidence, Finding, Subject};
use crate::config::Config;
use crate::embed::{EmbedError, Embedder, FastEmbedder, Remembering};
use crate::history::structure::JoinEdge;
use crate::history::verdict::{self, Reviews};
use crate::history::{History, HistoryError, LogFormat};
use crate::index::{ensure_index, IndexError, IndexReport};
use crate::ingest::{self, IngestOptions};
use crate::llm::{Generation, GenerationParams, LlamaCppLlm, Llm, LlmError, OpenAiLlm};
use crate::metadata::{AuditKind, AuditRecord, Metadata, MetadataError, Outcome};
pub use crate::policy::Principal;
use crate::policy::{Action, Policy, PolicyError};
use crate::prompt::{self, FailedAttempt, PromptBudget};
use crate::retrieve::{retrieve, Example, RetrievalBudget, RetrieveError, Reuse, Scope, TableCandidate};
use crate::stewardship::{Conflict, Usage};
use crate::template;
use crate::timeframe::Period;
use crate::validate::{
    outside_picks, validate, DraftSql, Governance, Refusal, ValidatedQuery, Violation, ViolationCode,
};
use crate::vector_store::{Equals, VectorStore, VectorStoreError};
use crate::warehouse::{Cancel, ExecuteError, Executor, ResultSet, Warehouse, WarehouseError};

/// Errors while opening a workspace.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the demo workspace: {0}")]
    Demo(#[from] crate::demo::DemoError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The policy names tables, columns or tags the catalog does not have.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] VectorStoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Llm(#[from] LlmError),
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The question is empty or too long.
    #[error("{0}")]
    InvalidQuestion(String),
    /// The ask follows up in a thread the principal does not have (or that expired).
    #[error("{0}")]
    UnknownThread(String),
    /// The principal's role has no policy, or its policy does not allow this action.
    #[error(transparent)]
    Forbidden(#[from] AccessError),
    /// The SQL (written by the model or sent by the caller) was refused by the validator.
    #[error("the query was refused: {refusal}")]
    Refused { sql: String, refusal: Refusal },
    /// The SQL was valid but the warehouse could not run it.
    #[error("{source}")]
    Execution { sql: String, source: ExecuteError },
    /// Every attempt read a table that does not exist among those the role may read: the honest
    /// answer is that these tables do not hold it.
    #[error("{}", unanswerable(refusal, offered))]
    Unanswerable { sql: String, refusal: Refusal, offered: Vec<String> },
    #[error(transparent)]
    Retrieve(#[from] RetrieveError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The model's line was full, or the ask left it (cancelled, or past its wait).
    #[error(transparent)]
    Busy(#[from] crate::admission::Refused),
    /// The audit record could not be written, so no answer is given.
    #[error("cannot write the audit record: {0}")]
    Audit(#[from] MetadataError),
}

/// What an unanswerable question is told: that the tables it may read do not hold the answer,
/// what the model looked for, and which tables were considered.
/// Only names the model wrote and tables the role may read appear (the validator's own message
/// may suggest a table of the whole catalog).
pub fn unanswerable(refusal: &Refusal, offered: &[String]) -> String {
    let wanted: Vec<String> = refusal.violations.iter().map(|v| format!("'{}'", v.fragment)).collect();
    format!(
        "I can't answer this from the tables you may read (no table {} among them); tables considered: {}",
        wanted.join(", "),
        offered.join(", ")
    )
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The role has no policy, so it may do nothing.
    #[error("role '{role}' is not defined; defined roles: {defined}")]
    UnknownRole { role: String, defined: String },
    /// The role's policy does not list the action.
    #[error("role '{role}' may not {}; roles that may: {allowed}", describe(*action))]
    NotAllowed { role: String, action: Action, allowed: String },
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::Ask => "ask questions",
        Action::Sql => "run SQL",
        Action::ReadCatalog => "read the catalog",
        Action::EditCatalog => "edit the catalog",
        Action::ReadAudit => "read the audit log",
        Action::IngestHistory => "add to the query history",
        Action::Verify => "verify past queries",
        Action::EditPolicy => "lift a restriction (edit_policy)",
    }
}

/// A question as asked, checked (`Quarry::question`): trimmed, not empty, not too long, free of
/// control characters. Retrieval and the prompt see no other.
#[derive(Debug, Clone, Copy)]
pub(super) struct Question<'a>(&'a str);

impl<'a> Question<'a> {
    pub(super) fn text(self) -> &'a str {
        self.0
    }
}

/// What one request reads, taken once at its start (a steward's edit or a newly logged query
/// meanwhile is for the next request): the catalog in force, the part of it the role may see,
/// the query history, the tables' trust signals, and who asks under which policy.
#[derive(Clone, Copy)]
pub(super) struct Snapshot<'a> {
    pub(super) catalog: &'a Catalog,
    pub(super) visible: &'a Catalog,
    pub(super) history: &'a HistoryState,
    /// The trust signals of the catalog's tables with that history.
    pub(super) trust: &'a crate::retrieve::TrustSignals,
    pub(super) policy: &'a Policy,
    pub(super) principal: &'a Principal,
}

/// How to answer, beyond the question.
#[derive(Debug, Clone, Default)]
pub struct AskOptions {
    /// Never use past queries whose SQL has one of these `history::sql_key`s (the evaluation
    /// asks with its gold SQL's keys, every acceptable alternative's included, so neither they
    /// nor a question with identical gold SQL helps).
    pub exclude_sql_keys: Vec<String>,
    /// Candidates to generate and vote between; None: `[llm] samples`.
    pub samples: Option<usize>,
    /// Offer the model exactly these tables (the analyst picked them), instead of retrieval's
    /// choice; a verified past query is then not reused, and SQL reading any other table is
    /// sent back to the model, never run.
    pub tables: Option<Vec<String>>,
    /// Raised by the caller to stop the work (the HTTP layer raises it when the client goes).
    pub cancel: Cancel,
    /// The day the question is asked (ISO date), for its relative time phrases; None: today.
    pub today: Option<String>,
    /// Record the answer as a turn of a conversation thread (a new one, or a follow-up in one
    /// of the principal's threads, whose earlier turns then fill `follows`); None: not kept.
    pub thread: Option<ThreadChoice>,
    /// Earlier turns of the conversation this question follows up on, oldest first: shown to
    /// the model (their SQL only while the principal may still run it) and their tables
    /// offered first.
    pub follows: Vec<PriorTurn>,
}

/// A stage of answering a question, reported as it starts (the web page streams them), and
/// the SQL as the model writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Embedding the question and searching tables and past queries.
    Retrieving,
    /// Waiting for the model behind other questions; `place` 1 is next.
    Queued { place: usize },
    /// The model writes SQL; `attempt` counts from 1 (repairs and samples add attempts).
    Generating { attempt: usize },
    /// More of the text the model is writing for `attempt` (the greedy answer of a round).
    Writing { attempt: usize, text: String },
    /// Checking the SQL against the catalog and the role's policy.
    Validating { attempt: usize },
    /// Running the validated SQL on the warehouse.
    Running { attempt: usize },
}

/// Time spent in each stage, in milliseconds, and the model's token counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Timings {
    pub embed_ms: u64,
    pub retrieve_ms: u64,
    /// The answer to the same question asked before, its SQL validated and run again with
    /// the same rows: nothing was generated.
    pub answer_cached: bool,
    pub prompt_tokens: usize,
    /// Of the prompt tokens, those whose keys and values came from the model's cache (a
    /// shared prefix, or a candidate decoded beside the first) rather than being prefilled.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub generate_ms: u64,
    pub validate_ms: u64,
    pub execute_ms: u64,
    pub total_ms: u64,
}

/// A table the answer reads, with its governance and the evidence for choosing it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TableUse {
    pub name: String,
    pub tier: Option<u8>,
    pub owner: Option<String>,
    pub deprecated_for: Option<String>,
    /// How fresh its owner promises to keep it.
    pub freshness: Option<String>,
    pub evidence: Vec<String>,
}

/// The answer to a question.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Answer {
    pub question: String,
    pub sql: String,
    /// What the SQL computes, in one line, read from its syntax tree (not written by the
    /// model): what to check the answer against. None for SQL it cannot read plainly.
    pub reading: Option<String>,
    /// Tables the SQL reads.
    pub tables: Vec<TableUse>,
    /// Tables retrieval offered to the model, best first.
    pub candidates: Vec<TableCandidate>,
    pub examples: Vec<Example>,
    pub result: ResultSet,
    pub warnings: Vec<Violation>,
    /// How the role's policy shaped the SQL: masked columns, row filters, row cap.
    pub governance: Governance,
    /// Earlier attempts that were refused or failed and then repaired.
    pub repairs: Vec<RepairNote>,
    /// The verified past query given as the answer, when one asked the same (no LLM call).
    pub reused: Option<Reuse>,
    /// How sampled candidates voted, when more than one was generated (`[llm] samples`).
    pub votes: Option<Votes>,
    /// When the candidates disagreed with no result shared by most: the leading readings of
    /// the question, the one this answer shows marked; choosing another answers with it
    /// (`POST /api/v1/threads/{id}/choose`). Empty otherwise.
    pub choices: Vec<Choice>,
    /// What the plausibility checks still find on the answer (`[answer] checks`).
    pub findings: Vec<Finding>,
    /// How far the answer can be trusted, and why not more.
    pub confidence: Confidence,
    /// The question's time phrases as the date ranges they were read as.
    pub periods: Vec<Period>,
    /// The model that wrote the SQL ("none" when a verified query was reused).
    pub model: String,
    /// The fine-tuned adapter on top of that model, if any.
    pub adapter: Option<String>,
    /// The conversation thread the answer was recorded in, when the ask named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadPosition>,
    pub timings: Timings,
}

impl Answer {
    /// An answer with `query`'s SQL, reading, warnings and governance and its `result`, as
    /// nothing else (no model, candidates, repairs or votes) shaped it; callers set the rest.
    fn plain(
        question: &str,
        query: &ValidatedQuery,
        result: ResultSet,
        tables: Vec<TableUse>,
        timings: Timings,
    ) -> Answer {
        Answer {
            question: question.to_string(),
            sql: query.sql().to_string(),
            reading: crate::reading::read(query.sql()),
            tables,
            candidates: Vec::new(),
            examples: Vec::new(),
            result,
            warnings: query.warnings().to_vec(),
            governance: query.governance().clone(),
            repairs: Vec::new(),
            reused: None,
            votes: None,
            choices: Vec::new(),
            findings: Vec::new(),
            confidence: Confidence { level: crate::check::Level::High, reasons: Vec::new() },
            periods: Vec::new(),
            model: "none".into(),
            adapter: None,
            thread: None,
            timings,
        }
    }
}

/// One repaired attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RepairNote {
    pub sql: String,
    pub error: String,
}

/// The result of running caller-supplied SQL.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SqlAnswer {
    pub sql: String,
    pub tables: Vec<TableUse>,
    pub result: ResultSet,
    pub warnings: Vec<Violation>,
    /// How the role's policy shaped the SQL: masked columns, row filters, row cap.
    pub governance: Governance,
    pub timings: Timings,
}

/// An open workspace: catalog, index, model, warehouse, metadata.
pub struct Quarry {
    config: Config,
    /// What the governance files say (revisions are laid over it).
    files_catalog: Catalog,
    /// The catalog in force: files plus steward edits. Replaced whole on each edit.
    catalog: RwLock<Arc<Catalog>>,
    /// Steward edits the files have since contradicted.
    conflicts: RwLock<Vec<Conflict>>,
    /// Serialises steward edits.
    edit_lock: Mutex<()>,
    /// The stored query history and what is derived from it; replaced whole on each ingest.
    history: RwLock<Arc<HistoryState>>,
    /// Serialises ingests.
    ingest_lock: Mutex<()>,
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
    /// None when opened for SQL only (`quarry sql`, `quarry index`): asking then fails clearly.
    llm: Option<Arc<dyn Llm>>,
    executor: Executor,
    metadata: Metadata,
    index_report: IndexReport,
    /// Answers to questions asked before, served again while nothing they were made from
    /// has changed (`answer_cache`).
    answers: answer_cache::AnswerCache,
    /// The line in front of the model: asks beyond its slots wait, a full line is turned away.
    admission: crate::admission::Admission,
    /// What this process has done, for `GET /metrics`.
    metrics: metrics::Metrics,
    /// The tables' trust signals, computed once per catalog, history and day.
    trust: trust::TrustCache,
    /// The metadata store's high-water marks when this instance last took in its changes.
    seen: Mutex<crate::metadata::StoreMarks>,
}

/// The query history in force, with the signals derived from it.
pub struct HistoryState {
    pub history: History,
    /// Per lower-cased table: how often past queries read it.
    pub table_usage: BTreeMap<String, Usage>,
    /// Per author of past queries: the latest timestamp.
    pub last_active: BTreeMap<String, String>,
    /// Join edges of successful past queries, with how many used each.
    pub join_counts: BTreeMap<JoinEdge, usize>,
    /// What was said of each (question, SQL) pair: votes, verifications, objections.
    pub reviews: Reviews,
}

impl HistoryState {
    fn new(history: History, reviews: Reviews) -> HistoryState {
        let (table_usage, last_active) = catalog_ops::usage(&history);
        let join_counts = history.join_counts();
        HistoryState { history, table_usage, last_active, join_counts, reviews }
    }
}

/// The configured model: a client of the OpenAI-compatible server at `[llm] url`, or else the
/// embedded llama.cpp model from the assets.
pub fn load_default_llm(config: &Config) -> Result<Arc<dyn Llm>, LlmError> {
    if let Some(url) = &config.llm_url {
        let model = config.model_name();
        let api_key = std::env::var("QUARRY_LLM_API_KEY").ok().filter(|k| !k.is_empty());
        return Ok(Arc::new(OpenAiLlm::new(url, &model, api_key, Duration::from_secs(300))));
    }
    Ok(Arc::new(LlamaCppLlm::load(&config.model, config.adapter.as_deref(), &config.llama_settings())?))
}

/// Loads the embedded default embedder from the configured assets; it remembers what it embedded.
pub fn load_default_embedder(config: &Config) -> Result<Arc<dyn Embedder>, EmbedError> {
    let model_dir = config.assets.join("all-minilm-l6-v2");
    let runtime = config.assets.join("onnxruntime").join("libonnxruntime.so.1.31.1");
    let model = FastEmbedder::load(&model_dir, &runtime, config.threads)?;
    Ok(Arc::new(Remembering::new(model, REMEMBERED_TEXTS)))
}

/// Texts whose vectors the default embedder keeps (30 MB of vectors at 384 dimensions, plus the
/// texts): a catalog and query log of this size re-index after an edit by embedding only what
/// changed.
const REMEMBERED_TEXTS: usize = 20_000;

/// The catalog of a workspace: what the files say, and what is in force with steward edits.
pub struct LoadedCatalog {
    pub files_catalog: Catalog,
    pub catalog: Catalog,
    /// Steward edits the files have since contradicted (the files won).
    pub conflicts: Vec<Conflict>,
}

/// Loads the catalog in force: warehouse + governance files + steward revisions, checked
/// against the role policies. No model is needed (`quarry catalog check` uses it alone).
pub fn load_catalog(config: &Config, metadata: &Metadata) -> Result<LoadedCatalog, OpenError> {
    let warehouse = Warehouse::open(&config.warehouse, &config.sources)?;
    load_catalog_from(&warehouse, config, metadata)
}

fn load_catalog_from(
    warehouse: &Warehouse,
    config: &Config,
    metadata: &Metadata,
) -> Result<LoadedCatalog, OpenError> {
    let files_catalog = warehouse.load_catalog(&config.governance)?;
    let (catalog, conflicts) = crate::stewardship::overlay(&files_catalog, &metadata.latest_revisions()?);
    crate::validate::check_roles(&config.policy, &catalog)?;
    Ok(LoadedCatalog { files_catalog, catalog, conflicts })
}

impl Quarry {
    /// Opens the workspace of `config`, creating the demo warehouse when configured and
    /// missing, and (re)indexing when the catalog or history changed.
    pub fn open(
        config: Config,
        embedder: Arc<dyn Embedder>,
        llm: Option<Arc<dyn Llm>>,
    ) -> Result<Quarry, OpenError> {
        if let Some(path) = config.warehouse.sqlite_path() {
            if !path.is_file() && config.demo {
                crate::demo::create(path, &config.history, crate::demo::DEFAULT_SEED)?;
            }
        }
        let warehouse = Warehouse::open(&config.warehouse, &config.sources)?;
        let metadata = Metadata::open_location(&config.metadata_location())?;
        let LoadedCatalog { files_catalog, catalog, conflicts } =
            load_catalog_from(&warehouse, &config, &metadata)?;
        for conflict in &conflicts {
            tracing::warn!(
                "catalog conflict on {} '{}': {}",
                conflict.target_kind,
                conflict.target,
                conflict.message
            );
        }
        // The configured log is ingested incrementally at each start (known entries are skipped).
        let mut skipped = Vec::new();
        if config.history.is_file() {
            let text = std::fs::read_to_string(&config.history)
                .map_err(|source| HistoryError::Io { path: config.history.display().to_string(), source })?;
            let options =
                IngestOptions { llm: None, source: config.history.display().to_string(), audit: None };
            let format = LogFormat::of_path(&config.history);
            let (report, _) = ingest::ingest(&text, format, &catalog, &metadata, &options, &mut |_, _| {})?;
            skipped = report.skipped;
        }
        let mut history = ingest::load(&metadata, &catalog)?;
        history.skipped.extend(skipped);
        history.skipped.sort_by_key(|s| s.line);
        let reviews = verdict::apply(&mut history, &metadata.verdicts()?, config.promote_votes);
        let store = crate::vector_store::open(&config.vectors_location(), embedder.dimension())?;
        let index_report = ensure_index(&catalog, &history, embedder.as_ref(), store.as_ref())?;
        let executor = warehouse.executor(config.execution_limits());
        let admission = crate::admission::Admission::new(crate::admission::Limits {
            slots: config.llm_slots(),
            capacity: config.llm_queue,
        });
        let metrics = metrics::Metrics::new(&metrics::Loaded {
            model: llm.as_deref().map_or("none", |llm| llm.model_id()),
            adapter: llm.as_deref().and_then(|llm| llm.adapter()),
            index_tables: index_report.tables,
            index_queries: index_report.queries,
        });
        let seen = Mutex::new(metadata.marks()?);
        Ok(Quarry {
            config,
            files_catalog,
            catalog: RwLock::new(Arc::new(catalog)),
            conflicts: RwLock::new(conflicts),
            edit_lock: Mutex::new(()),
            history: RwLock::new(Arc::new(HistoryState::new(history, reviews))),
            ingest_lock: Mutex::new(()),
            embedder,
            store,
            llm,
            executor,
            metadata,
            index_report,
            answers: Default::default(),
            admission,
            metrics,
            trust: Default::default(),
            seen,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The catalog in force now (files plus steward edits).
    pub fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The query history in force and its derived signals.
    pub fn history(&self) -> Arc<HistoryState> {
        match self.history.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Steward edits the governance files have since contradicted (the files won).
    pub fn conflicts(&self) -> Vec<Conflict> {
        match self.conflicts.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn index_report(&self) -> &IndexReport {
        &self.index_report
    }

    /// The size of the embedding model's vectors (what the vector store holds).
    pub fn embedding_dimension(&self) -> usize {
        self.embedder.dimension()
    }

    /// The counters of this process (`GET /metrics`).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The metrics as OpenMetrics text, with the model's line as it is now.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode(self.admission.load())
    }

    /// The model in use, or "none" when opened without one.
    pub fn model_id(&self) -> &str {
        self.llm.as_deref().map(|llm| llm.model_id()).unwrap_or("none")
    }

    /// The policy of the principal's role, when it allows `action`.
    pub fn authorize(&self, principal: &Principal, action: Action) -> Result<&Policy, AccessError> {
        let policy = self.policy_of(principal)?;
        if !policy.allows(action) {
            return Err(AccessError::NotAllowed {
                role: principal.role.clone(),
                action,
                allowed: self.roles_where(&|p| p.allows(action)),
            });
        }
        Ok(policy)
    }

    /// The policy of the principal's role (what the web page may offer them).
    pub fn policy_of(&self, principal: &Principal) -> Result<&Policy, AccessError> {
        self.config.policy.get(&principal.role).ok_or_else(|| AccessError::UnknownRole {
            role: principal.role.clone(),
            defined: self.roles_where(&|_| true),
        })
    }

    /// The roles whose policy passes `keep`, comma-separated.
    fn roles_where(&self, keep: &dyn Fn(&Policy) -> bool) -> String {
        let roles: Vec<&str> = self.config.policy.roles().filter(|p| keep(p)).map(Policy::role).collect();
        roles.join(", ")
    }

    /// The tables a query reads; `candidates` are retrieval's picks when a model wrote the SQL.
    fn table_uses(
        &self,
        catalog: &Catalog,
        query: &ValidatedQuery,
        candidates: Option<&[TableCandidate]>,
    ) -> Vec<TableUse> {
        query
            .tables()
            .iter()
            .filter_map(|name| catalog.table(name))
            .map(|t| TableUse {
                name: t.name.clone(),
                tier: t.tier.map(Tier::number),
                owner: t.owner.clone(),
                deprecated_for: t.deprecated.as_ref().map(|d| d.replacement.clone()),
                freshness: t.freshness.clone(),
                evidence: match candidates {
                    None => Vec::new(),
                    Some(candidates) => candidates
                        .iter()
                        .find(|c| c.name == t.name)
                        .map(|c| c.evidence.clone())
                        .unwrap_or_else(
                            || vec!["chosen by the model, not among the retrieved tables".into()],
                        ),
                },
            })
            .collect()
    }

    /// An audit record of a request by `principal`, marked answered with no rows or detail;
    /// the caller sets what it knows beyond that.
    fn request_audit(
        principal: &Principal,
        kind: AuditKind,
        question: Option<&str>,
        sql: Option<String>,
        duration_ms: u64,
    ) -> AuditRecord {
        AuditRecord {
            principal: principal.name.clone(),
            role: principal.role.clone(),
            kind,
            question: question.map(str::to_string),
            sql,
            outcome: Outcome::Answered,
            row_count: None,
            duration_ms,
            detail: serde_json::Value::Null,
        }
    }

    /// `text` as a question to answer: trimmed, not empty, within `[server]`'s length limit and
    /// free of control characters.
    fn question<'q>(&self, text: &'q str) -> Result<Question<'q>, AskError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AskError::InvalidQuestion("the question is empty: ask something, e.g. \"which 5 countries had the most active users last month?\"".into()));
        }
        crate::text::check("the question", text, self.config.max_question_chars)
            .map_err(AskError::InvalidQuestion)?;
        Ok(Question(text))
    }
}

/// Temperature of the sampled candidates (`[llm] samples` > 1): varied enough to disagree
/// where the model is unsure, low enough to stay on the question.
pub const SAMPLE_TEMPERATURE: f32 = 0.7;

/// How the candidates of a sampled answer voted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Votes {
    /// Candidates generated, the greedy one included.
    pub generated: usize,
    /// Those that passed validation and ran.
    pub ran: usize,
    /// Those whose result is the chosen one.
    pub agreeing: usize,
    /// Different results among those that ran.
    pub distinct_results: usize,
}
