//! People who use the web UI and the REST API, and what they may do.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::Timestamp;

/// Database identity of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a user may do. Ordered: each role can do what the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Also registers and edits devices, re-parses files, edits profiles.
    Operator,
    /// Also manages users.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may change data (devices, uploads' ingest, profiles).
    pub fn can_change(self) -> bool {
        self >= Role::Operator
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: use admin, operator or viewer"))
    }
}

/// A user name: 1 to 64 characters, letters (any script), digits and `-_.@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() || value.chars().count() > 64 {
            return Err(format!(
                "{value:?} is not a valid user name: use 1 to 64 characters"
            ));
        }
        if !value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            return Err(format!(
                "{value:?} is not a valid user name: use letters, digits and - _ . @"
            ));
        }
        Ok(UserName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A user of the web UI and REST API.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub name: UserName,
    pub role: Role,
    pub enabled: bool,
    /// PHC string of the argon2id hash of the password. Never shown.
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: Timestamp,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("enabled", &self.enabled)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A signed-in browser session, as stored (the cookie value itself is only
/// ever stored hashed).
#[derive(Clone, PartialEq, Eq)]
pub struct WebSession {
    pub user: User,
    /// The anti-CSRF token every form of this session must carry.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl fmt::Debug for WebSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSession")
            .field("user", &self.user)
            .field("csrf_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// An API token as listed (its secret is shown once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: UserId,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Admin.can_change());
        assert!(Role::Operator.can_change());
        assert!(!Role::Viewer.can_change());
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn user_names_allow_cyrillic_but_no_markup() {
        assert!(UserName::parse("иванов.пп").is_ok());
        assert!(UserName::parse("admin").is_ok());
        for bad in ["", "<script>", "a b", "x\"y"] {
            assert!(UserName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
