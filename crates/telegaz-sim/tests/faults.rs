//! The fleet runner and its fault injectors against a scripted FTP server
//! that records what it saw (the real server is in crates/telegaz/tests/simulate.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use telegaz_sim::{FailureKind, FleetConfig, Outcome, Schedule, accounts, fleet_units, run_fleet};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default)]
struct Seen {
    commands: Vec<String>,
    stor_at: Option<Instant>,
    data_at: Option<Instant>,
    bytes: usize,
    /// The data connection ended with a reset (not a clean close).
    reset: bool,
    acknowledged: bool,
}

/// A scripted server: accepts every login except password `bad`; with
/// `silent`, never greets.
async fn fake_server(silent: bool) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let all = seen.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let all = all.clone();
            tokio::spawn(async move {
                if silent {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    drop(conn);
                    return;
                }
                let (r, mut w) = conn.into_split();
                let mut r = BufReader::new(r);
                let mut s = Seen::default();
                let mut pasv: Option<TcpListener> = None;
                w.write_all(b"220-fake\r\n220 ready\r\n").await.unwrap();
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let cmd = line.trim_end().to_owned();
                    line.clear();
                    s.commands.push(cmd.clone());
                    let reply: String = match cmd.split(' ').next().unwrap_or("") {
                        "USER" => "331 password\r\n".into(),
                        "PASS" if cmd == "PASS bad" => "530 no\r\n".into(),
                        "PASS" => "230 in\r\n".into(),
                        "TYPE" => "200 ok\r\n".into(),
                        "PASV" => {
                            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                            let p = l.local_addr().unwrap().port();
                            pasv = Some(l);
                            format!(
                                "227 Entering Passive Mode (127,0,0,1,{},{})\r\n",
                                p / 256,
                                p % 256
                            )
                        }
                        "STOR" => {
                            s.stor_at = Some(Instant::now());
                            let (mut data, _) = pasv.take().unwrap().accept().await.unwrap();
                            s.data_at = Some(Instant::now());
                            w.write_all(b"150 go\r\n").await.unwrap();
                            let mut buf = vec![0u8; 4096];
                            loop {
                                match data.read(&mut buf).await {
                                    Ok(0) => break,
                                    Ok(n) => s.bytes += n,
                                    Err(_) => {
                                        s.reset = true;
                                        break;
                                    }
                                }
                            }
                            if s.reset {
                                break;
                            }
                            s.acknowledged = true;
                            "226 stored\r\n".into()
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => "502 no\r\n".into(),
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
                all.lock().unwrap().push(s);
            });
        }
    });
    (addr, seen)
}

/// The sessions the server has finished, once there are `n`.
async fn wait_seen(seen: &Arc<Mutex<Vec<Seen>>>, n: usize) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = seen.lock().unwrap().clone();
    assert_eq!(all.len(), n, "{all:?}");
    all
}

fn config(server: SocketAddr, n: u32) -> FleetConfig {
    let accounts = accounts::generate(n, "sim-", 1);
    let start = jiff::civil::date(2026, 1, 1).at(1, 0, 0, 0);
    let mut c = FleetConfig::new(server.to_string(), fleet_units(&accounts, 1, start));
    c.retry_after = Duration::from_millis(10);
    c.interval = Duration::ZERO;
    c.session_timeout = Duration::from_secs(20);
    c
}

#[tokio::test]
async fn a_clean_round_is_acknowledged_and_counted() {
    let (addr, seen) = fake_server(false).await;
    let mut c = config(addr, 4);
    c.rounds = Some(2);
    c.schedule = Schedule::Spread(Duration::from_millis(100));
    let stats = run_fleet(c).await.unwrap();
    let sum = stats.summary();
    assert_eq!((sum.sessions, sum.acknowledged, sum.failed), (8, 8, 0));
    assert_eq!(sum.files_acknowledged, 8);
    assert_eq!(sum.files_lost, 0);
    let seen = wait_seen(&seen, 8).await;
    let sent: u64 = stats.sessions.iter().map(|s| s.size).sum();
    assert_eq!(sum.bytes, sent);
    assert_eq!(seen.iter().map(|s| s.bytes as u64).sum::<u64>(), sent);
    for s in &seen {
        assert!(s.acknowledged && !s.reset);
        assert!(
            s.commands[0].starts_with("USER sim-000"),
            "{:?}",
            s.commands
        );
        assert!(s.commands[1].starts_with("PASS "));
        assert_eq!(s.commands[2..4], ["TYPE I", "PASV"]);
        assert!(s.commands[4].starts_with("STOR sim-000"));
        assert!(s.commands.last().unwrap() == "QUIT");
        // The usual order: data connection first, STOR after it.
        assert!(s.data_at.unwrap() >= s.stor_at.unwrap());
    }
    // Two rounds, simulated time moves on: every file is a different one.
    let mut files: Vec<&str> = stats.sessions.iter().map(|s| s.file.as_str()).collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), 8);
    let p = sum.latency_ms;
    assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.max);
}

#[tokio::test]
async fn a_dropped_link_resets_the_data_connection_and_is_retried() {
    let (addr, seen) = fake_server(false).await;
    let mut c = config(addr, 3);
    c.faults.drop_data = 1.0;
    c.max_attempts = 2;
    let stats = run_fleet(c).await.unwrap();
    let sum = stats.summary();
    assert_eq!(sum.sessions, 6);
    assert_eq!(sum.failures["transfer"], 6);
    assert_eq!((sum.injected, sum.retries, sum.files_lost), (6, 3, 3));
    for s in &stats.sessions {
        assert!(s.bytes > 0 && s.bytes < s.size, "{s:?}");
        assert!(matches!(
            s.outcome,
            Outcome::Failed {
                injected: true,
                kind: FailureKind::Transfer,
                ..
            }
        ));
    }
    // The server notices the resets on its own time.
    let seen = wait_seen(&seen, 6).await;
    assert!(seen.iter().all(|s| s.reset && !s.acknowledged), "{seen:?}");
}

#[tokio::test]
async fn a_late_passive_connection_comes_after_stor() {
    let (addr, seen) = fake_server(false).await;
    let mut c = config(addr, 2);
    c.faults.late_pasv = Duration::from_millis(300);
    let sum = run_fleet(c).await.unwrap().summary();
    assert_eq!(sum.acknowledged, 2);
    for s in &wait_seen(&seen, 2).await {
        let waited = s.data_at.unwrap() - s.stor_at.unwrap();
        assert!(waited >= Duration::from_millis(290), "{waited:?}");
    }
}

#[tokio::test]
async fn failures_are_sorted_by_kind() {
    // Refused connection.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut c = config(closed, 1);
    c.max_attempts = 1;
    let sum = run_fleet(c).await.unwrap().summary();
    assert_eq!(sum.failures["connect"], 1);

    // Wrong password.
    let (addr, _) = fake_server(false).await;
    let mut c = config(addr, 1);
    c.max_attempts = 1;
    c.units[0].account.password = "bad".into();
    let sum = run_fleet(c).await.unwrap().summary();
    assert_eq!(sum.failures["login"], 1);

    // A server that never answers.
    let (addr, _) = fake_server(true).await;
    let mut c = config(addr, 1);
    c.max_attempts = 1;
    c.session_timeout = Duration::from_millis(300);
    let sum = run_fleet(c).await.unwrap().summary();
    assert_eq!(sum.failures["timeout"], 1);
    assert_eq!(sum.failed, 1);
}

#[tokio::test]
async fn a_stop_signal_ends_an_endless_run() {
    let (addr, _) = fake_server(false).await;
    let mut c = config(addr, 2);
    c.rounds = None;
    c.interval = Duration::from_secs(3600);
    let (tx, rx) = tokio::sync::watch::channel(false);
    c.stop = Some(rx);
    let run = tokio::spawn(run_fleet(c));
    tokio::time::sleep(Duration::from_millis(500)).await;
    tx.send(true).unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stats.rounds, 1);
    assert_eq!(stats.summary().acknowledged, 2);
}
