//! `env.json`: what another process needs to find, inspect, fault and stop an
//! environment. It holds endpoints and the paths of credential files, never a
//! secret itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EnvError;
use super::backend::BackendChoice;
use crate::s3::S3Credentials;

/// Version of the `env.json` layout; a different one is refused.
pub const STATE_FORMAT: u32 = 1;

/// The recorded state of one environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvState {
    pub format: u32,
    pub name: String,
    /// The environment's own folder (data, logs, secrets, this file).
    pub dir: PathBuf,
    /// Unix time in seconds when it was started.
    pub started_at: u64,
    /// `neo4j` (source) and `neo4j-recovery` (restore target).
    pub neo4j: BTreeMap<String, Neo4jEndpoint>,
    /// `s3-primary` and `s3-archive`: one S3 server per region.
    pub s3: BTreeMap<String, S3Endpoint>,
    /// Toxiproxy's HTTP API, e.g. `http://127.0.0.1:41234`.
    pub toxiproxy_api: String,
    /// The agent's links through Toxiproxy, by link name.
    pub links: BTreeMap<String, LinkEndpoint>,
    /// Port reserved on 127.0.0.1 for the runner's heartbeat endpoint, the
    /// upstream of the `agent-control` link.
    pub control_port: u16,
    /// Server processes by component name (process group id = pid).
    pub processes: BTreeMap<String, ProcessRecord>,
    /// Where the servers run (absent in files from before the container
    /// backend: local).
    #[serde(default)]
    pub backend: BackendChoice,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neo4jEndpoint {
    /// Direct Bolt address `127.0.0.1:port`.
    pub bolt: String,
    /// The harness's user (`neo4j`) and its password file.
    pub admin_user: String,
    pub admin_password_file: PathBuf,
    /// The backup agent's own user and its password file.
    pub agent_user: String,
    pub agent_password_file: PathBuf,
    /// JVM heap and page cache, in MiB.
    pub heap_mb: u32,
    pub pagecache_mb: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Endpoint {
    /// Direct URL `http://127.0.0.1:port`.
    pub url: String,
    pub region: String,
    /// The bucket backups go to; the agent identity may use only this one.
    pub bucket: String,
    /// JSON files holding [`S3Credentials`].
    pub admin_credentials_file: PathBuf,
    pub agent_credentials_file: PathBuf,
    pub data_dir: PathBuf,
    /// SeaweedFS's internal listeners (master, volume, filer, …) by flag name.
    pub internal_ports: BTreeMap<String, u16>,
}

/// Reads an S3 credentials file.
pub fn load_s3_credentials(path: &Path) -> Result<S3Credentials, EnvError> {
    let text = super::read_secret(path)?;
    serde_json::from_str(&text).map_err(|e| EnvError::BadState {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkEndpoint {
    /// Where the agent connects: `127.0.0.1:port` on Toxiproxy.
    pub listen: String,
    /// The real server behind it.
    pub upstream: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRecord {
    /// Process group id; 0 for a container.
    pub pid: u32,
    pub log: PathBuf,
    /// The container's id on the container backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// A network path the agent uses, each through its own Toxiproxy proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    Neo4j,
    Neo4jRecovery,
    S3Primary,
    S3Archive,
    Control,
}

impl Link {
    pub const ALL: [Link; 5] = [
        Link::Neo4j,
        Link::Neo4jRecovery,
        Link::S3Primary,
        Link::S3Archive,
        Link::Control,
    ];

    /// The proxy's name in Toxiproxy, e.g. `agent-neo4j`.
    pub fn name(self) -> &'static str {
        match self {
            Link::Neo4j => "agent-neo4j",
            Link::Neo4jRecovery => "agent-neo4j-recovery",
            Link::S3Primary => "agent-s3-primary",
            Link::S3Archive => "agent-s3-archive",
            Link::Control => "agent-control",
        }
    }

    /// The component behind the link (`control` is the runner itself).
    pub fn target(self) -> &'static str {
        match self {
            Link::Neo4j => "neo4j",
            Link::Neo4jRecovery => "neo4j-recovery",
            Link::S3Primary => "s3-primary",
            Link::S3Archive => "s3-archive",
            Link::Control => "control",
        }
    }

    pub fn parse(s: &str) -> Option<Link> {
        Link::ALL
            .into_iter()
            .find(|l| l.name() == s || l.target() == s)
    }
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "agent→{}", self.target())
    }
}

impl EnvState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("env.json")
    }

    pub fn load(dir: &Path) -> Result<Self, EnvError> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EnvError::NotFound {
                    dir: dir.to_path_buf(),
                });
            }
            Err(source) => return Err(EnvError::io(&path, source)),
        };
        let state: Self = serde_json::from_str(&text).map_err(|e| EnvError::BadState {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if state.format != STATE_FORMAT {
            return Err(EnvError::BadState {
                path,
                message: format!(
                    "format {} is not supported (expected {STATE_FORMAT})",
                    state.format
                ),
            });
        }
        Ok(state)
    }

    /// Writes `env.json` atomically (temp file + rename).
    pub fn save(&self) -> Result<(), EnvError> {
        let path = Self::path(&self.dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("state serializes");
        std::fs::write(&tmp, text).map_err(|source| EnvError::io(&tmp, source))?;
        std::fs::rename(&tmp, &path).map_err(|source| EnvError::io(&path, source))
    }

    pub fn link(&self, link: Link) -> &LinkEndpoint {
        &self.links[link.name()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_parses_from_proxy_or_target_name() {
        for link in Link::ALL {
            assert_eq!(Link::parse(link.name()), Some(link));
            assert_eq!(Link::parse(link.target()), Some(link));
        }
        assert_eq!(Link::parse("agent-nowhere"), None);
    }
}
