//! SQL written by a user or a tool: validated under the caller's policy, run, audited.

use super::*;

impl Quarry {
    /// Validates and runs SQL written by a user or a tool.
    pub fn run_sql(&self, sql: &str, principal: &Principal) -> Result<SqlAnswer, AskError> {
        self.run_sql_with(sql, principal, &Cancel::new())
    }

    /// Validates and runs SQL written by a user or a tool, until `cancel` is raised.
    pub fn run_sql_with(
        &self,
        sql: &str,
        principal: &Principal,
        cancel: &Cancel,
    ) -> Result<SqlAnswer, AskError> {
        let started = Instant::now();
        let outcome = self
            .authorize(principal, Action::Sql)
            .map_err(AskError::from)
            .and_then(|policy| self.run_sql_inner(sql, principal, policy, cancel));
        let total_ms = started.elapsed().as_millis() as u64;
        let (audit_outcome, rows, detail) = match &outcome {
            Ok(a) => (
                Outcome::Answered,
                Some(a.result.rows.len()),
                serde_json::json!({ "executed": a.sql, "governance": a.governance, "timings": a.timings }),
            ),
            Err(AskError::Refused { refusal, .. }) => {
                (Outcome::Refused, None, serde_json::json!({ "violations": refusal.violations }))
            }
            Err(e @ AskError::Forbidden(_)) => {
                (Outcome::Refused, None, serde_json::json!({ "error": e.to_string() }))
            }
            Err(e) => (Outcome::Failed, None, serde_json::json!({ "error": e.to_string() })),
        };
        tracing::debug!(principal = %principal.name, kind = "sql", outcome = audit_outcome.as_str(), total_ms, "request");
        let record = Quarry::request_audit(principal, AuditKind::Sql, None, Some(sql.to_string()), total_ms);
        self.metadata.audit(&AuditRecord { outcome: audit_outcome, row_count: rows, detail, ..record })?;
        let outcome = outcome.map(|mut a| {
            a.timings.total_ms = total_ms;
            a
        });
        self.metrics.record_sql(audit_outcome, &outcome);
        outcome
    }

    pub(super) fn run_sql_inner(
        &self,
        sql: &str,
        principal: &Principal,
        policy: &Policy,
        cancel: &Cancel,
    ) -> Result<SqlAnswer, AskError> {
        crate::text::check("the SQL", sql, MAX_SQL_CHARS).map_err(AskError::InvalidQuestion)?;
        let catalog = self.catalog();
        let (query, result, timings) = self.run_checked(sql, &catalog, policy, principal, cancel)?;
        Ok(SqlAnswer {
            sql: query.sql().to_string(),
            tables: self.table_uses(&catalog, &query, None),
            result,
            warnings: query.warnings().to_vec(),
            governance: query.governance().clone(),
            timings,
        })
    }
}

impl Quarry {
    /// `sql` validated for the principal and run: the query, its rows, and the time of each
    /// stage. The one path from SQL text to rows (a user's SQL, a reading chosen again).
    pub(super) fn run_checked(
        &self,
        sql: &str,
        catalog: &Catalog,
        policy: &Policy,
        principal: &Principal,
        cancel: &Cancel,
    ) -> Result<(ValidatedQuery, ResultSet, Timings), AskError> {
        let mut timings = Timings::default();
        let stage = Instant::now();
        let query = validate(&DraftSql::new(sql), catalog, policy, principal)
            .map_err(|refusal| AskError::Refused { sql: sql.to_string(), refusal })?;
        timings.validate_ms = stage.elapsed().as_millis() as u64;
        let stage = Instant::now();
        let result = self
            .executor
            .run_cancellable(&query, cancel)
            .map_err(|source| AskError::Execution { sql: query.sql().to_string(), source })?;
        timings.execute_ms = stage.elapsed().as_millis() as u64;
        Ok((query, result, timings))
    }
}

/// Longest SQL a user or tool may send, in characters (the validator's own byte limit is
/// lower; this only keeps control characters and absurd sizes out of the audit log).
pub(super) const MAX_SQL_CHARS: usize = 1_000_000;
