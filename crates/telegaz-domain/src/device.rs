use std::fmt;

use serde::Serialize;

use crate::Timestamp;

/// Database identity of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeviceId(pub i64);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A device name (and, by default, its FTP login).
///
/// Names are what operators type on the command line and what embedded FTP
/// clients send in `USER`: printable ASCII without spaces, 1 to 64 characters.
/// Anything else would be mangled by some БПЭК firmware or by a shell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeviceName(String);

/// Why a string is not a valid device name or login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDeviceName {
    pub value: String,
    pub reason: &'static str,
}

impl fmt::Display for InvalidDeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a valid device name or login: {}",
            self.value, self.reason
        )
    }
}

impl std::error::Error for InvalidDeviceName {}

impl DeviceName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(value: &str) -> Result<Self, InvalidDeviceName> {
        let bad = |reason| InvalidDeviceName {
            value: value.to_owned(),
            reason,
        };
        if value.is_empty() {
            return Err(bad("it is empty"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(bad("it is longer than 64 characters"));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            return Err(bad(
                "use only latin letters, digits and the characters - _ . @ (FTP clients in modems mangle anything else)",
            ));
        }
        Ok(DeviceName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A registered device: one БПЭК unit with its own FTP account.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub id: DeviceId,
    pub name: DeviceName,
    pub login: DeviceName,
    /// PHC string of the argon2id hash of the password. Never shown.
    #[serde(skip)]
    pub password_hash: String,
    pub enabled: bool,
    /// Source networks the device may connect from (CIDR). Empty: any.
    pub allowed_networks: Vec<String>,
    /// IANA time zone of the device's clock (gas days are local).
    pub time_zone: String,
    /// Hour at which the device's gas day starts (0-23).
    pub contract_hour: i8,
    /// Free text for people (site, address); may hold anything, shown escaped.
    pub title: String,
    /// FTPS only: `AUTH TLS` before `USER`, `PROT P` for data; refused on raw TCP.
    pub tls_required: bool,
    pub created_at: Timestamp,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("login", &self.login)
            .field("password_hash", &"<redacted>")
            .field("enabled", &self.enabled)
            .field("allowed_networks", &self.allowed_networks)
            .field("time_zone", &self.time_zone)
            .field("contract_hour", &self.contract_hour)
            .field("title", &self.title)
            .field("tls_required", &self.tls_required)
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_what_modems_can_type() {
        for ok in ["kotelnaya-1", "TC220_0042", "unit.7", "a@b"] {
            assert!(DeviceName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_reject_spaces_markup_cyrillic_and_overlong() {
        for bad in [
            "",
            "has space",
            "<script>",
            "котельная",
            "a/b",
            &"x".repeat(65),
        ] {
            let err = DeviceName::parse(bad).err();
            assert!(err.is_some(), "{bad:?} accepted");
        }
    }

    #[test]
    fn debug_never_shows_the_password_hash() {
        let d = Device {
            id: DeviceId(1),
            name: DeviceName::parse("u1").unwrap_or_else(|e| unreachable!("{e}")),
            login: DeviceName::parse("u1").unwrap_or_else(|e| unreachable!("{e}")),
            password_hash: "$argon2id$secret".into(),
            enabled: true,
            allowed_networks: vec![],
            time_zone: "Europe/Moscow".into(),
            contract_hour: 10,
            title: String::new(),
            tls_required: false,
            created_at: Timestamp::UNIX_EPOCH,
        };
        let text = format!("{d:?}");
        assert!(!text.contains("secret"), "{text}");
        let json = serde_json::to_string(&d).unwrap_or_default();
        assert!(!json.contains("secret"), "{json}");
    }
}
