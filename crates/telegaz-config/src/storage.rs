//! `[storage]`: where the bytes of received files are kept once committed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// Where committed raw files live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawStorageKind {
    /// `<data_dir>/spool/objects` (the default).
    #[default]
    Local,
    /// S3-compatible object storage, `[storage.s3]`.
    S3,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `"local"` (default) or `"s3"`.
    pub raw: RawStorageKind,
    /// How often `serve` tries again to store uploads whose bytes the object
    /// store did not take (they wait in the spool's `incoming/` meanwhile).
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            raw: RawStorageKind::Local,
            retry_interval: Duration::from_secs(30),
            s3: S3Config::default(),
        }
    }
}

/// `[storage.s3]`: the bucket, used when `storage.raw = "s3"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// `https://s3.example.ru`, `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub bucket: String,
    /// Put before every object name, e.g. `telegaz/`; empty by default.
    pub prefix: String,
    pub region: String,
    /// `https://host/bucket/key` (default; what MinIO, Ceph and most
    /// S3-compatible servers want) rather than `https://bucket.host/key`.
    pub path_style: bool,
    /// Access key; also `TELEGAZ_STORAGE__S3__ACCESS_KEY_ID` or `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Secret key. Prefer `TELEGAZ_STORAGE__S3__SECRET_ACCESS_KEY` (or
    /// `AWS_SECRET_ACCESS_KEY`) to writing it in a file.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials (`AWS_SESSION_TOKEN`).
    #[serde(skip_serializing)]
    pub session_token: Option<Secret>,
    /// The longest one request to the object store may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            bucket: String::new(),
            prefix: String::new(),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Environment variables read as they are (figment would turn `123456` into a number).
pub(crate) const ENV_SECRETS: &[(&str, &str)] = &[
    (
        "TELEGAZ_STORAGE__S3__ACCESS_KEY_ID",
        "storage.s3.access_key_id",
    ),
    (
        "TELEGAZ_STORAGE__S3__SECRET_ACCESS_KEY",
        "storage.s3.secret_access_key",
    ),
    (
        "TELEGAZ_STORAGE__S3__SESSION_TOKEN",
        "storage.s3.session_token",
    ),
];

/// The AWS tools' variables, below the file and `TELEGAZ_*` in precedence.
pub(crate) const ENV_AWS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "storage.s3.access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "storage.s3.secret_access_key"),
    ("AWS_SESSION_TOKEN", "storage.s3.session_token"),
];

/// The largest object one S3 PUT may carry.
const S3_MAX_PUT: u64 = 5 * 1024 * 1024 * 1024;

impl StorageConfig {
    pub(crate) fn validate(&self, max_file_size: u64) -> Result<(), String> {
        if self.retry_interval.is_zero() {
            return Err("storage.retry_interval must be greater than zero".into());
        }
        if self.raw != RawStorageKind::S3 {
            return Ok(());
        }
        let s3 = &self.s3;
        let endpoint = s3.endpoint.trim();
        if endpoint.is_empty() {
            return Err(
                "storage.raw = \"s3\" needs storage.s3.endpoint (e.g. https://s3.example.ru or http://127.0.0.1:9000)"
                    .into(),
            );
        }
        let rest = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            return Err(format!(
                "storage.s3.endpoint {endpoint:?} must be an http:// or https:// URL with a host"
            ));
        }
        let b = &s3.bucket;
        let bucket_ok = (3..=63).contains(&b.len())
            && b.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && b.starts_with(|c: char| c.is_ascii_alphanumeric())
            && b.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(format!(
                "storage.s3.bucket {b:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' and '.'); create the bucket and name it here"
            ));
        }
        if s3.region.trim().is_empty() {
            return Err(
                "storage.s3.region must not be empty (us-east-1 suits most S3-compatible servers)"
                    .into(),
            );
        }
        if s3.prefix.contains("//") || s3.prefix.contains('\\') {
            return Err(format!(
                "storage.s3.prefix {:?} must be like telegaz/ or site-a/raw/",
                s3.prefix
            ));
        }
        if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
            return Err("storage.s3.access_key_id and storage.s3.secret_access_key go together (set TELEGAZ_STORAGE__S3__SECRET_ACCESS_KEY for the secret)".into());
        }
        if s3.timeout.is_zero() {
            return Err("storage.s3.timeout must be greater than zero".into());
        }
        if max_file_size > S3_MAX_PUT {
            return Err(format!(
                "ftp.max_file_size {max_file_size} is more than one S3 PUT can store (5 GiB); lower it"
            ));
        }
        Ok(())
    }
}
