//! Why a drill broke off. A failed job is not one of these: it is recorded
//! and judged. These are the runner itself not being able to go on, and
//! [`StepError::is_environment`] tells an environment that failed (exit 3)
//! from a drill that could not be carried out.

use crate::adapter::AgentError;
use crate::env::EnvError;
use crate::env::neo4j::AdminError;
use crate::fault::FaultError;
use crate::graph::read::ReadError;
use crate::repository::RepositoryError;
use crate::s3::S3Error;
use crate::workload::WorkloadError;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The runner's own session to a Neo4j instance failed.
    #[error("neo4j `{instance}`: {doing}: {source}")]
    Neo4j {
        instance: &'static str,
        doing: &'static str,
        source: AdminError,
    },
    #[error("`{region}`: {doing}: {source}")]
    Storage {
        region: &'static str,
        doing: &'static str,
        source: Box<S3Error>,
    },
    #[error(transparent)]
    Env(Box<EnvError>),
    #[error("inject {what}: {source}")]
    Inject {
        what: String,
        source: Box<FaultError>,
    },
    #[error("heal {what}: {source}")]
    Heal {
        what: String,
        source: Box<FaultError>,
    },
    #[error("nothing to undo: no `{0}` fault in place")]
    NothingToUndo(String),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("the agent is not running")]
    NoAgent,
    #[error("workload: {0}")]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A scenario's subgraph query that Neo4j refused or answered oddly.
    #[error("subgraph `{name}`: {message}")]
    Subgraph { name: String, message: String },
    #[error("no successful backup `{reference}` in `{tier}` to {doing}")]
    NoBackup {
        reference: String,
        tier: &'static str,
        doing: &'static str,
    },
    /// A damage step that found nothing of the kind it names.
    #[error("backup `{backup}` in `{tier}` has no {wanted} to damage")]
    NoObject {
        backup: String,
        tier: &'static str,
        wanted: String,
    },
    #[error("no tier `{0}`")]
    UnknownTier(String),
    /// What a foreign agent claimed of a backup that storage does not hold.
    #[error("{0}")]
    Claim(String),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error("heartbeat receiver on port {port}: {source}")]
    Heartbeat { port: u16, source: std::io::Error },
    /// A task of the runner panicked or was cancelled.
    #[error("a runner task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<EnvError> for StepError {
    fn from(e: EnvError) -> Self {
        StepError::Env(Box::new(e))
    }
}

impl StepError {
    /// Whether the environment, not the drill, failed: a server the runner
    /// needs did not answer, or a fault could not be put in place or undone.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            StepError::Neo4j { .. }
                | StepError::Storage { .. }
                | StepError::Env(_)
                | StepError::Inject { .. }
                | StepError::Heal { .. }
                | StepError::Heartbeat { .. }
        )
    }
}
