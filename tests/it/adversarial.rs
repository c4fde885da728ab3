//! The adversarial corpus: SQL written as an attacker (or a confused model) would write it, in
//! `tests/data/adversarial/<category>.toml`, each case with a principal and the violation codes
//! the validator must answer with (`expect = []`: it must pass). Cases may also say what the
//! query must do when it runs on the demo warehouse:
//! - `same_rows_as`: SQL run as `admin` whose rows the governed query must return exactly (row
//!   filters: only the allowed rows, whatever the route to the table);
//! - `executes`: "timeout" (stopped by the deadline), "capped" (at most the row cap) or
//!   "error" (refused by the executor's second wall);
//! - `masked`: the result columns that must come back masked; `warnings`: warning codes.
//!
//! The test fails listing every case that differs, and prints the cases per category.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use quarry::catalog::Catalog;
use quarry::eval::same_result;
use quarry::policy::{PolicySet, Principal};
use quarry::validate::{validate, DraftSql, ValidatedQuery};
use quarry::warehouse::{ExecuteError, Executor, ResultSet};
use serde::Deserialize;

use crate::support::{config_for, demo_policy, repo_root, shared_workspace};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Case {
    pub(crate) sql: String,
    #[serde(default = "analyst")]
    pub(crate) role: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    expect: Vec<String>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
    #[serde(default)]
    masked: Option<Vec<String>>,
    #[serde(default)]
    same_rows_as: Option<String>,
    #[serde(default)]
    executes: Option<String>,
    /// Why the case exists, for the reader.
    #[serde(default)]
    #[allow(dead_code)]
    note: String,
}

fn analyst() -> String {
    "analyst".to_string()
}

pub(crate) struct World {
    pub(crate) catalog: Catalog,
    pub(crate) policy: PolicySet,
    pub(crate) executor: Executor,
    /// Short deadline, for resource bombs.
    pub(crate) impatient: Executor,
}

fn sorted(codes: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut codes: Vec<String> = codes.into_iter().collect();
    codes.sort();
    codes.dedup();
    codes
}

/// How a case's expected violation codes are compared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codes {
    /// Exactly the codes the case names (the SQLite corpus as written).
    Exact,
    /// In another dialect: a case the validator must refuse is refused, whatever the codes; a
    /// case it must pass may be refused (SQLite's syntax), which the caller counts.
    RefusedAlike,
}

/// Checks one case; `Ok(true)` when it passed only because `Codes::RefusedAlike` let a
/// refusal of a case meant to pass go.
pub(crate) fn check(world: &World, case: &Case, codes: Codes) -> Result<bool, String> {
    let policy = world.policy.get(&case.role).ok_or_else(|| format!("no role '{}'", case.role))?;
    let mut principal = Principal::new(format!("adversary-{}", case.role), case.role.clone());
    principal.attributes = case.attributes.clone();
    let verdict = validate(&DraftSql::new(case.sql.clone()), &world.catalog, policy, &principal);
    let got = match &verdict {
        Ok(_) => Vec::new(),
        Err(refusal) => sorted(refusal.violations.iter().map(|v| v.code.as_str().to_string())),
    };
    if codes == Codes::RefusedAlike {
        match (case.expect.is_empty(), got.is_empty()) {
            (false, false) => return Ok(false),
            (true, false) => return Ok(true),
            (false, true) => {
                let sql = verdict.as_ref().map(|q| q.sql().to_string()).unwrap_or_default();
                return Err(format!("expected a refusal {:?}, passed as: {sql}", case.expect));
            }
            (true, true) => {}
        }
    } else if got != sorted(case.expect.iter().cloned()) {
        let detail = match &verdict {
            Ok(query) => format!("passed as: {}", query.sql()),
            Err(refusal) => refusal.to_string(),
        };
        return Err(format!("expected {:?}, got {got:?}\n      {detail}", case.expect));
    }
    let Ok(query) = verdict else { return Ok(false) };
    if let Some(expected) = &case.warnings {
        let warnings = sorted(query.warnings().iter().map(|w| w.code.as_str().to_string()));
        if warnings != sorted(expected.iter().cloned()) {
            return Err(format!("expected warnings {expected:?}, got {warnings:?}"));
        }
    }
    if let Some(expected) = &case.masked {
        let masked = &query.governance().masked_columns;
        if masked != expected {
            return Err(format!(
                "expected masked columns {expected:?}, got {masked:?}\n      {}",
                query.sql()
            ));
        }
    }
    if let Some(oracle) = &case.same_rows_as {
        check_same_rows(world, case, &query, oracle)?;
    }
    if let Some(outcome) = &case.executes {
        check_execution(world, &query, outcome, policy.row_cap(), codes)?;
    }
    Ok(false)
}

fn run_as_admin(world: &World, sql: &str) -> Result<ResultSet, String> {
    let admin = world.policy.get("admin").ok_or("no admin role")?;
    let principal = Principal::new("oracle", "admin");
    let query = validate(&DraftSql::new(sql), &world.catalog, admin, &principal)
        .map_err(|r| format!("oracle refused: {r}"))?;
    world.executor.run(&query).map_err(|e| format!("oracle failed: {e}"))
}

/// The governed query returns the oracle's rows, and not the rows it returns ungoverned (so the
/// case really exercises the filter).
fn check_same_rows(world: &World, case: &Case, query: &ValidatedQuery, oracle: &str) -> Result<(), String> {
    let governed = world
        .executor
        .run(query)
        .map_err(|e| format!("governed query failed: {e}\n      {}", query.sql()))?;
    let expected = run_as_admin(world, oracle)?;
    let ordered = quarry::eval::has_order_by(oracle);
    if !same_result(&expected, &governed, ordered) {
        return Err(format!(
            "rows differ from the oracle\n      ran: {}\n      got {} row(s) {:?}...\n      expected {} row(s) {:?}...",
            query.sql(),
            governed.rows.len(),
            governed.rows.iter().take(3).collect::<Vec<_>>(),
            expected.rows.len(),
            expected.rows.iter().take(3).collect::<Vec<_>>()
        ));
    }
    let ungoverned = run_as_admin(world, &case.sql)?;
    if same_result(&ungoverned, &governed, ordered) {
        return Err(format!("the filter changes nothing here, so the case proves nothing: {}", query.sql()));
    }
    Ok(())
}

fn check_execution(
    world: &World,
    query: &ValidatedQuery,
    outcome: &str,
    cap: Option<u64>,
    codes: Codes,
) -> Result<(), String> {
    let result = world.impatient.run(query);
    // Another engine's walls may stop a runaway query by its deadline rather than by an error
    // (PostgreSQL has no limit on one value below 1 GB): either end is safe.
    let stopped = codes == Codes::RefusedAlike && matches!(outcome, "timeout" | "error");
    match (outcome, &result) {
        ("timeout", Err(ExecuteError::Timeout(_))) => Ok(()),
        ("error", Err(ExecuteError::Database(_))) => Ok(()),
        (_, Err(ExecuteError::Timeout(_) | ExecuteError::Database(_))) if stopped => Ok(()),
        ("capped", Ok(rows)) => {
            let cap = cap.map_or(world.impatient.row_cap(), |c| c as usize).min(world.impatient.row_cap());
            if rows.rows.len() <= cap && !rows.rows.is_empty() {
                Ok(())
            } else {
                Err(format!("expected at most {cap} rows, got {}", rows.rows.len()))
            }
        }
        ("ok", Ok(_)) => Ok(()),
        _ => Err(format!(
            "expected execution to end '{outcome}', got {:?}\n      ran: {}",
            result.as_ref().map(|r| r.rows.len()).map_err(|e| e.to_string()),
            query.sql()
        )),
    }
}

pub(crate) fn corpus() -> Vec<(String, Vec<Case>)> {
    let dir: PathBuf = repo_root().join("tests/data/adversarial");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let file: CaseFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let category = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            (category, file.case)
        })
        .collect()
}

#[test]
fn adversarial_corpus() {
    let config = config_for(shared_workspace());
    let world = World {
        catalog: quarry::warehouse::load_catalog(
            config.warehouse.sqlite_path().expect("a SQLite warehouse"),
            &config.governance,
        )
        .expect("catalog"),
        policy: demo_policy(),
        executor: Executor::new(
            config.warehouse.sqlite_path().expect("a SQLite warehouse"),
            Duration::from_secs(20),
            config.row_cap,
        ),
        impatient: Executor::new(
            config.warehouse.sqlite_path().expect("a SQLite warehouse"),
            Duration::from_millis(300),
            config.row_cap,
        ),
    };
    let mut failures = Vec::new();
    let mut total = 0;
    println!("adversarial corpus:");
    for (category, cases) in corpus() {
        println!("  {category:<14} {:>4} cases", cases.len());
        total += cases.len();
        for case in &cases {
            if let Err(problem) = check(&world, case, Codes::Exact) {
                failures.push(format!("[{category}] ({}) {}\n      {problem}", case.role, case.sql));
            }
        }
    }
    println!("  {:<14} {total:>4} cases", "total");
    assert!(total >= 300, "the corpus should hold at least 300 cases, has {total}");
    assert!(failures.is_empty(), "{} of {total} case(s) differ:\n{}", failures.len(), failures.join("\n"));
}
