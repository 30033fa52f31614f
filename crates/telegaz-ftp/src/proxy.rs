//! The PROXY protocol (HAProxy's, version 1 text and version 2 binary) on
//! connections from a TCP load balancer, so that limits, bans, allow-lists
//! and the audit trail see the unit's address, not the balancer's.
//!
//! Only connections from the configured balancer networks are read this way;
//! a header from anywhere else would let any client choose its address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The longest version 1 header (the specification's limit).
const V1_MAX: usize = 107;
/// Version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Addresses and TLVs we accept after a version 2 header's fixed part.
const V2_MAX_TAIL: usize = 512;

/// Why a connection from a balancer was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY protocol header within {0:?}")]
    Timeout(Duration),
    #[error("the connection closed before its PROXY protocol header ended")]
    Closed,
    #[error("not a PROXY protocol header: {0}")]
    Invalid(String),
}

/// Which networks a PROXY header is expected from.
#[derive(Debug, Clone, Default)]
pub struct ProxySources(Vec<ipnet::IpNet>);

impl ProxySources {
    pub fn new(networks: Vec<ipnet::IpNet>) -> Self {
        ProxySources(networks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a connection from `ip` must start with a PROXY header.
    pub fn expects_header(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// Read a PROXY header from the start of `stream`, and nothing after it.
/// `Ok(None)`: the balancer speaks for itself (v1 `UNKNOWN`, v2 `LOCAL`, e.g.
/// a health check), the connection's own address stands.
pub async fn read_header(
    stream: &mut TcpStream,
    wait: Duration,
) -> Result<Option<SocketAddr>, ProxyError> {
    let bytes = tokio::time::timeout(wait, read_header_bytes(stream))
        .await
        .map_err(|_| ProxyError::Timeout(wait))??;
    parse(&bytes)
}

async fn read_header_bytes(stream: &mut TcpStream) -> Result<Vec<u8>, ProxyError> {
    let closed = |_| ProxyError::Closed;
    // Eight bytes tell the versions apart and are shorter than either header,
    // so nothing of what follows the header is read here.
    let mut buf = vec![0u8; 8];
    stream.read_exact(&mut buf).await.map_err(closed)?;
    if buf.starts_with(b"PROXY ") {
        // Version 1: up to CRLF, one byte at a time (the client speaks only
        // after our greeting, but never read past the header anyway).
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(ProxyError::Invalid(format!(
                    "version 1 header longer than {V1_MAX} bytes"
                )));
            }
            let mut b = [0u8; 1];
            stream.read_exact(&mut b).await.map_err(closed)?;
            buf.push(b[0]);
        }
        return Ok(buf);
    }
    if V2_SIGNATURE.starts_with(&buf) {
        buf.resize(16, 0);
        stream.read_exact(&mut buf[8..]).await.map_err(closed)?;
        if buf[..12] != V2_SIGNATURE[..] {
            return Err(ProxyError::Invalid("bad version 2 signature".into()));
        }
        let tail = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if tail > V2_MAX_TAIL {
            return Err(ProxyError::Invalid(format!(
                "version 2 header announces {tail} bytes of addresses (limit {V2_MAX_TAIL})"
            )));
        }
        buf.resize(16 + tail, 0);
        stream.read_exact(&mut buf[16..]).await.map_err(closed)?;
        return Ok(buf);
    }
    Err(ProxyError::Invalid(format!(
        "starts with {:?}",
        String::from_utf8_lossy(&buf)
    )))
}

/// The source address a complete header names.
pub fn parse(bytes: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    use ppp::HeaderResult;
    let invalid = |e: &dyn std::fmt::Display| ProxyError::Invalid(e.to_string());
    match HeaderResult::parse(bytes) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => {
                Some(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            ppp::v1::Addresses::Tcp6(a) => {
                Some(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            ppp::v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(h)) => {
            match (h.command, h.addresses) {
                (ppp::v2::Command::Local, _) => Ok(None),
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => Ok(Some(
                    SocketAddr::new(a.source_address.into(), a.source_port),
                )),
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => Ok(Some(
                    SocketAddr::new(a.source_address.into(), a.source_port),
                )),
                (ppp::v2::Command::Proxy, other) => Err(ProxyError::Invalid(format!(
                    "version 2 header for a {:?} connection, not TCP over IP",
                    other.address_family()
                ))),
            }
        }
        HeaderResult::V1(Err(e)) => Err(invalid(&e)),
        HeaderResult::V2(Err(e)) => Err(invalid(&e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn through_socket(
        header: &[u8],
        after: &[u8],
    ) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut send = header.to_vec();
        send.extend_from_slice(after);
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            // In pieces, as a network may deliver it.
            for piece in send.chunks(5) {
                c.write_all(piece).await.unwrap();
                c.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            c.shutdown().await.unwrap();
            c
        });
        let (mut s, _) = listener.accept().await.unwrap();
        let r = read_header(&mut s, Duration::from_secs(5)).await;
        let mut rest = Vec::new();
        if r.is_ok() {
            s.read_to_end(&mut rest).await.unwrap();
        }
        drop(client.await.unwrap());
        (r, rest)
    }

    #[tokio::test]
    async fn version_1_gives_the_source_and_reads_nothing_after_it() {
        let (r, rest) = through_socket(
            b"PROXY TCP4 203.0.113.7 10.0.0.5 40123 2121\r\n",
            b"USER x\r\n",
        )
        .await;
        assert_eq!(r.unwrap(), Some("203.0.113.7:40123".parse().unwrap()));
        assert_eq!(rest, b"USER x\r\n");
        let (r, _) = through_socket(b"PROXY TCP6 2001:db8::1 2001:db8::2 5000 2121\r\n", b"").await;
        assert_eq!(r.unwrap(), Some("[2001:db8::1]:5000".parse().unwrap()));
        let (r, _) = through_socket(b"PROXY UNKNOWN\r\n", b"").await;
        assert_eq!(r.unwrap(), None);
    }

    #[tokio::test]
    async fn version_2_gives_the_source_and_local_means_the_balancer_itself() {
        let header = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                "198.51.100.9:61000".parse::<SocketAddr>().unwrap(),
                "10.0.0.5:2121".parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        let (r, rest) = through_socket(&header, b"PASS y\r\n").await;
        assert_eq!(r.unwrap(), Some("198.51.100.9:61000".parse().unwrap()));
        assert_eq!(rest, b"PASS y\r\n");
        let local = ppp::v2::Builder::new(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::AddressFamily::Unspecified | ppp::v2::Protocol::Unspecified,
        )
        .build()
        .unwrap();
        let (r, _) = through_socket(&local, b"").await;
        assert_eq!(r.unwrap(), None);
    }

    #[tokio::test]
    async fn garbage_overlong_and_cut_headers_are_refused() {
        let (r, _) = through_socket(b"USER anonymous\r\n", b"").await;
        assert!(matches!(r, Err(ProxyError::Invalid(_))), "{r:?}");
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        let (r, _) = through_socket(long.as_bytes(), b"").await;
        assert!(matches!(r, Err(ProxyError::Invalid(_))), "{r:?}");
        let (r, _) = through_socket(b"PROXY TCP4 1.2.3.4", b"").await;
        assert!(matches!(r, Err(ProxyError::Closed)), "{r:?}");
        let (r, _) = through_socket(b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n", b"").await;
        assert!(matches!(r, Err(ProxyError::Invalid(_))), "{r:?}");
    }

    #[test]
    fn only_balancer_networks_are_trusted() {
        let s = ProxySources::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert!(s.expects_header("10.1.2.3".parse().unwrap()));
        assert!(s.expects_header("::ffff:10.1.2.3".parse().unwrap()));
        assert!(s.expects_header("::1".parse().unwrap()));
        assert!(!s.expects_header("192.0.2.1".parse().unwrap()));
        assert!(ProxySources::default().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&bytes);
        }
    }
}
