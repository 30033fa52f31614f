//! `telegaz migrate-db`: an installation built with the real server and CLI
//! (FTP uploads, imports of the sample files, users, API tokens, alerts and
//! their notifications) moves from SQLite to a real PostgreSQL and back to a
//! new SQLite file; every table is verified by row count and checksum, and
//! the CLI reads the same back from each database.
//!
//! Needs a PostgreSQL server: `TELEGAZ_TEST_POSTGRES_URL` names a database
//! whose role may create databases (the test creates and drops its own).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{BIN, Server, api_alerts, content, run_ok, temp_file, viewer_token};
use serde_json::Value;

fn postgres_url() -> String {
    std::env::var("TELEGAZ_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "this test needs a PostgreSQL server: set \
                 TELEGAZ_TEST_POSTGRES_URL=postgres://USER@HOST:PORT/DB (a role that may \
                 create databases; .ci/run sets it up), e.g. \
                 TELEGAZ_TEST_POSTGRES_URL=postgres://root@127.0.0.1:5432/test \
                 cargo test -p telegaz --test migrate"
            )
        })
}

/// A database of its own on the test server, dropped at the end.
struct Scratch {
    admin: String,
    name: String,
    url: String,
}

fn admin_sql(admin: &str, sql: String) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .expect("connect to TELEGAZ_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    });
}

impl Scratch {
    fn new(admin: &str, tag: &str) -> Scratch {
        let name = format!("telegaz_migrate_{}_{tag}", std::process::id());
        admin_sql(
            admin,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        admin_sql(admin, format!("CREATE DATABASE {name}"));
        let (scheme, rest) = admin.split_once("://").unwrap();
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let authority = rest.split('/').next().unwrap();
        let mut url = format!("{scheme}://{authority}/{name}");
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        Scratch {
            admin: admin.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        admin_sql(
            &self.admin,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/samples")
}

/// The CLI on a data directory, against `url` (None: the directory's SQLite).
fn cli(dir: &Path, url: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(dir);
    if let Some(url) = url {
        cmd.args(["--database-url", url]);
    }
    cmd.args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What the CLI shows of an installation: readings of every device over the
/// samples' days, gas days, uploads with their ingest, the audit trail, users.
fn snapshot(dir: &Path, url: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for device in ["unit1", "unit2"] {
        for what in ["readings", "daily"] {
            out.push(ok(cli(
                dir,
                url,
                &[
                    what,
                    "--device",
                    device,
                    "--from",
                    "2020-01-01",
                    "--to",
                    "2030-12-31",
                    "--json",
                ],
            )));
        }
    }
    out.push(ok(cli(dir, url, &["uploads", "list", "--json"])));
    out.push(ok(cli(dir, url, &["audit", "--json"])));
    out.push(ok(cli(dir, url, &["user", "list", "--json"])));
    out.push(ok(cli(dir, url, &["device", "list", "--json"])));
    out
}

/// Table -> (source rows, target rows, matches), asserting the JSON form.
fn checks(text: &str) -> Vec<Value> {
    let checks = json_lines(text);
    assert!(checks.len() >= 16, "a check per table: {checks:#?}");
    checks
}

fn rows(checks: &[Value], table: &str) -> u64 {
    let c = checks
        .iter()
        .find(|c| c["table"] == table)
        .unwrap_or_else(|| panic!("no check of {table}: {checks:#?}"));
    c["target_rows"].as_u64().unwrap()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_installation_moves_to_postgresql_and_back_verified() {
    let admin = postgres_url();
    // An installation made by the real server: a unit uploads by FTP, then
    // falls silent, which opens an alert whose notification cannot be sent
    // (nobody listens at the webhook's port) and is recorded as failing.
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("telegaz.toml");
    std::fs::write(
        &file,
        "[[notifier]]\nname = \"dispatch\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n",
    )
    .unwrap();
    let mut s = Server::start_with(&[
        ("TELEGAZ_CONFIG", file.to_str().unwrap()),
        ("TELEGAZ_ALERTS__EVALUATE_EVERY", "200ms"),
        ("TELEGAZ_ALERTS__SILENT_DEFAULT_INTERVAL", "1s"),
        ("TELEGAZ_ALERTS__SILENT_GRACE", "1s"),
        ("TELEGAZ_ALERTS__NOTIFY_RETRY", "200ms"),
    ]);
    let token = viewer_token(&s);
    let (_d, f) = temp_file("a.bin", &content(7, 5000));
    run_ok(
        Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "--max-time",
                "30",
                "--ftp-create-dirs",
                "-T",
            ])
            .arg(&f)
            .arg(s.ftp_url("unit1", "pw-unit1", "/arch/a.bin")),
    );
    wait_for("the silent alert", || {
        api_alerts(&s, &token, "")
            .iter()
            .any(|a| a["kind"] == "silent" && a["device"] == "unit1")
    });
    s.stop();
    let dir = s.dir.clone();
    // Readings and events: the sample archives, imported as unit2's uploads.
    let lis = samples().join("lis200");
    let mut import = Command::new(BIN);
    import
        .arg("--data-dir")
        .arg(&dir)
        .args(["import", "--device", "unit2"]);
    for f in [
        "tc220_interval_3days.txt",
        "tc220_events.txt",
        "ek270_interval_with_header.txt",
    ] {
        import.arg(lis.join(f));
    }
    run_ok(&mut import);
    ok(cli(
        &dir,
        None,
        &[
            "device",
            "set",
            "unit2",
            "--title",
            "ГРП №2, ул. Ленина",
            "--allow",
            "10.0.0.0/8",
            "--allow",
            "192.168.1.0/24",
        ],
    ));
    let before = snapshot(&dir, None);

    // SQLite -> PostgreSQL.
    let pg = Scratch::new(&admin, "to");
    let text = ok(cli(&dir, None, &["migrate-db", "--to", &pg.url, "--json"]));
    let report = checks(&text);
    for c in &report {
        assert_eq!(c["matches"], true, "{c}");
        assert_eq!(c["source_rows"], c["target_rows"], "{c}");
        assert_eq!(c["source_sha256"], c["target_sha256"], "{c}");
    }
    assert_eq!(rows(&report, "devices"), 2);
    for table in [
        "users",
        "api_tokens",
        "uploads",
        "device_files",
        "device_dirs",
        "audit",
        "ingest",
        "readings",
        "events",
        "alerts",
        "notifications",
        "notification_sends",
    ] {
        assert!(
            rows(&report, table) > 0,
            "{table} was copied empty: {report:#?}"
        );
    }
    // The CLI reads the same from PostgreSQL as from SQLite.
    assert_eq!(snapshot(&dir, Some(&pg.url)), before);

    // A second migration into the now filled database is refused.
    let again = cli(&dir, None, &["migrate-db", "--to", &pg.url]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("is not empty"), "{err}");

    // PostgreSQL -> a new SQLite file: the round trip.
    let back = tempfile::tempdir().unwrap();
    let back_url = format!("sqlite://{}", back.path().join("back.db").display());
    let text = ok(cli(
        &dir,
        None,
        &["migrate-db", "--from", &pg.url, "--to", &back_url, "--json"],
    ));
    let round = checks(&text);
    for (a, b) in report.iter().zip(&round) {
        assert_eq!(a["table"], b["table"]);
        assert_eq!(b["matches"], true, "{b}");
        // The same checksums as the SQLite original's.
        assert_eq!(a["source_sha256"], b["target_sha256"], "{b}");
    }
    assert_eq!(snapshot(&dir, Some(&back_url)), before);

    // New rows on PostgreSQL get new ids past the copied ones (the identity
    // sequences were moved), and the verification now sees the difference.
    ok(cli(
        &dir,
        Some(&pg.url),
        &["device", "add", "unit3", "--password", "pw-unit3"],
    ));
    let devices = json_lines(&ok(cli(&dir, Some(&pg.url), &["device", "list", "--json"])));
    let unit3 = devices.iter().find(|d| d["name"] == "unit3").unwrap();
    assert_eq!(unit3["id"], 3, "{devices:#?}");
    let verify = cli(
        &dir,
        None,
        &["migrate-db", "--to", &pg.url, "--verify-only"],
    );
    assert!(!verify.status.success(), "a difference must fail");
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("devices") && l.contains("MISMATCH")),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("verification failed: devices"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn bad_urls_get_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = cli(&data, None, &["migrate-db", "--to", "mysql://db/telegaz"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not supported") && err.contains("postgres://USER:PASSWORD@HOST"),
        "{err}"
    );
    let same = format!("sqlite://{}", data.join("telegaz.db").display());
    let out = cli(&data, None, &["migrate-db", "--to", &same]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the same database"), "{err}");
    let out = cli(
        &data,
        None,
        &[
            "migrate-db",
            "--to",
            "postgres://nobody:secret-pw@127.0.0.1:1/x",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect") && !err.contains("secret-pw"),
        "{err}"
    );
}
