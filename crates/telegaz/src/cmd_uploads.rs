use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use telegaz_config::Config;
use telegaz_domain::{UploadId, UploadStatus};
use telegaz_store::UploadFilter;
use tokio::io::AsyncReadExt;

#[derive(Debug, Subcommand)]
pub enum UploadsCommand {
    /// List received files, newest first.
    List {
        /// Only this device's uploads.
        #[arg(long, value_name = "NAME")]
        device: Option<String>,
        /// Only uploads with this status (receiving, complete, partial, recovered).
        #[arg(long, value_name = "STATUS")]
        status: Option<UploadStatus>,
        /// At most this many.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Write the bytes of an upload, exactly as received, to standard output.
    Get {
        /// Upload id (see `uploads list`).
        id: i64,
    },
}

pub async fn run(config: &Config, cmd: UploadsCommand) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    match cmd {
        UploadsCommand::List {
            device,
            status,
            limit,
            json,
        } => {
            let device_id = match device {
                Some(name) => Some(
                    db.device_by_name(&name)
                        .await?
                        .with_context(|| format!("no device named {name:?}"))?
                        .id,
                ),
                None => None,
            };
            let uploads = db
                .list_uploads(&UploadFilter {
                    device_id,
                    status,
                    limit,
                    ..Default::default()
                })
                .await?;
            let mut out = std::io::stdout().lock();
            if json {
                for u in &uploads {
                    serde_json::to_writer(&mut out, u)?;
                    writeln!(out)?;
                }
            } else {
                writeln!(
                    out,
                    "{:>7} {:<16} {:<10} {:<12} {:>10} {:<20} NAME",
                    "ID", "DEVICE", "STATUS", "INGEST", "BYTES", "RECEIVED"
                )?;
                for u in &uploads {
                    let received = u
                        .received_at
                        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_else(|| "-".into());
                    let mut name = u.final_path.clone();
                    if let Some(d) = u.duplicate_of {
                        name.push_str(&format!("  (duplicate of #{d})"));
                    }
                    let ingest = u.ingest.as_ref().map_or("-", |i| i.status.as_str());
                    writeln!(
                        out,
                        "{:>7} {:<16} {:<10} {:<12} {:>10} {:<20} {}",
                        u.id.0,
                        u.device.as_deref().unwrap_or("?"),
                        u.status.as_str(),
                        ingest,
                        u.size,
                        received,
                        name
                    )?;
                }
            }
        }
        UploadsCommand::Get { id } => {
            let upload = db
                .upload(UploadId(id))
                .await?
                .with_context(|| format!("no upload #{id}"))?;
            let sha = upload.sha256.with_context(|| {
                format!("upload #{id} is still being received; its bytes are not stored yet")
            })?;
            let spool = crate::raw_store::open_spool(config)?;
            let mut file = spool.open_object(&sha).await?;
            let mut out = std::io::stdout().lock();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
            out.flush()?;
        }
    }
    Ok(())
}
