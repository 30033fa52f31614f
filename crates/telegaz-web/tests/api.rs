#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! HTTP tests of the REST API: every endpoint, authorisation, CSRF, bad
//! input and hostile content, through the whole router.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use secrecy::SecretString;
use serde_json::{Value, json};
use telegaz_domain::{DeviceName, FileName, Role, UploadId};
use telegaz_store::{Database, NewDevice};
use telegaz_web::token_sha256;
use tower::ServiceExt;

mod common;

const DEVICE: &str = "unit-1";
const OP_TOKEN: &str = "operator-token-0123456789";
const VIEWER_TOKEN: &str = "viewer-token-0123456789";
const OP_COOKIE: &str = "operator-session-cookie";
const OP_CSRF: &str = "operator-csrf-token";
const VIEWER_COOKIE: &str = "viewer-session-cookie";
const VIEWER_CSRF: &str = "viewer-csrf-token";
const ADMIN_TOKEN: &str = "admin-token-0123456789";

/// The bytes of the hostile upload: Windows-1251 text, NUL, ESC, CR LF, 0xFF.
const HOSTILE_BYTES: &[u8] = b"\xcf\xf0\xe8\xe2\xe5\xf2\x00\x1b[31m\r\n\xff\xfe;\"<script>";
/// Its client-side name: quotes, a `;`, CR LF and Cyrillic.
const HOSTILE_NAME: &str = "evil \"name\";\r\nX-Injected: 1; отчёт.bin";

struct Env {
    app: Router,
    db: Arc<dyn Database>,
    /// The parsed interval archive.
    archive: UploadId,
    /// The hostile upload (not parsed).
    hostile: UploadId,
    /// An open alert.
    alert: i64,
    /// A ban in force.
    ban: i64,
    _dir: tempfile::TempDir,
}

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/samples")
}

/// A user with an API token and a session (cookie and CSRF token).
async fn user(db: &dyn Database, name: &str, role: Role, token: &str, cookie: &str, csrf: &str) {
    let u = common::user(db, name, role, &format!("{name}-password")).await;
    db.create_api_token(u.id, "tests", &token_sha256(token))
        .await
        .unwrap();
    common::session(db, &u, cookie, csrf).await;
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let (db, spool) = (ctx.db.clone(), ctx.spool.clone());
    user(&*db, "op", Role::Operator, OP_TOKEN, OP_COOKIE, OP_CSRF).await;
    user(
        &*db,
        "viewer",
        Role::Viewer,
        VIEWER_TOKEN,
        VIEWER_COOKIE,
        VIEWER_CSRF,
    )
    .await;
    user(
        &*db,
        "admin",
        Role::Admin,
        ADMIN_TOKEN,
        "admin-session-cookie",
        "admin-csrf-token",
    )
    .await;
    let ban = db
        .create_ban(&telegaz_domain::NewBan {
            address: Some("203.0.113.9".into()),
            login: None,
            reason: "tests".into(),
            created_by: "cli".into(),
            created_at: jiff::Timestamp::now(),
            expires_at: None,
            repeat: 0,
        })
        .await
        .unwrap()
        .id;
    let device = db
        .create_device(NewDevice {
            name: DeviceName::parse(DEVICE).unwrap(),
            login: DeviceName::parse(DEVICE).unwrap(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
                .into(),
            allowed_networks: vec![],
        })
        .await
        .unwrap();
    let ingestor = telegaz_ingest::Ingestor::new(
        db.clone(),
        spool.clone(),
        telegaz_ingest::Profiles::default(),
    );
    let mut archive = None;
    for file in ["lis200/tc220_interval_3days.txt", "lis200/tc220_events.txt"] {
        let bytes = std::fs::read(samples().join(file)).unwrap();
        let id = common::store_upload(&*db, &spool, device.id, FileName::utf8(file), &bytes).await;
        let outcome = ingestor.process(id).await.unwrap();
        assert_eq!(
            outcome.state(),
            telegaz_domain::IngestState::Parsed,
            "{file}: {outcome:?}"
        );
        archive.get_or_insert(id);
    }
    let raw_name = encoding_rs::WINDOWS_1251
        .encode(HOSTILE_NAME)
        .0
        .into_owned();
    let hostile = common::store_upload(
        &*db,
        &spool,
        device.id,
        FileName {
            display: HOSTILE_NAME.into(),
            raw: raw_name,
        },
        HOSTILE_BYTES,
    )
    .await;
    let alert = db
        .open_alert(
            &telegaz_store::NewAlert {
                key: format!("silent:{}", device.id),
                kind: telegaz_domain::AlertKind::Silent,
                severity: telegaz_domain::Severity::Warning,
                device_id: Some(device.id),
                title: "Узел unit-1 молчит".into(),
                detail: "<script>alert(1)</script>".into(),
                opened_at: jiff::Timestamp::now(),
            },
            None,
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    Env {
        app: telegaz_web::router(ctx),
        db,
        archive: archive.unwrap(),
        hostile,
        alert,
        ban,
        _dir: dir,
    }
}

/// How a request proves who sends it.
#[derive(Clone, Copy)]
enum Cred {
    Anonymous,
    Bearer(&'static str),
    /// A session cookie, with the CSRF header or without.
    Session(&'static str, Option<&'static str>),
}

const OP: Cred = Cred::Bearer(OP_TOKEN);
const VIEWER: Cred = Cred::Bearer(VIEWER_TOKEN);
const ADMIN: Cred = Cred::Bearer(ADMIN_TOKEN);

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A JSON error with this status.
    fn assert_error(&self, status: StatusCode) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            self.content_type().starts_with("application/json"),
            "{}",
            self.content_type()
        );
        let v = self.json();
        let msg = v["error"].as_str().expect("an error message").to_owned();
        assert!(!msg.is_empty());
        msg
    }
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    cred: Cred,
    body: Option<Body>,
    json_body: bool,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/api/v1{uri}"))
        .header(header::HOST, "localhost");
    match cred {
        Cred::Anonymous => {}
        Cred::Bearer(t) => req = req.header(header::AUTHORIZATION, format!("Bearer {t}")),
        Cred::Session(cookie, csrf) => {
            req = req.header(header::COOKIE, format!("tg_lang=en; tg_session={cookie}"));
            if let Some(csrf) = csrf {
                req = req.header("x-csrf-token", csrf);
            }
        }
    }
    if json_body {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let response = app
        .clone()
        .oneshot(req.body(body.unwrap_or_else(Body::empty)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(app: &Router, uri: &str, cred: Cred) -> Answer {
    send(app, Method::GET, uri, cred, None, false).await
}

async fn write(app: &Router, method: Method, uri: &str, cred: Cred, body: Value) -> Answer {
    send(
        app,
        method,
        uri,
        cred,
        Some(Body::from(body.to_string())),
        true,
    )
    .await
}

async fn openapi(app: &Router) -> Value {
    let a = get(app, "/openapi.json", Cred::Anonymous).await;
    assert_eq!(a.status, StatusCode::OK);
    a.json()
}

/// Every documented operation: (method, path template, operation).
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((
                method.to_uppercase().parse().unwrap(),
                path.clone(),
                op.clone(),
            ));
        }
    }
    out
}

/// A real request for a documented operation: path parameters name real
/// objects, required query parameters take their examples, the body its
/// example.
fn concrete(env: &Env, path: &str, op: &Value) -> (String, Option<Value>) {
    let mut uri = path
        .replace("{name}", DEVICE)
        .replace("{id}", &env.archive.0.to_string())
        .replace("{alert}", &env.alert.to_string())
        .replace("{ban}", &env.ban.to_string());
    let mut query = Vec::new();
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] == "query" && p["required"] == true {
            let name = p["name"].as_str().unwrap();
            let value = if name == "device" {
                DEVICE.to_owned()
            } else {
                p["example"].as_str().unwrap().to_owned()
            };
            query.push(format!("{name}={value}"));
        }
    }
    if !query.is_empty() {
        uri = format!("{uri}?{}", query.join("&"));
    }
    let body = op["requestBody"]["content"]["application/json"]["example"].clone();
    (uri, (!body.is_null()).then_some(body))
}

async fn call_op(env: &Env, method: &Method, path: &str, op: &Value, cred: Cred) -> Answer {
    let (uri, body) = concrete(env, path, op);
    match body {
        Some(b) => write(&env.app, method.clone(), &uri, cred, b).await,
        None => send(&env.app, method.clone(), &uri, cred, None, false).await,
    }
}

#[tokio::test]
async fn openapi_is_public_and_describes_the_api() {
    let env = env().await;
    let doc = openapi(&env.app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    let ops = operations(&doc);
    assert_eq!(
        ops.len(),
        22,
        "{:?}",
        ops.iter().map(|o| (&o.0, &o.1)).collect::<Vec<_>>()
    );
    for (method, path, op) in &ops {
        assert!(op["operationId"].is_string(), "{method} {path}");
        assert!(
            op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with('2')),
            "{method} {path}"
        );
        for param in path.split('/').filter(|s| s.starts_with('{')) {
            let name = param.trim_matches(['{', '}']);
            assert!(
                op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["in"] == "path" && p["name"] == name),
                "{method} {path}: path parameter {name} undocumented"
            );
        }
        if path != "/openapi.json" {
            assert!(
                op.get("security").is_none(),
                "{method} {path} must not be public"
            );
            assert!(op["responses"]["401"].is_object(), "{method} {path}");
        }
        // Every schema reference resolves.
        let text = op.to_string();
        for piece in text.split("\"$ref\":\"#/components/").skip(1) {
            let reference = piece.split('"').next().unwrap();
            let mut node = &doc["components"];
            for part in reference.split('/') {
                node = &node[part];
            }
            assert!(
                node.is_object(),
                "{method} {path}: dangling $ref {reference}"
            );
        }
    }
}

#[tokio::test]
async fn every_documented_route_is_served_and_nothing_else() {
    let env = env().await;
    let doc = openapi(&env.app).await;
    let ops = operations(&doc);
    for (method, path, op) in &ops {
        let cred = if op["x-required-role"] == "admin" {
            ADMIN
        } else {
            OP
        };
        let a = call_op(&env, method, path, op, cred).await;
        assert!(
            !matches!(
                a.status,
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ) && a.status.is_success(),
            "{method} {path}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
    }
    // The router serves no other method on a documented path.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if item.get(method.as_str().to_lowercase()).is_some() {
                continue;
            }
            let (uri, _) = concrete(&env, path, &json!({}));
            // An administrator passes every role check, so only the method decides.
            let a = send(&env.app, method.clone(), &uri, ADMIN, None, false).await;
            assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    // An undocumented path is a JSON 404.
    get(&env.app, "/nothing-here", OP)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    get(&env.app, "/devices/unit-1/nothing", OP)
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn alerts_are_listed_and_acknowledged_by_operators_only() {
    let env = env().await;
    let list = get(&env.app, "/alerts", VIEWER).await;
    assert_eq!(list.status, StatusCode::OK);
    let alerts = list.json()["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["kind"], "silent");
    assert_eq!(
        alerts[0]["detail"], "<script>alert(1)</script>",
        "verbatim in JSON"
    );
    let path = format!("/alerts/{}/ack", env.alert);
    send(&env.app, Method::POST, &path, VIEWER, None, false)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    let acked = send(&env.app, Method::POST, &path, OP, None, false).await;
    assert_eq!(acked.status, StatusCode::OK);
    assert_eq!(acked.json()["state"], "acknowledged");
    assert_eq!(acked.json()["acknowledged_by"], "op");
    send(&env.app, Method::POST, "/alerts/9999/ack", OP, None, false)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    get(&env.app, "/alerts?kind=nonsense", VIEWER)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    let all = get(&env.app, "/alerts?active=false&device=unit-1", VIEWER).await;
    assert_eq!(all.json()["alerts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn anonymous_requests_are_refused_everywhere_but_the_document() {
    let env = env().await;
    let doc = openapi(&env.app).await;
    for (method, path, op) in operations(&doc) {
        if path == "/openapi.json" {
            continue;
        }
        for cred in [
            Cred::Anonymous,
            Cred::Bearer("no-such-token"),
            Cred::Session("no-such-session", Some("x")),
        ] {
            let a = call_op(&env, &method, &path, &op, cred).await;
            a.assert_error(StatusCode::UNAUTHORIZED);
        }
    }
    // Nothing was created or changed.
    assert!(env.db.device_by_name("unit-new").await.unwrap().is_none());
    assert_eq!(
        env.db.device_by_name(DEVICE).await.unwrap().unwrap().title,
        ""
    );
}

#[tokio::test]
async fn a_viewer_reads_everything_and_changes_nothing() {
    let env = env().await;
    let doc = openapi(&env.app).await;
    let before = env.db.device_by_name(DEVICE).await.unwrap().unwrap();
    for (method, path, op) in operations(&doc) {
        let role = op["x-required-role"].as_str().unwrap();
        for cred in [VIEWER, Cred::Session(VIEWER_COOKIE, Some(VIEWER_CSRF))] {
            let a = call_op(&env, &method, &path, &op, cred).await;
            match role {
                "operator" | "admin" => {
                    let msg = a.assert_error(StatusCode::FORBIDDEN);
                    assert!(msg.contains("role"), "{msg}");
                }
                _ => assert!(a.status.is_success(), "{method} {path}: {}", a.status),
            }
        }
    }
    let after = env.db.device_by_name(DEVICE).await.unwrap().unwrap();
    assert!(before == after, "a viewer changed the device");
    assert!(env.db.device_by_name("unit-new").await.unwrap().is_none());
    let upload = env.db.upload(env.archive).await.unwrap().unwrap();
    assert_eq!(
        upload.ingest.unwrap().status,
        telegaz_domain::IngestState::Parsed,
        "a viewer queued a re-parse"
    );
}

#[tokio::test]
async fn session_writes_need_the_csrf_token_and_bearer_writes_do_not() {
    let env = env().await;
    let uri = format!("/devices/{DEVICE}");
    for csrf in [None, Some("wrong-token"), Some("")] {
        let a = write(
            &env.app,
            Method::PATCH,
            &uri,
            Cred::Session(OP_COOKIE, csrf),
            json!({"title": "x"}),
        )
        .await;
        let msg = a.assert_error(StatusCode::FORBIDDEN);
        assert!(msg.contains("CSRF"), "{msg}");
    }
    assert_eq!(
        env.db.device_by_name(DEVICE).await.unwrap().unwrap().title,
        ""
    );
    // Another user's CSRF token does not do either.
    let a = write(
        &env.app,
        Method::PATCH,
        &uri,
        Cred::Session(OP_COOKIE, Some(VIEWER_CSRF)),
        json!({"title": "x"}),
    )
    .await;
    a.assert_error(StatusCode::FORBIDDEN);
    let a = write(
        &env.app,
        Method::PATCH,
        &uri,
        Cred::Session(OP_COOKIE, Some(OP_CSRF)),
        json!({"title": "by session"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["title"], "by session");
    // Reads need no token.
    let a = get(&env.app, &uri, Cred::Session(OP_COOKIE, None)).await;
    assert_eq!(a.status, StatusCode::OK);
    // A bearer token is not a cookie: no CSRF token needed.
    let a = write(
        &env.app,
        Method::PATCH,
        &uri,
        OP,
        json!({"title": "by token"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(
        &env.app,
        Method::POST,
        &format!("/uploads/{}/reparse", env.archive),
        Cred::Session(OP_COOKIE, None),
        None,
        false,
    )
    .await;
    a.assert_error(StatusCode::FORBIDDEN);
    let a = send(
        &env.app,
        Method::POST,
        &format!("/uploads/{}/reparse", env.archive),
        Cred::Session(OP_COOKIE, Some(OP_CSRF)),
        None,
        false,
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);

    // Every state-changing operation the API documents (its own OpenAPI
    // document lists them all), sent with the session cookie and a missing,
    // wrong or another user's token, as a cross-site page would: refused
    // before its handler runs, and nothing changes.
    let devices = get(&env.app, "/devices", OP).await.body;
    let alerts = get(&env.app, "/alerts", OP).await.body;
    let writes: Vec<_> = operations(&openapi(&env.app).await)
        .into_iter()
        .filter(|(m, _, _)| *m != Method::GET && *m != Method::HEAD)
        .collect();
    assert!(writes.len() >= 5, "{writes:?}");
    for (method, path, op) in &writes {
        for csrf in [None, Some("wrong-token"), Some(VIEWER_CSRF)] {
            let a = call_op(&env, method, path, op, Cred::Session(OP_COOKIE, csrf)).await;
            let msg = a.assert_error(StatusCode::FORBIDDEN);
            assert!(msg.contains("CSRF"), "{method} {path}: {msg}");
        }
    }
    assert_eq!(get(&env.app, "/devices", OP).await.body, devices);
    assert_eq!(get(&env.app, "/alerts", OP).await.body, alerts);
}

#[tokio::test]
async fn devices_are_listed_registered_changed_and_audited() {
    let env = env().await;
    let a = get(&env.app, "/devices", VIEWER).await;
    assert_eq!(a.status, StatusCode::OK);
    let list = a.json();
    let d = &list["devices"][0];
    assert_eq!(d["name"], DEVICE);
    assert_eq!(d["time_zone"], "Europe/Moscow");
    assert_eq!(d["contract_hour"], 10);
    assert_eq!(d["newest_data"], "2026-01-17T10:00:00");
    assert!(d["last_contact"].is_string());
    assert!(d.get("password_hash").is_none());
    assert!(
        ["ok", "alarm", "quarantined"].contains(&d["state"].as_str().unwrap()),
        "{d}"
    );

    // Register without a password: one is generated and shown once.
    let a = write(&env.app, Method::POST, "/devices", OP, json!({
        "name": "unit-2", "login": "modem2", "title": "Котельная №2",
        "allowed_networks": ["10.64.0.0/16"], "time_zone": "Asia/Yekaterinburg", "contract_hour": 8
    })).await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let created = a.json();
    let password = created["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 16);
    assert_eq!(created["device"]["login"], "modem2");
    assert_eq!(created["device"]["title"], "Котельная №2");
    assert_eq!(created["device"]["time_zone"], "Asia/Yekaterinburg");
    assert_eq!(created["device"]["contract_hour"], 8);
    assert_eq!(created["device"]["state"], "never");
    let stored = env.db.device_by_name("unit-2").await.unwrap().unwrap();
    assert!(
        telegaz_auth::verify_password(&stored.password_hash, &SecretString::from(password.clone()))
            .unwrap()
    );
    // A generated password gets the cheap argon2id parameters (it is long
    // and random; see telegaz_auth::GENERATED_PARAMS).
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=8,t=1,p=1$"),
        "{}",
        stored.password_hash
    );
    // The password is not shown again.
    let a = get(&env.app, "/devices/unit-2", OP).await;
    assert!(!String::from_utf8_lossy(&a.body).contains(&password));

    // With a password given, it is not echoed.
    let a = write(
        &env.app,
        Method::POST,
        "/devices",
        OP,
        json!({"name": "unit-3", "password": "given-pw-1"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert!(a.json().get("password").is_none());
    // A password a person chose keeps the memory-hard default parameters.
    let stored = env.db.device_by_name("unit-3").await.unwrap().unwrap();
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored.password_hash
    );
    // Taken name.
    write(
        &env.app,
        Method::POST,
        "/devices",
        OP,
        json!({"name": "unit-3"}),
    )
    .await
    .assert_error(StatusCode::CONFLICT);
    // Bad inputs.
    for body in [
        json!({"name": "bad name/"}),
        json!({"name": "unit-4", "time_zone": "Mars/Olympus"}),
        json!({"name": "unit-4", "contract_hour": 24}),
        json!({"name": "unit-4", "allowed_networks": ["not-a-net"]}),
        json!({"name": "unit-4", "password": ""}),
        json!({"name": "unit-4", "title": "line\nbreak"}),
    ] {
        write(&env.app, Method::POST, "/devices", OP, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    write(
        &env.app,
        Method::POST,
        "/devices",
        OP,
        json!({"name": "unit-4", "colour": "red"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    write(
        &env.app,
        Method::POST,
        "/devices",
        OP,
        json!({"title": "no name"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    send(
        &env.app,
        Method::POST,
        "/devices",
        OP,
        Some(Body::from("{\"name\": ")),
        true,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST);
    send(
        &env.app,
        Method::POST,
        "/devices",
        OP,
        Some(Body::from("{\"name\":\"unit-4\"}")),
        false,
    )
    .await
    .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(env.db.device_by_name("unit-4").await.unwrap().is_none());

    // Change.
    let a = write(&env.app, Method::PATCH, "/devices/unit-2", OP, json!({
        "enabled": false, "allowed_networks": [], "contract_hour": 0, "time_zone": "Europe/Kaliningrad"
    })).await;
    assert_eq!(a.status, StatusCode::OK);
    let d = a.json();
    assert_eq!(d["enabled"], false);
    assert_eq!(d["state"], "disabled");
    assert_eq!(d["allowed_networks"], json!([]));
    assert_eq!(d["contract_hour"], 0);
    assert_eq!(d["time_zone"], "Europe/Kaliningrad");
    write(&env.app, Method::PATCH, "/devices/unit-2", OP, json!({}))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    write(
        &env.app,
        Method::PATCH,
        "/devices/unit-2",
        OP,
        json!({"contract_hour": -1}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST);
    write(
        &env.app,
        Method::PATCH,
        "/devices/unit-2",
        OP,
        json!({"enabled": "yes"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    write(
        &env.app,
        Method::PATCH,
        "/devices/nobody",
        OP,
        json!({"title": "x"}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND);
    get(&env.app, "/devices/nobody", OP)
        .await
        .assert_error(StatusCode::NOT_FOUND);

    // New password: generated, returned once; the old one stops working.
    let a = send(
        &env.app,
        Method::POST,
        "/devices/unit-2/password",
        OP,
        None,
        false,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let new_pw = a.json()["password"].as_str().unwrap().to_owned();
    let stored = env.db.device_by_name("unit-2").await.unwrap().unwrap();
    assert!(
        telegaz_auth::verify_password(&stored.password_hash, &SecretString::from(new_pw)).unwrap()
    );
    assert!(
        !telegaz_auth::verify_password(&stored.password_hash, &SecretString::from(password))
            .unwrap()
    );
    let a = write(
        &env.app,
        Method::POST,
        "/devices/unit-2/password",
        OP,
        json!({"password": "chosen-pw"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.json().get("password").is_none());
    write(
        &env.app,
        Method::POST,
        "/devices/unit-2/password",
        OP,
        json!({"pw": "x"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST);
    send(
        &env.app,
        Method::POST,
        "/devices/nobody/password",
        OP,
        None,
        false,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND);

    // Every change is in the audit trail, with who did it.
    let a = get(&env.app, "/audit?kind=device_changed&device=unit-2", VIEWER).await;
    assert_eq!(a.status, StatusCode::OK);
    let events = a.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 4, "{events:?}");
    for e in &events {
        assert_eq!(e["login"], "modem2");
        assert!(e["detail"].as_str().unwrap().contains("by op"), "{e}");
        assert!(!e["detail"].as_str().unwrap().contains("chosen-pw"));
    }
    // Newest first.
    assert!(
        events[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("password changed")
    );
    assert!(events[2]["detail"].as_str().unwrap().contains("disabled"));
    assert!(
        events[3]["detail"]
            .as_str()
            .unwrap()
            .contains("device unit-2 added")
    );
}

#[tokio::test]
async fn hostile_text_round_trips_verbatim_as_json() {
    let env = env().await;
    let title = "<script>alert(1)</script>\"'&";
    let a = write(
        &env.app,
        Method::PATCH,
        &format!("/devices/{DEVICE}"),
        OP,
        json!({"title": title}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    for uri in [
        format!("/devices/{DEVICE}"),
        "/devices".into(),
        "/fleet".into(),
    ] {
        let a = get(&env.app, &uri, VIEWER).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.content_type(), "application/json");
        assert_eq!(
            a.headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
            "nosniff"
        );
    }
    assert_eq!(
        get(&env.app, &format!("/devices/{DEVICE}"), VIEWER)
            .await
            .json()["title"],
        title
    );
    assert_eq!(
        get(&env.app, "/devices", VIEWER).await.json()["devices"][0]["title"],
        title
    );
    assert_eq!(
        get(&env.app, "/fleet", VIEWER).await.json()["rows"][0]["title"],
        title
    );
    // The bytes are JSON text, not markup: `<` stays, quotes are escaped.
    let raw = get(&env.app, &format!("/devices/{DEVICE}"), VIEWER)
        .await
        .body;
    assert!(String::from_utf8_lossy(&raw).contains(r#""title":"<script>alert(1)</script>\"'&""#));
    // The hostile upload's name too.
    let a = get(&env.app, &format!("/uploads/{}", env.hostile), VIEWER).await;
    assert_eq!(a.json()["original_name"], HOSTILE_NAME);
}

fn expected() -> Value {
    let text = std::fs::read_to_string(samples().join("expected.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "tc220_interval_3days.txt")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn readings_daily_and_events_give_the_real_values() {
    let env = env().await;
    let want = expected();
    let a = get(
        &env.app,
        &format!("/devices/{DEVICE}/readings?from=2026-01-14&to=2026-01-17"),
        VIEWER,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let got = a.json();
    let rows = got["readings"].as_array().unwrap();
    let hourly = want["hourly"].as_array().unwrap();
    assert_eq!(rows.len(), hourly.len());
    for (r, w) in rows.iter().zip(hourly) {
        assert_eq!(r["hour_end_local"], w["hour_end_local"]);
        assert_eq!(r["vb_m3"].as_f64(), w["vb_m3"].as_f64(), "{r}");
        assert_eq!(r["vm_m3"].as_f64(), w["vm_m3"].as_f64(), "{r}");
        assert!(r["p_kpa"].is_number() && r["t_c"].is_number() && r["flags"].is_array());
    }
    assert_eq!(rows[0]["vb_m3"], json!(38.3431));
    // One day: the hours ending after its midnight up to the next midnight.
    let a = get(
        &env.app,
        &format!("/devices/{DEVICE}/readings?from=2026-01-15&to=2026-01-15"),
        VIEWER,
    )
    .await;
    let rows = a.json()["readings"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 24);
    assert_eq!(rows[0]["hour_end_local"], "2026-01-15T01:00:00");
    assert_eq!(rows[23]["hour_end_local"], "2026-01-16T00:00:00");

    let a = get(
        &env.app,
        &format!("/devices/{DEVICE}/daily?from=2026-01-14&to=2026-01-16"),
        VIEWER,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let days = a.json()["days"].as_array().unwrap().clone();
    let wdays = want["daily"].as_array().unwrap();
    assert_eq!(days.len(), wdays.len());
    for (d, w) in days.iter().zip(wdays) {
        assert_eq!(d["gas_day"], w["gas_day"]);
        assert_eq!(d["vb_m3"].as_f64(), w["vb_m3"].as_f64(), "{d}");
        assert_eq!(d["hours"], w["hours"]);
        assert_eq!(d["complete"], w["complete"]);
        assert_eq!(d["final"], true);
    }
    assert_eq!(days[1]["vb_m3"], json!(602.036));

    let a = get(
        &env.app,
        &format!("/devices/{DEVICE}/events?from=2026-01-14&to=2026-01-14"),
        VIEWER,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let events = a.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["local_time"], "2026-01-14T13:05:12");
    assert_eq!(events[0]["code_hex"], "0x2007");
    assert_eq!(events[0]["record_no"], 101);
    assert_eq!(events[0]["check"], "ok");
}

#[tokio::test]
async fn bad_ranges_and_unknown_devices_are_refused() {
    let env = env().await;
    for what in ["readings", "daily", "events"] {
        let base = format!("/devices/{DEVICE}/{what}");
        for (query, status) in [
            ("from=2026-01-16&to=2026-01-14", StatusCode::BAD_REQUEST),
            ("from=2025-01-01&to=2026-01-02", StatusCode::BAD_REQUEST),
            ("from=2026-01-14", StatusCode::BAD_REQUEST),
            ("to=2026-01-14", StatusCode::BAD_REQUEST),
            ("from=14.01.2026&to=2026-01-14", StatusCode::BAD_REQUEST),
        ] {
            let msg = get(&env.app, &format!("{base}?{query}"), VIEWER)
                .await
                .assert_error(status);
            if query.starts_with("from=2026-01-16") {
                assert!(msg.contains("reversed"), "{msg}");
            }
        }
        // 366 days is the most.
        let a = get(
            &env.app,
            &format!("{base}?from=2025-01-02&to=2026-01-02"),
            VIEWER,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{what}");
        get(
            &env.app,
            &format!("/devices/nobody/{what}?from=2026-01-14&to=2026-01-14"),
            VIEWER,
        )
        .await
        .assert_error(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn uploads_are_listed_shown_downloaded_and_requeued() {
    let env = env().await;
    let a = get(&env.app, "/uploads", VIEWER).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    let list = v["uploads"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["id"], env.hostile.0, "newest first");
    assert!(v["next_before"].is_null());
    let a = get(&env.app, "/uploads?state=parsed", VIEWER).await;
    assert_eq!(a.json()["uploads"].as_array().unwrap().len(), 2);
    let a = get(
        &env.app,
        &format!("/uploads?device={DEVICE}&status=complete&limit=1"),
        VIEWER,
    )
    .await;
    let v = a.json();
    assert_eq!(v["uploads"].as_array().unwrap().len(), 1);
    let next = v["next_before"].as_i64().unwrap();
    let a = get(&env.app, &format!("/uploads?limit=1&before={next}"), VIEWER).await;
    assert!(a.json()["uploads"][0]["id"].as_i64().unwrap() < next);
    for q in [
        "limit=0",
        "limit=1001",
        "state=done",
        "status=done",
        "before=x",
    ] {
        get(&env.app, &format!("/uploads?{q}"), VIEWER)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    get(&env.app, "/uploads?device=nobody", VIEWER)
        .await
        .assert_error(StatusCode::NOT_FOUND);

    let a = get(&env.app, &format!("/uploads/{}", env.archive), VIEWER).await;
    assert_eq!(a.status, StatusCode::OK);
    let u = a.json();
    assert_eq!(u["device"], DEVICE);
    assert_eq!(u["status"], "complete");
    assert_eq!(u["ingest"]["status"], "parsed");
    assert!(u["ingest"]["records"]["total"].as_u64().unwrap() > 0);
    get(&env.app, "/uploads/999999", VIEWER)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    get(&env.app, "/uploads/abc", VIEWER)
        .await
        .assert_error(StatusCode::BAD_REQUEST);

    // The raw bytes, exactly, under a safe name.
    let a = get(&env.app, &format!("/uploads/{}/raw", env.hostile), VIEWER).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], HOSTILE_BYTES);
    assert_eq!(a.content_type(), "application/octet-stream");
    let cd = a
        .headers
        .get_all(header::CONTENT_DISPOSITION)
        .iter()
        .collect::<Vec<_>>();
    assert_eq!(cd.len(), 1);
    let cd = cd[0].to_str().unwrap();
    assert!(
        cd.starts_with(&format!(
            "attachment; filename=\"upload-{}.bin\"; filename*=UTF-8''",
            env.hostile
        )),
        "{cd}"
    );
    assert!(!cd.contains(['\r', '\n']), "{cd}");
    assert_eq!(cd.matches('"').count(), 2, "{cd}");
    assert_eq!(cd.matches(';').count(), 2, "{cd}");
    assert!(a.headers.get("x-injected").is_none());
    let encoded = cd.split("UTF-8''").nth(1).unwrap();
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%!#$&+-.^_`|~".contains(&b)),
        "{encoded}"
    );
    assert!(encoded.contains("%0D%0AX-Injected"));
    let sample = std::fs::read(samples().join("lis200/tc220_interval_3days.txt")).unwrap();
    let a = get(&env.app, &format!("/uploads/{}/raw", env.archive), VIEWER).await;
    assert_eq!(&a.body[..], &sample[..]);
    get(&env.app, "/uploads/999999/raw", VIEWER)
        .await
        .assert_error(StatusCode::NOT_FOUND);

    // Re-parse: queued again and audited.
    let uri = format!("/uploads/{}/reparse", env.archive);
    send(&env.app, Method::POST, &uri, VIEWER, None, false)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    let a = send(&env.app, Method::POST, &uri, OP, None, false).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(a.json()["ingest"], "pending");
    let a = get(&env.app, &format!("/uploads/{}", env.archive), VIEWER).await;
    assert_eq!(a.json()["ingest"]["status"], "pending");
    let a = get(&env.app, "/uploads?state=pending", VIEWER).await;
    assert!(
        a.json()["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == env.archive.0)
    );
    let a = get(&env.app, "/audit?kind=reparse_requested&login=op", VIEWER).await;
    let events = a.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["upload_id"], env.archive.0);
    assert_eq!(events[0]["device"], DEVICE);
    send(
        &env.app,
        Method::POST,
        "/uploads/999999/reparse",
        OP,
        None,
        false,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reports_come_in_every_format_and_refuse_what_cannot_be_reported() {
    let env = env().await;
    let base = format!("/reports?device={DEVICE}&period=range:2026-01-14..2026-01-16");
    let a = get(&env.app, &base, VIEWER).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.content_type(), "application/json");
    let r = a.json();
    assert_eq!(r["devices"][0]["name"], DEVICE, "{r}");
    assert_eq!(r["devices"].as_array().unwrap().len(), 1);
    for (fmt, ctype) in [
        ("csv", "text/csv; charset=utf-8"),
        ("csv-1251", "text/csv; charset=windows-1251"),
        (
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        ("html", "text/html; charset=utf-8"),
    ] {
        let a = get(
            &env.app,
            &format!("{base}&rows=hourly&format={fmt}"),
            VIEWER,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{fmt}");
        assert_eq!(a.content_type(), ctype);
        assert!(a.body.len() > 100, "{fmt}");
        let cd = a
            .headers
            .get(header::CONTENT_DISPOSITION)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            cd.contains("telegaz-report-range_2026-01-14__2026-01-16"),
            "{cd}"
        );
    }
    let xlsx = get(&env.app, &format!("{base}&format=xlsx"), VIEWER).await;
    assert_eq!(&xlsx.body[..2], b"PK");
    let csv = get(&env.app, &format!("{base}&format=csv"), VIEWER).await;
    assert!(
        String::from_utf8(csv.body.to_vec())
            .unwrap()
            .contains(DEVICE)
    );
    let csv1251 = get(&env.app, &format!("{base}&format=csv-1251"), VIEWER).await;
    assert!(
        std::str::from_utf8(&csv1251.body).is_err(),
        "Windows-1251, not UTF-8"
    );
    // A device repeated and a group.
    let a = get(
        &env.app,
        &format!("{base}&device={DEVICE}&device=unit-1"),
        VIEWER,
    )
    .await;
    assert_eq!(a.json()["devices"].as_array().unwrap().len(), 1);

    get(
        &env.app,
        "/reports?device=nobody&period=month:2026-01",
        VIEWER,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND);
    for q in [
        format!("device={DEVICE}&period=week:2026-01"),
        format!("device={DEVICE}&period=range:2026-01-16..2026-01-14"),
        format!("device={DEVICE}"),
        "period=month:2026-01".to_owned(),
        format!("device={DEVICE}&period=month:2026-01&format=pdf"),
        format!("device={DEVICE}&period=month:2026-01&rows=weekly"),
        format!("device={DEVICE}&period=month:2026-01&colour=red"),
    ] {
        get(&env.app, &format!("/reports?{q}"), VIEWER)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    for fmt in ["json", "csv", "xlsx"] {
        let msg = get(
            &env.app,
            &format!("/reports?device={DEVICE}&period=month:2025-06&format={fmt}"),
            VIEWER,
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(msg.contains("no readings"), "{msg}");
    }

    let a = get(
        &env.app,
        &format!("/completeness?device={DEVICE}&period=range:2026-01-14..2026-01-16"),
        VIEWER,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[1]["gas_day"], "2026-01-15");
    assert_eq!(days[1]["complete"], true);
    assert_eq!(days[1]["present_hours"], 24);
    get(
        &env.app,
        "/completeness?device=nobody&period=day:2026-01-14",
        VIEWER,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND);
    get(
        &env.app,
        &format!("/completeness?device={DEVICE}&period=day:2026-13-01"),
        VIEWER,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST);
    get(
        &env.app,
        &format!("/completeness?device={DEVICE}&period=day:2026-01-14&format=csv"),
        VIEWER,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_audit_trail_filters_and_pages() {
    let env = env().await;
    for t in ["a", "b", "c"] {
        let a = write(
            &env.app,
            Method::PATCH,
            &format!("/devices/{DEVICE}"),
            OP,
            json!({"title": t}),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
    }
    let a = get(
        &env.app,
        &format!("/audit?device={DEVICE}&kind=device_changed&limit=2"),
        VIEWER,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events[0]["detail"].as_str().unwrap().contains("\"c\""));
    assert!(events[0]["id"].as_i64() > events[1]["id"].as_i64());
    let next = v["next_before"].as_i64().unwrap();
    let a = get(
        &env.app,
        &format!("/audit?device={DEVICE}&kind=device_changed&before={next}"),
        VIEWER,
    )
    .await;
    let older = a.json()["events"].as_array().unwrap().clone();
    assert_eq!(older.len(), 1);
    assert!(older[0]["detail"].as_str().unwrap().contains("\"a\""));
    let a = get(
        &env.app,
        &format!("/audit?login={DEVICE}&since=2000-01-01&until=2999-01-01T00:00:00Z"),
        VIEWER,
    )
    .await;
    assert!(a.json()["events"].as_array().unwrap().len() >= 3);
    let a = get(&env.app, "/audit?until=2000-01-01", VIEWER).await;
    assert_eq!(a.json()["events"].as_array().unwrap().len(), 0);
    for q in ["kind=bogus", "since=yesterday", "limit=0", "before=x"] {
        get(&env.app, &format!("/audit?{q}"), VIEWER)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    get(&env.app, "/audit?device=nobody", VIEWER)
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_fleet_is_the_fleet_page_as_json() {
    let env = env().await;
    write(
        &env.app,
        Method::POST,
        "/devices",
        OP,
        json!({"name": "quiet-1", "title": "Склад"}),
    )
    .await;
    let a = get(&env.app, "/fleet", VIEWER).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["total"], 2);
    assert_eq!(v["matching"], 2);
    assert_eq!(v["counts"]["never"], 1);
    assert_eq!(v["rows"][0]["name"], "quiet-1");
    assert_eq!(v["rows"][1]["name"], DEVICE);
    assert_eq!(v["rows"][1]["newest_data"], "2026-01-17T10:00:00");
    let a = get(&env.app, "/fleet?state=never", VIEWER).await;
    assert_eq!(a.json()["rows"].as_array().unwrap().len(), 1);
    let a = get(&env.app, "/fleet?q=%D1%81%D0%BA%D0%BB%D0%B0%D0%B4", VIEWER).await;
    assert_eq!(a.json()["matching"], 1);
    let a = get(&env.app, "/fleet?per=1&page=2&sort=state", VIEWER).await;
    let v = a.json();
    assert_eq!(v["pages"], 2);
    assert_eq!(v["rows"].as_array().unwrap().len(), 1);
    for q in ["state=sleepy", "sort=size", "page=x"] {
        get(&env.app, &format!("/fleet?{q}"), VIEWER)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
}

// --- bans (abuse resistance) ---
#[tokio::test]
async fn administrators_manage_the_ban_list_through_the_api() {
    let env = env().await;
    // Only administrators: an operator is refused every ban endpoint.
    get(&env.app, "/bans", OP)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    write(
        &env.app,
        Method::POST,
        "/bans",
        OP,
        json!({"address": "198.51.100.1"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    send(
        &env.app,
        Method::DELETE,
        &format!("/bans/{}", env.ban),
        OP,
        None,
        false,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    assert!(
        env.db
            .active_ban("203.0.113.9", "x", jiff::Timestamp::now())
            .await
            .unwrap()
            .is_some()
    );
    // Made, listed, in force for the login path.
    let made = write(
        &env.app,
        Method::POST,
        "/bans",
        ADMIN,
        json!({"address": "::ffff:198.51.100.7", "login": "unit-9", "for": "12h", "reason": "guessing"}),
    )
    .await;
    assert_eq!(
        made.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&made.body)
    );
    let ban = made.json();
    assert_eq!(ban["address"], "198.51.100.7", "canonical address");
    assert_eq!(ban["login"], "unit-9");
    assert_eq!(ban["created_by"], "api:admin");
    let span = ban["expires_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .duration_since(ban["created_at"].as_str().unwrap().parse().unwrap());
    assert_eq!(span, jiff::SignedDuration::from_hours(12));
    let id = ban["id"].as_i64().unwrap();
    let now = jiff::Timestamp::now();
    assert_eq!(
        env.db
            .active_ban("198.51.100.7", "unit-9", now)
            .await
            .unwrap()
            .map(|b| b.id),
        Some(id)
    );
    let list = get(&env.app, "/bans", ADMIN).await.json();
    let ids: Vec<i64> = list["bans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![id, env.ban]);
    // Lifted: gone from the list of bans in force, kept in the full one.
    let lifted = send(
        &env.app,
        Method::DELETE,
        &format!("/bans/{id}"),
        ADMIN,
        None,
        false,
    )
    .await;
    assert_eq!(lifted.status, StatusCode::OK);
    assert_eq!(lifted.json()["lifted_by"], "api:admin");
    assert!(
        env.db
            .active_ban("198.51.100.7", "unit-9", jiff::Timestamp::now())
            .await
            .unwrap()
            .is_none()
    );
    let live = get(&env.app, "/bans", ADMIN).await.json();
    assert_eq!(live["bans"].as_array().unwrap().len(), 1);
    let all = get(&env.app, "/bans?active=false", ADMIN).await.json();
    assert_eq!(all["bans"].as_array().unwrap().len(), 2);
    // Audited, with who did it.
    let audit = env
        .db
        .list_audit(&telegaz_store::AuditFilter::default())
        .await
        .unwrap();
    for (kind, text) in [
        (telegaz_domain::AuditKind::BanCreated, "made by api:admin"),
        (telegaz_domain::AuditKind::BanLifted, "lifted by api:admin"),
    ] {
        assert!(
            audit
                .iter()
                .any(|e| e.kind == kind && e.detail.contains(text)),
            "{kind}: {audit:#?}"
        );
    }
    // Bad requests are explained.
    for body in [
        json!({}),
        json!({"address": "not-an-address"}),
        json!({"login": "u", "for": "soon"}),
    ] {
        write(&env.app, Method::POST, "/bans", ADMIN, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    write(
        &env.app,
        Method::POST,
        "/bans",
        ADMIN,
        json!({"adress": "198.51.100.1"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    send(&env.app, Method::DELETE, "/bans/999999", ADMIN, None, false)
        .await
        .assert_error(StatusCode::NOT_FOUND);
}
// --- end bans ---
