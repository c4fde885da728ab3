//! `quarry`: the command line. Parses arguments, opens the workspace, calls the library, and
//! turns errors into messages and exit codes (1 = error, 3 = the validator refused).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use quarry::config::Config;
use quarry::execute::ResultSet;
use quarry::history::LogFormat;
use quarry::keys;
use quarry::metadata::{AuditFilter, AuditKind, Metadata, StoredKey};
use quarry::pipeline::{load_catalog, load_default_embedder, load_default_llm, AskError, Principal, Quarry};
use quarry::validate::{Governance, Violation};

#[derive(Parser)]
#[command(name = "quarry", version, about = "A governed text-to-SQL agent")]
struct Cli {
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
    /// Answer a question in plain language.
    Ask {
        question: String,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
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
    },
    /// Build the vector index if the catalog or history changed, and report.
    Index,
    /// Ask an evaluation set's questions and score the answers against their gold SQL: the
    /// demo's (`--data demo`), Spider dev, or any set in Spider's layout (defog_dev).
    Eval {
        /// The demo workspace's questions with hand-written gold SQL (same as `--data demo`).
        #[arg(long, conflicts_with_all = ["data", "mode", "limit", "seed", "out", "resume", "samples", "jobs", "category"])]
        demo: bool,
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
        /// the result most of them agree on (default: [llm] samples).
        #[arg(long)]
        samples: Option<usize>,
        /// Questions asked at once. With the embedded model each job loads its own copy with
        /// threads/jobs threads; with an LLM server ([llm] url) they share it.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Only the questions of this category (defog_dev: gen:ratio, gen:date_functions, …).
        #[arg(long)]
        category: Option<String>,
        /// Print one JSON object per question, then the summary as the last line.
        #[arg(long)]
        json: bool,
    },
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
enum BenchCommand {
    /// Table recall@k and latency of retrieval on Spider dev questions.
    Retrieval {
        /// Spider folder (dev.json, tables.json).
        #[arg(long, env = "QUARRY_SPIDER", default_value = quarry::config::DEFAULT_SPIDER_DIR)]
        data: PathBuf,
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
        /// Print progress as JSON lines and the report as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Search latency of Qdrant Edge with many synthetic past-query points.
    Vectors {
        #[arg(long, default_value_t = 100_000)]
        points: usize,
        #[arg(long, default_value_t = 200)]
        searches: usize,
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

/// Exit code when the validator refused the query.
const EXIT_REFUSED: u8 = 3;
/// Exit code of `quarry catalog check` when steward edits conflict with the files.
const EXIT_CONFLICTS: u8 = 4;

/// `quarry keys ...`: needs only the metadata database.
fn keys(
    config: &Config,
    command: KeysCommand,
    role: Option<String>,
    attributes: Vec<(String, String)>,
) -> Result<ExitCode> {
    let metadata = Metadata::open(&config.metadata_db())?;
    let operator = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "local".into()));
    match command {
        KeysCommand::Create { name } => {
            let role = role.context("give the key's role with --role (e.g. --role analyst)")?;
            let (stored, key) = keys::create(
                &metadata,
                &config.policy,
                &name,
                &role,
                attributes.into_iter().collect(),
                &operator,
            )?;
            eprintln!("created key for {} (role {}); it is shown only now:", stored.name, stored.role);
            println!("{key}");
        }
        KeysCommand::List => {
            for key in metadata.keys()? {
                let attrs: Vec<String> = key.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{:<24} {:<18} {:<12} {:<20} created {} by {}{}",
                    key.name,
                    key.role,
                    format!("{}…", key.prefix),
                    attrs.join(","),
                    key.created_at,
                    key.created_by,
                    key.revoked_at.map(|at| format!(", REVOKED {at}")).unwrap_or_default()
                );
            }
        }
        KeysCommand::Revoke { name } => {
            if !keys::revoke(&metadata, &name, &operator)? {
                anyhow::bail!("no active key is named '{name}'; `quarry keys list` shows them");
            }
            println!("revoked the key of {name}");
        }
        KeysCommand::Demo => print_demo_keys(config, &keys::create_demo_keys(&metadata, &config.policy)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints demo keys and keeps them in `<workspace>/demo-keys.txt` (owner-only) for later.
fn print_demo_keys(config: &Config, created: &[(StoredKey, String)]) -> Result<()> {
    let mut text = String::from("# Demo API keys, one per role (quarry keys demo re-creates them).\n");
    for (stored, key) in created {
        text.push_str(&format!("{:<26} {key}\n", stored.name));
    }
    let path = config.workspace.join("demo-keys.txt");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    println!("{text}(kept in {})", path.display());
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUARRY_LOG")
                .unwrap_or_else(|_| "quarry=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each cause once: most of Quarry's errors already name their source.
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    message
}

fn open(config: Config) -> Result<Quarry> {
    let embedder = load_default_embedder(&config).context("loading the embedding model")?;
    let llm = load_default_llm(&config).context("loading the language model")?;
    Quarry::open(config, embedder, Some(llm)).context("opening the workspace")
}

/// `quarry bench ...`: each prints a human summary, or with --json the report as the last line.
fn bench(config: Config, command: BenchCommand) -> Result<ExitCode> {
    let scratch = std::env::temp_dir().join(format!("quarry-bench-{}", std::process::id()));
    let result = match command {
        BenchCommand::Retrieval { data, merged, history, limit, seed, json } => {
            let embedder = load_default_embedder(&config).context("loading the embedding model")?;
            let options = quarry::bench::RetrievalOptions {
                data,
                merged,
                history,
                limit,
                seed,
                workdir: scratch.join("vectors"),
            };
            let mut bar = ProgressBar::new("retrieving");
            let report = quarry::bench::retrieval(&options, embedder.as_ref(), &mut |done, total, _| {
                bar.update(done, total)
            })?;
            bar.finish();
            print_report(json, &report)
        }
        BenchCommand::Vectors { points, searches, json } => {
            let report = quarry::bench::vectors(&scratch.join("vectors"), 384, points, searches, 7)?;
            print_report(json, &report)
        }
        BenchCommand::Ask { questions, passes, json } => {
            let cases = quarry::eval::parse_cases(quarry::eval::DEMO_QUESTIONS)?;
            let asked: Vec<(String, Option<String>)> =
                cases.into_iter().take(questions).map(|case| (case.question, case.today)).collect();
            let quarry = open(config)?;
            let principal = quarry::pipeline::Principal::local();
            let mut bar = ProgressBar::new("asking");
            let reports =
                quarry::bench::ask_latency(&quarry, &principal, &asked, passes, &mut |_, done, total| {
                    bar.update(done, total)
                });
            bar.finish();
            for report in &reports {
                print_report(json, report)?;
            }
            Ok(())
        }
        BenchCommand::Llm { adapter, questions, candidates, rounds, json } => {
            let embedder = load_default_embedder(&config).context("loading the embedding model")?;
            let quarry = Quarry::open(config.clone(), embedder, None).context("opening the workspace")?;
            let principal = quarry::pipeline::Principal::local();
            let prompts = quarry::eval::parse_cases(quarry::eval::DEMO_QUESTIONS)?
                .iter()
                .take(questions)
                .map(|case| quarry.first_prompt(&case.question, &principal, &Default::default()))
                .collect::<Result<Vec<_>, _>>()?;
            let adapter = adapter.or_else(|| config.adapter.clone());
            let mut runs = vec![("base".to_string(), None)];
            if let Some(adapter) = adapter {
                let name = adapter.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                runs.push((name, Some(adapter)));
            }
            for (name, adapter) in runs {
                let llm = quarry::llm::LlamaCppLlm::load(
                    &config.model,
                    adapter.as_deref(),
                    config.threads,
                    config.context_tokens,
                )
                .with_context(|| format!("loading the model ({name})"))?;
                let report = quarry::bench::llm_speed(&name, &llm, &prompts, config.max_tokens, rounds)?;
                print_report(json, &report)?;
                if let Some(n) = candidates {
                    let report = quarry::bench::candidates_cost(&name, &llm, &prompts, config.max_tokens, n)?;
                    print_report(json, &report)?;
                }
            }
            Ok(())
        }
        BenchCommand::Ingest { copies, llm, json } => {
            let metadata = Metadata::open(&scratch.join("catalog.db"))?;
            let catalog = load_catalog(&config, &metadata).context("loading the catalog")?.catalog;
            let log = quarry::demo::HISTORY_JSONL;
            let report = quarry::bench::ingest(&catalog, log, copies, &scratch.join("ingest"), None)?;
            print_report(json, &report)?;
            if let Some(n) = llm {
                let model = load_default_llm(&config).context("loading the language model")?;
                let report = quarry::bench::ingest(
                    &catalog,
                    log,
                    1,
                    &scratch.join("ingest-llm"),
                    Some((model.as_ref(), n)),
                )?;
                print_report(json, &report)?;
            }
            Ok(())
        }
    };
    let _ = std::fs::remove_dir_all(&scratch);
    result.map(|()| ExitCode::SUCCESS)
}

/// A benchmark report: one JSON line with --json (the last line printed), else pretty JSON.
fn print_report<T: serde::Serialize>(json: bool, report: &T) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
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

fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Command::Keys { command } = cli.command {
        return keys(&config, command, cli.role, cli.attributes);
    }
    let principal = principal(cli.role, cli.attributes);
    match cli.command {
        Command::Serve { port, host } => {
            config.port = port.unwrap_or(config.port);
            config.host = host.unwrap_or(config.host);
            serve(config)
        }
        Command::Ask { question, json } => {
            let quarry = open(config)?;
            match quarry.ask(&question, &principal) {
                Ok(answer) if json => println!("{}", serde_json::to_string_pretty(&answer)?),
                Ok(answer) => {
                    if let Some(r) = &answer.reused {
                        let day = r.timestamp.get(..10).unwrap_or(&r.timestamp);
                        let swapped: String = r
                            .substitutions
                            .iter()
                            .map(|s| format!(", with \"{}\" for \"{}\"", s.now, s.before))
                            .collect();
                        println!(
                            "Answered before by {} on {day}: \"{}\"{swapped} (verified; no model call)\n",
                            r.author, r.label
                        );
                    }
                    println!("{}\n", answer.sql);
                    for t in &answer.tables {
                        let tier = t.tier.map(|n| format!("tier {n}")).unwrap_or_else(|| "no tier".into());
                        let owner = t.owner.as_deref().unwrap_or("no owner");
                        println!("  table {} ({tier}, {owner}): {}", t.name, t.evidence.join("; "));
                    }
                    println!();
                    print_rows(&answer.result);
                    print_governance(&answer.warnings, &answer.governance);
                    let t = &answer.timings;
                    println!(
                        "\nembed {} ms, retrieve {} ms, prompt {} tokens, generate {} ms ({} tokens), validate {} ms, execute {} ms, total {} ms{}",
                        t.embed_ms, t.retrieve_ms, t.prompt_tokens, t.generate_ms, t.completion_tokens,
                        t.validate_ms, t.execute_ms, t.total_ms,
                        if answer.repairs.is_empty() { String::new() } else { format!(", {} repair(s)", answer.repairs.len()) }
                    );
                }
                Err(e) => return Ok(report_failure(e)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sql { sql, json } => {
            let quarry = open_without_llm(config)?;
            match quarry.run_sql(&sql, &principal) {
                Ok(answer) if json => println!("{}", serde_json::to_string_pretty(&answer)?),
                Ok(answer) => {
                    print_rows(&answer.result);
                    print_governance(&answer.warnings, &answer.governance);
                }
                Err(e) => return Ok(report_failure(e)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { seed } => {
            let summary = quarry::demo::create(&config.warehouse, &config.history, seed)?;
            println!(
                "demo warehouse {}: {} tables, {} rows; query log {}: {} queries",
                config.warehouse.display(),
                summary.tables,
                summary.rows,
                config.history.display(),
                summary.history_queries
            );
            let metadata = Metadata::open(&config.metadata_db())?;
            print_demo_keys(&config, &keys::create_demo_keys(&metadata, &config.policy)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { .. } => unreachable!("handled above"),
        Command::Bench { command } => bench(config, command),
        Command::Ingest { command: IngestCommand::History { file, format, llm_intents, json } } => {
            let format = match format.as_deref() {
                None => LogFormat::of_path(&file),
                Some("jsonl") => LogFormat::Jsonl,
                Some("csv") => LogFormat::Csv,
                Some(other) => anyhow::bail!("--format '{other}' is not jsonl or csv"),
            };
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let quarry = if llm_intents { open(config)? } else { open_without_llm(config)? };
            let mut bar = ProgressBar::new("ingesting");
            let report = quarry
                .ingest_history(&admin_principal(), &text, format, llm_intents, &mut |done, total| {
                    bar.update(done, total)
                })
                .context("ingesting")?;
            bar.finish();
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} entries read: {} new, {} already known, {} skipped; {} intents by the LLM; {} ms ({:.0} new queries/s)",
                    report.read, report.new, report.duplicates, report.skipped.len(), report.llm_intents,
                    report.elapsed_ms, report.queries_per_second
                );
                for skipped in &report.skipped {
                    println!("  skipped line {}: {}", skipped.line, skipped.reason);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command: AuditCommand::Export { principal, kind, since, until, limit } } => {
            let metadata = Metadata::open(&config.metadata_db())?;
            let kind = match kind.as_deref() {
                None => None,
                Some(text) => Some(
                    AuditKind::parse(text)
                        .with_context(|| format!("--kind '{text}' is not one of: ask, sql, edit"))?,
                ),
            };
            let filter = AuditFilter { principal, kind, since, until, limit };
            for record in metadata.search_audit(&filter)? {
                println!("{}", serde_json::to_string(&record)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Finetune {
            command:
                FinetuneCommand::Export {
                    out,
                    spider,
                    no_spider,
                    no_history,
                    synthetic,
                    limit,
                    heldout_percent,
                    seed,
                    keep_out,
                },
        } => {
            let embedder = load_default_embedder(&config).context("loading the embedding model")?;
            let workspace = if no_history {
                None
            } else {
                Some(Quarry::open(config.clone(), embedder.clone(), None).context("opening the workspace")?)
            };
            let keep_out =
                quarry::finetune::evaluation_sets_beside(&spider).into_iter().chain(keep_out).collect();
            let options = quarry::finetune::ExportOptions {
                out: out.clone(),
                keep_out,
                spider: (!no_spider).then_some(spider),
                spider_limit: limit,
                heldout_percent: heldout_percent.min(100),
                seed,
                synthetic_per_table: synthetic,
            };
            let report =
                quarry::finetune::export(&options, &config, workspace.as_ref(), embedder, &mut |step| {
                    eprintln!("{step}")
                })?;
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            eprintln!(
                "wrote {} training and {} held-out examples to {} ({} left out as evaluation questions, {} duplicates, {} failed)",
                report.train,
                report.heldout,
                out.display(),
                report.excluded_for_evaluation,
                report.duplicates,
                report.failed_count
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog { command } => {
            let metadata = Metadata::open(&config.metadata_db())?;
            let loaded = load_catalog(&config, &metadata).context("loading the catalog")?;
            match command {
                CatalogCommand::Check => {
                    let tables = loaded.catalog.tables().count();
                    let documented = loaded.catalog.tables().filter(|t| !t.description.is_empty()).count();
                    println!(
                        "catalog ok: {tables} tables ({documented} described), {} glossary terms, governance from {}",
                        loaded.catalog.glossary().len(),
                        config.governance.display()
                    );
                    for warning in config.policy.unfiltered_children(&loaded.catalog) {
                        println!("warning: {warning}");
                    }
                    for conflict in &loaded.conflicts {
                        println!(
                            "conflict: {} '{}' (revision {} by {} at {}): {}",
                            conflict.target_kind,
                            conflict.target,
                            conflict.revision,
                            conflict.edited_by,
                            conflict.edited_at,
                            conflict.message
                        );
                    }
                    Ok(if loaded.conflicts.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(EXIT_CONFLICTS)
                    })
                }
                CatalogCommand::Export { dir } => {
                    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                    for (name, text) in quarry::catalog::governance::export(&loaded.catalog) {
                        let path = dir.join(&name);
                        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                        println!("wrote {}", path.display());
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Index => {
            let quarry = open_without_llm(config)?;
            let report = quarry.index_report();
            println!(
                "{} tables and {} past queries indexed ({}, {} ms)",
                report.tables,
                report.queries,
                if report.rebuilt { "rebuilt" } else { "already up to date" },
                report.elapsed_ms
            );
            for skipped in &report.skipped {
                println!("  skipped log line {}: {}", skipped.line, skipped.reason);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval {
            demo: false,
            data,
            mode,
            limit,
            seed,
            out,
            resume,
            samples,
            jobs,
            category,
            json,
        } if data.as_os_str() != "demo" => {
            let out = out.unwrap_or_else(|| config.workspace.join(format!("eval-{mode}.jsonl")));
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            let done = if resume { quarry::eval::spider::read_results(&out)? } else { Vec::new() };
            if !resume {
                let _ = std::fs::remove_file(&out);
            }
            let embedder = load_default_embedder(&config).context("loading the embedding model")?;
            let jobs = jobs.max(1);
            // One model for all jobs when it is a server, or when there is one job; else one
            // copy per job, sharing the cores.
            let shared = if config.llm_url.is_some() || jobs == 1 {
                Some(load_default_llm(&config).context("loading the language model")?)
            } else {
                None
            };
            let mut per_job = config.clone();
            per_job.threads = (config.threads / jobs).max(1);
            let load_llm = || match &shared {
                Some(llm) => Ok(llm.clone()),
                None => load_default_llm(&per_job),
            };
            let samples = samples.unwrap_or(config.samples).max(1);
            let options = quarry::eval::spider::Options {
                data,
                mode,
                limit,
                seed,
                workdir: std::env::temp_dir().join(format!("quarry-eval-{}", std::process::id())),
                done,
                samples,
                jobs,
                category,
            };
            let mut bar = ProgressBar::new("evaluating");
            let mut correct = options.done.iter().filter(|r| r.correct).count();
            let (results, skipped) = quarry::eval::spider::run(
                &options,
                &config,
                embedder,
                &load_llm,
                &mut |result, done, total| {
                    quarry::eval::spider::append_result(&out, result)?;
                    correct += usize::from(result.correct);
                    if json {
                        println!("{}", serde_json::to_string(result).unwrap_or_default());
                    }
                    bar.note(format!("EX {:.1}%", 100.0 * correct as f64 / done.max(1) as f64));
                    bar.update(done, total);
                    Ok(())
                },
            )?;
            bar.finish();
            let _ = std::fs::remove_dir_all(&options.workdir);
            let summary =
                quarry::eval::spider::summarize(&results, mode, &config.model_name(), skipped, samples);
            let report = quarry::eval::spider::markdown(&summary);
            std::fs::write(out.with_extension("md"), &report)?;
            std::fs::write(out.with_extension("json"), serde_json::to_string_pretty(&summary)?)?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!("{report}\nper question: {}", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval { json, samples, .. } => {
            let mut config = config;
            if let Some(samples) = samples {
                config.samples = samples.max(1);
            }
            let quarry = open(config)?;
            let cases = quarry::eval::parse_cases(quarry::eval::DEMO_QUESTIONS)?;
            let total = cases.len();
            let (_, summary) = quarry::eval::run_cases(&quarry, &cases, |i, result| {
                if json {
                    println!("{}", serde_json::to_string(result).unwrap_or_default());
                } else {
                    let mark = if result.correct { "ok  " } else { "MISS" };
                    eprintln!(
                        "[{}/{total}] {mark} {} ({} ms)",
                        i + 1,
                        result.question,
                        result.timings.total_ms
                    );
                }
            })?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "{} of {} correct (EX {:.1}%) with {}; time to answer p50 {} ms, p95 {} ms",
                    summary.correct, summary.cases, summary.ex, summary.model, summary.p50_ms, summary.p95_ms
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Opens the workspace for commands that never generate (sql, index): the model is not loaded.
fn open_without_llm(config: Config) -> Result<Quarry> {
    let embedder = load_default_embedder(&config).context("loading the embedding model")?;
    Quarry::open(config, embedder, None).context("opening the workspace")
}

fn report_failure(e: AskError) -> ExitCode {
    match e {
        AskError::Refused { sql, refusal } => {
            eprintln!("refused: {sql}");
            for v in &refusal.violations {
                eprintln!("  [{}] {} (at: {}) fix: {}", v.code.as_str(), v.message, v.fragment, v.hint);
            }
            ExitCode::from(EXIT_REFUSED)
        }
        other => {
            eprintln!("error: {other}");
            ExitCode::FAILURE
        }
    }
}

/// What the policy did, and non-blocking findings, after the rows.
fn print_governance(warnings: &[Violation], governance: &Governance) {
    for filter in &governance.row_filters {
        println!("row filter ({}): {filter}", governance.role);
    }
    if !governance.masked_columns.is_empty() {
        println!("masked ({}): {}", governance.role, governance.masked_columns.join(", "));
    }
    for warning in warnings {
        println!("warning [{}] {} ({})", warning.code.as_str(), warning.message, warning.hint);
    }
}

fn print_rows(result: &ResultSet) {
    const SHOWN: usize = 25;
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .take(SHOWN)
        .map(|row| {
            row.iter().map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())).collect()
        })
        .collect();
    let mut widths: Vec<usize> = result.columns.iter().map(|c| c.chars().count()).collect();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count()).min(40);
        }
    }
    let line = |values: &[String]| {
        values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect::<Vec<_>>().join(" | ")
    };
    println!("{}", line(&result.columns));
    println!("{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"));
    for row in &cells {
        println!("{}", line(row));
    }
    let more = result.rows.len().saturating_sub(SHOWN);
    println!(
        "({} row{}{}{})",
        result.rows.len(),
        if result.rows.len() == 1 { "" } else { "s" },
        if more > 0 { format!(", {more} not shown") } else { String::new() },
        match result.truncation {
            Some(quarry::execute::Truncation::RowCap) => ", cut at the row cap",
            Some(quarry::execute::Truncation::ByteLimit) =>
                ", cut at the size limit ([limits] max_result_bytes)",
            None => "",
        }
    );
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

fn serve(config: Config) -> Result<ExitCode> {
    let address = format!("{}:{}", config.host, config.port);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        // Bind first: a port in use is reported before minutes of model loading.
        let listener = tokio::net::TcpListener::bind(&address).await.with_context(|| {
            format!(
                "cannot listen on {address}: is another server using it? Pass --port N or set QUARRY_PORT"
            )
        })?;
        let demo = config.demo;
        let quarry =
            tokio::task::spawn_blocking(move || open(config)).await.context("opening the workspace")??;
        // Row filters that stop at their table, once at start-up (and in `catalog check`).
        for warning in quarry.config().policy.unfiltered_children(&quarry.catalog()) {
            tracing::warn!("{warning}");
        }
        let active_keys = quarry.metadata().keys()?.iter().filter(|k| k.revoked_at.is_none()).count();
        let mut open_url = format!("http://{address}");
        if demo && active_keys == 0 {
            let created = keys::create_demo_keys(quarry.metadata(), &quarry.config().policy)?;
            print_demo_keys(quarry.config(), &created)?;
            if let Some((_, key)) = created.iter().find(|(k, _)| k.role == "analyst") {
                open_url = format!("http://{address}/#key={key}");
            }
        } else if active_keys == 0 {
            eprintln!("no API keys yet: create one with `quarry keys create --name <you> --role analyst`");
        }
        eprintln!("Quarry is serving {open_url} (model {})", quarry.model_id());
        let app = quarry::http::app(Arc::new(quarry));
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving")?;
        Ok(ExitCode::SUCCESS)
    })
}
