//! Faults: reversible injuries to a running [`Environment`]. Each kind is a
//! small type in its own file with `inject` and `heal`; [`heal_all`] undoes
//! every kind at once, for the runner's exit paths.

mod access_denied;
mod damage;
mod partition;
mod password;
mod region_loss;
mod toxic;

pub use access_denied::AccessDenied;
pub use damage::{Damage, Harm};
pub use partition::Partition;
pub use password::RotatePassword;
pub use region_loss::RegionLoss;
pub use toxic::LinkToxic;

use crate::env::toxiproxy::ToxiproxyError;
use crate::env::{EnvError, Environment};
use crate::s3::S3Error;

pub use crate::env::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Toxiproxy(#[from] ToxiproxyError),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Storage(#[from] crate::repository::RepositoryError),
    #[error("neo4j `{instance}`: {source}")]
    Neo4j {
        instance: String,
        source: crate::env::neo4j::AdminError,
    },
    #[error("unknown {what} `{name}` (valid: {valid})")]
    UnknownTarget {
        what: &'static str,
        name: String,
        valid: String,
    },
}

/// A reversible fault. `heal` undoes `inject` and is safe to call when the
/// fault is not (or no longer) in place.
pub trait Fault: Send + Sync {
    /// What it does, for logs and reports, e.g. `latency 200±50 ms on agent→neo4j`.
    fn describe(&self) -> String;
    fn inject<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>>;
    fn heal<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>>;
}

/// Undoes every fault graphdrill can inject: all links up with no toxics,
/// no deny policy on any bucket, every region running, agent passwords as
/// in their files. Tries everything and returns the first error.
pub async fn heal_all(env: &Environment) -> Result<(), FaultError> {
    let state = env.state();
    let mut first: Option<FaultError> = None;
    let mut keep = |r: Result<(), FaultError>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "heal failed");
            first.get_or_insert(e);
        }
    };
    keep(env.toxiproxy().reset().await.map_err(Into::into));
    for region in state.s3.keys() {
        let lost = RegionLoss::new(region, false);
        keep(lost.heal(env).await);
        keep(AccessDenied::new(region).heal(env).await);
    }
    for instance in state.neo4j.keys() {
        keep(RotatePassword::new(instance).heal(env).await);
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `names` as one comma-separated string, for error messages.
fn valid<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(String::as_str).collect::<Vec<_>>().join(", ")
}
