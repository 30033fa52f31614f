//! Text profiles: the list, an editor, a live preview of a profile against a
//! chosen (typically quarantined) upload, and save, which puts the profile in
//! force at once and queues the quarantined uploads for parsing again.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use telegaz_domain::{
    ArchiveRecord, AuditKind, Check, IngestState, NewAuditEvent, Role, Upload, UploadId,
};
use telegaz_profile::Profile;
use telegaz_store::{RequeueFilter, UploadFilter};
use tokio::io::AsyncReadExt;

use super::{Common, html};
use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;

pub(crate) const PHRASES: &[(&str, &str, &str)] = &[
    (
        "profiles_title",
        "Профили текстовых форматов",
        "Text format profiles",
    ),
    (
        "profiles_intro",
        "Профиль описывает текстовый файл (кодировка, разделитель, столбцы, единицы) без программирования. Сохранённый профиль сразу применяется, а файлы из карантина разбираются заново.",
        "A profile describes a text file (encoding, delimiter, columns, units) without code. A saved profile applies at once and quarantined files are parsed again.",
    ),
    ("builtin", "встроенный", "shipped"),
    ("operator_profile", "свой", "own"),
    ("new_profile", "Новый профиль", "New profile"),
    ("copy_edit", "Копировать и изменить", "Copy and edit"),
    ("profile_name", "Имя профиля", "Profile name"),
    (
        "profile_text",
        "Текст профиля (TOML)",
        "Profile text (TOML)",
    ),
    ("test_upload", "Проверить на файле", "Test against upload"),
    ("preview", "Проверить", "Preview"),
    (
        "save_profile",
        "Сохранить и разобрать карантин заново",
        "Save and re-parse the quarantine",
    ),
    (
        "preview_ok",
        "Профиль прочитал файл",
        "The profile read the file",
    ),
    (
        "preview_failed",
        "Профиль не подходит к файлу",
        "The profile does not fit the file",
    ),
    (
        "profile_invalid",
        "Ошибка в профиле",
        "The profile has an error",
    ),
    (
        "profile_saved",
        "Профиль сохранён; файлов поставлено в очередь разбора",
        "Profile saved; uploads queued for parsing",
    ),
    (
        "load_errors",
        "Профили, которые не загрузились",
        "Profiles that did not load",
    ),
    ("line", "Строка", "Line"),
    ("check", "Проверка", "Check"),
    ("shown_rows", "Показаны первые строки", "First rows shown"),
    ("warnings", "Замечания", "Warnings"),
];

/// Profile names: file names without path tricks.
fn valid_name(name: &str) -> Result<&str, WebError> {
    let n = name.trim();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !n.starts_with('.');
    if ok {
        Ok(n)
    } else {
        Err(WebError::BadRequest(format!(
            "{n:?} is not a valid profile name: use 1 to 64 latin letters, digits, - _ . (not starting with a dot)"
        )))
    }
}

struct Listed {
    name: String,
    builtin: bool,
    description: String,
}

#[derive(Template)]
#[template(path = "profiles.html")]
struct ListPage {
    c: Common,
    profiles: Vec<Listed>,
    errors: Vec<(String, String)>,
}

async fn list(
    State(ctx): State<Ctx>,
    auth: Auth,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let (loaded, errors) = telegaz_ingest::load_profile_dir(&ctx.settings.profiles_dir);
    let builtin: Vec<&str> = telegaz_profile::builtin_sources()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let own_files = own_names(&ctx);
    let profiles = loaded
        .list
        .iter()
        .map(|p| Listed {
            name: p.name().to_owned(),
            builtin: builtin.contains(&p.name()) && !own_files.iter().any(|n| n == p.name()),
            description: p.description().unwrap_or("").to_owned(),
        })
        .collect();
    html(&ListPage {
        c: Common::new(&auth, &uri.to_string()),
        profiles,
        errors: errors
            .into_iter()
            .map(|e| (e.path.display().to_string(), e.error))
            .collect(),
    })
}

fn own_names(ctx: &Ctx) -> Vec<String> {
    std::fs::read_dir(&ctx.settings.profiles_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension().is_some_and(|x| x == "toml"))
                .then(|| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .flatten()
        })
        .collect()
}

/// The text of a profile: the operator's file, else the shipped one.
fn profile_text(ctx: &Ctx, name: &str) -> Option<String> {
    let path = ctx.settings.profiles_dir.join(format!("{name}.toml"));
    std::fs::read_to_string(path).ok().or_else(|| {
        telegaz_profile::builtin_sources()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| (*t).to_owned())
    })
}

struct PreviewRow {
    line: u32,
    kind: &'static str,
    local_time: String,
    vb: String,
    vm: String,
    p: String,
    t: String,
    check: String,
}

fn dec(d: &Option<telegaz_domain::Decimal>) -> String {
    d.map(|v| v.to_string()).unwrap_or_default()
}

fn preview_row(r: &ArchiveRecord) -> PreviewRow {
    PreviewRow {
        line: r.line,
        kind: r.kind.as_str(),
        local_time: r.local_time.to_string(),
        vb: dec(&r.quantities.vb),
        vm: dec(&r.quantities.vm),
        p: dec(&r.quantities.p_kpa),
        t: dec(&r.quantities.t_c),
        check: match &r.check {
            Check::Ok => "ok".into(),
            Check::Failed(t) => t.clone(),
            Check::Absent => String::new(),
        },
    }
}

enum Outcome {
    None,
    Invalid(String),
    Failed(String),
    Parsed {
        total: usize,
        rows: Vec<PreviewRow>,
        events: usize,
        warnings: Vec<String>,
    },
    Saved {
        requeued: usize,
    },
}

#[derive(Template)]
#[template(path = "profile_edit.html")]
struct EditPage {
    c: Common,
    name: String,
    text: String,
    uploads: Vec<Upload>,
    upload: Option<i64>,
    outcome: Outcome,
}

impl EditPage {
    fn is_selected(&self, id: &i64) -> bool {
        self.upload == Some(*id)
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct EditQuery {
    name: Option<String>,
    upload: Option<i64>,
}

/// Uploads worth testing a profile against: quarantined first, then failed.
async fn candidates(ctx: &Ctx) -> Result<Vec<Upload>, WebError> {
    let mut out = Vec::new();
    for state in [IngestState::Quarantined, IngestState::Failed] {
        out.extend(
            ctx.db
                .list_uploads(&UploadFilter {
                    ingest_state: Some(state),
                    limit: Some(50),
                    ..UploadFilter::default()
                })
                .await?,
        );
    }
    Ok(out)
}

async fn edit_page(
    State(ctx): State<Ctx>,
    auth: Auth,
    Query(q): Query<EditQuery>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let name = q.name.unwrap_or_default();
    let text = if name.is_empty() {
        String::new()
    } else {
        valid_name(&name)?;
        profile_text(&ctx, &name).ok_or_else(|| WebError::NotFound(format!("profile {name:?}")))?
    };
    html(&EditPage {
        c: Common::new(&auth, &uri.to_string()),
        name,
        text,
        uploads: candidates(&ctx).await?,
        upload: q.upload,
        outcome: Outcome::None,
    })
}

#[derive(Deserialize)]
pub(crate) struct EditForm {
    name: String,
    text: String,
    #[serde(default)]
    upload: String,
    action: String,
}

/// The largest file a preview reads.
const PREVIEW_LIMIT: u64 = 16 * 1024 * 1024;
const PREVIEW_ROWS: usize = 100;

async fn preview(ctx: &Ctx, profile: &Profile, upload: i64) -> Result<Outcome, WebError> {
    let u = ctx
        .db
        .upload(UploadId(upload))
        .await?
        .ok_or_else(|| WebError::NotFound(format!("upload #{upload}")))?;
    let Some(sha) = &u.sha256 else {
        return Ok(Outcome::Failed(format!(
            "upload #{upload} has no stored content"
        )));
    };
    let file = ctx
        .spool
        .open_object(sha)
        .await
        .map_err(|e| WebError::Internal(format!("opening upload #{upload}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(PREVIEW_LIMIT)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| WebError::Internal(format!("reading upload #{upload}: {e}")))?;
    let profile = profile.clone();
    // Parsing is CPU work on someone's file: off the async threads.
    let parsed = tokio::task::spawn_blocking(move || profile.parse(&bytes))
        .await
        .map_err(|e| WebError::Internal(format!("the profile preview failed: {e}")))?;
    Ok(match parsed {
        Ok(p) => Outcome::Parsed {
            total: p.records.len(),
            rows: p
                .records
                .iter()
                .take(PREVIEW_ROWS)
                .map(preview_row)
                .collect(),
            events: p.events.len(),
            warnings: p.warnings,
        },
        Err(u) => Outcome::Failed(u.reason),
    })
}

/// Write the file so that a crash leaves the old or the new profile, never half.
fn write_atomically(dir: &std::path::Path, name: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.toml.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(format!("{name}.toml")))?;
    std::fs::File::open(dir)?.sync_all()
}

async fn submit(
    State(ctx): State<Ctx>,
    auth: Auth,
    Form(form): Form<EditForm>,
) -> Result<Response, WebError> {
    if form.action == "save" {
        auth.require(Role::Operator)?;
    }
    let name = valid_name(&form.name)?.to_owned();
    let upload = form.upload.trim().parse::<i64>().ok();
    let outcome = match Profile::from_toml(&name, &form.text) {
        Err(e) => Outcome::Invalid(e.to_string()),
        Ok(profile) => match form.action.as_str() {
            "preview" => match upload {
                Some(id) => preview(&ctx, &profile, id).await?,
                None => Outcome::Failed("choose an upload to test the profile against".into()),
            },
            "save" => {
                let dir = ctx.settings.profiles_dir.clone();
                let (n, t) = (name.clone(), form.text.clone());
                tokio::task::spawn_blocking(move || write_atomically(&dir, &n, &t))
                    .await
                    .map_err(|e| WebError::Internal(format!("saving the profile: {e}")))?
                    .map_err(|e| {
                        WebError::Internal(format!(
                            "cannot write the profile into {}: {e}",
                            ctx.settings.profiles_dir.display()
                        ))
                    })?;
                ctx.reload_profiles();
                let requeued = ctx
                    .db
                    .requeue_ingest(&RequeueFilter {
                        state: Some(IngestState::Quarantined),
                        ..RequeueFilter::default()
                    })
                    .await?
                    .len();
                let mut e = NewAuditEvent::new(AuditKind::ReparseRequested, "queued");
                e.login = Some(auth.user.name.to_string());
                e.detail = format!(
                    "web, by {}: profile {name} saved; {requeued} quarantined uploads queued again",
                    auth.user.name
                );
                ctx.db.insert_audit(&[e]).await?;
                tracing::info!(profile = %name, requeued, user = %auth.user.name, "profile saved from the web UI");
                Outcome::Saved { requeued }
            }
            other => return Err(WebError::BadRequest(format!("unknown action {other:?}"))),
        },
    };
    html(&EditPage {
        c: Common::new(&auth, "/profiles/edit"),
        name,
        text: form.text,
        uploads: candidates(&ctx).await?,
        upload,
        outcome,
    })
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/profiles", get(list))
        .route("/profiles/edit", get(edit_page).post(submit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_cannot_leave_the_directory() {
        assert!(valid_name("site-csv_1.v2").is_ok());
        for bad in [
            "",
            "../etc/passwd",
            "a/b",
            ".hidden",
            "имя",
            &"x".repeat(65),
        ] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
    }
}
