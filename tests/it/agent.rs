//! The agent loop with a scripted model: sampled candidates validated, run and voted on by
//! their results.

use quarry::llm::ScriptedLlm;
use quarry::pipeline::{AskOptions, Principal};

use crate::support::{open_private_with, private_workspace};

fn samples(n: usize) -> AskOptions {
    AskOptions { samples: Some(n), ..AskOptions::default() }
}

#[test]
fn the_result_most_candidates_agree_on_wins() {
    let dir = private_workspace();
    let llm = ScriptedLlm::default().with_samples(
        "How many orders by vote",
        &[
            // Greedy (wrong table), then three samples: two agree (differently written), one is refused.
            "SELECT COUNT(*) FROM users",
            "SELECT COUNT(*) FROM orders",
            "SELECT COUNT(order_id) AS n FROM orders",
            "SELECT nonexistent_column FROM orders",
        ],
    );
    let quarry = open_private_with(dir.path(), llm);
    let principal = Principal::local();

    let answer = quarry.ask_with("How many orders by vote?", &principal, &samples(4)).expect("answer");
    assert!(answer.sql.starts_with("SELECT COUNT(*) FROM orders "), "{}", answer.sql);
    let votes = answer.votes.expect("votes");
    assert_eq!((votes.generated, votes.ran, votes.agreeing, votes.distinct_results), (4, 3, 2, 2));
    assert!(answer.repairs.is_empty(), "a sampled winner had no repairs");

    // One candidate each way: a tie, which the greedy answer wins.
    let tie = quarry.ask_with("How many orders by vote?", &principal, &samples(2)).expect("answer");
    assert!(tie.sql.starts_with("SELECT COUNT(*) FROM users "), "{}", tie.sql);
    assert_eq!(tie.votes.map(|v| (v.ran, v.agreeing)), Some((2, 1)));

    // One sample: the greedy answer alone, no vote.
    let single = quarry.ask_with("How many orders by vote?", &principal, &samples(1)).expect("answer");
    assert!(single.votes.is_none());
}

#[test]
fn a_policy_refusal_is_final_even_with_samples() {
    let dir = private_workspace();
    let llm = ScriptedLlm::default().with_samples(
        "every e-mail by vote",
        &["SELECT user_id, email FROM users", "SELECT COUNT(*) FROM users", "SELECT COUNT(*) FROM users"],
    );
    let quarry = open_private_with(dir.path(), llm);
    // The analyst may not read PII: the greedy query is refused and no sampled query is tried
    // as a way around it.
    let error =
        quarry.ask_with("List every e-mail by vote", &Principal::local(), &samples(3)).expect_err("refused");
    assert!(error.to_string().contains("email"), "{error}");
}

/// A model that counts its generations, over a scripted one.
struct Counting {
    inner: ScriptedLlm,
    generations: std::sync::atomic::AtomicUsize,
}

impl quarry::llm::Llm for Counting {
    fn model_id(&self) -> &str {
        "counting"
    }

    fn generate(
        &self,
        prompt: &quarry::llm::ChatPrompt,
        params: &quarry::llm::GenerationParams,
    ) -> Result<quarry::llm::Generation, quarry::llm::LlmError> {
        self.generations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.generate(prompt, params)
    }
}

#[test]
fn a_repeated_question_is_served_from_its_kept_answer_until_something_changes() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    let dir = private_workspace();
    let llm = Arc::new(Counting {
        inner: ScriptedLlm::new([(
            "orders per status",
            "SELECT status, COUNT(*) FROM orders GROUP BY status",
        )]),
        generations: Default::default(),
    });
    let mut config = crate::support::config_for(dir.path());
    config.governance = dir.path().join("schemas");
    let quarry = quarry::pipeline::Quarry::open(config, crate::support::embedder(), Some(llm.clone()))
        .expect("open the workspace");
    let analyst = Principal::local();
    let today = |day: &str| AskOptions { today: Some(day.to_string()), ..AskOptions::default() };

    let first =
        quarry.ask_with("How many orders per status?", &analyst, &today("2026-11-02")).expect("answer");
    assert!(!first.timings.answer_cached);
    let generated = llm.generations.load(Ordering::SeqCst);
    assert!(generated >= 1);

    // The same question (case and spacing aside): the kept SQL, validated and run again.
    let again =
        quarry.ask_with("  how many ORDERS per status? ", &analyst, &today("2026-11-02")).expect("answer");
    assert!(again.timings.answer_cached, "{:?}", again.timings);
    assert_eq!(llm.generations.load(Ordering::SeqCst), generated, "nothing generated");
    assert_eq!((again.sql.as_str(), &again.result.rows), (first.sql.as_str(), &first.result.rows));
    assert_eq!(again.timings.prompt_tokens, 0);

    // Another day (relative phrases read otherwise), another role: answered from scratch.
    let other_day =
        quarry.ask_with("How many orders per status?", &analyst, &today("2026-11-03")).expect("answer");
    assert!(!other_day.timings.answer_cached);
    let steward = Principal::new("sam.steward", "steward");
    let as_steward =
        quarry.ask_with("How many orders per status?", &steward, &today("2026-11-02")).expect("answer");
    assert!(!as_steward.timings.answer_cached);

    // A steward edit replaces the catalog: the kept answer is not served over the new one.
    let body = serde_json::json!({ "description": "Orders, one row per order.", "comment": "clearer" });
    quarry.edit_table(&steward, "orders", &body).expect("edit");
    let after_edit =
        quarry.ask_with("How many orders per status?", &analyst, &today("2026-11-02")).expect("answer");
    assert!(!after_edit.timings.answer_cached);
    let count = llm.generations.load(Ordering::SeqCst);
    let kept_again =
        quarry.ask_with("How many orders per status?", &analyst, &today("2026-11-02")).expect("answer");
    assert!(kept_again.timings.answer_cached);
    assert_eq!(llm.generations.load(Ordering::SeqCst), count);
}
