//! Objects in a local directory: `objects/<aa>/<sha256>`, hard-linked from the
//! temporary file and made durable with a directory fsync.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use telegaz_domain::Sha256Digest;
use tokio::fs::File;
use tokio::io::AsyncSeekExt;

use crate::raw::{ObjectReader, RawStore};
use crate::{Result, SpoolError, run_blocking, sync_dir};

/// The local-directory raw store (the default): exactly the layout Telegaz has
/// always had under `<data_dir>/spool/objects`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    objects: PathBuf,
}

impl LocalStore {
    /// Open (creating if needed) the object directory `objects`.
    pub fn open(objects: impl Into<PathBuf>) -> Result<Self> {
        let objects = objects.into();
        std::fs::create_dir_all(&objects).map_err(|e| SpoolError::io(&objects, e))?;
        sync_dir(&objects)?;
        if let Some(parent) = objects.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(LocalStore { objects })
    }

    pub fn object_path(&self, sha: &Sha256Digest) -> PathBuf {
        let hex = sha.to_hex();
        self.objects.join(&hex[..2]).join(hex)
    }
}

#[async_trait]
impl RawStore for LocalStore {
    fn location(&self, sha: &Sha256Digest) -> String {
        self.object_path(sha).display().to_string()
    }

    async fn put_file(&self, temp: &Path, sha: &Sha256Digest, size: u64) -> Result<bool> {
        let obj = self.object_path(sha);
        let dir = obj
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| self.objects.clone());
        let temp = temp.to_owned();
        let objects = self.objects.clone();
        run_blocking(move || {
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(|e| SpoolError::io(&dir, e))?;
                sync_dir(&objects)?;
            }
            let newly = match std::fs::hard_link(&temp, &obj) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let existing = std::fs::metadata(&obj).map_err(|e| SpoolError::io(&obj, e))?;
                    if existing.len() != size {
                        return Err(SpoolError::Inconsistent {
                            path: obj,
                            detail: format!(
                                "object has {} bytes, content with this SHA-256 has {size}",
                                existing.len()
                            ),
                        });
                    }
                    false
                }
                Err(e) => return Err(SpoolError::io(&obj, e)),
            };
            sync_dir(&dir)?;
            Ok(newly)
        })
        .await
    }

    async fn exists(&self, sha: &Sha256Digest) -> Result<bool> {
        let path = self.object_path(sha);
        tokio::fs::try_exists(&path)
            .await
            .map_err(|e| SpoolError::io(&path, e))
    }

    async fn size(&self, sha: &Sha256Digest) -> Result<Option<u64>> {
        let path = self.object_path(sha);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SpoolError::io(&path, e)),
        }
    }

    async fn open(&self, sha: &Sha256Digest, offset: u64) -> Result<ObjectReader> {
        let path = self.object_path(sha);
        let mut file = File::open(&path)
            .await
            .map_err(|e| SpoolError::io(&path, e))?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .await
                .map_err(|e| SpoolError::io(&path, e))?;
        }
        Ok(Box::new(file))
    }

    async fn list(&self) -> Result<(Vec<Sha256Digest>, Vec<String>)> {
        let objects = self.objects.clone();
        run_blocking(move || list_dir(&objects)).await
    }

    fn read_error(&self, sha: &Sha256Digest, source: io::Error) -> SpoolError {
        SpoolError::io(&self.object_path(sha), source)
    }
}

fn list_dir(objects: &Path) -> Result<(Vec<Sha256Digest>, Vec<String>)> {
    let mut digests = Vec::new();
    let mut strangers = Vec::new();
    let top = std::fs::read_dir(objects).map_err(|e| SpoolError::io(objects, e))?;
    for sub in top {
        let sub = sub.map_err(|e| SpoolError::io(objects, e))?;
        let sub_path = sub.path();
        if !sub_path.is_dir() {
            strangers.push(sub_path.display().to_string());
            continue;
        }
        let rd = std::fs::read_dir(&sub_path).map_err(|e| SpoolError::io(&sub_path, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| SpoolError::io(&sub_path, e))?;
            let path = entry.path();
            match path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<Sha256Digest>().ok())
            {
                Some(d) if sub.file_name().to_str() == Some(&d.to_hex()[..2]) => digests.push(d),
                _ => strangers.push(path.display().to_string()),
            }
        }
    }
    Ok((digests, strangers))
}
