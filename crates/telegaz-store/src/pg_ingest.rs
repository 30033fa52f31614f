//! PostgreSQL side of the ingest pipeline: the queue, readings, conflicts,
//! events, and the yearly partitions of readings and events.

use std::collections::HashSet;
use std::str::FromStr;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use telegaz_domain::{
    ArchiveKind, ArchiveRecord, Check, DeviceId, EventRecord, IngestInfo, IngestState, ParsedFile,
    Quantities, RecordCounts, Timestamp, UploadId,
};

use crate::pg_core::{Placeholders, begin};
use crate::pg_time::{PgLocal, PgTime};
use crate::postgres::PgDatabase;
use crate::{ReadingFilter, RequeueFilter, Result, StoreError};

/// Years of partitions kept ready beyond the current one.
pub(crate) const PARTITION_YEARS_AHEAD: i32 = 2;

/// Rows per statement when storing (arrays, so no parameter limit applies).
const BATCH: usize = 4096;

fn corrupt(what: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The current year (UTC).
fn this_year() -> i32 {
    i32::from(jiff::tz::TimeZone::UTC.to_datetime(Timestamp::now()).year())
}

/// Make sure the partitions of readings and events exist from last year to
/// [`PARTITION_YEARS_AHEAD`] years ahead. Runs at open and again when the
/// year turns while the process runs; cheap when there is nothing to do.
pub(crate) async fn ensure_partitions(db: &PgDatabase) -> Result<()> {
    let year = this_year();
    if db.partitions_year() == Some(year) {
        return Ok(());
    }
    sqlx::query("SELECT telegaz_ensure_partitions($1, $2)")
        .bind(year - 1)
        .bind(year + PARTITION_YEARS_AHEAD)
        .execute(&db.pool)
        .await
        .map_err(StoreError::query(
            "creating the partitions of the coming years",
        ))?;
    db.set_partitions_year(year);
    Ok(())
}

/// The `ingest` columns of an upload row (LEFT JOINed; all NULL when not queued).
pub(crate) fn ingest_from_row(row: &PgRow) -> Result<Option<IngestInfo>> {
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
        truncated: row.try_get("ingest_truncated").map_err(&err)?,
        model: row.try_get("ingest_model").map_err(&err)?,
        serial: row.try_get("ingest_serial").map_err(&err)?,
    }))
}

const ENQUEUE_CONFLICT: &str = "ON CONFLICT (upload_id) DO UPDATE SET state = 'pending', \
     attempts = 0, format = NULL, reason = NULL, truncated = FALSE, records_total = 0, \
     records_new = 0, records_duplicate = 0, records_conflicting = 0, events_total = 0, \
     queued_at = excluded.queued_at, finished_at = NULL, claimed_until = NULL";

/// Queue an upload (again): its earlier outcome is cleared, its records stay.
pub(crate) async fn enqueue(conn: &mut PgConnection, id: UploadId, now: PgTime) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO ingest (upload_id, state, queued_at) VALUES ($1, 'pending', $2) {ENQUEUE_CONFLICT}"
    ));
    sqlx::query(sql)
        .bind(id.0)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("queueing an upload for ingest"))?;
    Ok(())
}

pub(crate) async fn enqueue_ingest(db: &PgDatabase, id: UploadId) -> Result<()> {
    let mut conn = db
        .pool
        .acquire()
        .await
        .map_err(StoreError::query("getting a connection"))?;
    enqueue(&mut conn, id, PgTime(Timestamp::now())).await
}

pub(crate) async fn requeue_ingest(
    db: &PgDatabase,
    filter: &RequeueFilter,
) -> Result<Vec<UploadId>> {
    // One statement: choose and queue together.
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO ingest (upload_id, state, queued_at) \
         SELECT u.id, 'pending', $4 FROM uploads u LEFT JOIN ingest i ON i.upload_id = u.id \
         WHERE u.status = 'complete' AND u.device_id IS NOT NULL \
         AND ($1::int8 IS NULL OR u.device_id = $1) AND ($2::text IS NULL OR i.state = $2) \
         AND ($3::timestamptz IS NULL OR COALESCE(u.received_at, u.started_at) >= $3) \
         ORDER BY u.id {ENQUEUE_CONFLICT} RETURNING upload_id"
    ));
    let mut ids: Vec<i64> = sqlx::query_scalar(sql)
        .bind(filter.device_id.map(|d| d.0))
        .bind(filter.state.map(IngestState::as_str))
        .bind(filter.since.map(PgTime))
        .bind(PgTime(Timestamp::now()))
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("queueing uploads to re-parse"))?;
    ids.sort_unstable();
    Ok(ids.into_iter().map(UploadId).collect())
}

/// Oldest first. Rows under another worker's live claim, and rows another
/// worker holds locked right now (claiming or storing them), are passed
/// over. Times are the database server's, so that receivers whose clocks
/// differ agree on when a claim ends.
pub(crate) async fn pending_ingest(db: &PgDatabase, limit: u32) -> Result<Vec<UploadId>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT upload_id FROM ingest WHERE state = 'pending' \
         AND (claimed_until IS NULL OR claimed_until <= now()) ORDER BY upload_id LIMIT $1 \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(i64::from(limit))
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query("reading the ingest queue"))?;
    Ok(ids.into_iter().map(UploadId).collect())
}

pub(crate) async fn ingest_backlog(db: &PgDatabase) -> Result<(u64, Option<Timestamp>)> {
    let row = sqlx::query("SELECT count(*), min(queued_at) FROM ingest WHERE state = 'pending'")
        .fetch_one(&db.pool)
        .await
        .map_err(StoreError::query("measuring the ingest backlog"))?;
    let err = corrupt("ingest backlog");
    let n: i64 = row.try_get(0).map_err(&err)?;
    let oldest: Option<PgTime> = row.try_get(1).map_err(&err)?;
    Ok((count(n), oldest.map(|t| t.0)))
}

/// One conditional `UPDATE`: of two workers claiming the same row, the
/// second waits for the first's commit, sees the live claim and gets nothing.
pub(crate) async fn begin_ingest_attempt(
    db: &PgDatabase,
    id: UploadId,
    lease: std::time::Duration,
) -> Result<Option<u32>> {
    let n: Option<i32> = sqlx::query_scalar(
        "UPDATE ingest SET attempts = attempts + 1, \
         claimed_until = now() + make_interval(secs => $2) \
         WHERE upload_id = $1 AND state = 'pending' \
         AND (claimed_until IS NULL OR claimed_until <= now()) RETURNING attempts",
    )
    .bind(id.0)
    .bind(lease.as_secs_f64())
    .fetch_optional(&db.pool)
    .await
    .map_err(StoreError::query("claiming an upload for ingest"))?;
    Ok(n.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
}

/// One statement for the whole group; rows another worker holds locked
/// right now are skipped (the caller claims those one by one).
pub(crate) async fn begin_first_ingest_attempts(
    db: &PgDatabase,
    ids: &[UploadId],
    lease: std::time::Duration,
) -> Result<Vec<UploadId>> {
    let wanted: Vec<i64> = ids.iter().map(|i| i.0).collect();
    let mut got: Vec<i64> = sqlx::query_scalar(
        "UPDATE ingest SET attempts = 1, claimed_until = now() + make_interval(secs => $2) \
         WHERE upload_id IN (SELECT upload_id FROM ingest WHERE upload_id = ANY($1) \
         AND state = 'pending' AND attempts = 0 \
         AND (claimed_until IS NULL OR claimed_until <= now()) \
         ORDER BY upload_id FOR UPDATE SKIP LOCKED) RETURNING upload_id",
    )
    .bind(&wanted)
    .bind(lease.as_secs_f64())
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query("claiming uploads for ingest"))?;
    got.sort_unstable();
    Ok(wanted
        .into_iter()
        .filter(|w| got.binary_search(w).is_ok())
        .map(UploadId)
        .collect())
}

pub(crate) async fn finish_ingest(
    db: &PgDatabase,
    id: UploadId,
    state: IngestState,
    reason: &str,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE ingest SET state = $1, reason = $2, finished_at = $3, records_total = 0, \
         records_new = 0, records_duplicate = 0, records_conflicting = 0, events_total = 0 \
         WHERE upload_id = $4 AND state = 'pending'",
    )
    .bind(state.as_str())
    .bind(reason)
    .bind(PgTime(Timestamp::now()))
    .bind(id.0)
    .execute(&db.pool)
    .await
    .map_err(StoreError::query("recording an ingest outcome"))?;
    crate::still_pending(done.rows_affected(), id)
}

use crate::encoded::{Encoded, json};

fn record_no(n: Option<u64>) -> i64 {
    n.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1)
}

type Key = (&'static str, jiff::civil::DateTime, i64);

fn key(e: &Encoded) -> Key {
    (e.kind, e.local, e.record_no)
}

fn same_values(e: &Encoded, other: &Encoded) -> bool {
    e.quantities == other.quantities
        && e.status == other.status
        && e.event_code == other.event_code
        && e.checked == other.checked
}

/// Column arrays of a set of readings, for `UNNEST`.
#[derive(Default)]
struct Columns<'a> {
    kind: Vec<&'a str>,
    local: Vec<PgLocal>,
    record_no: Vec<i64>,
    utc_offset: Vec<Option<i32>>,
    quantities: Vec<&'a str>,
    status: Vec<&'a str>,
    event_code: Vec<Option<i32>>,
    checked: Vec<&'a str>,
    line: Vec<i32>,
}

impl<'a> Columns<'a> {
    fn of(rows: &[&'a Encoded]) -> Self {
        let mut c = Columns::default();
        for e in rows {
            c.kind.push(e.kind);
            c.local.push(PgLocal(e.local));
            c.record_no.push(e.record_no);
            c.utc_offset.push(e.utc_offset);
            c.quantities.push(&e.quantities);
            c.status.push(&e.status);
            c.event_code.push(e.event_code);
            c.checked.push(&e.checked);
            c.line.push(e.line);
        }
        c
    }
}

/// The nine reading columns as `UNNEST` over `$3`…`$11`.
const UNNEST_READINGS: &str = "UNNEST($3::text[], $4::timestamp[], $5::int8[], $6::int4[], \
     $7::text[], $8::text[], $9::int4[], $10::text[], $11::int4[]) WITH ORDINALITY \
     AS x(kind, local_time, record_no, utc_offset, quantities, status, event_code, checked, line, n)";

fn bind_columns<'q>(q: PgQuery<'q>, device: DeviceId, id: UploadId, c: Columns<'q>) -> PgQuery<'q> {
    q.bind(device.0)
        .bind(id.0)
        .bind(c.kind)
        .bind(c.local)
        .bind(c.record_no)
        .bind(c.utc_offset)
        .bind(c.quantities)
        .bind(c.status)
        .bind(c.event_code)
        .bind(c.checked)
        .bind(c.line)
}

/// Store a parsed file's rows. Same key, same values: duplicate. Same key,
/// different values: kept in `reading_conflicts`, the first stays.
///
/// Rows go in sorted batches of one `INSERT … SELECT FROM UNNEST … ON
/// CONFLICT DO NOTHING RETURNING` each; only the rows that were not inserted
/// (usually none) are then compared with what is stored. The ingest of one
/// device takes a transaction-scoped advisory lock, so that two workers
/// storing overlapping files of one device count duplicates and conflicts
/// as if one came after the other (receivers never wait for it).
pub(crate) async fn store_parsed(
    db: &PgDatabase,
    id: UploadId,
    device: DeviceId,
    parsed: &ParsedFile,
) -> Result<IngestInfo> {
    let prepared = crate::PreparedFile::new(parsed.clone())?;
    store_parsed_many(db, &[(id, device, &prepared)])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt(format!("upload #{}: nothing was stored", id.0)))
}

/// Several uploads in one transaction: all stored, or none. The devices'
/// advisory locks are taken up front in ascending order, so that two
/// workers storing files of the same devices cannot deadlock.
pub(crate) async fn store_parsed_many(
    db: &PgDatabase,
    files: &[(UploadId, DeviceId, &crate::PreparedFile)],
) -> Result<Vec<IngestInfo>> {
    ensure_partitions(db).await?;
    let now = PgTime(Timestamp::now());
    let mut devices: Vec<i64> = files.iter().map(|f| f.1.0).collect();
    devices.sort_unstable();
    devices.dedup();
    let mut tx = begin(db).await?;
    for device in devices {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ingest_lock_key(DeviceId(device)))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(
                "waiting for another ingest of the same device",
            ))?;
    }
    let mut infos = Vec::with_capacity(files.len());
    for (id, device, parsed) in files {
        infos.push(store_one(&mut tx, *id, *device, parsed, now).await?);
    }
    tx.commit()
        .await
        .map_err(StoreError::query("committing parsed records"))?;
    Ok(infos)
}

async fn store_one(
    tx: &mut PgConnection,
    id: UploadId,
    device: DeviceId,
    prepared: &crate::PreparedFile,
    now: PgTime,
) -> Result<IngestInfo> {
    let parsed = prepared.parsed();
    let mut counts = RecordCounts {
        total: parsed.records.len() as u64,
        ..RecordCounts::default()
    };
    // A key repeated inside the file is compared with its first occurrence.
    let (mut unique, mut conflicts) =
        crate::records::first_of_each_key(prepared.rows(), key, same_values, &mut counts);
    // Key order: concurrent writers meet the same keys in the same order.
    unique.sort_by_key(|e| key(e));

    for chunk in unique.chunks(BATCH) {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO readings (device_id, kind, local_time, record_no, utc_offset, quantities, \
             status, event_code, checked, upload_id, line) \
             SELECT $1, kind, local_time, record_no, utc_offset, quantities::jsonb, status::jsonb, \
             event_code, checked::jsonb, $2, line FROM {UNNEST_READINGS} ORDER BY n \
             ON CONFLICT (device_id, kind, local_time, record_no) DO NOTHING \
             RETURNING kind, local_time, record_no"
        ));
        let inserted = bind_columns(sqlx::query(sql), device, id, Columns::of(chunk))
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::query("storing readings"))?;
        counts.new += inserted.len() as u64;
        if inserted.len() == chunk.len() {
            continue;
        }
        let mut new_keys = HashSet::with_capacity(inserted.len());
        for r in &inserted {
            let err = corrupt("stored reading");
            let kind: String = r.try_get(0).map_err(&err)?;
            let local: PgLocal = r.try_get(1).map_err(&err)?;
            let no: i64 = r.try_get(2).map_err(&err)?;
            new_keys.insert((kind, local.0, no));
        }
        let rest: Vec<&Encoded> = chunk
            .iter()
            .copied()
            .filter(|e| !new_keys.contains(&(e.kind.to_owned(), e.local, e.record_no)))
            .collect();
        // Compare the rest with what is stored, in the database (JSONB equality).
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT x.n, (r.quantities = x.quantities::jsonb AND r.status = x.status::jsonb \
             AND r.event_code IS NOT DISTINCT FROM x.event_code AND r.checked = x.checked::jsonb) \
             FROM {UNNEST_READINGS} JOIN readings r ON r.device_id = $1 AND r.kind = x.kind \
             AND r.local_time = x.local_time AND r.record_no = x.record_no"
        ));
        let compared = bind_columns(sqlx::query(sql), device, id, Columns::of(&rest))
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::query("comparing readings with the stored ones"))?;
        if compared.len() != rest.len() {
            return Err(StoreError::Conflict(format!(
                "{} readings were neither stored nor found; try the upload again",
                rest.len() - compared.len()
            )));
        }
        for r in &compared {
            let err = corrupt("reading comparison");
            let n: i64 = r.try_get(0).map_err(&err)?;
            let same: bool = r.try_get(1).map_err(&err)?;
            if same {
                counts.duplicate += 1;
            } else {
                counts.conflicting += 1;
                let e = usize::try_from(n - 1)
                    .ok()
                    .and_then(|i| rest.get(i))
                    .ok_or_else(|| StoreError::Corrupt(format!("reading comparison row {n}")))?;
                conflicts.push(e);
            }
        }
    }
    store_conflicts(tx, device, id, &conflicts, now).await?;
    let events = store_events(tx, device, id, &parsed.events).await?;
    let reason = (!parsed.warnings.is_empty()).then(|| parsed.warnings.join("; "));
    // Only if still waiting: a worker whose claim expired while another
    // finished the upload rolls back (dropping `tx`) and writes nothing.
    let done = sqlx::query(
        "UPDATE ingest SET state = 'parsed', format = $1, reason = $2, truncated = $3, \
         records_total = $4, records_new = $5, records_duplicate = $6, records_conflicting = $7, \
         events_total = $8, model = $9, serial = $10, finished_at = $11 \
         WHERE upload_id = $12 AND state = 'pending'",
    )
    .bind(&parsed.format)
    .bind(&reason)
    .bind(parsed.truncated)
    .bind(signed(counts.total))
    .bind(signed(counts.new))
    .bind(signed(counts.duplicate))
    .bind(signed(counts.conflicting))
    .bind(signed(events))
    .bind(&parsed.meta.model)
    .bind(&parsed.meta.serial)
    .bind(now)
    .bind(id.0)
    .execute(&mut *tx)
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

/// The advisory lock that one device's ingest holds: a fixed tag in the
/// high half, so that it does not meet other advisory locks.
fn ingest_lock_key(device: DeviceId) -> i64 {
    const TAG: i64 = 0x7467_0001; // "tg", lock kind 1
    (TAG << 32) ^ (device.0 & 0xffff_ffff)
}

/// Record each differing version of a key once.
async fn store_conflicts(
    conn: &mut PgConnection,
    device: DeviceId,
    id: UploadId,
    conflicts: &[&Encoded],
    now: PgTime,
) -> Result<()> {
    let mut seen = HashSet::new();
    let once: Vec<&Encoded> = conflicts
        .iter()
        .copied()
        .filter(|e| seen.insert((key(e), &e.quantities, &e.status, &e.checked)))
        .collect();
    for chunk in once.chunks(BATCH) {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO reading_conflicts (device_id, kind, local_time, record_no, utc_offset, \
             quantities, status, event_code, checked, upload_id, line, recorded_at) \
             SELECT $1, kind, local_time, record_no, utc_offset, quantities::jsonb, status::jsonb, \
             event_code, checked::jsonb, $2, line, $12 FROM {UNNEST_READINGS} \
             WHERE NOT EXISTS (SELECT 1 FROM reading_conflicts c WHERE c.device_id = $1 \
             AND c.kind = x.kind AND c.local_time = x.local_time AND c.record_no = x.record_no \
             AND c.quantities = x.quantities::jsonb AND c.status = x.status::jsonb \
             AND c.checked = x.checked::jsonb) ORDER BY n"
        ));
        bind_columns(sqlx::query(sql), device, id, Columns::of(chunk))
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::query("recording conflicting readings"))?;
    }
    Ok(())
}

/// Event-log rows, once per key; returns how many the file had.
async fn store_events(
    conn: &mut PgConnection,
    device: DeviceId,
    id: UploadId,
    events: &[EventRecord],
) -> Result<u64> {
    let mut rows: Vec<(PgLocal, i64, i32, Option<i32>, String, i32)> = events
        .iter()
        .map(|e| {
            Ok((
                PgLocal(e.local_time),
                record_no(e.record_no),
                i32::from(e.code),
                e.utc_offset_seconds,
                json(&e.check)?,
                i32::try_from(e.line).unwrap_or(i32::MAX),
            ))
        })
        .collect::<Result<_>>()?;
    // Key order, as for readings; the first of a repeated key stays.
    rows.sort_by_key(|r| (r.0.0, r.1, r.2));
    for chunk in rows.chunks(BATCH) {
        sqlx::query(
            "INSERT INTO events (device_id, local_time, record_no, code, utc_offset, checked, \
             upload_id, line) \
             SELECT $1, local_time, record_no, code, utc_offset, checked::jsonb, $2, line \
             FROM UNNEST($3::timestamp[], $4::int8[], $5::int4[], $6::int4[], $7::text[], \
             $8::int4[]) WITH ORDINALITY AS x(local_time, record_no, code, utc_offset, checked, line, n) \
             ORDER BY n ON CONFLICT DO NOTHING",
        )
        .bind(device.0)
        .bind(id.0)
        .bind(chunk.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.1).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.2).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.3).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.4.as_str()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.5).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("storing events"))?;
    }
    Ok(events.len() as u64)
}

/// `kind = ANY(…)` with every kind when none is asked for, so that the
/// primary key (device, kind, time) serves a time range either way.
fn kinds(kind: Option<ArchiveKind>) -> Vec<&'static str> {
    match kind {
        Some(k) => vec![k.as_str()],
        None => [
            ArchiveKind::Interval,
            ArchiveKind::Daily,
            ArchiveKind::Monthly,
        ]
        .iter()
        .map(|k| k.as_str())
        .collect(),
    }
}

/// ` AND local_time >= $n` / `<= $n` for the bounds that are set.
fn time_window(f: &ReadingFilter, n: &mut Placeholders) -> String {
    let mut sql = String::new();
    if f.from.is_some() {
        sql += &format!(" AND local_time >= {}", n.next());
    }
    if f.to.is_some() {
        sql += &format!(" AND local_time <= {}", n.next());
    }
    sql
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Bind the bounds [`time_window`] asked for.
fn bind_window<'q>(mut q: PgQuery<'q>, f: &ReadingFilter) -> PgQuery<'q> {
    if let Some(t) = f.from {
        q = q.bind(PgLocal(t));
    }
    if let Some(t) = f.to {
        q = q.bind(PgLocal(t));
    }
    q
}

pub(crate) async fn readings(db: &PgDatabase, f: &ReadingFilter) -> Result<Vec<ArchiveRecord>> {
    let mut n = Placeholders::default();
    let head = format!(
        "SELECT kind, local_time, record_no, utc_offset, quantities::text AS quantities, \
         status::text AS status, event_code, checked::text AS checked, line FROM readings \
         WHERE device_id = {} AND kind = ANY({})",
        n.next(),
        n.next()
    );
    let sql = format!(
        "{head}{} ORDER BY local_time, kind, record_no",
        time_window(f, &mut n)
    );
    // Built from the constant fragments above; every value is bound.
    let q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(f.device_id.0)
        .bind(kinds(f.kind));
    bind_window(q, f)
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("reading readings"))?
        .iter()
        .map(reading_from_row)
        .collect()
}

pub(crate) async fn events(db: &PgDatabase, f: &ReadingFilter) -> Result<Vec<EventRecord>> {
    let mut n = Placeholders::default();
    let head = format!(
        "SELECT local_time, record_no, code, utc_offset, checked::text AS checked, line \
         FROM events WHERE device_id = {}",
        n.next()
    );
    let sql = format!(
        "{head}{} ORDER BY local_time, record_no",
        time_window(f, &mut n)
    );
    // Built from the constant fragments above; every value is bound.
    let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(f.device_id.0);
    bind_window(q, f)
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("reading events"))?
        .iter()
        .map(|row| {
            let err = corrupt("event row");
            let checked: String = row.try_get("checked").map_err(&err)?;
            Ok(EventRecord {
                record_no: u64::try_from(row.try_get::<i64, _>("record_no").map_err(&err)?).ok(),
                local_time: row.try_get::<PgLocal, _>("local_time").map_err(&err)?.0,
                utc_offset_seconds: row.try_get("utc_offset").map_err(&err)?,
                code: u16::try_from(row.try_get::<i32, _>("code").map_err(&err)?)
                    .map_err(|e| StoreError::Corrupt(format!("event code: {e}")))?,
                check: serde_json::from_str::<Check>(&checked)
                    .map_err(|e| StoreError::Corrupt(format!("event check: {e}")))?,
                line: u32::try_from(row.try_get::<i32, _>("line").map_err(&err)?).unwrap_or(0),
            })
        })
        .collect()
}

fn reading_from_row(row: &PgRow) -> Result<ArchiveRecord> {
    let err = corrupt("reading row");
    let kind: String = row.try_get("kind").map_err(&err)?;
    let quantities: String = row.try_get("quantities").map_err(&err)?;
    let status: String = row.try_get("status").map_err(&err)?;
    let checked: String = row.try_get("checked").map_err(&err)?;
    let de = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("reading {what}: {e}"));
    Ok(ArchiveRecord {
        kind: ArchiveKind::from_str(&kind).map_err(StoreError::Corrupt)?,
        record_no: u64::try_from(row.try_get::<i64, _>("record_no").map_err(&err)?).ok(),
        local_time: row.try_get::<PgLocal, _>("local_time").map_err(&err)?.0,
        utc_offset_seconds: row.try_get("utc_offset").map_err(&err)?,
        quantities: serde_json::from_str::<Quantities>(&quantities)
            .map_err(|e| de("quantities", e))?,
        status: serde_json::from_str(&status).map_err(|e| de("status", e))?,
        event_code: row
            .try_get::<Option<i32>, _>("event_code")
            .map_err(&err)?
            .and_then(|c| u16::try_from(c).ok()),
        check: serde_json::from_str::<Check>(&checked).map_err(|e| de("check", e))?,
        line: u32::try_from(row.try_get::<i32, _>("line").map_err(&err)?).unwrap_or(0),
    })
}
