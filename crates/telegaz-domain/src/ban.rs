//! Bans: addresses and logins whose FTP logins are refused without a
//! password check, for a while or until lifted. Made by the failed-login
//! throttle (growing with each repeat) or by an operator.

use serde::Serialize;

use crate::{AuditKind, NewAuditEvent, Timestamp};

/// A ban as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ban {
    pub id: i64,
    /// The client address (canonical IP text), or `None`: every address.
    pub address: Option<String>,
    /// The login, or `None`: every login from `address`.
    pub login: Option<String>,
    pub reason: String,
    /// `system` (the failed-login throttle), `cli`, or `web:<user>` / `api:<user>`.
    pub created_by: String,
    pub created_at: Timestamp,
    /// `None`: until lifted.
    pub expires_at: Option<Timestamp>,
    /// How many earlier bans of the same address and login the throttle had
    /// made within its look-back when it made this one (0: the first).
    pub repeat: u32,
    pub lifted_at: Option<Timestamp>,
    pub lifted_by: Option<String>,
}

impl Ban {
    /// In force at `now`: not lifted and not expired.
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.lifted_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// Whether it refuses `login` from `address` (canonical IP text).
    pub fn applies_to(&self, address: &str, login: &str) -> bool {
        let addr_ok = self.address.as_deref().is_none_or(|a| a == address);
        let login_ok = self.login.as_deref().is_none_or(|l| l == login);
        addr_ok && login_ok && (self.address.is_some() || self.login.is_some())
    }

    /// What it covers, for people: `198.51.100.7`, `login unit-3`, `unit-3 from 198.51.100.7`.
    pub fn target(&self) -> String {
        match (&self.address, &self.login) {
            (Some(a), Some(l)) => format!("{l} from {a}"),
            (Some(a), None) => a.clone(),
            (None, Some(l)) => format!("login {l}"),
            (None, None) => "nothing".into(),
        }
    }
}

impl Ban {
    /// `until 2026-11-26T10:00:00Z` or `until lifted`.
    pub fn until_text(&self) -> String {
        match self.expires_at {
            Some(t) => format!("until {}", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
            None => "until lifted".into(),
        }
    }

    /// The audit record of its creation (`BanCreated`) or lifting
    /// (`BanLifted`) by `by` (`system`, `cli`, `web:<user>`, `api:<user>`).
    pub fn audit_event(&self, kind: AuditKind, by: &str) -> NewAuditEvent {
        let mut e = NewAuditEvent::new(kind, "ok");
        e.login = self.login.clone();
        let verb = if kind == AuditKind::BanLifted {
            "lifted"
        } else {
            "made"
        };
        e.detail = format!(
            "ban #{}: {} {}, {verb} by {by}: {}",
            self.id,
            self.target(),
            self.until_text(),
            self.reason
        );
        e
    }
}

/// Now, to the microsecond (what both databases keep): a lift recorded at
/// this time reads back equal, so the caller can tell it lifted the ban.
pub fn ban_clock() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

/// The client address as bans name it: an IP address, IPv4-mapped IPv6 as
/// IPv4 (`::ffff:10.0.0.1` is `10.0.0.1`).
pub fn ban_address(text: &str) -> Result<String, String> {
    let ip: std::net::IpAddr = text.trim().parse().map_err(|_| {
        format!("{text:?} is not an IP address (a ban names one address, e.g. 198.51.100.7)")
    })?;
    Ok(ip.to_canonical().to_string())
}

/// A ban to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBan {
    pub address: Option<String>,
    pub login: Option<String>,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub repeat: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(address: Option<&str>, login: Option<&str>) -> Ban {
        Ban {
            id: 1,
            address: address.map(str::to_owned),
            login: login.map(str::to_owned),
            reason: String::new(),
            created_by: "cli".into(),
            created_at: Timestamp::UNIX_EPOCH,
            expires_at: None,
            repeat: 0,
            lifted_at: None,
            lifted_by: None,
        }
    }

    #[test]
    fn scope_of_a_ban() {
        let a = ban(Some("10.0.0.1"), None);
        assert!(a.applies_to("10.0.0.1", "x") && !a.applies_to("10.0.0.2", "x"));
        let l = ban(None, Some("u1"));
        assert!(l.applies_to("10.0.0.9", "u1") && !l.applies_to("10.0.0.9", "u2"));
        let p = ban(Some("10.0.0.1"), Some("u1"));
        assert!(p.applies_to("10.0.0.1", "u1"));
        assert!(!p.applies_to("10.0.0.1", "u2") && !p.applies_to("10.0.0.2", "u1"));
        assert!(!ban(None, None).applies_to("10.0.0.1", "u1"));
    }

    #[test]
    fn addresses_are_canonical() {
        assert_eq!(ban_address(" ::ffff:10.0.0.1 ").unwrap(), "10.0.0.1");
        assert_eq!(ban_address("2001:db8::1").unwrap(), "2001:db8::1");
        assert!(ban_address("10.0.0.0/8").is_err());
    }

    #[test]
    fn expiry_and_lifting() {
        let t: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let mut b = ban(Some("10.0.0.1"), None);
        assert!(b.active_at(t));
        b.expires_at = Some(t);
        assert!(!b.active_at(t));
        b.expires_at = None;
        b.lifted_at = Some(t);
        assert!(!b.active_at(t));
    }
}
