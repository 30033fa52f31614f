//! PostgreSQL side of alerts, the notification outbox and upload times.
//!
//! Several processes may share the database: opening an alert relies on the
//! partial unique index (one unresolved alert per key), resolving and
//! acknowledging on conditional updates, and notifiers take their due
//! notifications with `FOR UPDATE SKIP LOCKED` and a lease, so that two
//! dispatchers never get the same one at the same time.

use std::str::FromStr;

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use telegaz_domain::{
    Alert, AlertKind, AlertState, DeviceId, Notification, NotificationEvent, Severity, Timestamp,
};

use crate::pg_core::{begin, commit};
use crate::pg_time::PgTime;
use crate::postgres::PgDatabase;
use crate::{
    AlertFilter, NOTIFICATION_LEASE, NewAlert, NewNotification, NotificationSend, Result,
    SendOutcome, StoreError,
};

type Tx = Transaction<'static, Postgres>;

const ALERT_SELECT: &str = "SELECT a.id, a.key, a.kind, a.severity, a.device_id, d.name AS device_name, \
     a.title, a.detail, a.state, a.opened_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at \
     FROM alerts a LEFT JOIN devices d ON d.id = a.device_id";

const NOTIFICATION_COLUMNS: &str =
    "n.id, n.event, n.alert_id, n.kind, n.severity, n.device, n.title, n.text, n.at, n.devices";

fn alert_from_row(row: &PgRow) -> Result<Alert> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("alert row: {e}"));
    let kind: String = row.try_get("kind").map_err(err)?;
    let severity: String = row.try_get("severity").map_err(err)?;
    let state: String = row.try_get("state").map_err(err)?;
    Ok(Alert {
        id: row.try_get("id").map_err(err)?,
        key: row.try_get("key").map_err(err)?,
        kind: AlertKind::from_str(&kind).map_err(StoreError::Corrupt)?,
        severity: Severity::from_str(&severity).map_err(StoreError::Corrupt)?,
        device_id: row
            .try_get::<Option<i64>, _>("device_id")
            .map_err(err)?
            .map(DeviceId),
        device: row.try_get("device_name").map_err(err)?,
        title: row.try_get("title").map_err(err)?,
        detail: row.try_get("detail").map_err(err)?,
        state: AlertState::from_str(&state).map_err(StoreError::Corrupt)?,
        opened_at: row.try_get::<PgTime, _>("opened_at").map_err(err)?.0,
        acknowledged_at: row
            .try_get::<Option<PgTime>, _>("acknowledged_at")
            .map_err(err)?
            .map(|t| t.0),
        acknowledged_by: row.try_get("acknowledged_by").map_err(err)?,
        resolved_at: row
            .try_get::<Option<PgTime>, _>("resolved_at")
            .map_err(err)?
            .map(|t| t.0),
    })
}

fn notification_from_row(row: &PgRow) -> Result<Notification> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("notification row: {e}"));
    let event: String = row.try_get("event").map_err(err)?;
    let kind: String = row.try_get("kind").map_err(err)?;
    let severity: String = row.try_get("severity").map_err(err)?;
    Ok(Notification {
        id: row.try_get("id").map_err(err)?,
        event: NotificationEvent::from_str(&event).map_err(StoreError::Corrupt)?,
        alert_id: row.try_get("alert_id").map_err(err)?,
        kind: AlertKind::from_str(&kind).map_err(StoreError::Corrupt)?,
        severity: Severity::from_str(&severity).map_err(StoreError::Corrupt)?,
        device: row.try_get("device").map_err(err)?,
        title: row.try_get("title").map_err(err)?,
        text: row.try_get("text").map_err(err)?,
        at: row.try_get::<PgTime, _>("at").map_err(err)?.0,
        devices: row.try_get("devices").map_err(err)?,
    })
}

async fn alert_by_id(tx: &mut Tx, id: i64) -> Result<Alert> {
    let sql = format!("{ALERT_SELECT} WHERE a.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(StoreError::query("reading an alert"))?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("alert #{id}"),
        })?;
    alert_from_row(&row)
}

/// Queue a notification for its notifiers; returns its id.
async fn enqueue(tx: &mut Tx, n: &NewNotification, alert_id: Option<i64>) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO notifications (event, alert_id, kind, severity, device, title, text, at, devices, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(n.event.as_str())
    .bind(alert_id)
    .bind(n.kind.as_str())
    .bind(n.severity.as_str())
    .bind(&n.device)
    .bind(&n.title)
    .bind(&n.text)
    .bind(PgTime(n.at))
    .bind(&n.devices)
    .bind(PgTime(Timestamp::now()))
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::query("queueing a notification"))?;
    // One row per notifier, in one statement.
    sqlx::query(
        "INSERT INTO notification_sends (notification_id, notifier, state, next_attempt_at) \
         SELECT $1, notifier, 'pending', $3 FROM UNNEST($2::text[]) AS notifier",
    )
    .bind(id)
    .bind(&n.notifiers)
    .bind(PgTime(n.at))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("queueing a notification"))?;
    Ok(id)
}

pub(crate) async fn open_alert(
    db: &PgDatabase,
    alert: &NewAlert,
    notification: Option<&NewNotification>,
) -> Result<Option<Alert>> {
    let mut tx = begin(db).await?;
    // A concurrent opener of the same key waits on the index entry and then
    // inserts nothing.
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO alerts (key, kind, severity, device_id, title, detail, state, opened_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7) \
         ON CONFLICT (key) WHERE state <> 'resolved' DO NOTHING RETURNING id",
    )
    .bind(&alert.key)
    .bind(alert.kind.as_str())
    .bind(alert.severity.as_str())
    .bind(alert.device_id.map(|d| d.0))
    .bind(&alert.title)
    .bind(&alert.detail)
    .bind(PgTime(alert.opened_at))
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::query("opening an alert"))?;
    let Some(id) = inserted else {
        return Ok(None);
    };
    if let Some(n) = notification {
        enqueue(&mut tx, n, Some(id)).await?;
    }
    let opened = alert_by_id(&mut tx, id).await?;
    commit(tx, "committing an alert").await?;
    Ok(Some(opened))
}

pub(crate) async fn resolve_alert(
    db: &PgDatabase,
    id: i64,
    at: Timestamp,
    notification: Option<&NewNotification>,
) -> Result<Alert> {
    let mut tx = begin(db).await?;
    // The row lock makes a concurrent resolver wait and then find it resolved:
    // one recovery notice only.
    let done = sqlx::query(
        "UPDATE alerts SET state = 'resolved', resolved_at = $1 WHERE id = $2 AND state <> 'resolved'",
    )
    .bind(PgTime(at))
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("resolving an alert"))?;
    if done.rows_affected() > 0
        && let Some(n) = notification
    {
        enqueue(&mut tx, n, Some(id)).await?;
    }
    let alert = alert_by_id(&mut tx, id).await?;
    commit(tx, "committing an alert").await?;
    Ok(alert)
}

pub(crate) async fn acknowledge_alert(
    db: &PgDatabase,
    id: i64,
    by: &str,
    at: Timestamp,
) -> Result<Alert> {
    let mut tx = begin(db).await?;
    // Only an open alert is acknowledged; the first acknowledgement stays.
    sqlx::query(
        "UPDATE alerts SET state = 'acknowledged', acknowledged_at = $1, acknowledged_by = $2 \
         WHERE id = $3 AND state = 'open'",
    )
    .bind(PgTime(at))
    .bind(by)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("acknowledging an alert"))?;
    let alert = alert_by_id(&mut tx, id).await?;
    if alert.state == AlertState::Resolved {
        return Err(StoreError::Conflict(format!(
            "alert #{id} is resolved already; there is nothing to acknowledge"
        )));
    }
    commit(tx, "committing an alert").await?;
    Ok(alert)
}

pub(crate) async fn list_alerts(db: &PgDatabase, f: &AlertFilter) -> Result<Vec<Alert>> {
    let mut q = QueryBuilder::<Postgres>::new(ALERT_SELECT);
    q.push(" WHERE TRUE");
    if f.active {
        q.push(" AND a.state <> 'resolved'");
    }
    if let Some(s) = f.state {
        q.push(" AND a.state = ").push_bind(s.as_str());
    }
    if let Some(d) = f.device_id {
        q.push(" AND a.device_id = ").push_bind(d.0);
    }
    if let Some(k) = f.kind {
        q.push(" AND a.kind = ").push_bind(k.as_str());
    }
    if let Some(b) = f.before_id {
        q.push(" AND a.id < ").push_bind(b);
    }
    q.push(" ORDER BY a.id DESC LIMIT ")
        .push_bind(f.limit.map(i64::from));
    q.build()
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("listing alerts"))?
        .iter()
        .map(alert_from_row)
        .collect()
}

pub(crate) async fn last_resolved_before(
    db: &PgDatabase,
    key: &str,
    before: Timestamp,
) -> Result<Option<Timestamp>> {
    let t: Option<PgTime> = sqlx::query_scalar(
        "SELECT MAX(resolved_at) FROM alerts WHERE key = $1 AND state = 'resolved' AND resolved_at < $2",
    )
    .bind(key)
    .bind(PgTime(before))
    .fetch_one(&db.pool)
    .await
    .map_err(StoreError::query("reading an alert's history"))?;
    Ok(t.map(|t| t.0))
}

pub(crate) async fn enqueue_notification(
    db: &PgDatabase,
    notification: &NewNotification,
) -> Result<i64> {
    let mut tx = begin(db).await?;
    let id = enqueue(&mut tx, notification, None).await?;
    commit(tx, "committing a notification").await?;
    Ok(id)
}

pub(crate) async fn due_notifications(
    db: &PgDatabase,
    notifier: &str,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<Notification>> {
    let lease_until = now
        .checked_add(NOTIFICATION_LEASE)
        .unwrap_or(Timestamp::MAX);
    // Taken under a lease in one statement: rows another dispatcher is
    // taking are skipped, rows it took are no longer due.
    let sql = format!(
        "WITH due AS ( \
           SELECT notification_id FROM notification_sends \
           WHERE notifier = $1 AND state = 'pending' AND next_attempt_at <= $2 \
           ORDER BY notification_id LIMIT $3 FOR UPDATE SKIP LOCKED \
         ), taken AS ( \
           UPDATE notification_sends s SET next_attempt_at = $4 FROM due \
           WHERE s.notifier = $1 AND s.notification_id = due.notification_id \
           RETURNING s.notification_id \
         ) \
         SELECT {NOTIFICATION_COLUMNS} FROM taken JOIN notifications n ON n.id = taken.notification_id \
         ORDER BY n.id"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(notifier)
        .bind(PgTime(now))
        .bind(i64::from(limit))
        .bind(PgTime(lease_until))
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("taking due notifications"))?
        .iter()
        .map(notification_from_row)
        .collect()
}

pub(crate) async fn finish_notification(
    db: &PgDatabase,
    notification_id: i64,
    notifier: &str,
    outcome: &SendOutcome,
    now: Timestamp,
) -> Result<()> {
    let (state, error, next, sent) = match outcome {
        SendOutcome::Sent => ("sent", None, now, Some(PgTime(now))),
        SendOutcome::Retry { error, at } => ("pending", Some(error.as_str()), *at, None),
        SendOutcome::Failed { error } => ("failed", Some(error.as_str()), now, None),
    };
    let done = sqlx::query(
        "UPDATE notification_sends SET state = $1, attempts = attempts + 1, \
         last_error = COALESCE($2, last_error), next_attempt_at = $3, sent_at = COALESCE($4, sent_at) \
         WHERE notification_id = $5 AND notifier = $6",
    )
    .bind(state)
    .bind(error)
    .bind(PgTime(next))
    .bind(sent)
    .bind(notification_id)
    .bind(notifier)
    .execute(&db.pool)
    .await
    .map_err(StoreError::query("recording a notification attempt"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: format!("notification #{notification_id} for {notifier}"),
        });
    }
    Ok(())
}

pub(crate) async fn notification_sends(
    db: &PgDatabase,
    limit: u32,
) -> Result<Vec<NotificationSend>> {
    let rows = sqlx::query(
        "SELECT s.notification_id, s.notifier, n.title, s.state, s.attempts, s.next_attempt_at, \
         s.last_error, s.sent_at FROM notification_sends s JOIN notifications n ON n.id = s.notification_id \
         ORDER BY s.notification_id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query("listing notifications"))?;
    rows.iter()
        .map(|r| {
            let err = |e: sqlx::Error| StoreError::Corrupt(format!("notification send row: {e}"));
            Ok(NotificationSend {
                notification_id: r.try_get("notification_id").map_err(err)?,
                notifier: r.try_get("notifier").map_err(err)?,
                title: r.try_get("title").map_err(err)?,
                state: r.try_get("state").map_err(err)?,
                attempts: u32::try_from(r.try_get::<i32, _>("attempts").map_err(err)?).unwrap_or(0),
                next_attempt_at: r.try_get::<PgTime, _>("next_attempt_at").map_err(err)?.0,
                last_error: r.try_get("last_error").map_err(err)?,
                sent_at: r
                    .try_get::<Option<PgTime>, _>("sent_at")
                    .map_err(err)?
                    .map(|t| t.0),
            })
        })
        .collect()
}

/// The start times of each enabled device's newest uploads (newest first), at
/// most `per_device` each: what a unit's schedule is learned from. One query:
/// the newest few of each device through the index by device.
pub(crate) async fn recent_upload_times(
    db: &PgDatabase,
    per_device: u32,
) -> Result<Vec<(DeviceId, Vec<Timestamp>)>> {
    let rows = sqlx::query(
        "SELECT d.id, u.started_at FROM devices d \
         LEFT JOIN LATERAL ( \
           SELECT x.id, x.started_at FROM uploads x \
           WHERE x.device_id = d.id ORDER BY x.id DESC LIMIT $1 \
         ) u ON TRUE \
         WHERE d.enabled ORDER BY d.id, u.id DESC",
    )
    .bind(i64::from(per_device))
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query("reading upload times"))?;
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("upload time row: {e}"));
    let rows = rows
        .iter()
        .map(|row| {
            let id = DeviceId(row.try_get("id").map_err(err)?);
            let at = row
                .try_get::<Option<PgTime>, _>("started_at")
                .map_err(err)?
                .map(|t| t.0);
            Ok((id, at))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(crate::alerts::times_by_device(rows))
}
