//! Alerts: list, acknowledge.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use telegaz_domain::{AlertKind, Role};
use telegaz_store::AlertFilter;

use super::{ApiPath, ApiQuery, ApiResult, bad_request, find_device, limit};
use crate::Ctx;
use crate::auth::Auth;

#[derive(Deserialize)]
pub(crate) struct AlertQuery {
    /// `true` (default): only alerts that are not resolved.
    active: Option<bool>,
    device: Option<String>,
    kind: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// The store's filter for the API's (and the page's) query.
pub(crate) async fn filter(
    ctx: &Ctx,
    active: bool,
    device: Option<&str>,
    kind: Option<&str>,
    before: Option<i64>,
    limit: u32,
) -> ApiResult<AlertFilter> {
    let device_id = match device.filter(|d| !d.is_empty()) {
        Some(name) => Some(find_device(ctx, name).await?.id),
        None => None,
    };
    let kind = kind
        .filter(|k| !k.is_empty())
        .map(str::parse::<AlertKind>)
        .transpose()
        .map_err(bad_request)?;
    Ok(AlertFilter {
        active,
        device_id,
        kind,
        before_id: before,
        limit: Some(limit),
        ..AlertFilter::default()
    })
}

/// `GET /alerts`: newest first; `next_before` pages back.
pub(crate) async fn list(
    State(ctx): State<Ctx>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> ApiResult<Json<Value>> {
    let limit = limit(q.limit)?;
    let f = filter(
        &ctx,
        q.active.unwrap_or(true),
        q.device.as_deref(),
        q.kind.as_deref(),
        q.before,
        limit,
    )
    .await?;
    let alerts = ctx.db.list_alerts(&f).await?;
    let next_before = (alerts.len() == limit as usize)
        .then(|| alerts.last().map(|a| a.id))
        .flatten();
    Ok(Json(
        json!({ "alerts": alerts, "next_before": next_before }),
    ))
}

/// `POST /alerts/{alert}/ack`: someone takes it on.
pub(crate) async fn acknowledge(
    State(ctx): State<Ctx>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<telegaz_domain::Alert>> {
    auth.require(Role::Operator)?;
    let alert = ctx
        .db
        .acknowledge_alert(id, auth.user.name.as_str(), jiff::Timestamp::now())
        .await?;
    tracing::info!(alert = id, user = %auth.user.name, "alert acknowledged");
    Ok(Json(alert))
}
