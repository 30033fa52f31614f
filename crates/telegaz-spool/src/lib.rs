//! The spool: where received bytes live, durably.
//!
//! Transfers in progress always stream to the local disk; where the committed
//! bytes then live is a [`RawStore`]: the local directory (the default,
//! [`LocalStore`]) or S3-compatible object storage ([`S3Store`]).
//!
//! Layout under the spool root:
//!
//! ```text
//! incoming/<upload-id>.part      bytes of a transfer in progress (server-made name)
//! objects/<aa>/<sha256>          every distinct content, stored once (local store)
//! ```
//!
//! In a bucket the objects have the same names, under the configured prefix:
//! `<prefix>objects/<aa>/<sha256>`.
//!
//! A transfer streams into `incoming/`, hashing as it goes. [`Spool::commit`]
//! fsyncs the file and hands it to the raw store, which returns only once the
//! bytes are durable there (local: hard link and directory fsync; S3: the PUT
//! confirmed with the SHA-256 checked by the server and a HEAD). The caller
//! records the upload in the database and only then calls [`Spool::remove_temp`];
//! so at every instant either the temporary file or the object (or both) holds
//! the bytes, and a crash or an unreachable object store at any point leaves
//! something start-up reconciliation can account for.
//!
//! Names clients send never reach the file system: they are metadata only.

mod local;
mod raw;
mod s3;
#[cfg(feature = "testing")]
pub mod testing;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use telegaz_domain::Sha256Digest;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

pub use local::LocalStore;
pub use raw::{ObjectReader, RawStore};
pub use s3::{S3Settings, S3Store};

/// Failures of the spool, with the path involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spool file {path} is not what was expected: {detail}")]
    Inconsistent { path: PathBuf, detail: String },
    /// The object store refused or could not be reached. Received bytes stay
    /// in the spool's `incoming/` directory until it can be written again.
    #[error(
        "object store: {doing} {location}: {detail}; check that it is reachable and the \
         [storage.s3] settings (endpoint, bucket, region, credentials); received files wait \
         in the spool's incoming directory until it is back"
    )]
    ObjectStore {
        doing: &'static str,
        location: String,
        detail: String,
    },
    /// The object store holds something other than what its name promises.
    #[error("stored object {location} is not what was expected: {detail}")]
    ObjectInconsistent { location: String, detail: String },
    /// The settings of the object store cannot be used.
    #[error("object store settings: {0}")]
    Settings(String),
}

impl SpoolError {
    fn io(path: &Path, source: io::Error) -> Self {
        SpoolError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// True when the error means the disk is full (the client should hear 452).
    pub fn is_out_of_space(&self) -> bool {
        match self {
            SpoolError::Io { source, .. } => {
                source.kind() == io::ErrorKind::StorageFull
                    || source.kind() == io::ErrorKind::QuotaExceeded
            }
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, SpoolError>;

/// Result of committing a temporary file into the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// False when identical content was already stored (the bytes are kept once).
    pub newly_stored: bool,
}

/// The spool: temporary files on the local disk, committed objects in a
/// [`RawStore`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    incoming: PathBuf,
    objects: Arc<dyn RawStore>,
}

impl Spool {
    /// Open (creating if needed) the spool under `root`, objects in `root/objects`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let objects = Arc::new(LocalStore::open(root.join("objects"))?);
        Self::with_raw_store(root, objects)
    }

    /// Open the spool under `root` for temporary files, with committed objects in `objects`.
    pub fn with_raw_store(root: impl Into<PathBuf>, objects: Arc<dyn RawStore>) -> Result<Self> {
        let root = root.into();
        let incoming = Self::open_incoming(&root)?;
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(Spool {
            root,
            incoming,
            objects,
        })
    }

    fn open_incoming(root: &Path) -> Result<PathBuf> {
        let incoming = root.join("incoming");
        for dir in [root, &incoming] {
            std::fs::create_dir_all(dir).map_err(|e| SpoolError::io(dir, e))?;
        }
        for dir in [root, &incoming] {
            sync_dir(dir)?;
        }
        Ok(incoming)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where committed objects are kept.
    pub fn raw_store(&self) -> &Arc<dyn RawStore> {
        &self.objects
    }

    pub fn temp_path(&self, upload_id: i64) -> PathBuf {
        self.incoming.join(format!("{upload_id}.part"))
    }

    /// Where the object with this digest is (a path or an `s3://` URL), for messages.
    pub fn object_location(&self, sha: &Sha256Digest) -> String {
        self.objects.location(sha)
    }

    /// Start a temporary file for an upload. Fails if one exists already.
    pub async fn create_temp(&self, upload_id: i64) -> Result<TempFile> {
        let path = self.temp_path(upload_id);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| SpoolError::io(&path, e))?;
        Ok(TempFile {
            upload_id,
            path,
            file,
            hasher: Sha256::new(),
            size: 0,
            in_flight: 0,
            unsure: false,
            synced: false,
        })
    }

    /// Make a temporary file's bytes durable and store them as an object.
    /// The temporary file stays until [`Spool::remove_temp`].
    pub async fn commit(&self, mut temp: TempFile) -> Result<Committed> {
        temp.sync().await?;
        if temp.unsure {
            drop(temp.file);
            return self.commit_existing_file(&temp.path).await;
        }
        let sha256 = Sha256Digest(temp.hasher.finalize().into());
        let size = temp.size;
        drop(temp.file);
        let newly_stored = self.objects.put_file(&temp.path, &sha256, size).await?;
        Ok(Committed {
            sha256,
            size,
            newly_stored,
        })
    }

    /// Hash an existing temporary file (left by a crash, or by an object store
    /// that was away) and store it as an object.
    pub async fn commit_existing_temp(&self, upload_id: i64) -> Result<Committed> {
        let path = self.temp_path(upload_id);
        self.commit_existing_file(&path).await
    }

    async fn commit_existing_file(&self, path: &Path) -> Result<Committed> {
        let file = File::open(path)
            .await
            .map_err(|e| SpoolError::io(path, e))?;
        file.sync_all().await.map_err(|e| SpoolError::io(path, e))?;
        let (sha256, size) = hash_reader(file)
            .await
            .map_err(|e| SpoolError::io(path, e))?;
        let newly_stored = self.objects.put_file(path, &sha256, size).await?;
        Ok(Committed {
            sha256,
            size,
            newly_stored,
        })
    }

    /// Remove an upload's temporary file once its record is final.
    pub async fn remove_temp(&self, upload_id: i64) -> Result<()> {
        let path = self.temp_path(upload_id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SpoolError::io(&path, e)),
        }
    }

    pub async fn object_exists(&self, sha: &Sha256Digest) -> Result<bool> {
        self.objects.exists(sha).await
    }

    /// The size of stored content; `None` when it is not stored.
    pub async fn object_size(&self, sha: &Sha256Digest) -> Result<Option<u64>> {
        self.objects.size(sha).await
    }

    /// Open stored content for reading.
    pub async fn open_object(&self, sha: &Sha256Digest) -> Result<ObjectReader> {
        self.objects.open(sha, 0).await
    }

    /// Open stored content for reading from byte `offset` on.
    pub async fn open_object_at(&self, sha: &Sha256Digest, offset: u64) -> Result<ObjectReader> {
        self.objects.open(sha, offset).await
    }

    /// Read the first `len` bytes of stored content.
    pub async fn read_prefix(&self, sha: &Sha256Digest, len: u64) -> Result<Vec<u8>> {
        let file = self.open_object(sha).await?;
        let mut buf = Vec::new();
        file.take(len)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| self.read_error(sha, e))?;
        if (buf.len() as u64) < len {
            return Err(SpoolError::ObjectInconsistent {
                location: self.object_location(sha),
                detail: format!("expected at least {len} bytes, found {}", buf.len()),
            });
        }
        Ok(buf)
    }

    /// The error of a failed read of stored content.
    pub fn read_error(&self, sha: &Sha256Digest, source: io::Error) -> SpoolError {
        self.objects.read_error(sha, source)
    }

    /// Upload ids of temporary files present now (left over after a crash when
    /// called at start-up). Files with other names are reported separately.
    pub fn list_temps(&self) -> Result<(Vec<i64>, Vec<PathBuf>)> {
        let mut ids = Vec::new();
        let mut strangers = Vec::new();
        let rd =
            std::fs::read_dir(&self.incoming).map_err(|e| SpoolError::io(&self.incoming, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| SpoolError::io(&self.incoming, e))?;
            let path = entry.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(|n| n.parse::<i64>().ok());
            match id {
                Some(id) => ids.push(id),
                None => strangers.push(path),
            }
        }
        ids.sort_unstable();
        Ok((ids, strangers))
    }

    /// Every stored object, by digest, sorted. Entries that are not named by a
    /// digest are returned separately (as paths or `s3://` URLs).
    pub async fn list_objects(&self) -> Result<(Vec<Sha256Digest>, Vec<String>)> {
        let (mut digests, strangers) = self.objects.list().await?;
        digests.sort_unstable();
        Ok((digests, strangers))
    }

    /// Hash stored content again (for verification).
    pub async fn hash_object(&self, sha: &Sha256Digest) -> Result<(Sha256Digest, u64)> {
        let file = self.open_object(sha).await?;
        hash_reader(file).await.map_err(|e| self.read_error(sha, e))
    }
}

/// A transfer in progress: bytes go to disk and into the running hash.
#[derive(Debug)]
pub struct TempFile {
    upload_id: i64,
    path: PathBuf,
    file: File,
    hasher: Sha256,
    /// Bytes handed to the file (and hashed), the last write's included.
    size: u64,
    /// Of those, the bytes of the last write, which a blocking thread may
    /// still be writing: its outcome is known at the next write or sync.
    in_flight: u64,
    /// A failed write could not be undone, or bytes already hashed did not
    /// reach the file: the running hash may not describe the file.
    unsure: bool,
    /// Every byte written is durable: the last thing done was a successful
    /// [`TempFile::sync`] (commit after the FTP engine's sync does not sync
    /// again: one `fsync` and one hand-off to a blocking thread fewer).
    synced: bool,
}

impl TempFile {
    pub fn upload_id(&self) -> i64 {
        self.upload_id
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make the bytes written so far durable (flush and `fsync`). [`Spool::commit`]
    /// does it too; calling this first lets the caller overlap the wait with
    /// other work (the FTP engine's check that the client is still there).
    pub async fn sync(&mut self) -> Result<()> {
        if self.synced {
            return Ok(());
        }
        self.wait_in_flight().await?;
        self.file
            .sync_all()
            .await
            .map_err(|e| SpoolError::io(&self.path, e))?;
        self.synced = true;
        Ok(())
    }

    /// Append bytes. The write goes to a blocking thread and this returns
    /// once it is handed over, so that the caller reads the next bytes from
    /// the network while these go to disk; the next call (or [`Self::sync`],
    /// which [`Spool::commit`] calls) waits for it. On failure (a full disk)
    /// the file is cut back to the bytes known written, so that what it
    /// holds and its size agree, and its hash is computed again at commit.
    pub async fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.synced = false;
        self.wait_in_flight().await?;
        let written = match self.injected_disk_full(buf).await {
            Some(e) => Err(e),
            // tokio's `File` copies the bytes and hands them to a blocking
            // thread (up to 2 MiB at once: the engine writes 64 KiB); a
            // failure is told by the next operation on the file.
            None => self.file.write_all(buf).await,
        };
        if let Err(e) = written {
            self.cut_back().await;
            return Err(SpoolError::io(&self.path, e));
        }
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        self.in_flight = buf.len() as u64;
        Ok(())
    }

    /// Wait until the last write has reached the file; if it failed, cut
    /// its bytes off (they are in the running hash: hashed again at commit).
    async fn wait_in_flight(&mut self) -> Result<()> {
        let flushed = self.file.flush().await;
        let in_flight = std::mem::take(&mut self.in_flight);
        if let Err(e) = flushed {
            self.size -= in_flight;
            if in_flight > 0 {
                self.unsure = true;
            }
            self.cut_back().await;
            return Err(SpoolError::io(&self.path, e));
        }
        Ok(())
    }

    /// Some bytes of a failed write may have landed: cut the file back to
    /// `size`, or mark it for hashing again at commit.
    async fn cut_back(&mut self) {
        let cut = match self.file.set_len(self.size).await {
            Ok(()) => self
                .file
                .seek(io::SeekFrom::Start(self.size))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(cut) = cut {
            tracing::error!(path = %self.path.display(), error = %cut, "cannot cut a spool file back after a failed write; it is hashed again at commit");
            self.unsure = true;
        }
    }
}

impl TempFile {
    /// Debug builds only, for tests that cannot mount a small file system:
    /// while a file named [`FAULT_DISK_FULL`] exists in the spool's root,
    /// writes behave as on a full disk (half the bytes land, then ENOSPC).
    #[cfg(debug_assertions)]
    async fn injected_disk_full(&mut self, buf: &[u8]) -> Option<io::Error> {
        let marker = self.path.parent()?.parent()?.join(FAULT_DISK_FULL);
        if !tokio::fs::try_exists(&marker).await.unwrap_or(false) {
            return None;
        }
        let half = &buf[..buf.len() / 2];
        let landed = match self.file.write_all(half).await {
            Ok(()) => self.file.flush().await,
            Err(e) => Err(e),
        };
        Some(
            landed
                .err()
                .unwrap_or_else(|| io::Error::from(io::ErrorKind::StorageFull)),
        )
    }

    #[cfg(not(debug_assertions))]
    async fn injected_disk_full(&mut self, _buf: &[u8]) -> Option<io::Error> {
        None
    }
}

/// See [`TempFile::injected_disk_full`] (debug builds only).
pub const FAULT_DISK_FULL: &str = "FAULT_DISK_FULL";

async fn hash_reader(
    mut file: impl tokio::io::AsyncRead + Unpin,
) -> io::Result<(Sha256Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Sha256Digest(hasher.finalize().into()), size))
}

/// fsync a directory so that entries created in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SpoolError::io(dir, e))
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(join) => Err(SpoolError::Io {
            path: PathBuf::new(),
            source: io::Error::other(format!("blocking spool task failed: {join}")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha_of(data: &[u8]) -> Sha256Digest {
        Sha256Digest(Sha256::digest(data).into())
    }

    /// A temporary file on `/dev/full`: every write fails on the blocking
    /// thread (ENOSPC), after `write` has returned.
    async fn on_dev_full() -> TempFile {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .await
            .unwrap();
        TempFile {
            upload_id: 1,
            path: PathBuf::from("/dev/full"),
            file,
            hasher: Sha256::new(),
            size: 0,
            in_flight: 0,
            unsure: false,
            synced: false,
        }
    }

    #[tokio::test]
    async fn a_write_that_fails_after_it_was_handed_over_is_told_next_and_not_counted() {
        let mut t = on_dev_full().await;
        t.write(b"first").await.unwrap();
        assert_eq!(t.size(), 5, "handed over");
        let e = t.write(b"second").await.unwrap_err();
        assert!(e.to_string().contains("/dev/full"), "{e}");
        assert_eq!(t.size(), 0, "neither write reached the file");
        assert!(t.unsure, "the running hash holds bytes that did not land");
        // And the last write of a transfer is told by the sync before 226.
        let mut t = on_dev_full().await;
        t.write(b"only").await.unwrap();
        assert!(t.sync().await.is_err());
        assert_eq!(t.size(), 0);
    }

    #[tokio::test]
    async fn commit_stores_content_once_and_keeps_temp_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().join("spool")).unwrap();

        let mut t = spool.create_temp(1).await.unwrap();
        t.write(b"hello ").await.unwrap();
        t.write(b"world").await.unwrap();
        let c = spool.commit(t).await.unwrap();
        assert_eq!(c.size, 11);
        assert_eq!(c.sha256, sha_of(b"hello world"));
        assert!(c.newly_stored);
        assert!(
            spool.temp_path(1).exists(),
            "temp stays until the record is final"
        );
        spool.remove_temp(1).await.unwrap();
        assert!(!spool.temp_path(1).exists());

        let mut t = spool.create_temp(2).await.unwrap();
        t.write(b"hello world").await.unwrap();
        let c2 = spool.commit(t).await.unwrap();
        assert!(!c2.newly_stored, "same content is stored once");
        spool.remove_temp(2).await.unwrap();

        let (objs, strangers) = spool.list_objects().await.unwrap();
        assert_eq!(objs, vec![c.sha256]);
        assert!(strangers.is_empty());
        assert_eq!(spool.read_prefix(&c.sha256, 5).await.unwrap(), b"hello");
        assert_eq!(spool.hash_object(&c.sha256).await.unwrap(), (c.sha256, 11));
    }

    #[tokio::test]
    async fn temp_names_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let _t = spool.create_temp(7).await.unwrap();
        assert!(spool.create_temp(7).await.is_err());
    }

    #[tokio::test]
    async fn leftover_temps_are_listed_and_committable() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut t = spool.create_temp(42).await.unwrap();
        t.write(b"partial da").await.unwrap();
        drop(t); // the process "dies" here
        std::fs::write(dir.path().join("incoming").join("junk.tmp"), b"x").unwrap();
        let (ids, strangers) = spool.list_temps().unwrap();
        assert_eq!(ids, vec![42]);
        assert_eq!(strangers.len(), 1);
        let c = spool.commit_existing_temp(42).await.unwrap();
        assert_eq!(c.sha256, sha_of(b"partial da"));
        assert_eq!(c.size, 10);
    }

    #[tokio::test]
    async fn a_failed_write_leaves_file_size_and_hash_agreeing() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut t = spool.create_temp(5).await.unwrap();
        t.write(b"first part, ").await.unwrap();
        std::fs::write(dir.path().join(FAULT_DISK_FULL), b"").unwrap();
        let err = t.write(b"this does not fit").await.unwrap_err();
        assert!(err.is_out_of_space(), "{err}");
        assert_eq!(t.size(), 12);
        // Half the bytes landed before the failure; they are cut off again.
        assert_eq!(std::fs::metadata(spool.temp_path(5)).unwrap().len(), 12);
        let c = spool.commit(t).await.unwrap();
        assert_eq!((c.sha256, c.size), (sha_of(b"first part, "), 12));
        assert_eq!(spool.hash_object(&c.sha256).await.unwrap(), (c.sha256, 12));
    }

    #[tokio::test]
    async fn read_prefix_longer_than_content_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut t = spool.create_temp(1).await.unwrap();
        t.write(b"abc").await.unwrap();
        let c = spool.commit(t).await.unwrap();
        assert!(spool.read_prefix(&c.sha256, 4).await.is_err());
    }
}
