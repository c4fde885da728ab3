//! The validator's speed: `cargo bench --bench validator`.
//!
//! Two corpora: every Spider dev gold query (1,034, against its database's schema from
//! `tables.json` in the Spider folder, `QUARRY_SPIDER` or its default beside the checkout;
//! left out, with a line saying so, when absent; unrestricted policy), and the demo mix (the adversarial
//! corpus and the demo questions' gold SQL against the demo catalog, under the demo roles, with
//! row filters, masks and caps applied). First a plain timed loop reports validations per
//! second on one core and the latency percentiles (p50, p99, max) per query; then criterion
//! measures each corpus as a whole.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use quarry::catalog::{spider, Catalog};
use quarry::config::Config;
use quarry::policy::{Policy, PolicySet, Principal};
use quarry::validate::{validate, DraftSql};

/// One validation to run: SQL, the catalog it is checked against, a role and a principal.
struct Job<'w> {
    sql: String,
    catalog: &'w Catalog,
    policy: &'w Policy,
    principal: Principal,
}

impl Job<'_> {
    fn run(&self) -> bool {
        validate(&DraftSql::new(self.sql.as_str()), self.catalog, self.policy, &self.principal).is_ok()
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Spider dev gold queries with their schemas, or nothing (said on stderr) without the data.
fn spider_corpus() -> (HashMap<String, Catalog>, Vec<(String, String)>) {
    let dir = quarry::config::spider_dir(&root());
    if !dir.join("dev.json").is_file() {
        eprintln!("SKIPPED the Spider dev corpus: no Spider data at {}; set QUARRY_SPIDER", dir.display());
        return (HashMap::new(), Vec::new());
    }
    let catalogs = spider::load_catalogs(&dir.join("tables.json")).expect("Spider tables.json");
    let text = std::fs::read_to_string(dir.join("dev.json")).expect("Spider dev.json");
    let examples: serde_json::Value = serde_json::from_str(&text).expect("dev.json");
    let queries = examples
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["db_id"].as_str()?.to_string(), e["query"].as_str()?.to_string())))
        .collect();
    (catalogs, queries)
}

/// The demo catalog from the demo schema (no rows) and governance files, and the demo roles.
fn demo_world() -> (Catalog, PolicySet) {
    let dir = std::env::temp_dir().join(format!("quarry-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("warehouse.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("warehouse");
    conn.execute_batch(include_str!("../src/demo/schema.sql")).expect("schema");
    drop(conn);
    let catalog = quarry::warehouse::load_catalog(&path, &root().join("schemas/demo")).expect("demo catalog");
    let _ = std::fs::remove_dir_all(&dir);
    let roles = Config::load(Some(&root().join("quarry.toml"))).expect("quarry.toml").policy;
    (catalog, roles)
}

/// The adversarial corpus's SQL with its roles, and the demo gold SQL as the analyst.
fn demo_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let dir = root().join("tests/data/adversarial");
    // The SQL corpus is the `*.toml` files; `surfaces/` holds another format.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("corpus file");
        let file: toml::Value = toml::from_str(&text).expect("corpus toml");
        for case in file["case"].as_array().into_iter().flatten() {
            let role = case.get("role").and_then(|r| r.as_str()).unwrap_or("analyst");
            queries.push((role.to_string(), case["sql"].as_str().unwrap_or_default().to_string()));
        }
    }
    let gold: toml::Value = toml::from_str(quarry::eval::DEMO_QUESTIONS).expect("questions");
    for case in gold["case"].as_array().into_iter().flatten() {
        queries.push(("analyst".to_string(), case["gold"].as_str().unwrap_or_default().to_string()));
    }
    queries
}

/// Runs every job `rounds` times, timing each validation; prints throughput and percentiles.
fn latency_report(name: &str, jobs: &[Job<'_>], rounds: usize) {
    let mut samples: Vec<Duration> = Vec::with_capacity(jobs.len() * rounds);
    let mut passed = 0;
    for job in jobs {
        passed += usize::from(job.run());
    }
    let started = Instant::now();
    for _ in 0..rounds {
        for job in jobs {
            let t = Instant::now();
            black_box(job.run());
            samples.push(t.elapsed());
        }
    }
    let wall = started.elapsed();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let mean = wall / samples.len() as u32;
    println!(
        "{name}: {} queries ({passed} pass), {} validations on one core in {:.2} s: \
         {:.0} validations/s/core; latency mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        jobs.len(),
        samples.len(),
        wall.as_secs_f64(),
        samples.len() as f64 / wall.as_secs_f64(),
        mean.as_secs_f64() * 1e6,
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );
}

fn spider_jobs<'w>(
    catalogs: &'w HashMap<String, Catalog>,
    queries: &[(String, String)],
    policy: &'w Policy,
) -> Vec<Job<'w>> {
    queries
        .iter()
        .filter_map(|(db, sql)| {
            Some(Job {
                sql: sql.clone(),
                catalog: catalogs.get(db)?,
                policy,
                principal: Principal::new("bench", policy.role()),
            })
        })
        .collect()
}

fn demo_jobs<'w>(catalog: &'w Catalog, roles: &'w PolicySet, queries: &[(String, String)]) -> Vec<Job<'w>> {
    queries
        .iter()
        .filter_map(|(role, sql)| {
            Some(Job {
                sql: sql.clone(),
                catalog,
                policy: roles.get(role)?,
                principal: Principal::new("bench", role.as_str()).with_attribute("country", "DE"),
            })
        })
        .collect()
}

fn corpora(c: &mut Criterion) {
    let unrestricted = Policy::unrestricted();
    let (catalogs, queries) = spider_corpus();
    let spider = spider_jobs(&catalogs, &queries, &unrestricted);
    let (catalog, roles) = demo_world();
    let demo_queries = demo_queries();
    let demo = demo_jobs(&catalog, &roles, &demo_queries);

    if !spider.is_empty() {
        latency_report("spider dev gold", &spider, 20);
    }
    latency_report("demo mix (policy)", &demo, 50);

    let mut group = c.benchmark_group("validate");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    for (name, jobs) in [("spider_dev_gold", &spider), ("demo_mix_policy", &demo)] {
        if jobs.is_empty() {
            continue;
        }
        group.throughput(Throughput::Elements(jobs.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for job in jobs.iter() {
                    black_box(job.run());
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, corpora);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
