//! A check that runs one input through Quarry's validator (the library itself, built without
//! its runtime) against the demo catalog under every demo role.

use std::path::Path;
use std::sync::OnceLock;

use quarry::catalog::{governance, Catalog};
use quarry::policy::{PolicySection, PolicySet, Principal};
use quarry::validate::{validate_with, DraftSql, Limits, ViolationCode};

const SCHEMA: &str = include_str!("../../src/demo/schema.sql");
const GOVERNANCE: &[(&str, &str)] = &[
    ("ads.toml", include_str!("../../schemas/demo/ads.toml")),
    ("commerce.toml", include_str!("../../schemas/demo/commerce.toml")),
    ("content.toml", include_str!("../../schemas/demo/content.toml")),
    ("users.toml", include_str!("../../schemas/demo/users.toml")),
];
const CONFIG: &str = include_str!("../../quarry.toml");

/// The demo catalog (schema and governance files, no rows) and the demo roles.
pub struct World {
    pub catalog: Catalog,
    pub roles: PolicySet,
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("quarry-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("warehouse.sqlite");
        let _ = std::fs::remove_file(&path);
        let conn = rusqlite::Connection::open(&path).expect("warehouse");
        conn.execute_batch(SCHEMA).expect("schema");
        drop(conn);
        let mut catalog = quarry::warehouse::introspect(&path).expect("introspect");
        for (name, text) in GOVERNANCE {
            governance::apply_text(&mut catalog, Path::new(name), text).expect("governance");
        }
        let _ = std::fs::remove_dir_all(&dir);
        #[derive(serde::Deserialize)]
        struct Config {
            policy: PolicySection,
        }
        let config: Config = toml::from_str(CONFIG).expect("quarry.toml");
        let roles = PolicySet::from_config(config.policy).expect("roles");
        quarry::validate::check_roles(&roles, &catalog).expect("roles match the catalog");
        World { catalog, roles }
    })
}

/// Validates `text` under one demo role (picked from the input, so every role is exercised)
/// and checks what must hold whatever the input: no panic, and a query that passed renders to
/// SQL that passes again, for the most permissive role, as the same statement.
pub fn check(text: &str) {
    let world = world();
    let roles = ["analyst", "steward", "regional_analyst", "admin"];
    let role = roles[text.len() % roles.len()];
    let policy = world.roles.get(role).expect("role");
    let principal = Principal::new("fuzz", role).with_attribute("country", "DE");
    let limits = Limits::default();
    let Ok(query) = validate_with(&DraftSql::new(text), &world.catalog, policy, &principal, &limits) else {
        return;
    };
    // The rewrite (row filters, masks, cap) grows the text and its nesting a little.
    let roomy = Limits { max_sql_bytes: limits.max_sql_bytes * 4, max_depth: limits.max_depth + 20 };
    let admin = world.roles.get("admin").expect("admin");
    let again = validate_with(&DraftSql::new(query.sql()), &world.catalog, admin, &principal, &roomy);
    if let Err(refusal) = again {
        let tolerated = refusal.violations.iter().all(|v| matches!(v.code, ViolationCode::TooDeep));
        assert!(
            tolerated,
            "passed as {role}, but its rendering is refused:\n{text}\n=> {}\n=> {refusal}",
            query.sql()
        );
    }
}
