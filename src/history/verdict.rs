//! Whether a past query is verified: what the verdicts on its (question, SQL) pair say, read in
//! order. An analyst's 👍 is a vote; a reviewer (a role with the `verify` action) verifies or
//! revokes; `promote_votes` distinct voters verify too (0: only reviewers do); a 👎 demotes a
//! verified pair pending review. A pair that a trusted query log marked verified starts
//! verified, by the log's author. Pure: the verdicts come from the metadata database.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What someone said of a past query's (question, SQL) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// An analyst's 👍: a vote.
    Up,
    /// A 👎: demotes a verified pair, pending review.
    Down,
    /// A reviewer's verification (a role with the `verify` action).
    Verify,
    /// A reviewer's revocation.
    Revoke,
}

/// A verdict to record.
#[derive(Debug, Clone)]
pub struct NewVerdict {
    /// `history::pair_key` of (question, SQL).
    pub pair: String,
    pub question: String,
    pub sql: String,
    pub principal: String,
    pub role: String,
    pub verdict: VerdictKind,
    pub comment: Option<String>,
}

/// A recorded verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredVerdict {
    pub id: i64,
    pub at: String,
    #[serde(skip)]
    pub pair: String,
    pub question: String,
    pub sql: String,
    pub principal: String,
    pub role: String,
    pub verdict: VerdictKind,
    pub comment: Option<String>,
}

/// The identity of a (question, SQL) pair: the question with case and spacing folded, and
/// `sql_key` of the SQL. Votes by different analysts on the same answer meet here.
pub fn pair_key(question: &str, sql: &str) -> String {
    let question: Vec<String> = question.split_whitespace().map(str::to_lowercase).collect();
    let mut hasher = Sha256::new();
    hasher.update(question.join(" ").as_bytes());
    hasher.update([0]);
    hasher.update(super::sql_key(sql).as_bytes());
    format!("{:x}", hasher.finalize())
}

/// Where a pair stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Standing {
    /// Votes, or a correction, and no reviewer's word yet.
    Proposed,
    /// Verified: reused as an answer and taken into training data.
    Verified { by: String, at: String },
    /// Was verified, then a 👎 came: not reused until a reviewer looks again.
    Demoted { by: String, at: String, comment: Option<String> },
    /// A reviewer revoked it.
    Revoked { by: String, at: String },
}

/// A 👎 with what the person said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Objection {
    pub by: String,
    pub at: String,
    pub comment: Option<String>,
}

/// Everything said about one pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Review {
    #[serde(skip)]
    pub pair: String,
    pub question: String,
    pub sql: String,
    #[serde(flatten)]
    pub standing: Standing,
    /// Who voted 👍 since the last reviewer's word.
    pub votes: Vec<String>,
    /// 👎s since the last reviewer's word.
    pub objections: Vec<Objection>,
    /// When anything was last said.
    pub last_at: String,
}

impl Review {
    pub fn is_verified(&self) -> bool {
        matches!(self.standing, Standing::Verified { .. })
    }

    /// Waiting for a reviewer: proposed with votes or objections, or demoted.
    pub fn is_pending(&self) -> bool {
        match self.standing {
            Standing::Proposed => !self.votes.is_empty() || !self.objections.is_empty(),
            Standing::Demoted { .. } => true,
            Standing::Verified { .. } | Standing::Revoked { .. } => false,
        }
    }
}

/// A pair a trusted query log marked verified.
#[derive(Debug, Clone)]
pub struct Curated {
    pub question: String,
    pub sql: String,
    pub author: String,
    pub at: String,
}

/// Every pair anyone said something about, by `pair_key`.
#[derive(Debug, Clone, Default)]
pub struct Reviews {
    by_pair: BTreeMap<String, Review>,
}

impl Reviews {
    /// Reads `verdicts` (oldest first) over the `curated` pairs.
    pub fn fold(verdicts: &[StoredVerdict], curated: &[Curated], promote_votes: usize) -> Reviews {
        let mut by_pair: BTreeMap<String, Review> = BTreeMap::new();
        for c in curated {
            let pair = pair_key(&c.question, &c.sql);
            by_pair.entry(pair.clone()).or_insert_with(|| Review {
                pair,
                question: c.question.clone(),
                sql: c.sql.clone(),
                standing: Standing::Verified { by: c.author.clone(), at: c.at.clone() },
                votes: Vec::new(),
                objections: Vec::new(),
                last_at: c.at.clone(),
            });
        }
        for v in verdicts {
            let review = by_pair.entry(v.pair.clone()).or_insert_with(|| Review {
                pair: v.pair.clone(),
                question: v.question.clone(),
                sql: v.sql.clone(),
                standing: Standing::Proposed,
                votes: Vec::new(),
                objections: Vec::new(),
                last_at: v.at.clone(),
            });
            review.last_at.clone_from(&v.at);
            let (by, at) = (v.principal.clone(), v.at.clone());
            match v.verdict {
                VerdictKind::Up => {
                    if !review.votes.contains(&by) {
                        review.votes.push(by);
                    }
                    review.objections.retain(|o| o.by != v.principal);
                    let promoted = promote_votes > 0 && review.votes.len() >= promote_votes;
                    if promoted
                        && !review.is_verified()
                        && !matches!(review.standing, Standing::Revoked { .. })
                    {
                        let by = format!("{} analysts ({})", review.votes.len(), review.votes.join(", "));
                        review.standing = Standing::Verified { by, at };
                    }
                }
                VerdictKind::Down => {
                    review.votes.retain(|voter| *voter != by);
                    review.objections.push(Objection {
                        by: by.clone(),
                        at: at.clone(),
                        comment: v.comment.clone(),
                    });
                    if review.is_verified() {
                        review.standing = Standing::Demoted { by, at, comment: v.comment.clone() };
                    }
                }
                VerdictKind::Verify => {
                    review.standing = Standing::Verified { by, at };
                    review.votes.clear();
                    review.objections.clear();
                }
                VerdictKind::Revoke => {
                    review.standing = Standing::Revoked { by, at };
                    review.votes.clear();
                    review.objections.clear();
                }
            }
        }
        Reviews { by_pair }
    }

    pub fn get(&self, pair: &str) -> Option<&Review> {
        self.by_pair.get(pair)
    }

    /// Whether the pair is verified now.
    pub fn is_verified(&self, pair: &str) -> bool {
        self.get(pair).is_some_and(Review::is_verified)
    }

    pub fn all(&self) -> impl Iterator<Item = &Review> {
        self.by_pair.values()
    }
}

/// Sets each past query's `verified` from the verdicts on its pair (a query the log marked
/// verified starts verified) and returns the verdicts as read.
pub fn apply(history: &mut super::History, verdicts: &[StoredVerdict], promote_votes: usize) -> Reviews {
    let curated: Vec<Curated> = history
        .queries
        .iter()
        .filter(|q| q.verified)
        .map(|q| Curated {
            question: q.logged.question.clone().unwrap_or_default(),
            sql: q.logged.sql.clone(),
            author: q.logged.author.clone(),
            at: q.logged.timestamp.clone(),
        })
        .collect();
    let reviews = Reviews::fold(verdicts, &curated, promote_votes);
    for query in &mut history.queries {
        query.verified = reviews.is_verified(&query.pair_key());
    }
    reviews
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(id: i64, who: &str, kind: VerdictKind) -> StoredVerdict {
        StoredVerdict {
            id,
            at: format!("2026-11-0{id}T00:00:00Z"),
            pair: pair_key("Revenue in October?", "SELECT 1"),
            question: "Revenue in October?".into(),
            sql: "SELECT 1".into(),
            principal: who.into(),
            role: "analyst".into(),
            verdict: kind,
            comment: (kind == VerdictKind::Down).then(|| "wrong month".to_string()),
        }
    }

    fn standing(verdicts: &[StoredVerdict], curated: &[Curated], promote: usize) -> Option<Standing> {
        let pair = pair_key("revenue   in october?", "select 1;");
        Reviews::fold(verdicts, curated, promote).get(&pair).map(|r| r.standing.clone())
    }

    #[test]
    fn an_analysts_vote_is_not_a_verification() {
        use VerdictKind::*;
        let one_vote = [verdict(1, "ann", Up)];
        assert_eq!(standing(&one_vote, &[], 3), Some(Standing::Proposed));
        let same_voter_thrice = [verdict(1, "ann", Up), verdict(2, "ann", Up), verdict(3, "ann", Up)];
        assert_eq!(standing(&same_voter_thrice, &[], 3), Some(Standing::Proposed));
        let three = [verdict(1, "ann", Up), verdict(2, "bob", Up), verdict(3, "cy", Up)];
        assert!(
            matches!(standing(&three, &[], 3), Some(Standing::Verified { by, .. }) if by.starts_with("3 analysts"))
        );
        assert_eq!(standing(&three, &[], 0), Some(Standing::Proposed), "0: only reviewers verify");
        let reviewed = [verdict(1, "ann", Up), verdict(2, "sam", Verify)];
        assert!(matches!(standing(&reviewed, &[], 3), Some(Standing::Verified { by, .. }) if by == "sam"));
    }

    #[test]
    fn a_thumbs_down_demotes_and_a_revocation_ends_a_verification() {
        use VerdictKind::*;
        let curated = [Curated {
            question: "Revenue in October?".into(),
            sql: "SELECT 1".into(),
            author: "log".into(),
            at: "2026-10-01T00:00:00Z".into(),
        }];
        assert!(matches!(standing(&[], &curated, 3), Some(Standing::Verified { by, .. }) if by == "log"));
        let down = [verdict(1, "ann", Down)];
        let demoted = Reviews::fold(&down, &curated, 3);
        let review = demoted.get(&pair_key("Revenue in October?", "SELECT 1")).cloned();
        assert!(review.as_ref().is_some_and(|r| r.is_pending() && !r.is_verified()), "{review:?}");
        let reverified = [verdict(1, "ann", Down), verdict(2, "sam", Verify)];
        assert!(
            matches!(standing(&reverified, &curated, 3), Some(Standing::Verified { by, .. }) if by == "sam")
        );
        let revoked =
            [verdict(1, "sam", Revoke), verdict(2, "ann", Up), verdict(3, "bob", Up), verdict(4, "cy", Up)];
        assert!(
            matches!(standing(&revoked, &curated, 3), Some(Standing::Revoked { .. })),
            "votes do not undo a revocation"
        );
        assert_eq!(standing(&[], &[], 3), None);
    }
}
