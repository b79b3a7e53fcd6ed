//! graphdrill: chaos and disaster-recovery drills for graph-database backups.
//!
//! Glossary:
//! - **environment**: the real servers of one drill (two Neo4j, two S3
//!   regions, Toxiproxy), started and stopped by graphdrill ([`env`]).
//! - **component**: one of those servers, behind one interface
//!   ([`env::Component`]): prepare, start, probe, provision, stop, logs.
//! - **link**: a network path the agent uses, each through its own Toxiproxy
//!   proxy ([`env::Link`]); the judge never uses these.
//! - **fault**: a reversible injury to the environment: a toxic on a link, a
//!   partition, an `AccessDenied` bucket policy, region loss, a rotated
//!   password ([`fault`]). Every fault has a heal.
//! - **agent**: the backup tool under test, a program graphdrill launches
//!   and reaches only through its control API ([`api`]); graphdrill never
//!   links its code, so no agent bug can hide in code the judge shares.
//! - **graph**: the judge's own model of a property graph, read from Neo4j
//!   by the judge's own reader ([`graph::read`]).
//! - **workload**, **history**, **backup**, **restore**, **check**,
//!   **report**: the drill itself, built on these.

/// The control API's types: the only code graphdrill shares with an agent.
pub use graph_agent_api as api;

pub mod adapter;
pub mod bolt;
pub mod check;
pub mod drill;
pub mod env;
pub mod evidence;
pub mod fault;
pub mod graph;
pub mod history;
pub mod report;
pub mod repository;
pub mod s3;
pub mod scenario;
pub mod workload;

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
