//! The raw-file store: where committed content lives, named by its SHA-256.

use std::fmt::Debug;
use std::io;
use std::path::Path;

use async_trait::async_trait;
use telegaz_domain::Sha256Digest;
use tokio::io::AsyncRead;

use crate::{Result, SpoolError};

/// Stored content being read.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// Where committed content lives: objects named by their SHA-256, written once,
/// never overwritten or deleted by the server.
///
/// Implementations: [`crate::LocalStore`] (a directory, the default) and
/// [`crate::S3Store`] (S3-compatible object storage).
#[async_trait]
pub trait RawStore: Debug + Send + Sync {
    /// Where the object with this digest is (a path or an `s3://` URL), for messages.
    fn location(&self, sha: &Sha256Digest) -> String;

    /// Store the content of the local file `path`, which is already durable on
    /// disk and whose digest and size are `sha` and `size`. Returns only once
    /// the store has confirmed that the bytes are durable; `false` when the
    /// content was already stored.
    async fn put_file(&self, path: &Path, sha: &Sha256Digest, size: u64) -> Result<bool>;

    /// Whether content with this digest is stored.
    async fn exists(&self, sha: &Sha256Digest) -> Result<bool>;

    /// The size of stored content; `None` when it is not stored.
    async fn size(&self, sha: &Sha256Digest) -> Result<Option<u64>>;

    /// Read stored content from byte `offset` on (an offset at or past the end
    /// reads nothing).
    async fn open(&self, sha: &Sha256Digest, offset: u64) -> Result<ObjectReader>;

    /// Every stored object, by digest (in no particular order), and the names
    /// of entries that are not Telegaz objects.
    async fn list(&self) -> Result<(Vec<Sha256Digest>, Vec<String>)>;

    /// The error to report when reading an object opened here failed midway.
    fn read_error(&self, sha: &Sha256Digest, source: io::Error) -> SpoolError;

    /// Whether several receivers may store into this store at once (an
    /// object store shared by a fleet of receivers). Then an object without
    /// a record may be another receiver's upload that is not recorded yet
    /// (or waits in its outage journal), and start-up reconciliation must
    /// not record it as recovered. A local directory belongs to one receiver.
    fn shared(&self) -> bool {
        false
    }
}
