//! Configuration: one TOML file (`quarry.toml`) plus `QUARRY_*` environment overrides.
//! Relative paths in the file are resolved against the file's folder.
//!
//! It owns reading and checking settings, not acting on them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::catalog::Source;
use crate::policy::{PolicyError, PolicySection, PolicySet};
use crate::warehouse::PostgresUrl;

/// Where questions are answered from: `[workspace].warehouse`, a SQLite file's path or a
/// `postgres://` URL.
#[derive(Debug, Clone, PartialEq)]
pub enum WarehouseLocation {
    /// A SQLite file (source `main`), with `[[workspace.sources]]` attached beside it.
    Sqlite(PathBuf),
    /// One schema (`[workspace].schema`, default `public`) of a PostgreSQL database.
    Postgres { url: PostgresUrl, schema: String },
}

impl WarehouseLocation {
    /// The SQLite file, when the warehouse is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            WarehouseLocation::Sqlite(path) => Some(path),
            WarehouseLocation::Postgres { .. } => None,
        }
    }

    /// The location from a setting: a `postgres://` URL or a path resolved by `resolve`.
    fn parse(
        text: &str,
        schema: Option<String>,
        resolve: impl Fn(PathBuf) -> PathBuf,
    ) -> Result<WarehouseLocation, String> {
        if PostgresUrl::is_url(text) {
            let url = PostgresUrl::parse(text)?;
            Ok(WarehouseLocation::Postgres { url, schema: schema.unwrap_or_else(|| "public".to_string()) })
        } else {
            Ok(WarehouseLocation::Sqlite(resolve(PathBuf::from(text))))
        }
    }
}

impl std::fmt::Display for WarehouseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WarehouseLocation::Sqlite(path) => write!(f, "{}", path.display()),
            WarehouseLocation::Postgres { url, schema } => write!(f, "{url} (schema {schema})"),
        }
    }
}

/// Where Quarry keeps its own metadata (audit log, catalog revisions, API keys, history,
/// verdicts, threads): the workspace's SQLite file, or the PostgreSQL database of `[metadata]
/// url` (`QUARRY_METADATA_URL`), which several `quarry serve` instances may share.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataLocation {
    Sqlite(PathBuf),
    Postgres(PostgresUrl),
}

impl std::fmt::Display for MetadataLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataLocation::Sqlite(path) => write!(f, "{}", path.display()),
            MetadataLocation::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// What a metadata URL must be, for its errors.
const METADATA_URL_EXPECTED: &str = "a postgres://user:password@host:port/database URL (without it, the \
     metadata stays in the workspace's SQLite file quarry.db)";

/// `[metadata] url` or `QUARRY_METADATA_URL` read; the error never repeats the value, which
/// may hold a password.
fn parse_metadata_url(text: &str) -> Result<PostgresUrl, String> {
    if !PostgresUrl::is_url(text) {
        let what = match text.split_once("://") {
            Some((scheme, _)) => format!("a {scheme}:// URL"),
            None => "not a URL".to_string(),
        };
        return Err(format!("{what}; give {METADATA_URL_EXPECTED}"));
    }
    // PostgresUrl's own error shows the URL with its password hidden.
    PostgresUrl::parse(text)
}

/// Errors in the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML or has unknown or ill-typed settings.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// The `[policy]` section is malformed.
    #[error("{path}: {source}")]
    Policy { path: PathBuf, source: PolicyError },
    /// An environment override has a value of the wrong kind.
    #[error("environment variable {name}={value} is not valid: {expected}")]
    Env { name: &'static str, value: String, expected: &'static str },
}

/// All settings, with paths already resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Folder for what Quarry writes: metadata database, vector index.
    pub workspace: PathBuf,
    /// The warehouse that questions are answered from (source `main`).
    pub warehouse: WarehouseLocation,
    /// More SQLite warehouses, read beside the main one (`[[workspace.sources]]`); their tables
    /// are named without a prefix (names are unique across sources) or as `<source>.<table>`.
    pub sources: Vec<Source>,
    /// Folder of governance files (`*.toml`).
    pub governance: PathBuf,
    /// The analysts' query log (JSONL).
    pub history: PathBuf,
    /// Create the demo warehouse and log when they are missing.
    pub demo: bool,
    /// Folder of model assets (fetched by `scripts/fetch-assets.sh`).
    pub assets: PathBuf,
    /// GGUF file of the LLM.
    pub model: PathBuf,
    /// A GGUF LoRA adapter for the embedded model (`quarry finetune`), if any.
    pub adapter: Option<PathBuf>,
    pub threads: usize,
    pub context_tokens: u32,
    /// Memory the embedded model keeps earlier prompts' keys and values in, MiB
    /// (`[llm] prompt_cache_mb`; 0: only the last prompt's).
    pub prompt_cache_mb: usize,
    /// Tokens the embedded model guesses from the text so far and checks in one batch beside
    /// each token of a greedy answer (`[llm] draft_tokens`; 0: one token per step).
    pub draft_tokens: usize,
    pub max_tokens: usize,
    /// Repair rounds after a refusal or an execution error.
    pub max_repairs: usize,
    /// An OpenAI-compatible server to generate with instead of the embedded model
    /// (`[llm] url`, e.g. `http://127.0.0.1:8081/v1`); its API key comes from the environment
    /// (`QUARRY_LLM_API_KEY`), never from the file.
    pub llm_url: Option<String>,
    /// The model name sent to that server (default: the model file's name).
    pub server_model: Option<String>,
    /// Candidates per question (`[llm] samples`, `QUARRY_SAMPLES`); see `Config::samples`.
    pub llm_samples: Option<usize>,
    /// Generations at once (`[llm] parallel`); see `Config::llm_slots` for the default.
    pub llm_parallel: Option<usize>,
    /// Asks that may wait for the model beyond those generating (`[llm] queue`); the next is
    /// answered 429 with `Retry-After`.
    pub llm_queue: usize,
    /// Longest an ask waits in that line before it gives up (`[llm] queue_wait_s`).
    pub llm_queue_wait: std::time::Duration,
    pub host: String,
    pub port: u16,
    /// Asks per minute one API key may make over HTTP (`[server] asks_per_minute`; 0: no
    /// limit).
    pub asks_per_minute: u32,
    pub row_cap: usize,
    pub timeout_ms: u64,
    /// Most bytes of cell data one result returns (`[limits] max_result_bytes`).
    pub max_result_bytes: usize,
    /// Largest string a query may build or read (`[limits] max_value_bytes`).
    pub max_value_bytes: usize,
    pub max_question_chars: usize,
    pub retrieval_tables: usize,
    /// Tables added to the retrieved ones along join keys: a link table between two of them, or
    /// a table the question names that one of them references (`[retrieval] joined_tables`).
    pub retrieval_joined_tables: usize,
    pub retrieval_examples: usize,
    /// Join keys from history shown in the prompt (0: none).
    pub retrieval_join_hints: usize,
    /// Columns shown per table in the prompt before the rest are listed by name only.
    pub retrieval_columns: usize,
    /// Asset first: a verified past query asking the same question, or the same with other
    /// literals (`template`), is the answer, without the LLM (`[retrieval] reuse`).
    pub retrieval_reuse: bool,
    /// Distinct analysts whose 👍 verify a (question, SQL) pair without a reviewer
    /// (`[review] promote_votes`); 0: only a role with the `verify` action verifies.
    pub promote_votes: usize,
    /// What answering adds beside retrieval (`[answer]`).
    pub answer: AnswerSettings,
    /// Days a conversation thread is kept after its last turn (`[threads] keep_days`).
    pub thread_keep_days: u32,
    /// Earlier turns of a thread shown to the model with a follow-up (`[threads] turns`).
    pub thread_turns: usize,
    /// Roles and what each may read (`[policy.roles.<role>]`); without a `[policy]` section,
    /// the built-in default (`PolicySet::default`).
    pub policy: PolicySet,
    /// The PostgreSQL database holding Quarry's metadata (`[metadata] url`,
    /// `QUARRY_METADATA_URL`); None: the workspace's SQLite file. See `metadata_location`.
    pub metadata_url: Option<PostgresUrl>,
    /// How often `quarry serve` takes in what other instances wrote to the metadata store
    /// (`[metadata] poll_ms`, default 2000, at least 100).
    pub metadata_poll: std::time::Duration,
    /// A Qdrant server's gRPC URL to keep the vector index in (`[vectors] url`,
    /// `QUARRY_VECTORS_URL`); None: Qdrant Edge under the workspace. See `vectors_location`.
    pub vectors_url: Option<String>,
    /// The server's API key, from `QUARRY_VECTORS_API_KEY` only (never from the file).
    pub vectors_api_key: Option<String>,
    /// The server's collections are `<prefix>_tables` and `<prefix>_queries`
    /// (`[vectors] collection_prefix`, `QUARRY_VECTORS_PREFIX`, default `quarry`).
    pub vectors_prefix: String,
    /// Longest one request to the server may take (`[vectors] timeout_ms`, default 10000).
    pub vectors_timeout: std::time::Duration,
}

/// What `[vectors] url` and `QUARRY_VECTORS_URL` expect.
pub const VECTORS_URL_EXPECTED: &str = "a Qdrant server's gRPC URL, e.g. http://127.0.0.1:6334";

/// A `[vectors] url` as given, if it is an http(s) URL with a host.
pub fn parse_vectors_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let rest = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.starts_with(':') => {
            Ok(text.trim_end_matches('/').to_string())
        }
        _ => Err(format!("'{text}' is not {VECTORS_URL_EXPECTED}")),
    }
}

/// Collection prefixes are what Qdrant accepts in a name and reads well: letters, digits, `_`
/// and `-`, at most 48.
fn is_collection_prefix(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 48
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What answering adds beside retrieval and the model (`[answer]`): each is on by default and
/// can be switched off, in the file or by its `QUARRY_ANSWER_*` variable, to measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerSettings {
    /// The question's time phrases as explicit date ranges in the prompt (`dates`).
    pub dates: bool,
    /// The definitions of glossary terms the question names, in the prompt (`glossary`).
    pub glossary: bool,
    /// A result checked the way a careful analyst would, with one repair round on a finding
    /// (`checks`).
    pub checks: bool,
    /// Join keys the warehouse does not declare, inferred from column names and the data, shown
    /// as foreign keys in the prompt (`inferred_joins`).
    pub inferred_joins: bool,
    /// A breakdown the model's SQL leaves unordered comes in time order, or largest measure
    /// first (`sort_groups`).
    pub sort_groups: bool,
    /// SQL whose shape cannot give what the question asks — the top of all groups for the top
    /// of each, a count per group for one number, one column equal to two values, a join
    /// nothing reads, a join on columns its tables lack — rewritten to the shape asked for
    /// (`amend::rewrites`).
    pub rewrites: bool,
}

impl Default for AnswerSettings {
    fn default() -> Self {
        AnswerSettings {
            dates: true,
            glossary: true,
            checks: true,
            inferred_joins: true,
            sort_groups: true,
            rewrites: true,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    workspace: WorkspaceSection,
    #[serde(default)]
    assets: AssetsSection,
    #[serde(default)]
    llm: LlmSection,
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    retrieval: RetrievalSection,
    #[serde(default)]
    review: ReviewSection,
    #[serde(default)]
    answer: AnswerSection,
    #[serde(default)]
    threads: ThreadsSection,
    #[serde(default)]
    metadata: MetadataSection,
    #[serde(default)]
    vectors: VectorsSection,
    policy: Option<PolicySection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorsSection {
    url: Option<String>,
    collection_prefix: Option<String>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataSection {
    url: Option<String>,
    poll_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreadsSection {
    keep_days: Option<u32>,
    turns: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerSection {
    dates: Option<bool>,
    glossary: Option<bool>,
    checks: Option<bool>,
    inferred_joins: Option<bool>,
    sort_groups: Option<bool>,
    rewrites: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewSection {
    promote_votes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceSection {
    dir: Option<PathBuf>,
    warehouse: Option<String>,
    schema: Option<String>,
    #[serde(default)]
    sources: Vec<SourceSection>,
    governance: Option<PathBuf>,
    history: Option<PathBuf>,
    demo: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSection {
    name: String,
    path: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetsSection {
    dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmSection {
    model: Option<PathBuf>,
    threads: Option<usize>,
    context_tokens: Option<u32>,
    prompt_cache_mb: Option<usize>,
    draft_tokens: Option<usize>,
    max_tokens: Option<usize>,
    max_repairs: Option<usize>,
    url: Option<String>,
    server_model: Option<String>,
    samples: Option<usize>,
    adapter: Option<PathBuf>,
    parallel: Option<usize>,
    queue: Option<usize>,
    queue_wait_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    host: Option<String>,
    port: Option<u16>,
    asks_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    row_cap: Option<usize>,
    timeout_ms: Option<u64>,
    max_result_bytes: Option<usize>,
    max_value_bytes: Option<usize>,
    max_question_chars: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrievalSection {
    tables: Option<usize>,
    joined_tables: Option<usize>,
    examples: Option<usize>,
    join_hints: Option<usize>,
    columns: Option<usize>,
    reuse: Option<bool>,
    /// Before templates, a cosine threshold; now only 0 (off) or anything else (on).
    reuse_similarity: Option<f32>,
}

/// Where the Spider evaluation data is by default, relative to the checkout: beside it, in
/// `shared/` (what the CLI's `--spider` and the tests use unless `QUARRY_SPIDER` says otherwise).
pub const DEFAULT_SPIDER_DIR: &str = "../shared/data/spider";

/// Where the Spider evaluation data is: `QUARRY_SPIDER`, else `DEFAULT_SPIDER_DIR` under `base`.
pub fn spider_dir(base: &Path) -> PathBuf {
    match std::env::var_os("QUARRY_SPIDER").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => base.join(DEFAULT_SPIDER_DIR),
    }
}

/// Distinct analysts' 👍 that verify a pair without a reviewer, by default.
pub const DEFAULT_PROMOTE_VOTES: usize = 3;

/// Memory for earlier prompts' keys and values (`[llm] prompt_cache_mb`): about two prompts of
/// the demo's size for the 1.5B model (28 KiB a token). Over the demo's 68 prompts, the best of
/// the last two shares 46% of a new prompt's text, the best of the last eight 52%.
pub const DEFAULT_PROMPT_CACHE_MB: usize = 128;

/// Draft tokens checked beside each decoded token (`[llm] draft_tokens`). On 2 cores a batch of
/// a few tokens costs nearly as many single steps (the 1.5B model, `quarry bench llm`, median
/// decode speed over 10 demo prompts: 13.4 tokens/s without drafts; 14.4 with 1, 13.4 with 2,
/// 12.9 with 4, 9.2 with 8). Off by default: with one, a real-model test's breakdown lost its
/// largest-first order (a batch's sums can flip a near tie), for a gain within the noise.
pub const DEFAULT_DRAFT_TOKENS: usize = 0;

/// The default model file name inside the assets folder.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// The smaller model the repository's adapter was trained for.
pub const SMALL_MODEL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// Where `scripts/fetch-assets.sh` puts model assets by default.
pub fn default_assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUARRY_ASSETS") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("quarry").join("assets")
}

impl Config {
    /// Reads `path` if given, else `./quarry.toml` if present, else uses defaults relative
    /// to the current folder; then applies environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (file, base) = match path {
            Some(p) => (Some(p.to_path_buf()), p.parent().map(Path::to_path_buf).unwrap_or_default()),
            None if Path::new("quarry.toml").is_file() => {
                (Some(PathBuf::from("quarry.toml")), PathBuf::new())
            }
            None => (None, PathBuf::new()),
        };
        let mut parsed = match &file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|source| ConfigError::Io { path: p.clone(), source })?;
                toml::from_str::<File>(&text).map_err(|e| ConfigError::Format {
                    path: p.clone(),
                    message: e.to_string().trim_end().to_string(),
                })?
            }
            None => File::default(),
        };
        let policy = match parsed.policy.take() {
            None => PolicySet::default(),
            Some(section) => PolicySet::from_config(section)
                .map_err(|source| ConfigError::Policy { path: file.clone().unwrap_or_default(), source })?,
        };
        let format =
            |message: String| ConfigError::Format { path: file.clone().unwrap_or_default(), message };
        let mut names = vec!["main".to_string()];
        for source in &parsed.workspace.sources {
            if !Source::is_name(&source.name) {
                return Err(format(format!(
                    "[[workspace.sources]]: '{}' is not a source name: use letters, digits and '_', starting with a letter",
                    source.name
                )));
            }
            if names.iter().any(|n| n.eq_ignore_ascii_case(&source.name))
                || source.name.eq_ignore_ascii_case("temp")
            {
                return Err(format(format!(
                    "[[workspace.sources]]: the name '{}' is taken (main, temp and every other source's name are)",
                    source.name
                )));
            }
            names.push(source.name.clone());
        }
        if parsed.workspace.schema.is_some()
            && !parsed.workspace.warehouse.as_deref().is_some_and(PostgresUrl::is_url)
        {
            return Err(format(
                "[workspace]: schema applies to a PostgreSQL warehouse; set warehouse = \"postgres://…\" or remove schema".to_string(),
            ));
        }
        let location = match parsed.workspace.warehouse.take() {
            None => None,
            Some(text) => {
                let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
                let location = WarehouseLocation::parse(&text, parsed.workspace.schema.take(), resolve)
                    .map_err(|message| format(format!("[workspace].warehouse: {message}")))?;
                if matches!(location, WarehouseLocation::Postgres { .. })
                    && !parsed.workspace.sources.is_empty()
                {
                    return Err(format(
                        "[[workspace.sources]] attaches SQLite files beside a SQLite warehouse; a PostgreSQL warehouse reads one schema: remove the sources".to_string(),
                    ));
                }
                Some(location)
            }
        };
        let metadata_url = match parsed.metadata.url.take().filter(|u| !u.trim().is_empty()) {
            None => None,
            Some(text) => Some(
                parse_metadata_url(&text).map_err(|message| format(format!("[metadata].url: {message}")))?,
            ),
        };
        let vectors_url = match parsed.vectors.url.take().filter(|u| !u.trim().is_empty()) {
            None => None,
            Some(text) => Some(parse_vectors_url(&text).map_err(|m| format(format!("[vectors].url: {m}")))?),
        };
        if let Some(prefix) = &parsed.vectors.collection_prefix {
            if !is_collection_prefix(prefix) {
                return Err(format(format!(
                    "[vectors].collection_prefix: '{prefix}' is not a collection prefix: use letters, digits, '_' and '-' (at most 48)"
                )));
            }
        }
        let mut config = Config::from_file(parsed, &base);
        config.vectors_url = vectors_url;
        if let Some(location) = location {
            config.warehouse = location;
        }
        config.metadata_url = metadata_url;
        config.policy = policy;
        config.apply_env()?;
        Ok(config)
    }

    /// Quarry's own database in the workspace: audit log, catalog revisions, API keys.
    pub fn metadata_db(&self) -> PathBuf {
        self.workspace.join("quarry.db")
    }

    /// Where Quarry's metadata is: the PostgreSQL database of `[metadata] url` when set, else
    /// the workspace's SQLite file (`metadata_db`).
    pub fn metadata_location(&self) -> MetadataLocation {
        match &self.metadata_url {
            Some(url) => MetadataLocation::Postgres(url.clone()),
            None => MetadataLocation::Sqlite(self.metadata_db()),
        }
    }

    /// Where the vector index is: the Qdrant server of `[vectors] url` when set, else Qdrant
    /// Edge in the workspace's `vectors/` folder.
    #[cfg(feature = "runtime")]
    pub fn vectors_location(&self) -> crate::vector_store::VectorsLocation {
        use crate::vector_store::{ServerSettings, VectorsLocation};
        match &self.vectors_url {
            Some(url) => VectorsLocation::Server(ServerSettings {
                url: url.clone(),
                api_key: self.vectors_api_key.clone(),
                prefix: self.vectors_prefix.clone(),
                timeout: self.vectors_timeout,
            }),
            None => VectorsLocation::Embedded(self.workspace.join("vectors")),
        }
    }

    /// The model's name in answers and reports: `[llm] server_model` with a server, else the
    /// model file's name.
    pub fn model_name(&self) -> String {
        match (&self.llm_url, &self.server_model) {
            (Some(_), Some(name)) => name.clone(),
            _ => self.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        }
    }

    /// What one query may cost on the warehouse.
    pub fn execution_limits(&self) -> crate::warehouse::ExecutionLimits {
        crate::warehouse::ExecutionLimits {
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            row_cap: self.row_cap,
            max_result_bytes: self.max_result_bytes,
            max_value_bytes: self.max_value_bytes,
        }
    }

    /// How the embedded model runs: threads, window and prompt cache.
    #[cfg(feature = "runtime")]
    pub fn llama_settings(&self) -> crate::llm::LlamaSettings {
        crate::llm::LlamaSettings {
            threads: self.threads,
            context_tokens: self.context_tokens,
            prompt_cache_mb: self.prompt_cache_mb,
            draft_tokens: self.draft_tokens,
        }
    }

    /// Candidates per question: 1 is one greedy answer; more adds sampled candidates, each
    /// validated and run, and the answer is the result most of them agree on. `[llm] samples`,
    /// else 5 with an LLM server (measured on a GPU: +1.5 to +4.1 points EX on every set, at
    /// about the cost of one) and 1 for the embedded model (each candidate costs CPU time).
    pub fn samples(&self) -> usize {
        self.llm_samples.unwrap_or(if self.llm_url.is_some() { 5 } else { 1 })
    }

    /// Generations at once: `[llm] parallel`, else 1 for the embedded model (it decodes one
    /// request at a time) and 8 for an LLM server.
    pub fn llm_slots(&self) -> usize {
        self.llm_parallel.unwrap_or(if self.llm_url.is_some() { 8 } else { 1 })
    }

    /// Defaults for a workspace folder (used by tests and by `Config::load`).
    pub fn for_workspace(workspace: &Path) -> Config {
        let mut config = Config::from_file(File::default(), Path::new(""));
        config.workspace = workspace.to_path_buf();
        config.warehouse = WarehouseLocation::Sqlite(workspace.join("warehouse.sqlite"));
        config.history = workspace.join("history.jsonl");
        config
    }

    fn from_file(file: File, base: &Path) -> Config {
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let workspace = resolve(file.workspace.dir.unwrap_or_else(|| PathBuf::from("workspace")));
        let assets = file.assets.dir.map(resolve).unwrap_or_else(default_assets_dir);
        let model = file.llm.model.unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL));
        let model = if model.components().count() == 1 { assets.join(model) } else { resolve(model) };
        Config {
            warehouse: WarehouseLocation::Sqlite(workspace.join("warehouse.sqlite")),
            sources: file
                .workspace
                .sources
                .into_iter()
                .map(|s| Source { name: s.name, path: resolve(s.path) })
                .collect(),
            governance: resolve(file.workspace.governance.unwrap_or_else(|| PathBuf::from("schemas/demo"))),
            history: file.workspace.history.map(resolve).unwrap_or_else(|| workspace.join("history.jsonl")),
            demo: file.workspace.demo.unwrap_or(true),
            workspace,
            assets,
            model,
            threads: file.llm.threads.unwrap_or_else(default_threads),
            context_tokens: file.llm.context_tokens.unwrap_or(4096),
            prompt_cache_mb: file.llm.prompt_cache_mb.unwrap_or(DEFAULT_PROMPT_CACHE_MB),
            draft_tokens: file.llm.draft_tokens.unwrap_or(DEFAULT_DRAFT_TOKENS),
            max_tokens: file.llm.max_tokens.unwrap_or(256),
            max_repairs: file.llm.max_repairs.unwrap_or(1),
            adapter: file.llm.adapter.filter(|a| !a.as_os_str().is_empty()).map(resolve),
            llm_url: file.llm.url.filter(|u| !u.trim().is_empty()),
            server_model: file.llm.server_model,
            llm_samples: file.llm.samples.map(|n| n.max(1)),
            llm_parallel: file.llm.parallel.map(|n| n.max(1)),
            llm_queue: file.llm.queue.unwrap_or(8),
            llm_queue_wait: std::time::Duration::from_secs(file.llm.queue_wait_s.unwrap_or(120).max(1)),
            host: file.server.host.unwrap_or_else(|| "127.0.0.1".to_string()),
            port: file.server.port.unwrap_or(8080),
            asks_per_minute: file.server.asks_per_minute.unwrap_or(30),
            row_cap: file.limits.row_cap.unwrap_or(1000),
            timeout_ms: file.limits.timeout_ms.unwrap_or(10_000),
            max_result_bytes: file
                .limits
                .max_result_bytes
                .unwrap_or(crate::warehouse::DEFAULT_MAX_RESULT_BYTES)
                .max(1),
            max_value_bytes: file
                .limits
                .max_value_bytes
                .unwrap_or(crate::warehouse::DEFAULT_MAX_VALUE_BYTES)
                .max(1),
            max_question_chars: file.limits.max_question_chars.unwrap_or(2000),
            retrieval_tables: file.retrieval.tables.unwrap_or(4),
            retrieval_joined_tables: file.retrieval.joined_tables.unwrap_or(2),
            retrieval_examples: file.retrieval.examples.unwrap_or(3),
            retrieval_join_hints: file.retrieval.join_hints.unwrap_or(0),
            retrieval_columns: file.retrieval.columns.unwrap_or(20).max(1),
            retrieval_reuse: file
                .retrieval
                .reuse
                .unwrap_or_else(|| file.retrieval.reuse_similarity.is_none_or(|s| s > 0.0)),
            promote_votes: file.review.promote_votes.unwrap_or(DEFAULT_PROMOTE_VOTES),
            answer: AnswerSettings {
                dates: file.answer.dates.unwrap_or(true),
                glossary: file.answer.glossary.unwrap_or(true),
                checks: file.answer.checks.unwrap_or(true),
                inferred_joins: file.answer.inferred_joins.unwrap_or(true),
                sort_groups: file.answer.sort_groups.unwrap_or(true),
                rewrites: file.answer.rewrites.unwrap_or(true),
            },
            thread_keep_days: file.threads.keep_days.unwrap_or(30).max(1),
            thread_turns: file.threads.turns.unwrap_or(2),
            policy: PolicySet::default(),
            metadata_url: None,
            metadata_poll: std::time::Duration::from_millis(file.metadata.poll_ms.unwrap_or(2000).max(100)),
            vectors_url: None,
            vectors_api_key: None,
            vectors_prefix: file.vectors.collection_prefix.unwrap_or_else(|| "quarry".to_string()),
            vectors_timeout: std::time::Duration::from_millis(
                file.vectors.timeout_ms.unwrap_or(10_000).max(100),
            ),
        }
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        fn var(name: &'static str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        }
        fn number<T: std::str::FromStr>(
            name: &'static str,
            expected: &'static str,
        ) -> Result<Option<T>, ConfigError> {
            var(name)
                .map(|v| v.parse::<T>().map_err(|_| ConfigError::Env { name, value: v, expected }))
                .transpose()
        }
        if let Some(v) = var("QUARRY_WORKSPACE") {
            let workspace = PathBuf::from(v);
            self.warehouse = WarehouseLocation::Sqlite(workspace.join("warehouse.sqlite"));
            self.history = workspace.join("history.jsonl");
            self.workspace = workspace;
        }
        if let Some(v) = var("QUARRY_WAREHOUSE") {
            let schema = match &self.warehouse {
                WarehouseLocation::Postgres { schema, .. } => Some(schema.clone()),
                WarehouseLocation::Sqlite(_) => None,
            };
            self.warehouse = WarehouseLocation::parse(&v, schema, |p| p).map_err(|_| ConfigError::Env {
                name: "QUARRY_WAREHOUSE",
                value: v.clone(),
                expected: "a SQLite file's path or a postgres://user:password@host:port/database URL",
            })?;
        }
        if let Some(v) = var("QUARRY_METADATA_URL") {
            self.set_metadata_url_from_env(&v)?;
        }
        if let Some(v) = var("QUARRY_VECTORS_URL") {
            self.vectors_url = Some(parse_vectors_url(&v).map_err(|_| ConfigError::Env {
                name: "QUARRY_VECTORS_URL",
                value: v.clone(),
                expected: VECTORS_URL_EXPECTED,
            })?);
        }
        if let Some(v) = var("QUARRY_VECTORS_API_KEY") {
            self.vectors_api_key = Some(v);
        }
        if let Some(v) = var("QUARRY_VECTORS_PREFIX") {
            if !is_collection_prefix(&v) {
                return Err(ConfigError::Env {
                    name: "QUARRY_VECTORS_PREFIX",
                    value: v,
                    expected: "letters, digits, '_' and '-' (at most 48)",
                });
            }
            self.vectors_prefix = v;
        }
        if let Some(v) = var("QUARRY_GOVERNANCE") {
            self.governance = PathBuf::from(v);
        }
        if let Some(v) = var("QUARRY_HISTORY") {
            self.history = PathBuf::from(v);
        }
        if let Some(v) = var("QUARRY_MODEL") {
            // A bare file name is looked up in the assets folder, as in the file.
            let model = PathBuf::from(v);
            self.model = if model.components().count() == 1 { self.assets.join(model) } else { model };
        }
        if let Some(v) = var("QUARRY_ADAPTER") {
            self.adapter = (v != "none").then(|| PathBuf::from(v));
        }
        if let Some(v) = var("QUARRY_LLM_URL") {
            self.llm_url = Some(v);
        }
        if let Some(n) = number("QUARRY_THREADS", "a number of threads, e.g. 2")? {
            self.threads = n;
        }
        if let Some(n) = number("QUARRY_PROMPT_CACHE_MB", "a number of MiB, e.g. 128 (0: off)")? {
            self.prompt_cache_mb = n;
        }
        if let Some(n) = number("QUARRY_DRAFT_TOKENS", "a number of tokens, e.g. 4 (0: off)")? {
            self.draft_tokens = n;
        }
        if let Some(n) = number("QUARRY_PORT", "a TCP port number, e.g. 8080")? {
            self.port = n;
        }
        if let Some(v) = var("QUARRY_HOST") {
            self.host = v;
        }
        let switch = |name: &'static str| number::<bool>(name, "true or false");
        if let Some(on) = switch("QUARRY_ANSWER_DATES")? {
            self.answer.dates = on;
        }
        if let Some(on) = switch("QUARRY_ANSWER_GLOSSARY")? {
            self.answer.glossary = on;
        }
        if let Some(on) = switch("QUARRY_ANSWER_CHECKS")? {
            self.answer.checks = on;
        }
        if let Some(on) = switch("QUARRY_ANSWER_SORT_GROUPS")? {
            self.answer.sort_groups = on;
        }
        if let Some(on) = switch("QUARRY_ANSWER_REWRITES")? {
            self.answer.rewrites = on;
        }
        if let Some(on) = switch("QUARRY_ANSWER_INFERRED_JOINS")? {
            self.answer.inferred_joins = on;
        }
        if let Some(n) = number::<usize>("QUARRY_JOINED_TABLES", "a number of tables, e.g. 2")? {
            self.retrieval_joined_tables = n;
        }
        if let Some(n) = number::<usize>("QUARRY_SAMPLES", "a number of candidates, e.g. 1")? {
            self.llm_samples = Some(n.max(1));
        }
        Ok(())
    }
}

/// A setting's value as an error may show it: a URL with its password hidden, or only its
/// scheme when it does not parse.
fn redacted(text: &str) -> String {
    match PostgresUrl::parse(text) {
        Ok(url) => url.to_string(),
        Err(_) => match text.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…"),
            None => text.to_string(),
        },
    }
}

impl Config {
    /// `QUARRY_METADATA_URL=value`, over `[metadata] url`. The value may hold a password: the
    /// error shows it with the password hidden.
    fn set_metadata_url_from_env(&mut self, value: &str) -> Result<(), ConfigError> {
        let url = parse_metadata_url(value).map_err(|_| ConfigError::Env {
            name: "QUARRY_METADATA_URL",
            value: redacted(value),
            expected: METADATA_URL_EXPECTED,
        })?;
        self.metadata_url = Some(url);
        Ok(())
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().map_err(|source| ConfigError::Io { path: PathBuf::new(), source })?;
        let path = dir.path().join("quarry.toml");
        std::fs::write(&path, text).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        Config::load(Some(&path))
    }

    #[test]
    fn sources_are_resolved_and_their_names_checked() {
        let config = load("[[workspace.sources]]\nname = \"finance\"\npath = \"data/finance.sqlite\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.sources.len(), 1);
        assert!(
            config.sources[0].path.ends_with("data/finance.sqlite") && config.sources[0].path.is_absolute()
        );
        for (text, needle) in [
            ("[[workspace.sources]]\nname = \"main\"\npath = \"x\"\n", "is taken"),
            ("[[workspace.sources]]\nname = \"a\"\npath = \"x\"\n[[workspace.sources]]\nname = \"A\"\npath = \"y\"\n", "is taken"),
            ("[[workspace.sources]]\nname = \"fin ance\"\npath = \"x\"\n", "is not a source name"),
            ("[[workspace.sources]]\nname = \"a\"\n", "missing field `path`"),
        ] {
            let message = load(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(needle), "{text}: {message}");
        }
    }

    #[test]
    fn the_warehouse_is_a_sqlite_path_or_a_postgres_url() {
        let config = load("[workspace]\nwarehouse = \"data/w.sqlite\"\n").unwrap_or_else(|e| panic!("{e}"));
        let path = config.warehouse.sqlite_path().unwrap_or_else(|| panic!("a path"));
        assert!(path.is_absolute() && path.ends_with("data/w.sqlite"));
        let config =
            load("[workspace]\nwarehouse = \"postgres://reader:pw@db:5432/shop\"\nschema = \"sales\"\n")
                .unwrap_or_else(|e| panic!("{e}"));
        match &config.warehouse {
            WarehouseLocation::Postgres { url, schema } => {
                assert_eq!(schema, "sales");
                assert_eq!(url.to_string(), "postgres://reader:***@db:5432/shop");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config.warehouse.to_string(), "postgres://reader:***@db:5432/shop (schema sales)");
        for (text, needle) in [
            ("[workspace]\nschema = \"sales\"\n", "schema applies to a PostgreSQL warehouse"),
            (
                "[workspace]\nwarehouse = \"postgres://db/shop\"\n[[workspace.sources]]\nname = \"a\"\npath = \"x\"\n",
                "remove the sources",
            ),
            ("[workspace]\nwarehouse = \"postgres://db:notaport/shop\"\n", "[workspace].warehouse"),
        ] {
            let message = load(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(needle), "{text}: {message}");
        }
    }

    #[test]
    fn the_metadata_is_the_workspace_file_unless_a_postgres_url_is_given() {
        let config = load("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.metadata_location(), MetadataLocation::Sqlite(config.workspace.join("quarry.db")));
        let config = load("[metadata]\nurl = \"postgres://quarry:s3cret@meta:5433/quarry_meta\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let MetadataLocation::Postgres(url) = config.metadata_location() else {
            panic!("{:?}", config.metadata_location())
        };
        assert_eq!(url.to_string(), "postgres://quarry:***@meta:5433/quarry_meta");
        assert_eq!(config.metadata_location().to_string(), "postgres://quarry:***@meta:5433/quarry_meta");
        assert!(!format!("{config:?}").contains("s3cret"), "Debug hides the password");
        assert_eq!(
            load("[metadata]\nurl = \"\"\n").map(|c| c.metadata_url).unwrap_or_else(|e| panic!("{e}")),
            None,
            "an empty url keeps the SQLite file"
        );
        for (text, needles) in [
            (
                "[metadata]\nurl = \"mysql://quarry:s3cret@meta/quarry\"\n",
                &["[metadata].url: a mysql:// URL", "postgres://user:password@host:port/database"][..],
            ),
            ("[metadata]\nurl = \"workspace/meta.db\"\n", &["[metadata].url: not a URL", "quarry.db"][..]),
            ("[metadata]\nurl = \"postgres://quarry:s3cret@meta:port/db\"\n", &["[metadata].url"][..]),
            ("[metadata]\npath = \"x\"\n", &["unknown field `path`"][..]),
        ] {
            let message = load(text).err().map(|e| e.to_string()).unwrap_or_default();
            for needle in needles {
                assert!(message.contains(needle), "{text}: {message}");
            }
            assert!(!message.contains("s3cret"), "the password is never shown: {message}");
        }
    }

    #[test]
    fn the_metadata_url_from_the_environment_wins_and_hides_its_password() {
        let mut config =
            load("[metadata]\nurl = \"postgres://a:pw@file-host/db\"\n").unwrap_or_else(|e| panic!("{e}"));
        config
            .set_metadata_url_from_env("postgresql://b:envpw@env-host:6543/meta")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.metadata_location().to_string(), "postgresql://b:***@env-host:6543/meta");
        for value in
            ["mysql://b:envpw@env-host/meta", "postgres://b:envpw@env-host:notaport/meta", "quarry.db"]
        {
            let message =
                config.set_metadata_url_from_env(value).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains("QUARRY_METADATA_URL="), "{value}: {message}");
            assert!(message.contains("postgres://user:password@host:port/database"), "{value}: {message}");
            assert!(!message.contains("envpw"), "the password is never shown: {message}");
        }
        assert_eq!(
            config.metadata_location().to_string(),
            "postgresql://b:***@env-host:6543/meta",
            "unchanged"
        );
    }

    #[test]
    fn reuse_is_on_by_default_and_the_old_threshold_key_still_switches_it() {
        let reuse = |text: &str| load(text).map(|c| c.retrieval_reuse).unwrap_or_else(|e| panic!("{e}"));
        assert!(reuse(""));
        assert!(!reuse("[retrieval]\nreuse = false\n"));
        assert!(!reuse("[retrieval]\nreuse_similarity = 0\n"));
        assert!(reuse("[retrieval]\nreuse_similarity = 0.9\n"));
    }

    #[test]
    fn a_server_gets_eight_slots_and_five_candidates_the_embedded_model_one_of_each() {
        let config = load("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((config.llm_queue, config.llm_queue_wait.as_secs()), (8, 120));
        let slots = |url: Option<&str>, parallel: Option<usize>| {
            let mut config = config.clone();
            config.llm_url = url.map(str::to_string);
            config.llm_parallel = parallel;
            config.llm_slots()
        };
        assert_eq!(slots(None, None), 1);
        assert_eq!(slots(Some("http://127.0.0.1:8081/v1"), None), 8);
        assert_eq!(slots(Some("http://127.0.0.1:8081/v1"), Some(2)), 2);
        let samples = |url: Option<&str>, set: Option<usize>| {
            let mut config = config.clone();
            config.llm_url = url.map(str::to_string);
            config.llm_samples = set;
            config.samples()
        };
        assert_eq!((samples(None, None), samples(Some("http://x/v1"), None)), (1, 5));
        assert_eq!(samples(Some("http://x/v1"), Some(1)), 1);
        assert_eq!(
            (config.prompt_cache_mb, config.draft_tokens),
            (DEFAULT_PROMPT_CACHE_MB, DEFAULT_DRAFT_TOKENS)
        );
        let config =
            load("[llm]\nparallel = 0\nqueue = 0\nqueue_wait_s = 5\nprompt_cache_mb = 0\ndraft_tokens = 3\n")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((config.llm_parallel, config.llm_queue, config.llm_queue_wait.as_secs()), (Some(1), 0, 5));
        assert_eq!((config.prompt_cache_mb, config.draft_tokens), (0, 3));
    }

    #[test]
    fn the_vector_index_is_embedded_unless_a_qdrant_server_is_named() {
        let config = load("").unwrap_or_else(|e| panic!("{e}"));
        match config.vectors_location() {
            crate::vector_store::VectorsLocation::Embedded(root) => {
                assert!(root.ends_with("workspace/vectors"))
            }
            other => panic!("embedded by default, got {other:?}"),
        }
        let config = load("[vectors]\nurl = \"http://10.0.0.5:6334/\"\ncollection_prefix = \"sales-eu\"\ntimeout_ms = 2500\n")
            .unwrap_or_else(|e| panic!("{e}"));
        match config.vectors_location() {
            crate::vector_store::VectorsLocation::Server(server) => {
                assert_eq!(
                    (server.url.as_str(), server.prefix.as_str()),
                    ("http://10.0.0.5:6334", "sales-eu")
                );
                assert_eq!(server.timeout.as_millis(), 2500);
            }
            other => panic!("a server, got {other:?}"),
        }
        for (text, needle) in [
            ("[vectors]\nurl = \"10.0.0.5:6334\"\n", "is not a Qdrant server's gRPC URL"),
            ("[vectors]\nurl = \"http://\"\n", "is not a Qdrant server's gRPC URL"),
            ("[vectors]\ncollection_prefix = \"a b\"\n", "is not a collection prefix"),
            ("[vectors]\napi_key = \"k\"\n", "unknown field `api_key`"),
        ] {
            let message = load(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(needle), "{text}: {message}");
        }
    }
}
