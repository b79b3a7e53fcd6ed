//! graph-agent, the backup agent under test. It must never import the
//! runner's modules (faults, workload, checks): graphdrill drives it only
//! through [`graph_agent_api`].
//!
//! Collector ([`source`]: consistent cuts of Neo4j) → transport and storage
//! engine ([`repo`]: chunks, encryption, tiers) → jobs with deadlines and
//! retries ([`service`]) → control API ([`server`]), heartbeats
//! ([`heartbeat`]), the scheduler ([`schedule`]) and the metadata sync
//! ([`metadata`]).

pub mod bolt;
pub mod config;
pub mod defect;
pub mod graph;
pub mod heartbeat;
pub mod metadata;
pub mod repo;
pub mod retry;
pub mod s3;
pub mod schedule;
pub mod server;
pub mod service;
pub mod source;

use graph_agent_api::{Failure, FailureClass};

/// A job's failure: its class decides retries and what a drill expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class:?}: {message}")]
pub struct JobError {
    pub class: FailureClass,
    pub message: String,
}

impl JobError {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }

    pub fn into_failure(self) -> Failure {
        Failure {
            class: self.class,
            message: self.message,
        }
    }
}

impl From<repo::RepoError> for JobError {
    fn from(e: repo::RepoError) -> Self {
        use repo::{RepoError, StoreErrorKind};
        let class = match &e {
            RepoError::Store(s) => match s.kind {
                StoreErrorKind::Permission => FailureClass::Permission,
                StoreErrorKind::Timeout => FailureClass::Timeout,
                StoreErrorKind::Network => FailureClass::Network,
                StoreErrorKind::NotFound => FailureClass::Integrity,
                StoreErrorKind::Other => FailureClass::Internal,
            },
            RepoError::Key { .. }
            | RepoError::Integrity { .. }
            | RepoError::Format { .. }
            | RepoError::MissingParent { .. } => FailureClass::Integrity,
            RepoError::NotFound { .. } => FailureClass::Internal,
        };
        Self::new(class, e.to_string())
    }
}

impl From<source::SourceError> for JobError {
    fn from(e: source::SourceError) -> Self {
        let m = e.to_string();
        let lower = m.to_lowercase();
        let class = if lower.contains("unauthorized") || lower.contains("authentication") {
            FailureClass::Auth
        } else if lower.contains("timed out") || lower.contains("timeout") {
            FailureClass::Timeout
        } else if [
            "io error",
            "ioerror",
            "unexpectedeof",
            "connection",
            "broken pipe",
            "reset by peer",
            "refused",
        ]
        .iter()
        .any(|needle| lower.contains(needle))
        {
            FailureClass::Network
        } else {
            FailureClass::Internal
        };
        Self::new(class, m)
    }
}

/// Logs to stderr, filtered by the environment variable `var` (tracing's
/// env-filter syntax), by default `info` without the Bolt driver's chatter;
/// in colour only on a terminal, and never with `NO_COLOR` set.
pub fn init_logging(var: &str) {
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(var)
                .unwrap_or_else(|_| "info,neo4rs=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(message: &str) -> FailureClass {
        JobError::from(source::SourceError {
            op: "cut",
            message: message.into(),
        })
        .class
    }

    #[test]
    fn a_connection_cut_mid_read_is_a_network_failure() {
        // What neo4rs 0.8 says when a partition cuts a PULL.
        let cut = "unexpected response for PULL: Err(IOError { detail: Kind(UnexpectedEof) })";
        assert_eq!(class_of(cut), FailureClass::Network);
        assert_eq!(
            class_of("Connection refused (os error 111)"),
            FailureClass::Network
        );
        assert_eq!(class_of("The client is unauthorized"), FailureClass::Auth);
        assert_eq!(class_of("relationship `r` dangles"), FailureClass::Internal);
    }
}
