use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

/// Failures of hashing or of reading a stored hash.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the stored password hash is not a valid PHC string ({0}); reset the password")]
    InvalidHash(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("the password is empty")]
    Empty,
    #[error(
        "the password is longer than {max} characters; modem configuration programs cannot hold it"
    )]
    TooLong { max: usize },
}

/// Longest password we accept for a device account.
pub const MAX_PASSWORD_LEN: usize = 64;

/// Hash a password with argon2id (default OWASP parameters) and a random salt.
pub fn hash_password(password: &SecretString) -> Result<String, PasswordError> {
    let pw = password.expose_secret();
    if pw.is_empty() {
        return Err(PasswordError::Empty);
    }
    if pw.chars().count() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong {
            max: MAX_PASSWORD_LEN,
        });
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Check a password against a stored PHC hash string.
pub fn verify_password(stored_hash: &str, password: &SecretString) -> Result<bool, PasswordError> {
    let parsed =
        PasswordHash::new(stored_hash).map_err(|e| PasswordError::InvalidHash(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok())
}

/// Spend the same time as a real verification, for logins that name no account,
/// so that response timing does not reveal which logins exist.
pub fn dummy_verify(password: &SecretString) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let hash =
        DUMMY.get_or_init(|| hash_password(&SecretString::from("telegaz-timing-equaliser")).ok());
    if let Some(h) = hash {
        let _ = verify_password(h, password);
    }
}

/// A strong password that survives being read aloud, printed and typed into a
/// modem configuration program: 16 characters from an alphabet without look-alikes
/// (no 0/O, 1/l/I), about 92 bits of entropy.
pub fn generate_password() -> SecretString {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    let s: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    SecretString::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let pw = SecretString::from("s3cret-pw");
        let h = hash_password(&pw).unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("s3cret"));
        assert!(verify_password(&h, &pw).unwrap());
        assert!(!verify_password(&h, &SecretString::from("wrong")).unwrap());
    }

    #[test]
    fn salts_differ() {
        let pw = SecretString::from("same");
        assert_ne!(hash_password(&pw).unwrap(), hash_password(&pw).unwrap());
    }

    #[test]
    fn bad_stored_hash_is_an_error_not_a_match() {
        let err = verify_password("plaintext", &SecretString::from("plaintext"));
        assert!(matches!(err, Err(PasswordError::InvalidHash(_))));
    }

    #[test]
    fn empty_and_overlong_passwords_are_refused() {
        assert!(matches!(
            hash_password(&SecretString::from("")),
            Err(PasswordError::Empty)
        ));
        assert!(matches!(
            hash_password(&SecretString::from("x".repeat(65))),
            Err(PasswordError::TooLong { .. })
        ));
    }

    #[test]
    fn generated_passwords_are_long_unambiguous_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose_secret().len(), 16);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(!a.expose_secret().contains(['0', 'O', '1', 'l', 'I']));
    }
}
