//! Shared fixtures: one demo workspace per test run, opened with a scripted or a real model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use quarry::config::Config;
use quarry::embed::Embedder;
use quarry::llm::{Llm, ScriptedLlm};
use quarry::pipeline::{load_default_embedder, load_default_llm, Quarry};
use quarry::policy::PolicySet;

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A config for a workspace folder, with the repository's demo governance files and the demo
/// roles of its `quarry.toml`.
pub fn config_for(workspace: &Path) -> Config {
    let mut config = Config::for_workspace(workspace);
    config.governance = repo_root().join("schemas/demo");
    config.threads = 2;
    config.policy = demo_policy();
    config
}

/// The roles of the repository's `quarry.toml` (analyst, steward, admin, regional_analyst).
pub fn demo_policy() -> PolicySet {
    static POLICY: OnceLock<PolicySet> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            Config::load(Some(&repo_root().join("quarry.toml"))).expect("quarry.toml loads").policy
        })
        .clone()
}

/// The demo workspace shared by all tests in this run (created once, read-only afterwards).
pub fn shared_workspace() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("quarry-it-").tempdir().expect("temp dir").keep();
        let config = config_for(&dir);
        quarry::demo::create(&config.warehouse, &config.history, quarry::demo::DEFAULT_SEED)
            .expect("demo workspace");
        dir
    })
}

pub fn embedder() -> Arc<dyn Embedder> {
    static EMBEDDER: OnceLock<Arc<dyn Embedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            load_default_embedder(&config_for(Path::new("/nonexistent")))
                .expect("embedding assets: run `make assets` (scripts/fetch-assets.sh)")
        })
        .clone()
}

/// Questions the scripted model knows, and the raw text it answers with.
pub const SCRIPT: &[(&str, &str)] = &[
    (
        "top three plans by zebra count",
        "```sql\nSELECT plan, COUNT(*) AS users FROM users GROUP BY plan ORDER BY users DESC LIMIT 3\n```",
    ),
    ("please drop everything now", "DROP TABLE users"),
    ("unknown column please", "SELECT plann FROM users"),
    // The repair round replies to the failed attempt with its error: answer it correctly.
    ("no table in scope has a column 'nonexistent_column'", "SELECT COUNT(*) AS orders FROM orders"),
    ("count the orders with a typo first", "SELECT nonexistent_column FROM orders"),
    // A policy refusal is final. Were it repaired, this rule would answer the repair turn.
    ("may not read it", "SELECT COUNT(*) AS n FROM users"),
    ("list the e-mail address of every user", "SELECT user_id, email FROM users"),
];

/// The shared demo workspace opened with the scripted model (one instance per test run).
pub fn scripted() -> Arc<Quarry> {
    static QUARRY: OnceLock<Arc<Quarry>> = OnceLock::new();
    QUARRY
        .get_or_init(|| {
            let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::new(SCRIPT.iter().copied()));
            let config = config_for(shared_workspace());
            Arc::new(Quarry::open(config, embedder(), Some(llm)).expect("open scripted workspace"))
        })
        .clone()
}

/// True when the slow tests with the real model should run.
pub fn e2e_enabled() -> bool {
    std::env::var("QUARRY_E2E").is_ok_and(|v| v == "1")
}

/// The shared demo workspace opened with the real model.
pub fn real() -> Arc<Quarry> {
    static QUARRY: OnceLock<Arc<Quarry>> = OnceLock::new();
    QUARRY
        .get_or_init(|| {
            let dir = tempfile::Builder::new().prefix("quarry-e2e-").tempdir().expect("temp dir").keep();
            let config = config_for(&dir);
            let llm = load_default_llm(&config).expect("model assets: run `make assets`");
            Arc::new(Quarry::open(config, embedder(), Some(llm)).expect("open real workspace"))
        })
        .clone()
}
