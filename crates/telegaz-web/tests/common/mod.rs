//! What the HTTP tests of the web UI and the API share: a context on a fresh
//! database and spool, uploads stored as the receiver stores them, users with
//! sessions and tokens, the shared samples.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use telegaz_config::SecureCookies;
use telegaz_domain::{
    DeviceId, FileName, NewUpload, Role, Timestamp, UploadFinish, UploadId, UploadMode,
    UploadStatus, User, UserName,
};
use telegaz_spool::Spool;
use telegaz_store::{Database, NewSession, NewUser};
use telegaz_web::{SheetInfo, WebContext, WebSettings, token_sha256};

/// A file of `testdata/samples` (e.g. `lis200/tc220_interval_3days.txt`).
pub fn sample(path: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/samples")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A web context on a fresh SQLite database and spool in `dir`.
pub async fn context(dir: &Path) -> Arc<WebContext> {
    // The page and API tests are one in-process client making many
    // requests; `tests/rate_limit.rs` turns the limits on.
    context_with(dir, telegaz_config::WebRateLimitConfig::off()).await
}

/// The same, with these request rate limits.
pub async fn context_with(
    dir: &Path,
    rate_limit: telegaz_config::WebRateLimitConfig,
) -> Arc<WebContext> {
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let db = telegaz_store::connect(&url).await.unwrap();
    let spool = Spool::open(dir.join("spool")).unwrap();
    let settings = WebSettings {
        session_ttl: Duration::from_secs(3600),
        secure_cookies: SecureCookies::Never,
        late_after: Duration::from_secs(26 * 3600),
        silent_after: Duration::from_secs(72 * 3600),
        sheet: SheetInfo {
            server: Some("gas.example.ru".into()),
            port: 2121,
            second_server: None,
            apn_note: "internet.mts.ru".into(),
            schedule: "ежечасно".into(),
            passive_ports: "50000-50999".into(),
        },
        profiles_dir: dir.join("profiles"),
        notifiers: vec![("dispatchers".into(), "telegram".into())],
        rate_limit,
    };
    WebContext::new(db, spool, settings, None)
}

/// Store bytes as a complete upload of `device`, as the receiver does.
pub async fn store_upload(
    db: &dyn Database,
    spool: &Spool,
    device: DeviceId,
    name: FileName,
    bytes: &[u8],
) -> UploadId {
    let id = db
        .begin_upload(&NewUpload {
            device_id: device,
            path: format!("/{}", name.display),
            original_name: name,
            mode: UploadMode::Store,
            resumed_from: None,
            offset: 0,
            peer: Some("192.0.2.7:40000".into()),
            session: None,
            started_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let mut temp = spool.create_temp(id.0).await.unwrap();
    temp.write(bytes).await.unwrap();
    let committed = spool.commit(temp).await.unwrap();
    db.finish_upload(
        id,
        &UploadFinish {
            status: UploadStatus::Complete,
            size: committed.size,
            sha256: committed.sha256,
            reason: None,
            finished_at: Timestamp::now(),
        },
    )
    .await
    .unwrap();
    id
}

/// A user whose password is `password`.
pub async fn user(db: &dyn Database, name: &str, role: Role, password: &str) -> User {
    let hash = telegaz_auth::hash_password(&SecretString::from(password.to_owned())).unwrap();
    db.create_user(NewUser {
        name: UserName::parse(name).unwrap(),
        password_hash: hash,
        role,
    })
    .await
    .unwrap()
}

/// A live browser session of `user`: send `Cookie: tg_session=<cookie>`.
pub async fn session(db: &dyn Database, user: &User, cookie: &str, csrf: &str) {
    let now = Timestamp::now();
    db.create_session(NewSession {
        token_sha256: token_sha256(cookie),
        user_id: user.id,
        csrf_token: csrf.into(),
        created_at: now,
        expires_at: now + jiff::SignedDuration::from_hours(1),
    })
    .await
    .unwrap();
}

/// What the router answered.
pub struct Reply {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn location(&self) -> &str {
        self.headers
            .get(axum::http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Send one request through the router.
pub async fn send(app: &axum::Router, req: axum::http::Request<axum::body::Body>) -> Reply {
    use tower::ServiceExt;
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

/// The value a response sets for cookie `name`.
pub fn cookie_of(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all(axum::http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|kv| kv.trim().strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        })
}

/// The CSRF token of the first form of a page.
pub fn csrf_in(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_owned()
}
