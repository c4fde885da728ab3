//! Governance inherited by every surface that shows what is derived from the warehouse: the
//! corpus `tests/data/adversarial/surfaces/probes.toml` (canary literals in a poisoned, "verified"
//! query log; sample values and row counts in the catalog) probed under every demo role over
//! HTTP, and the fine-tuning export. Zero leaks, and every probe reaches what it looks for
//! under a role that may see it (so a probe that sees nothing cannot pass for one that holds).

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use quarry::history::LogFormat;
use quarry::llm::ScriptedLlm;
use quarry::pipeline::Principal;

use crate::support::{open_private_with, private_workspace, real_model_turn, repo_root, request, As};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    roles: Vec<String>,
    tag: Vec<Tag>,
    canary: Vec<Canary>,
    column_values: Vec<ColumnValues>,
    row_count: Vec<RowCount>,
    probe: Vec<Probe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tag {
    table: String,
    column: String,
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Canary {
    text: String,
    sql: String,
    question: String,
    hidden_from: Vec<String>,
    visible_to: Vec<String>,
    #[allow(dead_code)]
    note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnValues {
    table: String,
    column: String,
    hidden_from: Vec<String>,
    visible_to: Vec<String>,
    #[allow(dead_code)]
    note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowCount {
    table: String,
    hidden_from: Vec<String>,
    visible_to: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    method: String,
    path: String,
    #[serde(default)]
    body: Option<String>,
}

fn corpus() -> Corpus {
    let path = repo_root().join("tests/data/adversarial/surfaces/probes.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A private demo workspace with the corpus's poisoned log ingested (by an admin, who may)
/// and its tags applied (by a steward).
async fn poisoned(corpus: &Corpus) -> (tempfile::TempDir, std::sync::Arc<quarry::pipeline::Quarry>) {
    let dir = private_workspace();
    // Asks about the probes' questions get an answer, so their examples and evidence show.
    let llm = ScriptedLlm::new([
        ("this e-mail address", "SELECT plan, COUNT(*) AS users FROM users GROUP BY plan"),
        ("this country code", "SELECT COUNT(*) AS users FROM users"),
    ]);
    let quarry = open_private_with(dir.path(), llm);
    let log: String = corpus
        .canary
        .iter()
        .map(|c| {
            let line = json!({ "sql": c.sql, "author": "mallory", "timestamp": "2026-10-20T09:00:00Z",
                               "question": c.question, "verified": true });
            format!("{line}\n")
        })
        .collect();
    let admin = Principal::new("test-admin", "admin");
    let report =
        quarry.ingest_history(&admin, &log, LogFormat::Jsonl, false, &mut |_, _| {}).expect("ingest");
    assert_eq!((report.new, report.skipped.len()), (corpus.canary.len(), 0), "{report:?}");
    for tag in &corpus.tag {
        let body =
            json!({ "columns": { tag.column.clone(): { "tags": tag.tags } }, "comment": "personal data" });
        let path = format!("/api/v1/catalog/tables/{}", tag.table);
        let (status, answer) = request(quarry.clone(), As::Role("steward"), "PATCH", &path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    (dir, quarry)
}

#[tokio::test]
async fn no_surface_shows_a_role_what_it_may_not_read() {
    let corpus = corpus();
    let (_dir, quarry) = poisoned(&corpus).await;
    let mut leaks = Vec::new();
    let mut reached: BTreeSet<(String, String)> = BTreeSet::new();
    let mut checks = 0;
    for role in &corpus.roles {
        for probe in &corpus.probe {
            let body = probe.body.as_deref().map(|b| serde_json::from_str::<Value>(b).expect("probe body"));
            let (_, answer) = request(quarry.clone(), As::Role(role), &probe.method, &probe.path, body).await;
            let text = answer.to_string();
            for canary in &corpus.canary {
                checks += 1;
                if !text.contains(&canary.text) {
                    continue;
                }
                if canary.hidden_from.contains(role) {
                    leaks.push(format!("{role} sees '{}' on {} {}", canary.text, probe.method, probe.path));
                } else {
                    reached.insert((canary.text.clone(), role.clone()));
                }
            }
        }
        // Values and totals in the catalog: absent for the roles they are hidden from, present
        // for the others.
        for values in &corpus.column_values {
            checks += 1;
            let path = format!("/api/v1/catalog/tables/{}", values.table);
            let (_, detail) = request(quarry.clone(), As::Role(role), "GET", &path, None).await;
            let column = detail["table"]["columns"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["name"] == values.column.as_str()))
                .cloned()
                .unwrap_or_default();
            let shown = column["sample_values"].as_array().is_some_and(|v| !v.is_empty());
            if values.hidden_from.contains(role) && shown {
                leaks.push(format!("{role} sees the values of {}.{}: {column}", values.table, values.column));
            }
            if values.visible_to.contains(role) && !shown {
                leaks.push(format!(
                    "{role} should see the values of {}.{}: {column}",
                    values.table, values.column
                ));
            }
        }
        let (_, listing) =
            request(quarry.clone(), As::Role(role), "GET", "/api/v1/catalog/tables", None).await;
        for count in &corpus.row_count {
            checks += 1;
            let path = format!("/api/v1/catalog/tables/{}", count.table);
            let (_, detail) = request(quarry.clone(), As::Role(role), "GET", &path, None).await;
            let listed = listing["tables"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["name"] == count.table.as_str()))
                .map(|t| t["row_count"].clone())
                .unwrap_or_default();
            let shown = [detail["table"]["row_count"].clone(), listed];
            if count.hidden_from.contains(role) && shown.iter().any(Value::is_number) {
                leaks.push(format!("{role} sees the row count of {}: {shown:?}", count.table));
            }
            if count.visible_to.contains(role) && !shown.iter().all(Value::is_number) {
                leaks.push(format!("{role} should see the row count of {}: {shown:?}", count.table));
            }
        }
    }
    assert!(leaks.is_empty(), "{} leaks in {checks} checks:\n{}", leaks.len(), leaks.join("\n"));
    for canary in &corpus.canary {
        for role in &canary.visible_to {
            assert!(
                reached.contains(&(canary.text.clone(), role.clone())),
                "no probe showed '{}' to {role}, who may see it: the probes miss that surface",
                canary.text
            );
        }
    }
}

/// Only verified pairs that every role may be shown reach the training data: the poisoned log
/// claims to be verified, and none of its canaries is exported.
#[tokio::test]
// The turn only keeps real-model tests apart; nothing else takes it while this test awaits.
#[allow(clippy::await_holding_lock)]
async fn the_training_export_takes_no_pair_some_role_may_not_see() {
    let Some(_turn) = real_model_turn() else { return };
    let corpus = corpus();
    let (dir, quarry) = poisoned(&corpus).await;
    let out = tempfile::tempdir().expect("temp dir");
    let options = quarry::finetune::ExportOptions {
        out: out.path().to_path_buf(),
        spider: None,
        spider_limit: None,
        heldout_percent: 0,
        seed: 7,
        synthetic_per_table: 20,
        keep_out: Vec::new(),
    };
    let config = crate::support::config_for(dir.path());
    let report =
        quarry::finetune::export(&options, &config, Some(&quarry), crate::support::embedder(), &mut |_| {})
            .expect("export");
    let exported = std::fs::read_to_string(out.path().join("train.jsonl")).expect("train.jsonl");
    for canary in &corpus.canary {
        assert!(!exported.contains(&canary.text), "'{}' reached the training data", canary.text);
    }
    assert!(report.governed >= corpus.canary.len(), "{report:?}");
    assert!(report.unverified > 0, "the demo log's unverified queries are left out: {report:?}");
}
