//! PostgreSQL side of users, sessions and API tokens.

use std::str::FromStr;

use sqlx::Row;
use sqlx::postgres::PgRow;
use telegaz_domain::{ApiToken, Role, Timestamp, User, UserId, UserName, WebSession};

use crate::pg_core::{begin, commit, is_unique_violation};
use crate::pg_time::PgTime;
use crate::postgres::PgDatabase;
use crate::{NewSession, NewUser, Result, StoreError, UserUpdate};

const USER_COLUMNS: &str = "u.id, u.name, u.password_hash, u.role, u.enabled, u.created_at";

const TOKEN_COLUMNS: &str = "id, user_id, name, created_at, last_used_at";

fn user_from_row(row: &PgRow) -> Result<User> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("user row: {e}"));
    let name: String = row.try_get("name").map_err(err)?;
    let role: String = row.try_get("role").map_err(err)?;
    Ok(User {
        id: UserId(row.try_get("id").map_err(err)?),
        name: UserName::parse(&name).map_err(StoreError::Corrupt)?,
        role: Role::from_str(&role).map_err(StoreError::Corrupt)?,
        enabled: row.try_get("enabled").map_err(err)?,
        password_hash: row.try_get("password_hash").map_err(err)?,
        created_at: row.try_get::<PgTime, _>("created_at").map_err(err)?.0,
    })
}

fn token_from_row(row: &PgRow) -> Result<ApiToken> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("API token row: {e}"));
    Ok(ApiToken {
        id: row.try_get("id").map_err(err)?,
        user_id: UserId(row.try_get("user_id").map_err(err)?),
        name: row.try_get("name").map_err(err)?,
        created_at: row.try_get::<PgTime, _>("created_at").map_err(err)?.0,
        last_used_at: row
            .try_get::<Option<PgTime>, _>("last_used_at")
            .map_err(err)?
            .map(|t| t.0),
    })
}

fn no_user(id: UserId) -> StoreError {
    StoreError::NotFound {
        what: format!("user #{id}"),
    }
}

/// One user by a column of `users u` (`u.id = $1`, `u.name = $1`).
async fn user_where<'q, T>(db: &PgDatabase, condition: &str, value: T) -> Result<Option<User>>
where
    T: 'q + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE {condition}");
    // Only the constant conditions of this module go into the text; the value is bound.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .fetch_optional(&db.pool)
        .await
        .map_err(StoreError::query("reading a user"))?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

pub(crate) async fn create_user(db: &PgDatabase, user: NewUser) -> Result<User> {
    let now = PgTime(Timestamp::now());
    let sql = format!(
        "INSERT INTO users AS u (name, password_hash, role, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, TRUE, $4, $4) RETURNING {USER_COLUMNS}"
    );
    let result = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user.name.as_str())
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(now)
        .fetch_one(&db.pool)
        .await;
    match result {
        Ok(row) => user_from_row(&row),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
            "a user named {:?} already exists",
            user.name.as_str()
        ))),
        Err(e) => Err(StoreError::query("creating a user")(e)),
    }
}

pub(crate) async fn user_by_id(db: &PgDatabase, id: UserId) -> Result<Option<User>> {
    user_where(db, "u.id = $1", id.0).await
}

pub(crate) async fn user_by_name(db: &PgDatabase, name: &str) -> Result<Option<User>> {
    user_where(db, "u.name = $1", name.to_owned()).await
}

pub(crate) async fn list_users(db: &PgDatabase) -> Result<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("listing users"))?
        .iter()
        .map(user_from_row)
        .collect()
}

pub(crate) async fn update_user(db: &PgDatabase, id: UserId, update: UserUpdate) -> Result<User> {
    let now = PgTime(Timestamp::now());
    let mut tx = begin(db).await?;
    let sql = format!(
        "UPDATE users AS u SET password_hash = COALESCE($1, password_hash), \
         role = COALESCE($2, role), enabled = COALESCE($3, enabled), updated_at = $4 \
         WHERE u.id = $5 RETURNING {USER_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(update.password_hash.as_deref())
        .bind(update.role.map(Role::as_str))
        .bind(update.enabled)
        .bind(now)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("changing a user"))?
        .ok_or_else(|| no_user(id))?;
    // A new password, a lower role or a disabled account ends every session.
    if update.password_hash.is_some() || update.role.is_some() || update.enabled == Some(false) {
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("ending a user's sessions"))?;
    }
    if update.enabled == Some(false) {
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("revoking a user's API tokens"))?;
    }
    commit(tx, "committing a user change").await?;
    user_from_row(&row)
}

pub(crate) async fn create_session(db: &PgDatabase, s: NewSession) -> Result<()> {
    // Expired sessions go when new ones come: the table stays small.
    sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
        .bind(PgTime(s.created_at))
        .execute(&db.pool)
        .await
        .map_err(StoreError::query("removing expired sessions"))?;
    sqlx::query(
        "INSERT INTO web_sessions (token_sha256, user_id, csrf_token, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&s.token_sha256)
    .bind(s.user_id.0)
    .bind(&s.csrf_token)
    .bind(PgTime(s.created_at))
    .bind(PgTime(s.expires_at))
    .execute(&db.pool)
    .await
    .map_err(StoreError::query("recording a session"))?;
    Ok(())
}

pub(crate) async fn session(
    db: &PgDatabase,
    token_sha256: &str,
    now: Timestamp,
) -> Result<Option<WebSession>> {
    let sql = format!(
        "SELECT {USER_COLUMNS}, s.csrf_token, s.created_at AS s_created, s.expires_at \
         FROM web_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_sha256 = $1 AND s.expires_at > $2 AND u.enabled"
    );
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(token_sha256)
        .bind(PgTime(now))
        .fetch_optional(&db.pool)
        .await
        .map_err(StoreError::query("reading a session"))?
    else {
        return Ok(None);
    };
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("session row: {e}"));
    Ok(Some(WebSession {
        user: user_from_row(&row)?,
        csrf_token: row.try_get("csrf_token").map_err(err)?,
        created_at: row.try_get::<PgTime, _>("s_created").map_err(err)?.0,
        expires_at: row.try_get::<PgTime, _>("expires_at").map_err(err)?.0,
    }))
}

pub(crate) async fn delete_session(db: &PgDatabase, token_sha256: &str) -> Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE token_sha256 = $1")
        .bind(token_sha256)
        .execute(&db.pool)
        .await
        .map_err(StoreError::query("ending a session"))?;
    Ok(())
}

pub(crate) async fn create_api_token(
    db: &PgDatabase,
    user: UserId,
    name: &str,
    token_sha256: &str,
) -> Result<ApiToken> {
    let sql = format!(
        "INSERT INTO api_tokens (user_id, name, token_sha256, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING {TOKEN_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user.0)
        .bind(name)
        .bind(token_sha256)
        .bind(PgTime(Timestamp::now()))
        .fetch_one(&db.pool)
        .await
        .map_err(StoreError::query("creating an API token"))?;
    token_from_row(&row)
}

pub(crate) async fn user_by_api_token(
    db: &PgDatabase,
    token_sha256: &str,
    now: Timestamp,
) -> Result<Option<User>> {
    // Found and its use recorded in one statement.
    let sql = format!(
        "UPDATE api_tokens t SET last_used_at = $2 FROM users u \
         WHERE u.id = t.user_id AND t.token_sha256 = $1 AND t.revoked_at IS NULL AND u.enabled \
         RETURNING {USER_COLUMNS}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(token_sha256)
        .bind(PgTime(now))
        .fetch_optional(&db.pool)
        .await
        .map_err(StoreError::query("checking an API token"))?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

pub(crate) async fn list_api_tokens(db: &PgDatabase, user: UserId) -> Result<Vec<ApiToken>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL \
         ORDER BY id"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user.0)
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("listing API tokens"))?
        .iter()
        .map(token_from_row)
        .collect()
}

pub(crate) async fn revoke_api_token(db: &PgDatabase, user: UserId, id: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 \
         WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
    )
    .bind(PgTime(Timestamp::now()))
    .bind(id)
    .bind(user.0)
    .execute(&db.pool)
    .await
    .map_err(StoreError::query("revoking an API token"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: format!("API token #{id}"),
        });
    }
    Ok(())
}
