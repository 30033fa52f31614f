//! The notifiers' configuration: TOML as an operator writes it, defaults,
//! mistakes caught with a clear message, and secrets never shown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde::Deserialize;
use telegaz_notify::{ChatId, MqttConfig, NotifierConfig, TelegramConfig, build};

#[derive(Debug, Deserialize)]
struct Alerts {
    notifiers: Vec<NotifierConfig>,
}

fn parse(toml_text: &str) -> Result<Vec<NotifierConfig>, String> {
    toml::from_str::<Alerts>(toml_text)
        .map(|a| a.notifiers)
        .map_err(|e| e.to_string())
}

const ALL: &str = r#"
[[notifiers]]
type = "webhook"
name = "dispatch"
url = "https://dispatch.example.ru/hooks/T0/s3cret-path"
headers = { Authorization = "Bearer hdr-s3cret" }

[[notifiers]]
type = "telegram"
name = "duty-chat"
token = "123456:tg-s3cret"
chat_id = -1001234567890
timeout = "3s"

[[notifiers]]
type = "mqtt"
name = "scada"
host = "broker.example.ru"
username = "telegaz"
password = "mqtt-s3cret"

[[notifiers]]
type = "email"
name = "engineers"
recipients = ["dispatch@example.ru"]
"#;

#[test]
fn every_type_with_its_defaults() {
    let n = parse(ALL).unwrap();
    assert_eq!(n.len(), 4);
    let names: Vec<(&str, &str)> = n.iter().map(|c| (c.kind(), c.name())).collect();
    assert_eq!(
        names,
        [
            ("webhook", "dispatch"),
            ("telegram", "duty-chat"),
            ("mqtt", "scada"),
            ("email", "engineers")
        ]
    );
    let NotifierConfig::Webhook(w) = &n[0] else {
        panic!()
    };
    assert_eq!(w.timeout, Duration::from_secs(10));
    assert_eq!(w.headers["Authorization"].expose(), "Bearer hdr-s3cret");
    let NotifierConfig::Telegram(t) = &n[1] else {
        panic!()
    };
    assert_eq!(t.base_url, "https://api.telegram.org");
    assert_eq!(t.chat_id, ChatId::Id(-1001234567890));
    assert_eq!(t.timeout, Duration::from_secs(3));
    let NotifierConfig::Mqtt(m) = &n[2] else {
        panic!()
    };
    assert_eq!((m.port, m.topic_prefix.as_str()), (1883, "telegaz"));
    assert_eq!(m.keep_alive, Duration::from_secs(30));
    assert_eq!(m.password.as_ref().unwrap().expose(), "mqtt-s3cret");
    let NotifierConfig::Email(e) = &n[3] else {
        panic!()
    };
    assert_eq!(e.from, None);

    let chan = parse("[[notifiers]]\ntype = \"telegram\"\nname = \"c\"\ntoken = \"1:a\"\nchat_id = \"@telegaz\"\n").unwrap();
    let NotifierConfig::Telegram(t) = &chan[0] else {
        panic!()
    };
    assert_eq!(t.chat_id, ChatId::Name("@telegaz".into()));
}

#[test]
fn debug_output_redacts_the_secrets() {
    let text = format!("{:?}", parse(ALL).unwrap());
    for secret in ["hdr-s3cret", "tg-s3cret", "mqtt-s3cret", "s3cret-path"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("https://dispatch.example.ru"), "{text}");
}

#[test]
fn mistakes_in_the_file_are_named() {
    for (toml_text, expected) in [
        ("[[notifiers]]\ntype = \"pager\"\nname = \"x\"\n", "pager"),
        (
            "[[notifiers]]\ntype = \"webhook\"\nname = \"x\"\nurl = \"http://a\"\nmethod = \"PUT\"\n",
            "method",
        ),
        ("[[notifiers]]\ntype = \"webhook\"\nname = \"x\"\n", "url"),
        (
            "[[notifiers]]\ntype = \"mqtt\"\nname = \"x\"\nhost = \"h\"\ntimeout = \"soon\"\n",
            "soon",
        ),
        ("[[notifiers]]\nname = \"x\"\n", "type"),
    ] {
        let e = parse(toml_text).unwrap_err();
        assert!(e.contains(expected), "{expected:?} not in {e}");
    }
}

#[tokio::test]
async fn build_checks_the_values() {
    let cases: Vec<(&str, &str)> = vec![
        (
            "type = \"webhook\"\nname = \"w\"\nurl = \"dispatch.example.ru/hook\"",
            "url is not a valid URL",
        ),
        (
            "type = \"webhook\"\nname = \"w\"\nurl = \"ftp://dispatch.example.ru/\"",
            "http:// or https://",
        ),
        (
            "type = \"webhook\"\nname = \"w\"\nurl = \"\"",
            "url is empty",
        ),
        (
            "type = \"webhook\"\nname = \"w\"\nurl = \"http://a\"\nheaders = { \"Bad Header\" = \"v\" }",
            "not a valid header name",
        ),
        (
            "type = \"webhook\"\nname = \"w\"\nurl = \"http://a\"\nheaders = { X-A = \"line\\nbreak-s3cret\" }",
            "not a valid header value",
        ),
        (
            "type = \"webhook\"\nname = \"w\"\nurl = \"http://a\"\ntimeout = \"0s\"",
            "timeout",
        ),
        (
            "type = \"webhook\"\nname = \" \"\nurl = \"http://a\"",
            "needs a name",
        ),
        (
            "type = \"telegram\"\nname = \"t\"\ntoken = \" \"\nchat_id = 1",
            "token is empty",
        ),
        (
            "type = \"telegram\"\nname = \"t\"\ntoken = \"12 3/s3cret\"\nchat_id = 1",
            "not a bot token",
        ),
        (
            "type = \"telegram\"\nname = \"t\"\ntoken = \"1:a\"\nchat_id = \"\"",
            "chat_id is empty",
        ),
        (
            "type = \"telegram\"\nname = \"t\"\ntoken = \"1:a\"\nchat_id = 1\nbase_url = \"api.telegram.org\"",
            "base_url",
        ),
        ("type = \"mqtt\"\nname = \"m\"\nhost = \"\"", "host"),
        (
            "type = \"mqtt\"\nname = \"m\"\nhost = \"mqtt://broker\"",
            "no scheme",
        ),
        (
            "type = \"mqtt\"\nname = \"m\"\nhost = \"b\"\nport = 0",
            "port",
        ),
        (
            "type = \"mqtt\"\nname = \"m\"\nhost = \"b\"\ntopic_prefix = \"a/#\"",
            "topic_prefix",
        ),
        (
            "type = \"mqtt\"\nname = \"m\"\nhost = \"b\"\nkeep_alive = \"500ms\"",
            "keep_alive",
        ),
        (
            "type = \"mqtt\"\nname = \"m\"\nhost = \"b\"\npassword = \"s3cret\"",
            "username",
        ),
        (
            "type = \"email\"\nname = \"e\"\nrecipients = [\"a@example.ru\"]",
            "mail server",
        ),
    ];
    for (body, expected) in cases {
        let config = parse(&format!("[[notifiers]]\n{body}\n"))
            .unwrap()
            .remove(0);
        let e = build(&config, None).err().expect("an error");
        assert!(!e.retryable(), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("notifier {}: ", config.name().trim())),
            "{text}"
        );
        assert!(text.contains(expected), "{expected:?} not in {text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}

#[test]
fn mqtt_needs_a_runtime_and_says_so() {
    let config = NotifierConfig::Mqtt(MqttConfig {
        name: "m".into(),
        host: "127.0.0.1".into(),
        port: 1883,
        username: None,
        password: None,
        topic_prefix: "telegaz".into(),
        client_id: None,
        keep_alive: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
    });
    let e = build(&config, None).err().expect("an error");
    assert!(e.to_string().contains("Tokio runtime"), "{e}");
    // Telegram does not.
    let t = NotifierConfig::Telegram(TelegramConfig {
        name: "t".into(),
        token: telegaz_config::Secret::new("1:a"),
        chat_id: ChatId::Id(1),
        base_url: TelegramConfig::DEFAULT_BASE_URL.into(),
        timeout: Duration::from_secs(5),
    });
    assert!(build(&t, None).is_ok());
}
