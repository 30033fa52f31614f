use std::net::IpAddr;

use ipnet::IpNet;

/// A CIDR that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a network: write it as CIDR, e.g. 10.20.0.0/16 or 192.0.2.7/32")]
pub struct InvalidNetwork {
    pub value: String,
}

/// Source networks a device may connect from. Empty means any address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAllowList {
    nets: Vec<IpNet>,
}

impl NetworkAllowList {
    /// Parse CIDR strings; a bare address means that one host.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, InvalidNetwork> {
        let mut nets = Vec::with_capacity(items.len());
        for item in items {
            let s = item.as_ref().trim();
            if s.is_empty() {
                continue;
            }
            let net = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| InvalidNetwork {
                    value: s.to_owned(),
                })?;
            nets.push(net.trunc());
        }
        Ok(NetworkAllowList { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Canonical text of each network, for storage.
    pub fn to_strings(&self) -> Vec<String> {
        self.nets.iter().map(ToString::to_string).collect()
    }

    /// Whether a peer address may connect. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`, as a dual-stack listener reports them) match IPv4 networks.
    pub fn allows(&self, addr: IpAddr) -> bool {
        if self.nets.is_empty() {
            return true;
        }
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_list_allows_everyone() {
        let l = NetworkAllowList::parse::<&str>(&[]).unwrap();
        assert!(l.allows(ip("203.0.113.9")));
    }

    #[test]
    fn matches_v4_v6_and_mapped() {
        let l = NetworkAllowList::parse(&["10.20.0.0/16", "2001:db8::/32", "192.0.2.7"]).unwrap();
        assert!(l.allows(ip("10.20.3.4")));
        assert!(!l.allows(ip("10.21.0.1")));
        assert!(l.allows(ip("2001:db8::1")));
        assert!(l.allows(ip("::ffff:10.20.9.9")));
        assert!(l.allows(ip("192.0.2.7")));
        assert!(!l.allows(ip("192.0.2.8")));
    }

    #[test]
    fn canonicalises_host_bits() {
        let l = NetworkAllowList::parse(&["10.20.3.4/16"]).unwrap();
        assert_eq!(l.to_strings(), vec!["10.20.0.0/16".to_string()]);
    }

    #[test]
    fn rejects_garbage_with_a_helpful_message() {
        let e = NetworkAllowList::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(e.to_string().contains("CIDR"), "{e}");
        assert!(NetworkAllowList::parse(&["evil.example"]).is_err());
    }
}
