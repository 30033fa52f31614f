//! PostgreSQL side of the ban list (shared by every receiver on the database).

use sqlx::Row;
use sqlx::postgres::PgRow;
use telegaz_domain::{Ban, NewBan, Timestamp};

use crate::pg_time::PgTime;
use crate::postgres::PgDatabase;
use crate::{BanFilter, Result, StoreError};

const COLUMNS: &str =
    "id, address, login, reason, created_by, created_at, expires_at, repeat, lifted_at, lifted_by";

fn from_row(row: &PgRow) -> Result<Ban> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("ban row: {e}"));
    let opt = |col: &str| -> Result<Option<Timestamp>> {
        Ok(row
            .try_get::<Option<PgTime>, _>(col)
            .map_err(err)?
            .map(|t| t.0))
    };
    Ok(Ban {
        id: row.try_get("id").map_err(err)?,
        address: row.try_get("address").map_err(err)?,
        login: row.try_get("login").map_err(err)?,
        reason: row.try_get("reason").map_err(err)?,
        created_by: row.try_get("created_by").map_err(err)?,
        created_at: row.try_get::<PgTime, _>("created_at").map_err(err)?.0,
        expires_at: opt("expires_at")?,
        repeat: u32::try_from(row.try_get::<i32, _>("repeat").map_err(err)?).unwrap_or(0),
        lifted_at: opt("lifted_at")?,
        lifted_by: row.try_get("lifted_by").map_err(err)?,
    })
}

pub(crate) async fn create_ban(db: &PgDatabase, ban: &NewBan) -> Result<Ban> {
    if ban.address.is_none() && ban.login.is_none() {
        return Err(StoreError::Conflict(
            "a ban needs an address, a login or both".into(),
        ));
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO bans (address, login, reason, created_by, created_at, expires_at, repeat) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(&ban.address)
    .bind(&ban.login)
    .bind(&ban.reason)
    .bind(&ban.created_by)
    .bind(PgTime(ban.created_at))
    .bind(ban.expires_at.map(PgTime))
    .bind(i32::try_from(ban.repeat).unwrap_or(i32::MAX))
    .fetch_one(&db.pool)
    .await
    .map_err(StoreError::query("recording a ban"))?;
    from_row(&row)
}

pub(crate) async fn list_bans(db: &PgDatabase, f: &BanFilter) -> Result<Vec<Ban>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM bans WHERE ($1::timestamptz IS NULL OR (lifted_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $1))) ORDER BY id DESC LIMIT $2"
    )))
    .bind(f.active_at.map(PgTime))
    .bind(f.limit.map(i64::from))
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query("listing bans"))?
    .iter()
    .map(from_row)
    .collect()
}

pub(crate) async fn lift_ban(db: &PgDatabase, id: i64, by: &str, at: Timestamp) -> Result<Ban> {
    // Lifting a lifted ban changes nothing and returns it as it is.
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH lifted AS (UPDATE bans SET lifted_at = $1, lifted_by = $2 \
         WHERE id = $3 AND lifted_at IS NULL RETURNING {COLUMNS}) \
         SELECT {COLUMNS} FROM lifted UNION ALL \
         SELECT {COLUMNS} FROM bans WHERE id = $3 AND NOT EXISTS (SELECT 1 FROM lifted)"
    )))
    .bind(PgTime(at))
    .bind(by)
    .bind(id)
    .fetch_optional(&db.pool)
    .await
    .map_err(StoreError::query("lifting a ban"))?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("ban #{id}"),
    })?;
    from_row(&row)
}

pub(crate) async fn active_ban(
    db: &PgDatabase,
    address: &str,
    login: &str,
    now: Timestamp,
) -> Result<Option<Ban>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM bans WHERE lifted_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $1) \
         AND ((address = $2 AND (login IS NULL OR login = $3)) OR (address IS NULL AND login = $3)) \
         ORDER BY expires_at IS NULL DESC, expires_at DESC LIMIT 1"
    )))
    .bind(PgTime(now))
    .bind(address)
    .bind(login)
    .fetch_optional(&db.pool)
    .await
    .map_err(StoreError::query("looking up bans"))?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(crate) async fn count_bans_by(
    db: &PgDatabase,
    created_by: &str,
    address: &str,
    login: Option<&str>,
    since: Timestamp,
) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bans WHERE address = $1 AND login IS NOT DISTINCT FROM $2 \
         AND created_by = $3 AND created_at >= $4",
    )
    .bind(address)
    .bind(login)
    .bind(created_by)
    .bind(PgTime(since))
    .fetch_one(&db.pool)
    .await
    .map_err(StoreError::query("counting earlier bans"))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}
