//! Retrieval: for a question, the candidate tables (with the evidence for each) and the closest
//! past queries as examples. Scores from table documents and from past queries that read a
//! table are fused with governance signals, so a certified table outranks a look-alike copy.
//!
//! The tables chosen are completed along join keys (declared or inferred): a link table between
//! two of them, or a table the question names that one of them joins, which similarity alone
//! ranks too low (`writes` between `author` and `publication`).
//!
//! A verified past query that asks essentially the same question is returned as a `Reuse`:
//! the pipeline offers it as is, without the LLM.
//!
//! It reads the vector store and the catalog; it never calls the LLM or the warehouse.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::catalog::{Catalog, Tier};
use crate::embed::{EmbedError, Embedder};
use crate::vector_store::{Collection, Equals, Hit, VectorStore, VectorStoreError};

mod names;
use names::{name_scores, names_phrase, stems};

/// How much to retrieve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrievalBudget {
    /// Tables handed to the prompt.
    pub tables: usize,
    /// Tables added along join keys to those (`joined_tables`).
    pub joined: usize,
    /// Past queries handed to the prompt as examples.
    pub examples: usize,
    /// Offer the closest verified past queries for reuse, as they are or as templates (whether
    /// one answers is `template::instantiate`'s call).
    pub reuse: bool,
}

/// What governance and usage say about a table, beyond its tier and deprecation: the
/// trust signals fused into its rank.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trust {
    /// Share of columns described, 0 to 1.
    pub documentation: f32,
    /// Days behind its stated freshness (None: on time, or nothing promised).
    pub late_days: Option<i64>,
    pub ownership: Ownership,
    /// Past queries (all of the history, not only similar ones) that read the table.
    pub past_queries: usize,
}

/// Whether someone answers for a table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ownership {
    /// An owner who reviewed it or used it recently.
    Active,
    /// An owner is named but has not been seen for a long time.
    Inactive,
    #[default]
    Unowned,
}

impl From<&crate::stewardship::TableSignals> for Trust {
    fn from(signals: &crate::stewardship::TableSignals) -> Trust {
        Trust {
            documentation: signals.documentation,
            late_days: signals.late_days,
            ownership: match signals.ownership {
                "active" => Ownership::Active,
                "inactive" => Ownership::Inactive,
                _ => Ownership::Unowned,
            },
            past_queries: signals.usage.queries,
        }
    }
}

/// The trust signals of a catalog's tables, computed when the catalog or the history changes
/// (not on every ask) and handed to retrieval as data. A table without an entry has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustSignals {
    /// Keyed by lower-cased table name.
    by_table: BTreeMap<String, Trust>,
}

impl TrustSignals {
    pub fn new(signals: impl IntoIterator<Item = (String, Trust)>) -> TrustSignals {
        TrustSignals { by_table: signals.into_iter().map(|(name, t)| (name.to_lowercase(), t)).collect() }
    }

    /// The signals of `table` (none: the defaults).
    pub fn of(&self, table: &str) -> Trust {
        self.by_table.get(&table.to_lowercase()).cloned().unwrap_or_default()
    }

    /// These signals with `reads` (per lower-cased table) taken off the past queries that read
    /// each table: an evaluation does not let a question's own gold SQL count as usage.
    pub fn less_reads(&self, reads: &BTreeMap<String, usize>) -> TrustSignals {
        let mut signals = self.clone();
        for (table, n) in reads {
            if let Some(trust) = signals.by_table.get_mut(table) {
                trust.past_queries = trust.past_queries.saturating_sub(*n);
            }
        }
        signals
    }
}

/// A table chosen for the question, and why.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TableCandidate {
    pub name: String,
    pub score: f32,
    pub tier: Option<Tier>,
    pub owner: Option<String>,
    pub deprecated_for: Option<String>,
    /// How fresh its owner promises to keep it, e.g. "daily by 06:00 UTC".
    pub freshness: Option<String>,
    /// Days behind that promise (None: on time, or nothing promised).
    pub late_days: Option<i64>,
    /// Plain-language reasons, e.g. "read by 3 similar past queries".
    pub evidence: Vec<String>,
}

/// A past query close to the question.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Example {
    pub label: String,
    pub sql: String,
    pub author: String,
    pub tables: Vec<String>,
    pub score: f32,
    /// Confirmed correct by a person.
    pub verified: bool,
}

/// A verified past query that may answer the question asked, as it is or as a template.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Reuse {
    /// `history::PastQuery::hash` of the past query.
    #[serde(skip)]
    pub hash: String,
    /// The past query's question (or title).
    pub label: String,
    pub sql: String,
    pub author: String,
    /// When it ran.
    pub timestamp: String,
    /// Its search score for the question asked.
    pub score: f32,
    /// Who verified it and when (filled in by the pipeline from the verdicts in force).
    pub verified_by: Option<String>,
    pub verified_at: Option<String>,
    /// The literals of its SQL replaced by the question's (empty: reused as it was).
    pub substitutions: Vec<crate::template::Substitution>,
}

/// Verified past queries offered for reuse at most, the most similar first.
pub const REUSE_CANDIDATES: usize = 3;

/// What retrieval found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retrieved {
    pub tables: Vec<TableCandidate>,
    pub examples: Vec<Example>,
    /// Verified past queries whose question is similar enough to answer this one, the most
    /// similar first; whether one does (as it is, or with other literals) is decided by
    /// `template::instantiate`.
    pub reusable: Vec<Reuse>,
    pub embed_ms: u64,
    pub search_ms: u64,
}

/// Errors while retrieving.
#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] VectorStoreError),
}

/// Where to search: only points passing every filter; past queries whose payload matches
/// `exclude` are never used (the evaluation's leakage guard).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub filters: Vec<Equals>,
    pub exclude: Vec<Equals>,
}

/// Nearest neighbours fetched per collection before fusion.
const HITS: usize = 12;

/// What a question naming everything a table's own name says adds to its description's match
/// (`names::name_scores` is 0 to 1; similarities span about 0.2 to 0.8). Chosen on Spider
/// *train* questions over the merged catalog (`quarry bench retrieval --merged --questions
/// train_spider_min.json`), never on an evaluation set: 0.5 routes about as well.
const NAME_WEIGHT: f32 = 1.0;

/// What a schema naming every word of the question adds to each of its tables' match
/// (`names::NameScores::schemas`, 0 to 1): in a catalog of many schemas, the one that holds
/// the words spread over a question ("singers", "concerts", "stadiums") is the one it asks
/// about. The same lift for all its tables, so it never reorders tables within a schema.
/// Chosen on Spider train questions as `NAME_WEIGHT` was: 0.5 routes about as well without
/// history and worse with it (0.812 against 0.821); 1.0 and 2.0 route worse without it.
const SCHEMA_WEIGHT: f32 = 0.25;

/// What the names a question says (`said`, from `names::name_scores`) add to `table`'s match. A
/// name lifts the kind of table the question means; of a staging or deprecated copy, that is
/// the trusted original, so the copy gets no lift from it.
fn name_lift(table: &crate::catalog::Table, said: f32) -> f32 {
    let untrusted = table.deprecated.is_some() || table.tier == Some(Tier::Staging);
    if untrusted {
        0.0
    } else {
        NAME_WEIGHT * said
    }
}

/// Governance adjustment of a table's relevance score: small beside relevance (similarities
/// between a question and a table span about 0.2 to 0.8), so trust decides between tables
/// that match about equally, and deprecation buries a table.
fn governance_bonus(tier: Option<Tier>, deprecated: bool, trust: &Trust) -> f32 {
    let tier = match tier {
        Some(Tier::Certified) => 0.06,
        Some(Tier::Team) => 0.02,
        Some(Tier::Staging) => -0.10,
        None => -0.03,
    };
    let deprecation = if deprecated { -0.3 } else { 0.0 };
    let documentation = 0.03 * trust.documentation.clamp(0.0, 1.0);
    let freshness = match trust.late_days {
        None => 0.0,
        Some(days) if days <= 7 => -0.02,
        Some(_) => -0.05,
    };
    let ownership = match trust.ownership {
        Ownership::Active => 0.02,
        Ownership::Inactive => 0.0,
        Ownership::Unowned => -0.01,
    };
    // ln(1 + n): the first uses say most; 50 queries give +0.02. Kept small: similar past
    // queries already count in relevance, and popularity is not relevance.
    let usage = 0.005 * (trust.past_queries as f32).ln_1p();
    tier + deprecation + documentation + freshness + ownership + usage
}

/// The trust evidence of a table, in words.
fn trust_evidence(trust: &Trust, table: &crate::catalog::Table) -> Vec<String> {
    let mut evidence = Vec::new();
    let described = table.columns.iter().filter(|c| !c.description.is_empty()).count();
    if described > 0 {
        evidence.push(format!("{described} of {} columns documented", table.columns.len()));
    } else if table.description.is_empty() {
        evidence.push("undocumented".into());
    }
    if let Some(days) = trust.late_days {
        let expected = table.freshness.as_deref().unwrap_or_default();
        evidence.push(format!("stale: {days} days later than promised ({expected})"));
    }
    match trust.ownership {
        Ownership::Active => {}
        Ownership::Inactive => evidence.push("its owner has not been active in 180 days".into()),
        Ownership::Unowned => evidence.push("no owner".into()),
    }
    if trust.past_queries > 0 {
        let plural = if trust.past_queries == 1 { "query" } else { "queries" };
        evidence.push(format!("read by {} past {plural} in all", trust.past_queries));
    }
    evidence
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn text(hit: &Hit, field: &str) -> String {
    hit.payload.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Where retrieval searches: the embedding model that reads the question and the vector store
/// of tables and past queries.
#[derive(Clone, Copy)]
pub struct VectorSearch<'a> {
    pub embedder: &'a dyn Embedder,
    pub store: &'a dyn VectorStore,
}

/// Retrieves tables, examples and a reusable verified query for `question`; `trust` holds
/// the candidate tables' trust signals; `shown` says, by its SQL, whether the asker may be
/// shown a past query: the others are dropped before anything is derived from them (examples,
/// the evidence that quotes them, reuse).
pub fn retrieve(
    question: &str,
    catalog: &Catalog,
    search: VectorSearch,
    budget: RetrievalBudget,
    scope: &Scope,
    trust: &TrustSignals,
    shown: &dyn Fn(&str) -> bool,
) -> Result<Retrieved, RetrieveError> {
    let VectorSearch { embedder, store } = search;
    let started = std::time::Instant::now();
    let vector = embedder.embed(&[question.to_string()])?.pop().unwrap_or_default();
    let embed_ms = started.elapsed().as_millis() as u64;

    let started = std::time::Instant::now();
    let table_hits = store.search(Collection::Tables, &vector, HITS.max(budget.tables), &scope.filters)?;
    let mut query_hits = if scope.exclude.is_empty() {
        store.search(Collection::Queries, &vector, HITS, &scope.filters)?
    } else {
        let mut hits = store.search(Collection::Queries, &vector, HITS * 3, &scope.filters)?;
        hits.retain(|h| !scope.exclude.iter().any(|e| h.payload.get(e.field) == Some(&e.value)));
        hits
    };
    query_hits.retain(|hit| shown(&text(hit, "sql")));
    query_hits.truncate(HITS);

    #[derive(Default)]
    struct Signals {
        /// Similarity of the question and the table's document, when the search found it.
        doc_score: Option<f32>,
        best_query_score: f32,
        query_count: usize,
        example_label: Option<String>,
    }
    let mut signals: BTreeMap<String, Signals> = BTreeMap::new();
    // Keyed by the catalog's spelling, so hits that name a table differently merge.
    let canonical = |name: &str| catalog.table(name).map(|t| t.name.clone());
    for hit in &table_hits {
        let Some(name) = canonical(&text(hit, "table")) else { continue };
        signals.entry(name).or_default().doc_score = Some(hit.score);
    }
    for hit in &query_hits {
        for table in strings(hit.payload.get("tables")) {
            let Some(table) = canonical(&table) else { continue };
            let s = signals.entry(table).or_default();
            s.query_count += 1;
            if hit.score > s.best_query_score {
                s.best_query_score = hit.score;
                s.example_label = Some(text(hit, "label"));
            }
        }
    }
    // Tables the question names. A filtered search (one schema of many) is on payloads the
    // catalog does not hold, so there a name only raises a table found by the searches.
    let named = name_scores(question, catalog);
    // A table found by name alone ranks below every search hit on its description.
    let mut floor = None;
    if scope.filters.is_empty() {
        floor = Some(table_hits.iter().map(|h| h.score).reduce(f32::min).unwrap_or_default());
        let mut by_name: Vec<(&String, &f32)> = named.tables.iter().collect();
        by_name.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for (name, _) in by_name.into_iter().take(HITS.max(budget.tables)) {
            signals.entry(name.clone()).or_default();
        }
    }

    let mut tables: Vec<TableCandidate> = signals
        .into_iter()
        .filter_map(|(name, s)| {
            let table = catalog.table(&name)?;
            let said = named.tables.get(&name).copied().unwrap_or_default();
            let schema_said = named.schema_of_table(table);
            let named_lift = name_lift(table, said);
            let lift = named_lift + SCHEMA_WEIGHT * schema_said;
            let description = s.doc_score.or(floor.filter(|_| named_lift > 0.0)).unwrap_or_default();
            // Names are read in the table's own words, as its description is: they add to that
            // match, not to what similar past queries say.
            let relevance = (description + lift).max(s.best_query_score)
                + 0.02 * (s.query_count.saturating_sub(1)).min(5) as f32;
            // Documentation is read from the table as the role sees it (`catalog`): the share of
            // its columns described, counting no column it may not see.
            let trust = Trust { documentation: table.documentation(), ..trust.of(&table.name) };
            let score = relevance + governance_bonus(table.tier, table.deprecated.is_some(), &trust);
            let mut evidence = Vec::new();
            if let Some(similarity) = s.doc_score {
                evidence.push(format!("its description matches the question (similarity {similarity:.2})"));
            }
            if said > 0.0 {
                evidence.push(format!(
                    "the question uses its name or its columns' names ({:.0}% of the question's schema words)",
                    100.0 * said
                ));
            }
            if schema_said > 0.0 {
                evidence.push(format!(
                    "its schema {} names {:.0}% of the question's schema words",
                    names::schema_of(table),
                    100.0 * schema_said
                ));
            }
            if s.query_count > 0 {
                let example = s.example_label.unwrap_or_default();
                let plural = if s.query_count == 1 { "query" } else { "queries" };
                evidence.push(format!("read by {} similar past {plural}, e.g. \"{example}\"", s.query_count));
            }
            let mut governance =
                table.tier.map(|t| t.to_string()).unwrap_or_else(|| "no tier assigned".into());
            if let Some(owner) = &table.owner {
                governance.push_str(&format!(", owner {owner}"));
            }
            evidence.push(governance);
            if let Some(dep) = &table.deprecated {
                evidence.push(format!("deprecated: use {} instead", dep.replacement));
            }
            evidence.extend(trust_evidence(&trust, table));
            Some(TableCandidate {
                name: table.name.clone(),
                score,
                tier: table.tier,
                owner: table.owner.clone(),
                deprecated_for: table.deprecated.as_ref().map(|d| d.replacement.clone()),
                freshness: table.freshness.clone(),
                late_days: trust.late_days,
                evidence,
            })
        })
        .collect();
    tables.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    tables.truncate(budget.tables);
    for joined in joined_tables(question, catalog, &tables, budget.joined) {
        let Some(table) = catalog.table(&joined.name) else { continue };
        let trust = Trust { documentation: table.documentation(), ..trust.of(&table.name) };
        let mut evidence = vec![joined.reason];
        evidence.push(table.tier.map(|t| t.to_string()).unwrap_or_else(|| "no tier assigned".into()));
        evidence.extend(trust_evidence(&trust, table));
        tables.push(TableCandidate {
            name: table.name.clone(),
            score: tables.last().map(|t| t.score).unwrap_or_default(),
            tier: table.tier,
            owner: table.owner.clone(),
            deprecated_for: None,
            freshness: table.freshness.clone(),
            late_days: trust.late_days,
            evidence,
        });
    }

    let verified = |hit: &Hit| hit.payload.get("verified").and_then(Value::as_bool).unwrap_or(false);
    // Examples by similarity alone: a small model copies its first example, so a verified but
    // less similar one put first misleads it (measured on the demo: a wrong answer).
    let examples = query_hits
        .iter()
        .take(budget.examples)
        .map(|hit| Example {
            label: text(hit, "label"),
            sql: text(hit, "sql"),
            author: text(hit, "author"),
            tables: strings(hit.payload.get("tables")),
            score: hit.score,
            verified: verified(hit),
        })
        .collect();

    // Asset first: the closest verified queries, offered for reuse as they are or as templates.
    let reusable = if budget.reuse {
        let mut hits: Vec<&Hit> = query_hits.iter().filter(|h| verified(h)).collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.into_iter()
            .take(REUSE_CANDIDATES)
            .map(|hit| Reuse {
                hash: text(hit, "hash"),
                label: text(hit, "label"),
                sql: text(hit, "sql"),
                author: text(hit, "author"),
                timestamp: text(hit, "timestamp"),
                score: hit.score,
                verified_by: None,
                verified_at: None,
                substitutions: Vec::new(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Retrieved { tables, examples, reusable, embed_ms, search_ms: started.elapsed().as_millis() as u64 })
}

impl TableCandidate {
    /// A table offered although retrieval did not rank it (picked by the analyst, or read by
    /// the answer a follow-up follows): its governance, no score, no evidence yet.
    pub fn of(table: &crate::catalog::Table) -> TableCandidate {
        TableCandidate {
            name: table.name.clone(),
            score: 0.0,
            tier: table.tier,
            owner: table.owner.clone(),
            deprecated_for: table.deprecated.as_ref().map(|d| d.replacement.clone()),
            freshness: table.freshness.clone(),
            late_days: None,
            evidence: Vec::new(),
        }
    }

    /// A candidate with a score and no other signal, for tests.
    #[cfg(test)]
    pub(crate) fn named(name: &str, score: f32) -> TableCandidate {
        TableCandidate {
            name: name.into(),
            score,
            tier: None,
            owner: None,
            deprecated_for: None,
            freshness: None,
            late_days: None,
            evidence: Vec::new(),
        }
    }
}

/// A table to add to the chosen ones, and why.
struct Joined {
    name: String,
    reason: String,
}

/// Up to `limit` tables not among `chosen` that complete its joins: first link tables whose keys
/// reference two chosen tables, then tables the question names (a word of the question is the
/// table's name, singular or plural) that a chosen table references or is referenced by.
/// Deprecated tables are never added.
fn joined_tables(question: &str, catalog: &Catalog, chosen: &[TableCandidate], limit: usize) -> Vec<Joined> {
    if limit == 0 || chosen.is_empty() {
        return Vec::new();
    }
    let is_chosen = |name: &str| chosen.iter().any(|c| c.name.eq_ignore_ascii_case(name));
    let candidates = || catalog.tables().filter(|t| !is_chosen(&t.name) && t.deprecated.is_none());
    let mut added: Vec<Joined> = Vec::new();
    for table in candidates() {
        let mut linked: Vec<&str> =
            table.foreign_keys.iter().map(|k| k.ref_table.as_str()).filter(|r| is_chosen(r)).collect();
        linked.sort_unstable_by_key(|r| r.to_lowercase());
        linked.dedup_by_key(|r| r.to_lowercase());
        if let [a, b, ..] = linked.as_slice() {
            added.push(Joined { name: table.name.clone(), reason: format!("links {a} and {b} by key") });
        }
    }
    let words = stems(question);
    for table in candidates() {
        if added.iter().any(|a| a.name == table.name)
            || !names_phrase(&words, &stems(&table.name.replace('_', " ")))
        {
            continue;
        }
        let joins = chosen.iter().find_map(|c| {
            let references = table.foreign_keys.iter().any(|k| k.ref_table.eq_ignore_ascii_case(&c.name));
            let referenced = catalog.table(&c.name).is_some_and(|t| {
                t.foreign_keys.iter().any(|k| k.ref_table.eq_ignore_ascii_case(&table.name))
            });
            (references || referenced).then(|| c.name.clone())
        });
        if let Some(other) = joins {
            added.push(Joined {
                name: table.name.clone(),
                reason: format!("the question names it, and it joins {other} by key"),
            });
        }
    }
    added.truncate(limit);
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, ForeignKey, Table};

    fn key(column: &str, table: &str) -> ForeignKey {
        ForeignKey {
            column: column.into(),
            ref_table: table.into(),
            ref_column: column.into(),
            inferred: true,
        }
    }

    #[test]
    fn link_tables_and_named_neighbours_complete_the_joins() {
        let table = |name: &str, keys: Vec<ForeignKey>| {
            let mut t = Table::new(name, vec![Column::new("x", "INTEGER")]);
            t.foreign_keys = keys;
            t
        };
        let catalog = Catalog::from_tables(vec![
            table("author", vec![]),
            table("publication", vec![key("jid", "journal")]),
            table("journal", vec![]),
            table("writes", vec![key("aid", "author"), key("pid", "publication")]),
            table("domain_author", vec![key("aid", "author"), key("did", "domain")]),
            table("domain", vec![]),
            table("conference", vec![]),
        ]);
        let names = |question: &str, chosen: &[&str], limit| -> Vec<String> {
            let chosen: Vec<TableCandidate> = chosen.iter().map(|c| TableCandidate::named(c, 1.0)).collect();
            joined_tables(question, &catalog, &chosen, limit).into_iter().map(|j| j.name).collect()
        };
        // writes links author and publication; journal is named and referenced by publication;
        // conference is named but joins nothing chosen.
        let question = "How many publications did each author write per journal and conference?";
        assert_eq!(names(question, &["author", "publication"], 3), ["writes", "journal"]);
        assert_eq!(names(question, &["author", "publication"], 1), ["writes"]);
        assert!(names(question, &["author", "publication"], 0).is_empty());
        // Named in the plural; joined from the other side (domain_author references domain).
        assert_eq!(names("Authors in each of the domains", &["domain_author"], 2), ["author", "domain"]);
        assert!(names("Titles of all papers", &["publication"], 2).is_empty());
    }

    #[test]
    fn names_lift_no_staging_or_deprecated_copy() {
        let mut table = Table::new("orders", vec![Column::new("order_id", "INTEGER")]);
        assert_eq!(name_lift(&table, 0.5), NAME_WEIGHT * 0.5);
        table.tier = Some(Tier::Certified);
        assert_eq!(name_lift(&table, 0.5), NAME_WEIGHT * 0.5);
        table.tier = Some(Tier::Staging);
        assert_eq!(name_lift(&table, 0.5), 0.0);
        table.tier = Some(Tier::Team);
        table.deprecated =
            Some(crate::catalog::Deprecation { replacement: "orders_v2".into(), note: String::new() });
        assert_eq!(name_lift(&table, 0.5), 0.0);
    }

    #[test]
    fn trust_orders_tables_that_match_alike() {
        let bonus = |tier, deprecated, trust: &Trust| governance_bonus(tier, deprecated, trust);
        let base = Trust::default();
        let documented = Trust { documentation: 1.0, ..base.clone() };
        let stale = Trust { late_days: Some(30), ..base.clone() };
        let owned = Trust { ownership: Ownership::Active, ..base.clone() };
        let used = Trust { past_queries: 20, ..base.clone() };
        let certified = Some(Tier::Certified);
        for better in [&documented, &owned, &used] {
            assert!(bonus(certified, false, better) > bonus(certified, false, &base), "{better:?}");
        }
        assert!(bonus(certified, false, &stale) < bonus(certified, false, &base));
        assert!(bonus(certified, false, &base) > bonus(Some(Tier::Staging), false, &base));
        // Nothing good about a deprecated table lifts it over a plain undocumented one.
        let best =
            Trust { documentation: 1.0, ownership: Ownership::Active, past_queries: 500, late_days: None };
        assert!(bonus(certified, true, &best) < bonus(None, false, &stale));
    }

    #[test]
    fn trust_evidence_names_the_signals() {
        let mut table =
            Table::new("orders", vec![Column::new("order_id", "INTEGER"), Column::new("x", "TEXT")]);
        table.columns[0].description = "The order.".into();
        table.freshness = Some("daily by 06:00 UTC".into());
        let trust =
            Trust { documentation: 0.5, late_days: Some(12), ownership: Ownership::Unowned, past_queries: 3 };
        let evidence = trust_evidence(&trust, &table).join("; ");
        assert_eq!(
            evidence,
            "1 of 2 columns documented; stale: 12 days later than promised (daily by 06:00 UTC); \
             no owner; read by 3 past queries in all"
        );
    }
}
