//! The trust signals of every table (documentation, freshness, ownership, usage), computed
//! once for a catalog, a history and a day, and handed to retrieval as data.
//!
//! A steward edit or an ingest replaces the catalog or the history whole, so comparing them by
//! identity tells when the signals are out of date; the day matters because ownership and
//! freshness are read against today.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{catalog_ops::signals_now, HistoryState, Quarry};
use crate::catalog::Catalog;
use crate::retrieve::{Trust, TrustSignals};

/// The signals last computed, and what from.
struct Computed {
    catalog: Arc<Catalog>,
    history: Arc<HistoryState>,
    day: String,
    signals: Arc<TrustSignals>,
}

#[derive(Default)]
pub(super) struct TrustCache {
    last: Mutex<Option<Computed>>,
}

impl Quarry {
    /// The trust signals of `catalog`'s tables with `history`, as of today: computed when one
    /// of them (or the day) changed since the last call, else the same signals again.
    pub(super) fn trust_signals(
        &self,
        catalog: &Arc<Catalog>,
        history: &Arc<HistoryState>,
    ) -> Arc<TrustSignals> {
        let today = crate::calendar::today();
        if let Ok(last) = self.trust.last.lock() {
            if let Some(c) = last.as_ref() {
                if Arc::ptr_eq(&c.catalog, catalog) && Arc::ptr_eq(&c.history, history) && c.day == today {
                    return c.signals.clone();
                }
            }
        }
        // When each table was last reviewed: its newest steward revision.
        let reviewed: BTreeMap<String, String> = match self.metadata.latest_revisions() {
            Ok(revisions) => revisions
                .into_iter()
                .filter(|r| r.target_kind == "table")
                .map(|r| (r.target.to_lowercase(), r.at))
                .collect(),
            Err(e) => {
                tracing::warn!("reading the catalog revisions for the trust signals: {e}");
                BTreeMap::new()
            }
        };
        let signals = Arc::new(TrustSignals::new(catalog.tables().map(|table| {
            let last_reviewed = reviewed.get(&table.name.to_lowercase()).cloned();
            (table.name.clone(), Trust::from(&signals_now(table, catalog, history, last_reviewed)))
        })));
        if let Ok(mut last) = self.trust.last.lock() {
            *last = Some(Computed {
                catalog: catalog.clone(),
                history: history.clone(),
                day: today,
                signals: signals.clone(),
            });
        }
        signals
    }
}
