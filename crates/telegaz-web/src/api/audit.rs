//! The audit trail, newest first.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiQuery, ApiResult, limit};
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

/// `GET /audit`: `next_before` pages back in time.
pub(crate) async fn list(
    State(ctx): State<Ctx>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let limit = limit(q.limit)?;
    let query = crate::pages::audit::AuditQuery {
        since: q.since,
        until: q.until,
        device: q.device,
        kind: q.kind,
        login: q.login,
        before: q.before,
    };
    let filter = crate::pages::audit::filter(&ctx, &query, limit).await?;
    let events = ctx.db.list_audit(&filter).await?;
    let next_before = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(
        json!({ "events": events, "next_before": next_before }),
    ))
}
