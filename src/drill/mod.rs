//! The drill runner: for each scenario, reset the environment, load the
//! fixture, start the agent and the workload, play the timeline, heal
//! everything, judge, and write the report.
//!
//! ```text
//! prepare → (workload ‖ timeline of steps) → heal → judge → report
//! ```

mod heartbeat;
mod progress;
mod steps;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub use progress::Progress;

use crate::check::{CheckResult, Status, registry};
use crate::env::{EnvError, Environment};
use crate::evidence;
use crate::history::EventKind;
use crate::report::{self, Report};
use crate::scenario::Scenario;
use steps::{Drill, StepError};
use store::RunStore;

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("run folder `{}`: {source}", path.display())]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub reports: PathBuf,
    /// Overrides every scenario's seed.
    pub seed: Option<u64>,
    /// The agent under test.
    pub agent: crate::adapter::Spec,
}

/// One finished drill: its report and where it lives.
pub struct Outcome {
    pub report: Report,
    pub dir: PathBuf,
    /// Set when the environment failed under the drill (a server died, or
    /// the runner could not reach one): what happened. The verdict then
    /// says nothing about the agent.
    pub environment: Option<String>,
}

/// Runs one scenario in `env` (shared by the scenarios of a run: each
/// starts by putting it back to a clean state).
pub async fn run(
    env: &Arc<Environment>,
    scenario: &Scenario,
    opts: &RunOptions,
    progress: &Progress,
) -> Result<Outcome, DrillError> {
    let mut scenario = scenario.clone();
    if let Some(seed) = opts.seed {
        scenario.seed = seed;
    }
    let store =
        RunStore::create(&opts.reports, &scenario.name).map_err(|source| DrillError::Store {
            path: opts.reports.clone(),
            source,
        })?;
    progress.line(&format!(
        "▶ {} (seed {}) → {}",
        scenario.name,
        scenario.seed,
        store.dir.display()
    ));
    let started_ms = crate::history::now_ms();
    let clock = Instant::now();
    let mut drill = Drill::new(env.clone(), &scenario, &store, opts, progress);
    let result = play(&mut drill, &scenario, progress).await;
    let finish = drill.finish().await;
    let error = result.err().or(finish.err());
    if let Some(e) = &error {
        progress.line(&format!("  ✗ drill broke off: {e}"));
    }
    let environment = environment_failure(env, error.as_ref());
    store.collect_logs(&drill.logs());
    // Judged from what was stored, as `graphdrill check` judges it again.
    let written = evidence::write(&store.dir, &drill.evidence());
    let checks = match written.and_then(|()| evidence::load(&store.dir)) {
        Ok(ev) => registry::judge(&ev),
        Err(e) => vec![CheckResult::new("evidence", Status::Unknown, e.to_string())],
    };
    let verdict = Report::verdict_of(&checks, error.is_some());
    let events = store.events.snapshot();
    let report = Report {
        schema: report::SCHEMA_VERSION,
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        tags: scenario.tags.clone(),
        seed: scenario.seed,
        started_ms,
        finished_ms: crate::history::now_ms(),
        verdict,
        error: error.map(|e| e.to_string()),
        throughput: throughput(&drill.ops(), started_ms),
        checks,
        events,
    };
    report::write(&store.dir, &report).map_err(|source| DrillError::Store {
        path: store.dir.clone(),
        source,
    })?;
    print_checks(progress, &report);
    progress.line(&format!(
        "{} {} in {:.1} s — {}",
        verdict_word(verdict),
        scenario.name,
        clock.elapsed().as_secs_f64(),
        store.dir.join("report.html").display()
    ));
    Ok(Outcome {
        report,
        dir: store.dir.clone(),
        environment,
    })
}

/// What failed in the environment, if anything did: a component that is
/// no longer running after the drill healed everything, or an error of the
/// environment's making that broke the drill off.
fn environment_failure(env: &Environment, error: Option<&StepError>) -> Option<String> {
    let dead: Vec<String> = env
        .alive()
        .into_iter()
        .filter(|(_, up)| !up)
        .map(|(name, _)| name)
        .collect();
    if !dead.is_empty() {
        return Some(format!("{} stopped running", dead.join(", ")));
    }
    error.filter(|e| e.is_environment()).map(|e| e.to_string())
}

/// One line per check: mark, name, summary.
pub fn print_checks(progress: &Progress, report: &Report) {
    for c in &report.checks {
        let mark = match c.status {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::Unknown => "?",
            Status::Skipped => "-",
        };
        progress.line(&format!("  {mark} {}: {}", c.name, c.summary));
    }
}

pub fn verdict_word(verdict: Status) -> &'static str {
    match verdict {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Unknown => "UNKNOWN",
        Status::Skipped => "SKIPPED",
    }
}

/// Judges a stored run again from its evidence alone and rewrites its
/// report files (`report.json` keeps the run's times, events and error).
pub fn rejudge(dir: &Path) -> Result<Report, DrillError> {
    let ev = evidence::load(dir).map_err(|e| DrillError::Setup(e.to_string()))?;
    let path = dir.join("report.json");
    let old = std::fs::read(&path).map_err(|source| DrillError::Store {
        path: path.clone(),
        source,
    })?;
    let unreadable = |e: serde_json::Error| DrillError::Setup(format!("`{}`: {e}", path.display()));
    // The checks are judged anew, so a report of an older schema reads too.
    let mut old: serde_json::Value = serde_json::from_slice(&old).map_err(unreadable)?;
    old["checks"] = serde_json::Value::Array(Vec::new());
    old["schema"] = report::SCHEMA_VERSION.into();
    let mut report: Report = serde_json::from_value(old).map_err(unreadable)?;
    report.checks = registry::judge(&ev);
    report.verdict = Report::verdict_of(&report.checks, report.error.is_some());
    report::write(dir, &report).map_err(|source| DrillError::Store {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(report)
}

/// The timeline: prepare, then each step in order, `at` offsets counted
/// from the end of preparation.
async fn play(
    drill: &mut Drill<'_>,
    scenario: &Scenario,
    progress: &Progress,
) -> Result<(), StepError> {
    progress.status("preparing: databases, buckets, fixture");
    drill.prepare().await?;
    // Offsets count from here: the workload has just started.
    let clock = Instant::now();
    for (i, step) in scenario.timeline() {
        if let Some(at) = step.at {
            let wait = at.0.saturating_sub(clock.elapsed());
            tokio::time::sleep(wait).await;
        }
        let what = steps::describe(step);
        progress.status(&format!("step {i}: {what}"));
        drill.events().push(EventKind::StepStarted {
            step: i,
            what: what.clone(),
        });
        let outcome = drill.step(i, step).await;
        let (ok, message) = match &outcome {
            Ok(m) => (true, m.clone()),
            Err(e) => (false, e.to_string()),
        };
        progress.line(&format!(
            "  [{:>6.1}s] step {i}: {what} — {}",
            clock.elapsed().as_secs_f64(),
            if message.is_empty() { "done" } else { &message }
        ));
        drill.events().push(EventKind::StepFinished {
            step: i,
            what,
            ok,
            message,
        });
        outcome?;
    }
    Ok(())
}

/// Acknowledged operations per second since `started_ms`.
pub fn throughput(ops: &[crate::history::Op], started_ms: u64) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let acked = ops
        .iter()
        .filter(|o| o.phase == crate::history::Phase::Ok && o.index > 0);
    for op in acked {
        let s = (op.time_ms.saturating_sub(started_ms) / 1000) as usize;
        if out.len() <= s {
            out.resize(s + 1, 0);
        }
        out[s] += 1;
    }
    out
}

/// Where the reports go by default: `reports/` in the working folder.
pub fn default_reports() -> PathBuf {
    Path::new("reports").to_path_buf()
}
