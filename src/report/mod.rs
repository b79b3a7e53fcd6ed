//! A drill's report: `report.json` (versioned), `junit.xml` (one test case
//! per check) and `report.html` (one self-contained page: an SVG timeline
//! and the table of checks), written into the run's folder.

mod html;
mod junit;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::check::{CheckResult, Status};
use crate::history::Event;

/// Version of `report.json`'s layout (`docs/report.schema.json`); bumped on
/// any incompatible change. 2: measures carry a number and a unit.
pub const SCHEMA_VERSION: u32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: u32,
    pub scenario: String,
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub seed: u64,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub verdict: Status,
    /// Set when the drill could not run to the end (environment, agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub checks: Vec<CheckResult>,
    /// The runner's events: steps, faults, jobs, heartbeats.
    pub events: Vec<Event>,
    /// Acknowledged workload transactions per second, one entry per second
    /// from `started_ms`.
    pub throughput: Vec<u32>,
}

impl Report {
    /// Pass when every check passed; fail when one failed or the drill
    /// broke off; unknown checks alone leave it unknown.
    pub fn verdict_of(checks: &[CheckResult], error: bool) -> Status {
        if error || checks.iter().any(|c| c.status == Status::Fail) {
            Status::Fail
        } else if checks.iter().all(|c| c.status == Status::Skipped)
            || checks.iter().any(|c| c.status == Status::Unknown)
        {
            Status::Unknown
        } else {
            Status::Pass
        }
    }
}

/// Writes `report.json`, `junit.xml` and `report.html` into `dir`.
pub fn write(dir: &Path, report: &Report) -> std::io::Result<Vec<PathBuf>> {
    let json = dir.join("report.json");
    std::fs::write(
        &json,
        serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?,
    )?;
    let junit = dir.join("junit.xml");
    std::fs::write(&junit, junit::render(report))?;
    let html = dir.join("report.html");
    std::fs::write(&html, html::render(report))?;
    Ok(vec![json, junit, html])
}
