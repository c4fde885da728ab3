//! PostgreSQL as the warehouse: a pool of connections as a role that may only read, the
//! catalog read from `pg_catalog` (tables, columns, types, keys, comments, estimated row
//! counts, common values), and validated queries run in a `READ ONLY` transaction with a
//! server-side `statement_timeout`, the schema as the only search path, rows read through a
//! portal up to the row cap, and a cancel request sent when the deadline passes or the caller
//! goes away.
//!
//! Every statement here but the validated query is a constant, with parameters bound; the
//! schema name reaches SQL only as a quoted identifier.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::{FromSql, Type};
use postgres::{Client, NoTls};
use r2d2_postgres::{r2d2, PostgresConnectionManager};
use serde_json::Value;

use super::execute::{stop_when, Cancel, ExecuteError, ExecutionLimits, ResultSet, Rows, Watchdog};
use super::introspect::{classify_date, is_date_column, quote_ident};
use crate::catalog::{Catalog, Column, Engine, ForeignKey, LastChange, Table};
use crate::validate::ValidatedQuery;

/// A `postgres://` or `postgresql://` connection string. It is shown with its password
/// replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// Whether `text` names a PostgreSQL server rather than a SQLite file.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// The URL, checked to parse as a connection string.
    pub fn parse(text: &str) -> Result<PostgresUrl, String> {
        if !PostgresUrl::is_url(text) {
            return Err(format!("'{text}' is not a postgres:// URL"));
        }
        text.parse::<postgres::Config>()
            .map(|_| PostgresUrl(text.to_string()))
            .map_err(|e| format!("{}: {e}", PostgresUrl(text.to_string())))
    }

    /// The role it logs in as.
    pub fn user(&self) -> Option<String> {
        self.config().get_user().map(str::to_string)
    }

    pub(crate) fn config(&self) -> postgres::Config {
        // Checked in `parse`.
        self.0.parse().unwrap_or_default()
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres://user:password@host/db -> postgres://user:***@host/db
        let text = &self.0;
        let scheme_end = text.find("://").map(|i| i + 3).unwrap_or(0);
        let rest = &text[scheme_end..];
        match (rest.find('@'), rest[..rest.find('@').unwrap_or(0)].find(':')) {
            (Some(_), Some(colon)) => {
                let at = rest.find('@').unwrap_or(0);
                write!(f, "{}{}:***{}", &text[..scheme_end], &rest[..colon], &rest[at..])
            }
            _ => f.write_str(text),
        }
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// Why the PostgreSQL warehouse cannot be used; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "cannot connect to the warehouse {url}: {message}. Check that the server runs and accepts \
         connections there, and the user name and password in [workspace].warehouse"
    )]
    Connect { url: PostgresUrl, message: String },
    #[error("cannot read the catalog of schema '{schema}' on {url}: {message}")]
    Introspect { url: PostgresUrl, schema: String, message: String },
    #[error(
        "the warehouse role '{role}' on {url} can change data ({what}); Quarry connects only as a \
         role that may read. Create one and use it in [workspace].warehouse:\n{grants}"
    )]
    CanWrite { url: PostgresUrl, role: String, what: String, grants: String },
    #[error(
        "schema '{schema}' does not exist on {url} or role '{role}' may not use it; set [workspace].schema"
    )]
    NoSchema { url: PostgresUrl, schema: String, role: String },
}

/// The GRANTs of a role that may only read `schema`.
pub fn reader_grants(database: &str, schema: &str) -> String {
    let db = quote_ident(database);
    let s = quote_ident(schema);
    format!(
        "  CREATE ROLE quarry_reader LOGIN PASSWORD '…';\n  \
         GRANT CONNECT ON DATABASE {db} TO quarry_reader;\n  \
         GRANT USAGE ON SCHEMA {s} TO quarry_reader;\n  \
         GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO quarry_reader;\n  \
         ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO quarry_reader;"
    )
}

/// A PostgreSQL warehouse: one schema of one database, read through a pool of connections.
pub struct PostgresWarehouse {
    url: PostgresUrl,
    schema: String,
    pool: r2d2::Pool<PostgresConnectionManager<NoTls>>,
}

impl fmt::Debug for PostgresWarehouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresWarehouse").field("url", &self.url).field("schema", &self.schema).finish()
    }
}

/// How long to wait for a connection, from the server or the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl PostgresWarehouse {
    /// Connects (at most `connections` at once) and checks that the role can read `schema` and
    /// change nothing.
    pub fn connect(
        url: &PostgresUrl,
        schema: &str,
        connections: u32,
    ) -> Result<PostgresWarehouse, PostgresError> {
        let mut config = url.config();
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("quarry");
        // One connection first, for the server's own words when it fails (the pool retries
        // until its timeout and then says only "db error").
        config
            .connect(NoTls)
            .map_err(|e| PostgresError::Connect { url: url.clone(), message: describe(&e) })?;
        let pool = r2d2::Pool::builder()
            .max_size(connections.max(1))
            .min_idle(Some(0))
            .connection_timeout(CONNECT_TIMEOUT)
            .test_on_check_out(true)
            .build(PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| PostgresError::Connect { url: url.clone(), message: e.to_string() })?;
        let warehouse = PostgresWarehouse { url: url.clone(), schema: schema.to_string(), pool };
        warehouse.check_read_only()?;
        Ok(warehouse)
    }

    /// The schema whose tables are the catalog.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn client(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, PostgresError> {
        self.pool.get().map_err(|e| PostgresError::Connect { url: self.url.clone(), message: e.to_string() })
    }

    /// Refuses a role that is a superuser, may create objects, or may change any table of the
    /// schema: the database's own permissions are the executor's second wall.
    fn check_read_only(&self) -> Result<(), PostgresError> {
        let mut client = self.client()?;
        let introspect = |e: postgres::Error| PostgresError::Introspect {
            url: self.url.clone(),
            schema: self.schema.clone(),
            message: describe(&e),
        };
        let row = client
            .query_one(
                "SELECT current_user::text, current_database()::text, r.rolsuper, r.rolcreaterole, \
                        r.rolcreatedb, has_database_privilege(current_database(), 'CREATE'), \
                        n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE'), \
                        n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'CREATE'), \
                        (SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c \
                          WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
                            AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE') \
                              OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))) \
                 FROM pg_roles r LEFT JOIN pg_namespace n ON n.nspname = $1 \
                 WHERE r.rolname = current_user",
                &[&self.schema],
            )
            .map_err(introspect)?;
        let role: String = row.get(0);
        let database: String = row.get(1);
        let mut can = Vec::new();
        if row.get::<_, bool>(2) {
            can.push("it is a superuser".to_string());
        }
        if row.get::<_, bool>(3) || row.get::<_, bool>(4) {
            can.push("it may create roles or databases".to_string());
        }
        if row.get::<_, bool>(5) {
            can.push(format!("it may create schemas in database '{database}'"));
        }
        if row.get::<_, bool>(7) {
            can.push(format!("it may create tables in schema '{}'", self.schema));
        }
        if let Some(tables) = row.get::<_, Option<String>>(8) {
            can.push(format!("it may write to {tables}"));
        }
        if !can.is_empty() {
            return Err(PostgresError::CanWrite {
                url: self.url.clone(),
                role,
                what: can.join("; "),
                grants: reader_grants(&database, &self.schema),
            });
        }
        if !row.get::<_, bool>(6) {
            return Err(PostgresError::NoSchema { url: self.url.clone(), schema: self.schema.clone(), role });
        }
        Ok(())
    }

    /// The catalog of the schema, without governance: the tables and views the role may read,
    /// their columns, types, comments (as descriptions), declared keys, estimated row counts
    /// (exact for a table never analysed, when small), common values of text columns (from
    /// `pg_stats`) and the latest date of each table.
    pub fn introspect(&self) -> Result<Catalog, PostgresError> {
        let mut client = self.client()?;
        let err = |e: postgres::Error| PostgresError::Introspect {
            url: self.url.clone(),
            schema: self.schema.clone(),
            message: describe(&e),
        };
        let mut tx = client.build_transaction().read_only(true).start().map_err(err)?;
        let tables = tx
            .query(
                "SELECT c.oid, c.relname::text, coalesce(obj_description(c.oid, 'pg_class'), ''), \
                        c.reltuples::float8, pg_relation_size(c.oid) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
                   AND has_table_privilege(c.oid, 'SELECT') \
                 ORDER BY c.relname",
                &[&self.schema],
            )
            .map_err(err)?;
        let mut catalog_tables = BTreeMap::new();
        for row in tables {
            let oid: u32 = row.get(0);
            let name: String = row.get(1);
            let mut columns = Vec::new();
            for c in tx
                .query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                            coalesce(col_description(a.attrelid, a.attnum), '') \
                     FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                     ORDER BY a.attnum",
                    &[&oid],
                )
                .map_err(err)?
            {
                let mut column = Column::new(c.get::<_, String>(0), c.get::<_, String>(1));
                column.description = c.get(2);
                columns.push(column);
            }
            let primary_key: Vec<String> = tx
                .query(
                    "SELECT a.attname::text FROM pg_index i \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = $1 AND i.indisprimary \
                     ORDER BY array_position(i.indkey::int2[], a.attnum)",
                    &[&oid],
                )
                .map_err(err)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let foreign_keys = tx
                .query(
                    "SELECT a.attname::text, cf.relname::text, af.attname::text \
                     FROM pg_constraint con \
                     CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(col, fcol) \
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.col \
                     JOIN pg_class cf ON cf.oid = con.confrelid \
                     JOIN pg_attribute af ON af.attrelid = con.confrelid AND af.attnum = k.fcol \
                     WHERE con.contype = 'f' AND con.conrelid = $1 \
                     ORDER BY con.conname, a.attnum",
                    &[&oid],
                )
                .map_err(err)?
                .iter()
                .map(|r| ForeignKey {
                    column: r.get(0),
                    ref_table: r.get(1),
                    ref_column: r.get(2),
                    inferred: false,
                })
                .collect();
            let estimate: f64 = row.get(3);
            let bytes: i64 = row.get(4);
            let qualified = format!("{}.{}", quote_ident(&self.schema), quote_ident(&name));
            // reltuples is -1 for a table never vacuumed or analysed: count it when that is cheap.
            let row_count = if estimate >= 0.0 {
                Some(estimate.round() as u64)
            } else if bytes < 64 * 1024 * 1024 {
                let count: i64 =
                    tx.query_one(&format!("SELECT count(*) FROM {qualified}"), &[]).map_err(err)?.get(0);
                Some(count.max(0) as u64)
            } else {
                None
            };
            for common in tx
                .query(
                    "SELECT attname::text, most_common_vals::text::text[] FROM pg_stats \
                     WHERE schemaname = $1 AND tablename = $2 AND most_common_vals IS NOT NULL \
                       AND n_distinct BETWEEN 1 AND 12",
                    &[&self.schema, &name],
                )
                .map_err(err)?
            {
                let column: String = common.get(0);
                let mut values: Vec<String> = common.get(1);
                values.retain(|v| v.len() <= 40);
                values.sort();
                if let Some(c) = columns.iter_mut().find(|c| c.name == column && is_text(&c.data_type)) {
                    c.sample_values = values;
                }
            }
            let mut last_change: Option<LastChange> = None;
            let today = crate::calendar::today();
            for column in columns.iter_mut().filter(|c| is_date_column(c)) {
                let c = quote_ident(&column.name);
                let latest = if is_text(&column.data_type) {
                    let first: Option<String> = tx
                        .query_opt(&format!("SELECT {c} FROM {qualified} WHERE {c} IS NOT NULL LIMIT 1"), &[])
                        .map_err(err)?
                        .map(|r| r.get(0));
                    column.date_format = first.as_deref().and_then(classify_date).map(str::to_string);
                    let sql = format!(
                        "SELECT max(substr({c}, 1, 10)) FROM {qualified} \
                         WHERE {c} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}' AND substr({c}, 1, 10) <= $1"
                    );
                    tx.query_one(&sql, &[&today]).map_err(err)?.get::<_, Option<String>>(0)
                } else if column.data_type.starts_with("date") || column.data_type.starts_with("timestamp") {
                    let sql = format!("SELECT to_char(max({c}), 'YYYY-MM-DD') FROM {qualified} WHERE {c} <= CAST($1::text AS date) + 1");
                    tx.query_one(&sql, &[&today]).map_err(err)?.get::<_, Option<String>>(0)
                } else {
                    None
                };
                if let Some(date) = latest {
                    if last_change.as_ref().is_none_or(|l| date > l.date) {
                        last_change = Some(LastChange { date, column: column.name.clone() });
                    }
                }
            }
            let mut table = Table::new(name.clone(), columns);
            table.description = row.get(2);
            table.primary_key = primary_key;
            table.foreign_keys = foreign_keys;
            table.row_count = row_count;
            table.last_change = last_change;
            catalog_tables.insert(name.to_lowercase(), table);
        }
        tx.commit().map_err(err)?;
        Ok(Catalog::from_tables(catalog_tables.into_values().collect())
            .on_engine(Engine::Postgres)
            .in_schema(&self.schema))
    }

    /// Runs a validated query in a read-only transaction until it ends, its deadline passes or
    /// `cancel` is raised; at most `row_cap` rows and `max_result_bytes` of cell data.
    pub(super) fn run(
        &self,
        query: &ValidatedQuery,
        limits: &ExecutionLimits,
        cancel: &Cancel,
    ) -> Result<ResultSet, ExecuteError> {
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let mut client = self
            .pool
            .get()
            .map_err(|e| ExecuteError::Connect { warehouse: self.url.to_string(), message: e.to_string() })?;
        let token = client.cancel_token();
        let watchdog = Watchdog::start(stop_when(cancel, deadline), move || {
            let _ = token.cancel_query(NoTls);
        });
        let result = self.read(&mut client, query, limits, started);
        watchdog.stop();
        result.map_err(|e| {
            let canceled = e.code() == Some(&SqlState::QUERY_CANCELED);
            if cancel.is_cancelled() {
                ExecuteError::Cancelled
            } else if canceled || Instant::now() > deadline {
                ExecuteError::Timeout(limits.timeout)
            } else if e.is_closed() || e.code().is_none() {
                ExecuteError::Connect { warehouse: self.url.to_string(), message: describe(&e) }
            } else {
                ExecuteError::Database(database_message(&e))
            }
        })
    }

    fn read(
        &self,
        client: &mut Client,
        query: &ValidatedQuery,
        limits: &ExecutionLimits,
        started: Instant,
    ) -> Result<ResultSet, postgres::Error> {
        let mut tx = client.build_transaction().read_only(true).start()?;
        let timeout_ms = limits.timeout.as_millis().clamp(1, i32::MAX as u128);
        // SET takes no parameters; both values are built here, the schema quoted.
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL search_path = {}",
            quote_ident(&self.schema)
        ))?;
        let statement = tx.prepare(query.sql())?;
        let columns: Vec<String> = statement.columns().iter().map(|c| c.name().to_string()).collect();
        let portal = tx.bind(&statement, &[])?;
        let wanted = i32::try_from(limits.row_cap.saturating_add(1)).unwrap_or(i32::MAX);
        let fetched = tx.query_portal(&portal, wanted)?;
        let mut rows = Rows::new(limits);
        for row in &fetched {
            if rows.full() {
                break;
            }
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let Cell(value) = row.try_get(i)?;
                values.push(value);
            }
            if !rows.push(values) {
                break;
            }
        }
        drop(portal);
        tx.rollback()?;
        Ok(rows.finish(columns, started))
    }
}

fn is_text(data_type: &str) -> bool {
    data_type == "text" || data_type.starts_with("character") || data_type.starts_with("varchar")
}

/// An error in words: the server's message, or the client's error with its cause.
pub(super) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The server's message, with its detail and hint where it gives them.
fn database_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_string();
            if let Some(hint) = db.hint() {
                message.push_str(&format!(" (hint: {hint})"));
            }
            message
        }
        None => e.to_string(),
    }
}

/// One value of a result as JSON, whatever its type: numbers as numbers, dates and times as
/// ISO text (as SQLite keeps them), anything else as its text or a placeholder.
struct Cell(Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let value = match *ty {
            Type::BOOL => Value::from(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::from(i16::from_sql(ty, raw)?),
            Type::INT4 => Value::from(i32::from_sql(ty, raw)?),
            Type::INT8 => Value::from(i64::from_sql(ty, raw)?),
            Type::OID => Value::from(u32::from_sql(ty, raw)?),
            Type::FLOAT4 => float(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => float(f64::from_sql(ty, raw)?),
            Type::NUMERIC => numeric(raw)?,
            Type::DATE => Value::from(chrono::NaiveDate::from_sql(ty, raw)?.format("%Y-%m-%d").to_string()),
            Type::TIMESTAMP => Value::from(
                chrono::NaiveDateTime::from_sql(ty, raw)?.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            ),
            Type::TIMESTAMPTZ => Value::from(
                chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?
                    .format("%Y-%m-%d %H:%M:%S%.f+00")
                    .to_string(),
            ),
            Type::TIME => {
                Value::from(chrono::NaiveTime::from_sql(ty, raw)?.format("%H:%M:%S%.f").to_string())
            }
            Type::INTERVAL => Value::from(interval(raw)?),
            Type::JSON | Type::JSONB => serde_json::Value::from_sql(ty, raw)?,
            _ if <String as FromSql>::accepts(ty) => Value::from(String::from_sql(ty, raw)?),
            _ => Value::from(format!("<{} value>", ty.name())),
        };
        Ok(Cell(value))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map(Value::Number).unwrap_or_else(|| Value::from(f.to_string()))
}

type DecodeError = Box<dyn std::error::Error + Sync + Send>;

fn read_i16(raw: &[u8], at: usize) -> Result<i16, DecodeError> {
    raw.get(at..at + 2)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "a NUMERIC value ended early".into())
}

/// NUMERIC in PostgreSQL's binary form (digit count, weight, sign, display scale, then base
/// 10,000 digits) as a JSON number: an integer when it has no fraction and fits, else the
/// nearest double, as SQLite would hold it; NaN and infinities as text.
fn numeric(raw: &[u8]) -> Result<Value, DecodeError> {
    let ndigits = read_i16(raw, 0)?.max(0) as usize;
    let weight = i32::from(read_i16(raw, 2)?);
    let sign = read_i16(raw, 4)? as u16;
    let scale = read_i16(raw, 6)?.max(0) as usize;
    match sign {
        0xC000 => return Ok(Value::from("NaN")),
        0xD000 => return Ok(Value::from("Infinity")),
        0xF000 => return Ok(Value::from("-Infinity")),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| read_i16(raw, 8 + 2 * i)).collect::<Result<_, _>>()?;
    // value = sum of digits[i] * 10000^(weight - i)
    let group = |index: i32| usize::try_from(index).ok().and_then(|i| digits.get(i)).copied().unwrap_or(0);
    let integer = if weight < 0 {
        "0".to_string()
    } else {
        let mut text = group(0).to_string();
        for index in 1..=weight {
            text.push_str(&format!("{:04}", group(index)));
        }
        text
    };
    let mut fraction = String::new();
    for k in 0..scale.div_ceil(4) {
        fraction.push_str(&format!("{:04}", group(weight + 1 + k as i32)));
    }
    fraction.truncate(scale);
    let negative = sign == 0x4000;
    let text = format!(
        "{}{}{}{}",
        if negative { "-" } else { "" },
        integer,
        if scale > 0 { "." } else { "" },
        fraction
    );
    if scale == 0 {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::from(i));
        }
    }
    Ok(text.parse::<f64>().map(float).unwrap_or(Value::from(text)))
}

/// INTERVAL's binary form (microseconds, days, months) as PostgreSQL prints it.
fn interval(raw: &[u8]) -> Result<String, DecodeError> {
    let [u0, u1, u2, u3, u4, u5, u6, u7, d0, d1, d2, d3, m0, m1, m2, m3] = raw else {
        return Err("an INTERVAL value is not 16 bytes".into());
    };
    let micros = i64::from_be_bytes([*u0, *u1, *u2, *u3, *u4, *u5, *u6, *u7]);
    let days = i32::from_be_bytes([*d0, *d1, *d2, *d3]);
    let months = i32::from_be_bytes([*m0, *m1, *m2, *m3]);
    let mut parts = Vec::new();
    let (years, months) = (months / 12, months % 12);
    for (n, unit) in [(years, "year"), (months, "mon"), (days, "day")] {
        if n != 0 {
            parts.push(format!("{n} {unit}{}", if n.abs() == 1 { "" } else { "s" }));
        }
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        let micros = micros.unsigned_abs();
        let (h, m, s, us) =
            (micros / 3_600_000_000, micros / 60_000_000 % 60, micros / 1_000_000 % 60, micros % 1_000_000);
        let fraction =
            if us > 0 { format!(".{us:06}").trim_end_matches('0').to_string() } else { String::new() };
        parts.push(format!("{sign}{h:02}:{m:02}:{s:02}{fraction}"));
    }
    Ok(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, scale: i16, digits: &[i16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for v in [ndigits, weight, sign as i16, scale] {
            raw.extend_from_slice(&v.to_be_bytes());
        }
        for d in digits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numeric_values_decode_as_postgres_prints_them() {
        let cases: &[(Vec<u8>, Value)] = &[
            (numeric_bytes(1, 0, 0, 0, &[42]), Value::from(42)),
            (numeric_bytes(2, 1, 0, 0, &[12, 3456]), Value::from(123456)),
            (numeric_bytes(2, 0, 0x4000, 2, &[12, 3400]), Value::from(-12.34)),
            (numeric_bytes(1, -1, 0, 4, &[5]), Value::from(0.0005)),
            (numeric_bytes(1, -2, 0, 8, &[7]), Value::from(0.00000007)),
            (numeric_bytes(0, 0, 0, 2, &[]), Value::from(0.0)),
            (numeric_bytes(0, 0, 0xC000, 0, &[]), Value::from("NaN")),
            (numeric_bytes(3, 0, 0, 8, &[1, 2345, 6789]), Value::from(1.23456789)),
        ];
        for (raw, want) in cases {
            assert_eq!(&numeric(raw).unwrap_or_else(|e| panic!("{e}")), want, "{raw:?}");
        }
        assert!(numeric(&[0, 1]).is_err(), "a cut value is an error, not a panic");
    }

    #[test]
    fn intervals_print_like_postgres() {
        let bytes = |micros: i64, days: i32, months: i32| {
            let mut raw = micros.to_be_bytes().to_vec();
            raw.extend_from_slice(&days.to_be_bytes());
            raw.extend_from_slice(&months.to_be_bytes());
            raw
        };
        let print = |raw: Vec<u8>| interval(&raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(print(bytes(0, 1, 0)), "1 day");
        assert_eq!(print(bytes(0, 3, 14)), "1 year 2 mons 3 days");
        assert_eq!(print(bytes(5_400_000_000, 0, 0)), "01:30:00");
        assert_eq!(print(bytes(0, 0, 0)), "00:00:00");
        assert!(interval(&[1, 2, 3]).is_err());
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        let url = PostgresUrl::parse("postgres://reader:s3cret@db.internal:5432/shop")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url.to_string(), "postgres://reader:***@db.internal:5432/shop");
        assert!(!format!("{url:?}").contains("s3cret"));
        let plain = PostgresUrl::parse("postgresql://localhost/shop").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.to_string(), "postgresql://localhost/shop");
        assert!(PostgresUrl::parse("warehouse.sqlite").is_err());
    }
}
