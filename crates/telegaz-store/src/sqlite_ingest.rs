//! SQLite side of the ingest pipeline: the queue, readings, conflicts, events.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool};
use telegaz_domain::{
    ArchiveKind, ArchiveRecord, Check, DeviceId, EventRecord, IngestInfo, IngestState, Quantities,
    RecordCounts, UploadId,
};

use crate::time::to_text;
use crate::{ReadingFilter, RequeueFilter, Result, StoreError};

type Tx = crate::sqlite::WriteTx;

fn corrupt(what: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The `ingest` columns of an upload row (LEFT JOINed; all NULL when not queued).
pub(crate) fn ingest_from_row(row: &SqliteRow) -> Result<Option<IngestInfo>> {
    let err = corrupt("ingest row");
    let Some(state) = row
        .try_get::<Option<String>, _>("ingest_state")
        .map_err(&err)?
    else {
        return Ok(None);
    };
    Ok(Some(IngestInfo {
        status: IngestState::from_str(&state).map_err(StoreError::Corrupt)?,
        format: row.try_get("ingest_format").map_err(&err)?,
        records: RecordCounts {
            total: count(row.try_get("records_total").map_err(&err)?),
            new: count(row.try_get("records_new").map_err(&err)?),
            duplicate: count(row.try_get("records_duplicate").map_err(&err)?),
            conflicting: count(row.try_get("records_conflicting").map_err(&err)?),
        },
        events: count(row.try_get("events_total").map_err(&err)?),
        reason: row.try_get("ingest_reason").map_err(&err)?,
        truncated: row.try_get::<i64, _>("ingest_truncated").map_err(&err)? != 0,
        model: row.try_get("ingest_model").map_err(&err)?,
        serial: row.try_get("ingest_serial").map_err(&err)?,
    }))
}

/// Queue an upload (again): its earlier outcome is cleared, its records stay.
pub(crate) async fn enqueue(
    tx: &mut sqlx::SqliteConnection,
    id: UploadId,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ingest (upload_id, state, queued_at) VALUES (?, 'pending', ?) \
         ON CONFLICT (upload_id) DO UPDATE SET state = 'pending', attempts = 0, format = NULL, \
         reason = NULL, truncated = 0, records_total = 0, records_new = 0, records_duplicate = 0, \
         records_conflicting = 0, events_total = 0, queued_at = excluded.queued_at, finished_at = NULL, \
         claimed_until = NULL",
    )
    .bind(id.0)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("queueing an upload for ingest"))?;
    Ok(())
}

pub(crate) async fn requeue(tx: &mut Tx, filter: &RequeueFilter) -> Result<Vec<UploadId>> {
    let rows = sqlx::query(
        "SELECT u.id FROM uploads u LEFT JOIN ingest i ON i.upload_id = u.id \
         WHERE u.status = 'complete' AND u.device_id IS NOT NULL \
         AND (? IS NULL OR u.device_id = ?) AND (? IS NULL OR i.state = ?) \
         AND (? IS NULL OR COALESCE(u.received_at, u.started_at) >= ?) ORDER BY u.id",
    )
    .bind(filter.device_id.map(|d| d.0))
    .bind(filter.device_id.map(|d| d.0))
    .bind(filter.state.map(IngestState::as_str))
    .bind(filter.state.map(IngestState::as_str))
    .bind(filter.since.map(to_text))
    .bind(filter.since.map(to_text))
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::query("choosing uploads to re-parse"))?;
    let now = to_text(telegaz_domain::Timestamp::now());
    let mut ids = Vec::with_capacity(rows.len());
    for r in rows {
        let id = UploadId(r.try_get(0).map_err(corrupt("upload id"))?);
        enqueue(tx, id, &now).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Oldest first, passing over uploads under a live claim.
pub(crate) async fn pending(pool: &SqlitePool, limit: u32, now: &str) -> Result<Vec<UploadId>> {
    sqlx::query(
        "SELECT upload_id FROM ingest WHERE state = 'pending' \
         AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY upload_id LIMIT ?",
    )
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading the ingest queue"))?
    .iter()
    .map(|r| r.try_get(0).map(UploadId).map_err(corrupt("ingest queue")))
    .collect()
}

/// Claim a pending upload until `until` unless a live claim holds it.
pub(crate) async fn attempt(
    tx: &mut Tx,
    id: UploadId,
    now: &str,
    until: &str,
) -> Result<Option<u32>> {
    let n: Option<i64> = sqlx::query_scalar(
        "UPDATE ingest SET attempts = attempts + 1, claimed_until = ? \
         WHERE upload_id = ? AND state = 'pending' \
         AND (claimed_until IS NULL OR claimed_until <= ?) RETURNING attempts",
    )
    .bind(until)
    .bind(id.0)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(StoreError::query("claiming an upload for ingest"))?;
    Ok(n.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
}

/// Claim those of `ids` never tried and not held (see the trait).
pub(crate) async fn first_attempts(
    tx: &mut Tx,
    ids: &[UploadId],
    now: &str,
    until: &str,
) -> Result<Vec<UploadId>> {
    let mut got = Vec::with_capacity(ids.len());
    for id in ids {
        let claimed = sqlx::query(
            "UPDATE ingest SET attempts = 1, claimed_until = ? \
             WHERE upload_id = ? AND state = 'pending' AND attempts = 0 \
             AND (claimed_until IS NULL OR claimed_until <= ?)",
        )
        .bind(until)
        .bind(id.0)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("claiming uploads for ingest"))?;
        if claimed.rows_affected() == 1 {
            got.push(*id);
        }
    }
    Ok(got)
}

pub(crate) async fn finish(
    tx: &mut Tx,
    id: UploadId,
    state: IngestState,
    reason: &str,
    now: &str,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE ingest SET state = ?, reason = ?, finished_at = ?, records_total = 0, records_new = 0, \
         records_duplicate = 0, records_conflicting = 0, events_total = 0 \
         WHERE upload_id = ? AND state = 'pending'",
    )
    .bind(state.as_str())
    .bind(reason)
    .bind(now)
    .bind(id.0)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("recording an ingest outcome"))?;
    crate::still_pending(done.rows_affected(), id)
}

use crate::PreparedFile;
pub(crate) use crate::encoded::local_text;
use crate::encoded::{Encoded, json};

/// A reading's key as SQLite stores it.
fn key(e: &Encoded) -> (&'static str, &str, i64) {
    (e.kind, &e.local_text, e.record_no)
}

fn same_values(e: &Encoded, other: &Stored) -> bool {
    *e.quantities == *other.quantities
        && *e.status == *other.status
        && e.event_code.map(i64::from) == other.event_code
        && *e.checked == *other.checked
}

/// The values of a stored row, for comparison.
struct Stored {
    quantities: String,
    status: String,
    event_code: Option<i64>,
    checked: String,
}

impl From<&Encoded> for Stored {
    fn from(e: &Encoded) -> Self {
        Stored {
            quantities: e.quantities.to_string(),
            status: e.status.to_string(),
            event_code: e.event_code.map(i64::from),
            checked: e.checked.to_string(),
        }
    }
}

/// Bind a reading's eleven columns, in the order of the `readings` table.
/// The texts are bound as shared `Arc<str>`s: no copy (see [`Encoded`]).
fn bind_row<'q>(
    q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    device: DeviceId,
    id: UploadId,
    e: &'q Encoded,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    q.bind(device.0)
        .bind(Arc::clone(&e.kind_text))
        .bind(Arc::clone(&e.local_text))
        .bind(e.record_no)
        .bind(e.utc_offset)
        .bind(Arc::clone(&e.quantities))
        .bind(Arc::clone(&e.status))
        .bind(e.event_code)
        .bind(Arc::clone(&e.checked))
        .bind(id.0)
        .bind(e.line)
}

/// One multi-row `INSERT` of fresh readings, bound.
fn insert_readings<'q>(
    device: DeviceId,
    id: UploadId,
    rows: &[&'q Encoded],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut sql = String::from(
        "INSERT INTO readings (device_id, kind, local_time, record_no, utc_offset, quantities, status, \
         event_code, checked, upload_id, line) VALUES ",
    );
    for i in 0..rows.len() {
        sql.push_str(if i == 0 {
            "(?,?,?,?,?,?,?,?,?,?,?)"
        } else {
            ",(?,?,?,?,?,?,?,?,?,?,?)"
        });
    }
    // The write transaction holds the database: nothing can have come in
    // between; the clause only guards the key.
    sql.push_str(" ON CONFLICT (device_id, kind, local_time, record_no) DO NOTHING");
    // Built only from the constant fragments above; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for e in rows {
        q = bind_row(q, device, id, e);
    }
    q
}

/// Rows per INSERT statement (11 parameters each; SQLite allows 32766).
const BATCH: usize = 256;
/// Rows whose time range is read back with one query: a year of hourly rows
/// in one (a query per 256 rows cost about as much as the empty result is
/// worth: a round trip to sqlx's worker thread each).
const SPAN: usize = 8_192;

/// Store a parsed file's rows. Same key, same values: duplicate. Same key,
/// different values: kept in `reading_conflicts`, the first stays.
///
/// Rows go in spans of [`SPAN`]: one query reads what is stored in the span's
/// time range, the rows not there are inserted with multi-row `INSERT`s of
/// [`BATCH`] rows, the others are compared in memory.
pub(crate) async fn store_parsed(
    tx: &mut Tx,
    id: UploadId,
    device: DeviceId,
    prepared: &PreparedFile,
    now: &str,
) -> Result<IngestInfo> {
    let parsed = prepared.parsed();
    let mut counts = RecordCounts {
        total: parsed.records.len() as u64,
        ..RecordCounts::default()
    };
    // A key repeated inside the file is compared with its first occurrence.
    let (unique, mut conflicts) = crate::records::first_of_each_key(
        prepared.rows(),
        key,
        |a, b| same_values(a, &Stored::from(b)),
        &mut counts,
    );
    for chunk in unique.chunks(SPAN) {
        // What is stored already in the span's time range (usually nothing).
        let (lo, hi) = chunk
            .iter()
            .fold((None::<&str>, None::<&str>), |(lo, hi), e| {
                (
                    Some(lo.map_or(&*e.local_text, |l| l.min(&*e.local_text))),
                    Some(hi.map_or(&*e.local_text, |h| h.max(&*e.local_text))),
                )
            });
        let stored = sqlx::query(
            "SELECT kind, local_time, record_no, quantities, status, event_code, checked FROM readings \
             WHERE device_id = ? AND kind IN ('interval', 'daily', 'monthly') AND local_time BETWEEN ? AND ?",
        )
        .bind(device.0)
        .bind(lo)
        .bind(hi)
        .fetch_all(&mut **tx)
        .await
        .map_err(StoreError::query("reading stored readings"))?;
        let mut by_key = std::collections::HashMap::with_capacity(stored.len());
        for r in &stored {
            let err = corrupt("stored reading");
            let key: (String, String, i64) = (
                r.try_get(0).map_err(&err)?,
                r.try_get(1).map_err(&err)?,
                r.try_get(2).map_err(&err)?,
            );
            let values = Stored {
                quantities: r.try_get(3).map_err(&err)?,
                status: r.try_get(4).map_err(&err)?,
                event_code: r.try_get(5).map_err(&err)?,
                checked: r.try_get(6).map_err(&err)?,
            };
            by_key.insert(key, values);
        }
        let mut fresh = Vec::with_capacity(chunk.len());
        for &e in chunk {
            if by_key.is_empty() {
                fresh.push(e);
                continue;
            }
            match by_key.get(&(e.kind.to_owned(), e.local_text.to_string(), e.record_no)) {
                None => fresh.push(e),
                Some(v) if same_values(e, v) => counts.duplicate += 1,
                Some(_) => {
                    counts.conflicting += 1;
                    conflicts.push(e);
                }
            }
        }
        if fresh.is_empty() {
            continue;
        }
        // Each batch's statement is built and bound while sqlx's worker
        // thread runs the one before: the two are about a quarter and three
        // quarters of the time a batch takes, and ran one after the other.
        let batches: Vec<&[&Encoded]> = fresh.chunks(BATCH).collect();
        let mut next = batches.first().map(|b| insert_readings(device, id, b));
        for following in batches.iter().skip(1).map(Some).chain([None]) {
            let Some(q) = next.take() else { break };
            let (done, built) = futures::join!(q.execute(&mut **tx), async {
                following.map(|b| insert_readings(device, id, b))
            });
            next = built;
            counts.new += done
                .map_err(StoreError::query("storing readings"))?
                .rows_affected();
        }
    }
    for e in conflicts {
        // Record each differing version once.
        let q = sqlx::query(
            "INSERT INTO reading_conflicts (device_id, kind, local_time, record_no, utc_offset, quantities, \
             status, event_code, checked, upload_id, line, recorded_at) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM reading_conflicts \
             WHERE device_id = ? AND kind = ? AND local_time = ? AND record_no = ? AND quantities = ? \
             AND status = ? AND checked = ?)",
        );
        bind_row(q, device, id, e)
            .bind(now)
            .bind(device.0)
            .bind(e.kind)
            .bind(&*e.local_text)
            .bind(e.record_no)
            .bind(&*e.quantities)
            .bind(&*e.status)
            .bind(&*e.checked)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query("recording a conflicting reading"))?;
    }
    for e in &parsed.events {
        sqlx::query(
            "INSERT INTO events (device_id, local_time, record_no, code, utc_offset, checked, upload_id, line) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(device.0)
        .bind(local_text(e.local_time))
        .bind(e.record_no.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1))
        .bind(i64::from(e.code))
        .bind(e.utc_offset_seconds)
        .bind(json(&e.check)?)
        .bind(id.0)
        .bind(i64::from(e.line))
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("storing an event"))?;
    }
    let events = parsed.events.len() as u64;
    let reason = (!parsed.warnings.is_empty()).then(|| parsed.warnings.join("; "));
    // Only if still waiting: a worker whose claim expired while another
    // finished the upload writes nothing (the caller rolls back).
    let done = sqlx::query(
        "UPDATE ingest SET state = 'parsed', format = ?, reason = ?, truncated = ?, records_total = ?, \
         records_new = ?, records_duplicate = ?, records_conflicting = ?, events_total = ?, model = ?, \
         serial = ?, finished_at = ? WHERE upload_id = ? AND state = 'pending'",
    )
    .bind(&parsed.format)
    .bind(&reason)
    .bind(i64::from(parsed.truncated))
    .bind(counts.total as i64)
    .bind(counts.new as i64)
    .bind(counts.duplicate as i64)
    .bind(counts.conflicting as i64)
    .bind(events as i64)
    .bind(&parsed.meta.model)
    .bind(&parsed.meta.serial)
    .bind(now)
    .bind(id.0)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("recording an ingest outcome"))?;
    crate::still_pending(done.rows_affected(), id)?;
    Ok(IngestInfo {
        status: IngestState::Parsed,
        format: Some(parsed.format.clone()),
        records: counts,
        events,
        reason,
        truncated: parsed.truncated,
        model: parsed.meta.model.clone(),
        serial: parsed.meta.serial.clone(),
    })
}

pub(crate) async fn readings(pool: &SqlitePool, f: &ReadingFilter) -> Result<Vec<ArchiveRecord>> {
    let rows = sqlx::query(
        "SELECT kind, local_time, record_no, utc_offset, quantities, status, event_code, checked, line \
         FROM readings WHERE device_id = ? AND (? IS NULL OR kind = ?) \
         AND (? IS NULL OR local_time >= ?) AND (? IS NULL OR local_time <= ?) \
         ORDER BY local_time, kind, record_no",
    )
    .bind(f.device_id.0)
    .bind(f.kind.map(ArchiveKind::as_str))
    .bind(f.kind.map(ArchiveKind::as_str))
    .bind(f.from.map(local_text))
    .bind(f.from.map(local_text))
    .bind(f.to.map(local_text))
    .bind(f.to.map(local_text))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading readings"))?;
    rows.iter().map(reading_from_row).collect()
}

pub(crate) async fn events(pool: &SqlitePool, f: &ReadingFilter) -> Result<Vec<EventRecord>> {
    let rows = sqlx::query(
        "SELECT local_time, record_no, code, utc_offset, checked, line FROM events \
         WHERE device_id = ? AND (? IS NULL OR local_time >= ?) AND (? IS NULL OR local_time <= ?) \
         ORDER BY local_time, record_no",
    )
    .bind(f.device_id.0)
    .bind(f.from.map(local_text))
    .bind(f.from.map(local_text))
    .bind(f.to.map(local_text))
    .bind(f.to.map(local_text))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading events"))?;
    rows.iter()
        .map(|row| {
            let err = corrupt("event row");
            let local: String = row.try_get("local_time").map_err(&err)?;
            let checked: String = row.try_get("checked").map_err(&err)?;
            Ok(EventRecord {
                record_no: u64::try_from(row.try_get::<i64, _>("record_no").map_err(&err)?).ok(),
                local_time: local
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("event time {local:?}: {e}")))?,
                utc_offset_seconds: row
                    .try_get::<Option<i64>, _>("utc_offset")
                    .map_err(&err)?
                    .and_then(|o| i32::try_from(o).ok()),
                code: u16::try_from(row.try_get::<i64, _>("code").map_err(&err)?)
                    .map_err(|e| StoreError::Corrupt(format!("event code: {e}")))?,
                check: serde_json::from_str::<Check>(&checked)
                    .map_err(|e| StoreError::Corrupt(format!("event check: {e}")))?,
                line: u32::try_from(row.try_get::<i64, _>("line").map_err(&err)?).unwrap_or(0),
            })
        })
        .collect()
}

fn reading_from_row(row: &SqliteRow) -> Result<ArchiveRecord> {
    let err = corrupt("reading row");
    let kind: String = row.try_get("kind").map_err(&err)?;
    let local: String = row.try_get("local_time").map_err(&err)?;
    let record_no: i64 = row.try_get("record_no").map_err(&err)?;
    let quantities: String = row.try_get("quantities").map_err(&err)?;
    let status: String = row.try_get("status").map_err(&err)?;
    let checked: String = row.try_get("checked").map_err(&err)?;
    let de = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("reading {what}: {e}"));
    Ok(ArchiveRecord {
        kind: ArchiveKind::from_str(&kind).map_err(StoreError::Corrupt)?,
        record_no: u64::try_from(record_no).ok(),
        local_time: local
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("reading time {local:?}: {e}")))?,
        utc_offset_seconds: row
            .try_get::<Option<i64>, _>("utc_offset")
            .map_err(&err)?
            .and_then(|o| i32::try_from(o).ok()),
        quantities: serde_json::from_str::<Quantities>(&quantities)
            .map_err(|e| de("quantities", e))?,
        status: serde_json::from_str(&status).map_err(|e| de("status", e))?,
        event_code: row
            .try_get::<Option<i64>, _>("event_code")
            .map_err(&err)?
            .and_then(|c| u16::try_from(c).ok()),
        check: serde_json::from_str::<Check>(&checked).map_err(|e| de("check", e))?,
        line: u32::try_from(row.try_get::<i64, _>("line").map_err(&err)?).unwrap_or(0),
    })
}
