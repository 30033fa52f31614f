//! SQLite side of users, sessions, API tokens and fleet activity.

use std::collections::HashMap;
use std::str::FromStr;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use telegaz_domain::{ApiToken, DeviceId, Role, Timestamp, User, UserId, UserName, WebSession};

use crate::time::{from_text, to_text};
use crate::web::{DeviceActivity, NewSession, NewUser, UserUpdate};
use crate::{Result, StoreError};

const USER_COLUMNS: &str = "u.id, u.name, u.password_hash, u.role, u.enabled, u.created_at";

fn user_from_row(row: &SqliteRow) -> Result<User> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("user row: {e}"));
    let name: String = row.try_get("name").map_err(err)?;
    let role: String = row.try_get("role").map_err(err)?;
    let created: String = row.try_get("created_at").map_err(err)?;
    Ok(User {
        id: UserId(row.try_get("id").map_err(err)?),
        name: UserName::parse(&name).map_err(StoreError::Corrupt)?,
        role: Role::from_str(&role).map_err(StoreError::Corrupt)?,
        enabled: row.try_get::<i64, _>("enabled").map_err(err)? != 0,
        password_hash: row.try_get("password_hash").map_err(err)?,
        created_at: from_text(&created)?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) async fn create_user(pool: &SqlitePool, user: &NewUser) -> Result<User> {
    let now = to_text(Timestamp::now());
    let result = sqlx::query(
        "INSERT INTO users (name, password_hash, role, enabled, created_at, updated_at) \
         VALUES (?, ?, ?, 1, ?, ?)",
    )
    .bind(user.name.as_str())
    .bind(&user.password_hash)
    .bind(user.role.as_str())
    .bind(&now)
    .bind(&now)
    .execute(pool)
    .await;
    match result {
        Ok(done) => user_by_id(pool, UserId(done.last_insert_rowid()))
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "the user just created".into(),
            }),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
            "a user named {:?} already exists",
            user.name.as_str()
        ))),
        Err(e) => Err(StoreError::query("creating a user")(e)),
    }
}

pub(crate) async fn user_by_id(pool: &SqlitePool, id: UserId) -> Result<Option<User>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?"));
    sqlx::query(sql)
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query("reading a user"))?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

pub(crate) async fn user_by_name(pool: &SqlitePool, name: &str) -> Result<Option<User>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?"
    ));
    sqlx::query(sql)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query("reading a user"))?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

pub(crate) async fn list_users(pool: &SqlitePool) -> Result<Vec<User>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
    ));
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .map_err(StoreError::query("listing users"))?
        .iter()
        .map(user_from_row)
        .collect()
}

pub(crate) async fn update_user(
    pool: &SqlitePool,
    id: UserId,
    update: &UserUpdate,
) -> Result<User> {
    let now = to_text(Timestamp::now());
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(StoreError::query("starting a write transaction"))?;
    let done = sqlx::query(
        "UPDATE users SET password_hash = COALESCE(?1, password_hash), role = COALESCE(?2, role), \
         enabled = COALESCE(?3, enabled), updated_at = ?4 WHERE id = ?5",
    )
    .bind(update.password_hash.as_deref())
    .bind(update.role.map(Role::as_str))
    .bind(update.enabled.map(i64::from))
    .bind(&now)
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("changing a user"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: format!("user #{id}"),
        });
    }
    // A new password, a lower role or a disabled account ends every session.
    if update.password_hash.is_some() || update.role.is_some() || update.enabled == Some(false) {
        sqlx::query("DELETE FROM web_sessions WHERE user_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("ending a user's sessions"))?;
    }
    if update.enabled == Some(false) {
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(&now)
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("revoking a user's API tokens"))?;
    }
    tx.commit()
        .await
        .map_err(StoreError::query("committing a user change"))?;
    user_by_id(pool, id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("user #{id}"),
        })
}

pub(crate) async fn create_session(pool: &SqlitePool, s: &NewSession) -> Result<()> {
    // Expired sessions go when new ones come: the table stays small.
    sqlx::query("DELETE FROM web_sessions WHERE expires_at < ?")
        .bind(to_text(s.created_at))
        .execute(pool)
        .await
        .map_err(StoreError::query("removing expired sessions"))?;
    sqlx::query(
        "INSERT INTO web_sessions (token_sha256, user_id, csrf_token, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&s.token_sha256)
    .bind(s.user_id.0)
    .bind(&s.csrf_token)
    .bind(to_text(s.created_at))
    .bind(to_text(s.expires_at))
    .execute(pool)
    .await
    .map_err(StoreError::query("recording a session"))?;
    Ok(())
}

pub(crate) async fn session(
    pool: &SqlitePool,
    token_sha256: &str,
    now: Timestamp,
) -> Result<Option<WebSession>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS}, s.csrf_token, s.created_at AS s_created, s.expires_at \
         FROM web_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_sha256 = ? AND s.expires_at > ? AND u.enabled = 1"
    ));
    let Some(row) = sqlx::query(sql)
        .bind(token_sha256)
        .bind(to_text(now))
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query("reading a session"))?
    else {
        return Ok(None);
    };
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("session row: {e}"));
    let created: String = row.try_get("s_created").map_err(err)?;
    let expires: String = row.try_get("expires_at").map_err(err)?;
    Ok(Some(WebSession {
        user: user_from_row(&row)?,
        csrf_token: row.try_get("csrf_token").map_err(err)?,
        created_at: from_text(&created)?,
        expires_at: from_text(&expires)?,
    }))
}

pub(crate) async fn delete_session(pool: &SqlitePool, token_sha256: &str) -> Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE token_sha256 = ?")
        .bind(token_sha256)
        .execute(pool)
        .await
        .map_err(StoreError::query("ending a session"))?;
    Ok(())
}

fn token_from_row(row: &SqliteRow) -> Result<ApiToken> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("API token row: {e}"));
    let created: String = row.try_get("created_at").map_err(err)?;
    let used: Option<String> = row.try_get("last_used_at").map_err(err)?;
    Ok(ApiToken {
        id: row.try_get("id").map_err(err)?,
        user_id: UserId(row.try_get("user_id").map_err(err)?),
        name: row.try_get("name").map_err(err)?,
        created_at: from_text(&created)?,
        last_used_at: used.as_deref().map(from_text).transpose()?,
    })
}

pub(crate) async fn create_api_token(
    pool: &SqlitePool,
    user: UserId,
    name: &str,
    token_sha256: &str,
) -> Result<ApiToken> {
    let done = sqlx::query(
        "INSERT INTO api_tokens (user_id, name, token_sha256, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(user.0)
    .bind(name)
    .bind(token_sha256)
    .bind(to_text(Timestamp::now()))
    .execute(pool)
    .await
    .map_err(StoreError::query("creating an API token"))?;
    let row = sqlx::query(
        "SELECT id, user_id, name, created_at, last_used_at FROM api_tokens WHERE id = ?",
    )
    .bind(done.last_insert_rowid())
    .fetch_one(pool)
    .await
    .map_err(StoreError::query("reading an API token"))?;
    token_from_row(&row)
}

pub(crate) async fn user_by_api_token(
    pool: &SqlitePool,
    token_sha256: &str,
    now: Timestamp,
) -> Result<Option<User>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS}, t.id AS token_id FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_sha256 = ? AND t.revoked_at IS NULL AND u.enabled = 1"
    ));
    let Some(row) = sqlx::query(sql)
        .bind(token_sha256)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query("checking an API token"))?
    else {
        return Ok(None);
    };
    let token_id: i64 = row
        .try_get("token_id")
        .map_err(|e| StoreError::Corrupt(format!("API token row: {e}")))?;
    sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
        .bind(to_text(now))
        .bind(token_id)
        .execute(pool)
        .await
        .map_err(StoreError::query("recording an API token's use"))?;
    user_from_row(&row).map(Some)
}

pub(crate) async fn list_api_tokens(pool: &SqlitePool, user: UserId) -> Result<Vec<ApiToken>> {
    sqlx::query(
        "SELECT id, user_id, name, created_at, last_used_at FROM api_tokens \
         WHERE user_id = ? AND revoked_at IS NULL ORDER BY id",
    )
    .bind(user.0)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("listing API tokens"))?
    .iter()
    .map(token_from_row)
    .collect()
}

pub(crate) async fn revoke_api_token(pool: &SqlitePool, user: UserId, id: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
    )
    .bind(to_text(Timestamp::now()))
    .bind(id)
    .bind(user.0)
    .execute(pool)
    .await
    .map_err(StoreError::query("revoking an API token"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: format!("API token #{id}"),
        });
    }
    Ok(())
}

/// The rows of a query with an optional `AND <column> = ?` for one device,
/// followed by `tail` (a `GROUP BY`).
async fn rows_for(
    pool: &SqlitePool,
    sql: &str,
    (column, tail): (&str, &str),
    only: Option<DeviceId>,
    context: &'static str,
) -> Result<Vec<SqliteRow>> {
    let text = match only {
        Some(_) => format!("{sql} AND {column} = ?{tail}"),
        None => format!("{sql}{tail}"),
    };
    // Only the constant fragments of the callers go into the text; the id is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
    if let Some(id) = only {
        q = q.bind(id.0);
    }
    q.fetch_all(pool).await.map_err(StoreError::query(context))
}

/// One pass per table, grouped by device: the cost grows with the fleet, not
/// with the history (every lookup goes through an index by device). `only`
/// limits it to one device (the device page).
pub(crate) async fn device_activity(
    pool: &SqlitePool,
    only: Option<DeviceId>,
) -> Result<Vec<DeviceActivity>> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("device activity row: {e}"));
    let mut by_device: HashMap<i64, DeviceActivity> = HashMap::new();
    let ids = rows_for(
        pool,
        "SELECT id FROM devices WHERE 1 = 1",
        ("id", ""),
        only,
        "listing devices",
    )
    .await?;
    for row in &ids {
        let id: i64 = row.try_get(0).map_err(err)?;
        by_device.insert(
            id,
            DeviceActivity {
                device_id: DeviceId(id),
                last_upload_at: None,
                last_login_at: None,
                newest_reading: None,
                newest_status: Vec::new(),
                problem_uploads: 0,
                last_upload_partial: false,
            },
        );
    }
    // The newest upload per device: its id is the largest (ids grow).
    let rows = rows_for(
        pool,
        "SELECT u.device_id, u.started_at, u.status FROM devices d CROSS JOIN uploads u \
         WHERE u.id = (SELECT MAX(id) FROM uploads x WHERE x.device_id = d.id)",
        ("d.id", ""),
        only,
        "reading the newest upload per device",
    )
    .await?;
    for row in &rows {
        let id: i64 = row.try_get(0).map_err(err)?;
        let at: String = row.try_get(1).map_err(err)?;
        let status: String = row.try_get(2).map_err(err)?;
        if let Some(a) = by_device.get_mut(&id) {
            a.last_upload_at = Some(from_text(&at)?);
            a.last_upload_partial = status == "partial";
        }
    }
    let rows = rows_for(
        pool,
        "SELECT d.id, (SELECT MAX(at) FROM audit a WHERE a.kind = 'login_succeeded' AND a.device_id = d.id) \
         FROM devices d WHERE 1 = 1",
        ("d.id", ""),
        only,
        "reading the newest login per device",
    )
    .await?;
    for row in &rows {
        let id: i64 = row.try_get(0).map_err(err)?;
        let at: Option<String> = row.try_get(1).map_err(err)?;
        if let (Some(a), Some(at)) = (by_device.get_mut(&id), at) {
            a.last_login_at = Some(from_text(&at)?);
        }
    }
    // Newest interval reading per device, through the primary key: devices
    // in the outer loop, so that each is one lookup, not a scan of readings.
    let rows = rows_for(
        pool,
        "SELECT r.device_id, r.local_time, r.status FROM devices d CROSS JOIN readings r \
         WHERE r.device_id = d.id AND r.kind = 'interval' AND r.local_time = \
         (SELECT MAX(local_time) FROM readings x WHERE x.device_id = d.id AND x.kind = 'interval')",
        ("d.id", ""),
        only,
        "reading the newest reading per device",
    )
    .await?;
    for row in &rows {
        let id: i64 = row.try_get(0).map_err(err)?;
        let t: String = row.try_get(1).map_err(err)?;
        let status: String = row.try_get(2).map_err(err)?;
        if let Some(a) = by_device.get_mut(&id) {
            a.newest_reading = Some(
                t.parse()
                    .map_err(|e| StoreError::Corrupt(format!("reading time {t:?}: {e}")))?,
            );
            let words: Vec<String> = serde_json::from_str(&status)
                .map_err(|e| StoreError::Corrupt(format!("reading status {status:?}: {e}")))?;
            // Several rows can share the newest time (record numbers): any alarm counts.
            a.newest_status.extend(words);
        }
    }
    let rows = rows_for(
        pool,
        "SELECT u.device_id, COUNT(*) FROM ingest i JOIN uploads u ON u.id = i.upload_id \
         WHERE i.state IN ('quarantined', 'failed') AND u.device_id IS NOT NULL",
        ("u.device_id", " GROUP BY u.device_id"),
        only,
        "counting quarantined uploads per device",
    )
    .await?;
    for row in &rows {
        let id: Option<i64> = row.try_get(0).map_err(err)?;
        let n: i64 = row.try_get(1).map_err(err)?;
        if let Some(a) = id.and_then(|id| by_device.get_mut(&id)) {
            a.problem_uploads = u64::try_from(n).unwrap_or(0);
        }
    }
    let mut all: Vec<DeviceActivity> = by_device.into_values().collect();
    all.sort_by_key(|a| a.device_id);
    Ok(all)
}
