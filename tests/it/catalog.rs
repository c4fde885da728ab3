//! The catalog as a system of record: governance file errors (data-driven), steward edits as
//! revisions that win over the files until the files change (then a reported conflict),
//! API keys and role enforcement on every endpoint, re-indexing on edit, audit of edits.

use std::sync::OnceLock;

use axum::http::StatusCode;
use quarry::catalog::governance::apply_text;
use quarry::catalog::Catalog;
use quarry::pipeline::Principal;
use serde_json::{json, Value};

use crate::support::{open_private, private_workspace, repo_root, request, shared_workspace, As};

fn demo_catalog() -> Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG
        .get_or_init(|| {
            quarry::warehouse::introspect(&shared_workspace().join("warehouse.sqlite")).expect("introspect")
        })
        .clone()
}

#[test]
fn bad_governance_files_are_reported_with_file_line_and_fix() {
    let dir = repo_root().join("tests/data/governance");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/data/governance") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read case");
        let header = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                .unwrap_or_else(|| panic!("{}: no '# {key}:' line", path.display()))
                .to_string()
        };
        let (expect, line) = (header("expect"), header("line"));
        let error = match apply_text(&mut demo_catalog(), &path, &text) {
            Ok(()) => panic!("{}: loaded without error", path.display()),
            Err(e) => e.to_string(),
        };
        let prefix = format!("{}:{line}: ", path.display());
        assert!(
            error.starts_with(&prefix),
            "{}: expected to start with '{prefix}', got: {error}",
            path.display()
        );
        assert!(error.contains(&expect), "{}: expected '{expect}' in: {error}", path.display());
        cases += 1;
    }
    assert!(cases >= 15, "only {cases} cases");
}

#[test]
fn the_demo_governance_files_load_and_export_back_unchanged() {
    let mut catalog = demo_catalog();
    quarry::catalog::governance::apply_dir(&mut catalog, &repo_root().join("schemas/demo")).expect("load");
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in quarry::catalog::governance::export(&catalog) {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let mut again = demo_catalog();
    quarry::catalog::governance::apply_dir(&mut again, dir.path()).expect("exported files load");
    for table in catalog.tables() {
        assert_eq!(
            again.table(&table.name).map(|t| t.governance()),
            Some(table.governance()),
            "{}",
            table.name
        );
    }
    assert_eq!(again.glossary(), catalog.glossary());
}

pub(crate) fn steward() -> Principal {
    Principal::new("sam.steward", "steward")
}

#[test]
fn edits_are_revisions_that_win_until_the_files_change_then_conflicts_are_reported() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let original = quarry.catalog().table("users").map(|t| t.description.clone()).expect("users");
    let body =
        json!({ "description": "Edited: one row per registered user.", "comment": "clarify the grain" });
    let (outcome, detail) = quarry.edit_table(&steward(), "users", &body).expect("edit");
    assert!(outcome.revision.is_some() && outcome.reindexed, "{outcome:?}");
    assert_eq!(detail.table.description, "Edited: one row per registered user.");
    let revision = &detail.revisions[0];
    assert_eq!((revision.principal.as_str(), revision.role.as_str()), ("sam.steward", "steward"));
    assert_eq!(revision.comment, "clarify the grain");
    assert_eq!(revision.before.as_ref().and_then(|b| b["description"].as_str()), Some(original.as_str()));
    assert_eq!(revision.after["description"], "Edited: one row per registered user.");

    // The same edit again changes nothing and records nothing.
    let (outcome, detail) = quarry.edit_table(&steward(), "users", &body).expect("edit");
    assert_eq!((outcome.revision, detail.revisions.len()), (None, 1));

    // The edit survives a restart.
    drop(quarry);
    let quarry = open_private(dir.path());
    assert_eq!(
        quarry.catalog().table("users").map(|t| t.description.clone()).as_deref(),
        Some("Edited: one row per registered user.")
    );
    assert!(quarry.conflicts().is_empty());

    // The files change the same table: the files win, and the conflict is reported.
    drop(quarry);
    let file = dir.path().join("schemas/users.toml");
    let text = std::fs::read_to_string(&file).expect("users.toml");
    std::fs::write(&file, text.replace(&original, "Changed in review: one row per user account."))
        .expect("write");
    let quarry = open_private(dir.path());
    assert_eq!(
        quarry.catalog().table("users").map(|t| t.description.clone()).as_deref(),
        Some("Changed in review: one row per user account.")
    );
    let conflicts = quarry.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!((conflicts[0].target.as_str(), conflicts[0].edited_by.as_str()), ("users", "sam.steward"));
    let detail = quarry.table_detail(&steward(), "users").expect("detail");
    assert!(detail.conflict.is_some(), "the table's detail shows its conflict");

    // Editing again resolves it.
    quarry
        .edit_table(
            &steward(),
            "users",
            &json!({ "tier": 1, "description": "Final.", "comment": "re-apply" }),
        )
        .expect("edit");
    assert!(quarry.conflicts().is_empty());
}

/// A conflict is shown only to roles that may read its table: a denied table's name, and what
/// a steward wrote about it, never reach a role that may not read it.
#[test]
fn conflicts_are_shown_only_to_roles_that_may_read_the_table() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let original = quarry.catalog().table("user_sessions").map(|t| t.description.clone()).expect("sessions");
    let body = json!({ "description": "Edited: one row per session.", "comment": "clarify the grain" });
    quarry.edit_table(&steward(), "user_sessions", &body).expect("edit");
    drop(quarry);
    let file = dir.path().join("schemas/users.toml");
    let text = std::fs::read_to_string(&file).expect("users.toml");
    std::fs::write(&file, text.replace(&original, "Changed in review: one row per session.")).expect("write");
    let quarry = open_private(dir.path());
    let seen = |principal: &Principal| -> Vec<String> {
        let conflicts = quarry.conflicts_seen_by(principal).expect("conflicts");
        conflicts.into_iter().map(|c| c.target).collect()
    };
    assert_eq!(seen(&steward()), ["user_sessions"]);
    // The regional analyst's role denies user_sessions: no conflict is theirs to see.
    assert!(seen(&Principal::new("rita", "regional_analyst")).is_empty());
    // A role that is not defined may not read the catalog at all.
    assert!(quarry.conflicts_seen_by(&Principal::new("x", "nobody")).is_err());
}

/// Every endpoint, as nobody, a forged key and each demo role: 401, 403 or success.
#[tokio::test]
async fn every_endpoint_enforces_keys_and_roles() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let patch = json!({ "freshness": "hourly", "comment": "role test" });
    let term = json!({ "definition": "Orders with status 'completed'.", "tables": ["orders"], "comment": "role test" });
    let endpoints: Vec<(&str, &str, Option<Value>, [u16; 3])> = vec![
        // method, path, body, expected status for analyst, steward, admin
        (
            "POST",
            "/api/v1/ask",
            Some(json!({ "question": "top three plans by zebra count" })),
            [200, 200, 200],
        ),
        ("POST", "/api/v1/sql", Some(json!({ "sql": "SELECT COUNT(*) AS n FROM orders" })), [200, 200, 200]),
        ("GET", "/api/v1/catalog/tables", None, [200, 200, 200]),
        ("GET", "/api/v1/catalog/tables/orders", None, [200, 200, 200]),
        ("PATCH", "/api/v1/catalog/tables/orders", Some(patch), [403, 200, 200]),
        ("GET", "/api/v1/catalog/glossary", None, [200, 200, 200]),
        ("PUT", "/api/v1/catalog/glossary/completed%20order", Some(term), [403, 200, 200]),
        ("GET", "/api/v1/catalog/conflicts", None, [200, 200, 200]),
        ("GET", "/api/v1/search/tables?q=revenue", None, [200, 200, 200]),
        ("GET", "/api/v1/search/queries?q=revenue", None, [200, 200, 200]),
        ("GET", "/api/v1/audit", None, [403, 403, 200]),
        ("GET", "/api/v1/me", None, [200, 200, 200]),
        (
            "POST",
            "/api/v1/feedback",
            Some(
                json!({ "question": "orders", "sql": "SELECT COUNT(*) AS n FROM orders", "verdict": "down" }),
            ),
            [200, 200, 200],
        ),
    ];
    for (method, path, body, expected) in endpoints {
        for who in [As::Nobody, As::Forged] {
            let (status, answer) = request(quarry.clone(), who, method, path, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} as {who:?}: {answer}");
            assert_eq!(answer["error"], "unauthorized");
        }
        for (role, expected) in ["analyst", "steward", "admin"].into_iter().zip(expected) {
            let (status, answer) = request(quarry.clone(), As::Role(role), method, path, body.clone()).await;
            assert_eq!(status.as_u16(), expected, "{method} {path} as {role}: {answer}");
            if expected == 403 {
                assert_eq!(answer["error"], "forbidden");
                assert!(
                    answer["message"].as_str().unwrap_or("").contains(&format!("role '{role}' may not")),
                    "{answer}"
                );
            }
        }
    }
    // A role that may not read a table does not see it in the catalog.
    let (status, answer) = request(
        quarry.clone(),
        As::Role("regional_analyst"),
        "GET",
        "/api/v1/catalog/tables/advertisers",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (_, answer) =
        request(quarry.clone(), As::Role("regional_analyst"), "GET", "/api/v1/catalog/tables", None).await;
    let names: Vec<&str> =
        answer["tables"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"orders") && !names.contains(&"advertisers"), "{names:?}");
}

#[tokio::test]
async fn bad_edits_are_422_with_the_allowed_values_and_nothing_changes() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let before = quarry.catalog().table("users").map(|t| t.governance());
    for (body, field, allowed) in [
        (json!({ "tier": 7, "comment": "x" }), "tier", "1 (certified)"),
        (
            json!({ "columns": { "email": { "tags": ["pii", "piii"] } }, "comment": "x" }),
            "columns.email.tags",
            "pii:email",
        ),
        (json!({ "columns": { "emial": { "description": "x" } }, "comment": "x" }), "columns.emial", "email"),
        (json!({ "tiers": 1, "comment": "x" }), "tiers", "tier"),
    ] {
        let (status, answer) = request(
            quarry.clone(),
            As::Role("steward"),
            "PATCH",
            "/api/v1/catalog/tables/users",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        let fields = answer["fields"].as_array().cloned().unwrap_or_default();
        let entry = fields.iter().find(|f| f["field"] == field).unwrap_or_else(|| panic!("{body}: {answer}"));
        assert!(entry["allowed"].as_array().into_iter().flatten().any(|a| a == allowed), "{body}: {answer}");
    }
    let (status, answer) = request(
        quarry.clone(),
        As::Role("steward"),
        "PATCH",
        "/api/v1/catalog/tables/nope",
        Some(json!({ "comment": "x" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) =
        request(quarry.clone(), As::Role("steward"), "GET", "/api/v1/catalog/tables?tier=gold", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(quarry.catalog().table("users").map(|t| t.governance()), before);
}

fn top_table(quarry: &quarry::pipeline::Quarry, q: &str) -> String {
    let tables = quarry.search_tables(&Principal::local(), q, 3).expect("search");
    tables.first().map(|t| t.name.clone()).unwrap_or_default()
}

#[test]
fn an_edited_description_changes_what_retrieval_returns() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let question = "which quasar observatories logged the most telescope nights";
    assert_ne!(top_table(&quarry, question), "topics");
    let body = json!({
        "description": "Quasar observatories: one row per telescope night logged by each observatory.",
        "comment": "re-purposed for the astronomy team"
    });
    quarry.edit_table(&steward(), "topics", &body).expect("edit");
    assert_eq!(top_table(&quarry, question), "topics", "the edited description is searched at once");
    // And after a restart, from the index on disk.
    drop(quarry);
    let quarry = open_private(dir.path());
    assert!(!quarry.index_report().rebuilt, "the edit updated the index in place");
    assert_eq!(top_table(&quarry, question), "topics");
}

#[tokio::test]
async fn edits_and_refused_edits_are_audited() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let body = json!({ "columns": { "product_name": { "tags": ["sensitive"] } }, "comment": "supplier names are confidential" });
    let (status, answer) = request(
        quarry.clone(),
        As::Role("steward"),
        "PATCH",
        "/api/v1/catalog/tables/products",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let revision = answer["revision"].as_i64().expect("revision id");
    let (status, _) =
        request(quarry.clone(), As::Role("analyst"), "PATCH", "/api/v1/catalog/tables/products", Some(body))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, answer) =
        request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/audit?kind=edit", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let records = answer["records"].as_array().cloned().unwrap_or_default();
    let edit =
        records.iter().find(|r| r["detail"]["revision"] == revision).unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(edit["principal"], "test-steward");
    assert_eq!(edit["outcome"], "answered");
    assert_eq!(edit["detail"]["changed"], json!(["columns.product_name.tags"]));
    assert_eq!(edit["detail"]["comment"], "supplier names are confidential");
    assert!(
        records.iter().any(|r| r["principal"] == "test-analyst" && r["outcome"] == "refused"),
        "{answer}"
    );

    let (_, answer) = request(
        quarry.clone(),
        As::Role("admin"),
        "GET",
        "/api/v1/audit?principal=test-analyst&kind=edit",
        None,
    )
    .await;
    assert!(
        answer["records"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["principal"] == "test-analyst")),
        "{answer}"
    );
    let (status, _) =
        request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/audit?since=yesterday", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) =
        request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/audit?kind=delete", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, answer) =
        request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/audit?until=2000-01-01", None).await;
    assert_eq!(answer["records"], json!([]));

    // The new tag governs the next query at once: the analyst role denies nothing 'sensitive'
    // but the steward role does.
    let refused = quarry.run_sql("SELECT product_name FROM products", &steward());
    assert!(matches!(refused, Err(quarry::pipeline::AskError::Refused { .. })), "{refused:?}");
}

/// The steward session of the issue, through the library: tag a PII column, deprecate a
/// table, annotate a table; an analyst's next queries see all three.
#[test]
fn a_steward_session_governs_the_next_analyst_queries() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let analyst = Principal::local();
    assert!(quarry.run_sql("SELECT product_name FROM products LIMIT 1", &analyst).is_ok());
    quarry
        .edit_table(
            &steward(),
            "products",
            &json!({ "columns": { "product_name": { "tags": ["pii"] } }, "comment": "names identify suppliers' staff" }),
        )
        .expect("tag");
    quarry
        .edit_table(
            &steward(),
            "orders_staging",
            &json!({ "deprecated": { "replacement": "orders", "note": "the nightly load is gone" }, "comment": "retire" }),
        )
        .expect("deprecate");
    let refused = quarry.run_sql("SELECT product_name FROM products LIMIT 1", &analyst);
    match refused {
        Err(quarry::pipeline::AskError::Refused { refusal, .. }) => {
            assert!(refusal.violations.iter().any(|v| v.code.as_str() == "forbidden_column"), "{refusal:?}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let answer =
        quarry.run_sql("SELECT COUNT(*) AS n FROM orders_staging", &analyst).expect("warned, not refused");
    assert!(
        answer.warnings.iter().any(|w| w.code.as_str() == "deprecated_table" && w.message.contains("orders")),
        "{:?}",
        answer.warnings
    );
    let detail = quarry.table_detail(&analyst, "orders_staging").expect("detail");
    assert_eq!(detail.table.deprecated.as_ref().map(|d| d.replacement.as_str()), Some("orders"));
    assert_eq!(detail.signals.ownership, "active", "a steward reviewed it just now");
    assert!(detail.signals.days_behind.is_some_and(|d| d > 30), "{:?}", detail.signals);
    assert_eq!(detail.signals.documentation, 1.0, "every demo column is described: {:?}", detail.signals);
}

#[test]
fn catalog_check_and_export_from_the_command_line() {
    let dir = private_workspace();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(args)
            .current_dir(repo_root())
            .env("QUARRY_CONFIG", repo_root().join("quarry.toml"))
            .env("QUARRY_WORKSPACE", dir.path())
            .env("QUARRY_GOVERNANCE", dir.path().join("schemas"))
            .output()
            .expect("run quarry")
    };
    let out = run(&["catalog", "check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("catalog ok: 18 tables"), "{out:?}");
    let export = dir.path().join("export");
    let out = run(&["catalog", "export", "--dir", export.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in ["ads.toml", "commerce.toml", "content.toml", "users.toml"] {
        assert!(export.join(name).is_file(), "{name} exported");
    }

    let out = run(&["keys", "create", "--name", "ana", "--role", "regional_analyst", "--attr", "country=FR"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(key.starts_with("qk_"), "{key}");
    let out = run(&["keys", "create", "--name", "bob", "--role", "wizard"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("role 'wizard' is not defined"), "{out:?}");
    let out = run(&["keys", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains("ana") && listing.contains("country=FR") && !listing.contains(&key),
        "{listing}"
    );
    let out = run(&["keys", "revoke", "ana"]);
    assert!(out.status.success());
    let out = run(&["audit", "export", "--kind", "edit"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let actions: Vec<&str> = lines.iter().filter_map(|l| l["detail"]["action"].as_str()).collect();
    assert_eq!(actions, ["key_revoked", "key_created"], "{lines:?}");
}

/// A workspace with a second warehouse: its tables join the catalog (governed by the same
/// files and policies) and queries read both, with or without the source prefix.
#[test]
fn a_second_warehouse_is_read_beside_the_first() {
    let dir = private_workspace();
    let finance = dir.path().join("finance.sqlite");
    let conn = rusqlite::Connection::open(&finance).expect("finance db");
    conn.execute_batch(
        "CREATE TABLE invoices (invoice_id INTEGER PRIMARY KEY, user_id INTEGER, amount REAL, card_holder TEXT, issued_on TEXT);
         INSERT INTO invoices VALUES (1, 1, 10.0, 'Ada L', '2026-10-01'), (2, 1, 5.5, 'Ada L', '2026-10-02'),
                                     (3, 2, 7.25, 'Bo K', '2026-10-03');",
    )
    .expect("seed finance");
    drop(conn);
    std::fs::write(
        dir.path().join("schemas/finance.toml"),
        r#"
[tables.invoices]
description = "One row per invoice issued to a user."
tier = 1
owner = "finance@quarry.example"
domain = "finance"

[tables.invoices.columns]
card_holder = { description = "Name on the card.", tags = ["pii", "pii:name"] }
"#,
    )
    .expect("governance");
    let mut config = crate::support::config_for(dir.path());
    config.governance = dir.path().join("schemas");
    config.sources = vec![quarry::config::Source { name: "finance".into(), path: finance.clone() }];
    let open = |config: quarry::config::Config| {
        quarry::pipeline::Quarry::open(config, crate::support::embedder(), None)
    };
    let quarry = open(config.clone()).expect("open with two sources");
    let invoices = quarry.catalog().table("invoices").cloned().expect("invoices in the catalog");
    assert_eq!((invoices.source.as_str(), invoices.row_count), ("finance", Some(3)));
    assert_eq!(quarry.catalog().sources(), ["main", "finance"]);

    let analyst = Principal::local();
    let joined = quarry
        .run_sql(
            "SELECT u.user_id, SUM(i.amount) AS total FROM invoices i JOIN users u ON u.user_id = i.user_id \
             GROUP BY u.user_id ORDER BY u.user_id",
            &analyst,
        )
        .expect("a join across sources runs");
    assert_eq!(joined.result.rows, vec![vec![json!(1), json!(15.5)], vec![json!(2), json!(7.25)]]);
    let qualified = quarry.run_sql("SELECT COUNT(*) FROM finance.invoices", &analyst).expect("qualified");
    assert_eq!(qualified.result.rows, vec![vec![json!(3)]]);
    for (sql, needle) in [
        ("SELECT COUNT(*) FROM main.invoices", "write finance.invoices"),
        ("SELECT COUNT(*) FROM finance.users", "'users' is in source 'main'"),
        ("SELECT card_holder FROM invoices", "tagged 'pii'"),
    ] {
        match quarry.run_sql(sql, &analyst) {
            Err(quarry::pipeline::AskError::Refused { refusal, .. }) => {
                let text = format!("{refusal:?}");
                assert!(text.contains(needle), "{sql}: {text}");
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
    // The steward reads the name masked: the rewrite reads the table in its own source.
    let masked =
        quarry.run_sql("SELECT card_holder FROM invoices WHERE invoice_id = 3", &steward()).expect("masked");
    assert_eq!(masked.result.rows, vec![vec![json!("***")]], "{}", masked.sql);
    assert!(masked.sql.contains("finance.\"invoices\""), "{}", masked.sql);
    drop(quarry);

    // A table name in two sources is refused at open, naming both.
    let clash = dir.path().join("clash.sqlite");
    rusqlite::Connection::open(&clash)
        .and_then(|c| c.execute_batch("CREATE TABLE users (id INTEGER)"))
        .expect("clash db");
    let mut clashing = config.clone();
    clashing.sources.push(quarry::config::Source { name: "crm".into(), path: clash });
    let error = open(clashing).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.contains("table 'users' of source 'crm' has the name of a table of source 'main'"),
        "{error}"
    );
    let mut missing = config;
    missing.sources[0].path = dir.path().join("nope.sqlite");
    let error = open(missing).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("nope.sqlite"), "{error}");
}

#[test]
fn date_columns_are_read_for_their_format_unix_seconds_and_years_included() {
    let dir = tempfile::Builder::new().prefix("quarry-dates-").tempdir().expect("temp dir");
    let path = dir.path().join("flights.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("db");
    conn.execute_batch(
        "CREATE TABLE flights (flight_id INTEGER PRIMARY KEY, departure_time INTEGER, day TEXT, year INTEGER,
                               booked_at TEXT, fare_time INTEGER);
         INSERT INTO flights VALUES (1, 1700000000, 'Monday', 2023, '2023-11-14 22:13:20', 95),
                                    (2, 1700086400, 'Tuesday', 2023, '2023-11-15 09:00:00', 120);",
    )
    .expect("seed");
    drop(conn);
    let catalog = quarry::warehouse::introspect(&path).expect("introspect");
    let table = catalog.table("flights").expect("flights");
    let format = |name: &str| table.column(name).and_then(|c| c.date_format.clone());
    assert_eq!(format("departure_time").as_deref(), Some(quarry::catalog::UNIX_SECONDS));
    assert_eq!(format("year").as_deref(), Some("YYYY"));
    assert_eq!(format("booked_at").as_deref(), Some("YYYY-MM-DD HH:MM:SS"));
    // Weekday names are no dates; a small integer in a "_time" column is no Unix time.
    assert_eq!((format("day"), format("fare_time")), (None, None));
}

#[test]
fn text_columns_of_every_declared_text_type_are_sampled_for_their_values() {
    let dir = tempfile::Builder::new().prefix("quarry-affinity-").tempdir().expect("temp dir");
    let path = dir.path().join("pets.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("db");
    conn.execute_batch(
        "CREATE TABLE pets (pet_id INTEGER PRIMARY KEY, pet_type VARCHAR(20), sex CHAR(1), notes CLOB,
                            breed TEXT, weight REAL, tag_count INT, code CHARINT);
         INSERT INTO pets VALUES (1, 'dog', 'F', 'calm', 'collie', 12.5, 1, 7),
                                 (2, 'cat', 'M', 'shy', 'siamese', 3.2, 2, 8),
                                 (3, 'dog', 'M', 'calm', 'collie', 9.0, 1, 9);",
    )
    .expect("seed");
    drop(conn);
    let catalog = quarry::warehouse::introspect(&path).expect("introspect");
    let table = catalog.table("pets").expect("pets");
    let values = |name: &str| table.column(name).map(|c| c.sample_values.clone()).unwrap_or_default();
    // VARCHAR, CHAR and CLOB have text affinity in SQLite as much as TEXT does.
    assert_eq!(values("pet_type"), ["cat", "dog"]);
    assert_eq!(values("sex"), ["F", "M"]);
    assert_eq!(values("notes"), ["calm", "shy"]);
    assert_eq!(values("breed"), ["collie", "siamese"]);
    // Numbers are no sample values, and a type naming INT has integer affinity first.
    assert!(values("weight").is_empty() && values("tag_count").is_empty() && values("code").is_empty());
}
