//! Named defects for graphdrill's self-test: a drill must fail on the
//! check that should catch each one. Compiled in only with the cargo
//! feature `defects` (off by default) and switched on per process by
//! `GRAPH_AGENT_DEFECTS=name,name`; without the feature, [`active`] is
//! always false and the optimiser removes every hook.

/// A deliberate bug, each modelled on a quiet way real backups fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Reports a backup succeeded while its upload is still going on.
    EarlySuccess,
    /// Treats `AccessDenied` as transient and retries it without bound.
    RetryAccessDenied,
    /// Leaves deletions out of incremental backups.
    DropDeletions,
    /// Sends no heartbeat while a job runs.
    QuietHeartbeats,
    /// Waits forever on a hung connection: no request timeout, no deadline.
    HangOnConnection,
    /// Stamps recovery points with this host's clock, however wrong it is.
    LocalClock,
    /// Reads integers -16..=-1 as 240..=255 (neo4rs 0.8's one-byte integer
    /// bug), in its export and so in its own restore check alike.
    TinyNegativeInts,
    /// Stamps the recovery point with the agent's wall clock when the
    /// manifest is sealed, after the upload, not the database's time under
    /// the cut's lock: writes acknowledged during the upload are claimed.
    LateRecoveryPoint,
    /// Lets in any bearer token: it checks that one is given, not which.
    AnyToken,
    /// Verify lists the chain and reads no chunk: it passes over rot.
    VerifyChecksNothing,
    /// Prune removes every expired backup, even one a retained
    /// incremental builds on.
    PruneIgnoresChains,
}

impl Defect {
    pub const ALL: [Defect; 11] = [
        Defect::EarlySuccess,
        Defect::RetryAccessDenied,
        Defect::DropDeletions,
        Defect::QuietHeartbeats,
        Defect::HangOnConnection,
        Defect::LocalClock,
        Defect::TinyNegativeInts,
        Defect::LateRecoveryPoint,
        Defect::AnyToken,
        Defect::VerifyChecksNothing,
        Defect::PruneIgnoresChains,
    ];

    /// The name used in `GRAPH_AGENT_DEFECTS`.
    pub fn name(self) -> &'static str {
        match self {
            Defect::EarlySuccess => "early-success",
            Defect::RetryAccessDenied => "retry-access-denied",
            Defect::DropDeletions => "drop-deletions",
            Defect::QuietHeartbeats => "quiet-heartbeats",
            Defect::HangOnConnection => "hang-on-connection",
            Defect::LocalClock => "local-clock",
            Defect::TinyNegativeInts => "tiny-negative-ints",
            Defect::LateRecoveryPoint => "late-recovery-point",
            Defect::AnyToken => "any-token",
            Defect::VerifyChecksNothing => "verify-checks-nothing",
            Defect::PruneIgnoresChains => "prune-ignores-chains",
        }
    }
}

/// Whether `defect` is switched on in this process.
#[cfg(feature = "defects")]
pub fn active(defect: Defect) -> bool {
    static ON: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ON.get_or_init(|| {
        let list = std::env::var("GRAPH_AGENT_DEFECTS").unwrap_or_default();
        let on: Vec<String> = list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !on.is_empty() {
            tracing::warn!(defects = ?on, "running with deliberate defects (self-test)");
        }
        on
    })
    .iter()
    .any(|n| n == defect.name())
}

/// Whether `defect` is switched on in this process: never, without the
/// `defects` feature.
#[cfg(not(feature = "defects"))]
pub fn active(_defect: Defect) -> bool {
    false
}
