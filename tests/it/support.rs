//! Shared fixtures: one demo workspace per test run, opened with a scripted or a real model.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

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
        quarry::demo::create(
            config.warehouse.sqlite_path().expect("a SQLite warehouse"),
            &config.history,
            quarry::demo::DEFAULT_SEED,
        )
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

/// The Spider data (`QUARRY_SPIDER`, else `config::DEFAULT_SPIDER_DIR` beside the checkout), or
/// None after saying on the terminal (past the test harness's capture) which test it skips
/// and why. A clone without `../shared` passes; CI, which has the data, must run it: under
/// `CI=true` missing data fails the test instead.
pub fn spider_or_skip(test: &str) -> Option<PathBuf> {
    let dir = quarry::config::spider_dir(repo_root());
    if dir.join("tables.json").is_file() && dir.join("dev.json").is_file() {
        return Some(dir);
    }
    let why = format!(
        "no Spider data (tables.json, dev.json) at {}; set QUARRY_SPIDER to its folder",
        dir.display()
    );
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{test}: {why}");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    None
}

/// The turn of a test with the real model: None (and says so) when such tests should not run
/// (they run when `QUARRY_E2E=1`), else a guard held for the test's length. One such test runs
/// at a time: two models decoding on two cores slow each other down more than twofold, while
/// the scripted tests go on beside the one that runs.
pub fn real_model_turn() -> Option<MutexGuard<'static, ()>> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    if !std::env::var("QUARRY_E2E").is_ok_and(|v| v == "1") {
        eprintln!("skipped: set QUARRY_E2E=1 to run tests with the real model");
        return None;
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
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

/// A fresh copy of the demo workspace (warehouse, query log, governance files) that a test may
/// change: steward edits, key changes. Its governance folder is `<dir>/schemas`.
pub fn private_workspace() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("quarry-private-").tempdir().expect("temp dir");
    for file in ["warehouse.sqlite", "history.jsonl"] {
        std::fs::copy(shared_workspace().join(file), dir.path().join(file)).expect("copy the demo workspace");
    }
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas).expect("schemas dir");
    for entry in std::fs::read_dir(repo_root().join("schemas/demo")).expect("schemas/demo") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, schemas.join(path.file_name().expect("name"))).expect("copy governance file");
    }
    dir
}

/// Opens a private workspace with the scripted model.
pub fn open_private(dir: &Path) -> Arc<Quarry> {
    open_private_with(dir, ScriptedLlm::new(SCRIPT.iter().copied()))
}

/// Opens a private workspace with a scripted model of the test's own.
pub fn open_private_with(dir: &Path, llm: ScriptedLlm) -> Arc<Quarry> {
    let mut config = config_for(dir);
    config.governance = dir.join("schemas");
    let llm: Arc<dyn Llm> = Arc::new(llm);
    Arc::new(Quarry::open(config, embedder(), Some(llm)).expect("open private workspace"))
}

/// An API key of `role` for `quarry`'s workspace (created once per workspace and role; the
/// principal is named `test-<role>`, with country=DE).
pub fn api_key(quarry: &Quarry, role: &str) -> String {
    static KEYS: OnceLock<Mutex<HashMap<(PathBuf, String), String>>> = OnceLock::new();
    let mut keys = KEYS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    keys.entry((quarry.config().workspace.clone(), role.to_string()))
        .or_insert_with(|| {
            let attributes = BTreeMap::from([("country".to_string(), "DE".to_string())]);
            let (_, key) = quarry::keys::create(
                quarry.metadata(),
                &quarry.config().policy,
                &format!("test-{role}"),
                role,
                attributes,
                "tests",
            )
            .expect("create a test key");
            key
        })
        .clone()
}

/// Who a test request claims to be.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    /// No Authorization header.
    Nobody,
    /// A key that was never issued.
    Forged,
    /// A valid key of this role.
    Role(&'a str),
}

/// One request through the real app (no port), as `who`; the JSON body of the answer.
pub async fn request(
    quarry: Arc<Quarry>,
    who: As<'_>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder().method(method).uri(path).header("content-type", "application/json");
    match who {
        As::Nobody => {}
        As::Forged => builder = builder.header("authorization", format!("Bearer qk_{}", "0".repeat(64))),
        As::Role(role) => {
            builder = builder.header("authorization", format!("Bearer {}", api_key(&quarry, role)))
        }
    }
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let response =
        quarry::http::app(quarry).oneshot(builder.body(body).expect("request")).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
    (status, value)
}

/// Asks `question` as the local analyst and checks the answer's rows against `gold`'s, as the
/// evaluation compares them; the answer, for more checks.
pub fn assert_answers(
    quarry: &Quarry,
    question: &str,
    options: &quarry::pipeline::AskOptions,
    gold: &str,
) -> quarry::pipeline::Answer {
    let principal = quarry::pipeline::Principal::local();
    let expected = quarry.run_sql(gold, &principal).expect("gold runs");
    let answer = quarry.ask_with(question, &principal, options).unwrap_or_else(|e| panic!("{question}: {e}"));
    assert!(
        quarry::eval::same_result(&expected.result, &answer.result, quarry::eval::has_order_by(gold)),
        "{question}\nmodel SQL: {}\nrows: {:?}\nexpected: {:?}",
        answer.sql,
        answer.result.rows,
        expected.result.rows
    );
    answer
}

/// The throwaway cluster's superuser URL (`QUARRY_TEST_POSTGRES`, set by
/// `scripts/with-postgres.sh`), or None after saying which test it skips. CI runs `make test`,
/// which provides the cluster: there a missing URL fails the test.
pub fn admin_or_skip(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("QUARRY_TEST_POSTGRES") {
        return Some(url);
    }
    let why = "no PostgreSQL cluster: run the suite through scripts/with-postgres.sh (make test does)";
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{test}: {why}");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    None
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let cut = url.rfind('/').unwrap_or(url.len());
    format!("{}/{database}", &url[..cut])
}

/// An empty database of one test on the test cluster, dropped with the test, and the logins
/// made for it.
pub struct TestDatabase {
    admin: String,
    pub name: String,
    /// The database, as the cluster's superuser.
    pub url: String,
    roles: Vec<String>,
}

impl TestDatabase {
    /// A new database named after `test` (unique in the run).
    pub fn create(admin: &str, test: &str) -> TestDatabase {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("quarry_{test}_{}_{next}", std::process::id());
        let mut client =
            postgres::Client::connect(admin, postgres::NoTls).expect("connect to the test cluster");
        client.batch_execute(&format!("CREATE DATABASE {name}")).expect("create the test database");
        TestDatabase { admin: admin.to_string(), url: with_database(admin, &name), name, roles: Vec::new() }
    }

    /// A login `<database>_<suffix>` with `password`, dropped after the database; its URL to
    /// this database. It may do nothing yet.
    pub fn login(&mut self, suffix: &str, password: &str) -> String {
        let role = format!("{}_{suffix}", self.name);
        let mut client =
            postgres::Client::connect(&self.admin, postgres::NoTls).expect("connect to the test cluster");
        client
            .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            .expect("create a login");
        self.roles.push(role.clone());
        let host_and_database = self.url.split('@').nth(1).unwrap_or_default();
        format!("postgres://{role}:{password}@{host_and_database}")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            for role in &self.roles {
                let _ = client.batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
            }
        }
    }
}

/// A fresh database owned by a login of its own (which may therefore create tables in its
/// `public` schema), and that login's URL.
pub fn metadata_database(admin: &str) -> (TestDatabase, String) {
    let mut database = TestDatabase::create(admin, "meta");
    let url = database.login("owner", "owner-pw");
    let mut client = postgres::Client::connect(admin, postgres::NoTls).expect("connect to the test cluster");
    client
        .batch_execute(&format!("ALTER DATABASE {0} OWNER TO {0}_owner", database.name))
        .expect("hand the database to its login");
    (database, url)
}

/// The Qdrant server of `QDRANT_URL` (its gRPC URL), for the server variants of the vector-store
/// tests; None after saying on the terminal, past the harness's capture, what `test` skips.
/// `scripts/with-qdrant.sh` (`make test`, CI) sets it when a server binary is cached.
pub fn qdrant_or_skip(test: &str) -> Option<String> {
    match std::env::var("QDRANT_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test} on a Qdrant server: QDRANT_URL is not set (scripts/with-qdrant.sh sets it when a Qdrant server binary is cached)"
            );
            None
        }
    }
}

/// Where a test keeps a vector index: Qdrant Edge in a folder of its own, or collections of its
/// own on the Qdrant server of `QDRANT_URL` (removed when dropped).
pub enum IndexAt {
    Edge(tempfile::TempDir),
    Server(quarry::vector_store::ServerSettings),
}

impl IndexAt {
    /// Qdrant Edge in a new folder.
    pub fn edge() -> IndexAt {
        IndexAt::Edge(tempfile::Builder::new().prefix("quarry-vectors-").tempdir().expect("temp dir"))
    }

    /// New collections on the server at `url`.
    pub fn server(url: &str) -> IndexAt {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        IndexAt::Server(quarry::vector_store::ServerSettings {
            url: url.to_string(),
            api_key: std::env::var("QUARRY_VECTORS_API_KEY").ok(),
            prefix: format!("it{}_{n}", std::process::id()),
            timeout: std::time::Duration::from_secs(30),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            IndexAt::Edge(_) => "Qdrant Edge",
            IndexAt::Server(_) => "Qdrant server",
        }
    }

    pub fn location(&self) -> quarry::vector_store::VectorsLocation {
        use quarry::vector_store::VectorsLocation;
        match self {
            IndexAt::Edge(dir) => VectorsLocation::Embedded(dir.path().to_path_buf()),
            IndexAt::Server(settings) => VectorsLocation::Server(settings.clone()),
        }
    }

    /// `config` with its vector index here (a workspace's own `vectors/` for Qdrant Edge).
    pub fn configure(&self, config: &mut Config) {
        if let IndexAt::Server(settings) = self {
            config.vectors_url = Some(settings.url.clone());
            config.vectors_api_key = settings.api_key.clone();
            config.vectors_prefix = settings.prefix.clone();
            config.vectors_timeout = settings.timeout;
        }
    }
}

impl Drop for IndexAt {
    fn drop(&mut self) {
        if let IndexAt::Server(settings) = self {
            if let Err(e) = quarry::vector_store::QdrantServerStore::remove_collections(settings) {
                eprintln!("could not remove the test collections {}_*: {e}", settings.prefix);
            }
        }
    }
}

/// Qdrant Edge, and the Qdrant server of `QDRANT_URL` when it is set (else a visible skip line
/// for `test`): the backends a parameterised test runs on.
pub fn index_backends(test: &str) -> Vec<IndexAt> {
    let mut backends = vec![IndexAt::edge()];
    backends.extend(qdrant_or_skip(test).map(|url| IndexAt::server(&url)));
    backends
}

/// Opens a private workspace (see `private_workspace`) with the scripted model and its vector
/// index at `index`.
pub fn open_private_at(dir: &Path, index: &IndexAt) -> Arc<Quarry> {
    let mut config = config_for(dir);
    config.governance = dir.join("schemas");
    index.configure(&mut config);
    let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::new(SCRIPT.iter().copied()));
    Arc::new(Quarry::open(config, embedder(), Some(llm)).expect("open private workspace"))
}
