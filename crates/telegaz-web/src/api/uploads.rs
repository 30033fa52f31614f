//! Uploads: list, show, the original bytes, parse again.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use telegaz_domain::{AuditKind, IngestState, NewAuditEvent, Upload, UploadId, UploadStatus};
use telegaz_store::UploadFilter;
use tokio::io::AsyncReadExt;

use super::{ApiError, ApiPath, ApiQuery, ApiResult, bad_request, find_device, limit};
use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;
use telegaz_domain::Role;

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
    let sha = upload.sha256.ok_or_else(|| {
        ApiError(WebError::NotFound(format!(
            "the bytes of upload #{id} (it has not finished arriving)"
        )))
    })?;
    let mut file = ctx.spool.open_object(&sha).await.map_err(|e| {
        tracing::error!(upload = id, error = %e, "the spool file of an upload cannot be opened");
        ApiError(WebError::Internal(e.to_string()))
    })?;
    let mut bytes = Vec::with_capacity(usize::try_from(upload.size).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .await
        .map_err(|e| ApiError(WebError::Internal(format!("reading upload #{id}: {e}"))))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CONTENT_DISPOSITION,
                disposition(upload.id, &upload.original_name),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /uploads/{id}/reparse`: queue the upload for ingest again.
pub(crate) async fn reparse(
    State(ctx): State<Ctx>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    // The route layer checked it already; say it here too.
    auth.require(Role::Operator)?;
    let upload = find(&ctx, id).await?;
    if upload.status != UploadStatus::Complete || upload.device_id.is_none() {
        return Err(ApiError(WebError::Conflict(format!(
            "upload #{id} is {}{}: only complete uploads of a known device are parsed",
            upload.status,
            if upload.device_id.is_none() {
                " and of no known device"
            } else {
                ""
            }
        ))));
    }
    ctx.db.enqueue_ingest(upload.id).await?;
    let mut e = NewAuditEvent::new(AuditKind::ReparseRequested, "ok");
    e.device_id = upload.device_id;
    e.upload_id = Some(upload.id);
    e.login = Some(auth.user.name.to_string());
    e.detail = format!(
        "re-parse of upload #{id} requested by {} via the API",
        auth.user.name
    );
    ctx.db.insert_audit(&[e]).await?;
    tracing::info!(upload = id, user = %auth.user.name, "re-parse requested through the API");
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
