//! `quarry serve`: the web page and the HTTP API on one port.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use quarry::config::Config;
use quarry::keys;
use quarry::pipeline::Quarry;

use super::admin::print_demo_keys;
use super::open;

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

pub(super) fn serve(config: Config) -> Result<ExitCode> {
    let address = format!("{}:{}", config.host, config.port);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        // Bind first: a port in use is reported before minutes of model loading.
        let listener = tokio::net::TcpListener::bind(&address).await.with_context(|| {
            format!(
                "cannot listen on {address}: is another server using it? Pass --port N or set QUARRY_PORT"
            )
        })?;
        let demo = config.demo;
        let quarry =
            tokio::task::spawn_blocking(move || open(config)).await.context("opening the workspace")??;
        // Row filters that stop at their table, once at start-up (and in `catalog check`).
        for warning in quarry.config().policy.unfiltered_children(&quarry.catalog()) {
            tracing::warn!("{warning}");
        }
        let active_keys = quarry.metadata().keys()?.iter().filter(|k| k.revoked_at.is_none()).count();
        let mut open_url = format!("http://{address}");
        if demo && active_keys == 0 {
            let created = keys::create_demo_keys(quarry.metadata(), &quarry.config().policy)?;
            print_demo_keys(quarry.config(), &created)?;
            if let Some((_, key)) = created.iter().find(|(k, _)| k.role == "analyst") {
                open_url = format!("http://{address}/#key={key}");
            }
        } else if active_keys == 0 {
            eprintln!("no API keys yet: create one with `quarry keys create --name <you> --role analyst`");
        }
        eprintln!("Quarry is serving {open_url} (model {})", quarry.model_id());
        let _serving = Serving::mark(&quarry.config().workspace, &format!("http://{address}"));
        let quarry = Arc::new(quarry);
        tokio::spawn(take_in_changes(quarry.clone(), quarry.config().metadata_poll));
        let app = quarry::http::app(quarry);
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Every `every`, what other instances sharing the metadata store wrote (steward edits,
/// history, verdicts) is taken in; the loop ends with the runtime.
async fn take_in_changes(quarry: Arc<Quarry>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let quarry = quarry.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || quarry.take_in_changes()).await {
            tracing::warn!("taking in changes from the metadata store: {e}");
        }
    }
}

/// `quarry mcp`: the MCP tools on stdio, as the principal of `QUARRY_API_KEY`. Nothing but the
/// protocol goes to stdout; logs go to stderr.
pub(super) fn mcp(config: Config) -> Result<ExitCode> {
    let key = std::env::var("QUARRY_API_KEY").unwrap_or_default();
    if key.trim().is_empty() {
        anyhow::bail!(
            "QUARRY_API_KEY is not set: `quarry mcp` acts as the principal of an API key; create one with `quarry keys create --name <you> --role analyst` and put it in the MCP client's environment"
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let quarry =
            tokio::task::spawn_blocking(move || open(config)).await.context("opening the workspace")??;
        let principal = keys::authenticate(quarry.metadata(), Some(&format!("Bearer {}", key.trim())))
            .context("QUARRY_API_KEY is not a valid API key of this workspace (see `quarry keys list`)")?;
        tracing::info!(principal = %principal.name, role = %principal.role, "serving MCP on stdio");
        quarry::http::mcp::serve_stdio(Arc::new(quarry), principal).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `serving.json` in the workspace while `quarry serve` runs there: which process holds the
/// workspace and where it answers, for a command that finds the workspace held. Removed when
/// the server stops.
struct Serving(PathBuf);

const SERVING: &str = "serving.json";

impl Serving {
    fn mark(workspace: &Path, url: &str) -> Serving {
        let path = workspace.join(SERVING);
        let marker = serde_json::json!({ "pid": std::process::id(), "url": url });
        if let Err(e) = std::fs::write(&path, marker.to_string()) {
            tracing::warn!("writing {}: {e}", path.display());
        }
        Serving(path)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The running `quarry serve` that marked `workspace`, as words: None when there is no marker
/// or its process is gone.
pub(super) fn holder(workspace: &Path) -> Option<String> {
    let text = std::fs::read_to_string(workspace.join(SERVING)).ok()?;
    let marker: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = marker["pid"].as_u64()?;
    let url = marker["url"].as_str()?;
    Path::new(&format!("/proc/{pid}")).exists().then(|| format!("`quarry serve` (pid {pid}, serving {url})"))
}
