//! Policy through the pipeline and the HTTP API: refusals are 422 with the policy codes and are
//! never repaired, the model is shown only what the role may read, every request is audited
//! with its role, and roles configured wrong fail loudly.

use axum::http::StatusCode;
use quarry::config::Config;
use quarry::pipeline::{AccessError, AskError, Principal};
use serde_json::{json, Value};

use crate::support::{config_for, demo_policy, repo_root, request, scripted, shared_workspace, As};

async fn post(path: &str, body: Value) -> (StatusCode, Value) {
    request(scripted(), As::Role("analyst"), "POST", path, Some(body)).await
}

fn codes(body: &Value) -> Vec<String> {
    body["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["code"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn a_policy_refusal_from_the_model_is_final() {
    let (status, body) =
        post("/api/v1/ask", json!({ "question": "list the e-mail address of every user" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(codes(&body), ["forbidden_column"], "{body}");
    assert_eq!(body["sql"], "SELECT user_id, email FROM users", "no repair round: {body}");
}

#[tokio::test]
async fn sql_policy_refusals_are_422_with_the_violation() {
    let (status, body) = post("/api/v1/sql", json!({ "sql": "SELECT u.* FROM users u" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(codes(&body), ["forbidden_column", "forbidden_column"], "email and full_name: {body}");
    assert!(body["violations"][0]["hint"].as_str().is_some_and(|h| h.contains("instead of *")), "{body}");
}

#[tokio::test]
async fn answers_say_how_the_policy_shaped_them() {
    let (status, body) =
        post("/api/v1/sql", json!({ "sql": "SELECT id FROM user_profiles_v1 LIMIT 2" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["governance"]["role"], "analyst", "{body}");
    assert_eq!(body["governance"]["row_cap"], 1000, "{body}");
    assert_eq!(body["warnings"][0]["code"], "deprecated_table", "{body}");
    assert!(body["warnings"][0]["hint"].as_str().is_some_and(|h| h.contains("users")), "{body}");
}

#[test]
fn the_pipeline_applies_the_principals_role() {
    let quarry = scripted();
    let regional = Principal::new("test-regional", "regional_analyst").with_attribute("country", "JP");
    let answer = quarry
        .run_sql("SELECT DISTINCT country_code FROM orders", &regional)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.result.rows, vec![vec![json!("JP")]]);
    assert!(answer.sql.contains("country_code = 'JP'"), "{}", answer.sql);

    let steward = Principal::new("test-steward", "steward");
    let answer =
        quarry.run_sql("SELECT email FROM users LIMIT 2", &steward).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.result.rows, vec![vec![json!("***")], vec![json!("***")]]);
    assert_eq!(answer.governance.masked_columns, ["email"]);

    let intern = Principal::new("test-intern", "intern");
    assert!(matches!(
        quarry.run_sql("SELECT 1", &intern),
        Err(AskError::Forbidden(AccessError::UnknownRole { .. }))
    ));

    let records = quarry.metadata().recent_audit(1000).expect("audit");
    for (principal, role, outcome) in [
        ("test-regional", "regional_analyst", "answered"),
        ("test-steward", "steward", "answered"),
        ("test-intern", "intern", "refused"),
    ] {
        assert!(
            records.iter().any(|r| r.principal == principal && r.role == role && r.outcome == outcome),
            "no {outcome} audit record for {principal} ({role})"
        );
    }
}

#[test]
fn the_model_sees_only_what_the_role_may_read() {
    let config = config_for(shared_workspace());
    let catalog = quarry::warehouse::load_catalog(
        config.warehouse.sqlite_path().expect("a SQLite warehouse"),
        &config.governance,
    )
    .expect("catalog");
    let policy = demo_policy();
    let analyst = policy.get("analyst").expect("analyst").visible_catalog(&catalog);
    let users = analyst.table("users").expect("users");
    assert!(users.column("email").is_none() && users.column("full_name").is_none());
    assert!(users.column("plan").is_some());
    let regional = policy.get("regional_analyst").expect("regional").visible_catalog(&catalog);
    for hidden in ["advertisers", "user_sessions", "user_profiles_v1", "orders_staging"] {
        assert!(regional.table(hidden).is_none(), "{hidden} is visible");
    }
    let admin = policy.get("admin").expect("admin").visible_catalog(&catalog);
    assert_eq!(admin.tables().count(), catalog.tables().count());
}

/// Retrieval reads names only in the catalog the role may read: a column the analyst may not
/// see (`email`) neither lifts its table nor shows in the evidence, while an admin's retrieval
/// of the same question names it.
#[test]
fn names_a_role_may_not_read_give_no_lift_and_no_evidence() {
    let quarry = scripted();
    let named = |role: &str| {
        let retrieved = quarry
            .retrieval("the email of each one", &Principal::new("test", role), &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        retrieved
            .tables
            .iter()
            .filter(|t| t.evidence.iter().any(|e| e.starts_with("the question uses its name")))
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    assert!(named("admin").iter().any(|t| t == "users"), "{:?}", named("admin"));
    assert!(!named("analyst").iter().any(|t| t == "users"), "{:?}", named("analyst"));
}

#[test]
fn the_log_is_valid_but_its_personal_queries_are_refused_to_analysts() {
    let quarry = scripted();
    let history = std::fs::read_to_string(config_for(shared_workspace()).history).expect("history");
    let refused = history
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|entry| entry["sql"].as_str().map(String::from))
        .filter(|sql| matches!(quarry.run_sql(sql, &Principal::local()), Err(AskError::Refused { .. })))
        .count();
    assert_eq!(refused, 6, "the demo log holds 6 queries that read personal data");
}

#[test]
fn policy_configuration_errors_name_the_role_and_the_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |text: &str| {
        let path = dir.path().join("quarry.toml");
        std::fs::write(&path, text).expect("write");
        path
    };
    for (text, needle) in [
        ("[policy.roles.admin]\n", "'analyst' is not defined"),
        ("[policy.roles.analyst]\ntiers = [0]\n", "tier must be 1, 2 or 3"),
        ("[policy.roles.analyst]\ndeny_tag = [\"pii\"]\n", "unknown field `deny_tag`"),
        (
            "[policy.roles.analyst]\nrow_filters = [{ table = \"orders\", predicate = \"country_code = :country\" }]\n",
            "write :principal.<attribute>",
        ),
    ] {
        let err = Config::load(Some(&write(text))).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("quarry.toml") && err.contains(needle), "{text}: {err}");
    }
    // Against the catalog: names and tags must exist.
    let catalog = {
        let config = config_for(shared_workspace());
        quarry::warehouse::load_catalog(
            config.warehouse.sqlite_path().expect("a SQLite warehouse"),
            &config.governance,
        )
        .expect("catalog")
    };
    for (text, needle) in [
        ("[policy.roles.analyst]\ntables_denied = [\"userz\"]\n", "did you mean 'users'"),
        ("[policy.roles.analyst]\ndeny_tags = [\"ppi\"]\n", "tag 'ppi' is on no column"),
        (
            "[policy.roles.analyst]\nrow_filters = [{ table = \"orders\", predicate = \"region = :principal.region\" }]\n",
            "no table in scope has a column 'region'",
        ),
        (
            "[policy.roles.analyst]\nrow_filters = [{ table = \"order\", predicate = \"1 = 1\" }]\n",
            "did you mean 'orders'",
        ),
    ] {
        let config = Config::load(Some(&write(text))).unwrap_or_else(|e| panic!("{text}: {e}"));
        let err = quarry::validate::check_roles(&config.policy, &catalog).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("[policy.roles.analyst]") && err.contains(needle), "{text}: {err}");
    }
    // The repository's own configuration is valid.
    let config = Config::load(Some(&repo_root().join("quarry.toml"))).expect("quarry.toml");
    quarry::validate::check_roles(&config.policy, &catalog).expect("demo policy matches the demo catalog");
}

/// The glossary a role reads holds no term about tables it may not read: a definition names
/// what it hides ("CPC: SUM(spend) / SUM(clicks) from ad_daily_stats").
#[tokio::test]
async fn the_glossary_holds_no_term_about_tables_the_role_may_not_read() {
    let terms = |body: serde_json::Value| -> Vec<String> {
        body["terms"]
            .as_array()
            .expect("terms")
            .iter()
            .filter_map(|t| t["term"].as_str().map(String::from))
            .collect()
    };
    let (status, body) =
        request(scripted(), As::Role("analyst"), "GET", "/api/v1/catalog/glossary", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(terms(body).iter().any(|t| t == "CPC"), "the analyst reads the ads terms");
    let (status, body) =
        request(scripted(), As::Role("regional_analyst"), "GET", "/api/v1/catalog/glossary", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let denied = ["advertisers", "ad_campaigns", "ad_daily_stats", "ad_conversions", "user_sessions"];
    for term in body["terms"].as_array().expect("terms") {
        let tables: Vec<&str> =
            term["tables"].as_array().expect("tables").iter().filter_map(|t| t.as_str()).collect();
        assert!(!tables.iter().any(|t| denied.contains(t)), "{term}");
        assert!(!term["definition"].as_str().unwrap_or_default().contains("ad_daily_stats"), "{term}");
    }
    let kept = terms(body);
    assert!(!kept.iter().any(|t| t == "CPC" || t == "session"), "{kept:?}");
    assert!(kept.iter().any(|t| t == "revenue"), "{kept:?}");
}
