//! `quarry ask` and `quarry sql`: the answer, its tables and rows on the terminal, or why
//! it was refused (exit code 3).

use std::process::ExitCode;

use anyhow::Result;
use quarry::config::Config;
use quarry::pipeline::{AskError, AskOptions, Principal};
use quarry::validate::{Governance, Violation};
use quarry::warehouse::ResultSet;

use super::{open, open_without_llm, EXIT_REFUSED};

pub(super) fn ask(
    config: Config,
    principal: &Principal,
    question: &str,
    samples: Option<usize>,
    json: bool,
) -> Result<ExitCode> {
    let quarry = open(config)?;
    match quarry.ask_with(question, principal, &AskOptions { samples, ..AskOptions::default() }) {
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
            if let Some(reading) = &answer.reading {
                println!("Reads as: {reading}\n");
            }
            println!("{}\n", answer.sql);
            let others: Vec<_> = answer.choices.iter().filter(|c| !c.shown).collect();
            if !others.is_empty() {
                println!("The candidates disagreed; other readings (run one with `quarry sql`):");
                for c in others {
                    println!(
                        "  - {} ({} rows, {} candidates)\n    {}",
                        c.reading, c.row_count, c.votes, c.sql
                    );
                }
                println!();
            }
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

pub(super) fn sql(config: Config, principal: &Principal, sql: &str, json: bool) -> Result<ExitCode> {
    let quarry = open_without_llm(config)?;
    match quarry.run_sql(sql, principal) {
        Ok(answer) if json => println!("{}", serde_json::to_string_pretty(&answer)?),
        Ok(answer) => {
            print_rows(&answer.result);
            print_governance(&answer.warnings, &answer.governance);
        }
        Err(e) => return Ok(report_failure(e)),
    }
    Ok(ExitCode::SUCCESS)
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
            Some(quarry::warehouse::Truncation::RowCap) => ", cut at the row cap",
            Some(quarry::warehouse::Truncation::ByteLimit) =>
                ", cut at the size limit ([limits] max_result_bytes)",
            None => "",
        }
    );
}
