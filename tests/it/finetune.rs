//! Fine-tuning: the export writes exactly the prompt the runtime sends the model, split by
//! database and never holding an evaluation question or its SQL; an adapter loads into the
//! embedded runtime and answers name it.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use quarry::catalog::spider::read_questions;
use quarry::finetune::{export, EvaluationGuard, ExportOptions, TrainingExample};
use quarry::history::sql_key;
use quarry::llm::{ChatPrompt, Generation, GenerationParams, LlamaCppLlm, Llm, LlmError, PromptRenderer};
use quarry::pipeline::{load_default_llm, AskOptions, Principal, Quarry};

use crate::support::{config_for, embedder, private_workspace, real_model_turn, repo_root, spider_or_skip};

/// The default adapter shipped with the repository.
const DEFAULT_ADAPTER: &str = "training/adapters/qwen2.5-coder-0.5b-quarry-lora.gguf";

/// A model that keeps every prompt it is given and answers with a fixed query.
#[derive(Default)]
struct Recording {
    prompts: Mutex<Vec<ChatPrompt>>,
}

impl Llm for Recording {
    fn model_id(&self) -> &str {
        "recording"
    }

    fn generate(&self, prompt: &ChatPrompt, _: &GenerationParams) -> Result<Generation, LlmError> {
        self.prompts.lock().unwrap_or_else(|p| p.into_inner()).push(prompt.clone());
        Ok(Generation { text: "SELECT COUNT(*) FROM users\n```".into(), ..Generation::default() })
    }
}

fn read_examples(path: &std::path::Path) -> Vec<TrainingExample> {
    std::fs::read_to_string(path)
        .expect("examples written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an example per line"))
        .collect()
}

#[test]
fn the_export_writes_the_runtime_prompt_and_never_an_evaluation_question() {
    let Some(_turn) = real_model_turn() else { return };
    let Some(spider) =
        spider_or_skip("the_export_writes_the_runtime_prompt_and_never_an_evaluation_question")
    else {
        return;
    };
    let dir = private_workspace();
    let mut config = config_for(dir.path());
    config.governance = dir.path().join("schemas");
    let recording = Arc::new(Recording::default());
    let quarry = Quarry::open(config.clone(), embedder(), Some(recording.clone() as Arc<dyn Llm>))
        .expect("open the workspace");
    let out = tempfile::tempdir().expect("temp dir");
    let options = ExportOptions {
        out: out.path().to_path_buf(),
        spider: Some(spider.clone()),
        spider_limit: Some(60),
        heldout_percent: 20,
        seed: 7,
        synthetic_per_table: 0,
        keep_out: Vec::new(),
    };
    let report = export(&options, &config, Some(&quarry), embedder(), &mut |_| {}).expect("export");
    let train = read_examples(&out.path().join("train.jsonl"));
    let heldout = read_examples(&out.path().join("heldout.jsonl"));
    assert_eq!((report.train, report.heldout), (train.len(), heldout.len()));
    assert!(!train.is_empty() && !heldout.is_empty(), "{report:?}");
    assert_eq!(report.failed_count, 0, "{:?}", report.failed);
    let kinds: BTreeSet<String> = train.iter().map(|e| format!("{}/{}", e.source, e.variant)).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["history/history", "spider_train/cold", "spider_train/warm"].map(String::from))
    );

    // Held out by database: no Spider database is on both sides.
    let spider_dbs = |examples: &[TrainingExample]| -> HashSet<String> {
        examples.iter().filter(|e| e.source == "spider_train").map(|e| e.db_id.clone()).collect()
    };
    assert!(spider_dbs(&train).is_disjoint(&spider_dbs(&heldout)));

    // No evaluation question, and no question whose SQL is an evaluation question's gold SQL.
    let dev = read_questions(&spider.join("dev.json")).expect("dev.json");
    let dev_questions: HashSet<String> =
        dev.iter().map(|q| quarry::finetune::normalize_question(&q.question)).collect();
    let dev_sql: HashSet<String> = dev.iter().map(|q| sql_key(&q.query)).collect();
    for e in train.iter().chain(&heldout) {
        assert!(
            !dev_questions.contains(&quarry::finetune::normalize_question(&e.question)),
            "{}",
            e.question
        );
        assert!(!dev_sql.contains(&sql_key(&e.sql)), "{}", e.sql);
        assert!(e.prompt.ends_with(quarry::prompt::ASSISTANT_PREFIX), "{}", e.prompt);
        assert!(e.completion.ends_with("\n```<|im_end|>"), "{}", e.completion);
    }

    // The prompt of a history example is what asking that question sends the model, rendered
    // by the model's own chat template.
    let renderer = PromptRenderer::load(&config.model).expect("the model's template");
    let principal = Principal::local();
    let mut compared = 0;
    for e in train.iter().filter(|e| e.source == "history").take(5) {
        let before = recording.prompts.lock().expect("lock").len();
        let options = AskOptions { exclude_sql_keys: vec![sql_key(&e.sql)], ..AskOptions::default() };
        let _ = quarry.ask_with(&e.question, &principal, &options);
        let prompts = recording.prompts.lock().expect("lock");
        if prompts.len() > before {
            assert_eq!(renderer.render(&prompts[before]).expect("render"), e.prompt, "{}", e.question);
            compared += 1;
        }
    }
    // Only verified pairs (every role may be shown) are history examples; each reached the model.
    let history = train.iter().filter(|e| e.source == "history").take(5).count();
    assert!(
        history >= 1 && compared == history,
        "{compared} of {history} history questions reached the model"
    );
    assert!(report.unverified > 0, "the demo log's unverified queries teach nothing: {report:?}");
}

#[test]
fn the_evaluation_guard_catches_questions_and_sql_however_they_are_written() {
    let Some(spider) =
        spider_or_skip("the_evaluation_guard_catches_questions_and_sql_however_they_are_written")
    else {
        return;
    };
    let sets = quarry::finetune::evaluation_sets_beside(&spider);
    let guard = EvaluationGuard::load(&sets).expect("guard");
    let dev = read_questions(&spider.join("dev.json")).expect("dev.json");
    let q = &dev[0];
    assert!(guard.excludes(&format!("  {}  ", q.question.to_uppercase()), "SELECT 1"));
    let spaced = format!("{} ;", q.query.split_whitespace().collect::<Vec<_>>().join("   ").to_lowercase());
    assert!(guard.excludes("a question nobody asked", &spaced));
    assert!(!guard.excludes("a question nobody asked", "SELECT 42 AS answer"));
    // The demo evaluation's questions are kept out too.
    let demo = quarry::eval::parse_cases(quarry::eval::DEMO_QUESTIONS).expect("demo questions");
    assert!(guard.excludes(&demo[0].question, "SELECT 1"));
    // Every evaluation set beside the Spider folder (defog_dev), each alternative gold.
    let defog = spider.parent().map(|p| p.join("defog_dev")).filter(|p| p.join("dev.json").is_file());
    match defog {
        Some(defog) => {
            assert!(sets.contains(&defog), "{sets:?}");
            let questions = read_questions(&defog.join("dev.json")).expect("defog dev.json");
            let with_alternatives =
                questions.iter().find(|q| q.golds().len() > 1).expect("an alternative gold");
            let last = with_alternatives.golds().last().map(|g| g.to_string()).unwrap_or_default();
            assert!(guard.excludes("a question nobody asked", &last));
            assert!(guard.excludes(&with_alternatives.question, "SELECT 1"));
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("CI must have defog_dev beside {}", spider.display())
        }
        None => eprintln!("SKIPPED part of the guard test: no defog_dev beside {}", spider.display()),
    }
}

#[test]
fn a_fine_tuned_adapter_loads_in_the_embedded_runtime_and_answers_name_it() {
    let Some(_turn) = real_model_turn() else { return };
    let dir = private_workspace();
    let mut config = config_for(dir.path());
    config.governance = dir.path().join("schemas");
    // The adapter fits the model it was trained on: the 0.5B.
    config.model = config.assets.join(quarry::config::SMALL_MODEL);
    config.adapter = Some(repo_root().join(DEFAULT_ADAPTER));
    let llm = load_default_llm(&config).expect("the model with its adapter");
    assert_eq!(llm.adapter(), Some("qwen2.5-coder-0.5b-quarry-lora"));
    let quarry = Quarry::open(config.clone(), embedder(), Some(llm)).expect("open");
    let answer = quarry.ask("How many users are on each plan?", &Principal::local()).expect("an answer");
    assert_eq!(answer.adapter.as_deref(), Some("qwen2.5-coder-0.5b-quarry-lora"));
    assert!(answer.sql.to_lowercase().contains("users"), "{}", answer.sql);
    assert!(!answer.result.rows.is_empty());

    // Not an adapter, or no file: errors that name the file and the fix.
    let settings =
        quarry::llm::LlamaSettings { threads: 1, context_tokens: 1024, prompt_cache_mb: 0, draft_tokens: 0 };
    let bogus = dir.path().join("bogus-adapter.gguf");
    std::fs::write(&bogus, "not a gguf file").expect("write");
    let error = LlamaCppLlm::load(&config.model, Some(&bogus), &settings).err().expect("refused").to_string();
    assert!(error.contains("bogus-adapter.gguf") && error.contains("quarry finetune"), "{error}");
    let missing = dir.path().join("missing.gguf");
    let error =
        LlamaCppLlm::load(&config.model, Some(&missing), &settings).err().expect("refused").to_string();
    assert!(error.contains("missing.gguf") && error.contains("[llm] adapter"), "{error}");
}

#[test]
fn every_synthetic_pair_validates_runs_and_is_non_trivial() {
    let Some(_turn) = real_model_turn() else { return };
    let dir = private_workspace();
    let mut config = config_for(dir.path());
    config.governance = dir.path().join("schemas");
    let quarry = Quarry::open(config.clone(), embedder(), None).expect("open the workspace");
    let out = tempfile::tempdir().expect("temp dir");
    let options = ExportOptions {
        out: out.path().to_path_buf(),
        spider: None,
        spider_limit: None,
        heldout_percent: 0,
        seed: 7,
        synthetic_per_table: 30,
        keep_out: Vec::new(),
    };
    let report = export(&options, &config, Some(&quarry), embedder(), &mut |_| {}).expect("export");
    let train = read_examples(&out.path().join("train.jsonl"));
    let synthetic: Vec<&TrainingExample> = train.iter().filter(|e| e.source == "synthetic").collect();
    assert!(synthetic.len() >= 100, "{} synthetic pairs: {report:?}", synthetic.len());
    let patterns: BTreeSet<&str> = synthetic.iter().map(|e| e.variant.as_str()).collect();
    assert!(patterns.len() >= 10, "{patterns:?}");
    // Every pair the export kept runs for every role's analyst view with rows to learn from,
    // and reads no deprecated table and no governed column.
    let principal = Principal::local();
    let catalog = quarry.catalog();
    for e in &synthetic {
        let answer = quarry.run_sql(&e.sql, &principal).unwrap_or_else(|err| panic!("{}: {err}", e.sql));
        assert!(!answer.result.rows.is_empty(), "{}", e.sql);
        assert!(answer.warnings.is_empty(), "{}: {:?}", e.sql, answer.warnings);
        let structure = quarry::history::structure::analyze(&e.sql, &catalog).expect("parses");
        for table in &structure.tables {
            let table = catalog.table(table).expect("a catalog table");
            assert!(table.deprecated.is_none() && table.tier.is_some(), "{}", e.sql);
        }
        assert!(e.prompt.ends_with(quarry::prompt::ASSISTANT_PREFIX));
    }
    // No duplicates by normalised SQL, and the export says what it left out.
    let keys: HashSet<String> = synthetic.iter().map(|e| sql_key(&e.sql)).collect();
    assert_eq!(keys.len(), synthetic.len());
    assert!(report.synthetic_proposed >= synthetic.len());
}
