#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test
//! Telegaz behind a real TCP load balancer (HAProxy, from Debian's package)
//! that speaks the PROXY protocol: version 2 on the control port, version 1
//! on the passive ports. The unit's own address must reach limits, the
//! upload record and the audit trail; a connection from the balancer's
//! address without a header is refused.
//!
//! Addresses on the loopback network stand for the machines: the unit is
//! 127.0.0.2, the balancer listens on 127.0.0.3 and connects to Telegaz
//! (127.0.0.1) from 127.0.0.4.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, content, temp_file};

struct HaProxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn haproxy_binary() -> &'static str {
    let path = "/usr/sbin/haproxy";
    assert!(
        std::path::Path::new(path).exists(),
        "HAProxy is needed for this test: apt-get install haproxy (.ci/run installs it)"
    );
    path
}

/// A passive range free on both 127.0.0.1 (Telegaz) and 127.0.0.3 (HAProxy).
fn free_range(len: u16) -> (u16, u16) {
    let start = 30000 + (std::process::id() % 2000) as u16 * 7;
    for base in (start..60000).step_by(usize::from(len)) {
        let ok = (base..base + len).all(|p| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.3", p)).is_ok()
        });
        if ok {
            return (base, base + len - 1);
        }
    }
    panic!("no free passive range");
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_haproxy(telegaz: std::net::SocketAddr, ctl: u16, (lo, hi): (u16, u16)) -> HaProxy {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 200\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend ftp_control\n  bind 127.0.0.3:{ctl}\n  default_backend telegaz_control\n\
             backend telegaz_control\n  server r1 {telegaz} send-proxy-v2 source 127.0.0.4\n\
             frontend ftp_passive\n  bind 127.0.0.3:{lo}-{hi}\n  default_backend telegaz_passive\n\
             backend telegaz_passive\n  server r1 127.0.0.1 send-proxy source 127.0.0.4\n"
        ),
    )
    .unwrap();
    let child = Command::new(haproxy_binary())
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.3", ctl)).is_err() {
        assert!(Instant::now() < deadline, "HAProxy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    HaProxy { child, _dir: dir }
}

#[test]
fn units_behind_a_proxy_protocol_balancer_are_seen_with_their_own_address() {
    let range = free_range(6);
    let passive = format!("{}-{}", range.0, range.1);
    let s = Server::start_with(&[
        ("TELEGAZ_FTP__PROXY_PROTOCOL_FROM", "[\"127.0.0.4/32\"]"),
        ("TELEGAZ_FTP__PASSIVE_PORTS", &passive),
        ("TELEGAZ_FTP__PASSIVE_HOST", "127.0.0.3"),
    ]);
    let ctl = free_port("127.0.0.3");
    let _lb = start_haproxy(s.ftp, ctl, range);

    // Passive (EPSV, then PASV) through the balancer, from the unit's address.
    for (i, epsv) in [(0u64, true), (1, false)] {
        let data = content(40 + i, 30_000);
        let (_d, file) = temp_file("arch.txt", &data);
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--max-time", "60", "--interface", "127.0.0.2", "-T"])
            .arg(&file)
            .arg(format!(
                "ftp://unit1:pw-unit1@127.0.0.3:{ctl}/via-lb-{i}.txt"
            ));
        if !epsv {
            curl.arg("--disable-epsv");
        }
        common::run_ok(&mut curl);
        let up = s.wait_upload(|u| {
            u["original_name"] == format!("via-lb-{i}.txt") && u["status"] == "complete"
        });
        s.assert_stored(&up, &data);
        let peer = up["peer"].as_str().unwrap();
        assert!(peer.starts_with("127.0.0.2:"), "upload peer {peer}");
    }
    s.wait_audit(|e| {
        e["kind"] == "login_succeeded"
            && e["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.2:"))
    });
    assert!(
        !s.audit().iter().any(|e| e["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.4"))),
        "the balancer's own address reached the audit trail"
    );

    // From the balancer's address without a header: refused, audited.
    let sock = common::connect_from("127.0.0.4", s.ftp);
    let mut sock = sock;
    sock.write_all(b"USER unit1\r\n").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = sock.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("331"),
        "a connection from the balancer without a PROXY header was served: {:?}",
        String::from_utf8_lossy(&buf)
    );
    s.wait_audit(|e| {
        e["kind"] == "connect_refused"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("PROXY protocol"))
    });

    // A unit connecting directly (not from the balancer) is served as before.
    let data = content(50, 1000);
    let (_d, file) = temp_file("direct.txt", &data);
    common::run_ok(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "--interface", "127.0.0.2", "-T"])
            .arg(&file)
            .arg(s.ftp_url("unit1", "pw-unit1", "/direct.txt")),
    );
    let up = s.wait_upload(|u| u["original_name"] == "direct.txt" && u["status"] == "complete");
    s.assert_stored(&up, &data);
}
