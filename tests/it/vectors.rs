//! The vector store on each backend: Qdrant Edge always, and a Qdrant server through
//! qdrant-client when `QDRANT_URL` is set (`scripts/with-qdrant.sh`; a line says what is skipped
//! otherwise). The same points, filters, retrieval and answers on both, and an index copied from
//! one to the other and back unchanged.

use std::collections::BTreeMap;

use quarry::pipeline::{load_default_llm, Principal, Quarry};
use quarry::vector_store::{self, Collection, Equals, Point, VectorStore, VectorStoreError};
use serde_json::{json, Value};

use crate::support::{
    assert_answers, config_for, embedder, index_backends, open_private_at, private_workspace, qdrant_or_skip,
    real_model_turn, IndexAt,
};

const DIM: usize = 8;

/// A unit-free vector for point `i`: distinct directions, so nearest-first order has no ties.
fn vector(i: u64) -> Vec<f32> {
    (0..DIM)
        .map(|d| {
            ((i as f32 + 1.0) * (d as f32 + 1.3)).sin() + if d as u64 == i % DIM as u64 { 2.0 } else { 0.0 }
        })
        .collect()
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// Points whose payloads hold every JSON kind Quarry writes: strings, whole numbers, floats,
/// booleans, arrays and objects.
fn points(ids: std::ops::Range<u64>) -> Vec<Point> {
    ids.map(|i| Point {
        id: i,
        vector: vector(i),
        payload: quarry::index::object(json!({
            "table": format!("t{i}"),
            "db": if i % 2 == 0 { "sales" } else { "ops" },
            "tier": (i % 3) as i64,
            "deprecated": i % 4 == 0,
            "tables": [format!("t{i}"), "users"],
            "share": i as f64 / 8.0,
            "structure": { "joins": i % 5, "label": format!("query {i}") },
        })),
    })
    .collect()
}

/// What a few searches return: ids in order and payloads (scores rounded), comparable across
/// backends.
fn searches(store: &dyn VectorStore) -> Vec<Vec<(u64, String, Value)>> {
    let filters: [&[Equals]; 4] = [
        &[],
        &[Equals { field: "db", value: json!("sales") }],
        &[Equals { field: "deprecated", value: json!(false) }, Equals { field: "tier", value: json!(1) }],
        &[Equals { field: "db", value: json!("nowhere") }],
    ];
    let mut seen = Vec::new();
    for query in [vector(3), vector(11), vec![1.0; DIM]] {
        for filter in filters {
            let hits = store.search(Collection::Tables, &query, 5, filter).expect("search");
            seen.push(
                hits.into_iter()
                    .map(|h| (h.id, format!("{:.4}", h.score), Value::Object(h.payload)))
                    .collect(),
            );
        }
    }
    seen
}

/// Every point of a collection, by scrolling pages of `page`.
fn all_points(store: &dyn VectorStore, collection: Collection, page: usize) -> Vec<Point> {
    let mut out = Vec::new();
    let mut from = None;
    loop {
        let next = store.scroll(collection, from, page).expect("scroll");
        assert!(next.points.len() <= page);
        out.extend(next.points);
        match next.next {
            Some(id) => from = Some(id),
            None => return out,
        }
    }
}

#[test]
fn the_store_keeps_ids_payloads_and_filters_alike_on_every_backend() {
    let mut seen_by_backend = Vec::new();
    for backend in index_backends("the_store_keeps_ids_payloads_and_filters_alike_on_every_backend") {
        let store = vector_store::open(&backend.location(), DIM).expect("open");
        let name = backend.name();
        assert_eq!(store.count(Collection::Tables).expect("count"), 0, "{name}: a new store is empty");
        store.replace_all(Collection::Tables, points(0..20)).expect("replace_all");
        assert_eq!(store.count(Collection::Tables).expect("count"), 20, "{name}");
        assert_eq!(store.count(Collection::Queries).expect("count"), 0, "{name}: collections are apart");

        // Nearest first, with the payload as written.
        let hits = store.search(Collection::Tables, &vector(7), 3, &[]).expect("search");
        assert_eq!(hits[0].id, 7, "{name}");
        assert!((hits[0].score - 1.0).abs() < 1e-4, "{name}: {}", hits[0].score);
        assert_eq!(
            Value::Object(hits[0].payload.clone()),
            Value::Object(points(7..8)[0].payload.clone()),
            "{name}"
        );
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "{name}");

        // Filters on strings, booleans and whole numbers; every hit passes them all.
        let filter =
            [Equals { field: "deprecated", value: json!(false) }, Equals { field: "tier", value: json!(2) }];
        let hits = store.search(Collection::Tables, &vector(0), 20, &filter).expect("search");
        let expected: Vec<u64> = (0..20).filter(|i| i % 4 != 0 && i % 3 == 2).collect();
        let mut ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, expected, "{name}");
        let hits =
            store.search(Collection::Tables, &vector(0), 20, &[Equals { field: "db", value: json!("ops") }]);
        assert!(hits.expect("search").iter().all(|h| h.payload["db"] == "ops"), "{name}");
        let wrong =
            store.search(Collection::Tables, &vector(0), 5, &[Equals { field: "share", value: json!(0.5) }]);
        assert!(
            matches!(wrong, Err(VectorStoreError::Operation(ref m)) if m.contains("integers")),
            "{name}: {wrong:?}"
        );

        seen_by_backend.push((name, searches(store.as_ref())));

        // Upsert replaces by id; replace_all leaves only the new points.
        let mut changed = points(5..6);
        changed[0].payload.insert("table".into(), json!("renamed"));
        store.upsert(Collection::Tables, changed).expect("upsert");
        let hit = &store.search(Collection::Tables, &vector(5), 1, &[]).expect("search")[0];
        assert_eq!((hit.id, &hit.payload["table"]), (5, &json!("renamed")), "{name}");
        assert_eq!(store.count(Collection::Tables).expect("count"), 20, "{name}");
        store.replace_all(Collection::Tables, points(100..103)).expect("replace_all");
        assert_eq!(store.count(Collection::Tables).expect("count"), 3, "{name}");
        assert!(store
            .search(Collection::Tables, &vector(5), 3, &[])
            .expect("search")
            .iter()
            .all(|h| h.id >= 100));

        // Scrolling pages through every point in id order, with vectors (stored normalised for
        // cosine) and payloads.
        store.replace_all(Collection::Queries, points(0..600)).expect("replace_all");
        let read = all_points(store.as_ref(), Collection::Queries, 256);
        assert_eq!(read.len(), 600, "{name}");
        for (got, written) in read.iter().zip(points(0..600)) {
            assert_eq!((got.id, &got.payload), (written.id, &written.payload), "{name}");
            let want = normalized(&written.vector);
            assert!(
                got.vector.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
                "{name}: point {}",
                got.id
            );
        }

        // The fingerprint is kept with the index.
        assert_eq!(store.fingerprint().expect("fingerprint"), None, "{name}");
        store.set_fingerprint(Some("model+docs v1")).expect("set");
        assert_eq!(store.fingerprint().expect("fingerprint").as_deref(), Some("model+docs v1"), "{name}");
        drop(store);
        let reopened = vector_store::open(&backend.location(), DIM).expect("reopen");
        assert_eq!(reopened.fingerprint().expect("fingerprint").as_deref(), Some("model+docs v1"), "{name}");
        assert_eq!(reopened.count(Collection::Queries).expect("count"), 600, "{name}: kept across opens");
        reopened.set_fingerprint(None).expect("forget");
        assert_eq!(reopened.fingerprint().expect("fingerprint"), None, "{name}");
    }
    // The same searches find the same points with the same payloads on every backend.
    for pair in seen_by_backend.windows(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} and {} differ", pair[0].0, pair[1].0);
    }
}

#[test]
fn a_collection_made_for_other_vectors_is_refused_with_the_fix() {
    for backend in index_backends("a_collection_made_for_other_vectors_is_refused_with_the_fix") {
        drop(vector_store::open(&backend.location(), DIM).expect("open"));
        let error =
            vector_store::open(&backend.location(), DIM * 2).err().expect("a size mismatch is refused");
        let message = error.to_string();
        assert!(matches!(error, VectorStoreError::Mismatch { .. }), "{}: {message}", backend.name());
        assert!(
            message.contains("size 8")
                && message.contains("size 16")
                && message.contains("collection_prefix"),
            "{}: {message}",
            backend.name()
        );
    }
}

#[test]
fn an_unreachable_server_is_named_with_the_fix() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let settings = quarry::vector_store::ServerSettings {
        url: format!("http://127.0.0.1:{port}"),
        api_key: None,
        prefix: "unreachable".into(),
        timeout: std::time::Duration::from_secs(2),
    };
    let error =
        vector_store::open(&vector_store::VectorsLocation::Server(settings), DIM).err().expect("refused");
    let message = error.to_string();
    assert!(matches!(error, VectorStoreError::Unreachable { .. }), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")) && message.contains("6334"), "{message}");
}

#[test]
fn an_index_migrates_to_the_server_and_back_unchanged() {
    let source = IndexAt::edge();
    let from = vector_store::open(&source.location(), DIM).expect("open");
    from.replace_all(Collection::Tables, points(0..20)).expect("tables");
    from.replace_all(Collection::Queries, points(1000..1700)).expect("queries");
    from.set_fingerprint(Some("fp-1")).expect("fingerprint");

    // Without a server, the copy goes through a second embedded store (the same code path).
    let middle = match qdrant_or_skip("an_index_migrates_to_the_server_and_back_unchanged") {
        Some(url) => IndexAt::server(&url),
        None => IndexAt::edge(),
    };
    let there = vector_store::open(&middle.location(), DIM).expect("open target");
    there.replace_all(Collection::Tables, points(500..520)).expect("stale points in the target");
    let mut progress = BTreeMap::new();
    let report = vector_store::migrate(from.as_ref(), there.as_ref(), &mut |c, done, total| {
        progress.insert(c.name(), (done, total));
    })
    .expect("migrate there");
    assert_eq!(report.copied, vec![(Collection::Tables, 20), (Collection::Queries, 700)]);
    assert_eq!(progress["queries"], (700, 700));

    let back = IndexAt::edge();
    let home = vector_store::open(&back.location(), DIM).expect("open");
    vector_store::migrate(there.as_ref(), home.as_ref(), &mut |_, _, _| {}).expect("migrate back");

    for store in [there.as_ref(), home.as_ref()] {
        assert_eq!(
            store.fingerprint().expect("fingerprint").as_deref(),
            Some("fp-1"),
            "{}",
            store.describe()
        );
        for collection in Collection::ALL {
            let want = all_points(from.as_ref(), collection, 300);
            let got = all_points(store, collection, 300);
            assert_eq!(got.len(), want.len(), "{}", store.describe());
            for (a, b) in got.iter().zip(&want) {
                assert_eq!((a.id, &a.payload), (b.id, &b.payload), "{}", store.describe());
                assert!(a.vector.iter().zip(&b.vector).all(|(x, y)| (x - y).abs() < 1e-5));
            }
        }
        assert_eq!(searches(store), searches(from.as_ref()), "{}", store.describe());
    }
    assert_eq!(from.count(Collection::Queries).expect("count"), 700, "the source is left as it was");
}

/// Demo questions whose retrieval is compared across backends.
const QUESTIONS: &[&str] = &[
    "How many orders were refunded in September 2026?",
    "total revenue by product category last month",
    "Which 5 countries had the most active users in October 2026?",
    "How many paid users does each plan have?",
];

/// The default embedder remembers what it embedded, and what it gives is the model's own: a
/// text remembered from one batch gets the vector a fresh embedder gives it in another, each
/// in its place.
#[test]
fn remembered_vectors_are_the_models_own_in_their_places() {
    let texts: Vec<String> = [
        "orders per country last month",
        "revenue of completed orders",
        "users on each plan",
        "refund rate by region",
    ]
    .map(String::from)
    .to_vec();
    let remembering =
        quarry::pipeline::load_default_embedder(&config_for(std::path::Path::new("/nonexistent")))
            .expect("embedding assets: run `make assets`");
    remembering.embed(&texts[1..3]).expect("first batch");
    let mixed = remembering.embed(&texts).expect("remembered and new texts");
    let fresh = quarry::pipeline::load_default_embedder(&config_for(std::path::Path::new("/nonexistent")))
        .expect("embedding assets")
        .embed(&texts)
        .expect("one batch");
    assert_eq!(mixed.len(), texts.len());
    for (i, (a, b)) in mixed.iter().zip(&fresh).enumerate() {
        let gap = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(gap < 1e-4, "{}: differs by {gap}", texts[i]);
    }
    let similarity = quarry::embed::cosine(&mixed[0], &mixed[2]);
    assert!(similarity < 0.99, "different texts got the same vector: {similarity}");
}

fn top_table(quarry: &Quarry, question: &str) -> String {
    let tables = quarry.search_tables(&Principal::local(), question, 3).expect("search");
    tables.first().map(|t| t.name.clone()).unwrap_or_default()
}

#[test]
fn retrieval_and_steward_edits_work_alike_on_every_backend() {
    let mut seen_by_backend = Vec::new();
    for backend in index_backends("retrieval_and_steward_edits_work_alike_on_every_backend") {
        let name = backend.name();
        let dir = private_workspace();
        let quarry = open_private_at(dir.path(), &backend);
        assert!(quarry.index_report().rebuilt && quarry.index_report().tables > 10, "{name}");
        let mut seen = Vec::new();
        for question in QUESTIONS {
            let retrieved =
                quarry.retrieval(question, &Principal::local(), &Default::default()).expect("retrieval");
            let tables: Vec<String> = retrieved.tables.iter().map(|t| t.name.clone()).collect();
            let examples: Vec<String> = retrieved.examples.iter().map(|e| e.label.clone()).collect();
            assert!(!tables.is_empty() && !examples.is_empty(), "{name}: {question}");
            seen.push((tables, examples));
        }
        seen_by_backend.push((name, seen));

        // On a server, a second instance with the same files finds the shared index current.
        if let IndexAt::Server(_) = backend {
            let twin = private_workspace();
            let second = open_private_at(twin.path(), &backend);
            assert!(!second.index_report().rebuilt, "{name}: the shared index is not embedded again");
        }

        // A steward's edit is searched at once, and kept in the index across a restart.
        let question = "which quasar observatories logged the most telescope nights";
        assert_ne!(top_table(&quarry, question), "topics", "{name}");
        let body = json!({
            "description": "Quasar observatories: one row per telescope night logged by each observatory.",
            "comment": "re-purposed for the astronomy team"
        });
        quarry.edit_table(&crate::catalog::steward(), "topics", &body).expect("edit");
        assert_eq!(top_table(&quarry, question), "topics", "{name}");
        drop(quarry);
        let quarry = open_private_at(dir.path(), &backend);
        assert!(!quarry.index_report().rebuilt, "{name}: the edit updated the index in place");
        assert_eq!(top_table(&quarry, question), "topics", "{name}");
    }
    for pair in seen_by_backend.windows(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} and {} retrieve differently", pair[0].0, pair[1].0);
    }
}

#[test]
fn the_real_model_answers_from_a_server_index() {
    let Some(_turn) = real_model_turn() else { return };
    let Some(url) = qdrant_or_skip("the_real_model_answers_from_a_server_index") else { return };
    let index = IndexAt::server(&url);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config_for(dir.path());
    index.configure(&mut config);
    let llm = load_default_llm(&config).expect("model assets: run `make assets`");
    let quarry = Quarry::open(config, embedder(), Some(llm)).expect("open workspace on the server index");
    let answer = assert_answers(
        &quarry,
        "How many users who signed up in 2026 are on each plan?",
        &Default::default(),
        "SELECT plan, COUNT(*) FROM users WHERE signup_date BETWEEN '2026-01-01' AND '2026-12-31' GROUP BY plan",
    );
    assert!(answer.tables.iter().any(|t| t.name == "users" && !t.evidence.is_empty()), "{:?}", answer.tables);
}

/// A Qdrant server of the test's own, from the binary `scripts/with-qdrant.sh` starts
/// (`QUARRY_QDRANT_BIN`, else `~/.cache/quarry/qdrant/qdrant`), on free loopback ports with its
/// storage in a temporary folder; stopped when dropped.
struct OwnServer {
    child: std::process::Child,
    url: String,
    /// Its REST port's URL (not what Quarry talks to).
    rest_url: String,
    _dir: tempfile::TempDir,
}

impl OwnServer {
    /// None after a visible skip line when there is no binary.
    fn start(test: &str, api_key: &str) -> Option<OwnServer> {
        let bin = std::env::var_os("QUARRY_QDRANT_BIN").map(std::path::PathBuf::from).unwrap_or_else(|| {
            let cache =
                std::env::var_os("XDG_CACHE_HOME").map(std::path::PathBuf::from).unwrap_or_else(|| {
                    std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("quarry/qdrant/qdrant")
        });
        if !bin.is_file() {
            // Past the harness's capture, so the skip shows in CI's output.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no Qdrant server binary at {} (README.md, 'Qdrant server')",
                bin.display()
            );
            return None;
        }
        let port =
            || std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let (http, grpc) = (port(), port());
        let dir = tempfile::tempdir().expect("temp dir");
        let child = std::process::Command::new(&bin)
            .current_dir(dir.path())
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", http.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", grpc.to_string())
            .env("QDRANT__SERVICE__API_KEY", api_key)
            .env("QDRANT__STORAGE__STORAGE_PATH", dir.path().join("storage"))
            .env("QDRANT__STORAGE__SNAPSHOTS_PATH", dir.path().join("snapshots"))
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the Qdrant server");
        let server = OwnServer {
            child,
            url: format!("http://127.0.0.1:{grpc}"),
            rest_url: format!("http://127.0.0.1:{http}"),
            _dir: dir,
        };
        // Ready when its REST port answers /readyz (open to callers without a key).
        let ready = (0..300).any(|_| {
            use std::io::{Read, Write};
            let answered = std::net::TcpStream::connect(("127.0.0.1", http)).ok().and_then(|mut s| {
                s.write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
                let mut reply = String::new();
                s.read_to_string(&mut reply).ok()?;
                Some(reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"))
            });
            if answered == Some(true) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        });
        assert!(ready, "the Qdrant server at {} did not start", server.url);
        Some(server)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_server_with_an_api_key_takes_only_that_key() {
    let Some(server) = OwnServer::start("a_server_with_an_api_key_takes_only_that_key", "s3cret-key") else {
        return;
    };
    let at = |key: Option<&str>| {
        vector_store::VectorsLocation::Server(quarry::vector_store::ServerSettings {
            url: server.url.clone(),
            api_key: key.map(str::to_string),
            prefix: "keyed".into(),
            timeout: std::time::Duration::from_secs(10),
        })
    };
    for key in [None, Some("wrong-key")] {
        let error = vector_store::open(&at(key), DIM).err().expect("refused without the server's key");
        let message = error.to_string();
        assert!(matches!(error, VectorStoreError::Unauthorized { .. }), "{key:?}: {message}");
        assert!(message.contains("QUARRY_VECTORS_API_KEY") && !message.contains("s3cret"), "{message}");
    }
    // Its REST port is not where Quarry talks to it: named as such, with the gRPC port's hint.
    let mut rest = at(Some("s3cret-key"));
    if let vector_store::VectorsLocation::Server(settings) = &mut rest {
        settings.url = server.rest_url.clone();
    }
    let error = vector_store::open(&rest, DIM).err().expect("a REST port is refused");
    assert!(
        matches!(error, VectorStoreError::Unreachable { .. }) && error.to_string().contains("6334"),
        "{error}"
    );
    let store = vector_store::open(&at(Some("s3cret-key")), DIM).expect("the server's key is taken");
    store.replace_all(Collection::Tables, points(0..3)).expect("write");
    assert_eq!(store.count(Collection::Tables).expect("count"), 3);
}
