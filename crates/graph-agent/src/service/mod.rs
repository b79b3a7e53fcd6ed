//! The agent at work: jobs that move queued → running → succeeded | failed,
//! each under a deadline, retried only for transient failures, and the
//! backup, restore and verify work they do.

mod backup;
mod connections;
mod copy;
mod jobs;
mod keys;
mod prune;
mod restore;
mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, Semaphore};

use super::config::{AgentConfig, Tier};
use super::repo::Keyring;
use graph_agent_api::{Job, JobKind};
use jobs::{JOBS_FILE, load_jobs};
use keys::resume_or_make_data_key;

/// A problem that keeps the agent from starting (bad secrets or files).
#[derive(Debug, thiserror::Error)]
#[error("`{}`: {message}", file.display())]
pub struct StartError {
    pub file: PathBuf,
    pub message: String,
}

/// What the agent remembers between runs: the last backup of each tier,
/// which incremental backups build on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AgentState {
    tiers: BTreeMap<String, TierState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TierState {
    backup: String,
    seq: u64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub bytes_uploaded: BTreeMap<String, u64>,
    pub retries: BTreeMap<String, u64>,
    pub job_seconds: Vec<(JobKind, f64)>,
    pub last_success_ms: Option<u64>,
    pub heartbeat_failures: u64,
    pub key_rotations: u64,
}

pub struct Agent {
    pub config: AgentConfig,
    /// Master keys from the configuration and the data keys made since start.
    keyring: Mutex<Keyring>,
    /// When the current data key was made (Unix ms).
    data_key_since_ms: std::sync::atomic::AtomicU64,
    token: String,
    jobs: Mutex<BTreeMap<String, Job>>,
    next_job: AtomicU32,
    slots: Semaphore,
    state: Mutex<AgentState>,
    pub metrics: Mutex<Metrics>,
    capture_ready: OnceCell<()>,
    tier_status: Mutex<BTreeMap<String, super::metadata::TierStatus>>,
    /// Per tier, the catalog objects the metadata sync has read, and their
    /// recovery points.
    catalog_seen: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn read_secret(path: &std::path::Path) -> Result<String, StartError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| StartError {
            file: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })
}

impl Agent {
    /// Loads the secrets the configuration names and the saved state.
    pub fn new(config: AgentConfig) -> Result<Arc<Self>, StartError> {
        let load = |file: &std::path::PathBuf| {
            Keyring::load_key(file).map_err(|e| StartError {
                file: file.clone(),
                message: e.to_string(),
            })
        };
        let enc = &config.encryption;
        // Older keys first: each rotation makes the next one current.
        let mut keyring = Keyring::new(&enc.key_id, load(&enc.key_file)?);
        for old in &enc.previous {
            keyring.rotate(&old.key_id, load(&old.key_file)?);
        }
        keyring.rotate(&enc.key_id, load(&enc.key_file)?);
        let token = match &config.control.token_file {
            Some(path) => read_secret(path)?,
            None => std::env::var("GRAPH_AGENT_TOKEN").map_err(|_| StartError {
                file: "control.token_file".into(),
                message: "no token: set `control.token_file` or GRAPH_AGENT_TOKEN".into(),
            })?,
        };
        if token.len() < 16 {
            return Err(StartError {
                file: "control.token_file".into(),
                message: "the API token must be at least 16 characters".into(),
            });
        }
        std::fs::create_dir_all(&config.agent.state_dir).map_err(|e| StartError {
            file: config.agent.state_dir.clone(),
            message: e.to_string(),
        })?;
        let since = resume_or_make_data_key(&mut keyring, &config);
        let state_file = config.agent.state_dir.join("state.json");
        let state = match std::fs::read(&state_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StartError {
                file: state_file.clone(),
                message: e.to_string(),
            })?,
            Err(_) => AgentState::default(),
        };
        let slots = Semaphore::new(config.resources.max_concurrent_jobs as usize);
        let jobs = load_jobs(&config.agent.state_dir.join(JOBS_FILE))?;
        let next_job = jobs
            .keys()
            .filter_map(|id| id.strip_prefix("job-")?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        Ok(Arc::new(Self {
            config,
            keyring: Mutex::new(keyring),
            data_key_since_ms: since.into(),
            token,
            jobs: Mutex::new(jobs),
            next_job: AtomicU32::new(next_job),
            slots,
            state: Mutex::new(state),
            metrics: Mutex::new(Metrics::default()),
            capture_ready: OnceCell::new(),
            tier_status: Mutex::new(BTreeMap::new()),
            catalog_seen: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Whether `presented` is the API token (constant-time).
    pub fn token_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        presented.len() == self.token.len()
            && bool::from(presented.as_bytes().ct_eq(self.token.as_bytes()))
    }

    /// Every tier's status as the last metadata sync saw it.
    pub fn tier_status(&self) -> BTreeMap<String, super::metadata::TierStatus> {
        self.tier_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_tier_status(&self, tier: &str, status: super::metadata::TierStatus) {
        self.tier_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tier.to_string(), status);
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.config.tiers.iter().find(|t| t.name == name)
    }
}
