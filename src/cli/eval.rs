//! `quarry eval`: an evaluation set asked and scored, the demo's questions or a set in
//! Spider's layout (Spider dev, defog_dev), with the model shared or one per job.

use std::process::ExitCode;

use anyhow::{Context, Result};
use quarry::config::{Config, WarehouseLocation};
use quarry::eval::GoldSource;
use quarry::pipeline::{load_default_embedder, load_default_llm};

use super::{open, EvalArgs, ProgressBar};

pub(super) fn eval(config: Config, args: EvalArgs) -> Result<ExitCode> {
    let spider_layout = !(args.demo || args.followups || args.data.as_os_str() == "demo");
    if args.postgres.is_some() && !spider_layout {
        anyhow::bail!(
            "--postgres copies the databases of a Spider-layout set; for the demo, load it with \
             `quarry demo --postgres URL` and point QUARRY_WAREHOUSE at a role that may only read it"
        );
    }
    if args.demo || args.data.as_os_str() == "demo" {
        return demo(config, args.json, args.samples, args.jobs);
    }
    if args.followups {
        return followups(config, args.json, args.samples);
    }
    let EvalArgs {
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
        postgres,
        postgres_reader,
        ..
    } = args;
    let postgres = match (postgres, postgres_reader) {
        (Some(owner), Some(reader)) => {
            let parse = |flag: &str, url: &str| {
                quarry::warehouse::PostgresUrl::parse(url).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
            };
            Some(quarry::eval::spider::OnPostgres {
                owner: parse("--postgres", &owner)?,
                reader: parse("--postgres-reader", &reader)?,
            })
        }
        _ => None,
    };
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
    // Every job may wait for the model at once: none is turned away as if the line were full.
    let mut config = config;
    config.llm_queue = config.llm_queue.max(jobs);
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
    let samples = samples.unwrap_or(config.samples()).max(1);
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
        postgres,
    };
    let mut bar = ProgressBar::new("evaluating");
    let mut correct = options.done.iter().filter(|r| r.correct).count();
    let (results, skipped) =
        quarry::eval::spider::run(&options, &config, embedder, &load_llm, &mut |result, done, total| {
            quarry::eval::spider::append_result(&out, result)?;
            correct += usize::from(result.correct);
            if json {
                println!("{}", serde_json::to_string(result).unwrap_or_default());
            }
            bar.note(format!("EX {:.1}%", 100.0 * correct as f64 / done.max(1) as f64));
            bar.update(done, total);
            Ok(())
        })?;
    bar.finish();
    let _ = std::fs::remove_dir_all(&options.workdir);
    let summary = quarry::eval::spider::summarize(&results, mode, &config.model_name(), skipped, samples);
    let set = options
        .data
        .file_name()
        .map_or_else(|| options.data.display().to_string(), |n| n.to_string_lossy().into_owned());
    let report = quarry::eval::spider::markdown(&summary, &set);
    std::fs::write(out.with_extension("md"), &report)?;
    std::fs::write(out.with_extension("json"), serde_json::to_string_pretty(&summary)?)?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{report}\nper question: {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The workspace opened with `samples` candidates per question, when given (`--samples`).
fn open_with_samples(mut config: Config, samples: Option<usize>) -> Result<quarry::pipeline::Quarry> {
    if let Some(samples) = samples {
        config.llm_samples = Some(samples.max(1));
    }
    open(config)
}

/// The demo's follow-up pairs, one conversation at a time.
fn followups(config: Config, json: bool, samples: Option<usize>) -> Result<ExitCode> {
    let quarry = open_with_samples(config, samples)?;
    let pairs = quarry::eval::followups::parse_pairs(quarry::eval::followups::DEMO_FOLLOWUPS)?;
    let total = pairs.len();
    let mark = |correct: bool| if correct { "ok  " } else { "MISS" };
    let (_, summary) = quarry::eval::followups::run_pairs(&quarry, &pairs, |i, result| {
        if json {
            println!("{}", serde_json::to_string(result).unwrap_or_default());
        } else {
            eprintln!(
                "[{}/{total}] {} {} -> {} {}",
                i + 1,
                mark(result.first.correct),
                result.first.question,
                mark(result.follow_up.correct),
                result.follow_up.question
            );
        }
    })?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "follow-ups: {} of {} correct (EX {:.1}%; {:.1}% after a right first answer); first questions {} of {} (EX {:.1}%); with {}; follow-up p50 {} ms, p95 {} ms",
            summary.follow_up.correct,
            summary.follow_up.cases,
            summary.follow_up.ex,
            summary.follow_up_after_right_first,
            summary.first.correct,
            summary.first.cases,
            summary.first.ex,
            summary.follow_up.model,
            summary.follow_up.p50_ms,
            summary.follow_up.p95_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo workspace's own questions, `jobs` at a time (more than one only with an LLM server).
fn demo(mut config: Config, json: bool, samples: Option<usize>, jobs: usize) -> Result<ExitCode> {
    if jobs > 1 && config.llm_url.is_none() {
        anyhow::bail!(
            "--jobs {jobs} on the demo questions needs an LLM server ([llm] url or QUARRY_LLM_URL): the embedded model answers one question at a time; leave --jobs out"
        );
    }
    // Every job may wait for the model at once: none is turned away as if the line were full.
    config.llm_queue = config.llm_queue.max(jobs);
    // The golds are SQLite SQL: on a PostgreSQL copy of the demo they run on the SQLite
    // original that `quarry demo --postgres` copied from.
    let gold_source = match config.warehouse {
        WarehouseLocation::Sqlite(_) => GoldSource::Workspace,
        WarehouseLocation::Postgres { .. } => {
            let original = config.workspace.join("warehouse.sqlite");
            eprintln!(
                "the warehouse is PostgreSQL: gold SQL runs on the SQLite original {}",
                original.display()
            );
            GoldSource::sqlite_copy(&config, &original)?
        }
    };
    let quarry = open_with_samples(config, samples)?;
    let cases = quarry::eval::parse_cases(quarry::eval::DEMO_QUESTIONS)?;
    let total = cases.len();
    let mut done = 0;
    let (_, summary) = quarry::eval::run_cases(&quarry, &cases, &gold_source, jobs, |_, result| {
        done += 1;
        if json {
            println!("{}", serde_json::to_string(result).unwrap_or_default());
        } else {
            let mark = if result.correct { "ok  " } else { "MISS" };
            eprintln!("[{done}/{total}] {mark} {} ({} ms)", result.question, result.timings.total_ms);
        }
    })?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} of {} correct (EX {:.1}%) with {}; time to answer p50 {} ms, p95 {} ms",
            summary.correct, summary.cases, summary.ex, summary.model, summary.p50_ms, summary.p95_ms
        );
        if summary.clarified > 0 {
            println!(
                "{} answers offered readings to choose from: {} shown right, {} with a right reading",
                summary.clarified, summary.clarified_shown_right, summary.clarified_any_right
            );
        }
        let by_confidence: Vec<String> = quarry::eval::confidence_order(&summary.by_confidence)
            .into_iter()
            .map(|(level, score)| format!("{level} {} of {} right", score.correct, score.questions))
            .collect();
        println!("by confidence: {}", by_confidence.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
