//! The audit log read back (`read_audit`).

use serde_json::json;

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
