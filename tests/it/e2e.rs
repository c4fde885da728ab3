//! End to end with every real component: llama.cpp running the Qwen2.5-Coder GGUF, fastembed,
//! Qdrant Edge and SQLite. Runs when `QUARRY_E2E=1` (`make test` and CI set it).

use quarry::llm::{ChatPrompt, GenerationParams, Turn};
use quarry::pipeline::{load_default_llm, Principal, Quarry};

use crate::support::{assert_answers, config_for, embedder, real, real_model_turn};

/// A question the default model answers, with hand-written gold SQL.
const CASES: &[(&str, &str)] = &[(
    "How many paid users (plan plus or pro) does each country have? Show the country name and the count.",
    "SELECT c.country_name, COUNT(*) FROM users u JOIN countries c ON c.country_code = u.country_code \
         WHERE u.plan IN ('plus', 'pro') GROUP BY c.country_name",
)];

#[test]
fn real_model_answers_demo_questions_with_the_right_rows() {
    let Some(_turn) = real_model_turn() else { return };
    // Its own workspace and model: on 2 CPU cores a greedy answer can turn on what other tests
    // left in the shared model's cache (prefill batches sum in another order), and this test
    // pins answers, so it starts from the same state every run.
    let dir = tempfile::tempdir().expect("temp dir");
    let quarry = own_real(dir.path());
    for (question, gold) in CASES {
        let answer = assert_answers(&quarry, question, &Default::default(), gold);
        assert!(answer.model.contains("qwen2.5-coder"), "{}", answer.model);
        assert!(
            answer.timings.prompt_tokens > 100 && answer.timings.completion_tokens > 5,
            "{:?}",
            answer.timings
        );
        assert!(
            !answer.tables.is_empty() && answer.tables.iter().all(|t| !t.evidence.is_empty()),
            "{:?}",
            answer.tables
        );
    }
}

/// A steward tags a column as personal data; the real model answering an analyst's question
/// about it never returns its values (the column is hidden from the prompt, and SQL that
/// reads it anyway is refused).
#[test]
fn real_model_never_returns_a_column_a_steward_just_tagged_pii() {
    let Some(_turn) = real_model_turn() else { return };
    let dir = crate::support::private_workspace();
    let mut config = crate::support::config_for(dir.path());
    config.governance = dir.path().join("schemas");
    let llm = quarry::pipeline::load_default_llm(&config).expect("model assets: run `make assets`");
    let quarry = quarry::pipeline::Quarry::open(config, crate::support::embedder(), Some(llm))
        .expect("open workspace");
    let admin = Principal::new("admin", "admin");
    let names = quarry.run_sql("SELECT product_name FROM products", &admin).expect("names").result.rows;
    let names: Vec<serde_json::Value> = names.into_iter().flatten().collect();
    assert!(!names.is_empty());
    let body = serde_json::json!({
        "columns": { "product_name": { "tags": ["pii"] } },
        "comment": "product names carry supplier staff names"
    });
    quarry.edit_table(&Principal::new("sam", "steward"), "products", &body).expect("steward edit");

    match quarry.ask("List the names of the products in the Toys category.", &Principal::local()) {
        Ok(answer) => {
            let leaked = answer.result.rows.iter().flatten().any(|cell| names.contains(cell));
            assert!(!leaked, "a product name came back: {} -> {:?}", answer.sql, answer.result.rows);
        }
        // A refusal (policy or otherwise) returns no rows: nothing leaked either.
        Err(other) => eprintln!("no answer: {other}"),
    }
}

/// The embedded model keeps the key/value cache of its last prompt: a prompt that extends it
/// (a repair round) prefills only the new tokens, and answers do not depend on what was cached.
#[test]
fn the_embedded_model_reuses_the_cached_prefix_without_changing_answers() {
    let Some(_turn) = real_model_turn() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let llm = load_default_llm(&config_for(dir.path())).expect("model assets: run `make assets`");
    let first = plans_prompt("users(user_id, country_code, plan)");
    let params = GenerationParams::greedy(64, "```");
    let cold = llm.generate(&first, &params).expect("generation");
    assert_eq!(cold.cached_tokens, 0, "a fresh model has nothing cached");

    let mut repair = first.clone();
    repair.turns.push(Turn { assistant: cold.text.clone(), user: "Name the count column 'users'.".into() });
    let repaired = llm.generate(&repair, &params).expect("generation");
    // Everything up to the end of the first user message is shared.
    assert!(
        repaired.cached_tokens + 10 >= cold.prompt_tokens - 4,
        "{} of {}",
        repaired.cached_tokens,
        cold.prompt_tokens
    );
    assert!(repaired.cached_tokens < repaired.prompt_tokens);

    // Served from the cache, the same prompt gives the same answer every time. (Not always
    // byte for byte the answer of a full prefill: a suffix prefilled on a cached prefix sums
    // in another order, which can flip a near tie.)
    let again = llm.generate(&first, &params).expect("generation");
    let once_more = llm.generate(&first, &params).expect("generation");
    assert_eq!(again.text, once_more.text);
    assert_eq!(once_more.cached_tokens, once_more.prompt_tokens - 1);
    for text in [&cold.text, &again.text] {
        let sql = text.to_lowercase();
        assert!(sql.contains("select") && sql.contains("group by") && sql.contains("plan"), "{text}");
    }

    // A sampled candidate reuses the whole prompt but the last token.
    let sampled = llm.generate(&first, &params.sampled(0.7, 1)).expect("generation");
    assert_eq!(sampled.cached_tokens, sampled.prompt_tokens - 1);
    assert!(!sampled.text.trim().is_empty());
}

/// The users table of the small database `rows_of` answers on, as a prompt shows it.
const USERS_DDL: &str =
    "CREATE TABLE users (\n  user_id INTEGER, -- the account, primary key\n  country_code TEXT, -- home \
     country, ISO alpha-2\n  signup_date TEXT, -- day the account was created, YYYY-MM-DD\n  plan TEXT -- \
     subscription plan: 'free', 'plus' or 'pro'; plus and pro are paid\n);";

/// Its orders table.
const ORDERS_DDL: &str = "CREATE TABLE orders (\n  order_id INTEGER, -- primary key\n  user_id INTEGER, -- \
     the buyer\n  ordered_at TEXT, -- 'YYYY-MM-DD HH:MM:SS' in UTC\n  status TEXT, -- 'completed', \
     'cancelled', 'refunded' or 'pending'\n  total_amount REAL -- order total in USD\n);";

/// Earlier prompts kept aside (`[llm] prompt_cache_mb`): going back to the tables of a prompt
/// asked before another one restores its keys and values instead of prefilling them again,
/// and every answer is the same as without the cache.
#[test]
fn the_embedded_model_restores_an_earlier_prompt_without_changing_answers() {
    let Some(_turn) = real_model_turn() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let users = schema_prompt(USERS_DDL, "How many users are on each plan?");
    let orders = schema_prompt(ORDERS_DDL, "What is the total amount of the completed orders?");
    let params = GenerationParams::greedy(64, "```");
    // The users prompt, the orders prompt, then the users prompt twice more, on a model with
    // the prompt cache of `cache_mb`.
    let asked = |cache_mb: usize| {
        let mut config = config_for(dir.path());
        config.prompt_cache_mb = cache_mb;
        let llm = load_default_llm(&config).expect("model assets: run `make assets`");
        [&users, &orders, &users, &users].map(|prompt| llm.generate(prompt, &params).expect("generation"))
    };
    let with = asked(quarry::config::DEFAULT_PROMPT_CACHE_MB);
    let without = asked(0);
    let [first, other, back, again] = &with;
    assert_eq!(first.cached_tokens, 0);
    // The orders prompt shares the instructions only; going back restores the users prompt
    // but its last token (whose logits start the answer), and the next time it is still there.
    assert!(other.cached_tokens < other.prompt_tokens / 2, "{other:?}");
    assert_eq!(back.cached_tokens, back.prompt_tokens - 1, "{back:?}");
    assert_eq!((again.cached_tokens, &again.text), (again.prompt_tokens - 1, &back.text));
    // Without the cache, the users prompt is prefilled again after the instructions; so it is
    // with a budget smaller than that prompt's keys and values (more than 1 MiB), never kept.
    assert_eq!(without[2].cached_tokens, other.cached_tokens, "{:?}", without[2]);
    assert_eq!(asked(1)[2].cached_tokens, other.cached_tokens);
    // The same answers: the same rows. (Not always byte for byte the same text: a prompt
    // prefilled in other batches sums in another order, which can flip a near tie between two
    // spellings, `COUNT(*)` with or without an alias.)
    for (with, without) in with.iter().zip(&without) {
        assert_eq!(rows_of(&with.text), rows_of(&without.text), "{} / {}", with.text, without.text);
    }
    assert_eq!(rows_of(&first.text).map(|rows| rows.len()), Ok(3), "one row per plan: {}", first.text);
}

/// Draft tokens (`[llm] draft_tokens`): guesses looked up in the text so far, checked in one
/// batch and kept as far as the model agrees. Answers give the same rows as token by token, some
/// tokens come from drafts, and the cache holds exactly the answer's tokens afterwards: a follow-up
/// that repeats the answer reuses as much of it with drafts as without. Streaming hands over the
/// whole answer either way.
#[test]
fn the_embedded_model_checks_drafted_tokens_without_changing_answers() {
    let Some(_turn) = real_model_turn() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let users = schema_prompt(
        &format!("{USERS_DDL}\n{ORDERS_DDL}"),
        "What is the total amount of completed orders per user country?",
    );
    let params = GenerationParams::greedy(96, "```");
    let asked = |draft_tokens: usize| {
        let mut config = config_for(dir.path());
        config.draft_tokens = draft_tokens;
        config.prompt_cache_mb = 0;
        let llm = load_default_llm(&config).expect("model assets: run `make assets`");
        let first = llm.generate(&users, &params).expect("generation");
        let mut followup = users.clone();
        followup.turns.push(Turn {
            assistant: format!("```sql\n{}```", first.text),
            user: "Only for users on a paid plan.".into(),
        });
        let second = llm.generate(&followup, &params).expect("generation");
        // Streamed, the pieces are the answer's text up to the stop string.
        let pieces = std::cell::RefCell::new(Vec::<String>::new());
        let streamed = llm
            .generate_batch_streaming(
                &users,
                std::slice::from_ref(&params),
                &|piece| pieces.borrow_mut().push(piece.to_string()),
                &quarry::warehouse::Cancel::new(),
            )
            .expect("streamed generation");
        let pieces = pieces.into_inner();
        assert!(pieces.len() > 1, "{pieces:?}");
        assert_eq!(pieces.concat(), streamed[0].text);
        (first, second)
    };
    let (drafted, drafted_followup) = asked(4);
    let (plain, plain_followup) = asked(0);
    assert_eq!(plain.drafted_tokens + plain_followup.drafted_tokens, 0);
    assert!(drafted.drafted_tokens > 0, "a join repeats names from the prompt: {drafted:?}");
    assert!(drafted.drafted_tokens < drafted.completion_tokens, "{drafted:?}");
    for (with, without) in [(&drafted, &plain), (&drafted_followup, &plain_followup)] {
        assert_eq!(rows_of(&with.text), rows_of(&without.text), "{} / {}", with.text, without.text);
        assert!(rows_of(&with.text).is_ok(), "{}", with.text);
    }
    if drafted.text == plain.text {
        assert_eq!(drafted_followup.cached_tokens, plain_followup.cached_tokens);
    }
    assert!(
        drafted_followup.cached_tokens > drafted.prompt_tokens,
        "the answer's tokens are reused: {drafted_followup:?}"
    );
}

/// The rows `sql` returns from a few users and orders, sorted (an error as its message).
fn rows_of(sql: &str) -> Result<Vec<Vec<String>>, String> {
    let db = rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
    db.execute_batch(
        "CREATE TABLE users (user_id INTEGER, country_code TEXT, signup_date TEXT, plan TEXT);
         INSERT INTO users VALUES (1, 'US', '2026-01-02', 'free'), (2, 'DE', '2026-02-03', 'pro'),
           (3, 'US', '2026-03-04', 'plus'), (4, 'FR', '2026-04-05', 'free');
         CREATE TABLE orders (order_id INTEGER, user_id INTEGER, ordered_at TEXT, status TEXT, total_amount REAL);
         INSERT INTO orders VALUES (1, 1, '2026-05-01 10:00:00', 'completed', 20.5),
           (2, 2, '2026-05-02 11:00:00', 'refunded', 12.0), (3, 3, '2026-05-03 12:00:00', 'completed', 7.25);",
    )
    .map_err(|e| e.to_string())?;
    let mut statement = db.prepare(sql.trim().trim_end_matches(';')).map_err(|e| e.to_string())?;
    let width = statement.column_count();
    let mut rows: Vec<Vec<String>> = statement
        .query_map([], |row| {
            (0..width).map(|i| row.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}"))).collect()
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    rows.sort();
    Ok(rows)
}

/// Candidates decoded together (`[llm] samples`): one prefill, the greedy answer first and
/// the same as alone, sampled ones beside it reading the whole prompt from the cache, and the
/// cache left as one sequence that later generations reuse unchanged.
#[test]
fn the_embedded_model_decodes_candidates_together_over_one_prompt() {
    let Some(_turn) = real_model_turn() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let llm = load_default_llm(&config_for(dir.path())).expect("model assets: run `make assets`");
    let prompt = plans_prompt("users(user_id, country_code, plan, signup_date)");
    let greedy = GenerationParams::greedy(64, "```");
    // Compared from the cache each time (a full prefill may sum in another order).
    llm.generate(&prompt, &greedy).expect("warm-up");
    let alone = llm.generate(&prompt, &greedy).expect("generation");
    let batch: Vec<GenerationParams> =
        std::iter::once(greedy.clone()).chain((1..4).map(|seed| greedy.sampled(0.7, seed))).collect();
    let together = llm.generate_batch(&prompt, &batch).expect("batch");
    assert_eq!(together.len(), 4);
    assert_eq!(together[0].text, alone.text, "the greedy answer does not depend on its neighbours");
    for candidate in &together[1..] {
        assert_eq!(candidate.cached_tokens, candidate.prompt_tokens, "sampled candidates prefill nothing");
        assert_eq!(candidate.prefill_ms, 0);
        let sql = candidate.text.to_lowercase();
        assert!(sql.contains("select") && sql.contains("users"), "{}", candidate.text);
    }
    // Streamed, the greedy answer arrives piece by piece as it is decoded, and the pieces are
    // its text up to the stop string.
    let pieces = std::cell::RefCell::new(Vec::<String>::new());
    let streamed = llm
        .generate_batch_streaming(
            &prompt,
            &batch,
            &|piece| pieces.borrow_mut().push(piece.to_string()),
            &quarry::warehouse::Cancel::new(),
        )
        .expect("streamed batch");
    assert_eq!(streamed[0].text, alone.text);
    let pieces = pieces.into_inner();
    assert!(pieces.len() > 1, "{pieces:?}");
    assert_eq!(pieces.concat(), alone.text);
    // Ten candidates: more than one batch holds, in groups over the same cached prompt.
    let many: Vec<GenerationParams> = (1..=10).map(|seed| greedy.sampled(0.7, seed)).collect();
    assert_eq!(llm.generate_batch(&prompt, &many).expect("two groups").len(), 10);
    // Candidates whose answers together would overflow the window run in smaller groups.
    let long: Vec<GenerationParams> =
        (1..=4).map(|seed| GenerationParams::greedy(1500, "```").sampled(0.7, seed)).collect();
    let fitted = llm.generate_batch(&prompt, &long).expect("groups that fit the window");
    assert_eq!(fitted.len(), 4);
    assert!(fitted.iter().all(|g| g.text.to_lowercase().contains("select")), "{fitted:?}");
    // The cache holds the prompt once more: the next generation reuses it and agrees.
    let after = llm.generate(&prompt, &greedy).expect("generation");
    assert_eq!(after.cached_tokens, after.prompt_tokens - 1);
    assert_eq!(after.text, alone.text);
}

/// With the real model, the analyst's picks bind: whatever it writes reads only the picked
/// tables (SQL reading another is sent back to it, never run).
#[test]
fn real_model_answers_read_only_the_picked_tables() {
    let Some(_turn) = real_model_turn() else { return };
    let quarry = real();
    let options = quarry::pipeline::AskOptions {
        tables: Some(vec!["orders".into(), "countries".into()]),
        ..Default::default()
    };
    let question = "How many orders were placed per country name in October 2026?";
    match quarry.ask_with(question, &Principal::local(), &options) {
        Ok(answer) => {
            let read: Vec<&str> = answer.tables.iter().map(|t| t.name.as_str()).collect();
            assert!(read.iter().all(|t| ["orders", "countries"].contains(t)), "{read:?}: {}", answer.sql);
        }
        // A model that keeps reaching for another table is refused, not run.
        Err(quarry::pipeline::AskError::Refused { refusal, .. }) => {
            assert!(refusal.violations.iter().all(|v| !v.code.is_policy()), "{refusal}");
        }
        Err(other) => panic!("{other}"),
    }
}

/// A workspace and model of the test's own (no other test edits it or fills its cache).
fn own_real(dir: &std::path::Path) -> Quarry {
    let config = config_for(dir);
    let llm = load_default_llm(&config).expect("model assets: run `make assets`");
    Quarry::open(config, embedder(), Some(llm)).expect("open workspace")
}

/// "How many users are on each plan?" over `tables`, answered from a SQL fence.
/// Instructions, one table's DDL and a question.
fn schema_prompt(ddl: &str, question: &str) -> ChatPrompt {
    ChatPrompt {
        system: "You are a careful data analyst who writes SQLite SQL. Answer with one SELECT statement \
                 over the tables given. Reply with the SQL only."
            .into(),
        user: format!("Tables:\n{ddl}\n\nQuestion: {question}"),
        turns: Vec::new(),
        assistant_prefix: "```sql\n".into(),
    }
}

fn plans_prompt(tables: &str) -> ChatPrompt {
    ChatPrompt {
        system: format!("You write SQLite queries. Tables: {tables}."),
        user: "How many users are on each plan?".into(),
        turns: Vec::new(),
        assistant_prefix: "```sql\n".into(),
    }
}
