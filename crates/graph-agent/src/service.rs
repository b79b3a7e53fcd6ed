//! The agent at work: jobs that move queued → running → succeeded | failed,
//! each under a deadline, retried only for transient failures, and the
//! backup, restore and verify work they do.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, Semaphore};

use super::config::{AgentConfig, Tier, TierKind};
use super::defect::{self, Defect};
use super::repo::{Keyring, Manifest, RecoveryPoint, Repository, Store};
use super::retry::{Attempt, RetryPolicy};
use super::source::{Neo4jSource, capture};
use super::{JobError, repo};
use crate::graph::{Decoder, Encoder, Graph, Record};
use crate::s3::{Bucket, S3Credentials};
use graph_agent_api::{BackupKind, FailureClass, Job, JobKind, JobState, JobSummary};

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

/// The job table in `agent.state_dir`.
const JOBS_FILE: &str = "jobs.json";

/// Reads the job table a previous run left. Jobs it left queued or running
/// were cut off by the stop: they are failed now, not left "in progress".
fn load_jobs(file: &std::path::Path) -> Result<BTreeMap<String, Job>, StartError> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(_) => return Ok(BTreeMap::new()),
    };
    let mut jobs: BTreeMap<String, Job> =
        serde_json::from_slice(&bytes).map_err(|e| StartError {
            file: file.to_path_buf(),
            message: format!("not a job table: {e}"),
        })?;
    for job in jobs.values_mut().filter(|j| !j.state.is_terminal()) {
        job.state = JobState::Failed;
        job.finished_ms = Some(now_ms());
        job.failure = Some(graph_agent_api::Failure {
            class: FailureClass::Internal,
            message: "interrupted: graph-agent stopped while the job ran".into(),
        });
    }
    if let Err(e) = std::fs::write(file, serde_json::to_vec(&jobs).expect("jobs serialize")) {
        tracing::warn!(file = %file.display(), error = %e, "could not save the job table");
    }
    Ok(jobs)
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

/// The current data key, sealed by the master key, kept in the state folder
/// so a restart goes on with it until rotation is due.
#[derive(Serialize, Deserialize)]
struct SavedDataKey {
    id: String,
    since_ms: u64,
    sealed_hex: String,
}

const DATA_KEY_FILE: &str = "data-key.json";

/// Resumes the saved data key if the master key opens it and its rotation
/// is not due, else makes a new one; returns when the current one was made.
fn resume_or_make_data_key(keyring: &mut Keyring, config: &AgentConfig) -> u64 {
    let path = config.agent.state_dir.join(DATA_KEY_FILE);
    let now = now_ms();
    let rotation = config.encryption.rotation.0.as_millis() as u64;
    let saved = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<SavedDataKey>(&b).ok());
    // A key "made" in the future (a skewed clock, an edited file) would
    // never come due: not resumed.
    if let Some(saved) = saved
        && saved.since_ms <= now + 60_000
        && now.saturating_sub(saved.since_ms) < rotation
    {
        let resumed = hex::decode(&saved.sealed_hex)
            .map_err(|e| e.to_string())
            .and_then(|sealed| {
                keyring
                    .resume_data_key(&saved.id, &sealed)
                    .map_err(|e| e.to_string())
            });
        match resumed {
            Ok(()) => {
                tracing::info!(key = %saved.id, "resumed the data key");
                return saved.since_ms;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "not resuming the saved data key")
            }
        }
    }
    keyring.new_data_key(now);
    save_data_key(keyring, config, now);
    now
}

fn save_data_key(keyring: &Keyring, config: &AgentConfig, since_ms: u64) {
    let Some(sealed) = keyring.sealed_current() else {
        return;
    };
    let saved = SavedDataKey {
        id: keyring.current_id().to_string(),
        since_ms,
        sealed_hex: hex::encode(sealed),
    };
    let path = config.agent.state_dir.join(DATA_KEY_FILE);
    let text = serde_json::to_string(&saved).expect("a saved key serializes");
    // Sealed by the master key, yet nobody else's to read; written whole
    // or not at all.
    let tmp = path.with_extension("json.tmp");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        tracing::warn!(file = %path.display(), error = %e, "cannot save the data key");
    }
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

    fn retry_policy(&self) -> RetryPolicy {
        let t = &self.config.transfer;
        RetryPolicy {
            max_retries: t.max_retries as u32,
            base: t.backoff_base.0,
            cap: t.backoff_cap.0,
        }
    }

    /// The recovery points (Unix ms) of the backups `tier`'s catalog lists.
    /// A sync lists the catalog and reads only the entries it has not seen:
    /// they are written once, so one read each is enough.
    pub async fn catalog(&self, tier: &str) -> Result<Vec<u64>, String> {
        let repo = self.repository(tier).await.map_err(|e| e.message)?;
        let objects: std::collections::BTreeSet<String> = repo
            .catalog_objects()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        let seen = || self.catalog_seen.lock().unwrap_or_else(|p| p.into_inner());
        let unseen: Vec<String> = {
            let mut all = seen();
            let known = all.entry(tier.to_string()).or_default();
            // Entries gone from the listing (pruned) are forgotten.
            known.retain(|o, _| objects.contains(o));
            objects
                .iter()
                .filter(|o| !known.contains_key(*o))
                .cloned()
                .collect()
        };
        for object in unseen {
            let entry = repo
                .catalog_entry(&object)
                .await
                .map_err(|e| e.to_string())?;
            // Kept as read: a sync its timeout cuts off still counts.
            seen()
                .entry(tier.to_string())
                .or_default()
                .insert(object, entry.recovery_point.time_ms);
        }
        Ok(seen()[tier].values().copied().collect())
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

    /// Makes a new data key the one that seals from now on (jobs already
    /// running keep theirs); returns its id.
    pub fn rotate_data_key(&self) -> String {
        let now = now_ms();
        let id = self
            .keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .new_data_key(now);
        self.data_key_since_ms.store(now, Ordering::SeqCst);
        save_data_key(
            &self.keyring.lock().unwrap_or_else(|p| p.into_inner()),
            &self.config,
            now,
        );
        self.metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .key_rotations += 1;
        tracing::info!(key = %id, "rotated the data key");
        id
    }

    /// (master key id, current data key id, when that data key was made).
    pub fn key_status(&self) -> (String, String, u64) {
        let ring = self.keyring.lock().unwrap_or_else(|p| p.into_inner());
        (
            ring.master_id().to_string(),
            ring.current_id().to_string(),
            self.data_key_since_ms.load(Ordering::SeqCst),
        )
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.config.tiers.iter().find(|t| t.name == name)
    }

    pub fn job(&self, id: &str) -> Option<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub fn jobs(&self, kind: JobKind) -> Vec<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|j| j.kind == kind)
            .cloned()
            .collect()
    }

    pub fn summary(&self) -> JobSummary {
        let mut s = JobSummary::default();
        for j in self.jobs.lock().unwrap_or_else(|p| p.into_inner()).values() {
            match j.state {
                JobState::Queued => s.queued += 1,
                JobState::Running => s.running += 1,
                JobState::Succeeded => s.succeeded += 1,
                JobState::Failed => s.failed += 1,
            }
        }
        s
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = jobs.get_mut(id) {
            let before = job.state;
            f(job);
            debug_assert!(before == job.state || before.may_become(job.state));
            if before != job.state {
                self.save_jobs(&jobs);
            }
        }
    }

    /// Writes the job table (on every change of state), so a restarted
    /// agent still answers for the jobs it had.
    fn save_jobs(&self, jobs: &BTreeMap<String, Job>) {
        let file = self.config.agent.state_dir.join(JOBS_FILE);
        let tmp = file.with_extension("json.tmp");
        let written = std::fs::write(&tmp, serde_json::to_vec(jobs).expect("jobs serialize"))
            .and_then(|_| std::fs::rename(&tmp, &file));
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "could not save the job table");
        }
    }

    /// Queues a job and runs `work` for it in the background.
    fn submit<W, Fut>(
        self: &Arc<Self>,
        kind: JobKind,
        tier: &str,
        backup_kind: Option<BackupKind>,
        work: W,
    ) -> Job
    where
        W: FnOnce(Arc<Self>, String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<String>, JobError>> + Send + 'static,
    {
        let created = now_ms();
        let id = format!("job-{}", self.next_job.fetch_add(1, Ordering::SeqCst));
        let deadline = self.config.transfer.job_deadline.0;
        let enforced = if defect::active(Defect::HangOnConnection) {
            Duration::from_secs(365 * 86_400)
        } else {
            deadline
        };
        let job = Job {
            id: id.clone(),
            kind,
            state: JobState::Queued,
            tier: tier.to_string(),
            backup_kind,
            backup: None,
            created_ms: created,
            started_ms: None,
            finished_ms: None,
            deadline_ms: created + deadline.as_millis() as u64,
            attempts: 0,
            failure: None,
            phases_ms: BTreeMap::new(),
            progress: None,
            scheduled: None,
        };
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.insert(id.clone(), job.clone());
            self.save_jobs(&jobs);
        }
        let agent = self.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            // Waiting for a slot counts against the deadline too: a job never
            // stays queued or running past it.
            let outcome = tokio::time::timeout(enforced, async {
                let _slot = agent
                    .slots
                    .acquire()
                    .await
                    .expect("semaphore is never closed");
                agent.update(&id, |j| {
                    j.state = JobState::Running;
                    j.started_ms = Some(now_ms());
                    j.attempts = 1;
                });
                contained(work(agent.clone(), id.clone())).await
            })
            .await
            .unwrap_or_else(|_| {
                Err(JobError::new(
                    FailureClass::Deadline,
                    format!("not finished within the job deadline of {deadline:?}"),
                ))
            });
            let secs = started.elapsed().as_secs_f64();
            let mut metrics = agent.metrics.lock().unwrap_or_else(|p| p.into_inner());
            metrics.job_seconds.push((kind, secs));
            match outcome {
                Ok(backup) => {
                    metrics.last_success_ms = Some(now_ms());
                    drop(metrics);
                    tracing::info!(job = %id, ?kind, secs, "job succeeded");
                    agent.update(&id, |j| {
                        j.state = JobState::Succeeded;
                        j.finished_ms = Some(now_ms());
                        if backup.is_some() {
                            j.backup = backup;
                        }
                    });
                }
                Err(e) => {
                    drop(metrics);
                    tracing::warn!(job = %id, ?kind, class = ?e.class, error = %e.message, "job failed");
                    agent.update(&id, |j| {
                        j.state = JobState::Failed;
                        j.finished_ms = Some(now_ms());
                        j.failure = Some(e.into_failure());
                    });
                }
            }
        });
        job
    }

    /// Records that job `id` spent the time since `since` in `phase`.
    fn phase(&self, id: &str, phase: &str, since: std::time::Instant) {
        let ms = since.elapsed().as_millis() as u64;
        self.update(id, |j| {
            *j.phases_ms.entry(phase.to_string()).or_default() += ms;
        });
    }

    /// Runs `op` with the retry policy; each retry counts as an attempt of job `id`.
    async fn attempt<'a, T>(
        &self,
        id: &str,
        mut op: impl FnMut() -> Attempt<'a, T>,
    ) -> Result<T, JobError> {
        self.retry_policy()
            .run(&mut op, |e| {
                self.update(id, |j| j.attempts += 1);
                tracing::info!(job = %id, class = ?e.class, error = %e.message, "retrying");
                *self
                    .metrics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retries
                    .entry(format!("{:?}", e.class).to_lowercase())
                    .or_default() += 1;
            })
            .await
    }

    pub fn submit_backup(self: &Arc<Self>, kind: BackupKind, tier: &str) -> Job {
        let tier = tier.to_string();
        self.submit(
            JobKind::Backup,
            &tier.clone(),
            Some(kind),
            move |agent, id| async move { agent.backup(&id, kind, &tier).await.map(Some) },
        )
    }

    /// A backup the scheduler starts: the job says which entry and how long
    /// busy resources held it back.
    pub fn submit_scheduled(
        self: &Arc<Self>,
        kind: BackupKind,
        tier: &str,
        scheduled: graph_agent_api::Scheduled,
    ) -> Job {
        let job = self.submit_backup(kind, tier);
        let scheduled = Some(scheduled);
        self.update(&job.id, |j| j.scheduled = scheduled.clone());
        Job { scheduled, ..job }
    }

    pub fn submit_restore(self: &Arc<Self>, backup: &str, tier: &str) -> Job {
        let (backup, tier) = (backup.to_string(), tier.to_string());
        self.submit(
            JobKind::Restore,
            &tier.clone(),
            None,
            move |agent, id| async move { agent.restore(&id, &backup, &tier).await.map(Some) },
        )
    }

    pub fn submit_copy(self: &Arc<Self>, backup: &str, from: &str, to: &str) -> Job {
        let (backup, from, to) = (backup.to_string(), from.to_string(), to.to_string());
        self.submit(
            JobKind::Copy,
            &to.clone(),
            None,
            move |agent, id| async move { agent.copy(&id, &backup, &from, &to).await.map(Some) },
        )
    }

    pub fn submit_prune(self: &Arc<Self>, tier: &str) -> Job {
        let tier = tier.to_string();
        self.submit(
            JobKind::Prune,
            &tier.clone(),
            None,
            move |agent, id| async move { agent.prune(&id, &tier).await.map(|_| None) },
        )
    }

    pub fn submit_verify(self: &Arc<Self>, backup: &str, tier: &str, sample: f64) -> Job {
        let (backup, tier) = (backup.to_string(), tier.to_string());
        self.submit(JobKind::Verify, &tier.clone(), None, move |agent, id| async move {
            agent.verify(&id, &backup, &tier, sample).await.map(Some)
        })
    }

    async fn connect(
        &self,
        which: &super::config::Neo4jSource,
        db: &str,
    ) -> Result<neo4rs::Graph, JobError> {
        let password = std::fs::read_to_string(&which.password_file)
            .map(|s| s.trim().to_string())
            .map_err(|e| {
                JobError::new(
                    FailureClass::Internal,
                    format!("`{}`: {e}", which.password_file.display()),
                )
            })?;
        let refused = |m: String| {
            JobError::from(super::source::SourceError {
                op: "connect",
                message: m,
            })
        };
        // The driver retries refused connections for up to a minute on its
        // own; one attempt gets `request_timeout`, and the retry policy
        // decides what follows.
        let limit = self.config.transfer.request_timeout.0;
        tokio::time::timeout(limit, async {
            let graph = crate::bolt::connect(&which.uri, &which.user, &password, db)
                .await
                .map_err(refused)?;
            // A cheap round trip, so bad credentials fail here, clearly (the
            // system database runs only administration commands).
            if db != "system" {
                crate::bolt::query_i64(&graph, neo4rs::query("RETURN 1 AS n"))
                    .await
                    .map_err(refused)?;
            }
            Ok(graph)
        })
        .await
        .unwrap_or_else(|_| {
            Err(JobError::new(
                FailureClass::Timeout,
                format!("neo4j at {}: no connection within {limit:?}", which.uri),
            ))
        })
    }

    /// The source, with change capture installed (once per agent run).
    async fn source(&self, id: &str) -> Result<Neo4jSource, JobError> {
        let graph = self
            .attempt(id, || Box::pin(self.connect(&self.config.neo4j, "neo4j")))
            .await?;
        self.capture_ready
            .get_or_try_init(|| async {
                let system = self.connect(&self.config.neo4j, "system").await?;
                capture::install(&graph, &system, Duration::from_secs(30)).await?;
                Neo4jSource::new(graph.clone())
                    .with_limit(self.transaction_limit())
                    .assign_ids()
                    .await?;
                Ok::<(), JobError>(())
            })
            .await?;
        Ok(Neo4jSource::new(graph))
    }

    /// How long one write transaction may take: a request's timeout for
    /// each of its round trips (begin, run, pull, commit).
    fn transaction_limit(&self) -> Duration {
        self.config.transfer.request_timeout.0 * 4
    }

    /// Opens a tier's repository.
    async fn repository(&self, tier: &str) -> Result<Repository, JobError> {
        let t = self
            .tier(tier)
            .ok_or_else(|| JobError::new(FailureClass::Internal, format!("no tier `{tier}`")))?;
        let store = match t.kind {
            TierKind::Local => Store::Local(t.path.clone().unwrap_or_default()),
            TierKind::S3 => {
                let creds_file = t.credentials_file.clone().unwrap_or_default();
                let text = std::fs::read_to_string(&creds_file).map_err(|e| {
                    JobError::new(
                        FailureClass::Internal,
                        format!("`{}`: {e}", creds_file.display()),
                    )
                })?;
                let creds: S3Credentials = serde_json::from_str(&text).map_err(|e| {
                    JobError::new(
                        FailureClass::Internal,
                        format!("`{}`: {e}", creds_file.display()),
                    )
                })?;
                let bucket = Bucket::new(
                    t.endpoint.as_deref().unwrap_or_default(),
                    &creds,
                    t.bucket.as_deref().unwrap_or_default(),
                    if defect::active(Defect::HangOnConnection) {
                        Duration::from_secs(365 * 86_400)
                    } else {
                        self.config.transfer.request_timeout.0
                    },
                )
                .map_err(|e| JobError::new(FailureClass::Internal, e.to_string()))?;
                Store::S3(bucket)
            }
        };
        let keyring = self
            .keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let repo = Repository::open(store, keyring).await?;
        // Data keys fetched from the tier are held from now on.
        self.keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .learn(repo.keyring());
        Ok(repo)
    }

    /// Takes a cut and stores it in `tier`; returns the backup's id.
    async fn backup(&self, id: &str, kind: BackupKind, tier: &str) -> Result<String, JobError> {
        let source = self.source(id).await?;
        let parent = match kind {
            BackupKind::Full => None,
            BackupKind::Incremental => self
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .tiers
                .get(tier)
                .cloned(),
        };
        // The parent must still be in the tier (a lost region takes it along);
        // without it an incremental could never be restored, so take a full.
        let parent = match parent {
            Some(p) => {
                let key = repo::catalog_key(&p.backup);
                let present = self
                    .attempt(id, || {
                        Box::pin(async {
                            let repo = self.repository(tier).await?;
                            repo.store()
                                .stat(&key)
                                .await
                                .map_err(|e| JobError::from(repo::RepoError::from(e)))
                        })
                    })
                    .await?;
                present.is_some().then_some(p)
            }
            None => None,
        };
        let kind = if parent.is_some() {
            BackupKind::Incremental
        } else {
            BackupKind::Full
        };
        self.update(id, |j| j.backup_kind = Some(kind));
        let since = parent.as_ref().map(|p| p.seq);
        let t = std::time::Instant::now();
        // A retry reconnects first: on the old connections the driver would
        // wait out a partition by itself, unbounded by the retry policy.
        let retry = std::sync::atomic::AtomicBool::new(false);
        let mut cut = self
            .attempt(id, || {
                Box::pin(async {
                    if retry.swap(true, Ordering::SeqCst) {
                        let graph = self.connect(&self.config.neo4j, "neo4j").await?;
                        return Neo4jSource::new(graph)
                            .cut(since)
                            .await
                            .map_err(JobError::from);
                    }
                    source.cut(since).await.map_err(JobError::from)
                })
            })
            .await?;
        if defect::active(Defect::DropDeletions) {
            cut.records
                .retain(|r| !matches!(r, Record::DeleteNode(_) | Record::DeleteRel(_)));
        }
        self.phase(id, "cut", t);
        let t = std::time::Instant::now();
        let mut enc = Encoder::default();
        for r in &cut.records {
            enc.record(r);
        }
        let backup_id = format!("{}-{:04x}", cut.time_ms, rand::random::<u16>());
        let manifest = Manifest::new(
            &backup_id,
            parent.as_ref().map(|p| p.backup.clone()),
            now_ms(),
            RecoveryPoint {
                time_ms: cut.time_ms,
                seq: cut.seq,
            },
            &cut.records,
        );
        self.phase(id, "encode", t);
        let t = std::time::Instant::now();
        let concurrency = self.config.transfer.upload_concurrency as usize;
        let (_, stats) = if defect::active(Defect::EarlySuccess) {
            let repo = self.repository(tier).await?;
            let (m, bytes) = (manifest.clone(), enc.bytes().to_vec());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = repo.write_backup(m, &bytes, concurrency).await;
            });
            (manifest.clone(), Default::default())
        } else {
            self.attempt(id, || {
                Box::pin(async {
                    let repo = self.repository(tier).await?;
                    repo.write_backup(manifest.clone(), enc.bytes(), concurrency)
                        .await
                        .map_err(JobError::from)
                })
            })
            .await?
        };
        self.phase(id, "upload", t);
        *self
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bytes_uploaded
            .entry(tier.to_string())
            .or_default() += stats.bytes_uploaded;
        self.update(id, |j| j.backup = Some(backup_id.clone()));
        let keep = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.tiers.insert(
                tier.to_string(),
                TierState {
                    backup: backup_id.clone(),
                    seq: cut.seq,
                },
            );
            let file = self.config.agent.state_dir.join("state.json");
            let tmp = file.with_extension("json.tmp");
            std::fs::write(
                &tmp,
                serde_json::to_vec_pretty(&*state).expect("state serializes"),
            )
            .and_then(|_| std::fs::rename(&tmp, &file))
            .map_err(|e| {
                JobError::new(FailureClass::Internal, format!("`{}`: {e}", file.display()))
            })?;
            // Change records older than every tier's last backup are no longer needed.
            let all = self
                .config
                .tiers
                .iter()
                .all(|t| state.tiers.contains_key(&t.name));
            all.then(|| state.tiers.values().map(|t| t.seq).min().unwrap_or(0))
        };
        if let Some(seq) = keep
            && let Err(e) =
                capture::prune(&self.connect(&self.config.neo4j, "neo4j").await?, seq).await
        {
            tracing::warn!(error = %e, "pruning change records failed; will retry after the next backup");
        }
        Ok(backup_id)
    }

    /// Restores `backup` (with its parents) into the empty restore target,
    /// then checks the result against the backup.
    async fn restore(&self, id: &str, backup: &str, tier: &str) -> Result<String, JobError> {
        let target_cfg = self.config.restore.clone().ok_or_else(|| {
            JobError::new(
                FailureClass::Internal,
                "no `[restore]` database is configured",
            )
        })?;
        // Fetch (download, open, decompress, check) every backup of the chain
        // first, then decode: a damaged object fails before anything is written.
        let t = std::time::Instant::now();
        let streams = self
            .attempt(id, || {
                Box::pin(async {
                    let repo = self.repository(tier).await?;
                    let mut streams = Vec::new();
                    for m in repo.chain(backup).await? {
                        let concurrency = self.config.transfer.upload_concurrency as usize;
                        streams.push((m.id.clone(), repo.read_stream(&m, concurrency).await?));
                    }
                    Ok(streams)
                })
            })
            .await?;
        self.phase(id, "fetch", t);
        let t = std::time::Instant::now();
        let mut expected = Graph::default();
        for (backup_id, stream) in streams {
            let records = Decoder::new(&stream).records().map_err(|e| {
                JobError::new(
                    FailureClass::Integrity,
                    format!("backup `{backup_id}`: {e}"),
                )
            })?;
            // Each backup carries the whole schema as it stood.
            expected.schema.clear();
            expected.apply_all(records);
        }
        self.phase(id, "decode", t);
        let graph = self
            .attempt(id, || Box::pin(self.connect(&target_cfg, "neo4j")))
            .await?;
        if !crate::bolt::is_empty(&graph)
            .await
            .map_err(|m| JobError::new(FailureClass::Internal, m))?
        {
            return Err(JobError::new(
                FailureClass::Internal,
                format!("the restore target {} is not empty", target_cfg.uri),
            ));
        }
        // Writing and checking get the job's time but a reserve, so that a
        // restore that fails half-way still has time to remove what it wrote.
        let left = Duration::from_millis(
            self.job(id)
                .map_or(0, |j| j.deadline_ms)
                .saturating_sub(now_ms()),
        );
        let reserve = (left / 4).min(Duration::from_secs(300));
        let applied = tokio::time::timeout(left - reserve, self.apply(id, &graph, expected, backup))
            .await
            .unwrap_or_else(|_| {
                Err(JobError::new(
                    FailureClass::Deadline,
                    format!("restore not finished within the job deadline (a reserve of {reserve:?} kept to clean up)"),
                ))
            });
        let Err(mut e) = applied else {
            return Ok(backup.to_string());
        };
        // Nothing partial may be left looking complete: empty the target, or
        // say that it still holds a partial restore (its nodes keep the
        // restoring label until a restore ends).
        // A cut link may come back: keep trying until the reserve is spent.
        let cleaned = tokio::time::timeout(reserve, async {
            let mut last = String::new();
            for wait in [0u64, 1, 2, 4, 8, 16, 30, 60, 60, 60] {
                tokio::time::sleep(Duration::from_secs(wait)).await;
                match crate::bolt::wipe(&graph).await {
                    Ok(()) => return Ok(()),
                    Err(w) => last = w,
                }
            }
            Err(last)
        })
        .await
        .unwrap_or_else(|_| Err(format!("not done within {reserve:?}")));
        match cleaned {
            Ok(()) => e.message.push_str("; the partial restore was removed"),
            Err(w) => e.message.push_str(&format!(
                "; the target {} still holds a partial restore (removing it failed: {w})",
                target_cfg.uri
            )),
        }
        Err(e)
    }

    /// Writes `expected` into the empty target and checks the result. At
    /// most one copy of the graph is held at a time: the expected one while
    /// writing, the restored records while checking.
    async fn apply(
        &self,
        id: &str,
        graph: &neo4rs::Graph,
        expected: Graph,
        backup: &str,
    ) -> Result<(), JobError> {
        let t = std::time::Instant::now();
        let target = Neo4jSource::new(graph.clone()).with_limit(self.transaction_limit());
        let want = (
            expected.canonical_hash(),
            expected.nodes.len(),
            expected.rels.len(),
        );
        let total = (want.1 + want.2) as u64;
        target
            .restore(&expected, |done| {
                self.update(id, |j| {
                    j.progress = Some(graph_agent_api::Progress {
                        phase: "apply".into(),
                        done,
                        total,
                    })
                })
            })
            .await?;
        drop(expected);
        self.phase(id, "apply", t);
        let t = std::time::Instant::now();
        let restored = target.export().await?;
        if crate::graph::canonical_hash(&restored) != want.0 {
            let count = |f: fn(&Record) -> bool| restored.iter().filter(|r| f(r)).count();
            return Err(JobError::new(
                FailureClass::Integrity,
                format!(
                    "the restored graph differs from backup `{backup}` ({} nodes / {} relationships restored, {} / {} expected)",
                    count(|r| matches!(r, Record::Node(_))),
                    count(|r| matches!(r, Record::Rel(_))),
                    want.1,
                    want.2
                ),
            ));
        }
        self.phase(id, "verify", t);
        Ok(())
    }

    /// Removes the tier's backups older than its retention (keeping every
    /// chain a retained backup needs) and the chunks nothing references.
    async fn prune(&self, id: &str, tier: &str) -> Result<repo::PruneReport, JobError> {
        let retention = self
            .tier(tier)
            .map(|t| t.retention.0.as_millis() as u64)
            .unwrap_or(u64::MAX);
        let report = self
            .attempt(id, || {
                Box::pin(async {
                    let repo = self.repository(tier).await?;
                    repo.prune(now_ms(), retention)
                        .await
                        .map_err(JobError::from)
                })
            })
            .await?;
        tracing::info!(tier, removed = ?report.backups_removed, chunks = report.chunks_removed, "pruned");
        Ok(report)
    }

    /// Copies `backup` and every parent the destination lacks, oldest first,
    /// from one tier to another. The data comes from the source tier, checked
    /// chunk by chunk; Neo4j is not read.
    async fn copy(&self, id: &str, backup: &str, from: &str, to: &str) -> Result<String, JobError> {
        self.attempt(id, || {
            Box::pin(async {
                let (src, dst) = (self.repository(from).await?, self.repository(to).await?);
                let present: std::collections::BTreeSet<String> =
                    dst.catalog().await?.into_iter().map(|e| e.id).collect();
                let concurrency = self.config.transfer.upload_concurrency as usize;
                for m in src.chain(backup).await? {
                    if present.contains(&m.id) {
                        continue;
                    }
                    let stream = src.read_stream(&m, concurrency).await?;
                    let (_, stats) = dst.write_backup(m.clone(), &stream, concurrency).await?;
                    *self
                        .metrics
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .bytes_uploaded
                        .entry(to.to_string())
                        .or_default() += stats.bytes_uploaded;
                }
                Ok(backup.to_string())
            })
        })
        .await
    }

    async fn verify(
        &self,
        id: &str,
        backup: &str,
        tier: &str,
        sample: f64,
    ) -> Result<String, JobError> {
        self.attempt(id, || {
            Box::pin(async {
                let repo = self.repository(tier).await?;
                for m in repo.chain(backup).await? {
                    repo.verify(&m.id, sample).await?;
                }
                Ok(backup.to_string())
            })
        })
        .await
    }
}

/// Runs a job's work so that a panic ends the job as failed (`internal`)
/// instead of leaving it `running` for ever: the stuck job of the field
/// notes.
async fn contained<T>(work: impl Future<Output = Result<T, JobError>>) -> Result<T, JobError> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(JobError::new(
                FailureClass::Internal,
                format!("the job's task panicked: {what}"),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_whose_task_panics_fails_as_internal() {
        let failed = contained(async {
            if true {
                panic!("index out of bounds");
            }
            Ok::<(), JobError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(failed.class, FailureClass::Internal);
        assert!(failed.message.contains("index out of bounds"), "{failed:?}");
        assert_eq!(contained(async { Ok::<u8, JobError>(7) }).await.unwrap(), 7);
    }
}
