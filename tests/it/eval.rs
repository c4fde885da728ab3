//! The Spider evaluation harness: the leakage guard of warm runs over the real index, and a
//! smoke evaluation with the real model.

use std::path::PathBuf;
use std::sync::Arc;

use quarry::eval::spider::{self, Mode, Options};
use quarry::history::sql_key;
use quarry::llm::{Llm, ScriptedLlm};
use quarry::pipeline::{AskOptions, Principal};

use crate::support::{config_for, e2e_enabled, embedder, repo_root};

fn spider_data() -> PathBuf {
    repo_root().join("../shared/data/spider")
}

/// In a warm run, neither the question under test nor any question with identical gold SQL
/// is ever among the examples the model sees; other questions of the database are.
#[test]
fn warm_runs_never_show_the_question_or_its_identical_gold_sql() {
    let data = spider_data();
    let questions = spider::read_questions(&data.join("dev.json")).expect("dev.json");
    let db = "concert_singer";
    let dir = tempfile::tempdir().expect("temp dir");
    // Any prompt gets a valid query: this test is about what the prompt holds.
    let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::new([("Question:", "SELECT count(*) FROM singer")]));
    let history = spider::warm_history(&questions, db);
    let quarry =
        spider::open_database(&config_for(dir.path()), &data, db, Some(history), dir.path(), embedder(), llm)
            .expect("open the concert_singer workspace");
    let principal = Principal::local();
    let (mut shared_gold, mut leaked_without_guard) = (0, 0);
    for q in questions.iter().filter(|q| q.db_id == db) {
        let key = sql_key(&q.query);
        let guarded = AskOptions { exclude_sql_key: Some(key.clone()) };
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

/// Ten Spider dev questions through the whole cold pipeline with the real model, scored by
/// execution.
#[test]
fn a_smoke_evaluation_with_the_real_model() {
    if !e2e_enabled() {
        eprintln!("skipped: set QUARRY_E2E=1 to run tests with the real model");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_for(dir.path());
    let llm = quarry::pipeline::load_default_llm(&config).expect("model assets: run `make assets`");
    let options = Options {
        data: spider_data(),
        mode: Mode::Cold,
        limit: Some(10),
        seed: 7,
        workdir: dir.path().join("eval"),
        done: Vec::new(),
    };
    let mut seen = 0;
    let (results, skipped) =
        spider::run(&options, &config, embedder(), llm.clone(), &mut |_, done, total| {
            seen = done;
            assert_eq!(total, 10);
            Ok(())
        })
        .expect("evaluation");
    assert_eq!((results.len(), seen), (10, 10));
    assert_eq!(skipped, 1034 - 972, "questions without a database");
    for r in &results {
        assert!(!r.outcome.is_empty() && !r.gold_tables.is_empty(), "{r:?}");
        assert!(r.predicted.is_some() || r.error.is_some(), "{r:?}");
        assert_eq!(r.correct, r.outcome == "correct", "{r:?}");
    }
    let summary = spider::summarize(&results, Mode::Cold, llm.model_id(), skipped);
    assert_eq!(summary.questions + summary.gold_failed, 10);
    // The 0.5B model gets about half of Spider right; fewer than 3 of 10 means a broken pipeline.
    assert!(summary.correct >= 3, "{}", spider::markdown(&summary));
    assert!(summary.table_recall > 0.8, "{}", spider::markdown(&summary));
}
