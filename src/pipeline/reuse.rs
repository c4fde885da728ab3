//! Asset first: a verified past query answers — as it is, or as a template with the
//! question's literals (`template`) — validated and run for the asker like any SQL.

use super::*;

impl Quarry {
    /// The answer from a verified past query — as it is, or as a template with the question's
    /// literals — validated and run for this principal like any SQL; `Err` says why it cannot
    /// serve (the caller then tries the next one, then the model).
    pub(super) fn reuse(
        &self,
        question: &str,
        mut reuse: Reuse,
        retrieved: &crate::retrieve::Retrieved,
        context: &Reusing,
        mut timings: Timings,
    ) -> Result<Answer, String> {
        let Reusing { snapshot, today, cancel } = *context;
        let Snapshot { catalog, visible, policy, principal, .. } = snapshot;
        let stage = Instant::now();
        let before = template::Asked { question: &reuse.label, day: reuse.timestamp.get(..10).unwrap_or("") };
        let filled =
            template::instantiate(before, template::Asked { question, day: today }, &reuse.sql, visible)
                .map_err(|m| m.to_string())?;
        reuse.substitutions = filled.substitutions;
        let query =
            validate(&DraftSql::new(&filled.sql), catalog, policy, principal).map_err(|r| r.to_string())?;
        timings.validate_ms = stage.elapsed().as_millis() as u64;
        let stage = Instant::now();
        let result = self.executor.run_cancellable(&query, cancel).map_err(|e| e.to_string())?;
        timings.execute_ms = stage.elapsed().as_millis() as u64;
        let verified_at = reuse.verified_at.as_deref().unwrap_or(&reuse.timestamp);
        let mut evidence = format!(
            "read by the verified query \"{}\" by {}, verified by {} ({})",
            reuse.label,
            reuse.author,
            reuse.verified_by.as_deref().unwrap_or("its query log"),
            verified_at.get(..10).unwrap_or(verified_at)
        );
        for s in &reuse.substitutions {
            evidence.push_str(&format!(", with \"{}\" for \"{}\"", s.now, s.before));
        }
        let mut tables = self.table_uses(catalog, &query, Some(&retrieved.tables));
        for table in &mut tables {
            table.evidence.insert(0, evidence.clone());
            table.evidence.retain(|e| !e.starts_with("chosen by the model"));
        }
        Ok(Answer {
            candidates: retrieved.tables.clone(),
            reused: Some(reuse),
            confidence: Confidence::verified(),
            ..Answer::plain(question, &query, result, tables, timings)
        })
    }
}

/// Who a verified query is reused for, on which snapshot (its visible catalog: a template's
/// values are spelled as those columns know them).
#[derive(Clone, Copy)]
pub(super) struct Reusing<'a> {
    pub(super) snapshot: Snapshot<'a>,
    /// The day the question is asked: its relative periods are read against it.
    pub(super) today: &'a str,
    pub(super) cancel: &'a Cancel,
}
