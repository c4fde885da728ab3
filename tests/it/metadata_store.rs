//! Quarry's metadata store on both engines: every check runs on a SQLite file in a temporary
//! folder and, inside `scripts/with-postgres.sh`, on a fresh PostgreSQL database owned by a
//! login of its own (the setup the README gives). What the database itself must refuse
//! (UPDATE and DELETE of the append-only tables) is tried past `Metadata`, with each engine's
//! own client.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Barrier};

use postgres::NoTls;
use serde_json::json;

use quarry::config::MetadataLocation;
use quarry::history::structure::QueryStructure;
use quarry::history::verdict::{NewVerdict, VerdictKind};
use quarry::history::{IntentSource, LoggedQuery, PastQuery};
use quarry::llm::{Llm, ScriptedLlm};
use quarry::metadata::{
    AuditFilter, AuditKind, AuditRecord, Metadata, MetadataError, NewKey, NewRevision, NewTurn, Outcome,
    RevisionTarget, TurnChoice, TurnPlace,
};
use quarry::pipeline::{Feedback, Quarry, Verdict};
use quarry::policy::Principal;
use quarry::warehouse::PostgresUrl;

use crate::support::{
    admin_or_skip, config_for, embedder, metadata_database, private_workspace, TestDatabase, SCRIPT,
};

/// One metadata store under test.
struct Store {
    engine: &'static str,
    location: MetadataLocation,
    metadata: Metadata,
    /// The PostgreSQL database's URL with its password, for the raw client.
    url: Option<String>,
    _dir: Option<tempfile::TempDir>,
    _database: Option<TestDatabase>,
}

impl Store {
    fn sqlite() -> Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let location = MetadataLocation::Sqlite(dir.path().join("meta").join("quarry.db"));
        let metadata = Metadata::open_location(&location).expect("open the SQLite metadata");
        Store { engine: "sqlite", location, metadata, url: None, _dir: Some(dir), _database: None }
    }

    fn postgres(admin: &str) -> Store {
        let (database, url) = metadata_database(admin);
        let location = MetadataLocation::Postgres(PostgresUrl::parse(&url).expect("url"));
        let metadata = Metadata::open_location(&location).expect("open the PostgreSQL metadata");
        Store {
            engine: "postgres",
            location,
            metadata,
            url: Some(url),
            _dir: None,
            _database: Some(database),
        }
    }

    /// Runs `sql` on the database directly, past `Metadata`; Err: the database's message.
    fn execute(&self, sql: &str) -> Result<(), String> {
        match (&self.location, &self.url) {
            (MetadataLocation::Sqlite(path), _) => {
                rusqlite::Connection::open(path).and_then(|c| c.execute_batch(sql)).map_err(|e| e.to_string())
            }
            (MetadataLocation::Postgres(_), Some(url)) => {
                postgres::Client::connect(url, NoTls).and_then(|mut c| c.batch_execute(sql)).map_err(|e| {
                    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
                })
            }
            (MetadataLocation::Postgres(_), None) => unreachable!("a PostgreSQL store has its URL"),
        }
    }

    /// `SELECT COUNT(*) FROM table`, read past `Metadata`.
    fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match (&self.location, &self.url) {
            (MetadataLocation::Sqlite(path), _) => rusqlite::Connection::open(path)
                .and_then(|c| c.query_row(&sql, [], |r| r.get(0)))
                .expect("count"),
            (_, Some(url)) => postgres::Client::connect(url, NoTls)
                .and_then(|mut c| c.query_one(&sql, &[]))
                .expect("count")
                .get(0),
            _ => unreachable!("a PostgreSQL store has its URL"),
        }
    }

    /// The same store opened again, as another process would.
    fn reopen(&self) -> Result<Metadata, MetadataError> {
        Metadata::open_location(&self.location)
    }
}

/// SQLite always; PostgreSQL too when the test cluster is there.
fn stores(test: &str) -> Vec<Store> {
    let mut stores = vec![Store::sqlite()];
    if let Some(admin) = admin_or_skip(test) {
        stores.push(Store::postgres(&admin));
    }
    stores
}

fn record(principal: &str, kind: AuditKind, outcome: Outcome) -> AuditRecord {
    AuditRecord {
        principal: principal.to_string(),
        role: "analyst".to_string(),
        kind,
        question: Some(format!("a question by {principal}")),
        sql: None,
        outcome,
        row_count: None,
        duration_ms: 7,
        detail: json!({"by": principal}),
    }
}

/// SQLite's timestamp format, `2026-11-01T08:00:00.123Z`.
fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |mut range: std::ops::Range<usize>| range.all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

#[test]
fn the_audit_log_is_appended_and_searched_by_principal_kind_and_time() {
    for store in stores("the_audit_log_is_appended_and_searched_by_principal_kind_and_time") {
        let (engine, m) = (store.engine, &store.metadata);
        let ann = m.audit(&record("ann", AuditKind::Ask, Outcome::Answered)).expect("audit");
        let mut sql = record("bob", AuditKind::Sql, Outcome::Refused);
        sql.sql = Some("SELECT 1".into());
        sql.row_count = Some(3);
        let bob = m.audit(&sql).expect("audit");
        let access = m.audit(&record("anonymous", AuditKind::Access, Outcome::Refused)).expect("audit");
        assert!(ann < bob && bob < access, "{engine}: ids grow: {ann} {bob} {access}");

        let all = m.recent_audit(10).expect("read");
        assert_eq!(
            all.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![access, bob, ann],
            "{engine}: newest first"
        );
        let stored = &all[1];
        assert_eq!(
            (stored.principal.as_str(), stored.kind.as_str(), stored.outcome.as_str(), stored.role.as_str()),
            ("bob", "sql", "refused", "analyst"),
            "{engine}"
        );
        assert_eq!(
            (stored.sql.as_deref(), stored.row_count, stored.duration_ms),
            (Some("SELECT 1"), Some(3), 7)
        );
        assert_eq!(stored.detail, json!({"by": "bob"}), "{engine}");
        assert_eq!(all[0].row_count, None, "{engine}");
        assert!(all.iter().all(|a| is_timestamp(&a.at)), "{engine}: ISO timestamps: {:?}", all[0].at);
        assert_eq!(m.recent_audit(2).expect("read").len(), 2, "{engine}: limit");

        let search = |filter: AuditFilter| {
            m.search_audit(&AuditFilter { limit: 10, ..filter })
                .expect("search")
                .iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            search(AuditFilter { principal: Some("bob".into()), ..AuditFilter::default() }),
            vec![bob]
        );
        assert_eq!(
            search(AuditFilter { kind: Some(AuditKind::Access), ..AuditFilter::default() }),
            vec![access]
        );
        assert_eq!(
            search(AuditFilter {
                principal: Some("ann".into()),
                kind: Some(AuditKind::Sql),
                ..AuditFilter::default()
            }),
            Vec::<i64>::new(),
            "{engine}: filters narrow together"
        );
        let first = all[2].at.clone();
        assert_eq!(search(AuditFilter { since: Some(first.clone()), ..AuditFilter::default() }).len(), 3);
        assert_eq!(
            search(AuditFilter { until: Some(first.clone()), ..AuditFilter::default() }),
            Vec::<i64>::new()
        );
        assert_eq!(
            search(AuditFilter { since: Some("2999-01-01".into()), ..AuditFilter::default() }),
            Vec::<i64>::new()
        );
        assert_eq!(
            search(AuditFilter { until: Some("2999-01-01".into()), ..AuditFilter::default() }).len(),
            3
        );
        // A date compares with the timestamps as text: every record of today is on or after it.
        let today = first[..10].to_string();
        assert_eq!(search(AuditFilter { since: Some(today), ..AuditFilter::default() }).len(), 3, "{engine}");
    }
}

fn revision(target: &str, after: serde_json::Value, before: Option<serde_json::Value>) -> NewRevision {
    NewRevision {
        principal: "stella".into(),
        role: "steward".into(),
        target_kind: RevisionTarget::Table,
        target: target.into(),
        before,
        after,
        base_hash: format!("hash-of-{target}"),
        comment: "described".into(),
    }
}

#[test]
fn revisions_are_recorded_with_their_audit_and_counted() {
    for store in stores("revisions_are_recorded_with_their_audit_and_counted") {
        let (engine, m) = (store.engine, &store.metadata);
        assert_eq!(m.marks().expect("marks").revisions, 0, "{engine}: no revision yet");
        assert!(m.latest_revisions().expect("latest").is_empty());
        let edit = record("stella", AuditKind::Edit, Outcome::Answered);
        let first = m
            .record_revision(&revision("orders", json!({"description": "v1"}), None), &edit)
            .expect("record");
        assert_eq!(m.marks().expect("marks").revisions, first, "{engine}");
        let mut glossary = revision("churn", json!({"definition": "gone"}), None);
        glossary.target_kind = RevisionTarget::Glossary;
        let churn = m.record_revision(&glossary, &edit).expect("record");
        let second = m
            .record_revision(
                &revision("orders", json!({"description": "v2"}), Some(json!({"description": "v1"}))),
                &edit,
            )
            .expect("record");
        assert!(first < churn && churn < second, "{engine}");
        assert_eq!(m.marks().expect("marks").revisions, second, "{engine}: the newest revision's id");

        let orders = m.revisions(RevisionTarget::Table, "ORDERS").expect("revisions");
        assert_eq!(
            orders.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![second, first],
            "{engine}: newest first"
        );
        assert_eq!(orders[0].before, Some(json!({"description": "v1"})), "{engine}");
        assert_eq!(orders[0].after, json!({"description": "v2"}), "{engine}");
        assert_eq!(orders[1].before, None, "{engine}");
        assert_eq!(
            (orders[0].base_hash.as_str(), orders[0].comment.as_str(), orders[0].target_kind.as_str()),
            ("hash-of-orders", "described", "table")
        );
        assert!(is_timestamp(&orders[0].at), "{engine}: {}", orders[0].at);
        assert!(m.revisions(RevisionTarget::Glossary, "orders").expect("revisions").is_empty(), "{engine}");

        let latest = m.latest_revisions().expect("latest");
        assert_eq!(
            latest.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![churn, second],
            "{engine}: one per target"
        );

        let audits =
            m.search_audit(&AuditFilter { kind: Some(AuditKind::Edit), limit: 10, ..AuditFilter::default() });
        let revisions: Vec<_> = audits.expect("audit").iter().map(|a| a.detail["revision"].clone()).collect();
        assert_eq!(
            revisions,
            vec![json!(second), json!(churn), json!(first)],
            "{engine}: each audited with its id"
        );

        // Another process (or instance) writing to the same store moves the counter.
        let other = store.reopen().expect("reopen");
        let third = other.record_revision(&revision("users", json!({}), None), &edit).expect("record");
        assert_eq!(m.marks().expect("marks").revisions, third, "{engine}");
    }
}

fn key(name: &str, hash: &str) -> NewKey {
    NewKey {
        name: name.into(),
        role: "analyst".into(),
        attributes: BTreeMap::from([("region".to_string(), "EU".to_string())]),
        prefix: "qk_abc".into(),
        hash: hash.into(),
        created_by: "cli:test".into(),
    }
}

#[test]
fn keys_are_created_refused_when_the_name_is_taken_revoked_and_found_by_hash() {
    for store in stores("keys_are_created_refused_when_the_name_is_taken_revoked_and_found_by_hash") {
        let (engine, m) = (store.engine, &store.metadata);
        let audit = record("cli:test", AuditKind::Edit, Outcome::Answered);
        let created = m.create_key(&key("ann", "hash-1"), &audit).expect("create");
        assert_eq!(
            (created.name.as_str(), created.role.as_str(), created.prefix.as_str()),
            ("ann", "analyst", "qk_abc")
        );
        assert_eq!(created.attributes.get("region").map(String::as_str), Some("EU"), "{engine}");
        assert!(is_timestamp(&created.created_at) && created.revoked_at.is_none(), "{engine}: {created:?}");
        assert_eq!(m.active_key("hash-1").expect("find"), Some(created.clone()), "{engine}");
        assert_eq!(m.active_key("hash-unknown").expect("find"), None, "{engine}");

        let taken = m.create_key(&key("ann", "hash-2"), &audit);
        assert!(
            matches!(taken, Err(MetadataError::KeyNameTaken(ref name)) if name == "ann"),
            "{engine}: {taken:?}"
        );
        assert_eq!(store.count("api_keys"), 1, "{engine}: nothing stored");
        assert_eq!(store.count("audit_log"), 1, "{engine}: the refused key is not audited as created");

        assert!(m.revoke_key("ann", &audit).expect("revoke"), "{engine}");
        assert!(!m.revoke_key("ann", &audit).expect("revoke again"), "{engine}: nothing left to revoke");
        assert_eq!(
            m.active_key("hash-1").expect("find"),
            None,
            "{engine}: a revoked key authenticates nothing"
        );
        let again = m.create_key(&key("ann", "hash-2"), &audit).expect("the name is free again");
        let keys = m.keys().expect("keys");
        assert_eq!(keys.iter().map(|k| k.id).collect::<Vec<_>>(), vec![created.id, again.id], "{engine}");
        assert!(keys[0].revoked_at.as_deref().is_some_and(is_timestamp), "{engine}: {:?}", keys[0]);
        assert_eq!(store.count("audit_log"), 3, "{engine}: create, revoke, create");
    }
}

fn past(sql: &str, at: &str, source_verified: bool) -> PastQuery {
    let logged = LoggedQuery {
        sql: sql.into(),
        author: "ann".into(),
        timestamp: at.into(),
        duration_ms: Some(12),
        rows: None,
        success: Some(true),
        title: Some("a title".into()),
        question: Some(format!("what does {sql} say")),
        verified: None,
    };
    PastQuery {
        hash: logged.content_hash(),
        logged,
        tables: vec!["orders".into()],
        structure: QueryStructure::default(),
        intent: format!("intent of {sql}"),
        intent_source: IntentSource::Llm,
        verified: source_verified,
        line: 4,
    }
}

#[test]
fn history_is_stored_once_per_entry_and_read_back() {
    for store in stores("history_is_stored_once_per_entry_and_read_back") {
        let (engine, m) = (store.engine, &store.metadata);
        let a = past("SELECT 1", "2026-10-03T08:15:00Z", true);
        let b = past("SELECT 2", "2026-10-02T08:15:00Z", false);
        let ingest = record("cli:test", AuditKind::Edit, Outcome::Answered);
        assert_eq!(
            m.insert_history(&[a.clone(), b.clone()], "log", Some(&ingest)).expect("insert"),
            2,
            "{engine}"
        );
        let c = past("SELECT 3", "2026-10-03T08:15:00Z", true);
        assert_eq!(
            m.insert_history(&[a.clone(), c.clone()], "feedback:ann", Some(&ingest)).expect("insert"),
            1
        );
        assert_eq!(
            m.insert_history(std::slice::from_ref(&a), "log", Some(&ingest)).expect("insert"),
            0,
            "{engine}"
        );

        let audits = m.search_audit(&AuditFilter { limit: 10, ..AuditFilter::default() }).expect("audit");
        let batches: Vec<_> =
            audits.iter().map(|a| (a.row_count, a.detail["batch_stored"].clone())).collect();
        assert_eq!(
            batches,
            vec![(Some(1), json!(1)), (Some(2), json!(2))],
            "{engine}: no record for an empty batch"
        );

        assert_eq!(m.marks().expect("marks").history, 3, "{engine}: three past queries stored");
        let hashes = m.history_hashes().expect("hashes");
        assert_eq!(hashes, [&a, &b, &c].iter().map(|q| q.hash.clone()).collect::<HashSet<_>>(), "{engine}");

        let history = m.history().expect("history");
        let mut expected = [&b, &a, &c];
        expected[1..].sort_by(|x, y| x.hash.cmp(&y.hash));
        assert_eq!(
            history.iter().map(|q| q.hash.as_str()).collect::<Vec<_>>(),
            expected.iter().map(|q| q.hash.as_str()).collect::<Vec<_>>(),
            "{engine}: by time, then hash in byte order"
        );
        let read = |q: &PastQuery| history.iter().find(|h| h.hash == q.hash).cloned().expect("stored");
        let mut a_back = a.clone();
        a_back.tables.clear();
        a_back.logged.verified = Some(true);
        assert_eq!(read(&a), a_back, "{engine}: read back as written (tables are the caller's)");
        assert!(!read(&b).verified && read(&b).logged.verified.is_none(), "{engine}");
        assert!(!read(&c).verified, "{engine}: feedback-sourced entries are not verified by their source");
    }
}

#[test]
fn verdicts_are_appended_in_order_with_their_audit() {
    for store in stores("verdicts_are_appended_in_order_with_their_audit") {
        let (engine, m) = (store.engine, &store.metadata);
        let verdict = |kind: VerdictKind, comment: Option<&str>| NewVerdict {
            pair: "pair-1".into(),
            question: "how many orders".into(),
            sql: "SELECT COUNT(*) FROM orders".into(),
            principal: "rita".into(),
            role: "steward".into(),
            verdict: kind,
            comment: comment.map(str::to_string),
        };
        let audit = record("rita", AuditKind::Edit, Outcome::Answered);
        let up = m.record_verdict(&verdict(VerdictKind::Up, None), &audit).expect("verdict");
        let verify =
            m.record_verdict(&verdict(VerdictKind::Verify, Some("checked")), &audit).expect("verdict");
        let revoke = m.record_verdict(&verdict(VerdictKind::Revoke, None), &audit).expect("verdict");
        let stored = m.verdicts().expect("verdicts");
        assert_eq!(m.marks().expect("marks").verdicts, 3, "{engine}");
        assert_eq!(stored.iter().map(|v| v.id).collect::<Vec<_>>(), vec![up, verify, revoke], "{engine}");
        assert_eq!(
            stored.iter().map(|v| v.verdict).collect::<Vec<_>>(),
            vec![VerdictKind::Up, VerdictKind::Verify, VerdictKind::Revoke],
            "{engine}"
        );
        assert_eq!(
            (stored[1].comment.as_deref(), stored[1].pair.as_str()),
            (Some("checked"), "pair-1"),
            "{engine}"
        );
        assert!(is_timestamp(&stored[0].at), "{engine}");
        assert_eq!(store.count("audit_log"), 3, "{engine}: each with its audit record");
        assert!(store
            .execute("DELETE FROM query_verdicts")
            .expect_err("append-only")
            .contains("append-only"));
    }
}

#[test]
fn threads_hold_turns_branch_choose_and_expire() {
    for store in stores("threads_hold_turns_branch_choose_and_expire") {
        let (engine, m) = (store.engine, &store.metadata);
        let tables = vec!["orders".to_string()];
        let choices =
            vec![TurnChoice { reading: "orders per month".into(), sql: "SELECT 2".into(), votes: 2 }];
        let turn =
            |question: &'static str| NewTurn { question, sql: "SELECT 1", tables: &tables, choices: &[] };
        let (id, first) = m.add_turn(&TurnPlace::NewThread, "ann", turn("how many orders")).expect("turn");
        assert!(id.len() == 25 && id.starts_with('t'), "{engine}: {id}");
        let (same, second) = m
            .add_turn(
                &TurnPlace::Continue(id.clone()),
                "ann",
                NewTurn { question: "by month", sql: "SELECT 1", tables: &tables, choices: &choices },
            )
            .expect("turn");
        assert_eq!((same.as_str(), first, second), (id.as_str(), 1, 2), "{engine}");
        let (branch, third) = m
            .add_turn(&TurnPlace::Branch { from: id.clone(), after: 1 }, "ann", turn("by year"))
            .expect("turn");
        assert_ne!(branch, id, "{engine}");
        assert_eq!(third, 2, "{engine}: after the one turn it continues");

        let thread = m.thread(&id, "ann", 30).expect("read").expect("ann's thread");
        assert_eq!(
            thread.turns.iter().map(|t| t.question.as_str()).collect::<Vec<_>>(),
            vec!["how many orders", "by month"]
        );
        assert_eq!(thread.turns[1].choices, choices, "{engine}");
        assert_eq!(thread.turns[0].tables, tables, "{engine}");
        assert!(is_timestamp(&thread.created_at) && is_timestamp(&thread.turns[0].at), "{engine}");
        assert_eq!(m.thread(&id, "bob", 30).expect("read"), None, "{engine}: not bob's");
        let branched = m.thread(&branch, "ann", 30).expect("read").expect("the branch");
        assert_eq!(branched.branched_from.as_deref(), Some(id.as_str()), "{engine}");
        assert_eq!(
            branched.turns.iter().map(|t| (t.turn, t.question.as_str())).collect::<Vec<_>>(),
            vec![(1, "how many orders"), (2, "by year")],
            "{engine}"
        );
        assert_eq!(branched.turns[0].at, thread.turns[0].at, "{engine}: a copied turn keeps its time");

        m.answer_turn_with(&id, 2, "SELECT 2", &["orders".to_string(), "users".to_string()]).expect("choose");
        let chosen = m.thread(&id, "ann", 30).expect("read").expect("thread");
        assert_eq!((chosen.turns[1].sql.as_str(), chosen.turns[1].tables.len()), ("SELECT 2", 2), "{engine}");

        let listed = m.threads("ann", 30, 10).expect("list");
        assert_eq!(listed.len(), 2, "{engine}");
        assert_eq!(
            listed.iter().find(|t| t.id == id).map(|t| (t.turns, t.title.as_str())),
            Some((2, "how many orders"))
        );
        assert_eq!(m.threads("ann", 30, 1).expect("list").len(), 1, "{engine}: limit");
        assert!(m.threads("bob", 30, 10).expect("list").is_empty(), "{engine}");

        assert_eq!(m.expire_threads(30).expect("expire"), 0, "{engine}: both are fresh");
        store
            .execute(&format!("UPDATE threads SET updated_at = '2000-01-01T00:00:00.000Z' WHERE id = '{id}'"))
            .expect("age a thread");
        assert_eq!(m.thread(&id, "ann", 30).expect("read"), None, "{engine}: an expired thread is not read");
        assert_eq!(m.threads("ann", 30, 10).expect("list").len(), 1, "{engine}");
        assert_eq!(m.expire_threads(30).expect("expire"), 1, "{engine}");
        assert_eq!(store.count("thread_turns"), 2, "{engine}: the expired thread's turns are gone");
        assert!(m.thread(&branch, "ann", 30).expect("read").is_some(), "{engine}");
    }
}

#[test]
fn the_database_itself_refuses_to_change_the_audit_log_and_the_revisions() {
    for store in stores("the_database_itself_refuses_to_change_the_audit_log_and_the_revisions") {
        let (engine, m) = (store.engine, &store.metadata);
        let edit = record("stella", AuditKind::Edit, Outcome::Answered);
        m.record_revision(&revision("orders", json!({}), None), &edit).expect("record");
        m.audit(&record("ann", AuditKind::Ask, Outcome::Answered)).expect("audit");
        let mut attempts = vec![
            "UPDATE audit_log SET principal = 'mallory'".to_string(),
            "DELETE FROM audit_log".to_string(),
            "UPDATE catalog_revisions SET comment = 'rewritten'".to_string(),
            "DELETE FROM catalog_revisions WHERE id > 0".to_string(),
        ];
        if engine == "postgres" {
            attempts.push("TRUNCATE audit_log".into());
            attempts.push("TRUNCATE catalog_revisions".into());
        }
        for sql in &attempts {
            let refused = store.execute(sql).expect_err(sql);
            assert!(refused.contains("is append-only"), "{engine}: {sql}: {refused}");
        }
        assert_eq!(
            (store.count("audit_log"), store.count("catalog_revisions")),
            (2, 1),
            "{engine}: nothing changed"
        );
        let audit = m.recent_audit(10).expect("read");
        assert!(audit.iter().all(|a| a.principal != "mallory"), "{engine}");
    }
}

#[test]
fn migrations_are_applied_once_and_opening_again_keeps_everything() {
    for store in stores("migrations_are_applied_once_and_opening_again_keeps_everything") {
        let engine = store.engine;
        let id = store.metadata.audit(&record("ann", AuditKind::Ask, Outcome::Answered)).expect("audit");
        let again = store.reopen().expect("open again");
        let third = store.reopen().expect("and again");
        assert_eq!(store.count("schema_migrations"), 7, "{engine}: each migration recorded once");
        assert_eq!(again.recent_audit(5).expect("read").iter().map(|a| a.id).collect::<Vec<_>>(), vec![id]);
        assert!(
            third.audit(&record("bob", AuditKind::Sql, Outcome::Failed)).expect("audit") > id,
            "{engine}"
        );
    }
}

#[test]
fn an_unknown_migration_means_a_newer_quarry_wrote_the_database() {
    for store in stores("an_unknown_migration_means_a_newer_quarry_wrote_the_database") {
        let engine = store.engine;
        store
            .execute("INSERT INTO schema_migrations (name) VALUES ('9999_from_the_future')")
            .expect("insert");
        match store.reopen() {
            Err(MetadataError::NewerSchema { migration, .. }) => {
                assert_eq!(migration, "9999_from_the_future", "{engine}")
            }
            Err(other) => panic!("{engine}: {other}"),
            Ok(_) => panic!("{engine}: opened a database written by a newer Quarry"),
        }
        let message = store.reopen().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("upgrade Quarry"), "{engine}: {message}");
        assert!(!message.contains("owner-pw"), "{engine}: the password is not shown: {message}");
    }
}

#[test]
fn concurrent_opens_of_a_fresh_postgres_database_both_succeed() {
    let Some(admin) = admin_or_skip("concurrent_opens_of_a_fresh_postgres_database_both_succeed") else {
        return;
    };
    for _ in 0..3 {
        let (database, url) = metadata_database(&admin);
        let location = MetadataLocation::Postgres(PostgresUrl::parse(&url).expect("url"));
        let start = Arc::new(Barrier::new(4));
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let (location, start) = (location.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    Metadata::open_location(&location)
                        .map(|m| m.audit(&record("ann", AuditKind::Ask, Outcome::Answered)))
                })
            })
            .collect();
        for opener in openers {
            let opened = opener.join().expect("no panic");
            assert!(matches!(opened, Ok(Ok(_))), "{opened:?}");
        }
        let mut client = postgres::Client::connect(&url, NoTls).expect("connect");
        let names: Vec<String> = client
            .query("SELECT name FROM schema_migrations ORDER BY name", &[])
            .expect("read")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(names.len(), 7, "each migration applied once: {names:?}");
        let audited: i64 = client.query_one("SELECT COUNT(*) FROM audit_log", &[]).expect("count").get(0);
        assert_eq!(audited, 4);
        drop(database);
    }
}

#[test]
fn a_closed_port_a_wrong_password_or_a_missing_database_is_named_without_the_password() {
    let Some(admin) =
        admin_or_skip("a_closed_port_a_wrong_password_or_a_missing_database_is_named_without_the_password")
    else {
        return;
    };
    let open = |url: &str| {
        let location = MetadataLocation::Postgres(PostgresUrl::parse(url).expect("url"));
        Metadata::open_location(&location).err().expect("refused")
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let error = open(&format!("postgres://quarry:secret-pw@127.0.0.1:{port}/meta"));
    let message = error.to_string();
    assert!(matches!(error, MetadataError::Unreachable { .. }), "{message}");
    assert!(message.contains(&format!("postgres://quarry:***@127.0.0.1:{port}/meta")), "{message}");
    assert!(message.contains("Check that PostgreSQL runs there"), "{message}");
    assert!(!message.contains("secret-pw"), "{message}");

    let (_database, url) = metadata_database(&admin);
    let error = open(&url.replace("owner-pw", "not-the-password"));
    let message = error.to_string();
    assert!(matches!(error, MetadataError::Login { .. }), "{message}");
    assert!(message.contains("password authentication failed"), "{message}");
    assert!(message.contains("Check the user name and password"), "{message}");
    assert!(!message.contains("not-the-password") && !message.contains("owner-pw"), "{message}");

    let cut = url.rfind('/').expect("a database");
    let error = open(&format!("{}/no_such_database", &url[..cut]));
    let message = error.to_string();
    assert!(matches!(error, MetadataError::NoDatabase { .. }), "{message}");
    assert!(message.contains("does not exist") && message.contains("CREATE DATABASE"), "{message}");
    assert!(!message.contains("owner-pw"), "{message}");
}

#[test]
fn a_role_that_may_not_create_tables_is_told_what_it_needs() {
    let Some(admin) = admin_or_skip("a_role_that_may_not_create_tables_is_told_what_it_needs") else {
        return;
    };
    let mut database = TestDatabase::create(&admin, "meta_nocreate");
    let url = database.login("user", "user-pw");
    let mut client = postgres::Client::connect(&database.url, NoTls).expect("connect");
    client.batch_execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC").expect("revoke");
    let location = MetadataLocation::Postgres(PostgresUrl::parse(&url).expect("url"));
    let error = Metadata::open_location(&location).err().expect("refused");
    let message = error.to_string();
    assert!(matches!(error, MetadataError::Migrate { .. }), "{message}");
    assert!(message.contains("permission denied"), "{message}");
    assert!(message.contains("create tables in its schema"), "{message}");
    assert!(!message.contains("user-pw"), "{message}");
}

/// The whole of Quarry on a PostgreSQL metadata store: the demo log ingested there at start,
/// SQL audited there, nothing written to the workspace's SQLite file, and a restart ingesting
/// nothing twice.
#[test]
fn quarry_keeps_its_metadata_on_postgres_when_configured() {
    let Some(admin) = admin_or_skip("quarry_keeps_its_metadata_on_postgres_when_configured") else { return };
    let (_database, url) = metadata_database(&admin);
    let dir = private_workspace();
    let mut config = config_for(dir.path());
    config.governance = dir.path().join("schemas");
    config.metadata_url = Some(PostgresUrl::parse(&url).expect("url"));
    assert!(matches!(config.metadata_location(), MetadataLocation::Postgres(_)));
    let open = || {
        let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::new(SCRIPT.iter().copied()));
        Quarry::open(config.clone(), embedder(), Some(llm)).expect("open with PostgreSQL metadata")
    };
    let quarry = open();
    let answer = quarry.run_sql("SELECT COUNT(*) AS n FROM orders", &Principal::local()).expect("run");
    assert_eq!(answer.result.rows.len(), 1);
    let mut client = postgres::Client::connect(&url, NoTls).expect("connect");
    let count =
        |client: &mut postgres::Client, sql: &str| -> i64 { client.query_one(sql, &[]).expect(sql).get(0) };
    let ingested = count(&mut client, "SELECT COUNT(*) FROM history_queries");
    assert!(ingested > 10, "the demo log is ingested into PostgreSQL: {ingested}");
    assert_eq!(count(&mut client, "SELECT COUNT(*) FROM audit_log WHERE kind = 'sql'"), 1);
    assert!(!config.metadata_db().exists(), "no SQLite metadata file beside it");
    drop(quarry);
    let again = open();
    assert_eq!(
        count(&mut client, "SELECT COUNT(*) FROM history_queries"),
        ingested,
        "nothing ingested twice"
    );
    assert_eq!(
        again.metadata().recent_audit(10).expect("read").iter().filter(|a| a.kind == "sql").count(),
        1
    );
}

/// Two `quarry serve` instances on one PostgreSQL metadata store (each with its own workspace
/// and search index): a steward edit, a verdict that adds to the history, and an API key made
/// on one are in force on the other once it takes in the store's changes, which `quarry serve`
/// does every `[metadata] poll_ms`.
#[test]
fn two_instances_share_edits_history_and_keys_through_one_metadata_store() {
    let test = "two_instances_share_edits_history_and_keys_through_one_metadata_store";
    let Some(admin) = admin_or_skip(test) else { return };
    let (_database, url) = metadata_database(&admin);
    let open = |dir: &std::path::Path| {
        let mut config = config_for(dir);
        config.governance = dir.join("schemas");
        config.metadata_url = Some(PostgresUrl::parse(&url).expect("url"));
        let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::new(SCRIPT.iter().copied()));
        Quarry::open(config, embedder(), Some(llm)).expect("open with PostgreSQL metadata")
    };
    let (dir_a, dir_b) = (private_workspace(), private_workspace());
    let (a, b) = (open(dir_a.path()), open(dir_b.path()));
    assert!(b.take_in_changes().expect("poll").is_empty(), "nothing new since B opened");

    // A steward edit on A.
    let steward = Principal::new("sam.steward", "steward");
    let body = json!({
        "description": "Quokka keepers registry: one row per quokka keeper.",
        "comment": "made on instance A"
    });
    let first_found = |q: &Quarry| {
        let found = q.search_tables(&Principal::local(), "registry of quokka keepers", 3).expect("search");
        found.first().map(|t| t.name.clone())
    };
    assert_ne!(first_found(&b).as_deref(), Some("users"), "nothing says quokka before the edit");
    let (outcome, _) = a.edit_table(&steward, "users", &body).expect("edit on A");
    assert!(outcome.revision.is_some());
    assert_ne!(b.catalog().table("users").expect("users").description, body["description"]);
    let taken = b.take_in_changes().expect("poll");
    assert_eq!(taken.tables, vec!["users".to_string()], "{taken:?}");
    assert_eq!(b.catalog().table("users").expect("users").description, body["description"]);
    assert_eq!(first_found(&b).as_deref(), Some("users"), "B re-embedded the edited table");
    assert!(a.take_in_changes().expect("poll").tables.is_empty(), "A's own edit is no news to A");
    assert!(b.take_in_changes().expect("poll").is_empty(), "taken in once");

    // A verdict on A whose SQL joins the history.
    let sql = "SELECT plan, COUNT(*) AS users FROM users WHERE plan <> 'free' GROUP BY plan";
    let feedback = Feedback {
        question: "paying users by plan".into(),
        sql: sql.into(),
        verdict: Verdict::Up,
        comment: None,
        corrected_sql: None,
    };
    let added = a.feedback(&Principal::new("ann", "analyst"), &feedback).expect("feedback on A");
    assert!(added.added_sql.is_some(), "{added:?}");
    let in_history = |q: &Quarry| q.history().history.queries.iter().any(|p| p.logged.sql == sql);
    assert!(in_history(&a) && !in_history(&b));
    assert!(b.take_in_changes().expect("poll").history);
    assert!(in_history(&b), "B took in the history A added to");

    // An API key made on A lets its holder in on B.
    let (_, key) =
        quarry::keys::create(a.metadata(), &a.config().policy, "bea", "analyst", BTreeMap::new(), "admin")
            .expect("key on A");
    let principal =
        quarry::keys::authenticate(b.metadata(), Some(&format!("Bearer {key}"))).expect("B knows A's key");
    assert_eq!((principal.name.as_str(), principal.role.as_str()), ("bea", "analyst"));
}
