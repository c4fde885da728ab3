//! The demo workspace: a seeded generator for a realistic analytics warehouse (users and
//! engagement, content, ads, commerce) plus the analysts' query log that comes with it.
//!
//! Everything here is deterministic: the same seed gives byte-identical table contents, so
//! tests and benchmarks can write gold answers against it. The governance catalog for these
//! tables lives in `schemas/demo/` as human-editable files, not here.

use std::path::Path;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{params, Connection};

use crate::calendar::iso_date as civil;

/// Schema of the demo warehouse.
const SCHEMA: &str = include_str!("schema.sql");
/// The analysts' query log shipped with the demo (JSONL: sql, author, timestamp, title).
pub const HISTORY_JSONL: &str = include_str!("history.jsonl");
/// Bumped whenever the generator's output changes, so stale demo files are rebuilt.
pub const GENERATOR_VERSION: u32 = 1;
/// The seed used by `quarry demo`.
pub const DEFAULT_SEED: u64 = 20_261_031;

/// First and last day (inclusive) of activity data in the demo warehouse.
pub const DATA_START: &str = "2026-06-01";
pub const DATA_END: &str = "2026-10-31";

/// Errors while building the demo workspace.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The warehouse file could not be written.
    #[error("cannot write the demo warehouse at {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    /// A file of the workspace could not be written.
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// What `create` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    pub tables: usize,
    pub rows: u64,
    pub history_queries: usize,
}

/// Creates (or re-creates) the demo warehouse at `warehouse` and its query log at `history`.
///
/// The warehouse is written to a temporary file and renamed into place, so a crash never
/// leaves a half-written warehouse behind.
pub fn create(warehouse: &Path, history: &Path, seed: u64) -> Result<DemoSummary, DemoError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| DemoError::Io { path, source }
    };
    if let Some(dir) = warehouse.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = warehouse.with_extension("sqlite.tmp");
    let _ = std::fs::remove_file(&tmp);
    let sqlite = |source| DemoError::Sqlite { path: warehouse.display().to_string(), source };
    let mut conn = Connection::open(&tmp).map_err(sqlite)?;
    conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA foreign_keys=ON;")
        .map_err(sqlite)?;
    conn.execute_batch(SCHEMA).map_err(sqlite)?;
    let tx = conn.transaction().map_err(sqlite)?;
    Generator::new(seed).fill(&tx).map_err(sqlite)?;
    tx.commit().map_err(sqlite)?;
    let (tables, rows) = count_rows(&conn).map_err(sqlite)?;
    drop(conn);
    std::fs::rename(&tmp, warehouse).map_err(io(warehouse))?;

    if let Some(dir) = history.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(history, HISTORY_JSONL).map_err(io(history))?;
    let history_queries = HISTORY_JSONL.lines().filter(|l| !l.trim().is_empty()).count();
    Ok(DemoSummary { tables, rows, history_queries })
}

fn count_rows(conn: &Connection) -> rusqlite::Result<(usize, u64)> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let names: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut rows = 0u64;
    for name in &names {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| r.get(0))?;
        rows += n as u64;
    }
    Ok((names.len(), rows))
}

const COUNTRIES: &[(&str, &str, &str, u32)] = &[
    ("US", "United States", "North America", 30),
    ("CA", "Canada", "North America", 6),
    ("MX", "Mexico", "Latin America", 6),
    ("BR", "Brazil", "Latin America", 10),
    ("GB", "United Kingdom", "Europe", 9),
    ("DE", "Germany", "Europe", 8),
    ("FR", "France", "Europe", 7),
    ("ES", "Spain", "Europe", 4),
    ("NG", "Nigeria", "Africa", 4),
    ("IN", "India", "Asia Pacific", 12),
    ("JP", "Japan", "Asia Pacific", 6),
    ("AU", "Australia", "Asia Pacific", 4),
];
const FIRST_NAMES: &[&str] = &[
    "Ada", "Bruno", "Chen", "Dalia", "Emeka", "Fatima", "Giulia", "Hiro", "Ines", "Jonas", "Kavya", "Liam",
    "Mei", "Noah", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor", "Wen", "Ximena",
    "Yusuf", "Zoe",
];
const LAST_NAMES: &[&str] = &[
    "Adeyemi", "Bauer", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen", "Kumar",
    "Lopez", "Martin", "Nakamura", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Weber",
];
const PLANS: &[(&str, u32)] = &[("free", 70), ("plus", 20), ("pro", 10)];
const DEVICES: &[&str] = &["ios", "android", "web", "desktop"];
const TOPICS: &[(&str, &str)] = &[
    ("Personal finance", "Money"),
    ("Investing", "Money"),
    ("Machine learning", "Technology"),
    ("Web development", "Technology"),
    ("Gadgets", "Technology"),
    ("Football", "Sports"),
    ("Running", "Sports"),
    ("Cooking", "Lifestyle"),
    ("Travel", "Lifestyle"),
    ("Parenting", "Lifestyle"),
    ("Climate", "Science"),
    ("Space", "Science"),
];
const EVENT_TYPES: &[(&str, u32)] = &[("view", 70), ("like", 18), ("comment", 7), ("share", 5)];
const INDUSTRIES: &[&str] = &["Retail", "Gaming", "Finance", "Travel", "Education", "Health"];
const OBJECTIVES: &[&str] = &["awareness", "traffic", "conversions", "app_installs"];
const PRODUCT_CATEGORIES: &[(&str, f64, f64)] = &[
    ("Books", 8.0, 40.0),
    ("Electronics", 30.0, 900.0),
    ("Home", 10.0, 250.0),
    ("Toys", 5.0, 80.0),
    ("Apparel", 12.0, 150.0),
    ("Sports", 15.0, 300.0),
];
const ORDER_STATUS: &[(&str, u32)] = &[("completed", 85), ("cancelled", 7), ("refunded", 5), ("pending", 3)];
const REFUND_REASONS: &[&str] = &["damaged", "late_delivery", "wrong_item", "changed_mind"];

struct Generator {
    rng: ChaCha8Rng,
}

impl Generator {
    fn new(seed: u64) -> Self {
        Generator { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random_range(0..total);
        for (item, w) in items {
            if pick < *w {
                return item;
            }
            pick -= w;
        }
        &items[items.len() - 1].0
    }

    fn timestamp(&mut self, day: i64) -> String {
        let secs = self.rng.random_range(0..86_400);
        format!("{} {:02}:{:02}:{:02}", civil(day), secs / 3600, secs / 60 % 60, secs % 60)
    }

    fn fill(&mut self, tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
        let start = day_number(DATA_START);
        let end = day_number(DATA_END);

        // countries
        let mut st = tx.prepare("INSERT INTO countries VALUES (?1, ?2, ?3)")?;
        for (code, name, region, _) in COUNTRIES {
            st.execute(params![code, name, region])?;
        }
        let country_weights: Vec<(&str, u32)> = COUNTRIES.iter().map(|(c, _, _, w)| (*c, *w)).collect();

        // users, and the deprecated v1 profile table that predates them
        struct User {
            id: i64,
            country: &'static str,
            signup: i64,
            propensity: f64,
        }
        let mut users = Vec::new();
        let mut st = tx.prepare("INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
        let mut legacy = tx.prepare("INSERT INTO user_profiles_v1 VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let first_signup = day_number("2024-01-01");
        for id in 1..=4000i64 {
            let first = *FIRST_NAMES.choose(&mut self.rng).expect("non-empty");
            let last = *LAST_NAMES.choose(&mut self.rng).expect("non-empty");
            let country = *self.weighted(&country_weights);
            let signup = self.rng.random_range(first_signup..=end);
            let plan = *self.weighted(PLANS);
            let active = self.rng.random_bool(0.85);
            let email = format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), id);
            let name = format!("{first} {last}");
            st.execute(params![id, email, name, country, civil(signup), plan, active as i64])?;
            if signup < day_number("2025-12-01") && self.rng.random_bool(0.8) {
                legacy.execute(params![id, email, name, country, civil(signup)])?;
            }
            let propensity = if active { self.rng.random_range(0.01..0.30) } else { 0.005 };
            users.push(User { id, country, signup, propensity });
        }

        // daily activity, its stale legacy snapshot, and the sessions behind it
        let mut dau = tx.prepare("INSERT INTO daily_active_users VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let mut snap = tx.prepare("INSERT INTO dau_snapshot_legacy VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let mut sess = tx.prepare("INSERT INTO user_sessions VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        let snapshot_end = day_number("2026-08-15");
        let mut session_id = 0i64;
        for day in start..=end {
            // weekends are a little busier; summer slowly ramps up into autumn
            let weekday = (day + 3).rem_euclid(7); // 0 = Monday
            let season = 1.0 + (day - start) as f64 / 600.0;
            let boost = if weekday >= 5 { 1.15 } else { 1.0 } * season;
            for u in &users {
                if u.signup > day || !self.rng.random_bool((u.propensity * boost).min(1.0)) {
                    continue;
                }
                let sessions = self.rng.random_range(1..=3i64);
                let mut minutes = 0i64;
                let device = *DEVICES.choose(&mut self.rng).expect("non-empty");
                let ip = format!(
                    "{}.{}.{}.{}",
                    self.rng.random_range(11..223),
                    self.rng.random_range(0..256),
                    self.rng.random_range(0..256),
                    self.rng.random_range(1..255)
                );
                for _ in 0..sessions {
                    session_id += 1;
                    let duration = self.rng.random_range(30..3600i64);
                    minutes += duration / 60;
                    let started = self.timestamp(day);
                    sess.execute(params![session_id, u.id, started, duration, device, ip])?;
                }
                let date = civil(day);
                dau.execute(params![date, u.id, u.country, sessions, minutes])?;
                if day <= snapshot_end {
                    snap.execute(params![date, u.id, u.country, sessions, minutes])?;
                }
            }
        }

        // content
        let mut st = tx.prepare("INSERT INTO topics VALUES (?1, ?2, ?3)")?;
        for (i, (name, category)) in TOPICS.iter().enumerate() {
            st.execute(params![i as i64 + 1, name, category])?;
        }
        let mut post = tx.prepare("INSERT INTO posts VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let mut event = tx.prepare("INSERT INTO post_engagement VALUES (?1, ?2, ?3, ?4)")?;
        let posts_start = day_number("2026-01-01");
        for post_id in 1..=2500i64 {
            let author = self.rng.random_range(1..=users.len() as i64);
            let topic = self.rng.random_range(1..=TOPICS.len() as i64);
            let created = self.rng.random_range(posts_start..=end);
            let words = self.rng.random_range(80..2400i64);
            post.execute(params![post_id, author, topic, self.timestamp(created), words])?;
            let popularity = self.rng.random_range(0..30u32);
            for _ in 0..popularity {
                let who = self.rng.random_range(1..=users.len() as i64);
                let when = (created + self.rng.random_range(0..30i64)).min(end);
                let kind = *self.weighted(EVENT_TYPES);
                event.execute(params![post_id, who, civil(when), kind])?;
            }
        }

        // ads
        let mut st = tx.prepare("INSERT INTO advertisers VALUES (?1, ?2, ?3, ?4)")?;
        for id in 1..=40i64 {
            let industry = *INDUSTRIES.choose(&mut self.rng).expect("non-empty");
            let last = *LAST_NAMES.choose(&mut self.rng).expect("non-empty");
            let name = format!("{last} {industry} Co {id}");
            let contact = format!("ads{id}@{}-{}.example", last.to_lowercase(), industry.to_lowercase());
            st.execute(params![id, name, industry, contact])?;
        }
        let mut camp = tx.prepare("INSERT INTO ad_campaigns VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
        let mut stat = tx.prepare("INSERT INTO ad_daily_stats VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        let mut conv = tx.prepare("INSERT INTO ad_conversions VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let mut conversion_id = 0i64;
        for id in 1..=120i64 {
            let advertiser = self.rng.random_range(1..=40i64);
            let objective = *OBJECTIVES.choose(&mut self.rng).expect("non-empty");
            let first = self.rng.random_range(start..=end - 20);
            let last = (first + self.rng.random_range(20..90i64)).min(end);
            let budget = (self.rng.random_range(50.0..2000.0f64) * 100.0).round() / 100.0;
            let name = format!("{} {} #{id}", objective.replace('_', " "), civil(first));
            camp.execute(params![id, advertiser, name, objective, civil(first), civil(last), budget])?;
            let market_count = self.rng.random_range(2..=4);
            let markets: Vec<&(&str, &str, &str, u32)> =
                COUNTRIES.choose_multiple(&mut self.rng, market_count).collect();
            for day in first..=last {
                for (code, ..) in &markets {
                    let impressions = self.rng.random_range(500..20_000i64);
                    let clicks = impressions * self.rng.random_range(5..40i64) / 1000;
                    let share = budget / markets.len() as f64;
                    let spend = (share * self.rng.random_range(0.6..1.0) * 100.0).round() / 100.0;
                    stat.execute(params![civil(day), id, code, impressions, clicks, spend])?;
                }
                if objective == "conversions" || self.rng.random_bool(0.3) {
                    for _ in 0..self.rng.random_range(0..4u32) {
                        conversion_id += 1;
                        let user = self.rng.random_range(1..=users.len() as i64);
                        let value = (self.rng.random_range(5.0..250.0f64) * 100.0).round() / 100.0;
                        conv.execute(params![conversion_id, id, user, self.timestamp(day), value])?;
                    }
                }
            }
        }

        // commerce
        let mut st = tx.prepare("INSERT INTO products VALUES (?1, ?2, ?3, ?4)")?;
        let mut prices = Vec::new();
        for id in 1..=200i64 {
            let (category, lo, hi) = *PRODUCT_CATEGORIES.choose(&mut self.rng).expect("non-empty");
            let price = (self.rng.random_range(lo..hi) * 100.0).round() / 100.0;
            let adjective = *["Classic", "Smart", "Eco", "Pro", "Mini", "Ultra"]
                .choose(&mut self.rng)
                .expect("non-empty");
            st.execute(params![id, format!("{adjective} {category} {id}"), category, price])?;
            prices.push(price);
        }
        let mut order = tx.prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        let mut staging = tx.prepare("INSERT INTO orders_staging VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        let mut item = tx.prepare("INSERT INTO order_items VALUES (?1, ?2, ?3, ?4)")?;
        let mut refund = tx.prepare("INSERT INTO refunds VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let orders_start = day_number("2026-01-01");
        let staging_end = day_number("2026-07-31");
        let mut refund_id = 0i64;
        for order_id in 1..=18_000i64 {
            let user = &users[self.rng.random_range(0..users.len())];
            let day = self.rng.random_range(orders_start.max(user.signup)..=end.max(user.signup));
            if day > end {
                continue;
            }
            let status = *self.weighted(ORDER_STATUS);
            let mut lines = Vec::new();
            for _ in 0..self.rng.random_range(1..=4u32) {
                let product = self.rng.random_range(0..prices.len());
                lines.push((product as i64 + 1, self.rng.random_range(1..=3i64), prices[product]));
            }
            let total: f64 = lines.iter().map(|(_, quantity, price)| price * *quantity as f64).sum();
            let total = (total * 100.0).round() / 100.0;
            let at = self.timestamp(day);
            order.execute(params![order_id, user.id, at, status, user.country, total])?;
            for (product, quantity, price) in lines {
                item.execute(params![order_id, product, quantity, price])?;
            }
            if day <= staging_end {
                staging.execute(params![order_id, user.id, at, status, user.country, total])?;
                if self.rng.random_bool(0.02) {
                    // the staging copy has duplicates from a replayed load
                    staging.execute(params![order_id, user.id, at, status, user.country, total])?;
                }
            }
            if status == "refunded" {
                refund_id += 1;
                let when = (day + self.rng.random_range(1..20i64)).min(end);
                let reason = *REFUND_REASONS.choose(&mut self.rng).expect("non-empty");
                refund.execute(params![refund_id, order_id, self.timestamp(when), total, reason])?;
            }
        }
        Ok(())
    }
}

/// Day number of a date the generator itself spells out.
fn day_number(iso: &str) -> i64 {
    crate::calendar::day_number(iso).unwrap_or(0)
}
