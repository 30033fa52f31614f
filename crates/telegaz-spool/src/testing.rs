//! A real S3-compatible server for tests (feature `testing`): Moto's server
//! (`moto_server`, PyPI `moto[server]`), started on a free port of 127.0.0.1.
//!
//! `TELEGAZ_TEST_S3` names another command to start instead; it must take
//! `-H HOST -p PORT` like `moto_server`. Without the server the tests fail and
//! say how to install it: they never pass without having talked to one.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusty_s3::actions::CreateBucket;
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use secrecy::SecretString;

use crate::S3Settings;

/// The access key the test server is used with (Moto takes any).
pub const TEST_ACCESS_KEY: &str = "telegaz-test";
/// The secret key the test server is used with.
pub const TEST_SECRET_KEY: &str = "telegaz-test-secret";

/// How to get the server, for the failure message.
pub const INSTALL_HINT: &str = "the S3 tests need a real S3-compatible server: install Moto's with \
     `python3 -m pip install 'moto[server]'` (it provides `moto_server`; `.ci/run` does this), \
     or set TELEGAZ_TEST_S3 to the command of another server that takes -H HOST -p PORT";

/// A running test server; stopped when dropped.
#[derive(Debug)]
pub struct S3TestServer {
    command: String,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl S3TestServer {
    /// Start a server on a free port and wait until it answers.
    pub fn start() -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let command = std::env::var("TELEGAZ_TEST_S3")
            .ok()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "moto_server".to_owned());
        let log = std::env::temp_dir().join(format!("telegaz-s3-test-{port}.log"));
        let mut server = S3TestServer {
            command,
            port,
            log,
            child: None,
        };
        server.resume()?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Settings for a bucket of this server.
    pub fn settings(&self, bucket: &str, prefix: &str) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            region: "us-east-1".to_owned(),
            path_style: true,
            access_key_id: Some(TEST_ACCESS_KEY.to_owned()),
            secret_access_key: Some(SecretString::from(TEST_SECRET_KEY.to_owned())),
            session_token: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Stop the server (an outage). Moto keeps its data in memory: it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port and wait until it answers.
    pub fn resume(&mut self) -> Result<(), String> {
        self.stop();
        let log = std::fs::File::create(&self.log)
            .map_err(|e| format!("cannot create {}: {e}", self.log.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", self.log.display()))?;
        let child = Command::new(&self.command)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    format!("`{}` was not found; {INSTALL_HINT}", self.command)
                } else {
                    format!("cannot start `{}`: {e}; {INSTALL_HINT}", self.command)
                }
            })?;
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let output = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!(
                    "`{}` exited ({status}) before it listened on {addr}: {output}; {INSTALL_HINT}",
                    self.command
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "`{}` did not listen on {addr} within 60 s; {INSTALL_HINT}",
                    self.command
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Create a bucket.
    pub async fn create_bucket(&self, name: &str) -> Result<(), String> {
        let endpoint = self
            .endpoint()
            .parse()
            .map_err(|e| format!("endpoint: {e}"))?;
        let bucket = Bucket::new(endpoint, UrlStyle::Path, name.to_owned(), "us-east-1")
            .map_err(|e| format!("bucket {name}: {e}"))?;
        let credentials = Credentials::new(TEST_ACCESS_KEY, TEST_SECRET_KEY);
        let url = CreateBucket::new(&bucket, &credentials).sign(Duration::from_secs(600));
        let response = reqwest::Client::new()
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| format!("creating bucket {name}: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "creating bucket {name}: HTTP {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ))
        }
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}
