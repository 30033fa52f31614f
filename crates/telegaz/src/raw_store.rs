//! The spool with the raw store chosen by `[storage]`.

use std::sync::Arc;

use anyhow::Context as _;
use telegaz_config::{Config, RawStorageKind, S3Config};
use telegaz_spool::{S3Settings, S3Store, Spool};

/// Open the spool under the data directory, its objects where `[storage]` says.
pub fn open_spool(config: &Config) -> anyhow::Result<Spool> {
    let dir = config.spool_dir();
    let spool = match config.storage.raw {
        RawStorageKind::Local => Spool::open(&dir),
        RawStorageKind::S3 => {
            let store = S3Store::new(&s3_settings(&config.storage.s3))
                .context("the object store settings ([storage.s3])")?;
            Spool::with_raw_store(&dir, Arc::new(store))
        }
    };
    spool.with_context(|| {
        format!(
            "cannot open the spool {}; check that the data directory is writable",
            dir.display()
        )
    })
}

/// Check that the object store can be used (`storage.raw = "s3"`); nothing to
/// check for the local directory.
pub async fn check(config: &Config) -> anyhow::Result<()> {
    if config.storage.raw != RawStorageKind::S3 {
        return Ok(());
    }
    let s3 = &config.storage.s3;
    S3Store::new(&s3_settings(s3))?
        .check()
        .await
        .with_context(|| {
            format!(
                "the object store (storage.raw = \"s3\", bucket {:?} at {}) cannot be used",
                s3.bucket, s3.endpoint
            )
        })
}

fn s3_settings(s3: &S3Config) -> S3Settings {
    S3Settings {
        endpoint: s3.endpoint.trim().to_owned(),
        bucket: s3.bucket.clone(),
        prefix: s3.prefix.clone(),
        region: s3.region.clone(),
        path_style: s3.path_style,
        access_key_id: s3.access_key_id.clone(),
        secret_access_key: s3
            .secret_access_key
            .as_ref()
            .map(|s| s.expose().to_owned().into()),
        session_token: s3
            .session_token
            .as_ref()
            .map(|s| s.expose().to_owned().into()),
        timeout: s3.timeout,
    }
}
