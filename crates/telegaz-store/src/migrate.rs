//! Moving an installation between databases (`telegaz migrate-db`): SQLite to
//! PostgreSQL, PostgreSQL to SQLite, or either to a fresh one of its kind.
//!
//! Works at SQL level on both pools: every table is copied in dependency
//! order, keeping its ids, in batches, inside one transaction on the target
//! (so a failed copy leaves the target empty); PostgreSQL identity sequences
//! are then moved past the largest ids. [`verify`] reads every table back
//! from both sides through sqlx, ordered by its key, and computes a row count
//! and a SHA-256 over a canonical rendering of each row (the same on both
//! backends: instants to the microsecond, local times, dates, JSON with
//! sorted keys, lists), so that the two sides can be compared.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Sqlite, SqlitePool};

use crate::pg_time::{PgLocal, PgTime};
use crate::{Result, StoreError};

/// How a column is stored on each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// INTEGER / SMALLINT, INTEGER, BIGINT.
    Int,
    Text,
    /// BLOB / BYTEA.
    Bytes,
    /// INTEGER 0 or 1 / BOOLEAN.
    Bool,
    /// Fixed-width UTC text / TIMESTAMPTZ.
    Time,
    /// `2026-01-14T11:00:00` text / TIMESTAMP (a device's wall clock).
    Local,
    /// `2026-01-14` text / DATE.
    Date,
    /// JSON text / JSONB.
    Json,
    /// Comma-separated text / TEXT[].
    Csv,
    /// JSON array text / TEXT[].
    JsonList,
}

struct Table {
    name: &'static str,
    /// Columns of the key the rows are read in the order of.
    key: &'static [&'static str],
    columns: &'static [(&'static str, Ty)],
    /// Whether `id` is an identity column on PostgreSQL.
    identity: bool,
}

use Ty::{Bool, Bytes, Csv, Int, Json, JsonList, Local, Text, Time};

/// Every table, referenced tables first. PostgreSQL's `newest_readings` is
/// not here: its trigger fills it from the readings copied in.
const TABLES: &[Table] = &[
    Table {
        name: "devices",
        key: &["id"],
        identity: true,
        columns: &[
            ("id", Int),
            ("name", Text),
            ("login", Text),
            ("password_hash", Text),
            ("enabled", Bool),
            ("allowed_networks", Csv),
            ("time_zone", Text),
            ("contract_hour", Int),
            ("title", Text),
            ("tls_required", Bool),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    },
    Table {
        name: "uploads",
        key: &["id"],
        identity: true,
        columns: &[
            ("id", Int),
            ("device_id", Int),
            ("original_name", Text),
            ("original_name_raw", Bytes),
            ("path", Text),
            ("final_path", Text),
            ("mode", Text),
            ("size", Int),
            ("sha256", Text),
            ("status", Text),
            ("reason", Text),
            ("duplicate_of", Int),
            ("resumed_from", Int),
            ("resume_offset", Int),
            ("peer", Text),
            ("session", Text),
            ("started_at", Time),
            ("received_at", Time),
            ("deleted_by_device", Bool),
            ("receiver", Text),
        ],
    },
    Table {
        name: "device_dirs",
        key: &["device_id", "parent", "name"],
        identity: false,
        columns: &[
            ("device_id", Int),
            ("parent", Text),
            ("name", Text),
            ("created_at", Time),
        ],
    },
    Table {
        name: "device_files",
        key: &["device_id", "parent", "name"],
        identity: false,
        columns: &[
            ("device_id", Int),
            ("parent", Text),
            ("name", Text),
            ("upload_id", Int),
            ("updated_at", Time),
        ],
    },
    Table {
        name: "audit",
        key: &["id"],
        identity: true,
        columns: &[
            ("id", Int),
            ("at", Time),
            ("kind", Text),
            ("session", Text),
            ("peer", Text),
            ("device_id", Int),
            ("login", Text),
            ("upload_id", Int),
            ("outcome", Text),
            ("detail", Text),
        ],
    },
    Table {
        name: "ingest",
        key: &["upload_id"],
        identity: false,
        columns: &[
            ("upload_id", Int),
            ("state", Text),
            ("attempts", Int),
            ("format", Text),
            ("reason", Text),
            ("truncated", Bool),
            ("records_total", Int),
            ("records_new", Int),
            ("records_duplicate", Int),
            ("records_conflicting", Int),
            ("events_total", Int),
            ("model", Text),
            ("serial", Text),
            ("queued_at", Time),
            ("finished_at", Time),
        ],
    },
    Table {
        name: "readings",
        key: &["device_id", "kind", "local_time", "record_no"],
        identity: false,
        columns: &[
            ("device_id", Int),
            ("kind", Text),
            ("local_time", Local),
            ("record_no", Int),
            ("utc_offset", Int),
            ("quantities", Json),
            ("status", Json),
            ("event_code", Int),
            ("checked", Json),
            ("upload_id", Int),
            ("line", Int),
        ],
    },
    Table {
        name: "reading_conflicts",
        key: &["id"],
        identity: true,
        columns: &[
            ("id", Int),
            ("device_id", Int),
            ("kind", Text),
            ("local_time", Local),
            ("record_no", Int),
            ("utc_offset", Int),
            ("quantities", Json),
            ("status", Json),
            ("event_code", Int),
            ("checked", Json),
            ("upload_id", Int),
            ("line", Int),
            ("recorded_at", Time),
        ],
    },
    Table {
        name: "events",
        key: &["device_id", "local_time", "record_no", "code"],
        identity: false,
        columns: &[
            ("device_id", Int),
            ("local_time", Local),
            ("record_no", Int),
            ("code", Int),
            ("utc_offset", Int),
            ("checked", Json),
            ("upload_id", Int),
            ("line", Int),
        ],
    },
    Table {
        name: "report_deliveries",
        key: &["name", "gas_day"],
        identity: false,
        columns: &[
            ("name", Text),
            ("gas_day", Ty::Date),
            ("state", Text),
            ("attempts", Int),
            ("due_at", Time),
            ("next_attempt_at", Time),
            ("last_attempt_at", Time),
            ("sent_at", Time),
            ("last_error", Text),
            ("created_at", Time),
        ],
    },
    Table {
        name: "users",
        key: &["id"],
        identity: true,
        columns: &[
            ("id", Int),
            ("name", Text),
            ("password_hash", Text),
            ("role", Text),
            ("enabled", Bool),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    },
    Table {
        name: "web_sessions",
        key: &["token_sha256"],
        identity: false,
        columns: &[
            ("token_sha256", Text),
            ("user_id", Int),
            ("csrf_token", Text),
            ("created_at", Time),
            ("expires_at", Time),
        ],
    },
    Table {
        name: "api_tokens",
        key: &["id"],
        identity: true,
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("name", Text),
            ("token_sha256", Text),
            ("created_at", Time),
            ("last_used_at", Time),
            ("revoked_at", Time),
        ],
    },
    Table {
        name: "alerts",
        key: &["id"],
        identity: true,
        columns: &[
            ("id", Int),
            ("key", Text),
            ("kind", Text),
            ("severity", Text),
            ("device_id", Int),
            ("title", Text),
            ("detail", Text),
            ("state", Text),
            ("opened_at", Time),
            ("acknowledged_at", Time),
            ("acknowledged_by", Text),
            ("resolved_at", Time),
        ],
    },
    Table {
        name: "notifications",
        key: &["id"],
        identity: true,
        columns: &[
            ("id", Int),
            ("event", Text),
            ("alert_id", Int),
            ("kind", Text),
            ("severity", Text),
            ("device", Text),
            ("title", Text),
            ("text", Text),
            ("at", Time),
            ("devices", JsonList),
            ("created_at", Time),
        ],
    },
    Table {
        name: "notification_sends",
        key: &["notification_id", "notifier"],
        identity: false,
        columns: &[
            ("notification_id", Int),
            ("notifier", Text),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Time),
            ("last_error", Text),
            ("sent_at", Time),
        ],
    },
    // --- bans (abuse resistance) ---
    Table {
        name: "bans",
        key: &["id"],
        identity: true,
        columns: &[
            ("id", Int),
            ("address", Text),
            ("login", Text),
            ("reason", Text),
            ("created_by", Text),
            ("created_at", Time),
            ("expires_at", Time),
            ("repeat", Int),
            ("lifted_at", Time),
            ("lifted_by", Text),
        ],
    },
    // --- end bans ---
];

/// Rows per INSERT (well below both backends' limits on bound parameters).
const BATCH: usize = 500;

/// One value of a row, the same whichever backend it was read from.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
    Time(Timestamp),
    Local(DateTime),
    Date(Date),
    Json(serde_json::Value),
    List(Vec<String>),
}

/// An open database, at SQL level.
enum Side {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

impl Side {
    async fn open(url: &str) -> Result<Side> {
        Ok(
            match crate::open_backend(url, &crate::StoreOptions::default()).await? {
                crate::Backend::Sqlite(db) => Side::Sqlite(db.pool().clone()),
                crate::Backend::Pg(db) => Side::Pg(db.pool.clone()),
            },
        )
    }

    fn kind(&self) -> &'static str {
        match self {
            Side::Sqlite(_) => "SQLite",
            Side::Pg(_) => "PostgreSQL",
        }
    }

    async fn count(&self, table: &Table) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name);
        let n: i64 = match self {
            Side::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await
                .map_err(StoreError::query("counting rows"))?,
            Side::Pg(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await
                .map_err(StoreError::query("counting rows"))?,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The SELECT that reads a table in key order, in a form both sides decode alike.
    fn select(&self, table: &Table) -> String {
        let pg = matches!(self, Side::Pg(_));
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|(name, ty)| match (pg, ty) {
                (true, Int) => format!("{name}::BIGINT"),
                (true, Json) => format!("{name}::TEXT"),
                (true, Ty::Date) => format!("to_char({name}, 'YYYY-MM-DD')"),
                _ => (*name).to_owned(),
            })
            .collect();
        let key: Vec<String> = table
            .key
            .iter()
            .map(|k| {
                let text = table
                    .columns
                    .iter()
                    .any(|(name, ty)| name == k && *ty == Text);
                if pg && text {
                    // Bytewise, as SQLite orders text.
                    format!("{k} COLLATE \"C\"")
                } else {
                    (*k).to_owned()
                }
            })
            .collect();
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            table.name,
            key.join(", ")
        )
    }
}

/// The row count and checksum of one table on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSum {
    pub rows: u64,
    /// SHA-256 (hex) over the canonical rendering of every row, in key order.
    pub sha256: String,
}

/// One table compared on both sides.
#[derive(Debug, Clone)]
pub struct TableCheck {
    pub table: &'static str,
    pub source: TableSum,
    pub target: TableSum,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source == self.target
    }
}

/// What [`migrate`] and [`verify`] report as they go (a progress bar, say).
pub trait Progress: Send {
    /// Copying `table` starts; it has `rows` rows.
    fn table(&mut self, _table: &str, _rows: u64) {}
    /// `rows` more rows of the current table are copied.
    fn rows(&mut self, _rows: u64) {}
    /// Checking `table` starts.
    fn verifying(&mut self, _table: &str) {}
}

/// Reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Copy every table of the database `from` names into the empty database
/// `to` names (both are opened, and their schemas brought up to date, as
/// [`crate::connect`] does), then compare the two with [`verify`]. The
/// source should not be written to meanwhile (stop `telegaz serve`).
pub async fn migrate(from: &str, to: &str, progress: &mut dyn Progress) -> Result<Vec<TableCheck>> {
    if from == to {
        return Err(StoreError::Conflict(
            "--from and --to name the same database; name a new, empty database as --to".into(),
        ));
    }
    let source = Side::open(from).await?;
    let target = Side::open(to).await?;
    for table in TABLES {
        let rows = target.count(table).await?;
        if rows > 0 {
            return Err(StoreError::Conflict(format!(
                "the target database {} ({}) is not empty: its table {} holds {rows} rows. \
                 migrate-db only fills an empty database; create a new one (createdb, or a \
                 new file name) and name it as --to",
                crate::redact_url(to),
                target.kind(),
                table.name
            )));
        }
    }
    match &target {
        Side::Sqlite(pool) => {
            let mut tx = pool
                .begin_with(crate::sqlite::BEGIN_WRITE)
                .await
                .map_err(StoreError::query("starting the copy"))?;
            for table in TABLES {
                progress.table(table.name, source.count(table).await?);
                copy_table(&source, table, progress, &mut Sink::Sqlite(&mut tx)).await?;
            }
            tx.commit()
                .await
                .map_err(StoreError::query("committing the copy"))?;
        }
        Side::Pg(pool) => {
            let mut tx = pool
                .begin()
                .await
                .map_err(StoreError::query("starting the copy"))?;
            for table in TABLES {
                progress.table(table.name, source.count(table).await?);
                copy_table(&source, table, progress, &mut Sink::Pg(&mut tx)).await?;
            }
            for table in TABLES.iter().filter(|t| t.identity) {
                // The next id a new row gets is past every copied one.
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', 'id'), \
                     COALESCE((SELECT max(id) FROM {0}), 0) + 1, false)",
                    table.name
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("moving an identity sequence"))?;
            }
            tx.commit()
                .await
                .map_err(StoreError::query("committing the copy"))?;
        }
    }
    compare(&source, &target, progress).await
}

/// Compare two databases table by table (row counts and checksums).
pub async fn verify(a: &str, b: &str, progress: &mut dyn Progress) -> Result<Vec<TableCheck>> {
    let a = Side::open(a).await?;
    let b = Side::open(b).await?;
    compare(&a, &b, progress).await
}

async fn compare(
    source: &Side,
    target: &Side,
    progress: &mut dyn Progress,
) -> Result<Vec<TableCheck>> {
    let mut checks = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        progress.verifying(table.name);
        checks.push(TableCheck {
            table: table.name,
            source: checksum(source, table).await?,
            target: checksum(target, table).await?,
        });
    }
    Ok(checks)
}

/// The target's transaction.
enum Sink<'a> {
    Sqlite(&'a mut sqlx::Transaction<'static, Sqlite>),
    Pg(&'a mut sqlx::Transaction<'static, Postgres>),
}

impl Sink<'_> {
    async fn write(&mut self, table: &Table, rows: Vec<Vec<Value>>) -> Result<()> {
        match self {
            Sink::Sqlite(tx) => insert_sqlite(tx, table, rows).await,
            Sink::Pg(tx) => insert_pg(tx, table, rows).await,
        }
    }
}

/// Stream a table in key order, handing rows to `write` in batches.
async fn copy_table(
    source: &Side,
    table: &Table,
    progress: &mut dyn Progress,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let mut batch = Vec::with_capacity(BATCH);
    let mut rows = values(source, table, "reading rows to copy");
    while let Some(row) = rows.try_next().await? {
        batch.push(row);
        if batch.len() == BATCH {
            let n = batch.len() as u64;
            sink.write(table, std::mem::take(&mut batch)).await?;
            progress.rows(n);
        }
    }
    if !batch.is_empty() {
        let n = batch.len() as u64;
        sink.write(table, batch).await?;
        progress.rows(n);
    }
    Ok(())
}

/// A table's rows in key order, decoded alike from either backend.
fn values<'a>(
    side: &'a Side,
    table: &'a Table,
    context: &'static str,
) -> BoxStream<'a, Result<Vec<Value>>> {
    let sql = sqlx::AssertSqlSafe(side.select(table));
    match side {
        Side::Sqlite(pool) => sqlx::query(sql)
            .fetch(pool)
            .map_err(move |source| StoreError::Query { context, source })
            .and_then(move |row| std::future::ready(sqlite_values(table, &row)))
            .boxed(),
        Side::Pg(pool) => sqlx::query(sql)
            .fetch(pool)
            .map_err(move |source| StoreError::Query { context, source })
            .and_then(move |row| std::future::ready(pg_values(table, &row)))
            .boxed(),
    }
}

async fn checksum(side: &Side, table: &Table) -> Result<TableSum> {
    let mut hash = Sha256::new();
    let mut count = 0u64;
    let mut buf = Vec::new();
    let mut add = |values: Vec<Value>| {
        buf.clear();
        for v in &values {
            canonical(v, &mut buf);
        }
        hash.update((buf.len() as u64).to_be_bytes());
        hash.update(&buf);
        count += 1;
    };
    let mut rows = values(side, table, "reading rows to verify");
    while let Some(row) = rows.try_next().await? {
        add(row);
    }
    drop(rows);
    let digest = hash.finalize();
    Ok(TableSum {
        rows: count,
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// A value as bytes: a tag, then a length-prefixed rendering.
fn canonical(v: &Value, out: &mut Vec<u8>) {
    let (tag, body): (u8, Vec<u8>) = match v {
        Value::Null => (0, Vec::new()),
        Value::Int(i) => (1, i.to_be_bytes().to_vec()),
        Value::Text(s) => (2, s.as_bytes().to_vec()),
        Value::Bytes(b) => (3, b.clone()),
        Value::Bool(b) => (4, vec![u8::from(*b)]),
        Value::Time(t) => (5, t.as_microsecond().to_be_bytes().to_vec()),
        Value::Local(t) => (6, crate::sqlite_ingest::local_text(*t).into_bytes()),
        Value::Date(d) => (7, d.to_string().into_bytes()),
        Value::Json(j) => {
            let mut s = String::new();
            canonical_json(j, &mut s);
            (8, s.into_bytes())
        }
        Value::List(items) => {
            let mut b = Vec::new();
            for item in items {
                b.extend_from_slice(&(item.len() as u64).to_be_bytes());
                b.extend_from_slice(item.as_bytes());
            }
            (9, b)
        }
    };
    out.push(tag);
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&body);
}

/// JSON with object keys sorted, without spaces (JSONB reorders keys).
fn canonical_json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(*k) {
                    canonical_json(item, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn corrupt(table: &Table, column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{}.{column}: {e}", table.name))
}

fn parse_json(table: &Table, column: &str, s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| corrupt(table, column, e))
}

fn parse_local(table: &Table, column: &str, s: &str) -> Result<DateTime> {
    s.parse::<DateTime>().map_err(|e| corrupt(table, column, e))
}

fn parse_date(table: &Table, column: &str, s: &str) -> Result<Date> {
    s.parse::<Date>().map_err(|e| corrupt(table, column, e))
}

fn sqlite_values(table: &Table, row: &SqliteRow) -> Result<Vec<Value>> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (i, (name, ty)) in table.columns.iter().enumerate() {
        let err = |e: sqlx::Error| corrupt(table, name, e);
        let v = match ty {
            Int => row
                .try_get::<Option<i64>, _>(i)
                .map_err(err)?
                .map(Value::Int),
            Bool => row
                .try_get::<Option<i64>, _>(i)
                .map_err(err)?
                .map(|b| Value::Bool(b != 0)),
            Bytes => row
                .try_get::<Option<Vec<u8>>, _>(i)
                .map_err(err)?
                .map(Value::Bytes),
            _ => match row.try_get::<Option<String>, _>(i).map_err(err)? {
                None => None,
                Some(s) => Some(match ty {
                    Time => Value::Time(crate::time::from_text(&s)?),
                    Local => Value::Local(parse_local(table, name, &s)?),
                    Ty::Date => Value::Date(parse_date(table, name, &s)?),
                    Json => Value::Json(parse_json(table, name, &s)?),
                    Csv => Value::List(
                        s.split(',')
                            .filter(|p| !p.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    ),
                    JsonList => {
                        Value::List(serde_json::from_str(&s).map_err(|e| corrupt(table, name, e))?)
                    }
                    _ => Value::Text(s),
                }),
            },
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(values)
}

fn pg_values(table: &Table, row: &PgRow) -> Result<Vec<Value>> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (i, (name, ty)) in table.columns.iter().enumerate() {
        let err = |e: sqlx::Error| corrupt(table, name, e);
        let v = match ty {
            Int => row
                .try_get::<Option<i64>, _>(i)
                .map_err(err)?
                .map(Value::Int),
            Bool => row
                .try_get::<Option<bool>, _>(i)
                .map_err(err)?
                .map(Value::Bool),
            Bytes => row
                .try_get::<Option<Vec<u8>>, _>(i)
                .map_err(err)?
                .map(Value::Bytes),
            Time => row
                .try_get::<Option<PgTime>, _>(i)
                .map_err(err)?
                .map(|t| Value::Time(t.0)),
            Local => row
                .try_get::<Option<PgLocal>, _>(i)
                .map_err(err)?
                .map(|t| Value::Local(t.0)),
            Csv | JsonList => row
                .try_get::<Option<Vec<String>>, _>(i)
                .map_err(err)?
                .map(Value::List),
            Text | Ty::Date | Json => match row.try_get::<Option<String>, _>(i).map_err(err)? {
                None => None,
                Some(s) => Some(match ty {
                    Ty::Date => Value::Date(parse_date(table, name, &s)?),
                    Json => Value::Json(parse_json(table, name, &s)?),
                    _ => Value::Text(s),
                }),
            },
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(values)
}

fn insert_head(table: &Table) -> String {
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    format!("INSERT INTO {} ({}) ", table.name, names.join(", "))
}

async fn insert_sqlite(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    table: &Table,
    rows: Vec<Vec<Value>>,
) -> Result<()> {
    let mut q = QueryBuilder::<Sqlite>::new(insert_head(table));
    let mut bad = None;
    q.push_values(rows, |mut b, row| {
        for ((_, ty), v) in table.columns.iter().zip(row) {
            match (ty, v) {
                (Int, Value::Int(i)) => b.push_bind(i),
                (Bool, Value::Bool(x)) => b.push_bind(i64::from(x)),
                (Bytes, Value::Bytes(x)) => b.push_bind(x),
                (Text, Value::Text(s)) => b.push_bind(s),
                (Time, Value::Time(t)) => b.push_bind(crate::time::to_text(t)),
                (Local, Value::Local(t)) => b.push_bind(crate::sqlite_ingest::local_text(t)),
                (Ty::Date, Value::Date(d)) => b.push_bind(d.to_string()),
                (Json, Value::Json(j)) => b.push_bind(j.to_string()),
                (Csv, Value::List(items)) => b.push_bind(items.join(",")),
                (JsonList, Value::List(items)) => {
                    b.push_bind(serde_json::Value::from(items).to_string())
                }
                (_, Value::Null) => b.push_bind(None::<String>),
                (ty, v) => {
                    bad = Some(format!("{ty:?} column holds {v:?}"));
                    b.push_bind(None::<String>)
                }
            };
        }
    });
    if let Some(bad) = bad {
        return Err(StoreError::Corrupt(format!("{}: {bad}", table.name)));
    }
    q.build()
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("writing copied rows"))?;
    Ok(())
}

async fn insert_pg(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    table: &Table,
    rows: Vec<Vec<Value>>,
) -> Result<()> {
    let mut q = QueryBuilder::<Postgres>::new(insert_head(table));
    let mut bad = None;
    q.push_values(rows, |mut b, row| {
        for ((_, ty), v) in table.columns.iter().zip(row) {
            match (ty, v) {
                (Int, Value::Int(i)) => b.push_bind(i),
                (Int, Value::Null) => b.push_bind(None::<i64>),
                (Bool, Value::Bool(x)) => b.push_bind(x),
                (Bool, Value::Null) => b.push_bind(None::<bool>),
                (Bytes, Value::Bytes(x)) => b.push_bind(x),
                (Bytes, Value::Null) => b.push_bind(None::<Vec<u8>>),
                (Text, Value::Text(s)) => b.push_bind(s),
                (Time, Value::Time(t)) => b.push_bind(PgTime(t)),
                (Time, Value::Null) => b.push_bind(None::<PgTime>),
                (Local, Value::Local(t)) => b.push_bind(PgLocal(t)),
                (Local, Value::Null) => b.push_bind(None::<PgLocal>),
                (Ty::Date, Value::Date(d)) => b.push_bind(d.to_string()).push_unseparated("::DATE"),
                (Ty::Date, Value::Null) => b.push_bind(None::<String>).push_unseparated("::DATE"),
                (Json, Value::Json(j)) => b.push_bind(j.to_string()).push_unseparated("::JSONB"),
                (Json, Value::Null) => b.push_bind(None::<String>).push_unseparated("::JSONB"),
                (Csv | JsonList, Value::List(items)) => b.push_bind(items),
                (Csv | JsonList, Value::Null) => b.push_bind(None::<Vec<String>>),
                (_, Value::Null) => b.push_bind(None::<String>),
                (ty, v) => {
                    bad = Some(format!("{ty:?} column holds {v:?}"));
                    b.push_bind(None::<String>)
                }
            };
        }
    });
    if let Some(bad) = bad {
        return Err(StoreError::Corrupt(format!("{}: {bad}", table.name)));
    }
    q.build()
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("writing copied rows"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_canonical_whatever_the_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": "1.50", "a": [1, {"y": 2, "x": null}]}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":[1,{"x":null,"y":2}],"b":"1.50"}"#).unwrap();
        let (mut sa, mut sb) = (String::new(), String::new());
        canonical_json(&a, &mut sa);
        canonical_json(&b, &mut sb);
        assert_eq!(sa, sb);
        assert_eq!(sa, r#"{"a":[1,{"x":null,"y":2}],"b":"1.50"}"#);
    }

    #[test]
    fn values_of_different_types_render_differently() {
        let render = |v: &Value| {
            let mut out = Vec::new();
            canonical(v, &mut out);
            out
        };
        assert_ne!(render(&Value::Null), render(&Value::Text(String::new())));
        assert_ne!(render(&Value::Int(1)), render(&Value::Bool(true)));
        assert_ne!(
            render(&Value::List(vec!["a,b".into()])),
            render(&Value::List(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn every_table_keys_on_its_own_columns() {
        for t in TABLES {
            for k in t.key {
                assert!(t.columns.iter().any(|(n, _)| n == k), "{}.{k}", t.name);
            }
            assert_eq!(
                t.identity,
                t.columns.first().map(|c| c.0) == Some("id") && t.key == ["id"]
            );
        }
    }

    // ---- begin storebench: migrate-db copies every column (issue #4) ----
    /// Columns of the current schema that `migrate-db` deliberately does not
    /// copy, with the reason. A column missing from `TABLES` and from here
    /// fails `every_column_of_the_schema_is_copied`.
    const NOT_COPIED: &[(&str, &str, &str)] = &[(
        "ingest",
        "claimed_until",
        "a claim is held by a live worker of the source installation; in the target nobody holds it",
    )];

    /// Every column of every table of the current SQLite schema (migrations
    /// applied, read back with `pragma table_info`) is in `TABLES` or
    /// listed in `NOT_COPIED`, and every table is copied: a column added by
    /// a future migration cannot be forgotten by `telegaz migrate-db`.
    #[tokio::test]
    async fn every_column_of_the_schema_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::SqliteDatabase::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        let pool = db.pool();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(tables.len() >= TABLES.len(), "{tables:?}");
        let mut missing = Vec::new();
        for table in &tables {
            let copied = TABLES.iter().find(|t| t.name == table);
            let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            )))
            .fetch_all(pool)
            .await
            .unwrap();
            assert!(!columns.is_empty(), "{table}");
            for column in &columns {
                let in_tables = copied.is_some_and(|t| t.columns.iter().any(|(n, _)| n == column));
                let excused = NOT_COPIED.iter().any(|(t, c, _)| t == table && c == column);
                if !in_tables && !excused {
                    missing.push(format!("{table}.{column}"));
                }
            }
            // Nothing listed that the schema does not have.
            for (name, _) in copied.map(|t| t.columns).unwrap_or_default() {
                assert!(
                    columns.iter().any(|c| c == name),
                    "{table}.{name} is not in the schema"
                );
            }
        }
        assert!(
            missing.is_empty(),
            "telegaz migrate-db does not copy {missing:?}: add each to its table in `TABLES` \
             (crates/telegaz-store/src/migrate.rs), or to `NOT_COPIED` with the reason"
        );
        for (table, column, _) in NOT_COPIED {
            assert!(tables.iter().any(|t| t == table), "{table}");
            assert!(
                !TABLES
                    .iter()
                    .any(|t| t.name == *table && t.columns.iter().any(|(n, _)| n == column)),
                "{table}.{column} is both copied and excused"
            );
        }
    }
    // ---- end storebench ----
}
