//! Join keys a warehouse does not declare, inferred from column names and checked against the data.
//!
//! Many warehouses declare no foreign keys (loaders skip constraints), and a model shown none
//! guesses its joins. When a warehouse declares none at all, a column is taken to reference
//! another table's key when
//! - the names say so: the same column name (`writes.aid` → `author.aid`; a bare `id` never), or
//!   `<table>_id` → `<table>.id` (`orders.user_id` → `users.id`);
//! - the referenced column is a key: the declared single-column primary key, or unique and never
//!   NULL with a name that reads as an identifier (`…id`, `…_code`, `…_key`, `…_no`) or names its
//!   own table (`state.state_name`);
//! - the data agrees: at least 75% of the column's distinct values (up to 2,000 of them) are
//!   values of the key (warehouses keep orphans; the names already agree).
//!
//! Where a column could reference keys of several tables (small link tables are unique by chance),
//! the table its name names wins, then a table with no other key, then a table its name begins;
//! a tie infers nothing. A warehouse that declares any foreign key is taken at its word: nothing is
//! inferred. Inferred keys are marked (`ForeignKey::inferred`) and grant nothing: the policy and
//! the validator read tables and columns, never keys.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::introspect::quote_ident;
use crate::catalog::{ForeignKey, Table};

/// Distinct values of a referencing column compared with the key.
const SAMPLE: usize = 2_000;
/// The share of those values the key must hold.
const CONTAINED: f64 = 0.75;
/// Tables with more rows are not scanned for uniqueness: only their declared key counts.
const SCANNED_ROWS: u64 = 5_000_000;

/// Adds the inferred foreign keys to `tables` (one warehouse's), unless any table declares one.
pub(super) fn infer(conn: &Connection, tables: &mut BTreeMap<String, Table>) {
    if tables.values().any(|t| !t.foreign_keys.is_empty()) {
        return;
    }
    let keys = key_columns(conn, tables);
    let mut found: Vec<(String, ForeignKey)> = Vec::new();
    for table in tables.values().filter(|t| t.row_count.unwrap_or(0) > 0) {
        for column in &table.columns {
            let Some((ref_table, ref_column)) = referenced_key(&table.name, &column.name, &keys) else {
                continue;
            };
            match contained(conn, &table.name, &column.name, ref_table, ref_column) {
                Ok(true) => found.push((
                    table.name.to_lowercase(),
                    ForeignKey {
                        column: column.name.clone(),
                        ref_table: ref_table.to_string(),
                        ref_column: ref_column.to_string(),
                        inferred: true,
                    },
                )),
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    "cannot compare {}.{} with {ref_table}.{ref_column} to infer a join key: {e}",
                    table.name,
                    column.name
                ),
            }
        }
    }
    for (table, key) in found {
        if let Some(table) = tables.get_mut(&table) {
            table.foreign_keys.push(key);
        }
    }
}

/// `(table, column)` of every column that can be referenced: declared single-column primary
/// keys, and unique, never-NULL columns whose names read as keys.
fn key_columns(conn: &Connection, tables: &BTreeMap<String, Table>) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    for table in tables.values().filter(|t| t.row_count.unwrap_or(0) > 0) {
        for column in &table.columns {
            let declared =
                matches!(table.primary_key.as_slice(), [key] if key.eq_ignore_ascii_case(&column.name));
            let unique = || {
                table.row_count.is_some_and(|rows| rows <= SCANNED_ROWS)
                    && key_like(&table.name, &column.name)
                    && is_unique(conn, &table.name, &column.name).unwrap_or_else(|e| {
                        tracing::warn!("cannot read whether {}.{} is unique: {e}", table.name, column.name);
                        false
                    })
            };
            if declared || unique() {
                keys.push((table.name.clone(), column.name.clone()));
            }
        }
    }
    keys
}

/// The key `column` of `table` references, by the naming rules of the module documentation.
fn referenced_key<'k>(table: &str, column: &str, keys: &'k [(String, String)]) -> Option<(&'k str, &'k str)> {
    let is_key = |t: &str, c: &str| {
        keys.iter().any(|(kt, kc)| kt.eq_ignore_ascii_case(t) && kc.eq_ignore_ascii_case(c))
    };
    let stem = stem(column);
    let named_id = column.to_lowercase().ends_with("_id");
    let mut candidates: Vec<&(String, String)> = keys
        .iter()
        .filter(|(t, c)| {
            !t.eq_ignore_ascii_case(table)
                // A bare `id` says nothing about which table it belongs to.
                && ((c.eq_ignore_ascii_case(column) && !column.eq_ignore_ascii_case("id"))
                    || (c.eq_ignore_ascii_case("id") && named_id && names_exactly(&stem, t)))
        })
        .collect();
    let sole_key = |t: &str| keys.iter().filter(|(kt, _)| kt.eq_ignore_ascii_case(t)).count() == 1;
    if is_key(table, column) {
        // A key of its own table references another when the name says so (a 1:1 extension:
        // `user_profiles.user_id` → `users.user_id`), or from a link table (several keys, unique by
        // chance) to a table with one key; never between two tables that share an id name.
        if names_exactly(&stem, table) {
            return None;
        }
        let link_table = !sole_key(table);
        candidates.retain(|(t, _)| names_exactly(&stem, t) || (link_table && sole_key(t)));
    }
    // Several tables hold the column as a key (small link tables can be unique by chance): the
    // table the name names, then a table with no other key, then a table the name begins.
    let preferences: [&dyn Fn(&str) -> bool; 3] =
        [&|t| names_exactly(&stem, t), &|t| sole_key(t), &|t| names_prefix(&stem, t)];
    for preferred in preferences {
        if candidates.len() <= 1 {
            break;
        }
        let narrowed: Vec<&(String, String)> =
            candidates.iter().copied().filter(|(t, _)| preferred(t)).collect();
        if !narrowed.is_empty() {
            candidates = narrowed;
        }
    }
    match candidates.as_slice() {
        [(t, c)] => Some((t.as_str(), c.as_str())),
        _ => None,
    }
}

/// The column name without its key suffix, lower case: `user_id` → `user`, `aid` → `a`.
fn stem(column: &str) -> String {
    let name = column.to_lowercase();
    for suffix in ["_id", "_code", "_key", "_no", "_name", "id"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            return stem.to_string();
        }
    }
    name
}

/// Whether a column name reads as a key of `table`.
fn key_like(table: &str, column: &str) -> bool {
    let name = column.to_lowercase();
    name.ends_with("id")
        || ["_code", "_key", "_no"].iter().any(|s| name.ends_with(s))
        || (name != stem(&name) && names_exactly(&stem(&name), table))
}

/// `table` is the stem's name: `user` names `user`, `users`, `useres`… (plural by suffix).
fn names_exactly(stem: &str, table: &str) -> bool {
    let table = table.to_lowercase();
    !stem.is_empty() && [stem.to_string(), format!("{stem}s"), format!("{stem}es")].contains(&table)
}

/// `table` starts with the stem: `a` (of `aid`) names `author`.
fn names_prefix(stem: &str, table: &str) -> bool {
    !stem.is_empty() && table.to_lowercase().starts_with(stem)
}

fn is_unique(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let (t, c) = (quote_ident(table), quote_ident(column));
    conn.query_row(
        &format!("SELECT count(*) = count({c}) AND count({c}) = count(DISTINCT {c}) FROM {t}"),
        [],
        |r| r.get(0),
    )
}

/// Whether the key holds (nearly) every sampled distinct value of the column.
fn contained(
    conn: &Connection,
    table: &str,
    column: &str,
    ref_table: &str,
    ref_column: &str,
) -> rusqlite::Result<bool> {
    let (t, c) = (quote_ident(table), quote_ident(column));
    let (rt, rc) = (quote_ident(ref_table), quote_ident(ref_column));
    let sql = format!(
        "SELECT count(*), coalesce(sum(v IN (SELECT {rc} FROM {rt})), 0) \
         FROM (SELECT DISTINCT {c} AS v FROM {t} WHERE {c} IS NOT NULL LIMIT {SAMPLE})"
    );
    let (values, found): (i64, i64) = conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(values > 0 && found as f64 >= CONTAINED * values as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn catalog(ddl: &str) -> Catalog {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sqlite");
        Connection::open(&path).unwrap().execute_batch(ddl).unwrap();
        crate::warehouse::introspect(&path).unwrap()
    }

    fn keys(catalog: &Catalog, table: &str) -> Vec<String> {
        let table = catalog.table(table).unwrap();
        table
            .foreign_keys
            .iter()
            .map(|k| {
                assert!(k.inferred);
                format!("{} -> {}.{}", k.column, k.ref_table, k.ref_column)
            })
            .collect()
    }

    const ACADEMIC: &str = "
        CREATE TABLE author (aid INTEGER, name TEXT, oid INTEGER);
        CREATE TABLE organization (oid INTEGER, name TEXT);
        CREATE TABLE publication (pid INTEGER, title TEXT, year INTEGER);
        CREATE TABLE writes (aid INTEGER, pid INTEGER);
        INSERT INTO organization VALUES (1, 'Uni A'), (2, 'Uni B');
        INSERT INTO author VALUES (1, 'Ann', 1), (2, 'Bo', 2), (3, 'Cy', NULL);
        INSERT INTO publication VALUES (10, 'On keys', 2020), (11, 'On joins', 2021);
        INSERT INTO writes VALUES (1, 10), (2, 10), (2, 11);";

    #[test]
    fn same_named_columns_reference_the_table_where_they_are_unique() {
        let catalog = catalog(ACADEMIC);
        assert_eq!(keys(&catalog, "writes"), ["aid -> author.aid", "pid -> publication.pid"]);
        assert_eq!(keys(&catalog, "author"), ["oid -> organization.oid"]);
        // Names that are not keys (name, year) and the keys' own tables get nothing.
        assert!(keys(&catalog, "organization").is_empty());
        assert!(keys(&catalog, "publication").is_empty());
    }

    #[test]
    fn table_id_columns_reference_the_plural_table() {
        let catalog = catalog(
            "CREATE TABLE users (id INTEGER, plan TEXT);
             CREATE TABLE orders (id INTEGER, user_id INTEGER, total REAL);
             INSERT INTO users VALUES (1, 'pro'), (2, 'free');
             INSERT INTO orders VALUES (1, 1, 9.5), (2, 1, 3.0), (3, 2, 1.0);",
        );
        // `id` of orders does not reference users.id: the name says nothing about users.
        assert_eq!(keys(&catalog, "orders"), ["user_id -> users.id"]);
        assert!(keys(&catalog, "users").is_empty());
    }

    #[test]
    fn values_missing_from_the_key_and_duplicate_keys_infer_nothing() {
        let catalog = catalog(
            "CREATE TABLE state (state_name TEXT, area REAL);
             CREATE TABLE city (city_name TEXT, state_name TEXT);
             CREATE TABLE lake (lake_name TEXT, state_name TEXT);
             CREATE TABLE shop (shop_id INTEGER, name TEXT);
             CREATE TABLE sale (shop_id INTEGER, amount REAL);
             INSERT INTO state VALUES ('ohio', 1.0), ('iowa', 2.0);
             INSERT INTO city VALUES ('columbus', 'ohio'), ('ames', 'iowa');
             INSERT INTO lake VALUES ('erie', 'ohio'), ('x', 'texas'), ('y', 'utah');
             INSERT INTO shop VALUES (1, 'a'), (1, 'b');
             INSERT INTO sale VALUES (1, 2.0);",
        );
        assert_eq!(keys(&catalog, "city"), ["state_name -> state.state_name"]);
        // Two of three lake states are not in state; shop_id is not unique in shop.
        assert!(keys(&catalog, "lake").is_empty());
        assert!(keys(&catalog, "sale").is_empty());
    }

    #[test]
    fn link_tables_unique_by_chance_and_bare_ids_do_not_mislead() {
        let catalog = catalog(
            "CREATE TABLE domain (did INTEGER, name TEXT);
             CREATE TABLE conference (cid INTEGER, name TEXT);
             CREATE TABLE domain_conference (cid INTEGER, did INTEGER);
             CREATE TABLE domain_author (aid INTEGER, did INTEGER);
             CREATE TABLE tag (id INTEGER, label TEXT);
             CREATE TABLE note (id INTEGER, body TEXT);
             INSERT INTO domain VALUES (1, 'ml'), (2, 'db'), (3, 'os');
             INSERT INTO conference VALUES (7, 'VLDB'), (8, 'NeurIPS');
             INSERT INTO domain_conference VALUES (7, 1), (8, 2);
             INSERT INTO domain_author VALUES (5, 1), (6, 1), (5, 2);
             INSERT INTO tag VALUES (1, 'a'), (2, 'b');
             INSERT INTO note VALUES (1, 'x'), (2, 'y');",
        );
        // domain_conference's two columns are unique by chance: still a link table.
        assert_eq!(keys(&catalog, "domain_conference"), ["cid -> conference.cid", "did -> domain.did"]);
        assert_eq!(keys(&catalog, "domain_author"), ["did -> domain.did"]);
        assert!(keys(&catalog, "domain").is_empty());
        assert!(keys(&catalog, "tag").is_empty());
        assert!(keys(&catalog, "note").is_empty());
    }

    #[test]
    fn a_warehouse_that_declares_keys_is_taken_at_its_word() {
        let catalog = catalog(
            "CREATE TABLE author (aid INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE writes (aid INTEGER REFERENCES author(aid), pid INTEGER);
             CREATE TABLE publication (pid INTEGER PRIMARY KEY, title TEXT);
             INSERT INTO author VALUES (1, 'Ann');
             INSERT INTO publication VALUES (10, 'On keys');
             INSERT INTO writes VALUES (1, 10);",
        );
        let writes = catalog.table("writes").unwrap();
        assert_eq!(writes.foreign_keys.len(), 1);
        assert!(!writes.foreign_keys[0].inferred);
    }

    #[test]
    fn a_key_shared_by_name_picks_the_table_the_name_names() {
        let catalog = catalog(
            "CREATE TABLE business (business_id TEXT, name TEXT);
             CREATE TABLE checkin (business_id TEXT, count INTEGER);
             CREATE TABLE review (business_id TEXT, stars REAL);
             INSERT INTO business VALUES ('b1', 'Cafe'), ('b2', 'Bar');
             INSERT INTO checkin VALUES ('b1', 3), ('b2', 4);
             INSERT INTO review VALUES ('b1', 4.0), ('b1', 5.0), ('b2', 3.0);",
        );
        // checkin.business_id is unique too: the name names business, so checkin and review
        // reference business and business references nothing.
        assert_eq!(keys(&catalog, "review"), ["business_id -> business.business_id"]);
        assert_eq!(keys(&catalog, "checkin"), ["business_id -> business.business_id"]);
        assert!(keys(&catalog, "business").is_empty());
    }
}
