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
