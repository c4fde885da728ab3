//! The Spider evaluation harness: the leakage guard of warm runs over the real index, and a
//! smoke evaluation with the real model.

use std::path::PathBuf;
use std::sync::Arc;

use quarry::eval::spider::{self, Mode, Options};
use quarry::history::sql_key;
use quarry::llm::{Llm, ScriptedLlm};
use quarry::pipeline::{AskOptions, Principal};

use crate::support::{config_for, embedder, real_model_turn, spider_or_skip};

/// In a warm run, neither the question under test nor any question with identical gold SQL
/// is ever among the examples the model sees; other questions of the database are.
#[test]
fn warm_runs_never_show_the_question_or_its_identical_gold_sql() {
    let Some(data) = spider_or_skip("warm_runs_never_show_the_question_or_its_identical_gold_sql") else {
        return;
    };
    let questions = spider::read_questions(&data.join("dev.json")).expect("dev.json");
    let db = "concert_singer";
    let dir = tempfile::tempdir().expect("temp dir");
    // Any prompt gets a valid query: this test is about what the prompt holds.
    let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::new([("Question:", "SELECT count(*) FROM singer")]));
    let history = spider::warm_history(&questions, db);
    let quarry = spider::open_database(
        &config_for(dir.path()),
        quarry::config::WarehouseLocation::Sqlite(spider::database_path(&data, db)),
        db,
        Some(history),
        dir.path(),
        embedder(),
        Some(llm),
    )
    .expect("open the concert_singer workspace");
    let principal = Principal::local();
    let (mut shared_gold, mut leaked_without_guard) = (0, 0);
    for q in questions.iter().filter(|q| q.db_id == db) {
        let key = sql_key(&q.query);
        let guarded = AskOptions { exclude_sql_keys: vec![key.clone()], ..AskOptions::default() };
        let answer = quarry.ask_with(&q.question, &principal, &guarded).expect("answer");
        assert!(!answer.examples.is_empty(), "{}: no history example at all", q.question);
        for example in &answer.examples {
            assert_ne!(sql_key(&example.sql), key, "{}: its gold SQL was shown: {}", q.question, example.sql);
        }
        assert!(answer.reused.is_none());
        if questions.iter().filter(|o| o.db_id == db && sql_key(&o.query) == key).count() > 1 {
            shared_gold += 1;
        }
        let unguarded = quarry.ask(&q.question, &principal).expect("answer");
        leaked_without_guard += usize::from(unguarded.examples.iter().any(|e| sql_key(&e.sql) == key));
    }
    // The database has paraphrased questions with identical gold SQL, and without the guard
    // their SQL would be shown: the guard is what keeps it out.
    assert!(shared_gold >= 4, "{shared_gold}");
    assert!(leaked_without_guard >= 10, "{leaked_without_guard}");
}

/// Spider's difficulty classes, computed by the official rules from the parsed gold SQL, give
/// the official distribution of the dev set.
#[test]
fn difficulty_classes_match_the_official_distribution() {
    let Some(data) = spider_or_skip("difficulty_classes_match_the_official_distribution") else { return };
    let questions = spider::read_questions(&data.join("dev.json")).expect("dev.json");
    let mut counts = std::collections::BTreeMap::new();
    for q in &questions {
        *counts.entry(spider::difficulty(q.sql.as_ref().expect("dev.json carries sql"))).or_insert(0) += 1;
    }
    let expected = [("easy", 248), ("extra", 166), ("hard", 174), ("medium", 446)];
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), expected);
}

fn options(
    data: PathBuf,
    mode: Mode,
    limit: usize,
    dir: &std::path::Path,
    samples: usize,
    jobs: usize,
) -> Options {
    Options {
        data,
        mode,
        limit: Some(limit),
        seed: 7,
        workdir: dir.join("eval"),
        done: Vec::new(),
        samples,
        jobs,
        category: None,
        postgres: None,
    }
}

/// Five Spider dev questions through the whole cold pipeline with the real model, scored by
/// execution.
#[test]
fn a_smoke_evaluation_with_the_real_model() {
    let Some(_turn) = real_model_turn() else { return };
    let Some(data) = spider_or_skip("a_smoke_evaluation_with_the_real_model") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_for(dir.path());
    let llm = quarry::pipeline::load_default_llm(&config).expect("model assets: run `make assets`");
    let options = options(data, Mode::Cold, 5, dir.path(), 1, 1);
    let mut seen = 0;
    let (results, skipped) =
        spider::run(&options, &config, embedder(), &|| Ok(llm.clone()), &mut |_, done, total| {
            seen = done;
            assert_eq!(total, 5);
            Ok(())
        })
        .expect("evaluation");
    assert_eq!((results.len(), seen), (5, 5));
    assert_eq!(skipped, 1034 - 972, "questions without a database");
    for r in &results {
        assert!(!r.outcome.is_empty() && !r.gold_tables.is_empty(), "{r:?}");
        assert!(r.predicted.is_some() || r.error.is_some(), "{r:?}");
        assert_eq!(r.correct, r.outcome == "correct", "{r:?}");
        // Every question was asked: failed answers count their generations and tokens too.
        assert!(r.attempts >= 1 && r.attempts == 1 + r.repairs || !r.correct, "{r:?}");
        assert!(r.prompt_tokens > 0 && !r.difficulty.is_empty(), "{r:?}");
    }
    let summary = spider::summarize(&results, Mode::Cold, llm.model_id(), skipped, 1);
    assert_eq!(summary.questions + summary.gold_failed, 5);
    assert_eq!(summary.by_difficulty.values().map(|s| s.questions).sum::<usize>(), summary.questions);
    // The default model gets about seven in ten of Spider right; fewer than 2 of 5 means a
    // broken pipeline.
    assert!(summary.correct >= 2, "{}", spider::markdown(&summary, "spider"));
    assert!(summary.table_recall > 0.8, "{}", spider::markdown(&summary, "spider"));
}

/// Enterprise mode with two jobs (each its own copy of the real model): retrieval across the
/// merged catalog of all 166 Spider databases picks each question's database; a wrong pick is
/// scored wrong without asking.
#[test]
fn an_enterprise_evaluation_routes_across_the_merged_catalog() {
    let Some(_turn) = real_model_turn() else { return };
    let Some(data) = spider_or_skip("an_enterprise_evaluation_routes_across_the_merged_catalog") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_for(dir.path());
    let mut per_job = config.clone();
    per_job.threads = (config.threads / 2).max(1);
    let options = options(data, Mode::Enterprise, 4, dir.path(), 1, 2);
    let (results, _) = spider::run(
        &options,
        &config,
        embedder(),
        &|| quarry::pipeline::load_default_llm(&per_job),
        &mut |_, _, _| Ok(()),
    )
    .expect("evaluation");
    assert_eq!(results.len(), 4);
    assert!(results.windows(2).all(|w| w[0].index < w[1].index), "results in question order");
    for r in &results {
        let routed = r.routed_db.as_deref().expect("every question is routed");
        assert_eq!(routed != r.db_id, r.outcome == "wrong_database", "{r:?}");
        assert_eq!(r.attempts == 0, r.outcome == "wrong_database", "{r:?}");
    }
    let summary = spider::summarize(&results, Mode::Enterprise, "m", 0, 1);
    let routing = summary.routing_accuracy.expect("enterprise summaries report routing");
    assert!(routing >= 0.5, "{}", spider::markdown(&summary, "spider"));
}

/// In a catalog of many schemas, tables that look alike (two `airlines`) are told apart by the
/// names the question says: the one with an `Abbreviation` column is first, and its evidence says
/// why. Embeddings alone (all-MiniLM-L6-v2) put the other first.
#[test]
fn the_table_whose_columns_the_question_names_comes_first_among_look_alikes() {
    let catalogs = [
        ("flight_2", vec![text_table("airlines", &["uid", "Airline", "Abbreviation", "Country"])]),
        (
            "flight_4",
            vec![
                text_table("airlines", &["alid", "name", "iata", "icao", "callsign", "country", "active"]),
                text_table(
                    "airports",
                    &["apid", "name", "city", "country", "x", "y", "elevation", "iata", "icao"],
                ),
            ],
        ),
        ("flight_company", vec![text_table("airport", &["id", "City", "Country", "IATA", "ICAO", "name"])]),
    ];
    let retrieved = retrieve_across_schemas(catalogs, "Which airline has abbreviation 'UAL'?", 3);
    let first = &retrieved.tables[0];
    assert_eq!(first.name, "flight_2.airlines", "{:#?}", retrieved.tables);
    assert!(
        first.evidence.iter().any(|e| e.starts_with("the question uses its name or its columns' names")),
        "{:?}",
        first.evidence
    );
}

/// Two schemas hold a `singer` table with the same columns; the question's other words
/// (stadium, capacity) are in one of them, and its `singer` comes first, saying why, though
/// the other's description matches the question better (without the schema's lift, it
/// ranked first: 0.69 against 0.63).
#[test]
fn the_schema_holding_the_questions_other_words_decides_between_look_alikes() {
    let singer = || text_table("singer", &["Singer_ID", "Name", "Country", "Age"]);
    // The look-alike is the better documented: its description alone matches the question more.
    let mut documented = singer();
    documented.description = "Singers who sang at stadiums, with their age and country.".into();
    let catalogs = [
        ("singer", vec![documented, text_table("song", &["Song_ID", "Title", "Singer_ID", "Sales"])]),
        (
            "concert_singer",
            vec![
                singer(),
                text_table("concert", &["concert_ID", "concert_Name", "Stadium_ID", "Year"]),
                text_table("stadium", &["Stadium_ID", "Location", "Name", "Capacity"]),
            ],
        ),
    ];
    let retrieved = retrieve_across_schemas(
        catalogs,
        "Singers' countries and ages where the stadium capacity is above 5000",
        5,
    );
    let rank = |name: &str| retrieved.tables.iter().position(|t| t.name == name);
    let (Some(ours), Some(theirs)) = (rank("concert_singer.singer"), rank("singer.singer")) else {
        panic!("both singer tables should be offered: {:#?}", retrieved.tables);
    };
    assert!(ours < theirs, "{:#?}", retrieved.tables);
    let evidence = &retrieved.tables[ours].evidence;
    assert!(evidence.iter().any(|e| e.starts_with("its schema concert_singer names")), "{evidence:?}");
}

fn text_table(name: &str, columns: &[&str]) -> quarry::catalog::Table {
    use quarry::catalog::{Column, Table};
    Table::new(name, columns.iter().map(|c| Column::new(*c, "TEXT")).collect())
}

/// Retrieval for `question` over the schemas given (by name), merged into one catalog of
/// `schema.table` names as the enterprise evaluation merges Spider's, with the real embedder.
fn retrieve_across_schemas<const N: usize>(
    schemas: [(&str, Vec<quarry::catalog::Table>); N],
    question: &str,
    tables: usize,
) -> quarry::retrieve::Retrieved {
    use quarry::catalog::Catalog;
    use quarry::retrieve::{retrieve, RetrievalBudget, Scope, TrustSignals, VectorSearch};
    let catalogs: std::collections::HashMap<String, Catalog> =
        schemas.into_iter().map(|(db, tables)| (db.to_string(), Catalog::from_tables(tables))).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let location = quarry::vector_store::VectorsLocation::Embedded(dir.path().join("merged"));
    let embedder = embedder();
    let merged = quarry::bench::MergedIndex::build(&catalogs, embedder.as_ref(), &location).expect("index");
    retrieve(
        question,
        &merged.catalog,
        VectorSearch { embedder: embedder.as_ref(), store: merged.store.as_ref() },
        RetrievalBudget { tables, joined: 0, examples: 0, reuse: false },
        &Scope::default(),
        &TrustSignals::default(),
        &|_| true,
    )
    .expect("retrieval")
}

/// `quarry bench retrieval` on a folder in Spider's layout: the questions come from the file
/// named (train questions to tune on), routing is reported for the merged catalog only, and a
/// missing file is named.
#[test]
fn the_retrieval_bench_reads_the_questions_named_and_reports_routing() {
    let data = tempfile::tempdir().expect("temp dir");
    let tables = serde_json::json!([
        {
            "db_id": "flight_2",
            "table_names_original": ["airlines"],
            "column_names_original": [[-1, "*"], [0, "uid"], [0, "Airline"], [0, "Abbreviation"], [0, "Country"]],
            "column_types": ["text", "number", "text", "text", "text"],
            "primary_keys": [1], "foreign_keys": []
        },
        {
            "db_id": "concert_singer",
            "table_names_original": ["stadium", "singer"],
            "column_names_original": [[-1, "*"], [0, "Stadium_ID"], [0, "Location"], [0, "Capacity"],
                                      [1, "Singer_ID"], [1, "Name"], [1, "Country"], [1, "Age"]],
            "column_types": ["text", "number", "text", "number", "number", "text", "text", "number"],
            "primary_keys": [1, 4], "foreign_keys": []
        }
    ]);
    std::fs::write(data.path().join("tables.json"), tables.to_string()).expect("tables.json");
    let train = serde_json::json!([
        { "db_id": "flight_2", "question": "Which airline has abbreviation 'UAL'?",
          "query": "SELECT Airline FROM airlines WHERE Abbreviation = 'UAL'" },
        { "db_id": "concert_singer", "question": "What is the capacity of each stadium?",
          "query": "SELECT Location, Capacity FROM stadium" },
        { "db_id": "concert_singer", "question": "How old is each singer?",
          "query": "SELECT Name, Age FROM singer" }
    ]);
    std::fs::write(data.path().join("train_spider_min.json"), train.to_string()).expect("train");
    let store = tempfile::tempdir().expect("temp dir");
    let options = |merged: bool, questions: &str| quarry::bench::RetrievalOptions {
        data: data.path().to_path_buf(),
        questions: questions.into(),
        merged,
        history: false,
        limit: None,
        seed: 7,
        store: quarry::vector_store::VectorsLocation::Embedded(store.path().join("vectors")),
    };
    let embedder = embedder();
    let merged = quarry::bench::retrieval(
        &options(true, "train_spider_min.json"),
        embedder.as_ref(),
        &mut |_, _, _| {},
    )
    .expect("bench");
    assert_eq!(merged.questions, 3);
    assert_eq!(merged.tables_indexed, 3);
    assert_eq!(merged.database_at_1, Some(1.0), "{merged:?}");
    assert!(merged.recall_1 <= merged.recall_3 && merged.recall_3 <= merged.recall_5, "{merged:?}");
    let per_database = quarry::bench::retrieval(
        &options(false, "train_spider_min.json"),
        embedder.as_ref(),
        &mut |_, _, _| {},
    )
    .expect("bench");
    assert_eq!(per_database.database_at_1, None, "routing is a merged catalog's question");
    let Err(missing) =
        quarry::bench::retrieval(&options(true, "dev.json"), embedder.as_ref(), &mut |_, _, _| {})
    else {
        panic!("a missing questions file is an error");
    };
    assert!(missing.to_string().contains("dev.json"), "{missing}");
}

/// A prediction is right when its rows match any acceptable gold (`query_alternatives`), and
/// results are reported by category; none of the alternatives' SQL may help answer.
#[test]
fn any_acceptable_gold_scores_and_categories_are_reported() {
    let data = tempfile::tempdir().expect("temp dir");
    let db_dir = data.path().join("database/shop");
    std::fs::create_dir_all(&db_dir).expect("folder");
    rusqlite::Connection::open(db_dir.join("shop.sqlite"))
        .and_then(|c| {
            c.execute_batch(
                "CREATE TABLE sales (region TEXT, amount INTEGER);
                 INSERT INTO sales VALUES ('north', 10), ('south', 30), ('north', 5);",
            )
        })
        .expect("database");
    let questions = serde_json::json!([
        { "db_id": "shop", "question": "Total sales per region?", "category": "gen:group_by",
          "query": "SELECT region, SUM(amount) FROM sales GROUP BY region",
          "query_alternatives": ["SELECT region, SUM(amount) FROM sales GROUP BY region",
                                 "SELECT SUM(amount), region FROM sales GROUP BY region"] },
        { "db_id": "shop", "question": "How many sales are there?", "category": "gen:ratio",
          "query": "SELECT COUNT(*) FROM sales" },
    ]);
    std::fs::write(data.path().join("dev.json"), questions.to_string()).expect("dev.json");
    std::fs::write(data.path().join("tables.json"), "[]").expect("tables.json");
    // The model writes the second alternative's column order, and a wrong count.
    let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::new([
        ("Total sales per region?", "SELECT SUM(amount) AS total, region FROM sales GROUP BY region"),
        ("How many sales are there?", "SELECT COUNT(*) + 1 FROM sales"),
    ]));
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_for(dir.path());
    let options = options(data.path().to_path_buf(), Mode::Cold, 10, dir.path(), 1, 1);
    let (results, _) = spider::run(&options, &config, embedder(), &|| Ok(llm.clone()), &mut |_, _, _| Ok(()))
        .expect("evaluation");
    let outcome = |q: &str| results.iter().find(|r| r.question == q).map(|r| r.outcome.clone());
    assert_eq!(outcome("Total sales per region?").as_deref(), Some("correct"), "{results:?}");
    assert_eq!(outcome("How many sales are there?").as_deref(), Some("wrong_result"), "{results:?}");
    let summary = spider::summarize(&results, Mode::Cold, "scripted", 0, 1);
    let category = |c: &str| summary.by_category.get(c).map(|s| (s.questions, s.correct));
    assert_eq!((category("gen:group_by"), category("gen:ratio")), (Some((1, 1)), Some((1, 0))));
    assert!(spider::markdown(&summary, "spider").contains("## By category"));
}
