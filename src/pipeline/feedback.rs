//! Analysts' verdicts on answers. 👍 verifies a question and its SQL: they join the history as a
//! verified query, embedded and searchable at once, and answer the same question next time.
//! 👎 records what was wrong; a corrected SQL joins the history unverified (an example, never
//! reused as an answer until someone verifies it).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::catalog_ops::invalid;
use super::{CatalogRequestError, Principal, Quarry};
use crate::history::{LogFormat, LoggedQuery};
use crate::policy::Action;
use crate::validate::{validate, DraftSql};

/// Longest comment accepted, in characters.
const MAX_COMMENT_CHARS: usize = 2_000;

/// Whether the answer was right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Up,
    Down,
}

/// An analyst's verdict on one answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub question: String,
    /// The SQL that answered.
    pub sql: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub comment: Option<String>,
    /// What the SQL should have been (with `down`).
    #[serde(default)]
    pub corrected_sql: Option<String>,
}

/// What a verdict changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedbackOutcome {
    /// The SQL that joined the history, if any.
    pub added_sql: Option<String>,
    /// Whether it joined as verified.
    pub verified: bool,
}

impl Quarry {
    /// Records a verdict; whoever may ask may judge answers. The SQL that joins the history
    /// must pass validation for the caller, like any SQL they run.
    pub fn feedback(
        &self,
        principal: &Principal,
        feedback: &Feedback,
    ) -> Result<FeedbackOutcome, CatalogRequestError> {
        let started = Instant::now();
        let policy = self.authorize(principal, Action::Ask)?;
        let question = feedback.question.trim();
        if question.is_empty() || question.chars().count() > self.config.max_question_chars {
            return Err(invalid(
                "question",
                format!(
                    "give the question that was asked, 1 to {} characters",
                    self.config.max_question_chars
                ),
                Vec::new(),
            ));
        }
        let comment = feedback.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
        if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
            return Err(invalid(
                "comment",
                format!("is longer than {MAX_COMMENT_CHARS} characters; shorten it"),
                Vec::new(),
            ));
        }
        let corrected = feedback.corrected_sql.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let (field, added) = match (feedback.verdict, corrected) {
            (Verdict::Up, Some(_)) => {
                return Err(invalid(
                    "corrected_sql",
                    "goes with verdict \"down\"; a 👍 verifies the SQL as it is".into(),
                    vec!["down".into()],
                ))
            }
            (Verdict::Up, None) => ("sql", Some(feedback.sql.trim())),
            (Verdict::Down, corrected) => ("corrected_sql", corrected),
        };
        if let Some(sql) = added {
            let catalog = self.catalog();
            if let Err(refusal) = validate(&DraftSql::new(sql), &catalog, policy, principal) {
                return Err(invalid(field, format!("cannot join the history: {refusal}"), Vec::new()));
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
                verified: Some(feedback.verdict == Verdict::Up),
            };
            let line =
                serde_json::to_string(&entry).map_err(|e| invalid(field, e.to_string(), Vec::new()))?;
            let report = self.add_to_history(
                &line,
                LogFormat::Jsonl,
                false,
                format!("feedback:{}", principal.name),
                &mut |_, _| {},
            )?;
            if let Some(skipped) = report.skipped.first() {
                return Err(invalid(
                    field,
                    format!("cannot join the history: {}", skipped.reason),
                    Vec::new(),
                ));
            }
        }
        let mut record = self.edit_audit(
            principal,
            json!({ "action": "feedback", "verdict": feedback.verdict, "comment": comment,
                    "corrected_sql": corrected }),
            started,
        );
        record.question = Some(question.to_string());
        record.sql = Some(feedback.sql.clone());
        self.metadata.audit(&record)?;
        Ok(FeedbackOutcome {
            added_sql: added.map(str::to_string),
            verified: added.is_some() && feedback.verdict == Verdict::Up,
        })
    }
}
