//! The audit trail with filters: time, device, kind, login; newest first.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use telegaz_domain::{AuditEvent, AuditKind};
use telegaz_store::AuditFilter;

use super::{Common, html};
use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;

pub(crate) const PHRASES: &[(&str, &str, &str)] = &[
    ("audit_title", "Журнал аудита", "Audit log"),
    ("upload", "Файл", "Upload"),
    ("session", "Сеанс", "Session"),
];

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    pub since: Option<String>,
    pub until: Option<String>,
    pub device: Option<String>,
    pub kind: Option<String>,
    pub login: Option<String>,
    pub before: Option<i64>,
}

/// A date (`2026-11-25`, start of the UTC day) or an RFC 3339 instant.
fn parse_time(text: &str) -> Result<Option<jiff::Timestamp>, WebError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(Some(ts));
    }
    t.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| jiff::tz::TimeZone::UTC.to_timestamp(d.at(0, 0, 0, 0)).ok())
        .map(Some)
        .ok_or_else(|| {
            WebError::BadRequest(format!(
                "{t:?} is not a date (2026-11-25) or a time (2026-11-25T10:00:00Z)"
            ))
        })
}

/// The store's filter for a query (the page's and the API's).
pub(crate) async fn filter(ctx: &Ctx, q: &AuditQuery, limit: u32) -> Result<AuditFilter, WebError> {
    let device_id = match q.device.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => Some(
            ctx.db
                .device_by_name(name)
                .await?
                .ok_or_else(|| WebError::NotFound(format!("device {name:?}")))?
                .id,
        ),
        None => None,
    };
    let kind = match q.kind.as_deref().filter(|s| !s.is_empty()) {
        Some(k) => Some(k.parse::<AuditKind>().map_err(WebError::BadRequest)?),
        None => None,
    };
    Ok(AuditFilter {
        since: parse_time(q.since.as_deref().unwrap_or(""))?,
        until: parse_time(q.until.as_deref().unwrap_or(""))?,
        device_id,
        kind,
        login: q.login.clone().filter(|s| !s.trim().is_empty()),
        before_id: q.before,
        newest_first: true,
        limit: Some(limit),
    })
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Common,
    events: Vec<AuditEvent>,
    kinds: Vec<&'static str>,
    since: String,
    until: String,
    device: String,
    kind: String,
    login: String,
    older: Option<String>,
}

const PAGE: u32 = 200;

async fn page(
    State(ctx): State<Ctx>,
    auth: Auth,
    Query(q): Query<AuditQuery>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let f = filter(&ctx, &q, PAGE).await?;
    let events = ctx.db.list_audit(&f).await?;
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let older = (events.len() == PAGE as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten()
        .map(|last| {
            let enc = crate::auth::urlencode;
            format!(
                "/audit?since={}&until={}&device={}&kind={}&login={}&before={last}",
                enc(&s(&q.since)),
                enc(&s(&q.until)),
                enc(&s(&q.device)),
                enc(&s(&q.kind)),
                enc(&s(&q.login))
            )
        });
    html(&AuditPage {
        c: Common::new(&auth, &uri.to_string()),
        events,
        kinds: AuditKind::ALL.iter().map(|k| k.as_str()).collect(),
        since: s(&q.since),
        until: s(&q.until),
        device: s(&q.device),
        kind: s(&q.kind),
        login: s(&q.login),
        older,
    })
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new().route("/audit", get(page))
}
