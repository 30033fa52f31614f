//! SQLite side of scheduled report deliveries.

use std::str::FromStr;

use jiff::civil::Date;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use telegaz_domain::Timestamp;

use crate::time::{from_text, to_text};
use crate::{DeliveryFilter, DeliveryOutcome, DeliveryRecord, DeliveryState, Result, StoreError};

type Tx = crate::sqlite::WriteTx;

const COLUMNS: &str = "name, gas_day, state, attempts, due_at, next_attempt_at, last_attempt_at, \
     sent_at, last_error, created_at";

fn day_text(d: Date) -> String {
    d.strftime("%Y-%m-%d").to_string()
}

fn from_row(row: &SqliteRow) -> Result<DeliveryRecord> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("delivery row: {e}"));
    let opt_time = |col: &str| crate::time::opt_time(row, col, "delivery");
    let day: String = row.try_get("gas_day").map_err(err)?;
    let state: String = row.try_get("state").map_err(err)?;
    let due: String = row.try_get("due_at").map_err(err)?;
    let created: String = row.try_get("created_at").map_err(err)?;
    Ok(DeliveryRecord {
        name: row.try_get("name").map_err(err)?,
        gas_day: day
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("delivery gas day {day:?}: {e}")))?,
        state: DeliveryState::from_str(&state).map_err(StoreError::Corrupt)?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(err)?).unwrap_or(0),
        due_at: from_text(&due)?,
        next_attempt_at: opt_time("next_attempt_at")?,
        last_attempt_at: opt_time("last_attempt_at")?,
        sent_at: opt_time("sent_at")?,
        last_error: row.try_get("last_error").map_err(err)?,
        created_at: from_text(&created)?,
    })
}

async fn insert(tx: &mut Tx, name: &str, day: Date, due_at: Timestamp, now: &str) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO report_deliveries (name, gas_day, state, attempts, due_at, next_attempt_at, created_at) \
         VALUES (?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT (name, gas_day) DO NOTHING",
    )
    .bind(name)
    .bind(day_text(day))
    .bind(to_text(due_at))
    .bind(to_text(due_at))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("recording a due report delivery"))?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn ensure(
    mut tx: Tx,
    name: &str,
    day: Date,
    due_at: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    let created = insert(&mut tx, name, day, due_at, &to_text(now)).await?;
    tx.commit()
        .await
        .map_err(StoreError::query("committing a report delivery"))?;
    Ok(created)
}

pub(crate) async fn due(
    pool: &SqlitePool,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<DeliveryRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM report_deliveries WHERE state IN ('pending', 'sending') \
         AND next_attempt_at <= ? ORDER BY gas_day, name LIMIT ?"
    )))
    .bind(to_text(now))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading due report deliveries"))?
    .iter()
    .map(from_row)
    .collect()
}

pub(crate) async fn claim(
    mut tx: Tx,
    name: &str,
    day: Date,
    now: Timestamp,
    lease_until: Timestamp,
    force: bool,
) -> Result<Option<DeliveryRecord>> {
    let now_text = to_text(now);
    if force {
        insert(&mut tx, name, day, now, &now_text).await?;
    }
    let condition = if force {
        ""
    } else {
        " AND state IN ('pending', 'sending') AND next_attempt_at <= ?4"
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE report_deliveries SET state = 'sending', attempts = attempts + 1, \
         next_attempt_at = ?3, last_attempt_at = ?4 WHERE name = ?1 AND gas_day = ?2{condition} \
         RETURNING {COLUMNS}"
    )))
    .bind(name)
    .bind(day_text(day))
    .bind(to_text(lease_until))
    .bind(&now_text)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::query("taking a report delivery for an attempt"))?;
    let record = row.as_ref().map(from_row).transpose()?;
    tx.commit()
        .await
        .map_err(StoreError::query("committing a report delivery attempt"))?;
    Ok(record)
}

pub(crate) async fn finish(
    pool: &SqlitePool,
    name: &str,
    day: Date,
    now: Timestamp,
    outcome: &DeliveryOutcome,
) -> Result<DeliveryRecord> {
    let now = to_text(now);
    let (state, error, next, sent) = match outcome {
        DeliveryOutcome::Sent => (DeliveryState::Sent, None, None, Some(now.as_str())),
        DeliveryOutcome::Retry { error, at } => (
            DeliveryState::Pending,
            Some(error.as_str()),
            Some(to_text(*at)),
            None,
        ),
        DeliveryOutcome::Failed { error } => {
            (DeliveryState::Failed, Some(error.as_str()), None, None)
        }
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE report_deliveries SET state = ?, last_error = COALESCE(?, last_error), \
         next_attempt_at = ?, sent_at = COALESCE(?, sent_at) WHERE name = ? AND gas_day = ? \
         RETURNING {COLUMNS}"
    )))
    .bind(state.as_str())
    .bind(error)
    .bind(next)
    .bind(sent)
    .bind(name)
    .bind(day_text(day))
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("recording a report delivery outcome"))?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("delivery {name} of gas day {}", day_text(day)),
    })?;
    from_row(&row)
}

pub(crate) async fn get(
    pool: &SqlitePool,
    name: &str,
    day: Date,
) -> Result<Option<DeliveryRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM report_deliveries WHERE name = ? AND gas_day = ?"
    )))
    .bind(name)
    .bind(day_text(day))
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("reading a report delivery"))?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(crate) async fn list(pool: &SqlitePool, f: &DeliveryFilter) -> Result<Vec<DeliveryRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM report_deliveries WHERE (?1 IS NULL OR name = ?1) \
         AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR gas_day >= ?3) \
         ORDER BY gas_day DESC, name LIMIT ?4"
    )))
    .bind(f.name.as_deref())
    .bind(f.state.map(DeliveryState::as_str))
    .bind(f.since.map(day_text))
    .bind(f.limit.map_or(-1, i64::from))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("listing report deliveries"))?
    .iter()
    .map(from_row)
    .collect()
}
