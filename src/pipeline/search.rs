//! Search (`read_catalog`): tables ranked for a question as `ask` would rank them, and the
//! closest past queries the principal may be shown.

use std::time::Instant;

use serde_json::json;

use super::catalog_ops::{invalid, CatalogRequestError};
use super::{Principal, Quarry};
use crate::history::visible_to;
use crate::metadata::AuditKind;
use crate::policy::Action;
use crate::retrieve::{retrieve, Example, RetrievalBudget, TableCandidate};

impl Quarry {
    /// Tables ranked for a question, as `ask` would rank them, with evidence.
    pub fn search_tables(
        &self,
        principal: &Principal,
        q: &str,
        limit: usize,
    ) -> Result<Vec<TableCandidate>, CatalogRequestError> {
        Ok(self.search(principal, q, limit, 0)?.0)
    }

    /// Past queries close to a question, among those the principal may run.
    pub fn search_queries(
        &self,
        principal: &Principal,
        q: &str,
        limit: usize,
    ) -> Result<Vec<Example>, CatalogRequestError> {
        Ok(self.search(principal, q, 1, limit)?.1)
    }

    fn search_inner(
        &self,
        principal: &Principal,
        q: &str,
        tables: usize,
        examples: usize,
    ) -> Result<(Vec<TableCandidate>, Vec<Example>), CatalogRequestError> {
        let policy = self.authorize(principal, Action::ReadCatalog)?;
        let q = q.trim();
        if q.is_empty() {
            return Err(invalid("q", "give a question or keywords".into(), Vec::new()));
        }
        crate::text::check("q", q, self.config.max_question_chars)
            .map_err(|m| invalid("q", m, Vec::new()))?;
        let catalog = self.catalog();
        let history = self.history();
        let visible = policy.visible_catalog(&catalog);
        let mut retrieved = retrieve(
            q,
            &visible,
            crate::retrieve::VectorSearch { embedder: self.embedder.as_ref(), store: self.store.as_ref() },
            RetrievalBudget { tables, joined: 0, examples: examples.max(1) * 3, reuse: false },
            &crate::retrieve::Scope::default(),
            &self.trust_signals(&catalog, &history),
            &|sql| visible_to(sql, &catalog, policy, principal),
        )?;
        retrieved.examples.truncate(examples);
        Ok((retrieved.tables, retrieved.examples))
    }

    fn search(
        &self,
        principal: &Principal,
        q: &str,
        tables: usize,
        examples: usize,
    ) -> Result<(Vec<TableCandidate>, Vec<Example>), CatalogRequestError> {
        let started = Instant::now();
        let result = self.search_inner(principal, q, tables, examples);
        self.audited(
            principal,
            AuditKind::Access,
            json!({ "action": "search" }),
            (None, None),
            started,
            result,
        )
    }
}
