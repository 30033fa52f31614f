//! The audit trail, newest first.

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use telegaz_domain::AuditKind;
use telegaz_store::AuditFilter;

use super::{ApiQuery, ApiResult, bad_request, find_device, limit};
use crate::Ctx;

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    since: Option<String>,
    until: Option<String>,
    device: Option<String>,
    kind: Option<String>,
    login: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// An instant (RFC 3339) or a date (its midnight, UTC).
fn instant(name: &str, value: Option<&str>) -> super::ApiResult<Option<Timestamp>> {
    let Some(value) = value else {
        return Ok(None);
    };
    if let Ok(t) = value.parse::<Timestamp>() {
        return Ok(Some(t));
    }
    value
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| jiff::tz::TimeZone::UTC.to_timestamp(d.at(0, 0, 0, 0)).ok())
        .map(Some)
        .ok_or_else(|| {
            bad_request(format!(
                "{name}={value:?} is neither an instant (2026-01-14T10:00:00Z) nor a date (2026-01-14)"
            ))
        })
}

/// `GET /audit`: `next_before` pages back in time.
pub(crate) async fn list(
    State(ctx): State<Ctx>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let limit = limit(q.limit)?;
    let kind = q
        .kind
        .as_deref()
        .map(str::parse::<AuditKind>)
        .transpose()
        .map_err(bad_request)?;
    let since = instant("since", q.since.as_deref())?;
    let until = instant("until", q.until.as_deref())?;
    let device_id = match q.device.as_deref() {
        Some(name) => Some(find_device(&ctx, name).await?.id),
        None => None,
    };
    let events = ctx
        .db
        .list_audit(&AuditFilter {
            since,
            until,
            device_id,
            kind,
            login: q.login,
            before_id: q.before,
            newest_first: true,
            limit: Some(limit),
        })
        .await?;
    let next_before = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(
        json!({ "events": events, "next_before": next_before }),
    ))
}
