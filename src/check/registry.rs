//! Every check graphdrill runs, by name, over a run's stored [`Evidence`].
//! A check declares the evidence files it reads: one that is missing makes
//! it `unknown` naming the file, and one that panics is `unknown` with the
//! panic's message (Jepsen's check-safe), never a crash of the judge.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{
    CheckResult, Status, behaviour, consistency, cursors, expected_graph, intrusion, rpo, sla,
    storage, vocabulary,
};
use crate::adapter::Capability;
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
    /// What the agent must do for this check to apply; without it, each
    /// result is `skipped`, naming what the agent lacks.
    fn requires(&self) -> &'static [Capability] {
        &[]
    }
}

/// A check that is a plain function.
struct Registered {
    name: &'static str,
    inputs: &'static [&'static str],
    requires: &'static [Capability],
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

    fn requires(&self) -> &'static [Capability] {
        self.requires
    }
}

const RESTORED: &str = "evidence/restored-step-";

/// Every check, in report order.
pub static CHECKS: &[&dyn Check] = &[
    &Registered {
        name: "source-intrusion",
        inputs: &[file::SCENARIO, file::BASE, file::HISTORY, file::SOURCE],
        requires: &[],
        run: |ev, ctx| {
            vec![intrusion::check(
                ctx.foreign.as_ref(),
                ev.scenario.expect.intrusion,
            )]
        },
    },
    &Registered {
        name: "step",
        inputs: &[file::EXPECTATIONS, file::AGENT],
        requires: &[],
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
        requires: &[],
        run: restores,
    },
    &Registered {
        name: "heartbeat",
        inputs: &[
            file::EVENTS,
            file::HEARTBEAT_WINDOWS,
            file::SETTINGS,
            file::AGENT,
        ],
        requires: &[Capability::Heartbeats],
        run: heartbeats,
    },
    &Registered {
        name: "no-stuck-jobs",
        inputs: &[file::EVENTS],
        requires: &[],
        run: |ev, _| vec![behaviour::no_stuck_jobs(&ev.events)],
    },
    &Registered {
        name: "agent-claims",
        inputs: &[file::EVENTS, file::AGENT],
        requires: &[Capability::Claims],
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
        inputs: &[file::EVENTS, file::CATALOGS, file::AGENT],
        requires: &[Capability::Repository],
        run: |ev, _| vec![behaviour::no_unclaimed_backups(&ev.events, &ev.catalogs)],
    },
    &Registered {
        name: "retries-bounded",
        inputs: &[file::EVENTS, file::SETTINGS, file::AGENT],
        requires: &[Capability::Attempts],
        run: |ev, _| {
            vec![behaviour::retries_bounded(
                &ev.events,
                ev.settings.max_retries,
            )]
        },
    },
    &Registered {
        name: "damage-detected",
        inputs: &[file::DAMAGE, file::EXPECTATIONS],
        requires: &[],
        run: |ev, _| storage::damage_detected(&ev.damage, &ev.expectations),
    },
    &Registered {
        name: "retention",
        inputs: &[file::PRUNES, file::AGENT],
        requires: &[Capability::Repository],
        run: |ev, _| ev.prunes.iter().map(storage::retention).collect(),
    },
    &Registered {
        name: "api-auth",
        inputs: &[file::AUTH_PROBES, file::AGENT],
        requires: &[Capability::ControlApi],
        run: |ev, _| vec![behaviour::api_auth(&ev.auth_probes)],
    },
    &Registered {
        name: "no-secrets-in-logs",
        inputs: &[file::SECRETS],
        requires: &[],
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
    let results = catch_unwind(AssertUnwindSafe(|| check.run(ev, ctx))).unwrap_or_else(|panic| {
        vec![CheckResult::new(
            check.name(),
            Status::Unknown,
            format!("the check failed to run: {}", message(&panic)),
        )]
    });
    match check.requires().iter().find(|c| !ev.agent.has(**c)) {
        Some(lacking) => results
            .into_iter()
            .map(|r| {
                CheckResult::new(
                    r.name,
                    Status::Skipped,
                    format!("{} {}", ev.agent.name, lacking.lacking()),
                )
            })
            .collect(),
        None => results,
    }
}

fn message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Each job step against what the scenario expected of it. What the agent
/// cannot report (a failure class, attempts) is left out and said so.
fn steps(ev: &Evidence, _: &Context) -> Vec<CheckResult> {
    ev.expectations
        .iter()
        .map(|e| {
            let mut expect = e.expect.clone();
            let mut unjudged = Vec::new();
            if !ev.agent.has(Capability::FailureClasses) && expect.class.take().is_some() {
                unjudged.push(Capability::FailureClasses);
            }
            if !ev.agent.has(Capability::Attempts) && expect.max_attempts.take().is_some() {
                unjudged.push(Capability::Attempts);
            }
            let mut r = behaviour::job_expectation(
                &format!("step[{}] {}", e.step, e.what),
                e.job.as_ref(),
                e.seen,
                &expect,
            );
            for c in unjudged {
                r.summary
                    .push_str(&format!(" (not judged: {} {})", ev.agent.name, c.lacking()));
            }
            r
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
                claim_expected: ev.agent.has(Capability::Repository),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Profile;
    use crate::evidence::{HeartbeatWindow, Settings, Source};
    use crate::report::Report;

    /// A drill that expected the agent to go offline during fault 0, which
    /// was never injected: no heartbeat, no job.
    fn evidence(agent: Profile) -> Evidence {
        let scenario =
            toml::from_str("name = \"t\"\ndescription = \"d\"\nseed = 1\n[fixture]\n[expect]\n")
                .unwrap();
        Evidence {
            scenario,
            base: Default::default(),
            ops: Vec::new(),
            events: Vec::new(),
            restores: Vec::new(),
            expectations: Vec::new(),
            heartbeat_windows: vec![HeartbeatWindow {
                fault: 0,
                step: 2,
                expect: HeartbeatExpect::Offline,
            }],
            source: Source::default(),
            catalogs: Default::default(),
            agent,
            auth_probes: Vec::new(),
            damage: Vec::new(),
            prunes: Vec::new(),
            settings: Settings {
                max_retries: 2,
                heartbeat_interval_ms: 1000,
                offline_threshold_ms: 3000,
            },
            secrets: Vec::new(),
            files: Vec::new(),
            missing: Default::default(),
        }
    }

    fn result<'a>(checks: &'a [CheckResult], name: &str) -> &'a CheckResult {
        checks.iter().find(|c| c.name == name).expect(name)
    }

    #[test]
    fn a_check_an_agent_cannot_be_judged_on_is_skipped_naming_what_it_lacks() {
        let graph_agent = judge(&evidence(Profile::graph_agent()));
        assert_eq!(
            result(&graph_agent, "heartbeat[step 2]").status,
            Status::Unknown
        );
        // Stored before the API probe existed: not judged on it, not unknown.
        assert_eq!(result(&graph_agent, "api-auth").status, Status::Skipped);
        let foreign = Profile {
            name: "cron-export".into(),
            capabilities: Default::default(),
        };
        let checks = judge(&evidence(foreign));
        let hb = result(&checks, "heartbeat[step 2]");
        assert_eq!(hb.status, Status::Skipped);
        assert_eq!(hb.summary, "cron-export has no heartbeat");
        let retries = result(&checks, "retries-bounded");
        assert_eq!(retries.status, Status::Skipped);
        assert_eq!(retries.summary, "cron-export reports no attempts");
    }

    #[test]
    fn skipped_checks_do_not_count_towards_the_verdict() {
        let pass = CheckResult::new("a", Status::Pass, "ok");
        let skipped = CheckResult::new("b", Status::Skipped, "x has no heartbeat");
        assert_eq!(
            Report::verdict_of(&[pass, skipped.clone()], false),
            Status::Pass
        );
        assert_eq!(Report::verdict_of(&[skipped], false), Status::Unknown);
    }

    #[test]
    fn a_failure_class_is_not_judged_for_an_agent_that_reports_none() {
        use crate::api::{FailureClass, Job, JobKind, JobState};
        let job = Job {
            id: "j".into(),
            kind: JobKind::Backup,
            state: JobState::Failed,
            tier: "primary".into(),
            backup_kind: None,
            backup: None,
            created_ms: 0,
            started_ms: Some(0),
            finished_ms: Some(10),
            deadline_ms: 1000,
            attempts: 1,
            failure: None,
            phases_ms: Default::default(),
            progress: None,
            scheduled: None,
        };
        let expectation = file::ExpectRecord {
            step: 1,
            what: "backup".into(),
            job: Some(job),
            seen: None,
            expect: behaviour::Expectation {
                state: JobState::Failed,
                class: Some(FailureClass::Permission),
                within_ms: None,
                max_attempts: None,
            },
        };
        let mut ev = evidence(Profile::graph_agent());
        ev.expectations = vec![expectation];
        let strict = judge(&ev);
        assert_eq!(result(&strict, "step[1] backup").status, Status::Fail);
        ev.agent = Profile {
            name: "cron-export".into(),
            capabilities: Default::default(),
        };
        let lenient = judge(&ev);
        let step = result(&lenient, "step[1] backup");
        assert_eq!(step.status, Status::Pass, "{}", step.summary);
        assert!(
            step.summary
                .ends_with("(not judged: cron-export reports no failure class)"),
            "{}",
            step.summary
        );
    }
}
