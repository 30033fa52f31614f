#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test
//! The web UI over HTTP: sign-in, roles, CSRF, security headers, escaping of
//! hostile names and contents, the raw viewer, the registry and its sheet,
//! re-parse, profiles, users. Drives the real router with a real SQLite
//! database and spool.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use secrecy::SecretString;
use telegaz_domain::{FileName, IngestState, Role, Timestamp, UploadId};
use telegaz_store::{Database, NewDevice};
use telegaz_web::WebContext;

mod common;

struct Env {
    _dir: tempfile::TempDir,
    ctx: Arc<WebContext>,
    app: Router,
}

/// A signed-in browser: its session cookie and CSRF token.
#[derive(Clone)]
struct Browser {
    cookie: String,
    csrf: String,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let app = telegaz_web::router(ctx.clone());
    Env {
        _dir: dir,
        ctx,
        app,
    }
}

impl Env {
    fn db(&self) -> &dyn Database {
        &*self.ctx.db
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        common::send(&self.app, req).await
    }

    async fn get(&self, who: Option<&Browser>, path: &str) -> Reply {
        let mut req = Request::get(path);
        if let Some(b) = who {
            req = req.header(header::COOKIE, &b.cookie);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, who: Option<&Browser>, path: &str, form: &[(&str, &str)]) -> Reply {
        let mut pairs: Vec<(&str, &str)> = form.to_vec();
        if let Some(b) = who
            && !form.iter().any(|(k, _)| *k == "csrf")
        {
            pairs.push(("csrf", &b.csrf));
        }
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(b) = who {
            req = req.header(header::COOKIE, &b.cookie);
        }
        let body = serde_urlencoded::to_string(&pairs).unwrap();
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    async fn user(&self, name: &str, role: Role) -> String {
        let pw = format!("pw-of-{name}-123456");
        common::user(self.db(), name, role, &pw).await;
        pw
    }

    /// Sign in the way a browser does: the form, its token, the cookie.
    async fn sign_in(&self, name: &str, password: &str) -> Result<Browser, Reply> {
        self.sign_in_having(name, password, None).await
    }

    /// Sign in from a browser that already holds a session cookie (its own
    /// old one, or one planted by someone else).
    async fn sign_in_having(
        &self,
        name: &str,
        password: &str,
        old_session: Option<&str>,
    ) -> Result<Browser, Reply> {
        let page = self.get(None, "/login").await;
        assert_eq!(page.status, StatusCode::OK);
        let pre = cookie_of(&page, "tg_prelogin").unwrap();
        let token = csrf_in(&page.body);
        let cookies = match old_session {
            Some(old) => format!("tg_session={old}; tg_prelogin={pre}"),
            None => format!("tg_prelogin={pre}"),
        };
        let req = Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookies)
            .body(Body::from(
                serde_urlencoded::to_string([
                    ("user", name),
                    ("password", password),
                    ("csrf", &token),
                    ("next", "/"),
                ])
                .unwrap(),
            ))
            .unwrap();
        let reply = self.send(req).await;
        let Some(session) = cookie_of(&reply, "tg_session").filter(|s| !s.is_empty()) else {
            return Err(reply);
        };
        let cookie = format!("tg_session={session}");
        let home = self
            .get(
                Some(&Browser {
                    cookie: cookie.clone(),
                    csrf: String::new(),
                }),
                "/",
            )
            .await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        Ok(Browser {
            cookie,
            csrf: csrf_in(&home.body),
        })
    }

    async fn as_role(&self, name: &str, role: Role) -> Browser {
        let pw = self.user(name, role).await;
        self.sign_in(name, &pw).await.ok().unwrap()
    }

    async fn device(&self, name: &str) -> telegaz_domain::Device {
        self.db()
            .create_device(NewDevice {
                name: telegaz_domain::DeviceName::parse(name).unwrap(),
                login: telegaz_domain::DeviceName::parse(name).unwrap(),
                password_hash: "$argon2id$x".into(),
                allowed_networks: vec![],
            })
            .await
            .unwrap()
    }

    /// Store bytes as a complete upload and run the ingest pipeline on it.
    async fn upload(&self, device: &str, name: &str, bytes: &[u8]) -> UploadId {
        let d = self.db().device_by_name(device).await.unwrap().unwrap();
        let id = common::store_upload(
            self.db(),
            &self.ctx.spool,
            d.id,
            FileName::utf8(name),
            bytes,
        )
        .await;
        self.ingest(id).await;
        id
    }

    async fn ingest(&self, id: UploadId) {
        telegaz_ingest::Ingestor::with_shared(
            self.ctx.db.clone(),
            self.ctx.spool.clone(),
            self.ctx.profiles.clone(),
        )
        .process(id)
        .await
        .unwrap();
    }
}

use common::{Reply, cookie_of, csrf_in, sample};

const PAGES: &[&str] = &[
    "/",
    "/uploads",
    "/registry",
    "/audit",
    "/reports",
    "/deliveries",
    "/profiles",
    "/profiles/edit",
    "/account",
    "/alerts",
];

#[tokio::test]
async fn anonymous_visitors_are_sent_to_sign_in() {
    let e = env().await;
    e.device("unit-1").await;
    for path in PAGES.iter().copied().chain([
        "/registry/unit-1",
        "/devices/unit-1/sheet",
        "/users",
        "/uploads/1",
    ]) {
        let r = e.get(None, path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            r.location().starts_with("/login?next="),
            "{path}: {}",
            r.location()
        );
    }
    // A form sent without signing in changes nothing.
    let r = e.post(None, "/registry", &[("name", "intruder")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(e.db().device_by_name("intruder").await.unwrap().is_none());
    // Health and metrics stay open for monitoring.
    assert_eq!(e.get(None, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn sign_in_needs_the_form_token_and_the_password_and_is_throttled() {
    let e = env().await;
    let pw = e.user("иванов", Role::Viewer).await;
    // Wrong password: back to the form with a message; no session.
    let bad = e.sign_in("иванов", "wrong-password").await.err().unwrap();
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    assert!(
        bad.location().contains("error=failed"),
        "{}",
        bad.location()
    );
    // The sign-in form without its pre-session token is refused (login CSRF).
    let forged = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "user=%D0%B8%D0%B2%D0%B0%D0%BD%D0%BE%D0%B2&password={pw}"
        )))
        .unwrap();
    let r = e.send(forged).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(cookie_of(&r, "tg_session").is_none());
    // The right password works; the cookie is HttpOnly and SameSite=Strict.
    let page = e.get(None, "/login").await;
    let set = page
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let b = e.sign_in("иванов", &pw).await.ok().unwrap();
    assert_eq!(e.get(Some(&b), "/").await.status, StatusCode::OK);
    // Sign-out ends the session on the server.
    let out = e.post(Some(&b), "/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(e.get(Some(&b), "/").await.status, StatusCode::SEE_OTHER);
    // Five wrong passwords block the name, even with the right one after.
    for _ in 0..5 {
        let _ = e.sign_in("иванов", "nope").await;
    }
    let blocked = e.sign_in("иванов", &pw).await.err().unwrap();
    assert!(
        blocked.location().contains("error=blocked"),
        "{}",
        blocked.location()
    );
    // Every attempt is in the audit trail.
    let audit = e
        .get(
            Some(&e.as_role("root", Role::Admin).await),
            "/audit?kind=web_login_failed",
        )
        .await;
    assert!(
        audit.body.matches("web_login_failed").count() >= 6,
        "{}",
        audit.body
    );
}

#[tokio::test]
async fn sign_in_never_adopts_a_session_id_it_did_not_issue() {
    let e = env().await;
    let pw = e.user("victim", Role::Operator).await;
    let mallory = e.as_role("mallory", Role::Viewer).await;
    let session_of = |b: &Browser| b.cookie.trim_start_matches("tg_session=").to_owned();

    // 1. A session id chosen by an attacker before sign-in (any value).
    for planted in [
        "attacker-chosen",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let b = e
            .sign_in_having("victim", &pw, Some(planted))
            .await
            .ok()
            .unwrap();
        assert_ne!(session_of(&b), planted, "the planted id was adopted");
        let with_planted = Browser {
            cookie: format!("tg_session={planted}"),
            csrf: b.csrf.clone(),
        };
        let r = e.get(Some(&with_planted), "/").await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "the planted id authenticates"
        );
        assert!(r.location().starts_with("/login"), "{}", r.location());
    }

    // 2. A valid session of another user, planted in the victim's browser:
    // sign-in still works (the sign-in form's own token decides), issues a
    // new id for the victim, and the planted session ends on the server.
    let b = e
        .sign_in_having("victim", &pw, Some(&session_of(&mallory)))
        .await
        .ok()
        .expect("sign-in works with someone else's session cookie present");
    assert_ne!(session_of(&b), session_of(&mallory));
    let account = e.get(Some(&b), "/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(
        account.body.contains("<a href=\"/account\">victim</a>")
            && !account.body.contains("<a href=\"/account\">mallory</a>"),
        "signed in as someone else: {}",
        account.body
    );
    let r = e.get(Some(&mallory), "/").await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "the old id still authenticates"
    );

    // 3. Signing in again from a signed-in browser replaces its session too.
    let again = e
        .sign_in_having("victim", &pw, Some(&session_of(&b)))
        .await
        .ok()
        .unwrap();
    assert_ne!(session_of(&again), session_of(&b));
    assert_eq!(e.get(Some(&b), "/").await.status, StatusCode::SEE_OTHER);
    assert_eq!(e.get(Some(&again), "/").await.status, StatusCode::OK);

    // 4. Sign-out ends the session on the server: the cookie replayed
    // afterwards is sent to sign in (pages) or refused (API), and its
    // forms no longer work.
    let out = e.post(Some(&again), "/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        cookie_of(&out, "tg_session").is_some_and(|v| v.is_empty()),
        "the cookie is cleared"
    );
    let r = e.get(Some(&again), "/registry").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/login"), "{}", r.location());
    let api = e
        .send(
            Request::get("/api/v1/devices")
                .header(header::COOKIE, &again.cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{}", api.body);
    let r = e
        .post(Some(&again), "/registry", &[("name", "after-logout")])
        .await;
    assert_ne!(r.status, StatusCode::OK);
    assert!(
        e.db()
            .device_by_name("after-logout")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        e.db()
            .session(
                &telegaz_web::token_sha256(&session_of(&again)),
                Timestamp::now()
            )
            .await
            .unwrap()
            .is_none(),
        "the session row is gone"
    );
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let e = env().await;
    let b = e.as_role("admin", Role::Admin).await;
    for path in PAGES
        .iter()
        .copied()
        .chain(["/login", "/no-such-page", "/users"])
    {
        let r = e.get(Some(&b), path).await;
        let h = |n: &str| {
            r.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(
            h("content-security-policy").contains("script-src 'self'"),
            "{path}"
        );
        assert!(
            h("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        if path != "/no-such-page" {
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
            assert!(!r.body.contains("<script>"), "{path}: inline script");
        }
    }
}

#[tokio::test]
async fn a_viewer_reads_everything_but_changes_nothing() {
    let e = env().await;
    e.device("unit-1").await;
    let id = e
        .upload(
            "unit-1",
            "a.txt",
            &sample("lis200/tc220_interval_3days.txt"),
        )
        .await;
    let v = e.as_role("viewer", Role::Viewer).await;
    for path in PAGES.iter().copied().chain([
        "/registry/unit-1",
        "/devices/unit-1/sheet",
        &format!("/uploads/{}", id.0),
        &format!("/uploads/{}/download", id.0),
    ]) {
        assert_eq!(e.get(Some(&v), path).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(
        e.get(Some(&v), "/users").await.status,
        StatusCode::FORBIDDEN
    );
    let before = e.db().device_by_name("unit-1").await.unwrap().unwrap();
    let writes: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/registry".into(), vec![("name", "new-unit")]),
        (
            "/registry/unit-1".into(),
            vec![("title", "changed"), ("enabled", "1")],
        ),
        ("/registry/unit-1/password".into(), vec![]),
        (format!("/uploads/{}/reparse", id.0), vec![]),
        (
            "/profiles/edit".into(),
            vec![
                ("name", "x"),
                ("text", "kind = \"interval\""),
                ("action", "save"),
            ],
        ),
        (
            "/users".into(),
            vec![("name", "mallory"), ("role", "admin")],
        ),
        (
            "/users/1".into(),
            vec![("action", "role"), ("role", "admin")],
        ),
    ];
    for (path, form) in &writes {
        let r = e.post(Some(&v), path, form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
    }
    let after = e.db().device_by_name("unit-1").await.unwrap().unwrap();
    assert_eq!(before, after, "the device is unchanged");
    assert!(e.db().device_by_name("new-unit").await.unwrap().is_none());
    assert!(e.db().user_by_name("mallory").await.unwrap().is_none());
    let u = e.db().upload(id).await.unwrap().unwrap();
    assert_eq!(
        u.ingest.unwrap().status,
        IngestState::Parsed,
        "not re-queued"
    );
    // Viewers do not even see the forms.
    let reg = e.get(Some(&v), "/registry").await;
    assert!(!reg.body.contains("id=\"add-device\""));
}

/// Every state-changing route of the UI, with a form that would change
/// something (path parameters filled in by [`csrf_table`]).
const UI_WRITES: &[(&str, &[(&str, &str)])] = &[
    ("/logout", &[]),
    ("/registry", &[("name", "unit-x")]),
    ("/registry/{name}", &[("title", "forged"), ("enabled", "1")]),
    ("/registry/{name}/password", &[]),
    ("/uploads/{id}/reparse", &[]),
    (
        "/profiles/edit",
        &[
            ("name", "forged"),
            ("text", "kind = \"interval\""),
            ("action", "save"),
        ],
    ),
    ("/users", &[("name", "mallory"), ("role", "admin")]),
    ("/users/{id}", &[("action", "role"), ("role", "viewer")]),
    (
        "/account/password",
        &[
            ("current", "x"),
            ("new", "forged-password-123"),
            ("repeat", "forged-password-123"),
        ],
    ),
    ("/account/tokens", &[("label", "forged")]),
    ("/account/tokens/{id}/revoke", &[]),
    ("/alerts/{id}/ack", &[]),
    (
        "/bans",
        &[
            ("address", "198.51.100.9"),
            ("for", "1h"),
            ("reason", "forged"),
        ],
    ),
    ("/bans/{id}/lift", &[]),
];

/// The POST routes the UI's source declares (`src/pages/*.rs`), so that a
/// new form cannot be left out of [`UI_WRITES`].
fn declared_post_routes() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pages");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for chunk in text.split(".route(").skip(1) {
            let chunk = chunk.split(".merge(").next().unwrap();
            let path = chunk.split('"').nth(1).unwrap().to_owned();
            let handler = chunk.split(".route(").next().unwrap();
            if handler.contains("post(") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn forms_without_the_session_csrf_token_are_refused() {
    let e = env().await;
    let op = e.as_role("op", Role::Operator).await;
    for csrf in ["", "0000", &op.csrf[..op.csrf.len() - 1]] {
        let r = e
            .post(
                Some(&op),
                "/registry",
                &[("name", "unit-x"), ("csrf", csrf)],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "csrf {csrf:?}");
        assert!(e.db().device_by_name("unit-x").await.unwrap().is_none());
    }
    // Another user's token does not fit this session.
    let other = e.as_role("op2", Role::Operator).await;
    let r = e
        .post(
            Some(&op),
            "/registry",
            &[("name", "unit-x"), ("csrf", &other.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Every state-changing route, from a cross-site form that has the
    // session cookie but not the token (missing, wrong, another user's):
    // refused, and nothing changed.
    let mut table: Vec<String> = UI_WRITES.iter().map(|(p, _)| (*p).to_owned()).collect();
    table.sort();
    let mut declared = declared_post_routes();
    declared.retain(|p| p != "/login");
    assert_eq!(
        table, declared,
        "UI_WRITES must list every POST route of the UI"
    );
    let admin = e.as_role("admin", Role::Admin).await;
    e.device("unit-1").await;
    let upload = e.upload("unit-1", "a.txt", b"not a readout").await;
    let before = e.db().device_by_name("unit-1").await.unwrap().unwrap();
    let ingest_before = e.db().upload(upload).await.unwrap().unwrap().ingest;
    let op_user = e.db().user_by_name("op").await.unwrap().unwrap();
    let ban = e
        .db()
        .create_ban(&telegaz_domain::NewBan {
            address: Some("203.0.113.5".into()),
            login: None,
            reason: "test".into(),
            created_by: "cli".into(),
            created_at: Timestamp::now(),
            expires_at: None,
            repeat: 0,
        })
        .await
        .unwrap();
    for (route, form) in UI_WRITES {
        let path = route.replace("{name}", "unit-1").replace(
            "{id}",
            &if route.starts_with("/uploads") {
                upload.0.to_string()
            } else if route.starts_with("/users") {
                op_user.id.0.to_string()
            } else if route.starts_with("/bans") {
                ban.id.to_string()
            } else {
                "1".to_owned()
            },
        );
        for csrf in ["", "0000", &other.csrf, &admin.csrf[..admin.csrf.len() - 1]] {
            let mut fields = form.to_vec();
            if !csrf.is_empty() {
                fields.push(("csrf", csrf));
            }
            let r = e
                .post(Some(&admin_without_token(&admin)), &path, &fields)
                .await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{path} with csrf {csrf:?}: {}",
                r.body
            );
        }
    }
    assert_eq!(
        e.db().device_by_name("unit-1").await.unwrap().unwrap(),
        before
    );
    assert!(e.db().device_by_name("unit-x").await.unwrap().is_none());
    assert!(e.db().user_by_name("mallory").await.unwrap().is_none());
    // No ban added, the one there not lifted.
    let bans = e
        .db()
        .list_bans(&telegaz_store::BanFilter::default())
        .await
        .unwrap();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].lifted_at, None, "{bans:?}");
    assert_eq!(
        e.db().upload(upload).await.unwrap().unwrap().ingest,
        ingest_before
    );
    assert_eq!(
        e.db().user_by_name("op").await.unwrap().unwrap().role,
        Role::Operator
    );
    assert_eq!(
        e.get(Some(&admin), "/").await.status,
        StatusCode::OK,
        "not signed out"
    );

    // With its own token the form works.
    let r = e.post(Some(&op), "/registry", &[("name", "unit-x")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(e.db().device_by_name("unit-x").await.unwrap().is_some());
}

/// A browser with the session cookie whose forms carry no token of their
/// own (the test adds the wrong one, or none).
fn admin_without_token(b: &Browser) -> Browser {
    Browser {
        cookie: b.cookie.clone(),
        csrf: String::new(),
    }
}

#[tokio::test]
async fn registering_a_unit_shows_a_strong_password_once_on_a_printable_sheet() {
    let e = env().await;
    let op = e.as_role("op", Role::Operator).await;
    let r = e
        .post(
            Some(&op),
            "/registry",
            &[
                ("name", "bpek-17"),
                ("title", "Котельная №3"),
                ("time_zone", "Asia/Yekaterinburg"),
                ("contract_hour", "6"),
                ("networks", "10.0.0.0/8"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let pw = r
        .body
        .split("<span class=\"secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned();
    assert!(pw.len() >= 16, "strong password: {pw:?}");
    for needed in [
        "gas.example.ru",
        "2121",
        "bpek-17",
        "50000-50999",
        "internet.mts.ru",
        "Asia/Yekaterinburg",
        "data-print",
    ] {
        assert!(r.body.contains(needed), "sheet lacks {needed}");
    }
    let d = e.db().device_by_name("bpek-17").await.unwrap().unwrap();
    assert_eq!(d.title, "Котельная №3");
    assert_eq!(d.contract_hour, 6);
    assert_eq!(d.allowed_networks, vec!["10.0.0.0/8"]);
    assert!(
        telegaz_auth::verify_password(&d.password_hash, &SecretString::from(pw.clone())).unwrap()
    );
    // The sheet printed later has no password on it.
    let later = e.get(Some(&op), "/devices/bpek-17/sheet").await;
    assert!(!later.body.contains(&pw));
    assert!(later.body.contains("bpek-17"));
    // Rotation: a new password, the old one stops working.
    let r = e.post(Some(&op), "/registry/bpek-17/password", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let d2 = e.db().device_by_name("bpek-17").await.unwrap().unwrap();
    assert!(!telegaz_auth::verify_password(&d2.password_hash, &SecretString::from(pw)).unwrap());
    // Edit and disable.
    let r = e
        .post(
            Some(&op),
            "/registry/bpek-17",
            &[
                ("title", "Склад"),
                ("time_zone", "Europe/Moscow"),
                ("contract_hour", "10"),
                ("networks", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let d3 = e.db().device_by_name("bpek-17").await.unwrap().unwrap();
    assert!(!d3.enabled, "an unticked box disables");
    assert!(d3.allowed_networks.is_empty());
    // Bad values get a clear message and change nothing.
    for (field, value) in [
        ("time_zone", "Mars/Base"),
        ("contract_hour", "25"),
        ("networks", "999.1.1.1/40"),
    ] {
        let mut form = vec![("title", "x"), ("enabled", "1")];
        form.push((field, value));
        let r = e.post(Some(&op), "/registry/bpek-17", &form).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}={value}");
    }
    let bad_name = e
        .post(Some(&op), "/registry", &[("name", "<script>")])
        .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
    // Every change is audited.
    let audit = e
        .db()
        .list_audit(&telegaz_store::AuditFilter::default())
        .await
        .unwrap();
    let changes = audit
        .iter()
        .filter(|a| a.kind == telegaz_domain::AuditKind::DeviceChanged)
        .count();
    assert!(changes >= 3, "{changes}");
}

#[tokio::test]
async fn hostile_names_and_contents_are_shown_escaped() {
    let e = env().await;
    let op = e.as_role("op", Role::Operator).await;
    e.device("unit-1").await;
    let title = "<script>alert(1)</script>";
    let r = e
        .post(
            Some(&op),
            "/registry/unit-1",
            &[
                ("title", title),
                ("enabled", "1"),
                ("time_zone", "Europe/Moscow"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let file = "<img src=x onerror=alert(2)>.txt";
    let mut junk: Vec<u8> = (0u8..32).collect();
    junk.extend_from_slice(b"<script>alert(3)</script>\x7f\xff\xfe");
    let id = e.upload("unit-1", file, &junk).await;
    for path in [
        "/".to_owned(),
        "/registry".to_owned(),
        "/registry/unit-1".to_owned(),
        "/devices/unit-1/sheet".to_owned(),
        "/uploads".to_owned(),
        format!("/uploads/{}", id.0),
        format!("/uploads/{}?view=hex", id.0),
        "/profiles/edit".to_owned(),
        "/audit".to_owned(),
    ] {
        let r = e.get(Some(&op), &path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        for raw in ["<script>alert", "<img src=x"] {
            assert!(!r.body.contains(raw), "{path} shows {raw} unescaped");
        }
    }
    let page = e.get(Some(&op), &format!("/uploads/{}", id.0)).await;
    assert!(
        page.body
            .contains("&#60;img src=x onerror=alert(2)&#62;.txt"),
        "the name is shown, escaped"
    );
    assert!(
        page.body.contains("&lt;NUL&gt;") && page.body.contains("&lt;ESC&gt;"),
        "control bytes shown as markers"
    );
    // The download is the exact bytes, under a header that cannot be broken.
    let dl = e
        .get(Some(&op), &format!("/uploads/{}/download", id.0))
        .await;
    assert_eq!(dl.bytes, junk);
    let cd = dl
        .headers
        .get(header::CONTENT_DISPOSITION)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cd.starts_with("attachment; filename=\"upload-"), "{cd}");
    assert!(!cd.contains('<') && !cd.contains('>'), "{cd}");
    assert!(
        cd.ends_with("filename*=UTF-8''%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E.txt"),
        "{cd}"
    );
}

#[tokio::test]
async fn the_raw_viewer_shows_windows_1251_text_hex_and_the_parse_result() {
    let e = env().await;
    e.device("unit-1").await;
    let bytes = sample("csv/export_cp1251.csv");
    let id = e.upload("unit-1", "export.csv", &bytes).await;
    let v = e.as_role("viewer", Role::Viewer).await;
    let page = e.get(Some(&v), &format!("/uploads/{}", id.0)).await;
    assert!(
        page.body.contains("Дата;Время;Vст, м3"),
        "decoded from Windows-1251"
    );
    assert!(
        page.body.contains("windows-1251 ("),
        "the detected encoding is said"
    );
    assert!(
        page.body.contains("profile:vendor-csv-cp1251"),
        "the parse result"
    );
    // Another encoding on request (the same bytes as KOI8-R read differently).
    let koi = e
        .get(Some(&v), &format!("/uploads/{}?enc=koi8-r", id.0))
        .await;
    assert!(!koi.body.contains("Дата;Время"));
    let hex = e
        .get(Some(&v), &format!("/uploads/{}?view=hex", id.0))
        .await;
    let first: String = bytes[..4].iter().map(|b| format!("{b:02x} ")).collect();
    assert!(
        hex.body
            .contains(&format!("00000000  {}", first.trim_end())),
        "hex view"
    );
    let dl = e
        .get(Some(&v), &format!("/uploads/{}/download", id.0))
        .await;
    assert_eq!(dl.bytes, bytes, "download gives the original bytes");
    assert_eq!(
        dl.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/octet-stream"
    );
}

#[tokio::test]
async fn reparse_queues_the_upload_again_and_is_audited() {
    let e = env().await;
    e.device("unit-1").await;
    let id = e
        .upload(
            "unit-1",
            "a.txt",
            &sample("lis200/tc220_interval_3days.txt"),
        )
        .await;
    let op = e.as_role("op", Role::Operator).await;
    let r = e
        .post(Some(&op), &format!("/uploads/{}/reparse", id.0), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let u = e.db().upload(id).await.unwrap().unwrap();
    assert_eq!(u.ingest.unwrap().status, IngestState::Pending);
    let audit = e
        .db()
        .list_audit(&telegaz_store::AuditFilter {
            kind: Some(telegaz_domain::AuditKind::ReparseRequested),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].upload_id, Some(id));
    let missing = e.post(Some(&op), "/uploads/999/reparse", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_profile_is_tested_live_on_a_quarantined_upload_then_saved_and_applied() {
    let e = env().await;
    e.device("unit-1").await;
    // The vendor export, re-saved as UTF-8 with tabs: no parser knows it.
    let original = sample("csv/export_cp1251.csv");
    let (text, _, _) = encoding_rs::WINDOWS_1251.decode(&original);
    let tabbed = text.replace(';', "\t");
    let id = e
        .upload("unit-1", "export-tabs.csv", tabbed.as_bytes())
        .await;
    let u = e.db().upload(id).await.unwrap().unwrap();
    assert_eq!(u.ingest.as_ref().unwrap().status, IngestState::Quarantined);
    let op = e.as_role("op", Role::Operator).await;
    let edit = e
        .get(Some(&op), "/profiles/edit?name=vendor-csv-cp1251")
        .await;
    assert!(
        edit.body.contains("decimal_separator"),
        "the shipped profile is shown to copy"
    );
    let profile = telegaz_profile::builtin_sources()[0]
        .1
        .replace("encoding = \"windows-1251\"", "encoding = \"utf-8\"")
        .replace("delimiter = \";\"", "delimiter = \"\\t\"");
    let id_text = id.0.to_string();
    // A broken profile: the error is shown, nothing is saved.
    let broken = e
        .post(
            Some(&op),
            "/profiles/edit",
            &[
                ("name", "tabs"),
                ("text", "kind = "),
                ("upload", &id_text),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(broken.status, StatusCode::OK);
    assert!(broken.body.contains("class=\"error\""), "{}", broken.body);
    let preview = e
        .post(
            Some(&op),
            "/profiles/edit",
            &[
                ("name", "tabs"),
                ("text", &profile),
                ("upload", &id_text),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(
        preview.body.contains("id=\"preview-total\">24<"),
        "{}",
        preview.body
    );
    assert!(
        preview.body.contains("4982.6473"),
        "a parsed value is previewed"
    );
    assert!(
        !e.ctx.settings.profiles_dir.join("tabs.toml").exists(),
        "preview saves nothing"
    );
    let saved = e
        .post(
            Some(&op),
            "/profiles/edit",
            &[
                ("name", "tabs"),
                ("text", &profile),
                ("upload", &id_text),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(e.ctx.settings.profiles_dir.join("tabs.toml").exists());
    let u = e.db().upload(id).await.unwrap().unwrap();
    assert_eq!(
        u.ingest.as_ref().unwrap().status,
        IngestState::Pending,
        "queued again"
    );
    // The worker now reads it with the new profile.
    e.ingest(id).await;
    let u = e.db().upload(id).await.unwrap().unwrap();
    let info = u.ingest.unwrap();
    assert_eq!(info.status, IngestState::Parsed, "{:?}", info.reason);
    assert_eq!(info.format.as_deref(), Some("profile:tabs"));
    // Names cannot escape the profile directory.
    let evil = e
        .post(
            Some(&op),
            "/profiles/edit",
            &[
                ("name", "../../evil"),
                ("text", &profile),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(evil.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn administrators_manage_users_and_everyone_their_tokens() {
    let e = env().await;
    let admin = e.as_role("admin", Role::Admin).await;
    let r = e
        .post(
            Some(&admin),
            "/users",
            &[("name", "петров"), ("role", "operator")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let pw = r
        .body
        .split("id=\"new-password\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned();
    let petrov = e.sign_in("петров", &pw).await.ok().unwrap();
    assert_eq!(
        e.get(Some(&petrov), "/users").await.status,
        StatusCode::FORBIDDEN
    );
    // A token for the REST API, shown once, then listed without its secret.
    let r = e
        .post(Some(&petrov), "/account/tokens", &[("label", "1C export")])
        .await;
    let token = r
        .body
        .split("id=\"new-token\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 64);
    let list = e.get(Some(&petrov), "/account").await;
    assert!(list.body.contains("1C export") && !list.body.contains(&token));
    let u = e.db().user_by_name("петров").await.unwrap().unwrap();
    assert_eq!(
        e.db()
            .user_by_api_token(&telegaz_web::token_sha256(&token), Timestamp::now())
            .await
            .unwrap()
            .map(|u| u.id),
        Some(u.id)
    );
    // Disabling ends the session at once.
    let r = e
        .post(
            Some(&admin),
            &format!("/users/{}", u.id.0),
            &[("action", "disable")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        e.get(Some(&petrov), "/").await.status,
        StatusCode::SEE_OTHER
    );
    // An administrator cannot lock themselves out.
    let me = e.db().user_by_name("admin").await.unwrap().unwrap();
    let r = e
        .post(
            Some(&admin),
            &format!("/users/{}", me.id.0),
            &[("action", "disable")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_fleet_pages_searches_and_filters_ten_thousand_style() {
    let e = env().await;
    for i in 0..120 {
        e.device(&format!("unit-{i:03}")).await;
    }
    e.upload(
        "unit-007",
        "a.txt",
        &sample("lis200/tc220_interval_3days.txt"),
    )
    .await;
    let v = e.as_role("viewer", Role::Viewer).await;
    let first = e.get(Some(&v), "/?per=50").await;
    assert_eq!(first.body.matches("class=\"unit\"").count(), 50);
    assert!(first.body.contains("id=\"fleet-total\">120<"));
    let last = e.get(Some(&v), "/?per=50&page=3").await;
    assert_eq!(last.body.matches("class=\"unit\"").count(), 20);
    let found = e.get(Some(&v), "/?q=unit-00").await;
    assert_eq!(found.body.matches("class=\"unit\"").count(), 10);
    // unit-007 uploaded data: it is the only one not `never`.
    let never = e.get(Some(&v), "/?state=never&per=500").await;
    assert_eq!(never.body.matches("class=\"unit\"").count(), 119);
    assert!(!never.body.contains("data-device=\"unit-007\""));
    let bad_sort = e.get(Some(&v), "/?sort=nonsense&page=999").await;
    assert_eq!(
        bad_sort.status,
        StatusCode::OK,
        "out-of-range paging is clamped"
    );
}

#[tokio::test]
async fn pages_switch_to_english_and_back() {
    let e = env().await;
    let v = e.as_role("viewer", Role::Viewer).await;
    let ru = e.get(Some(&v), "/").await;
    assert!(ru.body.contains("Парк узлов") && ru.body.contains("lang=\"ru\""));
    let switch = e.get(Some(&v), "/lang/en?next=%2Fregistry").await;
    assert_eq!(switch.status, StatusCode::SEE_OTHER);
    assert_eq!(switch.location(), "/registry");
    let lang = cookie_of(&switch, "tg_lang").unwrap();
    let en_browser = Browser {
        cookie: format!("{}; tg_lang={lang}", v.cookie),
        csrf: v.csrf.clone(),
    };
    let en = e.get(Some(&en_browser), "/").await;
    assert!(
        en.body.contains("Fleet") && en.body.contains("lang=\"en\""),
        "{}",
        en.body
    );
    // An open redirect through the switch is not possible.
    let evil = e.get(Some(&v), "/lang/en?next=//evil.example/").await;
    assert_eq!(evil.location(), "/");
}

#[tokio::test]
async fn reports_come_from_the_browser_in_every_format_with_missing_hours() {
    let e = env().await;
    e.device("unit-1").await;
    e.upload(
        "unit-1",
        "a.txt",
        &sample("lis200/tc220_interval_3days.txt"),
    )
    .await;
    let v = e.as_role("viewer", Role::Viewer).await;
    let form = e.get(Some(&v), "/reports").await;
    assert!(
        form.body.contains("<option value=\"unit-1\""),
        "the device is offered"
    );
    let base = "/reports/download?device=unit-1&period=range:2026-01-14..2026-01-16";
    let html = e.get(Some(&v), &format!("{base}&format=html")).await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(
        html.body.contains("560,8892") || html.body.contains("560.8892"),
        "the gas-day volume"
    );
    let csp = html
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script"),
        "{csp}"
    );
    let csv = e
        .get(Some(&v), &format!("{base}&format=csv-1251&rows=hourly"))
        .await;
    assert_eq!(
        csv.headers.get(header::CONTENT_TYPE).unwrap(),
        "text/csv; charset=windows-1251"
    );
    let (decoded, _, bad) = encoding_rs::WINDOWS_1251.decode(&csv.bytes);
    assert!(
        !bad && decoded.contains(';') && decoded.contains("38,3431"),
        "{decoded}"
    );
    let xlsx = e.get(Some(&v), &format!("{base}&format=xlsx")).await;
    assert!(xlsx.bytes.starts_with(b"PK"), "an XLSX (zip) file");
    // A period without data is refused with a message, not an empty file.
    let none = e
        .get(
            Some(&v),
            "/reports/download?device=unit-1&period=month:2020-01&format=csv",
        )
        .await;
    assert!(none.status.is_client_error(), "{}", none.status);
    assert!(none.body.contains("no readings"), "{}", none.body);
    let unknown = e
        .get(
            Some(&v),
            "/reports/download?device=nope&period=month:2026-01",
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // Missing hours, to ask the unit to send them again.
    let missing = e
        .get(
            Some(&v),
            "/reports?device=unit-1&period=range:2026-01-13..2026-01-14&completeness=1",
        )
        .await;
    assert_eq!(missing.status, StatusCode::OK, "{}", missing.body);
    assert!(missing.body.contains("id=\"completeness\""));
    assert!(missing.body.contains("13.01 11:00"), "{}", missing.body);
}

#[tokio::test]
async fn failed_deliveries_and_their_errors_are_visible() {
    let e = env().await;
    let day: jiff::civil::Date = "2026-01-14".parse().unwrap();
    let now = Timestamp::now();
    e.db()
        .ensure_delivery("daily-to-gorgaz", day, now)
        .await
        .unwrap();
    e.db()
        .claim_delivery("daily-to-gorgaz", day, now, now, true)
        .await
        .unwrap();
    e.db()
        .finish_delivery(
            "daily-to-gorgaz",
            day,
            now,
            &telegaz_store::DeliveryOutcome::Failed {
                error: "550 mailbox <x@y> unavailable".into(),
            },
        )
        .await
        .unwrap();
    let v = e.as_role("viewer", Role::Viewer).await;
    let page = e.get(Some(&v), "/deliveries").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("class=\"delivery-failed\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("550 mailbox &#60;x@y&#62; unavailable"),
        "the error, escaped"
    );
}

#[tokio::test]
async fn own_password_change_needs_the_current_one_and_tokens_can_be_revoked() {
    let e = env().await;
    let pw = e.user("сидоров", Role::Viewer).await;
    let b = e.sign_in("сидоров", &pw).await.ok().unwrap();
    let wrong = e
        .post(
            Some(&b),
            "/account/password",
            &[("current", "nope"), ("new", "a-new-long-password")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let short = e
        .post(
            Some(&b),
            "/account/password",
            &[("current", &pw), ("new", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let r = e
        .post(Some(&b), "/account/tokens", &[("label", "script")])
        .await;
    let token = r
        .body
        .split("id=\"new-token\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned();
    let hash = telegaz_web::token_sha256(&token);
    let t = e
        .db()
        .user_by_api_token(&hash, Timestamp::now())
        .await
        .unwrap();
    assert!(t.is_some());
    let me = e.db().user_by_name("сидоров").await.unwrap().unwrap();
    let id = e.db().list_api_tokens(me.id).await.unwrap()[0].id;
    let r = e
        .post(Some(&b), &format!("/account/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        e.db()
            .user_by_api_token(&hash, Timestamp::now())
            .await
            .unwrap()
            .is_none()
    );
    // The right current password: changed, and the session ends.
    let ok = e
        .post(
            Some(&b),
            "/account/password",
            &[("current", &pw), ("new", "a-new-long-password")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(e.get(Some(&b), "/").await.status, StatusCode::SEE_OTHER);
    assert!(e.sign_in("сидоров", "a-new-long-password").await.is_ok());
    assert!(e.sign_in("сидоров", &pw).await.is_err());
}

#[tokio::test]
async fn alerts_are_shown_escaped_and_acknowledged_by_operators() {
    let e = env().await;
    let d = e.device("unit-1").await;
    let alert = e
        .db()
        .open_alert(
            &telegaz_store::NewAlert {
                key: "silent:1".into(),
                kind: telegaz_domain::AlertKind::Silent,
                severity: telegaz_domain::Severity::Warning,
                device_id: Some(d.id),
                title: "Узел unit-1 молчит".into(),
                detail: "<script>alert(1)</script>".into(),
                opened_at: Timestamp::now(),
            },
            Some(&telegaz_store::NewNotification {
                event: telegaz_domain::NotificationEvent::Opened,
                kind: telegaz_domain::AlertKind::Silent,
                severity: telegaz_domain::Severity::Warning,
                device: Some("unit-1".into()),
                title: "Узел unit-1 молчит".into(),
                text: "нет связи".into(),
                at: Timestamp::now(),
                devices: vec![],
                notifiers: vec!["telegram".into()],
            }),
        )
        .await
        .unwrap()
        .unwrap();
    // The notifier failed once: visible with its error.
    let n = e
        .db()
        .due_notifications("telegram", Timestamp::now(), 10)
        .await
        .unwrap();
    e.db()
        .finish_notification(
            n[0].id,
            "telegram",
            &telegaz_store::SendOutcome::Retry {
                error: "HTTP 502 from api.telegram.org".into(),
                at: Timestamp::now(),
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    let v = e.as_role("viewer", Role::Viewer).await;
    let page = e.get(Some(&v), "/alerts").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Узел unit-1 молчит"));
    assert!(!page.body.contains("<script>alert(1)"), "escaped");
    assert!(
        page.body.contains("HTTP 502 from api.telegram.org"),
        "the failure is visible"
    );
    assert!(!page.body.contains("/ack\""), "a viewer has no button");
    let path = format!("/alerts/{}/ack", alert.id);
    assert_eq!(
        e.post(Some(&v), &path, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let op = e.as_role("op", Role::Operator).await;
    assert!(e.get(Some(&op), "/alerts").await.body.contains(&path));
    assert_eq!(
        e.post(Some(&op), &path, &[("csrf", "wrong")]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        e.post(Some(&op), &path, &[]).await.status,
        StatusCode::SEE_OTHER
    );
    let a = &e
        .db()
        .list_alerts(&telegaz_store::AlertFilter::default())
        .await
        .unwrap()[0];
    assert_eq!(a.state, telegaz_domain::AlertState::Acknowledged);
    assert_eq!(a.acknowledged_by.as_deref(), Some("op"));
}

// --- bans (abuse resistance) ---
#[tokio::test]
async fn administrators_see_add_and_lift_bans_with_csrf_forms() {
    let e = env().await;
    let admin = e.as_role("admin", Role::Admin).await;
    let op = e.as_role("op", Role::Operator).await;
    // Linked from the navigation for administrators only.
    assert!(
        e.get(Some(&admin), "/")
            .await
            .body
            .contains("href=\"/bans\"")
    );
    assert!(!e.get(Some(&op), "/").await.body.contains("href=\"/bans\""));
    assert_eq!(
        e.get(Some(&op), "/bans").await.status,
        StatusCode::FORBIDDEN
    );
    let page = e.get(Some(&admin), "/bans").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"no-bans\""), "{}", page.body);
    // Without the CSRF token nothing is made.
    let r = e
        .post(
            Some(&admin),
            "/bans",
            &[("address", "198.51.100.7"), ("csrf", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        e.db()
            .list_bans(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    // An operator cannot add one either.
    let r = e
        .post(Some(&op), "/bans", &[("address", "198.51.100.7")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Made from the form; the reason is shown escaped.
    let r = e
        .post(
            Some(&admin),
            "/bans",
            &[
                ("address", "198.51.100.7"),
                ("login", ""),
                ("for", "2h"),
                ("reason", "<b>guessing</b>"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let bans = e.db().list_bans(&Default::default()).await.unwrap();
    assert_eq!(bans.len(), 1);
    let ban = &bans[0];
    assert_eq!(ban.created_by, "web:admin");
    assert_eq!(ban.address.as_deref(), Some("198.51.100.7"));
    let page = e.get(Some(&admin), "/bans").await;
    assert!(page.body.contains(&format!("id=\"ban-{}\"", ban.id)));
    assert!(
        page.body.contains("&#60;b&#62;guessing&#60;/b&#62;") && !page.body.contains("<b>guessing")
    );
    assert!(
        page.body
            .contains(&format!("action=\"/bans/{}/lift\"", ban.id))
    );
    // Bad input is explained.
    let r = e
        .post(Some(&admin), "/bans", &[("address", "10.0.0.0/8")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("not an IP address"), "{}", r.body);
    // Lifting: operators may not, administrators with the form may.
    let lift = format!("/bans/{}/lift", ban.id);
    assert_eq!(
        e.post(Some(&op), &lift, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let r = e.post(Some(&admin), &lift, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let now = Timestamp::now();
    assert!(
        e.db()
            .active_ban("198.51.100.7", "unit-1", now)
            .await
            .unwrap()
            .is_none()
    );
    let after = e.get(Some(&admin), "/bans").await;
    assert!(after.body.contains("id=\"no-bans\""));
    let all = e.get(Some(&admin), "/bans?all=1").await;
    assert!(all.body.contains(&format!("id=\"ban-{}\"", ban.id)));
    assert!(all.body.contains("web:admin"));
    // Both changes are in the audit trail, and the audit page filters on them.
    let audit = e.get(Some(&admin), "/audit?kind=ban_lifted").await;
    assert_eq!(audit.status, StatusCode::OK);
    assert!(audit.body.contains("lifted by web:admin"), "{}", audit.body);
    let audit = e.get(Some(&admin), "/audit?kind=ban_created").await;
    assert!(audit.body.contains("made by web:admin"));
    // English.
    let en = Browser {
        cookie: format!("{}; tg_lang=en", admin.cookie),
        csrf: admin.csrf.clone(),
    };
    let page = e.get(Some(&en), "/bans?all=1").await;
    assert!(page.body.contains("<h1>Bans</h1>"), "{}", page.body);
    assert!(page.body.contains("lifted (web:admin)"));
    assert!(
        !page.body.contains(">Lift<"),
        "no lift button for a lifted ban"
    );
}
// --- end bans ---
