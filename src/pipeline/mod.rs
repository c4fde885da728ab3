//! The pipeline: the one place that orders the stages. A question flows
//! retrieve -> prompt -> generate -> validate -> (repair) -> execute -> answer; SQL from a user
//! or tool flows validate -> execute -> answer. Every request leaves an audit record.
//!
//! Stages never call each other; they are called from here, each timed. Catalog browsing,
//! steward edits, search and the audit log are in `catalog_ops`.

mod answer_cache;
mod catalog_ops;
mod feedback;

pub use catalog_ops::{CatalogRequestError, EditOutcome, TableDetail, TableFilter, TableSummary};
pub use feedback::{Decision, Feedback, FeedbackOutcome, ReviewDecision, ReviewFilter, Verdict};

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catalog::{Catalog, CatalogError, Tier};
use crate::check::{check, Confidence, Finding, Subject};
use crate::config::Config;
use crate::embed::{EmbedError, Embedder, FastEmbedder};
use crate::execute::{Cancel, ExecuteError, Executor, ResultSet};
use crate::history::ingest::{self, IngestOptions};
use crate::history::structure::JoinEdge;
use crate::history::verdict::{self, Reviews};
use crate::history::{History, HistoryError, LogFormat};
use crate::index::{ensure_index, IndexError, IndexReport};
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
use crate::vector_store::{Equals, QdrantEdgeStore, VectorStore, VectorStoreError};

/// Errors while opening a workspace.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the demo workspace: {0}")]
    Demo(#[from] crate::demo::DemoError),
    #[error(
        "the warehouse {0} does not exist; set [workspace].warehouse in quarry.toml or run `quarry demo`"
    )]
    NoWarehouse(String),
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
}

/// A stage of answering a question, reported as it starts (the web page streams them), and
/// the SQL as the model writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Embedding the question and searching tables and past queries.
    Retrieving,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub question: String,
    pub sql: String,
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
    pub timings: Timings,
}

/// One repaired attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairNote {
    pub sql: String,
    pub error: String,
}

/// The result of running caller-supplied SQL.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    Ok(Arc::new(LlamaCppLlm::load(
        &config.model,
        config.adapter.as_deref(),
        config.threads,
        config.context_tokens,
    )?))
}

/// Loads the embedded default embedder from the configured assets.
pub fn load_default_embedder(config: &Config) -> Result<Arc<dyn Embedder>, EmbedError> {
    let model_dir = config.assets.join("all-minilm-l6-v2");
    let runtime = config.assets.join("onnxruntime").join("libonnxruntime.so.1.31.1");
    Ok(Arc::new(FastEmbedder::load(&model_dir, &runtime, config.threads)?))
}

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
    if !config.warehouse.is_file() {
        return Err(OpenError::NoWarehouse(config.warehouse.display().to_string()));
    }
    let files_catalog = Catalog::load_sources(&config.warehouse, &config.sources, &config.governance)?;
    let (catalog, conflicts) = crate::stewardship::overlay(&files_catalog, &metadata.latest_revisions()?);
    config.policy.check_catalog(&catalog)?;
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
        if !config.warehouse.is_file() {
            if !config.demo {
                return Err(OpenError::NoWarehouse(config.warehouse.display().to_string()));
            }
            crate::demo::create(&config.warehouse, &config.history, crate::demo::DEFAULT_SEED)?;
        }
        let metadata = Metadata::open(&config.metadata_db())?;
        let LoadedCatalog { files_catalog, catalog, conflicts } = load_catalog(&config, &metadata)?;
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
        let store: Arc<dyn VectorStore> =
            Arc::new(QdrantEdgeStore::open(&config.workspace.join("vectors"), embedder.dimension())?);
        let index_report = ensure_index(
            &catalog,
            &history,
            embedder.as_ref(),
            store.as_ref(),
            &config.workspace.join("vectors").join("fingerprint"),
        )?;
        let executor =
            Executor::with_limits(&config.warehouse, config.execution_limits()).with_sources(&config.sources);
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

    fn check_question(&self, question: &str) -> Result<(), AskError> {
        if question.trim().is_empty() {
            return Err(AskError::InvalidQuestion("the question is empty: ask something, e.g. \"which 5 countries had the most active users last month?\"".into()));
        }
        crate::text::check("the question", question, self.config.max_question_chars)
            .map_err(AskError::InvalidQuestion)
    }

    /// Answers a question in plain language.
    pub fn ask(&self, question: &str, principal: &Principal) -> Result<Answer, AskError> {
        self.ask_with(question, principal, &AskOptions::default())
    }

    /// Answers a question, with `options` (picked tables, samples, the evaluation's leakage
    /// guard).
    pub fn ask_with(
        &self,
        question: &str,
        principal: &Principal,
        options: &AskOptions,
    ) -> Result<Answer, AskError> {
        self.ask_with_progress(question, principal, options, &|_| {})
    }

    /// Answers a question, telling `progress` as each stage starts.
    pub fn ask_with_progress(
        &self,
        question: &str,
        principal: &Principal,
        options: &AskOptions,
        progress: &(dyn Fn(Stage) + Sync),
    ) -> Result<Answer, AskError> {
        let started = Instant::now();
        let outcome = self
            .authorize(principal, Action::Ask)
            .map_err(AskError::from)
            .and_then(|policy| self.ask_inner(question, principal, policy, options, progress));
        let total_ms = started.elapsed().as_millis() as u64;
        let (audit_outcome, sql, rows, detail) = match &outcome {
            Ok(a) => (
                Outcome::Answered,
                Some(a.sql.clone()),
                Some(a.result.rows.len()),
                serde_json::json!({
                    "tables": a.tables.iter().map(|t| &t.name).collect::<Vec<_>>(),
                    "repairs": a.repairs.len(),
                    "model": a.model,
                    "adapter": a.adapter,
                    "governance": a.governance,
                    "timings": a.timings,
                }),
            ),
            Err(AskError::Refused { sql, refusal }) => (
                Outcome::Refused,
                Some(sql.clone()),
                None,
                serde_json::json!({ "violations": refusal.violations }),
            ),
            Err(e @ AskError::Unanswerable { sql, refusal, .. }) => (
                Outcome::Failed,
                Some(sql.clone()),
                None,
                serde_json::json!({ "unanswerable": e.to_string(), "violations": refusal.violations }),
            ),
            Err(AskError::Execution { sql, source }) => {
                (Outcome::Failed, Some(sql.clone()), None, serde_json::json!({ "error": source.to_string() }))
            }
            Err(e @ AskError::Forbidden(_)) => {
                (Outcome::Refused, None, None, serde_json::json!({ "error": e.to_string() }))
            }
            Err(e) => (Outcome::Failed, None, None, serde_json::json!({ "error": e.to_string() })),
        };
        self.metadata.audit(&AuditRecord {
            principal: principal.name.clone(),
            role: principal.role.clone(),
            kind: AuditKind::Ask,
            question: Some(question.to_string()),
            sql,
            outcome: audit_outcome,
            row_count: rows,
            duration_ms: total_ms,
            detail,
        })?;
        outcome.map(|mut a| {
            a.timings.total_ms = total_ms;
            a
        })
    }

    /// What retrieval offers for `question`: tables, examples, a reusable verified query; as
    /// `ask` would use them (the evaluation records it for answers that failed).
    pub fn retrieval(
        &self,
        question: &str,
        principal: &Principal,
        options: &AskOptions,
    ) -> Result<crate::retrieve::Retrieved, AskError> {
        let policy = self.authorize(principal, Action::Ask)?;
        let catalog = self.catalog();
        let visible = policy.visible_catalog(&catalog);
        self.retrieve_for(question.trim(), &catalog, &visible, &self.history(), policy, principal, options)
    }

    /// The first prompt `ask` would show the model for `question` (no verified query reused;
    /// the fine-tuning export writes it as training data).
    pub fn first_prompt(
        &self,
        question: &str,
        principal: &Principal,
        options: &AskOptions,
    ) -> Result<crate::llm::ChatPrompt, AskError> {
        let policy = self.authorize(principal, Action::Ask)?;
        self.check_question(question)?;
        let catalog = self.catalog();
        let visible = policy.visible_catalog(&catalog);
        let history = self.history();
        let question = question.trim();
        let retrieved =
            self.retrieve_for(question, &catalog, &visible, &history, policy, principal, options)?;
        let build = self.prompt_builder(question, &retrieved, &visible, &history, options);
        let prompt = build(&[]);
        Ok(prompt)
    }

    /// Builds the prompt for `question` from what retrieval found, given the failed attempts
    /// so far: the tables and examples, the join keys analysts used between the offered tables
    /// (deprecated ones are not offered), today's date, within the model's budget.
    fn prompt_builder<'a>(
        &self,
        question: &'a str,
        retrieved: &'a crate::retrieve::Retrieved,
        visible: &'a Catalog,
        history: &HistoryState,
        options: &AskOptions,
    ) -> impl Fn(&[FailedAttempt]) -> crate::llm::ChatPrompt + 'a {
        let offered: Vec<&str> =
            retrieved.tables.iter().filter(|c| c.deprecated_for.is_none()).map(|c| c.name.as_str()).collect();
        let joins =
            prompt::join_hints(&history.join_counts, &offered, visible, self.config.retrieval_join_hints);
        let today = options.today.clone().unwrap_or_else(crate::calendar::today);
        let budget = PromptBudget::for_model(
            self.config.context_tokens as usize,
            self.config.max_tokens,
            self.config.max_repairs,
            self.config.retrieval_columns,
        );
        let grounding = self.config.answer;
        move |failed: &[FailedAttempt]| {
            let context = prompt::Context {
                question,
                retrieved,
                catalog: visible,
                today: &today,
                joins: &joins,
                grounding,
            };
            prompt::build(&context, failed, budget)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn retrieve_for(
        &self,
        question: &str,
        catalog: &Catalog,
        visible: &Catalog,
        history: &HistoryState,
        policy: &Policy,
        principal: &Principal,
        options: &AskOptions,
    ) -> Result<crate::retrieve::Retrieved, AskError> {
        let budget = RetrievalBudget {
            tables: self.config.retrieval_tables,
            examples: self.config.retrieval_examples,
            reuse: self.config.retrieval_reuse,
        };
        // Past queries with the excluded SQL are not searched, and their reads of tables do
        // not count as usage.
        let mut scope = Scope::default();
        let mut excluded_reads: BTreeMap<String, usize> = BTreeMap::new();
        for key in &options.exclude_sql_keys {
            scope.exclude.push(Equals { field: "sql_key", value: key.clone().into() });
            for q in history.history.usable().filter(|q| crate::history::sql_key(&q.logged.sql) == *key) {
                for table in &q.tables {
                    *excluded_reads.entry(table.to_lowercase()).or_default() += 1;
                }
            }
        }
        let mut retrieved = retrieve(
            question,
            visible,
            self.embedder.as_ref(),
            self.store.as_ref(),
            budget,
            &scope,
            &|table| {
                let mut trust = self.trust(table, catalog, history);
                let excluded = excluded_reads.get(&table.name.to_lowercase()).copied().unwrap_or(0);
                trust.past_queries = trust.past_queries.saturating_sub(excluded);
                trust
            },
            // Past queries the principal may not be shown are neither examples nor evidence.
            &|sql| crate::history::visible_to(sql, catalog, policy, principal),
        )?;
        if let Some(picked) = &options.tables {
            retrieved.tables = picked_tables(picked, retrieved.tables, visible)?;
            retrieved.reusable.clear();
        }
        // A verified query is reused only while its pair is verified now, naming who said so.
        retrieved.reusable.retain_mut(|reuse| {
            let pair = history.history.queries.iter().find(|q| q.hash == reuse.hash).map(|q| q.pair_key());
            match pair.and_then(|pair| history.reviews.get(&pair)).map(|r| &r.standing) {
                Some(crate::history::verdict::Standing::Verified { by, at }) => {
                    reuse.verified_by = Some(by.clone());
                    reuse.verified_at = Some(at.clone());
                    true
                }
                _ => false,
            }
        });
        Ok(retrieved)
    }

    fn ask_inner(
        &self,
        question: &str,
        principal: &Principal,
        policy: &Policy,
        options: &AskOptions,
        progress: &(dyn Fn(Stage) + Sync),
    ) -> Result<Answer, AskError> {
        self.check_question(question)?;
        progress(Stage::Retrieving);
        // One snapshot of the catalog for the whole request, even if a steward edits meanwhile.
        let catalog = self.catalog();
        // The model is shown only what the role may read.
        let visible = policy.visible_catalog(&catalog);
        let question = question.trim();
        let mut timings = Timings::default();
        let history = self.history();
        let today = options.today.clone().unwrap_or_else(crate::calendar::today);
        let cache_key = answer_cache::Key::new(question, principal, options, &today);
        if let Some(kept) = self.answers.get(&cache_key, &catalog, &history) {
            if let Some(answer) = self.serve_kept(question, kept, &catalog, policy, principal, options) {
                return Ok(answer);
            }
        }
        let mut retrieved =
            self.retrieve_for(question, &catalog, &visible, &history, policy, principal, options)?;
        timings.embed_ms = retrieved.embed_ms;
        timings.retrieve_ms = retrieved.search_ms;

        // Asset first: a verified past query asking the same, or the same with other literals,
        // is the answer, when this principal may run it.
        let context = Reusing {
            catalog: &catalog,
            visible: &visible,
            policy,
            principal,
            today: &today,
            cancel: &options.cancel,
        };
        for reuse in std::mem::take(&mut retrieved.reusable) {
            match self.reuse(question, reuse, &retrieved, &context, timings.clone()) {
                Ok(answer) => return Ok(answer),
                Err(reason) => tracing::debug!("not reusing the verified query: {reason}"),
            }
        }

        let llm = self.llm.as_deref().ok_or(LlmError::NotLoaded)?;
        let params = GenerationParams::greedy(self.config.max_tokens, prompt::STOP);
        let build = self.prompt_builder(question, &retrieved, &visible, &history, options);
        let picked: Option<Vec<String>> =
            options.tables.as_ref().map(|_| retrieved.tables.iter().map(|t| t.name.clone()).collect());
        let context = Attempting {
            llm,
            catalog: &catalog,
            policy,
            principal,
            progress,
            attempts: Cell::new(0),
            picked: picked.as_deref(),
            cancel: &options.cancel,
        };

        // The first round: the greedy answer and, with `[llm] samples` above 1, sampled
        // candidates from the same prompt, generated together (one prefill, one batch).
        let samples = options.samples.unwrap_or(self.config.samples).max(1);
        let first_params: Vec<GenerationParams> = std::iter::once(params.clone())
            .chain((1..samples).map(|seed| params.sampled(SAMPLE_TEMPERATURE, seed as u32)))
            .collect();
        let mut first_round = self.generate(&context, &build(&[]), &first_params, &mut timings)?.into_iter();
        let mut greedy_first = first_round.next();
        let sampled: Vec<(usize, Generation)> = first_round.collect();

        // The greedy answer, repaired when refused or when it fails to run.
        let mut failed: Vec<FailedAttempt> = Vec::new();
        let mut candidates = Vec::new();
        let mut last_error = None;
        for _attempt in 0..=self.config.max_repairs {
            let tried = match greedy_first.take() {
                Some((attempt, generation)) => {
                    self.consider(&context, attempt, generation, true, &mut timings)
                }
                None => self.attempt(&context, &build(&failed), &params, &mut timings),
            };
            match tried {
                Ok(candidate) => {
                    candidates.push(candidate);
                    break;
                }
                // A policy refusal is final: a repair round would search for a way around it.
                Err(AskError::Refused { sql, refusal }) if refusal.is_policy() => {
                    return Err(AskError::Refused { sql, refusal });
                }
                Err(AskError::Refused { sql, refusal }) => {
                    failed.push(FailedAttempt { sql: sql.clone(), error: repair_feedback(&refusal) });
                    last_error = Some(AskError::Refused { sql, refusal });
                }
                Err(AskError::Execution { sql, source }) => {
                    failed.push(FailedAttempt { sql: sql.clone(), error: source.to_string() });
                    last_error = Some(AskError::Execution { sql, source });
                }
                Err(other) => return Err(other),
            }
        }

        // What a careful analyst would check; one repair round on a finding that names a fix.
        let periods = crate::timeframe::resolve(question, &today);
        let checks = self.config.answer.checks;
        let findings_of = |candidate: &Candidate| -> Vec<Finding> {
            if !checks {
                return Vec::new();
            }
            check(&Subject {
                question,
                sql: &candidate.draft,
                result: &candidate.result,
                catalog: &visible,
                periods: &periods,
            })
        };
        let mut corrected = None;
        if let Some(first) = candidates.first() {
            let found = findings_of(first);
            let repairable: Vec<&str> =
                found.iter().filter(|f| f.repairable()).map(|f| f.message.as_str()).collect();
            if !repairable.is_empty() {
                let message = repairable.join("\n");
                let mut retry = failed.clone();
                retry.push(FailedAttempt {
                    sql: first.draft.clone(),
                    error: format!("It ran, but: {message}"),
                });
                match self.attempt(&context, &build(&retry), &params, &mut timings) {
                    Ok(candidate) => {
                        let left = findings_of(&candidate).iter().filter(|f| f.repairable()).count();
                        if left < repairable.len() {
                            candidates[0] = candidate;
                            failed = retry;
                            corrected = Some(message);
                        }
                    }
                    Err(AskError::Llm(e)) => return Err(AskError::Llm(e)),
                    Err(_) => {}
                }
            }
        }

        // The sampled candidates of the first round; the result most of them agree on wins
        // (among those the checks find nothing to fix on, when there are such).
        let mut votes = None;
        if samples > 1 {
            for (attempt, generation) in sampled {
                match self.consider(&context, attempt, generation, false, &mut timings) {
                    Ok(candidate) => candidates.push(candidate),
                    Err(AskError::Llm(e)) => return Err(AskError::Llm(e)),
                    Err(_) => {}
                }
            }
            let clean: Vec<bool> =
                candidates.iter().map(|c| findings_of(c).iter().all(|f| !f.repairable())).collect();
            if clean.iter().any(|c| *c) && clean.iter().any(|c| !*c) {
                let mut keep = clean.iter();
                candidates.retain(|_| *keep.next().unwrap_or(&true));
            }
            let (winner, tally) = vote(&candidates, samples);
            if let Some(winner) = winner {
                candidates.swap(0, winner);
            }
            votes = Some(tally);
        }
        let Some(chosen) = candidates.into_iter().next() else {
            return Err(match last_error {
                // The model kept reaching for what is not there: say so, not "refused".
                Some(AskError::Refused { sql, refusal }) if reads_missing_tables(&sql, &refusal) => {
                    let offered = retrieved.tables.iter().map(|t| t.name.clone()).collect();
                    AskError::Unanswerable { sql, refusal, offered }
                }
                Some(other) => other,
                None => AskError::InvalidQuestion("no attempt was made".into()),
            });
        };
        // Repairs belong to the greedy answer; a sampled winner had none.
        let repairs = if chosen.greedy { failed } else { Vec::new() };
        let corrected = if chosen.greedy { corrected } else { None };
        let findings = findings_of(&chosen);
        let agreement = votes.as_ref().map(|v: &Votes| (v.agreeing, v.ran));
        let confidence = Confidence::assess(&findings, agreement, corrected.as_deref());
        let draft = chosen.draft.clone();
        let answer = Answer {
            question: question.to_string(),
            sql: chosen.query.sql().to_string(),
            tables: self.table_uses(&catalog, &chosen.query, Some(&retrieved.tables)),
            candidates: retrieved.tables.clone(),
            examples: retrieved.examples.clone(),
            result: chosen.result,
            warnings: chosen.query.warnings().to_vec(),
            governance: chosen.query.governance().clone(),
            repairs: repairs.into_iter().map(|f| RepairNote { sql: f.sql, error: f.error }).collect(),
            reused: None,
            votes,
            findings,
            confidence,
            periods,
            model: llm.model_id().to_string(),
            adapter: llm.adapter().map(str::to_string),
            timings,
        };
        // Kept only while what it was made from is still in force.
        if Arc::ptr_eq(&catalog, &self.catalog()) && Arc::ptr_eq(&history, &self.history()) {
            self.answers.put(cache_key, catalog, history, draft, answer.clone());
        }
        Ok(answer)
    }

    /// A kept answer served again: its SQL validated for this principal and run; None (answer
    /// from scratch) when it no longer validates or its rows changed.
    fn serve_kept(
        &self,
        question: &str,
        kept: answer_cache::Kept,
        catalog: &Catalog,
        policy: &Policy,
        principal: &Principal,
        options: &AskOptions,
    ) -> Option<Answer> {
        let stage = Instant::now();
        let query = validate(&DraftSql::new(&kept.draft), catalog, policy, principal).ok()?;
        if options.tables.as_deref().is_some_and(|picked| outside_picks(&query, picked).is_some()) {
            return None;
        }
        let validate_ms = stage.elapsed().as_millis() as u64;
        let stage = Instant::now();
        let result = self.executor.run_cancellable(&query, &options.cancel).ok()?;
        if result.columns != kept.answer.result.columns || result.rows != kept.answer.result.rows {
            return None;
        }
        let mut answer = kept.answer;
        // The key folds case and spacing: the answer names the question as this caller asked it.
        answer.question = question.to_string();
        answer.sql = query.sql().to_string();
        answer.result = result;
        answer.warnings = query.warnings().to_vec();
        answer.governance = query.governance().clone();
        answer.timings = Timings {
            answer_cached: true,
            validate_ms,
            execute_ms: stage.elapsed().as_millis() as u64,
            ..Timings::default()
        };
        Some(answer)
    }

    /// One generation, validated and run: a candidate answer, or why it is not one.
    fn attempt(
        &self,
        context: &Attempting,
        chat: &crate::llm::ChatPrompt,
        params: &GenerationParams,
        timings: &mut Timings,
    ) -> Result<Candidate, AskError> {
        let (attempt, generation) = self
            .generate(context, chat, std::slice::from_ref(params), timings)?
            .pop()
            .ok_or_else(|| LlmError::Inference("the model returned no generation".into()))?;
        self.consider(context, attempt, generation, params.temperature == 0.0, timings)
    }

    /// One generation per entry of `params` from one prompt, numbered as attempts.
    fn generate(
        &self,
        context: &Attempting,
        chat: &crate::llm::ChatPrompt,
        params: &[GenerationParams],
        timings: &mut Timings,
    ) -> Result<Vec<(usize, Generation)>, AskError> {
        tracing::debug!(system = %chat.system, user = %chat.user, "prompt");
        let first = context.attempts.get() + 1;
        context.attempts.set(first + params.len() - 1);
        (context.progress)(Stage::Generating { attempt: first });
        let stage = Instant::now();
        let writing =
            |piece: &str| (context.progress)(Stage::Writing { attempt: first, text: piece.to_string() });
        let generations = context.llm.generate_batch_streaming(chat, params, &writing)?;
        timings.generate_ms += stage.elapsed().as_millis() as u64;
        for generation in &generations {
            timings.prompt_tokens += generation.prompt_tokens;
            timings.cached_tokens += generation.cached_tokens;
            timings.completion_tokens += generation.completion_tokens;
        }
        Ok((first..).zip(generations).collect())
    }

    /// What the model wrote, validated and run: a candidate answer, or why it is not one.
    fn consider(
        &self,
        context: &Attempting,
        attempt: usize,
        generation: Generation,
        greedy: bool,
        timings: &mut Timings,
    ) -> Result<Candidate, AskError> {
        let draft = prompt::extract_sql(&generation.text);
        (context.progress)(Stage::Validating { attempt });
        let stage = Instant::now();
        let verdict = validate(&draft, context.catalog, context.policy, context.principal);
        timings.validate_ms += stage.elapsed().as_millis() as u64;
        let query =
            verdict.map_err(|refusal| AskError::Refused { sql: draft.text().to_string(), refusal })?;
        if let Some(refusal) = context.picked.and_then(|picked| outside_picks(&query, picked)) {
            return Err(AskError::Refused { sql: draft.text().to_string(), refusal });
        }
        (context.progress)(Stage::Running { attempt });
        let stage = Instant::now();
        let executed = self.executor.run_cancellable(&query, context.cancel);
        timings.execute_ms += stage.elapsed().as_millis() as u64;
        match executed {
            Ok(result) => Ok(Candidate { draft: draft.text().to_string(), query, result, greedy }),
            Err(source) => Err(AskError::Execution { sql: query.sql().to_string(), source }),
        }
    }

    /// The answer from a verified past query — as it is, or as a template with the question's
    /// literals — validated and run for this principal like any SQL; `Err` says why it cannot
    /// serve (the caller then tries the next one, then the model).
    fn reuse(
        &self,
        question: &str,
        mut reuse: Reuse,
        retrieved: &crate::retrieve::Retrieved,
        context: &Reusing,
        mut timings: Timings,
    ) -> Result<Answer, String> {
        let Reusing { catalog, visible, policy, principal, today, cancel } = *context;
        let stage = Instant::now();
        let before = template::Asked { question: &reuse.label, day: reuse.timestamp.get(..10).unwrap_or("") };
        let filled =
            template::instantiate(before, template::Asked { question, day: today }, &reuse.sql, visible)
                .map_err(|m| m.to_string())?;
        reuse.substitutions = filled.substitutions;
        let query =
            validate(&DraftSql::new(&filled.sql), catalog, policy, principal).map_err(|r| r.to_string())?;
        timings.validate_ms = stage.elapsed().as_millis() as u64;
        let stage = Instant::now();
        let result = self.executor.run_cancellable(&query, cancel).map_err(|e| e.to_string())?;
        timings.execute_ms = stage.elapsed().as_millis() as u64;
        let verified_at = reuse.verified_at.as_deref().unwrap_or(&reuse.timestamp);
        let mut evidence = format!(
            "read by the verified query \"{}\" by {}, verified by {} ({})",
            reuse.label,
            reuse.author,
            reuse.verified_by.as_deref().unwrap_or("its query log"),
            verified_at.get(..10).unwrap_or(verified_at)
        );
        for s in &reuse.substitutions {
            evidence.push_str(&format!(", with \"{}\" for \"{}\"", s.now, s.before));
        }
        let mut tables = self.table_uses(catalog, &query, Some(&retrieved.tables));
        for table in &mut tables {
            table.evidence.insert(0, evidence.clone());
            table.evidence.retain(|e| !e.starts_with("chosen by the model"));
        }
        Ok(Answer {
            question: question.to_string(),
            sql: query.sql().to_string(),
            tables,
            candidates: retrieved.tables.clone(),
            examples: Vec::new(),
            result,
            warnings: query.warnings().to_vec(),
            governance: query.governance().clone(),
            repairs: Vec::new(),
            reused: Some(reuse),
            votes: None,
            findings: Vec::new(),
            confidence: Confidence::verified(),
            periods: Vec::new(),
            model: "none".into(),
            adapter: None,
            timings,
        })
    }

    /// Validates and runs SQL written by a user or a tool.
    pub fn run_sql(&self, sql: &str, principal: &Principal) -> Result<SqlAnswer, AskError> {
        self.run_sql_with(sql, principal, &Cancel::new())
    }

    /// Validates and runs SQL written by a user or a tool, until `cancel` is raised.
    pub fn run_sql_with(
        &self,
        sql: &str,
        principal: &Principal,
        cancel: &Cancel,
    ) -> Result<SqlAnswer, AskError> {
        let started = Instant::now();
        let outcome = self
            .authorize(principal, Action::Sql)
            .map_err(AskError::from)
            .and_then(|policy| self.run_sql_inner(sql, principal, policy, cancel));
        let total_ms = started.elapsed().as_millis() as u64;
        let (audit_outcome, rows, detail) = match &outcome {
            Ok(a) => (
                Outcome::Answered,
                Some(a.result.rows.len()),
                serde_json::json!({ "executed": a.sql, "governance": a.governance, "timings": a.timings }),
            ),
            Err(AskError::Refused { refusal, .. }) => {
                (Outcome::Refused, None, serde_json::json!({ "violations": refusal.violations }))
            }
            Err(e @ AskError::Forbidden(_)) => {
                (Outcome::Refused, None, serde_json::json!({ "error": e.to_string() }))
            }
            Err(e) => (Outcome::Failed, None, serde_json::json!({ "error": e.to_string() })),
        };
        self.metadata.audit(&AuditRecord {
            principal: principal.name.clone(),
            role: principal.role.clone(),
            kind: AuditKind::Sql,
            question: None,
            sql: Some(sql.to_string()),
            outcome: audit_outcome,
            row_count: rows,
            duration_ms: total_ms,
            detail,
        })?;
        outcome.map(|mut a| {
            a.timings.total_ms = total_ms;
            a
        })
    }

    fn run_sql_inner(
        &self,
        sql: &str,
        principal: &Principal,
        policy: &Policy,
        cancel: &Cancel,
    ) -> Result<SqlAnswer, AskError> {
        let mut timings = Timings::default();
        crate::text::check("the SQL", sql, MAX_SQL_CHARS).map_err(AskError::InvalidQuestion)?;
        let draft = DraftSql::new(sql);
        let stage = Instant::now();
        let catalog = self.catalog();
        let query = validate(&draft, &catalog, policy, principal)
            .map_err(|refusal| AskError::Refused { sql: sql.to_string(), refusal })?;
        timings.validate_ms = stage.elapsed().as_millis() as u64;
        let stage = Instant::now();
        let result = self
            .executor
            .run_cancellable(&query, cancel)
            .map_err(|source| AskError::Execution { sql: query.sql().to_string(), source })?;
        timings.execute_ms = stage.elapsed().as_millis() as u64;
        Ok(SqlAnswer {
            sql: query.sql().to_string(),
            tables: self.table_uses(&catalog, &query, None),
            result,
            warnings: query.warnings().to_vec(),
            governance: query.governance().clone(),
            timings,
        })
    }
}

/// True when every violation is a table the SQL reads (`FROM x`, `JOIN x`) that does not
/// exist: the model reached for data these tables do not hold (not an alias slip).
fn reads_missing_tables(sql: &str, refusal: &Refusal) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let read_as_table = |name: &str| {
        let name = name.to_lowercase();
        words.windows(2).any(|w| matches!(w[0].as_str(), "from" | "join") && w[1] == name)
    };
    !refusal.violations.is_empty()
        && refusal
            .violations
            .iter()
            .all(|v| v.code == ViolationCode::UnknownTable && read_as_table(&v.fragment))
}

/// What the model is told about a refused attempt: each violation with its fix.
fn repair_feedback(refusal: &Refusal) -> String {
    refusal
        .violations
        .iter()
        .map(
            |v| if v.hint.is_empty() { v.message.clone() } else { format!("{}. Fix: {}", v.message, v.hint) },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// Longest SQL a user or tool may send, in characters (the validator's own byte limit is
/// lower; this only keeps control characters and absurd sizes out of the audit log).
const MAX_SQL_CHARS: usize = 1_000_000;

/// Temperature of the sampled candidates (`[llm] samples` > 1): varied enough to disagree
/// where the model is unsure, low enough to stay on the question.
pub const SAMPLE_TEMPERATURE: f32 = 0.7;

/// The tables an analyst picked, in their order, as candidates: retrieval's evidence where
/// retrieval found the table too. Every name must be a table the role may read.
fn picked_tables(
    picked: &[String],
    retrieved: Vec<TableCandidate>,
    visible: &Catalog,
) -> Result<Vec<TableCandidate>, AskError> {
    if picked.is_empty() {
        return Err(AskError::InvalidQuestion(
            "no tables were picked: pick at least one table, or ask without picking".into(),
        ));
    }
    let mut chosen = Vec::with_capacity(picked.len());
    for name in picked {
        let Some(table) = visible.table(name) else {
            return Err(AskError::InvalidQuestion(format!(
                "'{name}' is not a table you may read; pick from the catalog (GET /api/v1/catalog/tables)"
            )));
        };
        if chosen.iter().any(|c: &TableCandidate| c.name == table.name) {
            continue;
        }
        let mut candidate =
            retrieved.iter().find(|c| c.name == table.name).cloned().unwrap_or_else(|| TableCandidate {
                name: table.name.clone(),
                score: 0.0,
                tier: table.tier,
                owner: table.owner.clone(),
                deprecated_for: table.deprecated.as_ref().map(|d| d.replacement.clone()),
                freshness: table.freshness.clone(),
                late_days: None,
                evidence: Vec::new(),
            });
        candidate.evidence.insert(0, "picked by you".into());
        chosen.push(candidate);
    }
    Ok(chosen)
}

/// Who a verified query is reused for, on which catalog snapshot.
#[derive(Clone, Copy)]
struct Reusing<'a> {
    catalog: &'a Catalog,
    /// What the principal may see: a template's values are spelled as these columns know them.
    visible: &'a Catalog,
    policy: &'a Policy,
    principal: &'a Principal,
    /// The day the question is asked: its relative periods are read against it.
    today: &'a str,
    cancel: &'a Cancel,
}

/// What an attempt needs beside the prompt.
struct Attempting<'a> {
    llm: &'a dyn Llm,
    catalog: &'a Catalog,
    policy: &'a Policy,
    principal: &'a Principal,
    progress: &'a (dyn Fn(Stage) + Sync),
    /// Generations so far, for the progress report.
    attempts: Cell<usize>,
    /// The analyst's picked tables, when there are picks: the SQL may read no other.
    picked: Option<&'a [String]>,
    cancel: &'a Cancel,
}

/// A generated query that passed validation and ran.
struct Candidate {
    /// The SQL as the model wrote it.
    draft: String,
    query: ValidatedQuery,
    result: ResultSet,
    /// Written by greedy decoding (the first candidate), not sampled.
    greedy: bool,
}

/// How the candidates of a sampled answer voted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// The candidate whose result most candidates share (ties: the earliest, so the greedy
/// answer wins a tie), and the tally. Results compare as the evaluation compares them: rows as
/// a multiset of canonical cells.
fn vote(candidates: &[Candidate], generated: usize) -> (Option<usize>, Votes) {
    let mut groups: Vec<(Vec<Vec<String>>, usize, usize)> = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        let key = candidate.result.canonical_rows(false);
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some(group) => group.1 += 1,
            None => groups.push((key, 1, i)),
        }
    }
    let best = groups.iter().max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)));
    let votes = Votes {
        generated,
        ran: candidates.len(),
        agreeing: best.map(|g| g.1).unwrap_or(0),
        distinct_results: groups.len(),
    };
    (best.map(|g| g.2), votes)
}
