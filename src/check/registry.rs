//! Every check graphdrill runs, by name, over a run's stored [`Evidence`].
//! A check declares the evidence files it reads: one that is missing makes
//! it `unknown` naming the file, and one that panics is `unknown` with the
//! panic's message (Jepsen's check-safe), never a crash of the judge.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{
    CheckResult, Status, behaviour, consistency, cursors, expected_graph, intrusion, rpo, sla,
    vocabulary,
};
use crate::api::{JobKind, JobState};
use crate::evidence::{self as file, Evidence};
use crate::graph::Foreign;
use crate::history::{self, Completed, EventKind, Seen};
use crate::scenario::HeartbeatExpect;

/// What every check may use, derived once from the evidence.
pub struct Context {
    pub ops: Vec<Completed>,
    /// What the agent added to the source: left out of comparisons.
    pub foreign: Option<Foreign>,
}

impl Context {
    pub fn of(ev: &Evidence) -> Self {
        let ops = history::complete(&ev.ops);
        let foreign = ev
            .source
            .inventory
            .as_ref()
            .map(|inv| Foreign::find(inv, &vocabulary(&ev.base, &ops)));
        Self { ops, foreign }
    }
}

/// One check, or one family of checks (one result per step it judges).
pub trait Check: Sync {
    fn name(&self) -> &'static str;
    /// The evidence files it reads (a `…-step-` prefix stands for each
    /// restored graph).
    fn inputs(&self) -> &'static [&'static str];
    fn run(&self, ev: &Evidence, ctx: &Context) -> Vec<CheckResult>;
}

/// A check that is a plain function.
struct Registered {
    name: &'static str,
    inputs: &'static [&'static str],
    run: fn(&Evidence, &Context) -> Vec<CheckResult>,
}

impl Check for Registered {
    fn name(&self) -> &'static str {
        self.name
    }

    fn inputs(&self) -> &'static [&'static str] {
        self.inputs
    }

    fn run(&self, ev: &Evidence, ctx: &Context) -> Vec<CheckResult> {
        (self.run)(ev, ctx)
    }
}

const RESTORED: &str = "evidence/restored-step-";

/// Every check, in report order.
pub static CHECKS: &[&dyn Check] = &[
    &Registered {
        name: "source-intrusion",
        inputs: &[file::SCENARIO, file::BASE, file::HISTORY, file::SOURCE],
        run: |ev, ctx| {
            vec![intrusion::check(
                ctx.foreign.as_ref(),
                ev.scenario.expect.intrusion,
            )]
        },
    },
    &Registered {
        name: "step",
        inputs: &[file::EXPECTATIONS],
        run: steps,
    },
    &Registered {
        name: "restore",
        inputs: &[
            file::SCENARIO,
            file::BASE,
            file::HISTORY,
            file::RESTORES,
            RESTORED,
            file::SOURCE,
        ],
        run: restores,
    },
    &Registered {
        name: "heartbeat",
        inputs: &[file::EVENTS, file::HEARTBEAT_WINDOWS, file::SETTINGS],
        run: heartbeats,
    },
    &Registered {
        name: "no-stuck-jobs",
        inputs: &[file::EVENTS],
        run: |ev, _| vec![behaviour::no_stuck_jobs(&ev.events)],
    },
    &Registered {
        name: "agent-claims",
        inputs: &[file::EVENTS],
        run: |ev, _| {
            let backups = ev.events.iter().any(
                |e| matches!(&e.kind, EventKind::Job { job, .. } if job.kind == JobKind::Backup),
            );
            if backups {
                vec![behaviour::claims(&ev.events)]
            } else {
                Vec::new()
            }
        },
    },
    &Registered {
        name: "no-unclaimed-backups",
        inputs: &[file::EVENTS, file::CATALOGS],
        run: |ev, _| vec![behaviour::no_unclaimed_backups(&ev.events, &ev.catalogs)],
    },
    &Registered {
        name: "retries-bounded",
        inputs: &[file::EVENTS, file::SETTINGS],
        run: |ev, _| {
            vec![behaviour::retries_bounded(
                &ev.events,
                ev.settings.max_retries,
            )]
        },
    },
    &Registered {
        name: "no-secrets-in-logs",
        inputs: &[file::SECRETS],
        run: |ev, _| vec![behaviour::no_secrets(&ev.files, &ev.secrets)],
    },
];

/// Runs every check on `ev`.
pub fn judge(ev: &Evidence) -> Vec<CheckResult> {
    let ctx = match catch_unwind(AssertUnwindSafe(|| Context::of(ev))) {
        Ok(ctx) => ctx,
        Err(panic) => {
            return vec![CheckResult::new(
                "evidence",
                Status::Unknown,
                format!("reading the evidence panicked: {}", message(&panic)),
            )];
        }
    };
    CHECKS.iter().flat_map(|c| run_safe(*c, ev, &ctx)).collect()
}

fn run_safe(check: &dyn Check, ev: &Evidence, ctx: &Context) -> Vec<CheckResult> {
    let missing = check.inputs().iter().find_map(|input| {
        ev.missing.iter().find(|(name, _)| {
            name.as_str() == *input || (*input == RESTORED && name.starts_with(RESTORED))
        })
    });
    if let Some((name, why)) = missing {
        return vec![CheckResult::new(
            check.name(),
            Status::Unknown,
            format!("evidence file `{name}` is missing or unreadable: {why}"),
        )];
    }
    catch_unwind(AssertUnwindSafe(|| check.run(ev, ctx))).unwrap_or_else(|panic| {
        vec![CheckResult::new(
            check.name(),
            Status::Unknown,
            format!("the check failed to run: {}", message(&panic)),
        )]
    })
}

fn message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

fn steps(ev: &Evidence, _: &Context) -> Vec<CheckResult> {
    ev.expectations
        .iter()
        .map(|e| {
            behaviour::job_expectation(
                &format!("step[{}] {}", e.step, e.what),
                e.job.as_ref(),
                e.seen,
                &e.expect,
            )
        })
        .collect()
}

fn restores(ev: &Evidence, ctx: &Context) -> Vec<CheckResult> {
    let expect = &ev.scenario.expect;
    let none = Foreign::default();
    let foreign = ctx.foreign.as_ref().unwrap_or(&none);
    let mut out = Vec::new();
    for r in &ev.restores {
        if r.job.state == JobState::Failed {
            out.push(behaviour::no_partial_restore(
                &format!("no-partial-restore[step {}]", r.step),
                r.left_nodes,
            ));
        }
        let Some(restored) = &r.graph else {
            continue;
        };
        let restored = &foreign.strip(restored);
        let name = |what: &str| format!("{what}[step {}]", r.step);
        let cursors = cursors(restored);
        let expected = expected_graph(&ev.base, &ctx.ops, &cursors);
        let d = consistency::diff(&expected, restored);
        if expect.consistency {
            out.push(consistency::check(
                &name("consistency"),
                &expected,
                restored,
            ));
            for (sub, ids) in &r.subgraphs {
                let mut all: BTreeSet<String> = ids.clone();
                all.extend(ev.source.subgraphs.get(sub).cloned().unwrap_or_default());
                if all.is_empty() {
                    out.push(CheckResult::new(
                        format!("{}/{sub}", name("consistency")),
                        Status::Unknown,
                        "the subgraph's Cypher found no node on either side",
                    ));
                    continue;
                }
                out.push(consistency::check(
                    &format!("{}/{sub}", name("consistency")),
                    &consistency::restrict(&expected, &all),
                    &consistency::restrict(restored, &all),
                ));
            }
        }
        if !ctx.ops.is_empty() {
            out.push(rpo::check(&rpo::RestoreInput {
                name: name("rpo"),
                ops: &ctx.ops,
                cursors: &cursors,
                differing: &d.ids(),
                disaster_ms: r.disaster_ms,
                claimed_ms: r.claimed_ms,
                backup_seen: backup_seen(ev, &r.backup),
                rpo_max_ms: expect.rpo_max.map(|d| d.0.as_millis() as u64),
            }));
        }
        out.push(sla::check(
            &format!("{}/{}", name("recovery-sla"), r.tier.name()),
            &r.job,
            r.disaster_ms,
            r.queryable_ms,
            expect.restore_sla.of(r.tier).0.as_millis() as u64,
        ));
    }
    out
}

/// How the runner saw the backup job that made `backup` (a copy keeps the
/// original's id and recovery point, so it is that job).
fn backup_seen(ev: &Evidence, backup: &str) -> Option<Seen> {
    ev.events.iter().find_map(|e| match &e.kind {
        EventKind::Job { job, seen, .. }
            if job.kind == JobKind::Backup && job.backup.as_deref() == Some(backup) =>
        {
            *seen
        }
        _ => None,
    })
}

fn heartbeats(ev: &Evidence, _: &Context) -> Vec<CheckResult> {
    let arrivals: Vec<u64> = ev
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Heartbeat { .. }))
        .map(|e| e.time_ms)
        .collect();
    let (threshold, interval) = (
        ev.settings.offline_threshold_ms,
        ev.settings.heartbeat_interval_ms,
    );
    let mut out = Vec::new();
    for w in &ev.heartbeat_windows {
        let name = format!("heartbeat[step {}]", w.step);
        let Some((from, to)) = fault_window(ev, w.fault) else {
            out.push(CheckResult::new(
                name,
                Status::Unknown,
                "the fault was never injected",
            ));
            continue;
        };
        let start = ev.events.first().map_or(0, |e| e.time_ms);
        let end = ev.events.last().map_or(0, |e| e.time_ms);
        let periods = behaviour::offline_periods(&arrivals, start, end, threshold);
        out.push(match w.expect {
            HeartbeatExpect::Offline => {
                behaviour::offline_detected(&name, &periods, (from, to), end, (threshold, interval))
            }
            HeartbeatExpect::Online => behaviour::never_offline(&name, &periods, (from, to)),
        });
    }
    out
}

/// When fault `n` was injected and healed (or the drill's last event).
fn fault_window(ev: &Evidence, n: usize) -> Option<(u64, u64)> {
    let from = ev.events.iter().find_map(|e| match e.kind {
        EventKind::FaultInjected { fault, .. } if fault == n => Some(e.time_ms),
        _ => None,
    })?;
    let to = ev
        .events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::FaultHealed { fault, .. } if fault == n => Some(e.time_ms),
            _ => None,
        })
        .unwrap_or_else(|| ev.events.last().map_or(from, |e| e.time_ms));
    Some((from, to))
}
