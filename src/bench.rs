//! Benchmarks behind `quarry bench` (measurements, not tests): table retrieval recall and
//! latency on Spider, history ingestion throughput, vector search latency at scale, the
//! embedded model's prefill and decode speed (with and without an adapter, one candidate or
//! several decoded together), and questions answered end to end (`ask_latency`).
//!
//! Spider is used as one enterprise catalog: every table is named `<db_id>.<table>` (its
//! schema-qualified name), so the 166 databases merge into one catalog of ~900 tables.
//! With history, the "past queries" of a question are the other dev questions of its database
//! with their gold SQL; any with the same gold SQL as the question under test (the question
//! itself included) is excluded before fusion.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Value};

use crate::catalog::{Catalog, Table};
use crate::embed::Embedder;
use crate::history::structure;
use crate::index::{object, table_document};
use crate::retrieve::{retrieve, RetrievalBudget, Scope, Trust, TrustSignals};
use crate::vector_store::{Collection, Equals, Point, QdrantServerStore, VectorStore, VectorsLocation};

/// Errors while benchmarking.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read {path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] crate::vector_store::VectorStoreError),
    #[error(transparent)]
    Embed(#[from] crate::embed::EmbedError),
    #[error(transparent)]
    Retrieve(#[from] crate::retrieve::RetrieveError),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
    #[error("{0}")]
    Invalid(String),
}

mod http_load;
pub use http_load::{load, LoadOptions, LoadReport, Target};

/// Every table of every Spider database as `<db_id>.<table>` in one vector index: the
/// enterprise catalog that retrieval searches across.
pub struct MergedIndex {
    pub catalog: Catalog,
    pub store: std::sync::Arc<dyn VectorStore>,
    /// Qualified table name (lower case) to its database.
    database_of: HashMap<String, String>,
}

impl MergedIndex {
    /// Indexes the tables of `catalogs` (by database id) in a fresh store at `location`.
    pub fn build(
        catalogs: &HashMap<String, Catalog>,
        embedder: &dyn Embedder,
        location: &VectorsLocation,
    ) -> Result<MergedIndex, BenchError> {
        let mut tables = Vec::new();
        let mut database_of = HashMap::new();
        for (db, catalog) in catalogs {
            for table in catalog.tables() {
                let mut qualified = table.clone();
                qualified.name = format!("{db}.{}", table.name);
                database_of.insert(qualified.name.to_lowercase(), db.clone());
                tables.push(qualified);
            }
        }
        let catalog = Catalog::from_tables(tables);
        let store = fresh_store(location, embedder.dimension())?;
        let all: Vec<&Table> = catalog.tables().collect();
        let mut points = Vec::new();
        for chunk in all.chunks(256) {
            let texts: Vec<String> = chunk.iter().map(|t| table_document(t)).collect();
            let vectors = embedder.embed(&texts)?;
            for (table, vector) in chunk.iter().zip(vectors) {
                let db = database_of.get(&table.name.to_lowercase()).cloned().unwrap_or_default();
                points.push(Point {
                    id: points.len() as u64,
                    vector,
                    payload: object(json!({ "table": table.name, "db": db, "tier": 0, "deprecated": false })),
                });
            }
        }
        store.replace_all(Collection::Tables, points)?;
        Ok(MergedIndex { catalog, store, database_of })
    }

    /// The database a qualified table name belongs to.
    pub fn database_of(&self, table: &str) -> Option<&str> {
        self.database_of.get(&table.to_lowercase()).map(String::as_str)
    }
}

/// A store at `location` holding nothing: an embedded one in a new folder, or a server's
/// collections emptied.
fn fresh_store(
    location: &VectorsLocation,
    dimension: usize,
) -> Result<std::sync::Arc<dyn VectorStore>, BenchError> {
    if let VectorsLocation::Embedded(root) = location {
        let _ = std::fs::remove_dir_all(root);
    }
    let store = crate::vector_store::open(location, dimension)?;
    for collection in Collection::ALL {
        if store.count(collection)? > 0 {
            store.replace_all(collection, Vec::new())?;
        }
    }
    Ok(store)
}

/// Removes what a benchmark wrote at `location`: the folder, or the server's collections.
pub fn remove_store(location: &VectorsLocation) -> Result<(), BenchError> {
    match location {
        VectorsLocation::Embedded(root) => {
            let _ = std::fs::remove_dir_all(root);
        }
        VectorsLocation::Server(settings) => QdrantServerStore::remove_collections(settings)?,
    }
    Ok(())
}

/// How to run the retrieval benchmark.
#[derive(Debug, Clone)]
pub struct RetrievalOptions {
    /// Spider folder: `tables.json` and the questions.
    pub data: PathBuf,
    /// The questions' file in `data`: `dev.json`, or `train_spider_min.json` for tuning.
    pub questions: String,
    /// Search the merged catalog of all databases (else only the question's database).
    pub merged: bool,
    /// Use other dev questions of the same database as history.
    pub history: bool,
    /// Questions to ask (a seeded sample), or all.
    pub limit: Option<usize>,
    pub seed: u64,
    /// Where the vector index is built.
    pub store: VectorsLocation,
}

/// What the retrieval benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalReport {
    /// The vector store searched.
    pub store: String,
    pub questions: usize,
    pub merged: bool,
    pub history: bool,
    pub tables_indexed: usize,
    pub history_points: usize,
    /// Mean share of the gold tables among the first k retrieved.
    #[serde(rename = "recall@1")]
    pub recall_1: f64,
    #[serde(rename = "recall@3")]
    pub recall_3: f64,
    #[serde(rename = "recall@5")]
    pub recall_5: f64,
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
    /// Share of questions with every gold table among the first 5.
    pub complete_at_5: f64,
    /// Share of questions whose first table is of their own database: how `quarry eval --mode
    /// enterprise` picks the database (merged catalog only).
    pub database_at_1: Option<f64>,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub index_ms: u64,
}

/// The `p`-th percentile (nearest rank) of sorted values; the default when there are none.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs the retrieval benchmark; `progress(done, total, running recall@5)`.
pub fn retrieval(
    options: &RetrievalOptions,
    embedder: &dyn Embedder,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<RetrievalReport, BenchError> {
    let catalogs = crate::catalog::spider::load_catalogs(&options.data.join("tables.json"))?;
    let questions = crate::catalog::spider::read_questions(&options.data.join(&options.questions))?;

    let started = Instant::now();
    let index = MergedIndex::build(&catalogs, embedder, &options.store)?;
    let (merged, store) = (&index.catalog, &index.store);

    // Gold tables of every question, qualified.
    let gold: Vec<Option<BTreeSet<String>>> = questions
        .iter()
        .map(|q| {
            let catalog = catalogs.get(&q.db_id)?;
            let s = structure::analyze(&q.query, catalog)?;
            let set: BTreeSet<String> =
                s.tables.iter().map(|t| format!("{}.{t}", q.db_id).to_lowercase()).collect();
            (!set.is_empty()).then_some(set)
        })
        .collect();

    let mut history_points = 0;
    if options.history {
        let mut points = Vec::new();
        let texts: Vec<String> = questions.iter().map(|q| q.question.clone()).collect();
        let mut vectors = Vec::new();
        for chunk in texts.chunks(256) {
            vectors.extend(embedder.embed(chunk)?);
        }
        for ((i, q), vector) in questions.iter().enumerate().zip(vectors) {
            let Some(tables) = &gold[i] else { continue };
            points.push(Point {
                id: i as u64,
                vector,
                payload: object(json!({
                    "label": q.question, "sql": q.query, "author": "spider-dev", "db": q.db_id,
                    "tables": tables.iter().collect::<Vec<_>>(), "gold": crate::history::sql_key(&q.query),
                })),
            });
        }
        history_points = points.len();
        store.replace_all(Collection::Queries, points)?;
    } else {
        store.replace_all(Collection::Queries, Vec::new())?;
    }
    let index_ms = started.elapsed().as_millis() as u64;

    // How many history queries read each table, and how many of those share a gold SQL.
    let mut usage: HashMap<String, usize> = HashMap::new();
    let mut own_usage: HashMap<(String, String), usize> = HashMap::new();
    if options.history {
        for (q, tables) in questions.iter().zip(&gold) {
            for table in tables.iter().flatten() {
                *usage.entry(table.clone()).or_default() += 1;
                *own_usage.entry((crate::history::sql_key(&q.query), table.clone())).or_default() += 1;
            }
        }
    }

    let mut order: Vec<usize> = (0..questions.len()).filter(|&i| gold[i].is_some()).collect();
    if let Some(limit) = options.limit {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(options.seed));
        order.truncate(limit);
        order.sort_unstable();
    }
    let mut recall = [0.0f64; 4];
    let mut complete_5 = 0usize;
    let mut routed = 0usize;
    let mut latencies = Vec::new();
    let total = order.len();
    for (done, &i) in order.iter().enumerate() {
        let q = &questions[i];
        let Some(gold_tables) = &gold[i] else { continue };
        let mut scope = Scope {
            filters: Vec::new(),
            exclude: vec![Equals { field: "gold", value: Value::String(crate::history::sql_key(&q.query)) }],
        };
        if !options.merged {
            scope.filters.push(Equals { field: "db", value: Value::String(q.db_id.clone()) });
        }
        let own_gold = crate::history::sql_key(&q.query);
        // Usage counts the history less the question's own gold SQL (leakage guard).
        let trust = TrustSignals::new(usage.iter().map(|(table, n)| {
            let own = own_usage.get(&(own_gold.clone(), table.clone())).copied().unwrap_or(0);
            (table.clone(), Trust { past_queries: n.saturating_sub(own), ..Trust::default() })
        }));
        let started = Instant::now();
        let retrieved = retrieve(
            &q.question,
            merged,
            crate::retrieve::VectorSearch { embedder, store: store.as_ref() },
            RetrievalBudget { tables: 10, joined: 0, examples: 0, reuse: false },
            &scope,
            &trust,
            // Benchmark schemas: no governed past queries to hide.
            &|_| true,
        )?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        let ranked: Vec<String> = retrieved.tables.iter().map(|t| t.name.to_lowercase()).collect();
        for (slot, k) in [1usize, 3, 5, 10].into_iter().enumerate() {
            let hit = ranked.iter().take(k).filter(|t| gold_tables.contains(*t)).count();
            recall[slot] += hit as f64 / gold_tables.len() as f64;
        }
        if gold_tables.iter().all(|t| ranked.iter().take(5).any(|r| r == t)) {
            complete_5 += 1;
        }
        if ranked
            .first()
            .and_then(|t| index.database_of(t))
            .is_some_and(|db| db.eq_ignore_ascii_case(&q.db_id))
        {
            routed += 1;
        }
        progress(done + 1, total, recall[2] / (done + 1) as f64);
    }
    latencies.sort_by(f64::total_cmp);
    let n = total.max(1) as f64;
    Ok(RetrievalReport {
        store: store.describe(),
        questions: total,
        merged: options.merged,
        history: options.history,
        tables_indexed: merged.tables().count(),
        history_points,
        recall_1: recall[0] / n,
        recall_3: recall[1] / n,
        recall_5: recall[2] / n,
        recall_10: recall[3] / n,
        complete_at_5: complete_5 as f64 / n,
        database_at_1: options.merged.then(|| routed as f64 / n),
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p95_ms: percentile(&latencies, 95.0),
        index_ms,
    })
}

/// What the vector-scale benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct VectorReport {
    /// The vector store measured.
    pub store: String,
    pub points: usize,
    pub insert_ms: u64,
    pub inserts_per_second: f64,
    /// Building the HNSW index after the inserts.
    pub optimize_ms: u64,
    pub searches: usize,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
}

/// Inserts `points` random unit vectors (with a past-query payload) into the queries
/// collection of an emptied store at `location` and times `searches` nearest-neighbour searches
/// of 12.
pub fn vectors(
    location: &VectorsLocation,
    dimension: usize,
    points: usize,
    searches: usize,
    seed: u64,
) -> Result<VectorReport, BenchError> {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut unit = move || {
        let v: Vec<f32> = (0..dimension).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let store = fresh_store(location, dimension)?;
    let started = Instant::now();
    let mut next = 0;
    while next < points {
        let batch: Vec<Point> = (next..(next + 10_000).min(points))
            .map(|i| Point {
                id: i as u64,
                vector: unit(),
                payload: object(
                    json!({ "tables": [format!("t{}", i % 900)], "label": format!("query {i}") }),
                ),
            })
            .collect();
        next += batch.len();
        store.upsert(Collection::Queries, batch)?;
    }
    let insert_ms = started.elapsed().as_millis() as u64;
    let started = Instant::now();
    store.optimize(Collection::Queries)?;
    let optimize_ms = started.elapsed().as_millis() as u64;
    let mut latencies = Vec::new();
    for _ in 0..searches {
        let query = unit();
        let started = Instant::now();
        store.search(Collection::Queries, &query, 12, &[])?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(VectorReport {
        store: store.describe(),
        points,
        insert_ms,
        inserts_per_second: points as f64 / (insert_ms.max(1) as f64 / 1000.0),
        optimize_ms,
        searches,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p95_ms: percentile(&latencies, 95.0),
    })
}

/// What the ingestion benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub entries: usize,
    pub llm: bool,
    pub elapsed_ms: u64,
    pub queries_per_second: f64,
}

/// Ingests `copies` copies of `log` (each copy under other author names, so every entry is
/// new) into a fresh metadata database; with `llm`, only the first `llm_entries` entries, each
/// described by the model.
pub fn ingest(
    catalog: &Catalog,
    log: &str,
    copies: usize,
    workdir: &Path,
    llm: Option<(&dyn crate::llm::Llm, usize)>,
) -> Result<IngestReport, BenchError> {
    use crate::history::{parse_log, LogFormat};
    use crate::ingest::IngestOptions;
    let (entries, _) = parse_log(log, LogFormat::Jsonl);
    let mut text = String::new();
    let mut count = 0;
    'copies: for copy in 0..copies.max(1) {
        for (_, entry) in &entries {
            if llm.is_some_and(|(_, n)| count >= n) {
                break 'copies;
            }
            let mut entry = entry.clone();
            entry.author = format!("{}-{copy}", entry.author);
            text.push_str(&serde_json::to_string(&entry).unwrap_or_default());
            text.push('\n');
            count += 1;
        }
    }
    let _ = std::fs::remove_dir_all(workdir);
    let metadata = crate::metadata::Metadata::open(&workdir.join("quarry.db"))?;
    let options = IngestOptions { llm: llm.map(|(llm, _)| llm), source: "bench".into(), audit: None };
    let started = Instant::now();
    let (report, _) =
        crate::ingest::ingest(&text, LogFormat::Jsonl, catalog, &metadata, &options, &mut |_, _| {})?;
    let elapsed = started.elapsed();
    Ok(IngestReport {
        entries: report.new,
        llm: llm.is_some(),
        elapsed_ms: elapsed.as_millis() as u64,
        queries_per_second: report.new as f64 / elapsed.as_secs_f64().max(1e-6),
    })
}

/// Speed of the embedded model on one prompt set, per configuration (with and without an
/// adapter).
#[derive(Debug, Clone, Serialize)]
pub struct LlmSpeed {
    /// `base`, or the adapter's name.
    pub name: String,
    pub generations: usize,
    /// Prompt tokens prefilled (not served from the cached prefix) per second, median.
    pub prefill_tokens_per_second: f64,
    /// Tokens generated per second, median.
    pub decode_tokens_per_second: f64,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Of `completion_tokens`, those guessed ahead and confirmed in a batch (`[llm] draft_tokens`).
    pub drafted_tokens: usize,
}

/// Generates greedily for each prompt, `rounds` times over the set (the cached prefix is
/// reused as in serving: each prompt prefills what it does not share with the previous one).
pub fn llm_speed(
    name: &str,
    llm: &dyn crate::llm::Llm,
    prompts: &[crate::llm::ChatPrompt],
    max_tokens: usize,
    rounds: usize,
) -> Result<LlmSpeed, crate::llm::LlmError> {
    let params = crate::llm::GenerationParams::greedy(max_tokens, crate::prompt::STOP);
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    let (mut prompt_tokens, mut completion_tokens, mut drafted_tokens) = (0, 0, 0);
    for _ in 0..rounds {
        for prompt in prompts {
            let g = llm.generate(prompt, &params)?;
            let prefilled = g.prompt_tokens.saturating_sub(g.cached_tokens);
            prefill.push(prefilled as f64 / (g.prefill_ms.max(1) as f64 / 1000.0));
            decode.push(g.completion_tokens as f64 / (g.decode_ms.max(1) as f64 / 1000.0));
            prompt_tokens += g.prompt_tokens;
            completion_tokens += g.completion_tokens;
            drafted_tokens += g.drafted_tokens;
        }
    }
    prefill.sort_by(f64::total_cmp);
    decode.sort_by(f64::total_cmp);
    Ok(LlmSpeed {
        name: name.to_string(),
        generations: prefill.len(),
        prefill_tokens_per_second: percentile(&prefill, 50.0),
        decode_tokens_per_second: percentile(&decode, 50.0),
        prompt_tokens,
        completion_tokens,
        drafted_tokens,
    })
}

/// What decoding several candidates together costs against one greedy answer, on the same
/// prompts (`quarry bench llm --candidates N`).
#[derive(Debug, Clone, Serialize)]
pub struct CandidatesCost {
    pub name: String,
    pub candidates: usize,
    pub prompts: usize,
    /// Wall time of one greedy answer per prompt (its prompt cached from a first run), median.
    pub greedy_ms_p50: u64,
    /// Wall time of the greedy answer and `candidates - 1` sampled ones decoded in one batch
    /// over the same cached prompt, median.
    pub batch_ms_p50: u64,
    /// batch / greedy: what `[llm] samples = candidates` multiplies generation time by.
    pub cost_ratio: f64,
    /// Tokens generated per prompt, greedy and batch (all candidates), medians.
    pub greedy_tokens_p50: u64,
    pub batch_tokens_p50: u64,
}

/// Times, for each prompt, one greedy generation and then a batch of `candidates` (greedy
/// first, the rest sampled as the pipeline samples them); both after a warm-up generation,
/// so both read the prompt from the cache and measure decoding.
pub fn candidates_cost(
    name: &str,
    llm: &dyn crate::llm::Llm,
    prompts: &[crate::llm::ChatPrompt],
    max_tokens: usize,
    candidates: usize,
) -> Result<CandidatesCost, crate::llm::LlmError> {
    let greedy = crate::llm::GenerationParams::greedy(max_tokens, crate::prompt::STOP);
    let batch: Vec<_> = std::iter::once(greedy.clone())
        .chain(
            (1..candidates.max(1))
                .map(|seed| greedy.sampled(crate::pipeline::SAMPLE_TEMPERATURE, seed as u32)),
        )
        .collect();
    let (mut greedy_ms, mut batch_ms, mut greedy_tokens, mut batch_tokens) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for prompt in prompts {
        llm.generate(prompt, &greedy)?;
        let started = std::time::Instant::now();
        let one = llm.generate(prompt, &greedy)?;
        greedy_ms.push(started.elapsed().as_millis() as f64);
        greedy_tokens.push(one.completion_tokens as f64);
        let started = std::time::Instant::now();
        let all = llm.generate_batch(prompt, &batch)?;
        batch_ms.push(started.elapsed().as_millis() as f64);
        batch_tokens.push(all.iter().map(|g| g.completion_tokens).sum::<usize>() as f64);
    }
    for values in [&mut greedy_ms, &mut batch_ms, &mut greedy_tokens, &mut batch_tokens] {
        values.sort_by(f64::total_cmp);
    }
    let (g, b) = (percentile(&greedy_ms, 50.0), percentile(&batch_ms, 50.0));
    Ok(CandidatesCost {
        name: name.to_string(),
        candidates: batch.len(),
        prompts: prompts.len(),
        greedy_ms_p50: g as u64,
        batch_ms_p50: b as u64,
        cost_ratio: b / g.max(1.0),
        greedy_tokens_p50: percentile(&greedy_tokens, 50.0) as u64,
        batch_tokens_p50: percentile(&batch_tokens, 50.0) as u64,
    })
}

/// Questions answered end to end (`quarry bench ask`): per pass, time per stage, prompt
/// tokens prefilled against read from the model's cache, and answers served again.
#[derive(Debug, Clone, Serialize)]
pub struct AskLatency {
    /// `cold` (first pass: nothing asked before) or `repeat` (the same questions again).
    pub pass: String,
    pub questions: usize,
    /// Asks that ended in an error (a refusal, an unanswerable question); timed all the same.
    pub errors: usize,
    /// Answers served from the answer cache (nothing generated).
    pub answer_cached: usize,
    /// Answers reusing a verified past query.
    pub reused: usize,
    pub total_ms_p50: u64,
    pub total_ms_p95: u64,
    pub generate_ms_p50: u64,
    pub generate_ms_p95: u64,
    pub retrieve_ms_p50: u64,
    pub embed_ms_p50: u64,
    pub validate_ms_p50: u64,
    pub execute_ms_p50: u64,
    /// Prompt tokens over all generations: prefilled, and read from the cache.
    pub prefilled_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// The process's peak resident memory after the pass (Linux `VmHWM`), MiB.
    pub peak_rss_mib: Option<u64>,
}

/// Asks `questions` (with the day each is asked on) `passes` times through `quarry`: the first
/// pass cold, the others repeats. `progress(pass, done, total)`.
pub fn ask_latency(
    quarry: &crate::pipeline::Quarry,
    principal: &crate::pipeline::Principal,
    questions: &[(String, Option<String>)],
    passes: usize,
    progress: &mut dyn FnMut(usize, usize, usize),
) -> Vec<AskLatency> {
    let mut reports = Vec::new();
    for pass in 0..passes.max(1) {
        let mut stages: [Vec<u64>; 6] = Default::default();
        let mut report = AskLatency {
            pass: if pass == 0 { "cold".into() } else { "repeat".into() },
            questions: questions.len(),
            errors: 0,
            answer_cached: 0,
            reused: 0,
            total_ms_p50: 0,
            total_ms_p95: 0,
            generate_ms_p50: 0,
            generate_ms_p95: 0,
            retrieve_ms_p50: 0,
            embed_ms_p50: 0,
            validate_ms_p50: 0,
            execute_ms_p50: 0,
            prefilled_tokens: 0,
            cached_tokens: 0,
            completion_tokens: 0,
            peak_rss_mib: None,
        };
        for (done, (question, today)) in questions.iter().enumerate() {
            let options = crate::pipeline::AskOptions { today: today.clone(), ..Default::default() };
            let started = Instant::now();
            let answer = quarry.ask_with(question, principal, &options);
            let total = started.elapsed().as_millis() as u64;
            stages[0].push(total);
            match answer {
                Ok(answer) => {
                    let t = &answer.timings;
                    stages[1].push(t.generate_ms);
                    stages[2].push(t.retrieve_ms);
                    stages[3].push(t.embed_ms);
                    stages[4].push(t.validate_ms);
                    stages[5].push(t.execute_ms);
                    report.prefilled_tokens += t.prompt_tokens.saturating_sub(t.cached_tokens);
                    report.cached_tokens += t.cached_tokens;
                    report.completion_tokens += t.completion_tokens;
                    report.answer_cached += usize::from(t.answer_cached);
                    report.reused += usize::from(answer.reused.is_some());
                }
                Err(_) => report.errors += 1,
            }
            progress(pass, done + 1, questions.len());
        }
        for values in &mut stages {
            values.sort_unstable();
        }
        report.total_ms_p50 = percentile(&stages[0], 50.0);
        report.total_ms_p95 = percentile(&stages[0], 95.0);
        report.generate_ms_p50 = percentile(&stages[1], 50.0);
        report.generate_ms_p95 = percentile(&stages[1], 95.0);
        report.retrieve_ms_p50 = percentile(&stages[2], 50.0);
        report.embed_ms_p50 = percentile(&stages[3], 50.0);
        report.validate_ms_p50 = percentile(&stages[4], 50.0);
        report.execute_ms_p50 = percentile(&stages[5], 50.0);
        report.peak_rss_mib = peak_rss_mib();
        reports.push(report);
    }
    reports
}

/// The process's peak resident set (Linux `/proc/self/status`, `VmHWM`), MiB.
pub fn peak_rss_mib() -> Option<u64> {
    peak_rss_mib_of("self")
}

/// The peak resident set of process `pid` ("self" for this one), MiB.
fn peak_rss_mib_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
