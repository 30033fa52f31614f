//! The webhook and Telegram notifiers against a real HTTP server started by
//! the test (axum on 127.0.0.1): what arrives, and how answers, silence and a
//! closed port are reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use common::{digest, opened, opened_json, resolved};
use telegaz_config::Secret;
use telegaz_notify::{ChatId, NotifierConfig, NotifyError, TelegramConfig, WebhookConfig, build};

#[derive(Debug, Clone)]
struct Request {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: serde_json::Value,
}

/// Status, extra headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);

#[derive(Clone, Default)]
struct Recorder {
    requests: Arc<Mutex<Vec<Request>>>,
    /// Answers to give, in order; then 200 `{"ok":true}`.
    answers: Arc<Mutex<VecDeque<Answer>>>,
}

async fn record(
    State(r): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    r.requests.lock().unwrap().push(Request {
        method,
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let (status, extra, body) = r.answers.lock().unwrap().pop_front().unwrap_or((
        200,
        vec![],
        r#"{"ok":true,"result":{"message_id":1}}"#,
    ));
    let mut headers = HeaderMap::new();
    for (k, v) in extra {
        headers.insert(k, v.parse().unwrap());
    }
    (
        StatusCode::from_u16(status).unwrap(),
        headers,
        body.to_owned(),
    )
}

/// An HTTP server on 127.0.0.1 that records every request.
async fn server() -> (Recorder, String) {
    let recorder = Recorder::default();
    let app = Router::new().fallback(record).with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (recorder, format!("http://{addr}"))
}

/// A server that accepts connections and never answers.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

/// An address where nothing listens.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

const HEADER_SECRET: &str = "Bearer hdr-s3cret-value";
const TOKEN: &str = "123456:AAH-very-s3cret-token";

fn webhook(url: &str, timeout: Duration) -> NotifierConfig {
    NotifierConfig::Webhook(WebhookConfig {
        name: "dispatch".into(),
        url: url.into(),
        headers: BTreeMap::from([
            ("Authorization".into(), Secret::new(HEADER_SECRET)),
            ("X-Source-Site".into(), Secret::new("kotelnaya")),
        ]),
        timeout,
    })
}

fn telegram(base_url: &str, timeout: Duration) -> NotifierConfig {
    NotifierConfig::Telegram(TelegramConfig {
        name: "duty-chat".into(),
        token: Secret::new(TOKEN),
        chat_id: ChatId::Id(-1001234567890),
        base_url: base_url.into(),
        timeout,
    })
}

/// No secret in the error's message or its Debug form.
fn assert_no_secret(e: &NotifyError) {
    for text in [e.to_string(), format!("{e:?}")] {
        for secret in [
            HEADER_SECRET,
            "hdr-s3cret",
            TOKEN,
            "AAH-very-s3cret",
            "/hook/s3cret-path",
        ] {
            assert!(!text.contains(secret), "{secret:?} in {text}");
        }
    }
}

#[tokio::test]
async fn webhook_posts_the_notification_as_json_with_the_headers() {
    let (rec, base) = server().await;
    let n = build(
        &webhook(
            &format!("{base}/hook/s3cret-path?k=1"),
            Duration::from_secs(5),
        ),
        None,
    )
    .unwrap();
    assert_eq!(n.name(), "dispatch");
    n.send(&opened(42, "kotelnaya-1")).await.unwrap();
    n.send(&digest(43, &["u1", "u2"])).await.unwrap();

    let reqs = rec.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    let r = &reqs[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, "/hook/s3cret-path");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["authorization"], HEADER_SECRET);
    assert_eq!(r.headers["x-source-site"], "kotelnaya");
    assert_eq!(r.headers["x-telegaz-notification-id"], "42");
    assert!(
        r.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("telegaz/")
    );
    assert_eq!(r.body, opened_json());

    let d = &reqs[1].body;
    assert_eq!(d["event"], "digest");
    assert_eq!(d["alert_id"], serde_json::Value::Null);
    assert_eq!(d["device"], serde_json::Value::Null);
    assert_eq!(d["devices"], serde_json::json!(["u1", "u2"]));
    assert_eq!(d["source"], "telegaz");
}

#[tokio::test]
async fn webhook_5xx_is_retryable_then_sent() {
    let (rec, base) = server().await;
    rec.answers
        .lock()
        .unwrap()
        .push_back((500, vec![], "internal error"));
    let n = build(
        &webhook(&format!("{base}/hook/s3cret-path"), Duration::from_secs(5)),
        None,
    )
    .unwrap();
    let e = n.send(&resolved(44, "kotelnaya-1")).await.unwrap_err();
    assert!(e.retryable(), "{e}");
    assert_eq!(e.notifier(), "dispatch");
    let text = e.to_string();
    assert!(
        text.contains("500") && text.contains("internal error"),
        "{text}"
    );
    assert!(text.contains(&base), "the host is shown: {text}");
    assert_no_secret(&e);
    n.send(&resolved(44, "kotelnaya-1")).await.unwrap();
    let reqs = rec.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body, "the retry sends the same");
    assert_eq!(reqs[1].body["event"], "resolved");
}

#[tokio::test]
async fn webhook_4xx_is_not_retryable_but_408_and_429_are() {
    let (rec, base) = server().await;
    {
        let mut a = rec.answers.lock().unwrap();
        a.push_back((400, vec![], "bad request: unknown field"));
        a.push_back((401, vec![], ""));
        a.push_back((429, vec![("retry-after", "7")], "slow down"));
        a.push_back((408, vec![], ""));
        a.push_back((
            302,
            vec![("location", "https://elsewhere.example.ru/x/s3cret")],
            "",
        ));
    }
    let n = build(
        &webhook(&format!("{base}/hook"), Duration::from_secs(5)),
        None,
    )
    .unwrap();
    let n1 = opened(42, "kotelnaya-1");

    let e = n.send(&n1).await.unwrap_err();
    assert!(!e.retryable(), "{e}");
    assert!(e.to_string().contains("400"), "{e}");
    assert!(e.to_string().contains("unknown field"), "{e}");

    let e = n.send(&n1).await.unwrap_err();
    assert!(!e.retryable(), "{e}");
    assert!(e.to_string().contains("Authorization"), "{e}");
    assert_no_secret(&e);

    let e = n.send(&n1).await.unwrap_err();
    assert!(e.retryable(), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));

    let e = n.send(&n1).await.unwrap_err();
    assert!(e.retryable(), "408: {e}");

    let e = n.send(&n1).await.unwrap_err();
    assert!(!e.retryable(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("redirects to https://elsewhere.example.ru"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");

    assert_eq!(
        rec.requests.lock().unwrap().len(),
        5,
        "a redirect is not followed"
    );
}

#[tokio::test]
async fn webhook_no_answer_is_a_retryable_timeout() {
    let base = silent_server().await;
    let n = build(
        &webhook(
            &format!("{base}/hook/s3cret-path"),
            Duration::from_millis(500),
        ),
        None,
    )
    .unwrap();
    let started = Instant::now();
    let e = n.send(&opened(42, "kotelnaya-1")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(e, NotifyError::Timeout { .. }), "{e:?}");
    assert!(e.retryable());
    assert!(e.to_string().contains("no answer"), "{e}");
    assert_no_secret(&e);
}

#[tokio::test]
async fn webhook_closed_port_is_retryable() {
    let base = closed_port().await;
    let n = build(
        &webhook(&format!("{base}/hook/s3cret-path"), Duration::from_secs(5)),
        None,
    )
    .unwrap();
    let e = n.send(&opened(42, "kotelnaya-1")).await.unwrap_err();
    assert!(matches!(e, NotifyError::Unreachable { .. }), "{e:?}");
    assert!(e.retryable());
    assert!(e.to_string().contains("cannot reach"), "{e}");
    assert_no_secret(&e);
}

#[tokio::test]
async fn telegram_sends_the_message_to_the_bot_api() {
    let (rec, base) = server().await;
    let n = build(&telegram(&format!("{base}/"), Duration::from_secs(5)), None).unwrap();
    n.send(&opened(42, "kotelnaya-1")).await.unwrap();
    let reqs = rec.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.body,
        serde_json::json!({
            "chat_id": -1001234567890_i64,
            "parse_mode": "HTML",
            "text": "<b>kotelnaya-1: нет связи</b>\n\nУзел kotelnaya-1 не передаёт данные с 15.01.2026 06:00 (ожидался сеанс в 07:00).\nПроверьте питание &amp; связь &lt;GSM&gt;."
        })
    );

    // A channel by its name.
    let config = NotifierConfig::Telegram(TelegramConfig {
        chat_id: ChatId::Name("@telegaz_alerts".into()),
        ..match telegram(&base, Duration::from_secs(5)) {
            NotifierConfig::Telegram(c) => c,
            _ => unreachable!(),
        }
    });
    build(&config, None)
        .unwrap()
        .send(&resolved(43, "u1"))
        .await
        .unwrap();
    let body = rec.requests.lock().unwrap()[1].body.clone();
    assert_eq!(body["chat_id"], "@telegaz_alerts");
    assert_eq!(
        body["text"],
        "<b>u1: связь восстановлена</b>\n\nУзел u1 снова передаёт данные."
    );
}

#[tokio::test]
async fn telegram_errors_say_what_to_fix_and_never_show_the_token() {
    let (rec, base) = server().await;
    {
        let mut a = rec.answers.lock().unwrap();
        a.push_back((
            400,
            vec![],
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        ));
        a.push_back((
            401,
            vec![],
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        ));
        a.push_back((429, vec![], r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 12","parameters":{"retry_after":12}}"#));
        a.push_back((502, vec![], "<html>Bad Gateway</html>"));
        a.push_back((200, vec![], "not json"));
    }
    let n = build(&telegram(&base, Duration::from_secs(5)), None).unwrap();
    let m = opened(42, "kotelnaya-1");

    let e = n.send(&m).await.unwrap_err();
    assert!(!e.retryable(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("chat not found") && text.contains("chat_id"),
        "{text}"
    );
    assert!(text.contains("/bot<token>/sendMessage"), "{text}");
    assert_no_secret(&e);

    let e = n.send(&m).await.unwrap_err();
    assert!(!e.retryable(), "{e}");
    assert!(e.to_string().contains("token is wrong"), "{e}");
    assert_no_secret(&e);

    let e = n.send(&m).await.unwrap_err();
    assert!(e.retryable(), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(12)));

    let e = n.send(&m).await.unwrap_err();
    assert!(e.retryable(), "{e}");
    assert_no_secret(&e);

    let e = n.send(&m).await.unwrap_err();
    assert!(e.to_string().contains("not a Bot API answer"), "{e}");
    assert_no_secret(&e);

    n.send(&m).await.unwrap();
}

#[tokio::test]
async fn telegram_timeout_and_closed_port_are_retryable_without_the_token() {
    let base = silent_server().await;
    let n = build(&telegram(&base, Duration::from_millis(500)), None).unwrap();
    let e = n.send(&opened(42, "u1")).await.unwrap_err();
    assert!(matches!(e, NotifyError::Timeout { .. }), "{e:?}");
    assert!(e.retryable());
    assert_no_secret(&e);

    let base = closed_port().await;
    let n = build(&telegram(&base, Duration::from_secs(5)), None).unwrap();
    let e = n.send(&opened(42, "u1")).await.unwrap_err();
    assert!(matches!(e, NotifyError::Unreachable { .. }), "{e:?}");
    assert!(e.retryable());
    assert_no_secret(&e);
}

#[tokio::test]
async fn debug_output_holds_no_secret() {
    let (_rec, base) = server().await;
    let w = webhook(&format!("{base}/hook/s3cret-path"), Duration::from_secs(5));
    let t = telegram(&base, Duration::from_secs(5));
    for config in [&w, &t] {
        let text = format!("{config:?}");
        for secret in [HEADER_SECRET, "hdr-s3cret", TOKEN, "s3cret"] {
            assert!(!text.contains(secret), "{secret:?} in {text}");
        }
    }
    let text = format!("{w:?}");
    assert!(
        text.contains("Authorization") && text.contains(&base),
        "{text}"
    );
    let webhook = telegaz_notify::WebhookNotifier::new(match &w {
        NotifierConfig::Webhook(c) => c,
        _ => unreachable!(),
    })
    .unwrap();
    let telegram = telegaz_notify::TelegramNotifier::new(match &t {
        NotifierConfig::Telegram(c) => c,
        _ => unreachable!(),
    })
    .unwrap();
    for text in [format!("{webhook:?}"), format!("{telegram:?}")] {
        for secret in [HEADER_SECRET, "hdr-s3cret", TOKEN, "s3cret"] {
            assert!(!text.contains(secret), "{secret:?} in {text}");
        }
    }
}
