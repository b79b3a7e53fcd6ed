//! The agent's control API: the request and response types that graph-agent
//! serves and graphdrill sends, and the units they are written in. It is the
//! only code the agent and the harness share, so the runner can drill any
//! agent that speaks it. Times are Unix milliseconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Path prefix of every versioned endpoint.
pub const API_PREFIX: &str = "/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    Full,
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
    Restore,
    Verify,
    Copy,
    Prune,
}

/// A job moves queued → running → succeeded | failed, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }

    /// Whether a job may move from `self` to `next`.
    pub fn may_become(self, next: JobState) -> bool {
        matches!(
            (self, next),
            (JobState::Queued, JobState::Running)
                | (JobState::Queued, JobState::Failed)
                | (JobState::Running, JobState::Succeeded)
                | (JobState::Running, JobState::Failed)
        )
    }
}

/// Why a job failed. Drills compare it with the fault they injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// A request got no answer in time.
    Timeout,
    /// Connection refused, reset or closed.
    Network,
    /// Storage refused the identity (S3 `AccessDenied`, HTTP 403).
    Permission,
    /// The database refused the credentials.
    Auth,
    /// Data failed a check: bad tag, wrong key, missing or damaged object.
    Integrity,
    /// The job ran past its deadline.
    Deadline,
    /// Resource thresholds kept the job from running.
    Resources,
    Internal,
}

impl FailureClass {
    /// Transient classes are retried (bounded, with backoff); the others fail fast.
    pub fn is_transient(self) -> bool {
        matches!(self, FailureClass::Timeout | FailureClass::Network)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

/// `POST /v1/backups`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    pub kind: BackupKind,
    /// A tier name from the agent's configuration, e.g. `primary`.
    pub tier: String,
}

/// `POST /v1/restores`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The backup to restore (its chain of parents comes with it).
    pub backup: String,
    pub tier: String,
}

/// `POST /v1/copies`: copies a backup and its parents from one tier to
/// another without reading the database again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    pub backup: String,
    pub from: String,
    pub to: String,
}

/// `POST /v1/prune`: removes a tier's backups older than its retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    pub tier: String,
}

/// `POST /v1/verify`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub backup: String,
    pub tier: String,
    /// Fraction of chunks to re-read, in (0, 1]; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<f64>,
}

/// A job as `GET /v1/backups/{id}` and `GET /v1/restores/{id}` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub state: JobState,
    pub tier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_kind: Option<BackupKind>,
    /// The backup made or used, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// The job fails with class `deadline` if still running at this time.
    pub deadline_ms: u64,
    /// 1 + the retries the job made (0 while queued).
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Milliseconds spent in each finished phase, e.g. `cut`, `upload` for a
    /// backup; `fetch`, `decode`, `apply`, `verify` for a restore.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub phases_ms: std::collections::BTreeMap<String, u64>,
    /// How far the current phase has come, where the agent can tell (a
    /// restore counts entities written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Set on jobs the agent's scheduler started, not a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<Scheduled>,
}

/// How a scheduled job came to start when it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    /// The `[[schedule]]` entry's name.
    pub entry: String,
    /// When the entry was due (Unix ms).
    pub due_ms: u64,
    /// How long busy resources held the job back.
    pub held_ms: u64,
    /// Why it was held, e.g. `cpu 93% > 70%`; `None` if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// `done` of `total` units of the phase named `phase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: String,
    pub done: u64,
    pub total: u64,
}

/// Counts of jobs by state, carried in heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    pub queued: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
}

/// What the agent POSTs to its control endpoint every heartbeat interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub agent_id: String,
    pub version: String,
    pub sent_ms: u64,
    /// Increases by one per heartbeat, so gaps are visible to the receiver.
    pub sequence: u64,
    pub jobs: JobSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_ms: Option<u64>,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// A [`FailureClass`] name, or `bad_request`, `unauthorized`, `not_found`.
    pub class: String,
    pub message: String,
}

/// Exit codes of both programs, `graphdrill` and `graph-agent` (the README
/// has the table): a script drilling or running either tells them apart.
pub mod exit {
    /// Everything passed: every check of a drill, or the job that was run.
    pub const SUCCESS: u8 = 0;
    /// A drill ran (or was judged again) and a check failed or could not
    /// decide; for graph-agent, the job it ran failed.
    pub const FAILED: u8 = 1;
    /// Bad input: usage, a bad setting or scenario, a missing prerequisite.
    pub const BAD_INPUT: u8 = 2;
    /// The environment failed: a component did not start, died, or was not
    /// ready in time.
    pub const ENVIRONMENT: u8 = 3;
}

/// A duration written as `5s`, `250ms`, `24h` or `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{s}` is not a duration ({e}); write e.g. `5s`, `250ms`, `24h`"
            ))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_never_change() {
        use JobState::*;
        for from in [Succeeded, Failed] {
            for to in [Queued, Running, Succeeded, Failed] {
                assert!(!from.may_become(to), "{from:?} -> {to:?}");
            }
        }
        assert!(Queued.may_become(Running));
        assert!(!Running.may_become(Queued));
    }

    #[test]
    fn only_timeouts_and_network_errors_are_retried() {
        use FailureClass::*;
        let retried: Vec<_> = [
            Timeout, Network, Permission, Auth, Integrity, Deadline, Resources, Internal,
        ]
        .into_iter()
        .filter(|c| c.is_transient())
        .collect();
        assert_eq!(retried, vec![Timeout, Network]);
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let err = serde_json::from_str::<BackupRequest>(
            r#"{"kind":"full","tier":"primary","tierr":"x"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("tierr"), "{err}");
    }
}
