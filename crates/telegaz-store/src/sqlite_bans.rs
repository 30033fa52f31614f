//! SQLite side of the ban list.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use telegaz_domain::{Ban, NewBan, Timestamp};

use crate::time::{from_text, opt_time, to_text};
use crate::{BanFilter, Result, StoreError};

const COLUMNS: &str =
    "id, address, login, reason, created_by, created_at, expires_at, repeat, lifted_at, lifted_by";

fn from_row(row: &SqliteRow) -> Result<Ban> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("ban row: {e}"));
    let created: String = row.try_get("created_at").map_err(err)?;
    Ok(Ban {
        id: row.try_get("id").map_err(err)?,
        address: row.try_get("address").map_err(err)?,
        login: row.try_get("login").map_err(err)?,
        reason: row.try_get("reason").map_err(err)?,
        created_by: row.try_get("created_by").map_err(err)?,
        created_at: from_text(&created)?,
        expires_at: opt_time(row, "expires_at", "ban")?,
        repeat: u32::try_from(row.try_get::<i64, _>("repeat").map_err(err)?).unwrap_or(0),
        lifted_at: opt_time(row, "lifted_at", "ban")?,
        lifted_by: row.try_get("lifted_by").map_err(err)?,
    })
}

pub(crate) async fn create(pool: &SqlitePool, ban: &NewBan) -> Result<Ban> {
    if ban.address.is_none() && ban.login.is_none() {
        return Err(StoreError::Conflict(
            "a ban needs an address, a login or both".into(),
        ));
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO bans (address, login, reason, created_by, created_at, expires_at, repeat) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
    )))
    .bind(&ban.address)
    .bind(&ban.login)
    .bind(&ban.reason)
    .bind(&ban.created_by)
    .bind(to_text(ban.created_at))
    .bind(ban.expires_at.map(to_text))
    .bind(i64::from(ban.repeat))
    .fetch_one(pool)
    .await
    .map_err(StoreError::query("recording a ban"))?;
    from_row(&row)
}

pub(crate) async fn list(pool: &SqlitePool, f: &BanFilter) -> Result<Vec<Ban>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM bans WHERE (?1 IS NULL OR (lifted_at IS NULL \
         AND (expires_at IS NULL OR expires_at > ?1))) ORDER BY id DESC LIMIT ?2"
    )))
    .bind(f.active_at.map(to_text))
    .bind(f.limit.map_or(-1, i64::from))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("listing bans"))?
    .iter()
    .map(from_row)
    .collect()
}

pub(crate) async fn get(pool: &SqlitePool, id: i64) -> Result<Option<Ban>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM bans WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("reading a ban"))?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(crate) async fn lift(pool: &SqlitePool, id: i64, by: &str, at: Timestamp) -> Result<Ban> {
    sqlx::query("UPDATE bans SET lifted_at = ?, lifted_by = ? WHERE id = ? AND lifted_at IS NULL")
        .bind(to_text(at))
        .bind(by)
        .bind(id)
        .execute(pool)
        .await
        .map_err(StoreError::query("lifting a ban"))?;
    get(pool, id).await?.ok_or_else(|| StoreError::NotFound {
        what: format!("ban #{id}"),
    })
}

pub(crate) async fn active_for(
    pool: &SqlitePool,
    address: &str,
    login: &str,
    now: Timestamp,
) -> Result<Option<Ban>> {
    // Two index lookups (live bans of the address, live bans of the login);
    // the one that lasts longest wins.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM bans WHERE lifted_at IS NULL \
         AND (expires_at IS NULL OR expires_at > ?1) \
         AND ((address = ?2 AND (login IS NULL OR login = ?3)) OR (address IS NULL AND login = ?3)) \
         ORDER BY expires_at IS NULL DESC, expires_at DESC LIMIT 1"
    )))
    .bind(to_text(now))
    .bind(address)
    .bind(login)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("looking up bans"))?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(crate) async fn count_made_by(
    pool: &SqlitePool,
    created_by: &str,
    address: &str,
    login: Option<&str>,
    since: Timestamp,
) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bans WHERE address = ? AND login IS ? AND created_by = ? \
         AND created_at >= ?",
    )
    .bind(address)
    .bind(login)
    .bind(created_by)
    .bind(to_text(since))
    .fetch_one(pool)
    .await
    .map_err(StoreError::query("counting earlier bans"))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}
