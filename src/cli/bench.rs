//! `quarry bench`: measurements, not tests — each prints a report.

use std::process::ExitCode;

use anyhow::{Context, Result};
use quarry::config::Config;
use quarry::metadata::Metadata;
use quarry::pipeline::{load_catalog, load_default_embedder, load_default_llm, Quarry};
use quarry::vector_store::{ServerSettings, VectorsLocation};

use super::{open, BenchCommand, ProgressBar};

/// `quarry bench ...`: each prints a human summary, or with --json the report as the last line.
pub(super) fn bench(config: Config, command: BenchCommand) -> Result<ExitCode> {
    let scratch = std::env::temp_dir().join(format!("quarry-bench-{}", std::process::id()));
    let result = match command {
        BenchCommand::Retrieval { data, questions, merged, history, limit, seed, server, json } => {
            let embedder = load_default_embedder(&config).context("loading the embedding model")?;
            let mut stores = vec![VectorsLocation::Embedded(scratch.join("vectors"))];
            stores.extend(server.map(|url| bench_server(&config, &url)).transpose()?);
            for store in stores {
                let options = quarry::bench::RetrievalOptions {
                    data: data.clone(),
                    questions: questions.clone(),
                    merged,
                    history,
                    limit,
                    seed,
                    store,
                };
                let mut bar = ProgressBar::new("retrieving");
                let report = quarry::bench::retrieval(&options, embedder.as_ref(), &mut |done, total, _| {
                    bar.update(done, total)
                });
                bar.finish();
                quarry::bench::remove_store(&options.store)?;
                print_report(json, &report?)?;
            }
            Ok(())
        }
        BenchCommand::Sql { url, key, connections, seconds, queries, server_pid, json } => {
            let statements = if queries.is_empty() {
                [
                    "SELECT plan, COUNT(*) AS users FROM users GROUP BY plan",
                    "SELECT status, COUNT(*) AS n FROM orders WHERE ordered_at >= '2026-09-01' AND ordered_at < '2026-10-01' GROUP BY status",
                    "SELECT p.category, SUM(i.quantity) AS units FROM order_items i JOIN products p ON p.product_id = i.product_id GROUP BY p.category",
                    "SELECT country_code, COUNT(DISTINCT user_id) AS active FROM daily_active_users WHERE activity_date = '2026-10-15' GROUP BY country_code",
                ]
                .map(String::from)
                .to_vec()
            } else {
                queries
            };
            let options = quarry::bench::LoadOptions {
                url,
                key,
                connections,
                duration: std::time::Duration::from_secs(seconds),
                target: quarry::bench::Target::Sql(statements),
                request_timeout: std::time::Duration::from_secs(60),
                server_pid,
            };
            print_report(json, &quarry::bench::load(&options)?)
        }
        BenchCommand::AskLoad {
            url,
            key,
            clients,
            seconds,
            timeout_seconds,
            questions,
            server_pid,
            json,
        } => {
            let questions = if questions.is_empty() {
                quarry::eval::parse_cases(quarry::eval::DEMO_QUESTIONS)?
                    .into_iter()
                    .map(|c| c.question)
                    .collect()
            } else {
                questions
            };
            let options = quarry::bench::LoadOptions {
                url,
                key,
                connections: clients,
                duration: std::time::Duration::from_secs(seconds),
                target: quarry::bench::Target::Ask(questions),
                request_timeout: std::time::Duration::from_secs(timeout_seconds),
                server_pid,
            };
            print_report(json, &quarry::bench::load(&options)?)
        }
        BenchCommand::Vectors { points, searches, server, json } => {
            let store = match server {
                Some(url) => bench_server(&config, &url)?,
                None => VectorsLocation::Embedded(scratch.join("vectors")),
            };
            let report = quarry::bench::vectors(&store, 384, points, searches, 7);
            quarry::bench::remove_store(&store)?;
            print_report(json, &report?)
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
                    &config.llama_settings(),
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

/// A Qdrant server to benchmark: its own `quarry_bench` collections, with the configured key
/// and timeout.
fn bench_server(config: &Config, url: &str) -> Result<VectorsLocation> {
    let url =
        quarry::config::parse_vectors_url(url).map_err(|message| anyhow::anyhow!("--server: {message}"))?;
    Ok(VectorsLocation::Server(ServerSettings {
        url,
        api_key: config.vectors_api_key.clone(),
        prefix: "quarry_bench".to_string(),
        timeout: config.vectors_timeout.max(std::time::Duration::from_secs(60)),
    }))
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
