//! The e-mail notifier through telegaz-delivery's real SMTP path
//! ([`SmtpMailer`]) to a real SMTP server started by the test (Python's
//! aiosmtpd, which `.ci/run` installs), read back with Python's `email` package.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::opened;
use serde_json::Value;
use telegaz_config::{SmtpConfig, SmtpTls};
use telegaz_delivery::{Mailer, SmtpMailer};
use telegaz_notify::{EmailConfig, NotifierConfig, build};

/// Saves each message as `N.json`: envelope, decoded headers, text, attachments.
const SINK: &str = r#"
import asyncio, email, email.policy, json, os, sys
from aiosmtpd.smtp import SMTP

outdir = sys.argv[1]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        atts = [{'filename': p.get_filename(), 'content_type': p.get_content_type(),
                 'content': p.get_payload(decode=True).decode('utf-8')} for p in msg.iter_attachments()]
        body = msg.get_body(preferencelist=('plain',))
        info = {'mail_from': envelope.mail_from, 'rcpt_to': list(envelope.rcpt_tos),
                'from': str(msg['From']), 'to': str(msg['To']), 'subject': str(msg['Subject']),
                'body': body.get_content() if body is not None else None, 'attachments': atts}
        n = len([f for f in os.listdir(outdir) if f.endswith('.json')])
        base = os.path.join(outdir, str(n))
        with open(base + '.tmp', 'w') as f:
            json.dump(info, f)
        os.rename(base + '.tmp', base + '.json')
        return '250 OK'

loop = asyncio.new_event_loop()
server = loop.run_until_complete(loop.create_server(lambda: SMTP(Handler(), decode_data=False), '127.0.0.1', 0))
print(server.sockets[0].getsockname()[1], flush=True)
loop.run_forever()
"#;

struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("sink.py");
        std::fs::write(&script, SINK).unwrap();
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&mail)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("sink.err")).unwrap())
            .spawn()
            .expect("python3 is needed for the SMTP server of this test (.ci/run installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let err = std::fs::read_to_string(dir.path().join("sink.err")).unwrap_or_default();
            panic!("the SMTP server did not start (is aiosmtpd installed? python3 -m pip install aiosmtpd): {err}")
        });
        SmtpSink { child, dir, port }
    }

    fn wait_message(&self, n: usize) -> Value {
        let path = self.dir.path().join("mail").join(format!("{n}.json"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return serde_json::from_str(&text).unwrap();
            }
            if Instant::now() > deadline {
                let err =
                    std::fs::read_to_string(self.dir.path().join("sink.err")).unwrap_or_default();
                panic!("message {n} did not arrive; SMTP server: {err}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mailer(port: u16) -> Arc<dyn Mailer> {
    Arc::new(
        SmtpMailer::new(&SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: SmtpTls::None,
            from: "Telegaz <telegaz@example.ru>".into(),
            timeout: Duration::from_secs(10),
            ..SmtpConfig::default()
        })
        .unwrap(),
    )
}

fn email_config() -> NotifierConfig {
    NotifierConfig::Email(EmailConfig {
        name: "engineers".into(),
        recipients: vec![
            "dispatch@example.ru".into(),
            "Иванов <ivanov@example.ru>".into(),
        ],
        from: Some("Telegaz <telegaz@example.ru>".into()),
    })
}

#[tokio::test]
async fn an_alert_by_e_mail() {
    let sink = SmtpSink::start();
    let n = build(&email_config(), Some(mailer(sink.port))).unwrap();
    assert_eq!(n.name(), "engineers");
    n.send(&opened(42, "kotelnaya-1")).await.unwrap();

    let m = sink.wait_message(0);
    assert_eq!(m["mail_from"], "telegaz@example.ru");
    assert_eq!(
        m["rcpt_to"],
        serde_json::json!(["dispatch@example.ru", "ivanov@example.ru"])
    );
    assert_eq!(m["subject"], "kotelnaya-1: нет связи");
    assert!(m["to"].as_str().unwrap().contains("Иванов"), "{m}");
    assert_eq!(
        m["body"].as_str().unwrap().replace("\r\n", "\n"),
        "Узел kotelnaya-1 не передаёт данные с 15.01.2026 06:00 (ожидался сеанс в 07:00).\nПроверьте питание & связь <GSM>.\n"
    );
    let att = &m["attachments"][0];
    assert_eq!(att["filename"], "telegaz-notification-42.json");
    assert_eq!(att["content_type"], "application/json");
    let json: Value = serde_json::from_str(att["content"].as_str().unwrap()).unwrap();
    assert_eq!(json, common::opened_json());
}

#[tokio::test]
async fn a_mail_server_that_is_down_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let n = build(&email_config(), Some(mailer(port))).unwrap();
    let e = n.send(&opened(42, "u1")).await.unwrap_err();
    assert!(e.retryable(), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}
