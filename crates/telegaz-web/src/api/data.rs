//! A device's data over a range of local dates: hourly volumes, gas days,
//! event-log rows.

use axum::Json;
use axum::extract::State;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};
use telegaz_domain::gasday::{self, Flag};
use telegaz_domain::{ArchiveRecord, Check, Device};
use telegaz_store::ReadingFilter;

use super::{ApiError, ApiPath, ApiQuery, ApiResult, bad_request, find_device, local, num};
use crate::Ctx;
use crate::error::WebError;

/// The longest range one request covers, in days.
pub(crate) const MAX_DAYS: i32 = 366;

#[derive(Deserialize)]
pub(crate) struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

fn date(name: &str, value: Option<&str>) -> ApiResult<Date> {
    let value = value.ok_or_else(|| bad_request(format!("give {name}=YYYY-MM-DD")))?;
    value
        .parse::<Date>()
        .map_err(|e| bad_request(format!("{name}={value:?} is not a date (YYYY-MM-DD): {e}")))
}

/// The checked `from..=to` range of local dates.
fn range(q: &RangeQuery) -> ApiResult<(Date, Date)> {
    let from = date("from", q.from.as_deref())?;
    let to = date("to", q.to.as_deref())?;
    if from > to {
        return Err(bad_request(format!(
            "reversed range: from {from} is after to {to}"
        )));
    }
    let days = (to - from).get_days() + 1;
    if days > MAX_DAYS {
        return Err(bad_request(format!(
            "the range has {days} days; one request covers at most {MAX_DAYS}"
        )));
    }
    Ok((from, to))
}

fn next_day(d: Date) -> ApiResult<Date> {
    d.tomorrow()
        .map_err(|e| bad_request(format!("the day after {d}: {e}")))
}

fn zone(device: &Device) -> ApiResult<TimeZone> {
    TimeZone::get(&device.time_zone).map_err(|_| {
        ApiError(WebError::Unprocessable(format!(
            "device {} has time zone {:?}, which this system does not know; fix the device's time_zone",
            device.name, device.time_zone
        )))
    })
}

/// Readings from two hours before `from` (the first hour needs its
/// predecessor) to `to`.
async fn records(
    ctx: &Ctx,
    device: &Device,
    from: DateTime,
    to: DateTime,
) -> ApiResult<Vec<ArchiveRecord>> {
    Ok(ctx
        .db
        .readings(&ReadingFilter {
            device_id: device.id,
            kind: None,
            from: Some(from - SignedDuration::from_hours(2)),
            to: Some(to),
        })
        .await?)
}

pub(crate) fn flag_codes(f: &[Flag]) -> Vec<&'static str> {
    f.iter()
        .map(|f| match f {
            Flag::CounterDecreased => "counter_decreased",
            Flag::DailyMismatch => "daily_mismatch",
            Flag::MissingHours => "missing_hours",
            Flag::ConflictingReadings => "conflicting_readings",
            Flag::ImplausibleValue => "implausible_value",
        })
        .collect()
}

/// `GET /devices/{name}/readings`: hourly volumes whose hour ends after
/// `from` 00:00 and at or before the midnight after `to`.
pub(crate) async fn readings(
    State(ctx): State<Ctx>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let (from, to) = range(&q)?;
    let device = find_device(&ctx, &name).await?;
    let tz = zone(&device)?;
    let start = from.at(0, 0, 0, 0);
    let end = next_day(to)?.at(0, 0, 0, 0);
    let records = records(&ctx, &device, start, end).await?;
    let rows: Vec<Value> = gasday::hourly(&records, &tz)
        .iter()
        .filter(|h| h.hour_end_local > start && h.hour_end_local <= end)
        .map(|h| {
            json!({
                "hour_end_local": local(h.hour_end_local),
                "vb_m3": num(h.vb_m3),
                "vm_m3": num(h.vm_m3),
                "p_kpa": num(h.p_kpa),
                "t_c": num(h.t_c),
                "flags": flag_codes(&h.flags),
            })
        })
        .collect();
    Ok(Json(json!({
        "device": device.name.as_str(),
        "time_zone": device.time_zone,
        "from": from,
        "to": to,
        "readings": rows,
    })))
}

/// `GET /devices/{name}/daily`: the gas days `from..=to`.
pub(crate) async fn daily(
    State(ctx): State<Ctx>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let (from, to) = range(&q)?;
    let device = find_device(&ctx, &name).await?;
    let tz = zone(&device)?;
    let h = device.contract_hour;
    let start = from.at(h, 0, 0, 0);
    let end = next_day(to)?.at(h, 0, 0, 0);
    let records = records(&ctx, &device, start, end).await?;
    let now_local = tz.to_datetime(Timestamp::now());
    let rows: Vec<Value> = gasday::daily(&records, &tz, h, now_local)
        .iter()
        .filter(|d| d.gas_day >= from && d.gas_day <= to)
        .map(|d| {
            json!({
                "gas_day": d.gas_day,
                "vb_m3": num(Some(d.vb_m3)),
                "vm_m3": num(Some(d.vm_m3)),
                "hours": d.hours,
                "complete": d.complete,
                "final": d.is_final,
                "device_vb_m3": num(d.device_vb_m3),
                "flags": flag_codes(&d.flags),
            })
        })
        .collect();
    Ok(Json(json!({
        "device": device.name.as_str(),
        "time_zone": device.time_zone,
        "contract_hour": h,
        "from": from,
        "to": to,
        "days": rows,
    })))
}

/// `GET /devices/{name}/events`: event-log rows from `from` 00:00 to the
/// midnight after `to` (excluded).
pub(crate) async fn events(
    State(ctx): State<Ctx>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let (from, to) = range(&q)?;
    let device = find_device(&ctx, &name).await?;
    let start = from.at(0, 0, 0, 0);
    let end = next_day(to)?.at(0, 0, 0, 0);
    let events = ctx
        .db
        .events(&ReadingFilter {
            device_id: device.id,
            kind: None,
            from: Some(start),
            to: Some(end),
        })
        .await?;
    let rows: Vec<Value> = events
        .iter()
        .filter(|e| e.local_time >= start && e.local_time < end)
        .map(|e| {
            let (check, check_text) = match &e.check {
                Check::Ok => ("ok", None),
                Check::Failed(t) => ("failed", Some(t.as_str())),
                Check::Absent => ("absent", None),
            };
            json!({
                "local_time": local(e.local_time),
                "record_no": e.record_no,
                "code": e.code,
                "code_hex": format!("0x{:04X}", e.code),
                "utc_offset_seconds": e.utc_offset_seconds,
                "check": check,
                "check_text": check_text,
                "line": e.line,
            })
        })
        .collect();
    Ok(Json(json!({
        "device": device.name.as_str(),
        "time_zone": device.time_zone,
        "from": from,
        "to": to,
        "events": rows,
    })))
}
