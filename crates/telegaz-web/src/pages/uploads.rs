//! Received files: the list, one file's record and parse result, a raw viewer
//! (text in a chosen or detected encoding, or hex), download of the original
//! bytes, and re-parse.

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use telegaz_domain::{AuditKind, IngestState, NewAuditEvent, Role, Upload, UploadId};
use telegaz_store::UploadFilter;
use tokio::io::AsyncReadExt;

use super::{Common, html};
use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;

pub(crate) const PHRASES: &[(&str, &str, &str)] = &[
    ("uploads_title", "Полученные файлы", "Received files"),
    ("upload_title", "Файл", "File"),
    ("ingest", "Разбор", "Parsing"),
    ("ingest_pending", "в очереди", "pending"),
    ("ingest_parsed", "разобран", "parsed"),
    ("ingest_quarantined", "в карантине", "quarantined"),
    ("ingest_failed", "ошибка", "failed"),
    ("ingest_none", "не разбирается", "not parsed"),
    ("upload_complete", "принят полностью", "complete"),
    ("upload_partial", "оборван", "partial"),
    ("upload_receiving", "принимается", "receiving"),
    ("upload_recovered", "восстановлен", "recovered"),
    ("reparse", "Разобрать заново", "Parse again"),
    (
        "reparse_queued",
        "Файл поставлен в очередь разбора.",
        "The file is queued for parsing.",
    ),
    ("download", "Скачать оригинал", "Download the original"),
    ("view_text", "Текст", "Text"),
    ("view_hex", "Шестнадцатеричный вид", "Hex"),
    ("encoding", "Кодировка", "Encoding"),
    ("enc_auto", "определить", "detect"),
    ("detected", "определена", "detected"),
    ("shown_first", "Показаны первые", "Showing the first"),
    ("bytes", "байт", "bytes"),
    ("sha256", "SHA-256", "SHA-256"),
    ("original_name_bytes", "Байты имени", "Name bytes"),
    ("path_in_device", "Путь у устройства", "Path on the device"),
    ("duplicate_of", "Повтор файла", "Duplicate of"),
    (
        "deleted_by_device",
        "удалён устройством (данные сохранены)",
        "deleted by the device (bytes kept)",
    ),
    ("records_new", "новых", "new"),
    ("records_duplicate", "повторов", "duplicates"),
    ("records_conflicting", "конфликтов", "conflicts"),
    ("events_count", "событий", "events"),
    ("truncated", "файл обрезан", "file truncated"),
    ("model_serial", "Модель / заводской номер", "Model / serial"),
    ("older", "Более ранние →", "Older →"),
    (
        "no_bytes",
        "Содержимое не сохранено (приём не начался).",
        "No content stored (the transfer never started).",
    ),
];

/// How many bytes the viewer shows.
const VIEW_LIMIT: u64 = 256 * 1024;

pub(crate) fn ingest_key(u: &Upload) -> &'static str {
    match u.ingest.as_ref().map(|i| i.status) {
        Some(IngestState::Pending) => "ingest_pending",
        Some(IngestState::Parsed) => "ingest_parsed",
        Some(IngestState::Quarantined) => "ingest_quarantined",
        Some(IngestState::Failed) => "ingest_failed",
        None => "ingest_none",
    }
}

pub(crate) fn ingest_code(u: &Upload) -> &'static str {
    u.ingest.as_ref().map_or("none", |i| i.status.as_str())
}

pub(crate) fn status_key(u: &Upload) -> &'static str {
    match u.status.as_str() {
        "complete" => "upload_complete",
        "partial" => "upload_partial",
        "receiving" => "upload_receiving",
        _ => "upload_recovered",
    }
}

pub(crate) fn when(u: &Upload) -> String {
    u.received_at
        .unwrap_or(u.started_at)
        .strftime("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    device: Option<String>,
    state: Option<String>,
    before: Option<i64>,
}

#[derive(Template)]
#[template(path = "uploads.html")]
struct ListPage {
    c: Common,
    uploads: Vec<Upload>,
    device: String,
    state: String,
    older: Option<String>,
}

const PAGE: u32 = 100;

async fn list(
    State(ctx): State<Ctx>,
    auth: Auth,
    Query(q): Query<ListQuery>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let device = q.device.clone().filter(|d| !d.is_empty());
    let device_id = match &device {
        Some(name) => Some(
            ctx.db
                .device_by_name(name)
                .await?
                .ok_or_else(|| WebError::NotFound(format!("device {name:?}")))?
                .id,
        ),
        None => None,
    };
    let ingest_state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<IngestState>().map_err(WebError::BadRequest)?),
        None => None,
    };
    let uploads = ctx
        .db
        .list_uploads(&UploadFilter {
            device_id,
            ingest_state,
            before_id: q.before.map(UploadId),
            limit: Some(PAGE),
            ..UploadFilter::default()
        })
        .await?;
    let older = (uploads.len() == PAGE as usize)
        .then(|| uploads.last().map(|u| u.id.0))
        .flatten()
        .map(|last| {
            format!(
                "/uploads?device={}&state={}&before={last}",
                crate::auth::urlencode(device.as_deref().unwrap_or("")),
                crate::auth::urlencode(q.state.as_deref().unwrap_or(""))
            )
        });
    html(&ListPage {
        c: Common::new(&auth, &uri.to_string()),
        uploads,
        device: device.unwrap_or_default(),
        state: q.state.unwrap_or_default(),
        older,
    })
}

/// Encodings the viewer can show text in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextEncoding {
    Utf8,
    Windows1251,
    Koi8R,
    Cp866,
}

impl TextEncoding {
    pub const ALL: [TextEncoding; 4] = [
        TextEncoding::Utf8,
        TextEncoding::Windows1251,
        TextEncoding::Koi8R,
        TextEncoding::Cp866,
    ];

    pub fn code(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Windows1251 => "windows-1251",
            TextEncoding::Koi8R => "koi8-r",
            TextEncoding::Cp866 => "cp866",
        }
    }

    fn parse(s: &str) -> Option<TextEncoding> {
        TextEncoding::ALL.into_iter().find(|e| e.code() == s)
    }

    fn decoder(self) -> &'static encoding_rs::Encoding {
        match self {
            TextEncoding::Utf8 => encoding_rs::UTF_8,
            TextEncoding::Windows1251 => encoding_rs::WINDOWS_1251,
            TextEncoding::Koi8R => encoding_rs::KOI8_R,
            TextEncoding::Cp866 => encoding_rs::IBM866,
        }
    }
}

/// Guess the encoding of a file's bytes: UTF-8 when they are valid UTF-8
/// (a BOM counts), else Windows-1251 or KOI8-R by where the Cyrillic
/// lowercase letters, which dominate Russian text, fall.
pub(crate) fn detect_encoding(bytes: &[u8]) -> TextEncoding {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) || std::str::from_utf8(bytes).is_ok() {
        return TextEncoding::Utf8;
    }
    // A cut-off multi-byte sequence at the end of the shown prefix is still UTF-8.
    if let Err(e) = std::str::from_utf8(bytes)
        && e.error_len().is_none()
        && e.valid_up_to() + 4 > bytes.len()
    {
        return TextEncoding::Utf8;
    }
    let lower_1251 = bytes.iter().filter(|b| **b >= 0xE0).count();
    let lower_koi8 = bytes.iter().filter(|b| (0xC0..0xE0).contains(*b)).count();
    if lower_koi8 > lower_1251 {
        TextEncoding::Koi8R
    } else {
        TextEncoding::Windows1251
    }
}

/// A piece of decoded text: ordinary text, or a control byte shown visibly.
pub(crate) enum Seg {
    Text(String),
    Ctl(String),
}

/// Decode for display: control characters other than tab and newline are
/// shown as `<XX>` markers (a file full of them stays readable and safe).
pub(crate) fn segments(bytes: &[u8], enc: TextEncoding) -> Vec<Seg> {
    let (text, _, _) = enc.decoder().decode(bytes);
    let mut out = Vec::new();
    let mut run = String::new();
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        // CR LF is an ordinary Windows line end: no marker for it.
        if ch == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        let visible = !ch.is_control() || ch == '\n' || ch == '\t';
        if visible {
            run.push(ch);
        } else {
            if !run.is_empty() {
                out.push(Seg::Text(std::mem::take(&mut run)));
            }
            let label = match ch {
                '\r' => "CR".to_owned(),
                c if (c as u32) < 0x20 => {
                    const NAMES: [&str; 32] = [
                        "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF",
                        "VT", "FF", "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK",
                        "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
                    ];
                    NAMES.get(c as usize).copied().unwrap_or("?").to_owned()
                }
                c => format!("U+{:04X}", c as u32),
            };
            out.push(Seg::Ctl(label));
        }
    }
    if !run.is_empty() {
        out.push(Seg::Text(run));
    }
    out
}

pub(crate) struct HexLine {
    pub offset: String,
    pub hex: String,
    pub ascii: String,
}

pub(crate) fn hex_lines(bytes: &[u8]) -> Vec<HexLine> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| HexLine {
            offset: format!("{:08x}", i * 16),
            hex: chunk
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
            ascii: chunk
                .iter()
                .map(|b| {
                    if b.is_ascii_graphic() || *b == b' ' {
                        char::from(*b)
                    } else {
                        '.'
                    }
                })
                .collect(),
        })
        .collect()
}

#[derive(Deserialize, Default)]
pub(crate) struct ViewQuery {
    view: Option<String>,
    enc: Option<String>,
    queued: Option<u8>,
}

#[derive(Template)]
#[template(path = "upload.html")]
struct DetailPage {
    c: Common,
    u: Upload,
    hex_view: bool,
    enc: String,
    detected: &'static str,
    encodings: Vec<&'static str>,
    segs: Vec<Seg>,
    hex: Vec<HexLine>,
    shown: usize,
    has_bytes: bool,
    queued: bool,
}

async fn load(ctx: &Ctx, id: i64) -> Result<Upload, WebError> {
    ctx.db
        .upload(UploadId(id))
        .await?
        .ok_or_else(|| WebError::NotFound(format!("upload #{id}")))
}

async fn prefix(ctx: &Ctx, u: &Upload, limit: u64) -> Result<Vec<u8>, WebError> {
    let Some(sha) = &u.sha256 else {
        return Ok(Vec::new());
    };
    let file = ctx
        .spool
        .open_object(sha)
        .await
        .map_err(|e| WebError::Internal(format!("opening upload #{}: {e}", u.id.0)))?;
    let mut buf = Vec::new();
    file.take(limit)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| WebError::Internal(format!("reading upload #{}: {e}", u.id.0)))?;
    Ok(buf)
}

async fn detail(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(id): Path<i64>,
    Query(q): Query<ViewQuery>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let u = load(&ctx, id).await?;
    let bytes = prefix(&ctx, &u, VIEW_LIMIT).await?;
    let detected = detect_encoding(&bytes);
    let enc = q
        .enc
        .as_deref()
        .and_then(TextEncoding::parse)
        .unwrap_or(detected);
    let hex_view = q.view.as_deref() == Some("hex");
    html(&DetailPage {
        c: Common::new(&auth, &uri.to_string()),
        has_bytes: u.sha256.is_some(),
        u,
        hex_view,
        enc: enc.code().to_owned(),
        detected: detected.code(),
        encodings: TextEncoding::ALL.iter().map(|e| e.code()).collect(),
        segs: if hex_view {
            Vec::new()
        } else {
            segments(&bytes, enc)
        },
        hex: if hex_view {
            hex_lines(&bytes)
        } else {
            Vec::new()
        },
        shown: bytes.len(),
        queued: q.queued == Some(1),
    })
}

/// The original bytes of an upload, streamed in 64 KiB pieces (a large file
/// never sits in memory whole), under a header that names it safely.
pub(crate) async fn stream_upload(ctx: &Ctx, u: &Upload) -> Result<Response, WebError> {
    let id = u.id.0;
    let Some(sha) = &u.sha256 else {
        return Err(WebError::NotFound(format!(
            "the bytes of upload #{id} (it has not finished arriving)"
        )));
    };
    let file = ctx.spool.open_object(sha).await.map_err(|e| {
        tracing::error!(upload = id, error = %e, "the spool file of an upload cannot be opened");
        WebError::Internal(format!("opening upload #{id}: {e}"))
    })?;
    let stream = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        crate::api::uploads::disposition(u.id, &u.original_name),
    );
    if let Ok(v) = HeaderValue::from_str(&u.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    Ok(response)
}

async fn download(
    State(ctx): State<Ctx>,
    _auth: Auth,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let u = load(&ctx, id).await?;
    stream_upload(&ctx, &u).await
}

/// Queue an upload for parsing again, audited with who asked and how.
pub(crate) async fn requeue(ctx: &Ctx, auth: &Auth, u: &Upload, via: &str) -> Result<(), WebError> {
    auth.require(Role::Operator)?;
    let id = u.id.0;
    if u.status != telegaz_domain::UploadStatus::Complete || u.device_id.is_none() {
        return Err(WebError::Conflict(format!(
            "upload #{id} is {}{}: only complete uploads of a known device are parsed",
            u.status,
            if u.device_id.is_none() {
                " and of no known device"
            } else {
                ""
            }
        )));
    }
    ctx.db.enqueue_ingest(u.id).await?;
    let mut e = NewAuditEvent::new(AuditKind::ReparseRequested, "queued");
    e.upload_id = Some(u.id);
    e.device_id = u.device_id;
    e.login = Some(auth.user.name.to_string());
    e.detail = format!(
        "re-parse of upload #{id} requested by {} via {via}",
        auth.user.name
    );
    ctx.db.insert_audit(&[e]).await?;
    tracing::info!(upload = id, user = %auth.user.name, via, "re-parse requested");
    Ok(())
}

async fn reparse(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    auth.require(Role::Operator)?;
    let u = load(&ctx, id).await?;
    requeue(&ctx, &auth, &u, "the web UI").await?;
    Ok(Redirect::to(&format!("/uploads/{id}?queued=1")).into_response())
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/uploads", get(list))
        .route("/uploads/{id}", get(detail))
        .route("/uploads/{id}/download", get(download))
        .route("/uploads/{id}/reparse", post(reparse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_utf8_1251_and_koi8() {
        let text = "Давление газа, кПа; температура";
        assert_eq!(detect_encoding(text.as_bytes()), TextEncoding::Utf8);
        let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode(text);
        assert_eq!(detect_encoding(&cp1251), TextEncoding::Windows1251);
        let (koi8, _, _) = encoding_rs::KOI8_R.encode(text);
        assert_eq!(detect_encoding(&koi8), TextEncoding::Koi8R);
        // A UTF-8 file cut in the middle of a letter is still UTF-8.
        let bytes = text.as_bytes();
        assert_eq!(
            detect_encoding(&bytes[..bytes.len() - 1]),
            TextEncoding::Utf8
        );
    }

    #[test]
    fn control_bytes_become_visible_markers() {
        let segs = segments(b"\x02A\x03\r\nB\x00\rC", TextEncoding::Utf8);
        let shown: Vec<String> = segs
            .iter()
            .map(|s| match s {
                Seg::Text(t) => t.clone(),
                Seg::Ctl(c) => format!("<{c}>"),
            })
            .collect();
        assert_eq!(
            shown.concat(),
            "<STX>A<ETX>\nB<NUL><CR>C",
            "CR LF is a line end"
        );
    }

    #[test]
    fn hex_lines_show_offsets_and_printable_ascii() {
        let lines = hex_lines(b"0123456789abcdef\x00<");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].offset, "00000010");
        assert_eq!(lines[1].hex, "00 3c");
        assert_eq!(lines[1].ascii, ".<");
    }
}
