use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An inclusive range of TCP ports, written `A-B` (or a single port `A`).
/// `0-0` means "any free port the system picks".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a port range: write FIRST-LAST with FIRST <= LAST, e.g. 50000-50999 (or 0-0 for any free port)"
)]
pub struct InvalidPortRange(pub String);

impl PortRange {
    pub const ANY: PortRange = PortRange { first: 0, last: 0 };

    pub fn new(first: u16, last: u16) -> Result<Self, InvalidPortRange> {
        if first > last || (first == 0 && last != 0) {
            return Err(InvalidPortRange(format!("{first}-{last}")));
        }
        Ok(PortRange { first, last })
    }

    pub fn first(&self) -> u16 {
        self.first
    }

    pub fn last(&self) -> u16 {
        self.last
    }

    pub fn is_any(&self) -> bool {
        self.first == 0
    }

    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for PortRange {
    type Err = InvalidPortRange;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidPortRange(s.to_owned());
        let (a, b) = match s.trim().split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (s.trim(), s.trim()),
        };
        let first = a.parse::<u16>().map_err(|_| bad())?;
        let last = b.parse::<u16>().map_err(|_| bad())?;
        PortRange::new(first, last).map_err(|_| bad())
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Port(u16),
        }
        match Repr::deserialize(d)? {
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Repr::Port(p) => PortRange::new(p, p).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        assert_eq!("50000-50999".parse(), PortRange::new(50000, 50999));
        assert_eq!("2121".parse(), PortRange::new(2121, 2121));
        assert_eq!("0-0".parse(), Ok(PortRange::ANY));
        assert_eq!(PortRange::new(10, 19).map(|r| r.len()), Ok(10));
        for bad in ["9-3", "a-b", "70000-70001", "0-10", ""] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }
}
