//! PostgreSQL goes away while `telegaz serve` runs: the server reaches the
//! real PostgreSQL (`TELEGAZ_TEST_POSTGRES_URL`, a scratch database made for
//! the test) through a TCP forwarder that the test cuts and restores. Uploads
//! during the cut get 226 and are recorded, exactly once, when it is restored.
//!
//! Without `TELEGAZ_TEST_POSTGRES_URL` the test is reported as ignored (not run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Cursor, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, content, run_ok};
use suppaftp::FtpStream;
use suppaftp::types::FileType;

/// A TCP forwarder to PostgreSQL that can be cut (every connection closed,
/// new ones closed at once) and restored.
struct Forwarder {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Forwarder {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, live2) = (up.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                {
                    let mut l = live2.lock().unwrap();
                    l.push(client.try_clone().unwrap());
                    l.push(server.try_clone().unwrap());
                }
                pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(server, client);
            }
        });
        Forwarder { addr, up, live }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Replace the database name of a postgres URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let rest = base.split_once("://").unwrap().1;
    let cut = rest
        .find('/')
        .map_or(base.len(), |i| base.len() - rest.len() + i);
    let mut out = format!("{}/{db}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// host:port of a postgres URL (the test server is named by TCP address).
fn host_port(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split(['/', '?']).next().unwrap();
    let hp = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let hp = if hp.contains(':') {
        hp.to_owned()
    } else {
        format!("{hp}:5432")
    };
    use std::net::ToSocketAddrs;
    hp.to_socket_addrs().unwrap().next().unwrap()
}

fn psql(url: &str, sql: &str) {
    run_ok(Command::new("psql").args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]));
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn postgres_goes_away_during_uploads(admin_url: &str) {
    let scratch = format!("telegaz_outage_{}", std::process::id());
    psql(admin_url, &format!("DROP DATABASE IF EXISTS {scratch}"));
    psql(admin_url, &format!("CREATE DATABASE {scratch}"));
    let direct = with_database(admin_url, &scratch);
    let fwd = Forwarder::start(host_port(admin_url));
    let through = with_database(
        &direct.replacen(
            &host_port(admin_url).port().to_string(),
            &fwd.addr.port().to_string(),
            1,
        ),
        &scratch,
    );
    assert!(through.contains(&fwd.addr.port().to_string()), "{through}");
    let s = Server::start_with(&[
        ("TELEGAZ_DATABASE_URL", through.as_str()),
        ("TELEGAZ_FTP__DATABASE_WAIT", "1s"),
    ]);
    let mut sent = Vec::new();
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let first = content(8000, 5000);
    ftp.put_file("before.bin", &mut Cursor::new(&first))
        .unwrap();
    ftp.quit().unwrap();
    sent.push(("/before.bin".to_owned(), first));
    s.wait_upload(|u| u["final_path"] == "/before.bin");

    fwd.cut();
    for i in 0..6u64 {
        let data = content(8001 + i, 4000 + i as usize * 1000);
        let name = format!("cut-{i}.bin");
        let mut ftp = FtpStream::connect(s.ftp).unwrap();
        ftp.login("unit1", "pw-unit1").unwrap();
        ftp.transfer_type(FileType::Binary).unwrap();
        ftp.put_file(&name, &mut Cursor::new(&data))
            .unwrap_or_else(|e| panic!("{name} during the cut: {e}\n{}", s.log()));
        ftp.quit().unwrap();
        sent.push((format!("/{name}"), data));
    }
    let health = String::from_utf8(
        run_ok(Command::new("curl").args(["-sS", &format!("http://{}/healthz", s.http)])).stdout,
    )
    .unwrap();
    assert!(health.starts_with("degraded"), "{health}");
    fwd.restore();

    wait_for("the uploads of the cut to be recorded", || {
        let out = Command::new(common::BIN)
            .arg("--data-dir")
            .arg(&s.dir)
            .args(["uploads", "list", "--json"])
            .env("TELEGAZ_DATABASE_URL", &direct)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        sent.iter()
            .all(|(p, _)| text.contains(&format!("\"final_path\":\"{p}\"")))
    });
    let uploads = s.uploads();
    for (path, data) in &sent {
        let recs: Vec<_> = uploads
            .iter()
            .filter(|u| u["final_path"] == path.as_str())
            .collect();
        assert_eq!(recs.len(), 1, "{path} must be recorded once: {recs:#?}");
        s.assert_stored(recs[0], data);
    }
    assert!(
        uploads.iter().all(|u| u["status"] != "receiving"),
        "{uploads:#?}"
    );
    assert!(
        s.log().contains("the database is available again"),
        "{}",
        s.log()
    );
    drop(s);
    psql(
        admin_url,
        &format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"),
    );
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let url = std::env::var("TELEGAZ_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!(
            "outage_pg: NOT RUN (ignored): set TELEGAZ_TEST_POSTGRES_URL=postgres://USER@HOST:PORT/DB to run it"
        );
    }
    let trial = libtest_mimic::Trial::test("postgres_goes_away_during_uploads", move || {
        let Some(url) = url else {
            return Err("TELEGAZ_TEST_POSTGRES_URL is not set".into());
        };
        postgres_goes_away_during_uploads(&url);
        Ok(())
    })
    .with_ignored_flag(std::env::var("TELEGAZ_TEST_POSTGRES_URL").map_or(true, |u| u.is_empty()));
    libtest_mimic::run(&args, vec![trial]).exit_code()
}
