//! The MQTT notifier against the local Mosquitto broker (127.0.0.1:1883),
//! read back by a real MQTT client: the topics, the JSON, and the retained
//! latest state that a subscriber connecting later receives. Each run uses
//! its own topic prefix and clears its retained messages at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{digest, opened, opened_json, resolved};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use telegaz_config::Secret;
use telegaz_notify::{MqttConfig, MqttNotifier, Notifier, NotifierConfig, NotifyError, build};
use tokio::sync::mpsc;

const BROKER: (&str, u16) = ("127.0.0.1", 1883);

/// Fails (does not skip) when the broker is not there.
async fn require_broker() {
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(BROKER),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    assert!(
        reachable,
        "no MQTT broker on {}:{}: these tests need a local Mosquitto. Start it with \
         `mosquitto -d -p 1883` (Debian/Ubuntu: `apt-get install mosquitto mosquitto-clients`, \
         then `service mosquitto start`)",
        BROKER.0, BROKER.1
    );
}

fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("telegaz-test/{}-{nanos:x}", std::process::id())
}

fn config(prefix: &str) -> MqttConfig {
    MqttConfig {
        name: "scada".into(),
        host: BROKER.0.into(),
        port: BROKER.1,
        username: None,
        password: None,
        topic_prefix: prefix.into(),
        client_id: None,
        keep_alive: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
    }
}

#[derive(Debug)]
struct Message {
    topic: String,
    retain: bool,
    payload: Vec<u8>,
}

impl Message {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
}

/// A real client subscribed to `filter`; returns once the broker confirmed.
async fn subscriber(filter: &str) -> (AsyncClient, mpsc::UnboundedReceiver<Message>) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut options = MqttOptions::new(format!("telegaz-test-sub-{nanos}"), BROKER.0, BROKER.1);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(Message {
                        topic: p.topic.clone(),
                        retain: p.retain,
                        payload: p.payload.to_vec(),
                    });
                }
                Ok(_) => {}
                Err(e) => panic!("test subscriber: {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), subscribed)
        .await
        .expect("no SUBACK from the broker")
        .unwrap();
    (client, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Message>) -> Message {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no message within 5 s")
        .unwrap()
}

async fn nothing_more(rx: &mut mpsc::UnboundedReceiver<Message>) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        panic!("unexpected message: {m:?}");
    }
}

/// Removes the retained messages of `topics`.
async fn clear_retained(topics: &[String]) {
    let (client, mut eventloop) = AsyncClient::new(
        MqttOptions::new(
            format!("telegaz-test-clean-{}", std::process::id()),
            BROKER.0,
            BROKER.1,
        ),
        16,
    );
    for t in topics {
        client
            .publish(t, QoS::AtLeastOnce, true, Vec::<u8>::new())
            .await
            .unwrap();
    }
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while acked < topics.len() && Instant::now() < deadline {
        if let Ok(Ok(Event::Incoming(Packet::PubAck(_)))) =
            tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await
        {
            acked += 1;
        }
    }
}

#[tokio::test]
async fn alerts_and_the_retained_latest_alert_of_each_unit() {
    require_broker().await;
    let prefix = unique_prefix();
    let (_sub, mut rx) = subscriber(&format!("{prefix}/#")).await;
    let notifier = build(&NotifierConfig::Mqtt(config(&prefix)), None).unwrap();
    assert_eq!(notifier.name(), "scada");

    notifier.send(&opened(42, "kotelnaya-1")).await.unwrap();
    let m = next(&mut rx).await;
    assert_eq!(m.topic, format!("{prefix}/alerts"));
    assert_eq!(m.json(), opened_json());
    let m = next(&mut rx).await;
    assert_eq!(m.topic, format!("{prefix}/devices/kotelnaya-1/alert"));
    assert_eq!(m.json(), opened_json());

    notifier.send(&resolved(43, "kotelnaya-1")).await.unwrap();
    for topic in ["alerts", "devices/kotelnaya-1/alert"] {
        let m = next(&mut rx).await;
        assert_eq!(m.topic, format!("{prefix}/{topic}"));
        let j = m.json();
        assert_eq!(j["event"], "resolved");
        assert_eq!(j["id"], 43);
        assert_eq!(j["alert_id"], 7);
        assert_eq!(j["source"], "telegaz");
        assert_eq!(j["title"], "kotelnaya-1: связь восстановлена");
        assert_eq!(j["at"], "2026-01-15T11:30:00Z");
    }

    // A digest, and a unit whose name is not a topic level: only `alerts` for the
    // digest; `/`, `+`, `#` become `_`.
    notifier.send(&digest(44, &["u1", "u2"])).await.unwrap();
    let m = next(&mut rx).await;
    assert_eq!(m.topic, format!("{prefix}/alerts"));
    assert_eq!(m.json()["devices"], serde_json::json!(["u1", "u2"]));
    notifier.send(&opened(45, "ГРП/2+#")).await.unwrap();
    assert_eq!(next(&mut rx).await.topic, format!("{prefix}/alerts"));
    let m = next(&mut rx).await;
    assert_eq!(m.topic, format!("{prefix}/devices/ГРП_2__/alert"));
    assert_eq!(m.json()["device"], "ГРП/2+#");
    nothing_more(&mut rx).await;

    // Someone who connects later gets the latest state of each unit, and no old alerts.
    let (_late, mut late) = subscriber(&format!("{prefix}/#")).await;
    let mut got = vec![next(&mut late).await, next(&mut late).await];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert!(got.iter().all(|m| m.retain), "{got:?}");
    assert_eq!(got[0].topic, format!("{prefix}/devices/kotelnaya-1/alert"));
    assert_eq!(got[0].json()["event"], "resolved");
    assert_eq!(got[0].json()["id"], 43);
    assert_eq!(got[1].topic, format!("{prefix}/devices/ГРП_2__/alert"));
    assert_eq!(got[1].json()["event"], "opened");
    nothing_more(&mut late).await;

    clear_retained(&[
        format!("{prefix}/devices/kotelnaya-1/alert"),
        format!("{prefix}/devices/ГРП_2__/alert"),
    ])
    .await;
}

#[tokio::test]
async fn the_latest_state_of_a_unit_is_retained() {
    require_broker().await;
    let prefix = unique_prefix();
    let notifier = MqttNotifier::new(&config(&format!("{prefix}/"))).unwrap();
    assert_eq!(
        notifier.device_state_topic("u1"),
        format!("{prefix}/devices/u1/state")
    );
    notifier
        .publish_state(
            "u1",
            &serde_json::json!({"p_bar": 1.2, "at": "2026-01-15T09:00:00Z"}),
        )
        .await
        .unwrap();
    notifier
        .publish_state(
            "u1",
            &serde_json::json!({"p_bar": 1.3, "at": "2026-01-15T10:00:00Z"}),
        )
        .await
        .unwrap();
    assert!(notifier.is_connected());

    let (_sub, mut rx) = subscriber(&format!("{prefix}/devices/+/state")).await;
    let m = next(&mut rx).await;
    assert!(m.retain);
    assert_eq!(m.topic, format!("{prefix}/devices/u1/state"));
    assert_eq!(
        m.json(),
        serde_json::json!({"p_bar": 1.3, "at": "2026-01-15T10:00:00Z"})
    );
    nothing_more(&mut rx).await;
    clear_retained(&[format!("{prefix}/devices/u1/state")]).await;
}

#[tokio::test]
async fn a_broker_that_is_down_is_a_retryable_error_in_time() {
    // A port where nothing listens.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut c = config("telegaz");
    c.port = port;
    c.timeout = Duration::from_secs(2);
    c.username = Some("telegaz".into());
    c.password = Some(Secret::new("mqtt-pa55word-s3cret"));
    let notifier = MqttNotifier::new(&c).unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let e = notifier.send(&opened(42, "u1")).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert!(e.retryable(), "{e}");
        assert!(
            matches!(
                e,
                NotifyError::Unreachable { .. } | NotifyError::Timeout { .. }
            ),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(
            !text.contains("s3cret") && !format!("{e:?}").contains("s3cret"),
            "{text}"
        );
    }
    assert!(!notifier.is_connected());
    for text in [format!("{c:?}"), format!("{notifier:?}")] {
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("REDACTED"), "{text}");
    }
}
