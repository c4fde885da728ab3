//! The command line: the arguments (`Cli`), and `run`, which opens what a command needs and
//! hands it to the file of its family: `answer` (ask, sql), `eval`, `bench`, `admin` (keys,
//! demo, ingest, audit, fine-tuning export, catalog, index) and `serve`.

mod admin;
mod answer;
mod bench;
mod eval;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use quarry::config::Config;
use quarry::pipeline::{load_default_embedder, load_default_llm, Principal, Quarry};

#[derive(Parser)]
#[command(name = "quarry", version, about = "A governed text-to-SQL agent")]
pub struct Cli {
    /// Config file (default: ./quarry.toml when present).
    #[arg(long, global = true, env = "QUARRY_CONFIG")]
    config: Option<PathBuf>,
    /// Role whose policy governs `ask` and `sql` (default: analyst, the local principal's).
    #[arg(long, global = true)]
    role: Option<String>,
    /// Attribute of the principal that row filters read, as key=value; repeatable
    /// (e.g. --attr country=DE).
    #[arg(long = "attr", global = true, value_name = "KEY=VALUE", value_parser = parse_attribute)]
    attributes: Vec<(String, String)>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web page and the HTTP API.
    Serve {
        /// Port to listen on (default from config: 8080).
        #[arg(long)]
        port: Option<u16>,
        /// Address to listen on (default from config: 127.0.0.1).
        #[arg(long)]
        host: Option<String>,
    },
    /// Serve MCP on stdin/stdout for desktop clients, as the principal of the API key in
    /// QUARRY_API_KEY (the same tools as the server's /mcp).
    Mcp,
    /// Answer a question in plain language.
    Ask {
        question: String,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
        /// Candidates to generate and vote between (default `[llm] samples`); when they
        /// disagree, the other readings are printed with their SQL.
        #[arg(long)]
        samples: Option<usize>,
    },
    /// Validate and run SQL under governance (no LLM).
    Sql {
        sql: String,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// (Re)create the demo warehouse and its query log in the workspace.
    Demo {
        /// Seed of the generator.
        #[arg(long, default_value_t = quarry::demo::DEFAULT_SEED)]
        seed: u64,
        /// Also copy the demo warehouse into this PostgreSQL database (a role that may create
        /// tables; point [workspace].warehouse at it with a role that may only read).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// The PostgreSQL schema to copy it into.
        #[arg(long, default_value = "public", requires = "postgres")]
        schema: String,
    },
    /// Build the vector index if the catalog or history changed, and report; `quarry index
    /// migrate` copies it to another store.
    Index {
        #[command(subcommand)]
        command: Option<IndexCommand>,
    },
    /// Ask an evaluation set's questions and score the answers against their gold SQL: the
    /// demo's (`--data demo`), Spider dev, or any set in Spider's layout (defog_dev).
    Eval(EvalArgs),
    /// Manage API keys (HTTP callers authenticate with `Authorization: Bearer <key>`).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Add a query log to the history (JSONL, or CSV with a header row): new entries are
    /// validated, described, stored and indexed; known ones are skipped.
    Ingest {
        #[command(subcommand)]
        command: IngestCommand,
    },
    /// Benchmarks (measurements, not tests).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// The catalog: check the governance files, export the catalog in force as files.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Fine-tune the local model on the organisation's own questions and SQL.
    #[command(long_about = FINETUNE_GUIDE)]
    Finetune {
        #[command(subcommand)]
        command: FinetuneCommand,
    },
}

/// The whole loop, for a user with a GPU (`quarry finetune --help`).
const FINETUNE_GUIDE: &str = "Fine-tune the local model on the organisation's own questions and SQL.

The loop, for a user with one GPU (any CUDA machine with Python 3.10+):

  1. Export training data here, in exactly the prompt format the runtime uses:
       quarry finetune export --out finetune/
     (Spider train from --spider and this workspace's history: verified pairs and past
     queries with their question or intent; evaluation questions and their SQL never go in.)
  2. Copy finetune/ , training/ and the model file ([llm] model) to the GPU machine and train:
       pip install -r training/requirements.txt
       python3 training/train_lora.py --base-gguf <model>.gguf --train finetune/train.jsonl \\
         --heldout finetune/heldout.jsonl --out adapter/
     It writes adapter/adapter.gguf (a GGUF LoRA file) and adapter/adapter.json (base model and
     data hashes, hyper-parameters, held-out scores base vs adapter).
  3. Copy adapter/ back and use it: [llm] adapter = \"adapter/adapter.gguf\" in quarry.toml
     (or QUARRY_ADAPTER). Answers name the adapter in use (`adapter`).
  4. Measure before relying on it:
       quarry eval --mode cold --out base.jsonl  (QUARRY_ADAPTER=none)
       quarry eval --mode cold --out tuned.jsonl
";

#[derive(Subcommand)]
enum FinetuneCommand {
    /// Write training data (train.jsonl, heldout.jsonl, export.json) for training/train_lora.py.
    Export {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Spider folder with train_spider_min.json and tables.json (dev.json: kept out).
        #[arg(long, env = "QUARRY_SPIDER", default_value = quarry::config::DEFAULT_SPIDER_DIR)]
        spider: PathBuf,
        /// Leave out Spider train.
        #[arg(long)]
        no_spider: bool,
        /// Leave out this workspace's history (and its synthetic pairs).
        #[arg(long)]
        no_history: bool,
        /// Synthetic pairs proposed per table of the workspace's catalog, each kept only when
        /// it validates and runs with a non-trivial result (0: none).
        #[arg(long, default_value_t = 40)]
        synthetic: usize,
        /// At most this many Spider train questions (a seeded sample).
        #[arg(long)]
        limit: Option<usize>,
        /// Percent of databases (and history questions) held out for evaluation.
        #[arg(long, default_value_t = 5)]
        heldout_percent: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// More evaluation sets (folders with a dev.json) whose questions and gold SQL must
        /// never be exported. Spider's dev set and every evaluation set beside it (defog_dev)
        /// are kept out already.
        #[arg(long)]
        keep_out: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a principal; the key is printed once. Takes the global --role (required)
    /// and --attr flags, e.g. `quarry keys create --name ana --role regional_analyst --attr country=DE`.
    Create {
        /// The principal's name, as it appears in the audit log.
        #[arg(long)]
        name: String,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke the active key of a principal.
    Revoke { name: String },
    /// (Re)create one demo key per role and print them.
    Demo,
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Copy the vector index (every point's id, vector and payload) from the store in use to
    /// another: a Qdrant server, or back to the embedded store. It checks each collection's
    /// count, and leaves the source as it is; then set (or remove) `[vectors] url` to switch.
    Migrate {
        /// A Qdrant server's gRPC URL (e.g. http://127.0.0.1:6334; its key from
        /// QUARRY_VECTORS_API_KEY, collections named by `[vectors] collection_prefix`), or
        /// `embedded` for Qdrant Edge in the workspace.
        #[arg(long, value_name = "URL|embedded")]
        to: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Table recall@k, database routing and latency of retrieval on Spider questions.
    Retrieval {
        /// Spider folder (dev.json, tables.json).
        #[arg(long, env = "QUARRY_SPIDER", default_value = quarry::config::DEFAULT_SPIDER_DIR)]
        data: PathBuf,
        /// The questions asked, a file of the Spider folder: dev.json (the evaluation set), or
        /// train_spider_min.json to tune retrieval on questions no evaluation asks.
        #[arg(long, default_value = "dev.json")]
        questions: String,
        /// Search one catalog of all databases (else each question's own database).
        #[arg(long)]
        merged: bool,
        /// Use other dev questions of the same database (never one with the same gold SQL)
        /// as the query history.
        #[arg(long)]
        history: bool,
        /// Ask a seeded sample of this many questions (default: all).
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Also measure on this Qdrant server (its gRPC URL, e.g. http://127.0.0.1:6334; the
        /// key from QUARRY_VECTORS_API_KEY), in the same run after Qdrant Edge. Its collections
        /// are prefixed `quarry_bench` and removed afterwards.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Print progress as JSON lines and the report as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Insert speed and search latency of the vector store with many synthetic past-query
    /// points: Qdrant Edge, or a Qdrant server with --server.
    Vectors {
        #[arg(long, default_value_t = 100_000)]
        points: usize,
        #[arg(long, default_value_t = 200)]
        searches: usize,
        /// Measure this Qdrant server (gRPC URL) instead of Qdrant Edge; its collections are
        /// prefixed `quarry_bench` and removed afterwards.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The demo questions answered end to end through the configured model: time per stage
    /// (p50/p95), prompt tokens prefilled and read from cache, peak memory; the first pass
    /// cold, the next ones asking the same questions again.
    Ask {
        /// How many of the demo questions (in file order).
        #[arg(long, default_value_t = 10)]
        questions: usize,
        /// Passes over those questions (the second and later are repeats).
        #[arg(long, default_value_t = 2)]
        passes: usize,
        #[arg(long)]
        json: bool,
    },
    /// Prefill and decode speed of the embedded model on the demo questions' prompts, without
    /// and with a fine-tuned adapter.
    Llm {
        /// The adapter to compare with (default: [llm] adapter).
        #[arg(long)]
        adapter: Option<PathBuf>,
        /// How many of the demo questions (their prompts) to generate for.
        #[arg(long, default_value_t = 10)]
        questions: usize,
        /// Also time N candidates decoded together (greedy + N-1 sampled) against one greedy
        /// answer on the same prompts: what `[llm] samples = N` costs.
        #[arg(long)]
        candidates: Option<usize>,
        /// Passes over those questions.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// Load on a running `quarry serve` (on this machine only): N connections posting SQL to
    /// /api/v1/sql for a while; throughput, p50/p99 latency, errors, the server's peak memory.
    Sql {
        /// The server, e.g. http://127.0.0.1:8080 (loopback only).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API key of a role that may run SQL (`quarry keys create`).
        #[arg(long, env = "QUARRY_API_KEY")]
        key: String,
        /// Connections, each sending one request after another.
        #[arg(long, default_value_t = 200)]
        connections: usize,
        /// How long, in seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The statements to send in turn (default: four demo queries).
        #[arg(long = "query")]
        queries: Vec<String>,
        /// The server's process id, to report its peak resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Load on a running `quarry serve` (on this machine only): N clients asking questions on
    /// /api/v1/ask for a while, each waiting out a 429's Retry-After as a client should;
    /// answered, turned away (429), errors, latency, the server's peak memory.
    AskLoad {
        /// The server, e.g. http://127.0.0.1:8080 (loopback only).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API key of a role that may ask (`quarry keys create`).
        #[arg(long, env = "QUARRY_API_KEY")]
        key: String,
        /// Clients, each asking one question after another.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// How long, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// How long a client waits for one answer before it gives up and goes away.
        #[arg(long, default_value_t = 120)]
        timeout_seconds: u64,
        /// The questions to ask in turn (default: the demo's).
        #[arg(long = "question")]
        questions: Vec<String>,
        /// The server's process id, to report its peak resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// History ingestion throughput on copies of the demo query log.
    Ingest {
        #[arg(long, default_value_t = 20)]
        copies: usize,
        /// Also ingest this many entries with intents written by the local model.
        #[arg(long)]
        llm: Option<usize>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum IngestCommand {
    /// Ingest a query log file.
    History {
        file: PathBuf,
        /// jsonl or csv (default: from the file name; .csv is CSV).
        #[arg(long)]
        format: Option<String>,
        /// Have the local model write each new query's intent text (slower; default: built
        /// from the query's structure).
        #[arg(long)]
        llm_intents: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print audit records as JSON lines, newest first.
    Export {
        #[arg(long)]
        principal: Option<String>,
        /// ask, sql or edit.
        #[arg(long)]
        kind: Option<String>,
        /// From this date or timestamp (inclusive), e.g. 2026-11-01.
        #[arg(long)]
        since: Option<String>,
        /// Before this date or timestamp.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 100_000)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Load the governance files and steward edits, check them against the warehouse and the
    /// role policies, and report conflicts.
    Check,
    /// Write the catalog in force (files plus steward edits) as governance files to DIR.
    Export {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// `quarry eval`'s arguments.
#[derive(clap::Args)]
struct EvalArgs {
    /// The demo workspace's questions with hand-written gold SQL (same as `--data demo`).
    #[arg(long, conflicts_with_all = ["data", "mode", "limit", "seed", "out", "resume", "samples", "jobs", "category"])]
    demo: bool,
    /// The demo's follow-up pairs: each follow-up asked after the model's own answer to its
    /// first question, as in a thread, and scored against its gold SQL.
    #[arg(long, conflicts_with_all = ["demo", "data", "mode", "limit", "seed", "out", "resume", "jobs", "category"])]
    followups: bool,
    /// `demo` (this workspace's demo questions), or a folder in Spider's layout: dev.json,
    /// tables.json, database/<db>/<db>.sqlite (Spider dev, or defog_dev beside it).
    #[arg(long, env = "QUARRY_SPIDER", default_value = quarry::config::DEFAULT_SPIDER_DIR)]
    data: PathBuf,
    /// cold (catalog only), warm (other questions of the database as history, never one
    /// with the same gold SQL), enterprise (the database found by retrieval across the
    /// merged catalog of all Spider databases) or baseline (the whole schema in one plain
    /// prompt).
    #[arg(long, default_value = "cold")]
    mode: quarry::eval::spider::Mode,
    /// Ask a seeded sample of this many questions (default: every executable one).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Per-question results (JSONL); the summary goes beside it as .md and .json
    /// (default: eval-<mode>.jsonl in the workspace folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the results already in --out and ask only the remaining questions.
    #[arg(long)]
    resume: bool,
    /// Candidates per question: above 1, sampled candidates are added and the answer is
    /// the result most of them agree on (default: `[llm] samples`, else 5 with an LLM server and
    /// 1 embedded).
    #[arg(long)]
    samples: Option<usize>,
    /// Questions asked at once. With the embedded model each job loads its own copy with
    /// threads/jobs threads; with an LLM server ([llm] url) they share it (the demo's
    /// questions: with a server only).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Only the questions of this category (defog_dev: gen:ratio, gen:date_functions, …).
    #[arg(long)]
    category: Option<String>,
    /// Answer on PostgreSQL: each database is copied into the schema of its name on this
    /// server (tables of the same names there are replaced), as this role (one that may
    /// create schemas), and golds run on the SQLite files.
    #[arg(long, value_name = "URL", requires = "postgres_reader")]
    postgres: Option<String>,
    /// The role Quarry answers as on the PostgreSQL copies: one that may only read (the copy
    /// grants it SELECT on each schema).
    #[arg(long, value_name = "URL", requires = "postgres")]
    postgres_reader: Option<String>,
    /// Print one JSON object per question, then the summary as the last line.
    #[arg(long)]
    json: bool,
}

/// Exit code when the validator refused the query.
const EXIT_REFUSED: u8 = 3;
/// Exit code of `quarry catalog check` when steward edits conflict with the files.
const EXIT_CONFLICTS: u8 = 4;

fn open(config: Config) -> Result<Quarry> {
    let embedder = load_default_embedder(&config).context("loading the embedding model")?;
    let llm = load_default_llm(&config).context("loading the language model")?;
    let workspace = config.workspace.clone();
    Quarry::open(config, embedder, Some(llm)).map_err(|e| held(e.into(), &workspace))
}

/// Opens the workspace for commands that never generate (sql, index): the model is not loaded.
fn open_without_llm(config: Config) -> Result<Quarry> {
    let embedder = load_default_embedder(&config).context("loading the embedding model")?;
    let workspace = config.workspace.clone();
    Quarry::open(config, embedder, None).map_err(|e| held(e.into(), &workspace))
}

/// The error of opening `workspace`; when another process holds its vector index, says which
/// (a running `quarry serve` and where it answers) and what to do instead.
fn held(error: anyhow::Error, workspace: &std::path::Path) -> anyhow::Error {
    use quarry::pipeline::OpenError;
    use quarry::vector_store::VectorStoreError;
    // `OpenError` is transparent: the store's error is not a cause of its own in the chain.
    let in_use = error
        .chain()
        .any(|cause| matches!(cause.downcast_ref(), Some(OpenError::Store(VectorStoreError::InUse { .. }))));
    if !in_use {
        return error.context("opening the workspace");
    }
    let holder = serve::holder(workspace).unwrap_or_else(|| "another Quarry process".into());
    anyhow::anyhow!(
        "the workspace {} is held by {holder}: one process at a time may open it. Use that server's API instead (POST /api/v1/sql or /api/v1/ask with an API key, or its MCP endpoint /mcp), stop it, or set QUARRY_WORKSPACE to another workspace",
        workspace.display()
    )
}

/// The principal of local maintenance commands (the CLI's user is trusted).
fn admin_principal() -> Principal {
    Principal::new(format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "local".into())), "admin")
}

/// A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise.
struct ProgressBar {
    label: &'static str,
    started: std::time::Instant,
    terminal: bool,
    shown: usize,
    /// Shown after the counts, e.g. a running score.
    note: String,
}

impl ProgressBar {
    fn new(label: &'static str) -> ProgressBar {
        use std::io::IsTerminal;
        ProgressBar {
            label,
            started: std::time::Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            shown: 0,
            note: String::new(),
        }
    }

    fn note(&mut self, note: String) {
        self.note = note;
    }

    fn update(&mut self, done: usize, total: usize) {
        let total = total.max(1);
        let percent = done * 100 / total;
        let step = if self.terminal { 1 } else { 10 };
        if percent < self.shown + step && done != total {
            return;
        }
        self.shown = percent;
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let filled = percent / 4;
        let line = format!(
            "{} [{}{}] {done}/{total} ({percent}%) {rate:.2}/s {}",
            self.label,
            "#".repeat(filled),
            " ".repeat(25 - filled),
            self.note
        );
        if self.terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// `key=value` of `--attr`.
fn parse_attribute(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE, e.g. country=DE")),
    }
}

/// The local principal, with the role and attributes given on the command line.
fn principal(cli_role: Option<String>, attributes: Vec<(String, String)>) -> Principal {
    let mut principal = Principal::local();
    if let Some(role) = cli_role {
        principal.name = format!("local-{role}");
        principal.role = role;
    }
    principal.attributes.extend(attributes);
    principal
}

/// Runs the command: each family's file does the work.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Command::Keys { command } = cli.command {
        return admin::keys(&config, command, cli.role, cli.attributes);
    }
    let principal = principal(cli.role, cli.attributes);
    match cli.command {
        Command::Serve { port, host } => {
            config.port = port.unwrap_or(config.port);
            config.host = host.unwrap_or(config.host);
            serve::serve(config)
        }
        Command::Mcp => serve::mcp(config),
        Command::Ask { question, json, samples } => answer::ask(config, &principal, &question, samples, json),
        Command::Sql { sql, json } => answer::sql(config, &principal, &sql, json),
        Command::Demo { seed, postgres, schema } => admin::demo(config, seed, postgres.as_deref(), &schema),
        Command::Keys { .. } => unreachable!("handled above"),
        Command::Bench { command } => bench::bench(config, command),
        Command::Ingest { command } => admin::ingest(config, command),
        Command::Audit { command } => admin::audit(config, command),
        Command::Finetune { command } => admin::finetune(config, command),
        Command::Catalog { command } => admin::catalog(config, command),
        Command::Index { command: None } => admin::index(config),
        Command::Index { command: Some(IndexCommand::Migrate { to }) } => admin::migrate_index(config, &to),
        Command::Eval(args) => eval::eval(config, args),
    }
}
