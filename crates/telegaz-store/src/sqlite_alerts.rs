//! SQLite side of alerts and the notification outbox.

use std::str::FromStr;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use telegaz_domain::{
    Alert, AlertKind, AlertState, DeviceId, Notification, NotificationEvent, Severity, Timestamp,
};

use crate::alerts::{AlertFilter, NewAlert, NewNotification, NotificationSend, SendOutcome};
use crate::time::{from_text, to_text};
use crate::{Result, StoreError};

type Tx = crate::sqlite::WriteTx;

const ALERT_SELECT: &str = "SELECT a.id, a.key, a.kind, a.severity, a.device_id, d.name AS device_name, \
     a.title, a.detail, a.state, a.opened_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at \
     FROM alerts a LEFT JOIN devices d ON d.id = a.device_id";

fn alert_from_row(row: &SqliteRow) -> Result<Alert> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("alert row: {e}"));
    let opt_time = |col: &str| crate::time::opt_time(row, col, "alert");
    let kind: String = row.try_get("kind").map_err(err)?;
    let severity: String = row.try_get("severity").map_err(err)?;
    let state: String = row.try_get("state").map_err(err)?;
    let opened: String = row.try_get("opened_at").map_err(err)?;
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
        opened_at: from_text(&opened)?,
        acknowledged_at: opt_time("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by").map_err(err)?,
        resolved_at: opt_time("resolved_at")?,
    })
}

async fn alert_by_id(tx: &mut Tx, id: i64) -> Result<Alert> {
    let sql = sqlx::AssertSqlSafe(format!("{ALERT_SELECT} WHERE a.id = ?"));
    let row = sqlx::query(sql)
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
pub(crate) async fn enqueue(
    tx: &mut Tx,
    n: &NewNotification,
    alert_id: Option<i64>,
) -> Result<i64> {
    let devices = serde_json::to_string(&n.devices)
        .map_err(|e| StoreError::Corrupt(format!("encoding devices: {e}")))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO notifications (event, alert_id, kind, severity, device, title, text, at, devices, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(n.event.as_str())
    .bind(alert_id)
    .bind(n.kind.as_str())
    .bind(n.severity.as_str())
    .bind(&n.device)
    .bind(&n.title)
    .bind(&n.text)
    .bind(to_text(n.at))
    .bind(devices)
    .bind(to_text(Timestamp::now()))
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::query("queueing a notification"))?;
    for notifier in &n.notifiers {
        sqlx::query(
            "INSERT INTO notification_sends (notification_id, notifier, state, next_attempt_at) \
             VALUES (?, ?, 'pending', ?)",
        )
        .bind(id)
        .bind(notifier)
        .bind(to_text(n.at))
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("queueing a notification"))?;
    }
    Ok(id)
}

pub(crate) async fn open(
    tx: &mut Tx,
    a: &NewAlert,
    notification: Option<&NewNotification>,
) -> Result<Option<Alert>> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO alerts (key, kind, severity, device_id, title, detail, state, opened_at) \
         VALUES (?, ?, ?, ?, ?, ?, 'open', ?) ON CONFLICT (key) WHERE state <> 'resolved' DO NOTHING \
         RETURNING id",
    )
    .bind(&a.key)
    .bind(a.kind.as_str())
    .bind(a.severity.as_str())
    .bind(a.device_id.map(|d| d.0))
    .bind(&a.title)
    .bind(&a.detail)
    .bind(to_text(a.opened_at))
    .fetch_optional(&mut **tx)
    .await
    .map_err(StoreError::query("opening an alert"))?;
    let Some(id) = inserted else {
        return Ok(None);
    };
    if let Some(n) = notification {
        enqueue(tx, n, Some(id)).await?;
    }
    alert_by_id(tx, id).await.map(Some)
}

pub(crate) async fn resolve(
    tx: &mut Tx,
    id: i64,
    at: Timestamp,
    notification: Option<&NewNotification>,
) -> Result<Alert> {
    let done = sqlx::query(
        "UPDATE alerts SET state = 'resolved', resolved_at = ? WHERE id = ? AND state <> 'resolved'",
    )
    .bind(to_text(at))
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("resolving an alert"))?;
    if done.rows_affected() > 0
        && let Some(n) = notification
    {
        enqueue(tx, n, Some(id)).await?;
    }
    alert_by_id(tx, id).await
}

pub(crate) async fn acknowledge(tx: &mut Tx, id: i64, by: &str, at: Timestamp) -> Result<Alert> {
    let current = alert_by_id(tx, id).await?;
    if current.state == AlertState::Open {
        sqlx::query(
            "UPDATE alerts SET state = 'acknowledged', acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
        )
        .bind(to_text(at))
        .bind(by)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("acknowledging an alert"))?;
    } else if current.state == AlertState::Resolved {
        return Err(StoreError::Conflict(format!(
            "alert #{id} is resolved already; there is nothing to acknowledge"
        )));
    }
    alert_by_id(tx, id).await
}

pub(crate) async fn list(pool: &SqlitePool, f: &AlertFilter) -> Result<Vec<Alert>> {
    let mut sql = format!("{ALERT_SELECT} WHERE 1 = 1");
    if f.active {
        sql.push_str(" AND a.state <> 'resolved'");
    }
    if f.state.is_some() {
        sql.push_str(" AND a.state = ?");
    }
    if f.device_id.is_some() {
        sql.push_str(" AND a.device_id = ?");
    }
    if f.kind.is_some() {
        sql.push_str(" AND a.kind = ?");
    }
    if f.before_id.is_some() {
        sql.push_str(" AND a.id < ?");
    }
    sql.push_str(" ORDER BY a.id DESC LIMIT ?");
    // Built from the constant fragments above; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(s) = f.state {
        q = q.bind(s.as_str());
    }
    if let Some(d) = f.device_id {
        q = q.bind(d.0);
    }
    if let Some(k) = f.kind {
        q = q.bind(k.as_str());
    }
    if let Some(b) = f.before_id {
        q = q.bind(b);
    }
    q.bind(f.limit.map_or(-1, i64::from))
        .fetch_all(pool)
        .await
        .map_err(StoreError::query("listing alerts"))?
        .iter()
        .map(alert_from_row)
        .collect()
}

fn notification_from_row(row: &SqliteRow) -> Result<Notification> {
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("notification row: {e}"));
    let event: String = row.try_get("event").map_err(err)?;
    let kind: String = row.try_get("kind").map_err(err)?;
    let severity: String = row.try_get("severity").map_err(err)?;
    let at: String = row.try_get("at").map_err(err)?;
    let devices: String = row.try_get("devices").map_err(err)?;
    Ok(Notification {
        id: row.try_get("id").map_err(err)?,
        event: NotificationEvent::from_str(&event).map_err(StoreError::Corrupt)?,
        alert_id: row.try_get("alert_id").map_err(err)?,
        kind: AlertKind::from_str(&kind).map_err(StoreError::Corrupt)?,
        severity: Severity::from_str(&severity).map_err(StoreError::Corrupt)?,
        device: row.try_get("device").map_err(err)?,
        title: row.try_get("title").map_err(err)?,
        text: row.try_get("text").map_err(err)?,
        at: from_text(&at)?,
        devices: serde_json::from_str(&devices)
            .map_err(|e| StoreError::Corrupt(format!("notification devices: {e}")))?,
    })
}

/// Take the due notifications of a notifier under a lease (in the caller's
/// write transaction, so that two dispatchers never take the same one).
pub(crate) async fn due(
    tx: &mut Tx,
    notifier: &str,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<Notification>> {
    let lease_until = now
        .checked_add(crate::NOTIFICATION_LEASE)
        .unwrap_or(Timestamp::MAX);
    let taken: Vec<i64> = sqlx::query_scalar(
        "UPDATE notification_sends SET next_attempt_at = ?1 \
         WHERE notifier = ?2 AND notification_id IN ( \
           SELECT notification_id FROM notification_sends \
           WHERE notifier = ?2 AND state = 'pending' AND next_attempt_at <= ?3 \
           ORDER BY notification_id LIMIT ?4) \
         RETURNING notification_id",
    )
    .bind(to_text(lease_until))
    .bind(notifier)
    .bind(to_text(now))
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::query("taking due notifications"))?;
    let mut out = Vec::with_capacity(taken.len());
    for id in taken {
        let row = sqlx::query(
            "SELECT n.id, n.event, n.alert_id, n.kind, n.severity, n.device, n.title, n.text, n.at, n.devices \
             FROM notifications n WHERE n.id = ?",
        )
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(StoreError::query("reading due notifications"))?;
        out.push(notification_from_row(&row)?);
    }
    out.sort_by_key(|n| n.id);
    Ok(out)
}

pub(crate) async fn finish(
    tx: &mut Tx,
    notification_id: i64,
    notifier: &str,
    outcome: &SendOutcome,
    now: Timestamp,
) -> Result<()> {
    let (state, error, next, sent) = match outcome {
        SendOutcome::Sent => ("sent", None, now, Some(to_text(now))),
        SendOutcome::Retry { error, at } => ("pending", Some(error.as_str()), *at, None),
        SendOutcome::Failed { error } => ("failed", Some(error.as_str()), now, None),
    };
    let done = sqlx::query(
        "UPDATE notification_sends SET state = ?, attempts = attempts + 1, last_error = COALESCE(?, last_error), \
         next_attempt_at = ?, sent_at = COALESCE(?, sent_at) WHERE notification_id = ? AND notifier = ?",
    )
    .bind(state)
    .bind(error)
    .bind(to_text(next))
    .bind(sent)
    .bind(notification_id)
    .bind(notifier)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("recording a notification attempt"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: format!("notification #{notification_id} for {notifier}"),
        });
    }
    Ok(())
}

pub(crate) async fn sends(pool: &SqlitePool, limit: u32) -> Result<Vec<NotificationSend>> {
    let rows = sqlx::query(
        "SELECT s.notification_id, s.notifier, n.title, s.state, s.attempts, s.next_attempt_at, \
         s.last_error, s.sent_at FROM notification_sends s JOIN notifications n ON n.id = s.notification_id \
         ORDER BY s.notification_id DESC LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("listing notifications"))?;
    rows.iter()
        .map(|r| {
            let err = |e: sqlx::Error| StoreError::Corrupt(format!("notification send row: {e}"));
            let next: String = r.try_get("next_attempt_at").map_err(err)?;
            let sent: Option<String> = r.try_get("sent_at").map_err(err)?;
            Ok(NotificationSend {
                notification_id: r.try_get("notification_id").map_err(err)?,
                notifier: r.try_get("notifier").map_err(err)?,
                title: r.try_get("title").map_err(err)?,
                state: r.try_get("state").map_err(err)?,
                attempts: u32::try_from(r.try_get::<i64, _>("attempts").map_err(err)?).unwrap_or(0),
                next_attempt_at: from_text(&next)?,
                last_error: r.try_get("last_error").map_err(err)?,
                sent_at: sent.as_deref().map(from_text).transpose()?,
            })
        })
        .collect()
}

/// The start times of each device's newest uploads (newest first), at most
/// `per_device` each: what a unit's schedule is learned from.
pub(crate) async fn recent_upload_times(
    pool: &SqlitePool,
    per_device: u32,
) -> Result<Vec<(DeviceId, Vec<Timestamp>)>> {
    // One statement for the whole fleet (a statement is a round trip to the
    // connection's thread: one a device was 10,000 a minute at 10,000
    // units); each device's newest few through the index by device.
    let rows = sqlx::query(
        "SELECT d.id, u.started_at FROM devices d \
         LEFT JOIN uploads u ON u.id IN ( \
           SELECT x.id FROM uploads x WHERE x.device_id = d.id ORDER BY x.id DESC LIMIT ?) \
         WHERE d.enabled = 1 ORDER BY d.id, u.id DESC",
    )
    .bind(i64::from(per_device))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading upload times"))?;
    let err = |e: sqlx::Error| StoreError::Corrupt(format!("upload time row: {e}"));
    let rows = rows
        .iter()
        .map(|row| {
            let id = DeviceId(row.try_get(0).map_err(err)?);
            let at = row
                .try_get::<Option<String>, _>(1)
                .map_err(err)?
                .map(|t| from_text(&t))
                .transpose()?;
            Ok((id, at))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(crate::alerts::times_by_device(rows))
}
