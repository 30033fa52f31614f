//! The ban list of device logins (administrators): list, add, lift.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use telegaz_domain::{Ban, Timestamp};
use telegaz_store::BanFilter;

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, limit};
use crate::Ctx;
use crate::auth::Auth;
use crate::bans::{BanRequest, create, lift};

#[derive(Deserialize)]
pub(crate) struct BanQuery {
    /// `true` (default): only bans in force.
    active: Option<bool>,
    limit: Option<u32>,
}

/// `GET /bans`: newest first.
pub(crate) async fn list(
    State(ctx): State<Ctx>,
    ApiQuery(q): ApiQuery<BanQuery>,
) -> ApiResult<Json<Value>> {
    let limit = limit(q.limit)?;
    let bans = ctx
        .db
        .list_bans(&BanFilter {
            active_at: q.active.unwrap_or(true).then(Timestamp::now),
            limit: Some(limit),
        })
        .await?;
    Ok(Json(json!({ "bans": bans })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewBanBody {
    address: Option<String>,
    login: Option<String>,
    /// `30m`, `12h`, `7d`; absent: until lifted.
    #[serde(rename = "for")]
    duration: Option<String>,
    reason: Option<String>,
}

/// `POST /bans`: 201 with the ban.
pub(crate) async fn add(
    State(ctx): State<Ctx>,
    auth: Auth,
    ApiJson(body): ApiJson<NewBanBody>,
) -> ApiResult<(StatusCode, Json<Ban>)> {
    let ban = create(
        &ctx,
        BanRequest {
            address: body.address.as_deref(),
            login: body.login.as_deref(),
            duration: body.duration.as_deref(),
            reason: body.reason.as_deref(),
        },
        &format!("api:{}", auth.user.name),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ban)))
}

/// `DELETE /bans/{ban}`: lift it (lifting a lifted ban changes nothing).
pub(crate) async fn remove(
    State(ctx): State<Ctx>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Ban>> {
    Ok(Json(
        lift(&ctx, id, &format!("api:{}", auth.user.name)).await?,
    ))
}
