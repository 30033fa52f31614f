//! Objects in S3-compatible object storage: `<prefix>objects/<aa>/<sha256>` in
//! one bucket. Requests are signed with AWS Signature V4 (rusty-s3) and sent
//! over reqwest (rustls with aws-lc-rs).
//!
//! A PUT carries the content's SHA-256 in `x-amz-checksum-sha256`, which the
//! server checks against the bytes it received, and is followed by a HEAD that
//! must show the object with its size: only then is the object durable for
//! Telegaz (and the client may hear `226`).

use std::io;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use futures::TryStreamExt as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, RANGE};
use rusty_s3::actions::{GetObject, HeadBucket, HeadObject, ListObjectsV2, PutObject};
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use secrecy::{ExposeSecret as _, SecretString};
use telegaz_domain::{Sha256Digest, error_chain};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::raw::{ObjectReader, RawStore};
use crate::{Result, SpoolError};

/// How long a signed request stays valid (it is sent at once).
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);
/// The header that carries the SHA-256 of a PUT's body (base64), checked by the server.
const CHECKSUM_HEADER: &str = "x-amz-checksum-sha256";

/// Where the bucket is and how to sign in. `Debug` never shows the secrets.
#[derive(Clone)]
pub struct S3Settings {
    /// `https://s3.example.ru` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub bucket: String,
    /// Put before every object name; empty, or ends with `/` (added if missing).
    pub prefix: String,
    pub region: String,
    /// `https://host/bucket/key` (true) rather than `https://bucket.host/key`.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    pub session_token: Option<SecretString>,
    /// The longest one request may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[REDACTED]"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The S3-compatible raw store. `Debug` never shows the credentials.
pub struct S3Store {
    bucket: Bucket,
    credentials: Option<Credentials>,
    prefix: String,
    endpoint: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket.name())
            .field("region", &self.bucket.region())
            .field("prefix", &self.prefix)
            .field("signed", &self.credentials.is_some())
            .finish()
    }
}

/// What a HEAD of an object shows.
struct Head {
    size: u64,
    /// `x-amz-checksum-sha256`, when the server keeps checksums.
    checksum: Option<String>,
}

impl S3Store {
    /// Build the store; nothing is sent yet (see [`S3Store::check`]).
    pub fn new(settings: &S3Settings) -> Result<Self> {
        let endpoint: url::Url = settings.endpoint.parse().map_err(|e| {
            SpoolError::Settings(format!(
                "storage.s3.endpoint {:?} is not a URL ({e}); write it like https://s3.example.ru or http://127.0.0.1:9000",
                settings.endpoint
            ))
        })?;
        let style = if settings.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|e| {
            SpoolError::Settings(format!(
                "cannot address bucket {:?} at {}: {e}; check storage.s3.endpoint and storage.s3.bucket \
                 (an IP address as endpoint needs storage.s3.path_style = true)",
                settings.bucket, settings.endpoint
            ))
        })?;
        let credentials = match (&settings.access_key_id, &settings.secret_access_key) {
            (Some(key), Some(secret)) => Some(match &settings.session_token {
                Some(token) => Credentials::new_with_token(
                    key.clone(),
                    secret.expose_secret(),
                    token.expose_secret(),
                ),
                None => Credentials::new(key.clone(), secret.expose_secret()),
            }),
            (None, None) => None,
            _ => {
                return Err(SpoolError::Settings(
                    "set both storage.s3.access_key_id and storage.s3.secret_access_key, or neither (anonymous access)".into(),
                ));
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .timeout(settings.timeout)
            .build()
            .map_err(|e| SpoolError::Settings(format!("cannot set up the HTTP client: {e}")))?;
        let mut prefix = settings.prefix.trim_start_matches('/').to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(S3Store {
            bucket,
            credentials,
            prefix,
            endpoint: settings.endpoint.clone(),
            client,
        })
    }

    fn key(&self, sha: &Sha256Digest) -> String {
        let hex = sha.to_hex();
        format!("{}objects/{}/{hex}", self.prefix, &hex[..2])
    }

    fn objects_prefix(&self) -> String {
        format!("{}objects/", self.prefix)
    }

    fn failure(&self, doing: &'static str, location: String, detail: String) -> SpoolError {
        SpoolError::ObjectStore {
            doing,
            location,
            detail,
        }
    }

    /// A request that did not get an answer, without its signed URL.
    fn unreachable(&self, doing: &'static str, location: String, e: reqwest::Error) -> SpoolError {
        let e = e.without_url();
        let detail = if e.is_connect() {
            format!("cannot connect to {} ({})", self.endpoint, error_chain(&e))
        } else if e.is_timeout() {
            format!(
                "no answer from {} in time ({})",
                self.endpoint,
                error_chain(&e)
            )
        } else {
            format!("request to {} failed: {}", self.endpoint, error_chain(&e))
        };
        self.failure(doing, location, detail)
    }

    /// An answer other than success, with the server's error code and message.
    async fn refused(
        &self,
        doing: &'static str,
        location: String,
        response: reqwest::Response,
    ) -> SpoolError {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        self.failure(doing, location, describe_refusal(status, &body))
    }

    /// Check that the bucket can be reached with these settings.
    pub async fn check(&self) -> Result<()> {
        let location = format!("s3://{}", self.bucket.name());
        let url = HeadBucket::new(&self.bucket, self.credentials.as_ref()).sign(SIGNED_FOR);
        let response = self
            .client
            .head(url)
            .send()
            .await
            .map_err(|e| self.unreachable("checking the bucket", location.clone(), e))?;
        if response.status().is_success() {
            return Ok(());
        }
        let detail = match response.status() {
            StatusCode::NOT_FOUND => {
                "the bucket does not exist; create it or fix storage.s3.bucket".to_owned()
            }
            StatusCode::FORBIDDEN => {
                "access denied; check the credentials and the bucket's policy".to_owned()
            }
            other => format!("HTTP {other}"),
        };
        Err(self.failure("checking the bucket", location, detail))
    }

    async fn head(&self, sha: &Sha256Digest, doing: &'static str) -> Result<Option<Head>> {
        let key = self.key(sha);
        let mut action = HeadObject::new(&self.bucket, self.credentials.as_ref(), &key);
        action
            .headers_mut()
            .insert("x-amz-checksum-mode", "ENABLED");
        let url = action.sign(SIGNED_FOR);
        let response = self
            .client
            .head(url)
            .header("x-amz-checksum-mode", "ENABLED")
            .send()
            .await
            .map_err(|e| self.unreachable(doing, self.location(sha), e))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let headers = response.headers();
                let size = headers
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        self.failure(
                            doing,
                            self.location(sha),
                            "the answer to HEAD has no Content-Length".into(),
                        )
                    })?;
                let checksum = headers
                    .get(CHECKSUM_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(Some(Head { size, checksum }))
            }
            _ => Err(self.refused(doing, self.location(sha), response).await),
        }
    }

    /// Compare what a HEAD shows with the content we hold.
    fn verify(&self, sha: &Sha256Digest, size: u64, head: &Head, ours: &str) -> Result<()> {
        if head.size != size {
            return Err(SpoolError::ObjectInconsistent {
                location: self.location(sha),
                detail: format!(
                    "the object store holds {} bytes, content with this SHA-256 has {size}",
                    head.size
                ),
            });
        }
        if let Some(theirs) = &head.checksum
            && theirs != ours
        {
            return Err(SpoolError::ObjectInconsistent {
                location: self.location(sha),
                detail: format!("the object store's SHA-256 is {theirs}, the content's is {ours}"),
            });
        }
        Ok(())
    }

    async fn list_page(
        &self,
        token: Option<&str>,
    ) -> Result<rusty_s3::actions::ListObjectsV2Response> {
        let location = format!("s3://{}/{}", self.bucket.name(), self.objects_prefix());
        let mut action = ListObjectsV2::new(&self.bucket, self.credentials.as_ref());
        action.with_prefix(self.objects_prefix());
        if let Some(token) = token {
            action.with_continuation_token(token.to_owned());
        }
        let url = action.sign(SIGNED_FOR);
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable("listing", location.clone(), e))?;
        if !response.status().is_success() {
            return Err(self.refused("listing", location, response).await);
        }
        let body = response
            .text()
            .await
            .map_err(|e| self.unreachable("listing", location.clone(), e))?;
        ListObjectsV2::parse_response(&body).map_err(|e| {
            self.failure(
                "listing",
                location,
                format!("the answer cannot be read: {e}"),
            )
        })
    }
}

#[async_trait]
impl RawStore for S3Store {
    /// A bucket (prefix) is where a fleet of receivers keeps its raw files.
    fn shared(&self) -> bool {
        true
    }

    fn location(&self, sha: &Sha256Digest) -> String {
        format!("s3://{}/{}", self.bucket.name(), self.key(sha))
    }

    async fn put_file(&self, path: &Path, sha: &Sha256Digest, size: u64) -> Result<bool> {
        let checksum = base64::engine::general_purpose::STANDARD.encode(sha.0);
        if let Some(head) = self.head(sha, "checking for").await? {
            self.verify(sha, size, &head, &checksum)?;
            return Ok(false);
        }
        let key = self.key(sha);
        let mut action = PutObject::new(&self.bucket, self.credentials.as_ref(), &key);
        action
            .headers_mut()
            .insert(CHECKSUM_HEADER, checksum.clone());
        let url = action.sign(SIGNED_FOR);
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| SpoolError::io(path, e))?;
        let body = if size == 0 {
            reqwest::Body::from(Vec::new())
        } else {
            reqwest::Body::wrap_stream(ReaderStream::with_capacity(file, 256 * 1024))
        };
        let response = self
            .client
            .put(url)
            .header(CONTENT_LENGTH, size)
            .header(CHECKSUM_HEADER, &checksum)
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable("writing", self.location(sha), e))?;
        if !response.status().is_success() {
            return Err(self.refused("writing", self.location(sha), response).await);
        }
        // The PUT was answered with success; see it stored before saying so.
        match self.head(sha, "confirming").await? {
            Some(head) => self.verify(sha, size, &head, &checksum)?,
            None => {
                return Err(self.failure(
                    "confirming",
                    self.location(sha),
                    "the object is not there after a successful PUT".into(),
                ));
            }
        }
        Ok(true)
    }

    async fn exists(&self, sha: &Sha256Digest) -> Result<bool> {
        Ok(self.head(sha, "looking for").await?.is_some())
    }

    async fn size(&self, sha: &Sha256Digest) -> Result<Option<u64>> {
        Ok(self.head(sha, "looking for").await?.map(|h| h.size))
    }

    async fn open(&self, sha: &Sha256Digest, offset: u64) -> Result<ObjectReader> {
        let key = self.key(sha);
        let url = GetObject::new(&self.bucket, self.credentials.as_ref(), &key).sign(SIGNED_FOR);
        let mut request = self.client.get(url);
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unreachable("reading", self.location(sha), e))?;
        match response.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
            StatusCode::RANGE_NOT_SATISFIABLE => return Ok(Box::new(tokio::io::empty())),
            _ => return Err(self.refused("reading", self.location(sha), response).await),
        }
        let stream = response.bytes_stream().map_err(|e| {
            io::Error::other(format!(
                "the download broke off: {}",
                error_chain(&e.without_url())
            ))
        });
        Ok(Box::new(StreamReader::new(stream)))
    }

    async fn list(&self) -> Result<(Vec<Sha256Digest>, Vec<String>)> {
        let mut digests = Vec::new();
        let mut strangers = Vec::new();
        let prefix = self.objects_prefix();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(token.as_deref()).await?;
            for item in page.contents {
                let digest = item
                    .key
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.split_once('/'))
                    .and_then(|(dir, name)| {
                        name.parse::<Sha256Digest>()
                            .ok()
                            .filter(|d| d.to_hex()[..2] == *dir)
                    });
                match digest {
                    Some(d) => digests.push(d),
                    None => strangers.push(format!("s3://{}/{}", self.bucket.name(), item.key)),
                }
            }
            match page.next_continuation_token {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => break,
            }
        }
        Ok((digests, strangers))
    }

    fn read_error(&self, sha: &Sha256Digest, source: io::Error) -> SpoolError {
        self.failure("reading", self.location(sha), source.to_string())
    }
}

/// `HTTP 403 Forbidden: AccessDenied (Access Denied)` from an S3 error answer.
fn describe_refusal(status: StatusCode, body: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let len = body[start..].find(&close)?;
        Some(
            body[start..start + len]
                .chars()
                .take(200)
                .collect::<String>(),
        )
    };
    let mut out = format!("HTTP {status}");
    if let Some(code) = tag("Code") {
        out.push_str(": ");
        out.push_str(&code);
        if let Some(message) = tag("Message") {
            out.push_str(&format!(" ({message})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> S3Settings {
        S3Settings {
            endpoint: "http://127.0.0.1:9".into(),
            bucket: "raw".into(),
            prefix: "site-a".into(),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some(SecretString::from("very-secret-key".to_owned())),
            session_token: Some(SecretString::from("very-secret-token".to_owned())),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = settings();
        let shown = format!("{s:?} {:?}", S3Store::new(&s).unwrap());
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
    }

    #[test]
    fn keys_mirror_the_local_layout_under_the_prefix() {
        let store = S3Store::new(&settings()).unwrap();
        let sha: Sha256Digest = "ab".repeat(32).parse().unwrap();
        assert_eq!(
            store.location(&sha),
            format!("s3://raw/site-a/objects/ab/{}", "ab".repeat(32))
        );
    }

    #[test]
    fn bad_settings_are_explained() {
        let mut s = settings();
        s.endpoint = "not a url".into();
        let e = S3Store::new(&s).unwrap_err().to_string();
        assert!(e.contains("storage.s3.endpoint"), "{e}");
        let mut s = settings();
        s.secret_access_key = None;
        let e = S3Store::new(&s).unwrap_err().to_string();
        assert!(e.contains("secret_access_key"), "{e}");
    }

    #[test]
    fn refusals_name_the_s3_error() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(
            describe_refusal(StatusCode::NOT_FOUND, body),
            "HTTP 404 Not Found: NoSuchBucket (The specified bucket does not exist)"
        );
        assert_eq!(
            describe_refusal(StatusCode::BAD_GATEWAY, ""),
            "HTTP 502 Bad Gateway"
        );
    }
}
