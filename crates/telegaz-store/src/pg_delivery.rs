//! PostgreSQL side of scheduled report deliveries.
//!
//! Several processes may run the delivery scheduler on one database: a
//! delivery is taken by a conditional `UPDATE ... RETURNING`, whose row lock
//! makes a concurrent claim wait and then see it taken (not due any more).

use std::str::FromStr;

use jiff::civil::Date;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use telegaz_domain::Timestamp;

use crate::pg_core::{begin, commit};
use crate::pg_time::PgTime;
use crate::postgres::PgDatabase;
use crate::{DeliveryFilter, DeliveryOutcome, DeliveryRecord, DeliveryState, Result, StoreError};

/// The gas day travels as ISO 8601 text (`$n::date` in, `to_char` out).
const COLUMNS: &str = "name, to_char(gas_day, 'YYYY-MM-DD') AS gas_day, state, attempts, due_at, next_attempt_at, last_attempt_at, \
     sent_at, last_error, created_at";

fn from_row(row: &PgRow) -> Result<DeliveryRecord> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("delivery row: {e}"));
    let day: String = row.try_get("gas_day").map_err(err)?;
    let state: String = row.try_get("state").map_err(err)?;
    Ok(DeliveryRecord {
        name: row.try_get("name").map_err(err)?,
        gas_day: day
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("delivery gas day {day:?}: {e}")))?,
        state: DeliveryState::from_str(&state).map_err(StoreError::Corrupt)?,
        attempts: u32::try_from(row.try_get::<i32, _>("attempts").map_err(err)?).unwrap_or(0),
        due_at: row.try_get::<PgTime, _>("due_at").map_err(err)?.0,
        next_attempt_at: row
            .try_get::<Option<PgTime>, _>("next_attempt_at")
            .map_err(err)?
            .map(|t| t.0),
        last_attempt_at: row
            .try_get::<Option<PgTime>, _>("last_attempt_at")
            .map_err(err)?
            .map(|t| t.0),
        sent_at: row
            .try_get::<Option<PgTime>, _>("sent_at")
            .map_err(err)?
            .map(|t| t.0),
        last_error: row.try_get("last_error").map_err(err)?,
        created_at: row.try_get::<PgTime, _>("created_at").map_err(err)?.0,
    })
}

/// Record a delivery as pending unless it is recorded; whether it was created.
async fn insert<'c, E>(executor: E, name: &str, day: Date, due_at: Timestamp) -> Result<bool>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    let done = sqlx::query(
        "INSERT INTO report_deliveries (name, gas_day, state, attempts, due_at, next_attempt_at, created_at) \
         VALUES ($1, $2::date, 'pending', 0, $3, $3, $4) ON CONFLICT (name, gas_day) DO NOTHING",
    )
    .bind(name)
    .bind(day.to_string())
    .bind(PgTime(due_at))
    .bind(PgTime(Timestamp::now()))
    .execute(executor)
    .await
    .map_err(StoreError::query("recording a due report delivery"))?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn ensure_delivery(
    db: &PgDatabase,
    name: &str,
    gas_day: Date,
    due_at: Timestamp,
) -> Result<bool> {
    insert(&db.pool, name, gas_day, due_at).await
}

pub(crate) async fn due_deliveries(
    db: &PgDatabase,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<DeliveryRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM report_deliveries WHERE state IN ('pending', 'sending') \
         AND next_attempt_at <= $1 ORDER BY gas_day, name LIMIT $2"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(PgTime(now))
        .bind(i64::from(limit))
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("reading due report deliveries"))?
        .iter()
        .map(from_row)
        .collect()
}

pub(crate) async fn claim_delivery(
    db: &PgDatabase,
    name: &str,
    gas_day: Date,
    now: Timestamp,
    lease_until: Timestamp,
    force: bool,
) -> Result<Option<DeliveryRecord>> {
    let mut tx = begin(db).await?;
    if force {
        insert(&mut *tx, name, gas_day, now).await?;
    }
    // Read committed: a claim that waited on the row lock re-checks the
    // condition against what the winner wrote, and takes nothing.
    let condition = if force {
        ""
    } else {
        " AND state IN ('pending', 'sending') AND next_attempt_at <= $4"
    };
    let sql = format!(
        "UPDATE report_deliveries SET state = 'sending', attempts = attempts + 1, \
         next_attempt_at = $3, last_attempt_at = $4 WHERE name = $1 AND gas_day = $2::date{condition} \
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .bind(gas_day.to_string())
        .bind(PgTime(lease_until))
        .bind(PgTime(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("taking a report delivery for an attempt"))?;
    let record = row.as_ref().map(from_row).transpose()?;
    commit(tx, "committing a report delivery attempt").await?;
    Ok(record)
}

pub(crate) async fn finish_delivery(
    db: &PgDatabase,
    name: &str,
    gas_day: Date,
    now: Timestamp,
    outcome: &DeliveryOutcome,
) -> Result<DeliveryRecord> {
    let (state, error, next, sent) = match outcome {
        DeliveryOutcome::Sent => (DeliveryState::Sent, None, None, Some(PgTime(now))),
        DeliveryOutcome::Retry { error, at } => (
            DeliveryState::Pending,
            Some(error.as_str()),
            Some(PgTime(*at)),
            None,
        ),
        DeliveryOutcome::Failed { error } => {
            (DeliveryState::Failed, Some(error.as_str()), None, None)
        }
    };
    let sql = format!(
        "UPDATE report_deliveries SET state = $1, last_error = COALESCE($2, last_error), \
         next_attempt_at = $3, sent_at = COALESCE($4, sent_at) WHERE name = $5 AND gas_day = $6::date \
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(state.as_str())
        .bind(error)
        .bind(next)
        .bind(sent)
        .bind(name)
        .bind(gas_day.to_string())
        .fetch_optional(&db.pool)
        .await
        .map_err(StoreError::query("recording a report delivery outcome"))?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("delivery {name} of gas day {gas_day}"),
        })?;
    from_row(&row)
}

pub(crate) async fn delivery(
    db: &PgDatabase,
    name: &str,
    gas_day: Date,
) -> Result<Option<DeliveryRecord>> {
    let sql =
        format!("SELECT {COLUMNS} FROM report_deliveries WHERE name = $1 AND gas_day = $2::date");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .bind(gas_day.to_string())
        .fetch_optional(&db.pool)
        .await
        .map_err(StoreError::query("reading a report delivery"))?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub(crate) async fn list_deliveries(
    db: &PgDatabase,
    f: &DeliveryFilter,
) -> Result<Vec<DeliveryRecord>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM report_deliveries WHERE TRUE"
    ));
    if let Some(name) = &f.name {
        q.push(" AND name = ").push_bind(name.clone());
    }
    if let Some(state) = f.state {
        q.push(" AND state = ").push_bind(state.as_str());
    }
    if let Some(since) = f.since {
        q.push(" AND gas_day >= ")
            .push_bind(since.to_string())
            .push("::date");
    }
    q.push(" ORDER BY gas_day DESC, name LIMIT ")
        .push_bind(f.limit.map(i64::from));
    q.build()
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("listing report deliveries"))?
        .iter()
        .map(from_row)
        .collect()
}
