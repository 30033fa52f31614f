use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
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

/// Hash a password a person chose with argon2id (default OWASP parameters:
/// 19 MiB, t=2) and a random salt. Memory-hard hashing is what keeps a
/// guessable password safe if the database leaks.
pub fn hash_password(password: &SecretString) -> Result<String, PasswordError> {
    hash_with(password, Argon2::default())
}

/// Argon2id parameters for passwords made by [`generate_password`]: the
/// smallest memory argon2 allows with one lane (8 KiB), one pass.
///
/// A generated password has about 92 bits of entropy: even at 10^12 guesses a
/// second an offline search of half that space takes 10^8 years, however cheap
/// one guess is. The memory-hard cost of [`hash_password`] buys nothing there,
/// but on a receiver it is paid at every login: 2,000 units that upload at the
/// top of the hour cost about 30 ms of a core each with the default
/// parameters (bench/ftp), so the burst waited on password checks.
pub const GENERATED_PARAMS: (u32, u32, u32) = (8, 1, 1);

/// Hash a password that [`generate_password`] made (a device password shown
/// once on its configuration sheet), with [`GENERATED_PARAMS`]. Never use it
/// for a password a person chose: use [`hash_password`].
pub fn hash_generated_password(password: &SecretString) -> Result<String, PasswordError> {
    let (m, t, p) = GENERATED_PARAMS;
    let params =
        argon2::Params::new(m, t, p, None).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    hash_with(
        password,
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
    )
}

/// A device password's hash: [`hash_generated_password`] for one
/// [`generate_password`] made, [`hash_password`] for one a person chose.
pub fn hash_device_password(
    password: &SecretString,
    generated: bool,
) -> Result<String, PasswordError> {
    if generated {
        hash_generated_password(password)
    } else {
        hash_password(password)
    }
}

fn hash_with(password: &SecretString, argon: Argon2<'_>) -> Result<String, PasswordError> {
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
    argon
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

thread_local! {
    /// Argon2's working memory (19 MiB with the default parameters), kept
    /// per thread and reused: allocating and freeing it on every login makes
    /// the allocator keep ever more of it (hundreds of MB after a burst of
    /// logins, measured in bench/ftp).
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Check a password against a stored PHC hash string (with the algorithm,
/// version and parameters the string names).
pub fn verify_password(stored_hash: &str, password: &SecretString) -> Result<bool, PasswordError> {
    let invalid = |e: &dyn std::fmt::Display| PasswordError::InvalidHash(e.to_string());
    let parsed = PasswordHash::new(stored_hash).map_err(|e| invalid(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(PasswordError::InvalidHash(
            "no salt or no hash in it".into(),
        ));
    };
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm).map_err(|e| invalid(&e))?;
    let version = match parsed.version {
        Some(v) => argon2::Version::try_from(v).map_err(|e| invalid(&e))?,
        None => argon2::Version::default(),
    };
    let params = argon2::Params::try_from(&parsed).map_err(|e| invalid(&e))?;
    let blocks_needed = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(|e| invalid(&e))?;
    let mut out = vec![0u8; expected.len()];
    BLOCKS
        .with(|cell| {
            let mut blocks = cell.borrow_mut();
            if blocks.len() < blocks_needed {
                blocks.resize(blocks_needed, argon2::Block::default());
            }
            let memory = blocks.get_mut(..blocks_needed).unwrap_or_default();
            argon.hash_password_into_with_memory(
                password.expose_secret().as_bytes(),
                salt,
                &mut out,
                memory,
            )
        })
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(constant_time_eq(&out, expected.as_bytes()))
}

/// Spend the same time as a real verification, for logins that name no account,
/// so that response timing does not reveal which logins exist. Device
/// accounts normally hold generated passwords, so the dummy check costs what
/// checking one of those costs.
pub fn dummy_verify(password: &SecretString) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| {
        hash_generated_password(&SecretString::from("telegaz-timing-equaliser")).ok()
    });
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
    fn verification_matches_the_reference_for_other_parameters_and_reuses_memory() {
        use argon2::password_hash::PasswordVerifier;
        let pw = SecretString::from("пароль-узла");
        // Hashes made elsewhere with other algorithms and parameters (e.g. an
        // older Telegaz or a migration) verify as the reference verifier says.
        for (alg, m, t) in [
            (argon2::Algorithm::Argon2id, 19 * 1024, 2),
            (argon2::Algorithm::Argon2id, 64 * 1024, 1),
            (argon2::Algorithm::Argon2i, 8 * 1024, 3),
            (argon2::Algorithm::Argon2d, 1024, 1),
        ] {
            let params = argon2::Params::new(m, t, 1, None).unwrap();
            let argon = Argon2::new(alg, argon2::Version::V0x13, params);
            let salt = SaltString::generate(&mut OsRng);
            let h = argon
                .hash_password(pw.expose_secret().as_bytes(), &salt)
                .unwrap()
                .to_string();
            let parsed = PasswordHash::new(&h).unwrap();
            let reference = Argon2::default()
                .verify_password(pw.expose_secret().as_bytes(), &parsed)
                .is_ok();
            assert!(reference);
            // Twice on this thread: the second run reuses (and, for a larger
            // hash, grows) the same memory.
            for _ in 0..2 {
                assert!(verify_password(&h, &pw).unwrap(), "{h}");
                assert!(
                    !verify_password(&h, &SecretString::from("не тот")).unwrap(),
                    "{h}"
                );
            }
        }
    }

    #[test]
    fn generated_passwords_get_cheap_argon2id_that_the_reference_verifies() {
        use argon2::password_hash::PasswordVerifier;
        let pw = generate_password();
        let h = hash_generated_password(&pw).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{h}");
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(pw.expose_secret().as_bytes(), &parsed)
                .is_ok()
        );
        assert!(verify_password(&h, &pw).unwrap());
        assert!(!verify_password(&h, &SecretString::from("wrong")).unwrap());
        // A chosen password keeps the memory-hard default.
        let chosen = hash_password(&SecretString::from("Summer2026")).unwrap();
        assert!(
            chosen.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{chosen}"
        );
        assert!(matches!(
            hash_generated_password(&SecretString::from("")),
            Err(PasswordError::Empty)
        ));
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
