//! One SeaweedFS `weed server` (master, volume, filer and S3) per region: an
//! S3 endpoint with an identities file (an admin for the harness, a
//! least-privilege identity for the agent).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::backend::{Programs, Role};
use super::component::{BoxFuture, Component, Launch};
use super::{EnvError, S3Endpoint, free_bytes, load_s3_credentials, write_secret};
use crate::s3::Bucket;

/// `weed server` listeners besides S3; every one is set, so no default port
/// is ever used and two environments never collide.
pub const INTERNAL_PORTS: [&str; 10] = [
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "volume.port.public",
    "filer.port",
    "filer.port.grpc",
    "filer.port.public",
    "metricsPort",
];

/// Below this much free disk, SeaweedFS makes every volume read-only and
/// writes hang. Its default, 1 % of the disk, is 2.5 GiB on a 250 GB disk
/// that a build and a few images fill; a drill's data is small, so a fixed
/// floor keeps regions writable on a nearly full disk and still stops them
/// short of filling it.
pub const MIN_FREE_SPACE_MIB: u64 = 256;

/// Volume size, fixed for the same reason: left to itself it follows the
/// disk's size (1 GiB over 100 GB), and each volume reserves its whole size
/// of free space.
const VOLUME_SIZE_LIMIT_MB: u32 = 64;

pub struct SeaweedServer {
    name: String,
    dir: PathBuf,
    endpoint: S3Endpoint,
}

impl SeaweedServer {
    pub fn new(name: &str, dir: PathBuf, endpoint: S3Endpoint) -> Self {
        Self {
            name: name.to_string(),
            dir,
            endpoint,
        }
    }

    fn admin_bucket(&self) -> Result<Bucket, String> {
        let creds = load_s3_credentials(&self.endpoint.admin_credentials_file)
            .map_err(|e| e.to_string())?;
        Bucket::new(
            &self.endpoint.url,
            &creds,
            &self.endpoint.bucket,
            Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())
    }

    /// The identities file: admin may do anything; the agent may read, list
    /// and write its own bucket only.
    fn identities(&self) -> Result<String, EnvError> {
        let admin = load_s3_credentials(&self.endpoint.admin_credentials_file)?;
        let agent = load_s3_credentials(&self.endpoint.agent_credentials_file)?;
        let b = &self.endpoint.bucket;
        let doc = serde_json::json!({
            "identities": [
                {
                    "name": "graphdrill-admin",
                    "credentials": [{"accessKey": admin.access_key, "secretKey": admin.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"]
                },
                {
                    "name": "graph-agent",
                    "credentials": [{"accessKey": agent.access_key, "secretKey": agent.secret_key}],
                    "actions": [format!("Read:{b}"), format!("List:{b}"), format!("Write:{b}")]
                }
            ]
        });
        Ok(doc.to_string())
    }
}

impl Component for SeaweedServer {
    fn name(&self) -> &str {
        &self.name
    }

    fn role(&self) -> Role {
        Role::S3
    }

    fn log(&self) -> PathBuf {
        self.dir.join("weed.log")
    }

    fn prepare(&self, programs: &Programs) -> Result<Launch, EnvError> {
        let data = &self.endpoint.data_dir;
        std::fs::create_dir_all(data).map_err(|e| EnvError::io(data, e))?;
        let config = self.dir.join("s3.json");
        write_secret(&config, &self.identities()?)?;
        let s3_port = self
            .endpoint
            .url
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut cmd = Command::new(&programs.weed);
        // Anything it writes beside its data stays in its own folder.
        cmd.current_dir(&self.dir)
            .args(["server", "-filer", "-s3"])
            .arg(format!("-dir={}", data.display()))
            .arg(format!("-s3.config={}", config.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.port={s3_port}"))
            .args([
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
                // Slots follow free space; see MIN_FREE_SPACE_MIB.
                "-volume.max=0",
                "-volume.preStopSeconds=1",
            ])
            .arg(format!("-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}"))
            .arg(format!("-volume.minFreeSpace={MIN_FREE_SPACE_MIB}MiB"))
            .arg(format!(
                "-filer.localSocket={}",
                self.dir.join("filer.sock").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                self.dir.join("s3.sock").display()
            ));
        for flag in INTERNAL_PORTS {
            // An environment kept by an older graphdrill may lack one.
            let port = self.endpoint.internal_ports.get(flag).ok_or_else(|| {
                EnvError::component(
                    &self.name,
                    format!("no port for `{flag}` in the environment's state; run `graphdrill env down` and start again"),
                )
            })?;
            cmd.arg(format!("-{flag}={port}"));
        }
        Ok(cmd.into())
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async {
            let bucket = self.admin_bucket()?;
            bucket
                .list_buckets()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn startup_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// Killed at once: on SIGTERM, `weed server` first waits 15 s for its
    /// filer's own internal streams and only then stops the volume server.
    /// Its writes are on disk as they happen; region loss kills it the same
    /// way, and its data survives that (tests/env.rs).
    fn stop_grace(&self) -> Duration {
        Duration::ZERO
    }

    fn provision(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        Box::pin(async {
            let err = |e: String| EnvError::component(&self.name, e);
            let bucket = self.admin_bucket().map_err(err)?;
            bucket
                .ensure_exists()
                .await
                .map_err(|e| err(format!("creating bucket: {e}")))?;
            // S3 answers reads before its volume server has registered, so
            // ready means a write went through, not only ListBuckets; a
            // non-empty one, since an empty object needs no volume.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                match bucket.put(".graphdrill-ready", b"ready".to_vec()).await {
                    Ok(()) => break,
                    Err(e) if std::time::Instant::now() > deadline => {
                        let disk = low_disk(&self.endpoint.data_dir).unwrap_or_default();
                        return Err(err(format!("a test write still fails: {e}{disk}")));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            bucket
                .delete(".graphdrill-ready")
                .await
                .map_err(|e| err(format!("removing the test write: {e}")))
        })
    }
}

/// A likely reason writes hang: the disk under `dir` is below the floor.
fn low_disk(dir: &std::path::Path) -> Option<String> {
    let free_mib = free_bytes(dir)? / (1024 * 1024);
    (free_mib < MIN_FREE_SPACE_MIB).then(|| {
        format!(
            "; the disk under {} has {free_mib} MiB free, below the {MIN_FREE_SPACE_MIB} MiB SeaweedFS is set to keep free",
            dir.display()
        )
    })
}
