//! `quarry`: the command line. Parses arguments, opens the workspace, calls the library, and
//! turns errors into messages and exit codes (1 = error, 3 = the validator refused).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use quarry::config::Config;
use quarry::execute::ResultSet;
use quarry::pipeline::{load_default_embedder, load_default_llm, AskError, Principal, Quarry};
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
    /// Ask the demo questions and score the answers against their gold SQL.
    Eval {
        /// Print one JSON object per question, then the summary as the last line.
        #[arg(long)]
        json: bool,
    },
}

/// Exit code when the validator refused the query.
const EXIT_REFUSED: u8 = 3;

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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn open(config: Config) -> Result<Quarry> {
    let embedder = load_default_embedder(&config).context("loading the embedding model")?;
    let llm = load_default_llm(&config).context("loading the language model")?;
    Quarry::open(config, embedder, Some(llm)).context("opening the workspace")
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
            Ok(ExitCode::SUCCESS)
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
        Command::Eval { json } => {
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
                    "{} of {} correct (EX {:.1}%) with {}",
                    summary.correct, summary.cases, summary.ex, summary.model
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
        if result.truncated { ", truncated at the row cap" } else { "" }
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
        let quarry =
            tokio::task::spawn_blocking(move || open(config)).await.context("opening the workspace")??;
        eprintln!("Quarry is serving http://{address} (model {})", quarry.model_id());
        let app = quarry::http::app(Arc::new(quarry));
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving")?;
        Ok(ExitCode::SUCCESS)
    })
}
