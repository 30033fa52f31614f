//! Accounts of simulated units: generated (`sim-0001`… with passwords derived
//! from the seed), read from or written to a CSV file `name,login,password`,
//! and registered in a Telegaz store.

use std::path::Path;

use secrecy::SecretString;
use telegaz_domain::DeviceName;
use telegaz_store::{Database, DeviceUpdate, NewDevice};

use crate::SimError;
use crate::rng::Rng;

/// One unit's FTP account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Device name in Telegaz.
    pub name: String,
    /// FTP login.
    pub login: String,
    /// FTP password, in clear: these are test accounts.
    pub password: String,
}

const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// `n` accounts `{prefix}0001`… (login = name) with 16-character passwords
/// derived from `seed`.
pub fn generate(n: u32, prefix: &str, seed: u64) -> Vec<Account> {
    (1..=n)
        .map(|i| {
            let mut r = Rng::stream(seed, 3, u64::from(i));
            let password = (0..16)
                .map(|_| {
                    let k = r.below(ALPHABET.len() as u64) as usize;
                    char::from(ALPHABET.get(k).copied().unwrap_or(b'x'))
                })
                .collect();
            let name = format!("{prefix}{i:04}");
            Account {
                login: name.clone(),
                name,
                password,
            }
        })
        .collect()
}

/// The CSV text: a header line, then `name,login,password` per account.
pub fn to_csv(accounts: &[Account]) -> String {
    let mut s = String::from("name,login,password\n");
    for a in accounts {
        s.push_str(&format!("{},{},{}\n", a.name, a.login, a.password));
    }
    s
}

/// Writes the accounts as CSV (see [`to_csv`]).
pub fn write_csv(path: &Path, accounts: &[Account]) -> Result<(), SimError> {
    std::fs::write(path, to_csv(accounts)).map_err(|e| SimError::Io {
        what: format!("writing {}", path.display()),
        source: e,
    })
}

/// Parses CSV `name,login,password` (an optional header line, blank lines
/// and `#` comments are skipped). A password may contain commas: it is the
/// rest of the line.
pub fn parse_csv(text: &str) -> Result<Vec<Account>, SimError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ',');
        let (Some(name), Some(login), Some(password)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SimError::Accounts(format!(
                "line {}: expected name,login,password",
                i + 1
            )));
        };
        if i == 0 && name.trim() == "name" && login.trim() == "login" {
            continue;
        }
        if name.trim().is_empty() || login.trim().is_empty() {
            return Err(SimError::Accounts(format!(
                "line {}: empty name or login",
                i + 1
            )));
        }
        out.push(Account {
            name: name.trim().to_owned(),
            login: login.trim().to_owned(),
            password: password.to_owned(),
        });
    }
    if out.is_empty() {
        return Err(SimError::Accounts("no accounts in the file".into()));
    }
    Ok(out)
}

/// Reads a CSV file of accounts (see [`parse_csv`]).
pub fn read_csv(path: &Path) -> Result<Vec<Account>, SimError> {
    let text = std::fs::read_to_string(path).map_err(|e| SimError::Io {
        what: format!("reading {}", path.display()),
        source: e,
    })?;
    parse_csv(&text).map_err(|e| match e {
        SimError::Accounts(m) => SimError::Accounts(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// What [`register`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registered {
    pub created: usize,
    /// Existing devices whose password was set to the account's.
    pub updated: usize,
    pub unchanged: usize,
}

/// Creates the devices that are missing (name, login, password hash) and
/// gives existing ones the account's password when it differs; enables them.
/// Passwords are hashed on as many threads as there are cores.
pub async fn register(db: &dyn Database, accounts: &[Account]) -> Result<Registered, SimError> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut done = Registered::default();
    for chunk in accounts.chunks(threads.max(1)) {
        let mut hashes = Vec::with_capacity(chunk.len());
        for a in chunk {
            let existing = db
                .device_by_name(&a.name)
                .await
                .map_err(|e| SimError::Store(e.to_string()))?;
            let pw = a.password.clone();
            // Hash (and check an existing hash) on the blocking pool, in parallel.
            let task = tokio::task::spawn_blocking(move || {
                let secret = SecretString::from(pw);
                let same = existing.as_ref().is_some_and(|d| {
                    telegaz_auth::verify_password(&d.password_hash, &secret).unwrap_or(false)
                });
                let hash = if same {
                    None
                } else {
                    // The units' passwords stand in for generated ones (16
                    // random-looking characters), hashed as those are.
                    Some(telegaz_auth::hash_generated_password(&secret).map_err(|e| e.to_string()))
                };
                (existing, hash)
            });
            hashes.push((a, task));
        }
        for (a, task) in hashes {
            let (existing, hash) = task
                .await
                .map_err(|e| SimError::Accounts(format!("password hashing task failed: {e}")))?;
            let hash = hash
                .transpose()
                .map_err(|e| SimError::Accounts(format!("password hashing failed: {e}")))?;
            apply(db, a, existing, hash, &mut done).await?;
        }
    }
    Ok(done)
}

/// Creates or updates one device; `hash` is `None` when its password is already the account's.
async fn apply(
    db: &dyn Database,
    a: &Account,
    existing: Option<telegaz_domain::Device>,
    hash: Option<String>,
    done: &mut Registered,
) -> Result<(), SimError> {
    match existing {
        None => {
            let name = DeviceName::parse(&a.name)
                .map_err(|e| SimError::Accounts(format!("device name {:?}: {e}", a.name)))?;
            let login = DeviceName::parse(&a.login)
                .map_err(|e| SimError::Accounts(format!("login {:?}: {e}", a.login)))?;
            db.create_device(NewDevice {
                name,
                login,
                password_hash: hash.unwrap_or_default(),
                allowed_networks: vec![],
            })
            .await
            .map_err(|e| SimError::Store(e.to_string()))?;
            tracing::info!(device = %a.name, "simulated unit registered");
            done.created += 1;
        }
        Some(d) => {
            if d.login.as_str() != a.login {
                return Err(SimError::Accounts(format!(
                    "device {} exists with login {}, not {}",
                    a.name,
                    d.login.as_str(),
                    a.login
                )));
            }
            if hash.is_none() && d.enabled {
                done.unchanged += 1;
                return Ok(());
            }
            let update = DeviceUpdate {
                password_hash: hash,
                enabled: Some(true),
                ..DeviceUpdate::default()
            };
            db.update_device(d.id, update)
                .await
                .map_err(|e| SimError::Store(e.to_string()))?;
            tracing::info!(device = %a.name, "simulated unit: password set to the account's, enabled");
            done.updated += 1;
        }
    }
    Ok(())
}
