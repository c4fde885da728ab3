//! The `quarry` binary: exit codes and messages for good and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use crate::support::{config_for, repo_root, shared_workspace};

/// A copy of the shared demo workspace for the CLI's processes: the vector index allows one
/// process at a time, and the tests' in-process workspace holds the shared one's.
fn cli_workspace() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("quarry-cli-").tempdir().expect("temp dir").keep();
        for file in ["warehouse.sqlite", "history.jsonl"] {
            std::fs::copy(shared_workspace().join(file), dir.join(file)).expect("copy the demo workspace");
        }
        dir
    })
}

fn quarry(workspace: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    // One quarry process at a time: each opens the workspace's vector index.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let config = config_for(workspace);
    let mut command = Command::new(env!("CARGO_BIN_EXE_quarry"));
    command
        .args(args)
        .current_dir(repo_root())
        .env("QUARRY_CONFIG", repo_root().join("quarry.toml"))
        .env("QUARRY_WORKSPACE", workspace)
        .env("QUARRY_GOVERNANCE", &config.governance)
        .env("QUARRY_THREADS", "2");
    for (k, v) in extra_env {
        command.env(k, v);
    }
    command.output().expect("run quarry")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn sql_prints_rows_and_exits_zero() {
    let out = quarry(
        cli_workspace(),
        &["sql", "SELECT region, COUNT(*) AS n FROM countries GROUP BY region ORDER BY region"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Asia Pacific") && stdout.contains("(5 rows)"), "{stdout}");
}

#[test]
fn refused_sql_exits_3_with_the_violation() {
    let out = quarry(cli_workspace(), &["sql", "UPDATE users SET plan = 'pro'"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("not_read_only"), "{}", text(&out));
}

#[test]
fn sql_json_output_is_machine_readable() {
    let out = quarry(cli_workspace(), &["sql", "--json", "SELECT COUNT(*) AS n FROM countries"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(value["result"]["rows"][0][0], 12);
}

#[test]
fn a_missing_model_file_is_a_clear_error() {
    let out =
        quarry(cli_workspace(), &["ask", "how many users?"], &[("QUARRY_MODEL", "/nonexistent/model.gguf")]);
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out);
    assert!(message.contains("/nonexistent/model.gguf") && message.contains("make assets"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port().to_string();
    let out = quarry(cli_workspace(), &["serve", "--port", &port], &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out);
    assert!(message.contains(&port) && message.contains("--port"), "{message}");
}

#[test]
fn bad_config_values_are_named() {
    let out = quarry(cli_workspace(), &["sql", "SELECT 1"], &[("QUARRY_PORT", "eighty")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("QUARRY_PORT=eighty"), "{}", text(&out));
}

#[test]
fn demo_and_index_are_idempotent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = quarry(dir.path(), &["demo"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let first = quarry(dir.path(), &["index"], &[]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("rebuilt"), "{}", text(&first));
    let second = quarry(dir.path(), &["index"], &[]);
    assert!(String::from_utf8_lossy(&second.stdout).contains("already up to date"), "{}", text(&second));
}

#[test]
fn index_migrate_copies_the_index_to_a_server_and_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = quarry(dir.path(), &["index", "migrate", "--to", "embedded"], &[]);
    assert!(!out.status.success() && text(&out).contains("already there"), "{}", text(&out));
    let out = quarry(dir.path(), &["index", "migrate", "--to", "qdrant.example:6334"], &[]);
    assert!(
        !out.status.success() && text(&out).contains("--to: 'qdrant.example:6334' is not"),
        "{}",
        text(&out)
    );
    let Some(url) = crate::support::qdrant_or_skip("index_migrate_copies_the_index_to_a_server_and_back")
    else {
        return;
    };
    let index = crate::support::IndexAt::server(&url);
    let crate::support::IndexAt::Server(settings) = &index else { unreachable!("a server index") };
    let prefix = [("QUARRY_VECTORS_PREFIX", settings.prefix.as_str())];
    let out = quarry(dir.path(), &["index", "migrate", "--to", &url], &prefix);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tables and") && stdout.contains("(counts checked)"), "{stdout}");
    assert!(stdout.contains(&format!("[vectors] url = \"{url}\"")), "{stdout}");
    // The copy carries the fingerprint: an instance on the server does not embed again.
    let on_server = [prefix[0], ("QUARRY_VECTORS_URL", url.as_str())];
    let out = quarry(dir.path(), &["index"], &on_server);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already up to date"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(dir.path().join("vectors"));
    let out = quarry(dir.path(), &["index", "migrate", "--to", "embedded"], &on_server);
    assert!(out.status.success() && text(&out).contains("remove [vectors] url"), "{}", text(&out));
    let out = quarry(dir.path(), &["index"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already up to date"), "{}", text(&out));
}

#[test]
fn role_and_attributes_select_the_policy() {
    let sql = "SELECT country_code, COUNT(*) AS n FROM orders GROUP BY country_code";
    let out =
        quarry(cli_workspace(), &["sql", "--role", "regional_analyst", "--attr", "country=DE", sql], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("DE") && stdout.contains("(1 row)"), "{stdout}");
    assert!(stdout.contains("row filter (regional_analyst): orders: country_code = 'DE'"), "{stdout}");

    let out = quarry(cli_workspace(), &["sql", "--role", "regional_analyst", sql], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("table_not_allowed") && text(&out).contains("'country'"), "{}", text(&out));

    let out = quarry(cli_workspace(), &["sql", "SELECT email FROM users"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("forbidden_column"), "{}", text(&out));

    let out = quarry(cli_workspace(), &["sql", "--role", "steward", "SELECT email FROM users LIMIT 1"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("***"), "{}", text(&out));

    let out = quarry(cli_workspace(), &["sql", "--role", "intern", "SELECT 1"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("role 'intern' is not defined"), "{}", text(&out));

    let out = quarry(cli_workspace(), &["sql", "--attr", "country", "SELECT 1"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("KEY=VALUE"), "{}", text(&out));
}

#[test]
fn json_logs_are_one_object_per_line_and_a_wrong_format_is_named() {
    let out = quarry(
        cli_workspace(),
        &["sql", "SELECT 1 AS one"],
        &[("QUARRY_LOG_FORMAT", "json"), ("QUARRY_LOG", "quarry=debug")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        events.iter().any(|e| e["kind"] == "sql" && e["outcome"] == "answered" && e["level"] == "DEBUG"),
        "{stderr}"
    );
    let out = quarry(cli_workspace(), &["sql", "SELECT 1"], &[("QUARRY_LOG_FORMAT", "xml")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("QUARRY_LOG_FORMAT=\"xml\" is not a log format; set it to text"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_command_on_a_workspace_a_server_holds_names_the_server_and_what_to_do() {
    let workspace = tempfile::Builder::new().prefix("quarry-held-").tempdir().expect("temp dir");
    for file in ["warehouse.sqlite", "history.jsonl"] {
        std::fs::copy(shared_workspace().join(file), workspace.path().join(file))
            .expect("copy the demo workspace");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let config = config_for(workspace.path());
    // A model server that is never called: serving needs no model until someone asks.
    let mut server = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["serve", "--port", &port.to_string()])
        .current_dir(repo_root())
        .env("QUARRY_CONFIG", repo_root().join("quarry.toml"))
        .env("QUARRY_WORKSPACE", workspace.path())
        .env("QUARRY_GOVERNANCE", &config.governance)
        .env("QUARRY_LLM_URL", "http://127.0.0.1:9/v1")
        .env("QUARRY_THREADS", "2")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start quarry serve");
    let marker = workspace.path().join("serving.json");
    let started = std::time::Instant::now();
    while !marker.exists() {
        assert!(server.try_wait().expect("server").is_none(), "quarry serve exited");
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "quarry serve did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = quarry(workspace.path(), &["sql", "SELECT 1"], &[]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains(&format!("is held by `quarry serve` (pid {}", server.id())), "{message}");
    assert!(message.contains(&format!("http://127.0.0.1:{port}")), "{message}");
    assert!(message.contains("POST /api/v1/sql") && !message.contains("Delete that folder"), "{message}");
}
