//! Uploads: list, show, the original bytes, parse again.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use telegaz_domain::{IngestState, Upload, UploadId, UploadStatus};
use telegaz_store::UploadFilter;

use super::{ApiError, ApiPath, ApiQuery, ApiResult, bad_request, find_device, limit};
use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;

#[derive(Deserialize)]
pub(crate) struct UploadsQuery {
    device: Option<String>,
    /// Ingest state: pending, parsed, quarantined, failed.
    state: Option<String>,
    /// Transfer status: receiving, complete, partial, recovered.
    status: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// `GET /uploads`: newest first; `next_before` pages back.
pub(crate) async fn list(
    State(ctx): State<Ctx>,
    ApiQuery(q): ApiQuery<UploadsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = limit(q.limit)?;
    let ingest_state = q
        .state
        .as_deref()
        .map(str::parse::<IngestState>)
        .transpose()
        .map_err(bad_request)?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<UploadStatus>)
        .transpose()
        .map_err(bad_request)?;
    let device_id = match q.device.as_deref() {
        Some(name) => Some(find_device(&ctx, name).await?.id),
        None => None,
    };
    let uploads = ctx
        .db
        .list_uploads(&UploadFilter {
            device_id,
            status,
            since: None,
            before_id: q.before.map(UploadId),
            ingest_state,
            limit: Some(limit),
        })
        .await?;
    let next_before = (uploads.len() == limit as usize)
        .then(|| uploads.last().map(|u| u.id))
        .flatten();
    Ok(Json(
        json!({ "uploads": uploads, "next_before": next_before }),
    ))
}

async fn find(ctx: &Ctx, id: i64) -> ApiResult<Upload> {
    ctx.db
        .upload(UploadId(id))
        .await?
        .ok_or_else(|| ApiError(WebError::NotFound(format!("upload #{id}"))))
}

/// `GET /uploads/{id}`.
pub(crate) async fn one(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Upload>> {
    Ok(Json(find(&ctx, id).await?))
}

/// RFC 5987 `ext-value` characters (attr-char); everything else is %-encoded.
fn rfc5987(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `attachment` under a server-made name, with the client's name (its last
/// path segment) as `filename*`, fully percent-encoded: nothing of it can
/// end the header or add a parameter.
pub(crate) fn disposition(id: UploadId, original: &str) -> HeaderValue {
    let base = original.rsplit(['/', '\\']).next().unwrap_or("");
    let mut value = format!("attachment; filename=\"upload-{id}.bin\"");
    if !base.is_empty() {
        let _ = write!(value, "; filename*=UTF-8''{}", rfc5987(base));
    }
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// `GET /uploads/{id}/raw`: the bytes exactly as received.
pub(crate) async fn raw(State(ctx): State<Ctx>, ApiPath(id): ApiPath<i64>) -> ApiResult<Response> {
    let upload = find(&ctx, id).await?;
    Ok(crate::pages::uploads::stream_upload(&ctx, &upload).await?)
}

/// `POST /uploads/{id}/reparse`: queue the upload for ingest again.
pub(crate) async fn reparse(
    State(ctx): State<Ctx>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let upload = find(&ctx, id).await?;
    crate::pages::uploads::requeue(&ctx, &auth, &upload, "the API").await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "upload_id": upload.id, "ingest": "pending" })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_cannot_carry_header_syntax() {
        let v = disposition(UploadId(7), "dir/a \"b\";\r\nX-Evil: 1 я.txt");
        let text = v.to_str().unwrap_or("");
        assert_eq!(
            text,
            "attachment; filename=\"upload-7.bin\"; filename*=UTF-8''a%20%22b%22%3B%0D%0AX-Evil%3A%201%20%D1%8F.txt"
        );
        assert_eq!(
            disposition(UploadId(1), "").to_str().unwrap_or(""),
            "attachment; filename=\"upload-1.bin\""
        );
    }
}
