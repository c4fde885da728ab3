//! The query history: structure extraction on a data-driven corpus (`tests/data/structure`).

use quarry::catalog::Catalog;
use quarry::history::structure::{analyze, QueryStructure};
use serde::Deserialize;

use crate::support::{repo_root, shared_workspace};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    sql: String,
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    joins: Vec<String>,
    #[serde(default)]
    filters: Vec<String>,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default)]
    aggregates: Vec<String>,
    #[serde(default)]
    window: bool,
    #[serde(default)]
    ctes: usize,
}

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

fn catalog() -> Catalog {
    Catalog::introspect(&shared_workspace().join("warehouse.sqlite")).expect("introspect")
}

/// The parts of a structure the corpus states, in the corpus's notation.
fn described(
    s: &QueryStructure,
) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>, Vec<String>, bool, usize) {
    let filters = s
        .filters
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f.column,
                serde_json::to_value(f.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            )
        })
        .collect();
    (
        s.tables.clone(),
        s.joins.iter().map(|j| format!("{} = {}", j.left, j.right)).collect(),
        filters,
        s.group_by.clone(),
        s.aggregates.clone(),
        s.window,
        s.ctes,
    )
}

#[test]
fn structure_extraction_matches_the_corpus() {
    let text = std::fs::read_to_string(repo_root().join("tests/data/structure/cases.toml")).expect("corpus");
    let corpus: Corpus = toml::from_str(&text).expect("corpus parses");
    assert!(corpus.case.len() >= 15);
    let catalog = catalog();
    let mut failures = Vec::new();
    for case in &corpus.case {
        let Some(found) = analyze(&case.sql, &catalog) else {
            failures.push(format!("{}: not analysed", case.name));
            continue;
        };
        let expected = (
            case.tables.clone(),
            case.joins.clone(),
            case.filters.clone(),
            case.group_by.clone(),
            case.aggregates.clone(),
            case.window,
            case.ctes,
        );
        let got = described(&found);
        if got != expected {
            failures.push(format!("{}:\n  expected {expected:?}\n  got      {got:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_query_with_other_literals_normalises_alike() {
    let catalog = catalog();
    let hash = |sql: &str| analyze(sql, &catalog).map(|s| s.normalized_hash).unwrap_or_default();
    let a = hash("SELECT COUNT(*) FROM orders WHERE ordered_at >= '2026-10-01' AND status = 'completed'");
    let b = hash("select count(*)\n from   ORDERS where ordered_at >= '2026-09-01' and status = 'refunded'");
    let c = hash("SELECT COUNT(*) FROM orders WHERE ordered_at >= '2026-10-01'");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(analyze("DELETE FROM orders", &catalog).is_none());
    assert!(analyze("SELECT 1; SELECT 2", &catalog).is_none());
}
