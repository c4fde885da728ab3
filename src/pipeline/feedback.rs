//! Verdicts on answers and the review of past queries. An analyst's 👍 is a vote on the
//! (question, SQL) pair; a 👎 objects, and demotes a verified pair pending review; a corrected
//! SQL joins the history as a proposal. Verification is a reviewer's act (a role with the
//! `verify` action, stewards and admins by default), or `[review] promote_votes` distinct
//! analysts' votes: only then is a pair reused as an answer and taken into training data.
//! Every verdict is appended with its audit record; the verified set is listed, with who and
//! when, by `reviews`.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::catalog_ops::invalid;
use super::{CatalogRequestError, Principal, Quarry};
use crate::history::verdict::{pair_key, Review};
use crate::history::verdict::{NewVerdict, VerdictKind};
use crate::history::{visible_to, LogFormat, LoggedQuery};
use crate::metadata::AuditKind;
use crate::policy::{Action, Policy};

/// Longest comment accepted, in characters.
const MAX_COMMENT_CHARS: usize = 2_000;

/// Longest SQL accepted in feedback, in characters.
const MAX_SQL_CHARS: usize = 100_000;

/// Whether the answer was right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Up,
    Down,
}

/// An analyst's verdict on one answer (`http::feedback` reads it from its wire form).
#[derive(Debug, Clone)]
pub struct Feedback {
    pub question: String,
    /// The SQL that answered (for a reused answer: the verified query's SQL).
    pub sql: String,
    pub verdict: Verdict,
    pub comment: Option<String>,
    /// What the SQL should have been (with `down`).
    pub corrected_sql: Option<String>,
}

/// What a verdict changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeedbackOutcome {
    /// The SQL that joined the history, if any.
    pub added_sql: Option<String>,
    /// Whether the pair judged (or the correction) is verified now.
    pub verified: bool,
    /// Where it stands now: `proposed`, `verified`, `demoted`, `revoked`.
    pub status: String,
}

/// A reviewer's decision on a (question, SQL) pair (`http::feedback` reads it from its wire
/// form).
#[derive(Debug, Clone)]
pub struct ReviewDecision {
    pub question: String,
    pub sql: String,
    pub decision: Decision,
    pub comment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Verify,
    Revoke,
}

/// Which reviews to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewFilter {
    /// Waiting for a reviewer: votes or objections on unverified pairs, demoted pairs.
    #[default]
    Pending,
    /// The verified set, with who verified each and when.
    Verified,
    All,
}

impl Quarry {
    /// Records a verdict; whoever may ask may judge answers. SQL that joins the history must
    /// pass validation for the caller, like any SQL they run. Refusals are audited too.
    pub fn feedback(
        &self,
        principal: &Principal,
        feedback: &Feedback,
    ) -> Result<FeedbackOutcome, CatalogRequestError> {
        let started = Instant::now();
        let result = self.feedback_inner(principal, feedback);
        let detail = json!({ "action": "feedback", "verdict": feedback.verdict });
        let mut question = Some(feedback.question.clone());
        let sql = Some(feedback.sql.clone());
        if crate::text::check("question", &feedback.question, usize::MAX).is_err() {
            question = Some(crate::text::for_prompt(&feedback.question).into_owned());
        }
        self.audited(principal, AuditKind::Edit, detail, (question, sql), started, result)
    }

    fn feedback_inner(
        &self,
        principal: &Principal,
        feedback: &Feedback,
    ) -> Result<FeedbackOutcome, CatalogRequestError> {
        let policy = self.authorize(principal, Action::Ask)?;
        let question = feedback.question.trim();
        if question.is_empty() {
            return Err(invalid("question", "give the question that was asked".into(), Vec::new()));
        }
        let check = |field: &str, text: &str, max: usize| {
            crate::text::check(field, text, max).map_err(|m| invalid(field, m, Vec::new()))
        };
        check("question", question, self.config.max_question_chars)?;
        check("sql", &feedback.sql, MAX_SQL_CHARS)?;
        let comment = feedback.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
        if let Some(comment) = comment {
            check("comment", comment, MAX_COMMENT_CHARS)?;
        }
        let corrected = feedback.corrected_sql.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let Some(corrected) = corrected {
            check("corrected_sql", corrected, MAX_SQL_CHARS)?;
        }
        let sql = feedback.sql.trim();
        match (feedback.verdict, corrected) {
            (Verdict::Up, Some(_)) => Err(invalid(
                "corrected_sql",
                "goes with verdict \"down\"; a 👍 is a vote for the SQL as it is".into(),
                vec!["down".into()],
            )),
            (Verdict::Up, None) => {
                // A reviewer's 👍 verifies; anyone else's is a vote.
                let kind = if policy.allows(Action::Verify) { VerdictKind::Verify } else { VerdictKind::Up };
                self.join_history(principal, policy, "sql", question, sql)?;
                let review = self.record(principal, question, sql, kind, comment)?;
                Ok(outcome(Some(sql), review))
            }
            (Verdict::Down, corrected) => {
                let review = self.record(principal, question, sql, VerdictKind::Down, comment)?;
                let Some(corrected) = corrected else { return Ok(outcome(None, review)) };
                let kind = if policy.allows(Action::Verify) { VerdictKind::Verify } else { VerdictKind::Up };
                self.join_history(principal, policy, "corrected_sql", question, corrected)?;
                let review = self.record(principal, question, corrected, kind, comment)?;
                Ok(outcome(Some(corrected), review))
            }
        }
    }

    /// Verifies or revokes a pair (the `verify` action). Verifying needs SQL the reviewer may
    /// run and a comment; the pair joins the history if it is not there yet.
    pub fn review(
        &self,
        principal: &Principal,
        decision: &ReviewDecision,
    ) -> Result<FeedbackOutcome, CatalogRequestError> {
        let started = Instant::now();
        let result = self.review_inner(principal, decision);
        let detail = json!({ "action": "review", "decision": decision.decision });
        let context = (Some(decision.question.clone()), Some(decision.sql.clone()));
        self.audited(principal, AuditKind::Edit, detail, context, started, result)
    }

    fn review_inner(
        &self,
        principal: &Principal,
        decision: &ReviewDecision,
    ) -> Result<FeedbackOutcome, CatalogRequestError> {
        let policy = self.authorize(principal, Action::Verify)?;
        let question = decision.question.trim();
        let sql = decision.sql.trim();
        let comment = decision.comment.trim();
        for (field, text, max) in [
            ("question", question, self.config.max_question_chars),
            ("sql", sql, MAX_SQL_CHARS),
            ("comment", comment, MAX_COMMENT_CHARS),
        ] {
            if text.is_empty() {
                return Err(invalid(field, "is required".into(), Vec::new()));
            }
            crate::text::check(field, text, max).map_err(|m| invalid(field, m, Vec::new()))?;
        }
        let kind = match decision.decision {
            Decision::Verify => {
                self.join_history(principal, policy, "sql", question, sql)?;
                VerdictKind::Verify
            }
            Decision::Revoke => {
                if self.history().reviews.get(&pair_key(question, sql)).is_none() {
                    return Err(CatalogRequestError::NotFound(
                        "no past query has this question and SQL; list them with GET /api/v1/reviews?status=verified"
                            .into(),
                    ));
                }
                VerdictKind::Revoke
            }
        };
        let review = self.record(principal, question, sql, kind, Some(comment))?;
        Ok(outcome(Some(sql), review))
    }

    /// Reviews of past queries (the `verify` action): what is pending, the verified set, or all.
    pub fn reviews(
        &self,
        principal: &Principal,
        filter: ReviewFilter,
        table: Option<&str>,
    ) -> Result<Vec<Review>, CatalogRequestError> {
        let started = Instant::now();
        let result = self.authorize(principal, Action::Verify).map(|policy| {
            let history = self.history();
            let catalog = self.catalog();
            let mut reviews: Vec<Review> = history
                .reviews
                .all()
                // A reviewer sees, and decides on, only what the role may be shown.
                .filter(|r| visible_to(&r.sql, &catalog, policy, principal))
                .filter(|r| match filter {
                    ReviewFilter::Pending => r.is_pending(),
                    ReviewFilter::Verified => r.is_verified(),
                    ReviewFilter::All => true,
                })
                .filter(|r| {
                    table.is_none_or(|table| {
                        crate::history::structure::analyze(&r.sql, &catalog)
                            .is_some_and(|s| s.tables.iter().any(|t| t.eq_ignore_ascii_case(table)))
                    })
                })
                .cloned()
                .collect();
            reviews.sort_by(|a, b| b.last_at.cmp(&a.last_at));
            reviews
        });
        let detail = json!({ "action": "reviews", "table": table });
        self.audited(principal, AuditKind::Access, detail, (None, None), started, result.map_err(Into::into))
    }

    /// Adds (question, SQL) to the history unless a past query already has that pair; the SQL
    /// must pass validation for the caller and be one they may be shown.
    fn join_history(
        &self,
        principal: &Principal,
        policy: &Policy,
        field: &str,
        question: &str,
        sql: &str,
    ) -> Result<(), CatalogRequestError> {
        let catalog = self.catalog();
        if let Err(refusal) =
            crate::validate::validate(&crate::validate::DraftSql::new(sql), &catalog, policy, principal)
        {
            return Err(invalid(field, format!("cannot join the history: {refusal}"), Vec::new()));
        }
        if !visible_to(sql, &catalog, policy, principal) {
            return Err(invalid(
                field,
                "cannot join the history: it reads a column your role sees masked".into(),
                Vec::new(),
            ));
        }
        let pair = pair_key(question, sql);
        if self.history().history.queries.iter().any(|q| q.pair_key() == pair) {
            return Ok(());
        }
        let entry = LoggedQuery {
            sql: sql.to_string(),
            author: principal.name.clone(),
            timestamp: crate::calendar::now(),
            duration_ms: None,
            rows: None,
            success: Some(true),
            title: None,
            question: Some(question.to_string()),
            verified: Some(false),
        };
        let line = serde_json::to_string(&entry).map_err(|e| invalid(field, e.to_string(), Vec::new()))?;
        let audit = self.edit_audit(principal, json!({ "action": "feedback_history" }), Instant::now());
        let report = self.add_to_history(
            &line,
            LogFormat::Jsonl,
            false,
            format!("feedback:{}", principal.name),
            Some(audit),
            &mut |_, _| {},
        )?;
        match report.skipped.first() {
            Some(skipped) => {
                Err(invalid(field, format!("cannot join the history: {}", skipped.reason), Vec::new()))
            }
            None => Ok(()),
        }
    }

    /// Appends a verdict with its audit record and puts the new standing in force (reused
    /// answers and the index follow at once).
    fn record(
        &self,
        principal: &Principal,
        question: &str,
        sql: &str,
        verdict: VerdictKind,
        comment: Option<&str>,
    ) -> Result<Option<Review>, CatalogRequestError> {
        let pair = pair_key(question, sql);
        let new = NewVerdict {
            pair: pair.clone(),
            question: question.to_string(),
            sql: sql.to_string(),
            principal: principal.name.clone(),
            role: principal.role.clone(),
            verdict,
            comment: comment.map(str::to_string),
        };
        let mut audit = self.edit_audit(
            principal,
            json!({ "action": "verdict", "verdict": verdict, "comment": comment }),
            Instant::now(),
        );
        audit.question = Some(question.to_string());
        audit.sql = Some(sql.to_string());
        let _ingest = self.ingest_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.metadata.record_verdict(&new, &audit)?;
        self.refresh_history(&self.catalog())?;
        Ok(self.history().reviews.get(&pair).cloned())
    }
}

fn outcome(added: Option<&str>, review: Option<Review>) -> FeedbackOutcome {
    let status = review
        .as_ref()
        .and_then(|r| serde_json::to_value(&r.standing).ok())
        .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_string))
        .unwrap_or_else(|| "proposed".into());
    FeedbackOutcome {
        added_sql: added.map(str::to_string),
        verified: review.is_some_and(|r| r.is_verified()),
        status,
    }
}
