//! The audit log: records of refused and failed requests written (`audited`, and requests
//! turned away at the door), and read back (`read_audit`).

use serde_json::{json, Value};

use super::catalog_ops::invalid;
use super::*;
use crate::metadata::{AuditFilter, AuditKind, StoredAudit};
use crate::policy::Action;

impl Quarry {
    /// Audit records matching `filter` (admins).
    pub fn audit_log(
        &self,
        principal: &Principal,
        filter: &AuditFilter,
    ) -> Result<Vec<StoredAudit>, CatalogRequestError> {
        let started = Instant::now();
        let result = self.audit_log_inner(principal, filter);
        self.audited(
            principal,
            AuditKind::Access,
            json!({ "action": "read_audit" }),
            (None, None),
            started,
            result,
        )
    }

    fn audit_log_inner(
        &self,
        principal: &Principal,
        filter: &AuditFilter,
    ) -> Result<Vec<StoredAudit>, CatalogRequestError> {
        self.authorize(principal, Action::ReadAudit)?;
        for (field, value) in [("since", &filter.since), ("until", &filter.until)] {
            if let Some(value) = value {
                if crate::calendar::day_number(value.get(..10).unwrap_or(value)).is_none() {
                    return Err(invalid(
                        field,
                        format!("'{value}' is not a date or timestamp; use e.g. 2026-11-01 or 2026-11-01T08:00:00Z"),
                        Vec::new(),
                    ));
                }
            }
        }
        Ok(self.metadata.search_audit(filter)?)
    }
}

impl Quarry {
    pub(super) fn edit_audit(&self, principal: &Principal, detail: Value, started: Instant) -> AuditRecord {
        let duration_ms = started.elapsed().as_millis() as u64;
        AuditRecord { detail, ..Quarry::request_audit(principal, AuditKind::Edit, None, None, duration_ms) }
    }

    /// Passes `result` through; when it is an error, appends an audit record of the refusal
    /// (or failure) first, with `detail` and the error. Requests that succeed audit themselves
    /// (edits and verdicts in their own transaction); reads that succeed are not audited.
    pub(super) fn audited<T>(
        &self,
        principal: &Principal,
        kind: AuditKind,
        mut detail: Value,
        (question, sql): (Option<String>, Option<String>),
        started: Instant,
        result: Result<T, CatalogRequestError>,
    ) -> Result<T, CatalogRequestError> {
        let Err(error) = &result else { return result };
        if let Some(map) = detail.as_object_mut() {
            map.insert("error".into(), error.to_string().into());
        }
        let mut record = self.edit_audit(principal, detail, started);
        record.kind = kind;
        record.question = question;
        record.sql = sql;
        record.outcome = match error {
            CatalogRequestError::Forbidden(_)
            | CatalogRequestError::Invalid(_)
            | CatalogRequestError::NotFound(_)
            | CatalogRequestError::LiftsRestriction { .. } => Outcome::Refused,
            _ => Outcome::Failed,
        };
        if let Err(e) = self.metadata.audit(&record) {
            tracing::error!("auditing a refused request of {}: {e}", principal.name);
            return Err(CatalogRequestError::Metadata(e));
        }
        result
    }

    /// Records a request refused for want of a valid API key (kind `access`, principal
    /// `anonymous`). A failure to write it is logged: the request is refused either way.
    pub fn audit_unauthenticated(&self, request: &str, reason: &str) {
        self.audit_turned_away(&Principal::new("anonymous", ""), request, reason);
    }

    /// Audits a request turned away at the door before any work (no key, over its rate limit).
    pub fn audit_turned_away(&self, principal: &Principal, request: &str, reason: &str) {
        let started = Instant::now();
        let mut record = self.edit_audit(principal, json!({ "request": request, "error": reason }), started);
        record.kind = AuditKind::Access;
        record.outcome = Outcome::Refused;
        if let Err(e) = self.metadata.audit(&record) {
            tracing::error!("auditing a request turned away: {e}");
        }
    }
}
