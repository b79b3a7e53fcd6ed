//! graph-agent, the backup agent under test. It must never import the
//! runner's modules (faults, workload, checks): graphdrill drives it only
//! through [`crate::api`].

pub mod config;
pub mod repo;
pub mod source;
