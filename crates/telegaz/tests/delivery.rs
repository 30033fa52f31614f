//! Scheduled report delivery end to end: a real SMTP server started by the
//! test (Python's aiosmtpd, which `.ci/run` installs) receives what the
//! running `telegaz serve` sends; the message, its recipients and the attached
//! report are read back with Python's `email` package and `calamine`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use common::{BIN, Server, run_ok};
use jiff::civil::{Date, DateTime};
use jiff::{Timestamp, ToSpan};
use serde_json::Value;

/// An SMTP server (aiosmtpd) that keeps every message: `N.eml` (the bytes
/// received), `N-I.bin` (attachment I, decoded), then `N.json` (envelope,
/// headers decoded, text, attachments, whether the session was encrypted and
/// authenticated). Arguments: port (0: any), directory, and for STARTTLS with
/// a login: certificate, key, login, password.
const SINK: &str = r#"
import asyncio, email, email.policy, json, os, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

port = int(sys.argv[1]); outdir = sys.argv[2]
tls = len(sys.argv) > 3

def save(session, envelope):
    data = envelope.original_content
    n = len([f for f in os.listdir(outdir) if f.endswith('.json')])
    base = os.path.join(outdir, str(n))
    with open(base + '.eml', 'wb') as f:
        f.write(data)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    atts = []
    for i, part in enumerate(msg.iter_attachments()):
        p = '%s-%d.bin' % (base, i)
        with open(p, 'wb') as f:
            f.write(part.get_payload(decode=True))
        atts.append({'filename': part.get_filename(), 'content_type': part.get_content_type(),
                     'transfer_encoding': part.get('Content-Transfer-Encoding'), 'path': p})
    body = msg.get_body(preferencelist=('plain',))
    info = {'mail_from': envelope.mail_from, 'rcpt_to': list(envelope.rcpt_tos),
            'from': str(msg['From']), 'to': str(msg['To']), 'subject': str(msg['Subject']),
            'body': body.get_content() if body is not None else None, 'attachments': atts,
            'encrypted': session.ssl is not None, 'authenticated': bool(session.authenticated)}
    with open(base + '.tmp', 'w') as f:
        json.dump(info, f)
    os.rename(base + '.tmp', base + '.json')

class Handler:
    async def handle_DATA(self, server, session, envelope):
        save(session, envelope)
        return '250 OK'

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == sys.argv[5]
          and auth_data.password.decode() == sys.argv[6])
    return AuthResult(success=ok, handled=False)

def factory():
    if not tls:
        return SMTP(Handler(), decode_data=False)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    return SMTP(Handler(), decode_data=False, tls_context=ctx, require_starttls=True,
                authenticator=authenticator, auth_require_tls=True)

loop = asyncio.new_event_loop()
server = loop.run_until_complete(loop.create_server(factory, '127.0.0.1', port))
print(server.sockets[0].getsockname()[1], flush=True)
loop.run_forever()
"#;

struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SmtpSink {
    /// Start on `port` (0: any free port) and wait until it listens.
    fn start(port: u16) -> SmtpSink {
        Self::start_with(port, &[])
    }

    /// `extra`: certificate, key, login and password for STARTTLS with a login.
    fn start_with(port: u16, extra: &[&str]) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("sink.py");
        std::fs::write(&script, SINK).unwrap();
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&mail)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("sink.err")).unwrap())
            .spawn()
            .expect("python3 is needed for the SMTP server of this test (.ci/run installs it)");
        // A failed start (no aiosmtpd: `python3 -m pip install aiosmtpd`) prints its reason to stderr.
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

    fn messages(&self) -> Vec<Value> {
        let mail = self.dir.path().join("mail");
        let mut out = Vec::new();
        for n in 0.. {
            let Ok(text) = std::fs::read_to_string(mail.join(format!("{n}.json"))) else {
                break;
            };
            out.push(serde_json::from_str(&text).unwrap());
        }
        out
    }

    fn wait_messages(&self, n: usize, server: &Server) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} of {n} messages arrived; deliveries: {:#?}\nSMTP server: {}\nlog:\n{}",
                    m.len(),
                    deliveries(server),
                    std::fs::read_to_string(self.dir.path().join("sink.err")).unwrap_or_default(),
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn raw(&self, n: usize) -> String {
        String::from_utf8(std::fs::read(self.dir.path().join(format!("mail/{n}.eml"))).unwrap())
            .unwrap()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sample(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/samples/lis200")
        .join(file)
}

/// A configuration file with a plain mail server on `port` and the given deliveries.
fn config_file(dir: &Path, port: u16, rest: &str) -> PathBuf {
    let smtp = format!(
        "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"Telegaz <telegaz@example.ru>\"\ntimeout = \"10s\"\n"
    );
    write_config(dir, &smtp, rest)
}

fn write_config(dir: &Path, smtp: &str, rest: &str) -> PathBuf {
    let path = dir.join("telegaz.toml");
    std::fs::write(&path, format!("[smtp]\n{smtp}\n{rest}\n")).unwrap();
    path
}

fn deliveries(s: &Server) -> Vec<Value> {
    let out = s.cli(&["deliveries", "--json"]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_delivery(s: &Server, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = deliveries(s);
        if let Some(d) = all.iter().find(|d| pred(d)) {
            return d.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "no delivery {what}; deliveries: {all:#?}\nlog:\n{}",
                s.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A LIS-200 interval archive (as a ТС220 prints it) with a reading every
/// hour from `from` for `hours` hours, the Vb counter going up by 10 m³ an hour.
fn interval_archive(from: DateTime, hours: i64) -> String {
    let mut out = String::new();
    for i in 0..=hours {
        let t = from.checked_add(i.hours()).unwrap();
        let vb = 1000.0 + 10.0 * i as f64;
        let vm = 990.0 + 9.5 * i as f64;
        out.push_str(&format!(
            "({})({},{})({vb:.4})({vb:.4})({vm:.4})({vm:.4})(10.00)(104.0000)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n",
            20000 + i,
            t.date(),
            t.time().strftime("%H:%M:%S"),
        ));
    }
    out
}

/// The gas day that ended most recently for a device in UTC with this
/// contract hour, chosen about 12 hours from now, so that the test is far
/// from the next one.
fn recent_gas_day() -> (i8, Date) {
    let now = jiff::tz::TimeZone::UTC.to_datetime(Timestamp::now());
    let hour = ((i32::from(now.hour()) + 12) % 24) as i8;
    let today_end = now.date().at(hour, 0, 0, 0);
    let end = if today_end <= now {
        today_end
    } else {
        today_end.checked_sub(1.day()).unwrap()
    };
    (hour, end.date().yesterday().unwrap())
}

/// Delivery checks completed by the server process started last (logged at
/// debug level, see `DEBUG_LOG`; the log file is shared by restarts).
fn checks(s: &Server) -> usize {
    let log = s.log();
    let start = log.rfind("delivery scheduler started").unwrap_or(0);
    log[start..].matches("delivery check done").count()
}

fn scheduler_starts(s: &Server) -> usize {
    s.log().matches("delivery scheduler started").count()
}

/// Wait until the scheduler started as the `starts`-th has completed two more
/// checks than `before`: whatever was due has been attempted.
fn wait_two_checks(s: &Server, starts: usize, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while scheduler_starts(s) < starts || checks(s) < before + 2 {
        if Instant::now() > deadline {
            panic!("the delivery scheduler does not check; log:\n{}", s.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const DEBUG_LOG: (&str, &str) = ("TELEGAZ_LOG__LEVEL", "info,telegaz_delivery=debug");

fn ru(d: Date) -> String {
    format!("{:02}.{:02}.{}", d.day(), d.month(), d.year())
}

/// Put `unit1` in UTC with that contract hour and upload, over FTP, an
/// archive covering the gas day (and an hour on each side); wait for ingest.
fn upload_gas_day(s: &Server, hour: i8, day: Date) {
    let h = hour.to_string();
    s.cli(&[
        "device",
        "set",
        "unit1",
        "--tz",
        "UTC",
        "--contract-hour",
        &h,
    ]);
    let from = day.at(hour, 0, 0, 0).checked_sub(1.hour()).unwrap();
    let archive = interval_archive(from, 26);
    let (_d, f) = common::temp_file("arch.txt", archive.as_bytes());
    ftp_put(s, &f, "/arch/gasday.txt");
    s.wait_upload(|u| u["final_path"] == "/arch/gasday.txt" && u["ingest"]["status"] == "parsed");
}

fn ftp_put(s: &Server, file: &Path, path: &str) {
    run_ok(
        Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "--max-time",
                "60",
                "--ftp-create-dirs",
                "-T",
            ])
            .arg(file)
            .arg(s.ftp_url("unit1", "pw-unit1", path)),
    );
}

/// The number in the first data row under a header of the XLSX's sheet.
fn xlsx_first_row_value(bytes: &[u8], sheet: &str, header: &str) -> f64 {
    let mut wb: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let range = wb.worksheet_range(sheet).unwrap();
    let header_row = 4;
    let col = (0..30)
        .find(|&c| {
            matches!(range.get_value((header_row, c)), Some(Data::String(h)) if h.starts_with(header))
        })
        .unwrap_or_else(|| panic!("no column {header:?} in the XLSX"));
    match range.get_value((header_row + 1, col)) {
        Some(Data::Float(x)) => *x,
        other => panic!("{header}: {other:?}"),
    }
}

const DAILY: &str = r#"
[[delivery]]
name = "daily-unit1"
devices = ["unit1"]
recipients = ["dispatcher@example.ru", "Иванов <ivanov@example.ru>"]
delay = "1m"
"#;

#[test]
fn the_scheduled_report_arrives_by_smtp_with_the_xlsx_attached() {
    let sink = SmtpSink::start(0);
    let mut s = Server::start();
    let (hour, day) = recent_gas_day();
    upload_gas_day(&s, hour, day);

    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        cfg_dir.path(),
        sink.port,
        &format!("{DAILY}\n[delivery_policy]\ncheck_every = \"200ms\"\n"),
    );
    s.restart_with(&[("TELEGAZ_CONFIG", cfg.to_str().unwrap()), DEBUG_LOG]);

    // The scheduler finds the gas day due (it ended about 12 hours ago) and sends it.
    let m = sink.wait_messages(1, &s);
    assert_eq!(m.len(), 1, "{m:#?}");
    let m = &m[0];
    assert_eq!(m["mail_from"], "telegaz@example.ru");
    assert_eq!(
        m["rcpt_to"],
        serde_json::json!(["dispatcher@example.ru", "ivanov@example.ru"])
    );
    assert_eq!(m["from"], "Telegaz <telegaz@example.ru>");
    assert_eq!(m["to"], "dispatcher@example.ru, Иванов <ivanov@example.ru>");
    assert_eq!(m["subject"], format!("Газовые сутки {}: unit1", ru(day)));
    let body = m["body"].as_str().unwrap();
    assert!(body.contains("unit1: Vст = 240,0000 м³"), "{body}");
    assert!(body.contains("данные полные"), "{body}");

    let atts = m["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 1);
    assert_eq!(atts[0]["filename"], format!("daily-unit1_{day}.xlsx"));
    assert_eq!(
        atts[0]["content_type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(atts[0]["transfer_encoding"], "base64");
    assert!(sink.raw(0).contains("Content-Transfer-Encoding: base64"));
    let xlsx = std::fs::read(atts[0]["path"].as_str().unwrap()).unwrap();
    assert_eq!(&xlsx[..2], b"PK");
    // 24 hours of 10 m³.
    assert_eq!(xlsx_first_row_value(&xlsx, "unit1", "Vст"), 240.0);
    assert_eq!(
        xlsx_first_row_value(&xlsx, "unit1", "Часов с данными"),
        24.0
    );

    // Recorded as sent, once; the log says so.
    let d = wait_delivery(&s, "sent", |d| d["state"] == "sent");
    assert_eq!(d["name"], "daily-unit1");
    assert_eq!(d["gas_day"], day.to_string());
    assert_eq!(d["attempts"], 1);
    assert!(d["last_error"].is_null(), "{d}");
    assert_eq!(deliveries(&s).len(), 1);
    assert!(s.log().contains("report delivery sent"), "{}", s.log());

    // A restart does not send it again: the checks after it find it sent.
    let starts = scheduler_starts(&s);
    s.restart();
    wait_two_checks(&s, starts + 1, 0);
    assert_eq!(sink.messages().len(), 1);
    let text = String::from_utf8(s.cli(&["deliveries"]).stdout).unwrap();
    assert!(
        text.contains("daily-unit1") && text.contains("sent"),
        "{text}"
    );
    assert!(text.contains("configured: daily-unit1"), "{text}");
    assert_eq!(deliveries(&s).len(), 1);
}

#[test]
fn a_mail_server_that_is_down_is_retried_and_reported_and_ingest_goes_on() {
    let port = free_port(); // nothing listens there yet
    let mut s = Server::start();
    let (hour, day) = recent_gas_day();
    upload_gas_day(&s, hour, day);

    let cfg_dir = tempfile::tempdir().unwrap();
    let waits = ["1s", "1s", "2s", "2s", "3s"]
        .iter()
        .copied()
        .chain(std::iter::repeat_n("5s", 15))
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let cfg = config_file(
        cfg_dir.path(),
        port,
        &format!("{DAILY}\n[delivery_policy]\ncheck_every = \"200ms\"\nretry = [{waits}]\n"),
    );
    s.restart_with(&[("TELEGAZ_CONFIG", cfg.to_str().unwrap()), DEBUG_LOG]);

    // Failed attempts are recorded with the error and retried.
    let d = wait_delivery(&s, "retried", |d| {
        d["state"] == "pending" && d["attempts"].as_u64().unwrap() >= 2
    });
    let error = d["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("mail server 127.0.0.1:{port}")) && error.contains("smtp.host"),
        "{error}"
    );
    assert!(!d["next_attempt_at"].is_null(), "{d}");
    assert!(
        s.log()
            .contains("report delivery failed; it will be retried"),
        "{}",
        s.log()
    );
    let text = String::from_utf8(s.cli(&["deliveries"]).stdout).unwrap();
    assert!(
        text.contains("pending") && text.contains("mail server 127.0.0.1"),
        "{text}"
    );

    // Meanwhile files are received and ingested as ever.
    ftp_put(&s, &sample("tc220_interval_3days.txt"), "/arch/sample.txt");
    let u = s.wait_upload(|u| {
        u["final_path"] == "/arch/sample.txt" && u["ingest"]["status"] == "parsed"
    });
    assert_eq!(u["ingest"]["records"]["new"], 75, "{u}");

    // The server comes back: the next attempt gets through, once.
    let sink = SmtpSink::start(port);
    let m = sink.wait_messages(1, &s);
    assert_eq!(m[0]["subject"], format!("Газовые сутки {}: unit1", ru(day)));
    let d = wait_delivery(&s, "sent", |d| d["state"] == "sent");
    assert!(d["attempts"].as_u64().unwrap() >= 3, "{d}");
    assert!(
        d["last_error"].as_str().unwrap().contains("127.0.0.1"),
        "the failure stays visible: {d}"
    );
    wait_two_checks(&s, scheduler_starts(&s), checks(&s));
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn deliveries_send_sends_one_gas_day_now() {
    let sink = SmtpSink::start(0);
    let s = Server::start(); // no deliveries configured for the server itself
    run_ok(Command::new(BIN).arg("--data-dir").arg(&s.dir).args([
        "import",
        "--device",
        "unit1",
        sample("tc220_interval_3days.txt").to_str().unwrap(),
    ]));
    let cfg_dir = tempfile::tempdir().unwrap();
    let deliveries_toml = r#"
[[delivery]]
name = "sample"
devices = ["unit1"]
recipients = ["dispatcher@example.ru"]

[[delivery]]
name = "sample-csv"
devices = ["unit1"]
recipients = ["excel@example.ru"]
format = "csv-1251"
rows = "hourly"
subject = "{name}: {devices} за {gas_day}"
"#;
    let cfg = config_file(cfg_dir.path(), sink.port, deliveries_toml);
    let telegaz = |args: &[&str]| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&s.dir)
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };

    let out = telegaz(&["deliveries", "send", "sample", "--gas-day", "2026-01-15"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent sample for gas day 2026-01-15"));
    let m = sink.wait_messages(1, &s);
    assert_eq!(m[0]["subject"], "Газовые сутки 15.01.2026: unit1");
    assert_eq!(
        m[0]["rcpt_to"],
        serde_json::json!(["dispatcher@example.ru"])
    );
    let xlsx = std::fs::read(m[0]["attachments"][0]["path"].as_str().unwrap()).unwrap();
    // The sample's gas day 15.01.2026 (expected.json): 602.036 m³.
    assert!((xlsx_first_row_value(&xlsx, "unit1", "Vст") - 602.036).abs() < 1e-9);

    let out = telegaz(&[
        "deliveries",
        "send",
        "sample-csv",
        "--gas-day",
        "2026-01-15",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = sink.wait_messages(2, &s);
    assert_eq!(m[1]["subject"], "sample-csv: unit1 за 15.01.2026");
    assert_eq!(
        m[1]["attachments"][0]["filename"],
        "sample-csv_2026-01-15.csv"
    );
    let raw = std::fs::read(m[1]["attachments"][0]["path"].as_str().unwrap()).unwrap();
    let (text, _, malformed) = encoding_rs::WINDOWS_1251.decode(&raw);
    assert!(!malformed);
    assert!(
        text.contains("Газовые сутки") && text.contains(';'),
        "{text}"
    );
    assert!(
        text.lines().count() >= 26,
        "24 hours, header, totals: {text}"
    );

    let list: Vec<Value> = String::from_utf8(telegaz(&["deliveries", "--json"]).stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .all(|d| d["state"] == "sent" && d["attempts"] == 1),
        "{list:#?}"
    );

    // A mistake is explained, and a server that is down is reported, recorded and left for retry.
    let out = telegaz(&["deliveries", "send", "weekly", "--gas-day", "2026-01-15"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no delivery named \"weekly\"") && err.contains("sample-csv"),
        "{err}"
    );
    drop(sink);
    let out = telegaz(&["deliveries", "send", "sample", "--gas-day", "2026-01-16"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("was not sent") && err.contains("tries it again at"),
        "{err}"
    );
    let list =
        String::from_utf8(telegaz(&["deliveries", "--name", "sample", "--json"]).stdout).unwrap();
    let latest: Value = serde_json::from_str(list.lines().next().unwrap()).unwrap();
    assert_eq!(latest["gas_day"], "2026-01-16");
    assert_eq!(latest["state"], "pending");
    assert!(
        latest["last_error"]
            .as_str()
            .unwrap()
            .contains("mail server"),
        "{latest}"
    );
}

/// A test CA and a certificate it issued for `localhost`: (CA, certificate, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        run_ok(Command::new("openssl").current_dir(dir).args(args));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Telegaz test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[test]
fn starttls_with_a_login_and_an_internal_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    // A password that a TOML-ish reading of the environment would turn into a number.
    let password = "007123";
    let sink = SmtpSink::start_with(
        0,
        &[
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "telegaz",
            password,
        ],
    );
    let s = Server::start();
    run_ok(Command::new(BIN).arg("--data-dir").arg(&s.dir).args([
        "import",
        "--device",
        "unit1",
        sample("tc220_interval_3days.txt").to_str().unwrap(),
    ]));
    let cfg_dir = tempfile::tempdir().unwrap();
    let smtp = |ca_file: Option<&Path>| {
        let ca = ca_file.map_or_else(String::new, |p| {
            format!("ca_file = {:?}\n", p.to_str().unwrap())
        });
        format!(
            "host = \"localhost\"\nport = {}\ntls = \"starttls\"\nfrom = \"telegaz@example.ru\"\nusername = \"telegaz\"\ntimeout = \"10s\"\n{ca}",
            sink.port
        )
    };
    let delivery = "[[delivery]]\nname = \"sample\"\ndevices = [\"unit1\"]\nrecipients = [\"dispatcher@example.ru\"]\n";
    let send = |cfg: &Path, password: &str, day: &str| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&s.dir)
            .arg("--config")
            .arg(cfg)
            .args(["deliveries", "send", "sample", "--gas-day", day])
            .env("TELEGAZ_SMTP__PASSWORD", password)
            .output()
            .unwrap()
    };

    let cfg = write_config(cfg_dir.path(), &smtp(Some(&ca)), delivery);
    let out = send(&cfg, password, "2026-01-15");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(
        !all.contains(password),
        "the password is never printed: {all}"
    );
    let m = sink.wait_messages(1, &s);
    assert_eq!(m[0]["encrypted"], true, "{:#}", m[0]);
    assert_eq!(m[0]["authenticated"], true, "{:#}", m[0]);
    assert_eq!(m[0]["subject"], "Газовые сутки 15.01.2026: unit1");

    // Without the internal CA the certificate is not trusted; a wrong password is refused.
    let cfg = write_config(cfg_dir.path(), &smtp(None), delivery);
    let out = send(&cfg, password, "2026-01-16");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("certificate") && err.contains("smtp.ca_file"),
        "{err}"
    );
    let cfg = write_config(cfg_dir.path(), &smtp(Some(&ca)), delivery);
    let out = send(&cfg, "wrong-password", "2026-01-16");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("wrong-password"), "{err}");
    assert!(
        err.contains("535") && err.contains("smtp.username"),
        "{err}"
    );
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn a_mail_server_that_accepts_but_never_answers_is_given_up_after_smtp_timeout() {
    // Accepts connections and holds them, silent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let s = Server::start();
    run_ok(Command::new(BIN).arg("--data-dir").arg(&s.dir).args([
        "import",
        "--device",
        "unit1",
        sample("tc220_interval_3days.txt").to_str().unwrap(),
    ]));
    let cfg_dir = tempfile::tempdir().unwrap();
    let smtp = format!(
        "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"telegaz@example.ru\"\ntimeout = \"1s\"\n"
    );
    let cfg = write_config(
        cfg_dir.path(),
        &smtp,
        "[[delivery]]\nname = \"sample\"\ndevices = [\"unit1\"]\nrecipients = [\"a@example.ru\"]\n",
    );
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&s.dir)
        .arg("--config")
        .arg(&cfg)
        .args(["deliveries", "send", "sample", "--gas-day", "2026-01-15"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("smtp.timeout"), "{err}");
}
