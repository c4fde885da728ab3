//! Draft tokens looked up in the text so far (prompt lookup decoding): the embedded model checks
//! several guessed tokens in one batch instead of decoding them one by one.
//!
//! SQL repeats the prompt: table and column names, join keys, an example's shape. When the last
//! few tokens also occur earlier, the tokens that followed them there are a likely continuation.
//! The model decodes the guesses in one batch and keeps them only as far as its own greedy choice
//! agrees, so the answer is the one it would have written token by token; on a CPU a batch of a
//! few tokens costs about as much as one, since decoding one token is bound by reading the
//! weights.

/// The longest run of tokens matched at the end of `context` when looking for a draft.
const MATCH_MAX: usize = 3;

/// Up to `max` tokens that followed the latest earlier occurrence of `context`'s last tokens:
/// the longest match first (three tokens, then two, then one), the most recent occurrence of it.
/// Empty when none of them occurs earlier or `max` is 0.
pub fn lookup<T: PartialEq + Copy>(context: &[T], max: usize) -> Vec<T> {
    if max == 0 {
        return Vec::new();
    }
    for n in (1..=MATCH_MAX.min(context.len().saturating_sub(1))).rev() {
        let key = &context[context.len() - n..];
        // Occurrences that end before the last token, latest first.
        let found = (0..context.len() - n).rev().find(|&start| &context[start..start + n] == key);
        if let Some(start) = found {
            let from = start + n;
            let until = (from + max).min(context.len());
            return context[from..until].to_vec();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::lookup;

    fn tokens(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    #[test]
    fn the_tokens_after_the_latest_longest_match_are_the_draft() {
        let context = tokens("FROM orders o JOIN users u ON u . user_id = o . user_id WHERE o .");
        // "WHERE o ." has no earlier match; "o ." does, latest at "o . user_id" (the second).
        assert_eq!(lookup(&context, 3), tokens("user_id WHERE o"));
        assert_eq!(lookup(&context, 1), tokens("user_id"));
    }

    #[test]
    fn a_longer_match_wins_over_a_later_shorter_one() {
        let context = tokens("a b c X b c Y a b c");
        // "a b c" occurred at the start, followed by X; "b c" alone last occurred before Y.
        assert_eq!(lookup(&context, 2), tokens("X b"));
    }

    #[test]
    fn the_draft_stops_at_the_end_of_the_context() {
        let context = tokens("x y z x y");
        assert_eq!(lookup(&context, 8), tokens("z x y"));
    }

    #[test]
    fn no_earlier_occurrence_and_no_budget_give_no_draft() {
        assert!(lookup(&tokens("a b c d"), 4).is_empty());
        assert!(lookup(&tokens("a b a b"), 0).is_empty());
        assert!(lookup::<&str>(&[], 4).is_empty());
        assert!(lookup(&tokens("a"), 4).is_empty());
    }
}
