//! From evidence to verdicts: calls the pure checkers of [`crate::check`]
//! on what the drill recorded.

use std::collections::BTreeSet;

use super::Evidence;
use super::store::RunStore;
use crate::check::{self, CheckResult, behaviour, consistency, intrusion, rpo, sla};
use crate::graph::Foreign;
use crate::history::{self, EventKind, Op, Phase};
use crate::scenario::{HeartbeatExpect, Scenario};

pub fn judge(ev: &Evidence, scenario: &Scenario, store: &RunStore) -> Vec<CheckResult> {
    let ops = history::complete(&ev.ops);
    let mut out = Vec::new();
    // What the agent added to the user's data is not compared, but reported.
    let foreign = ev
        .source_inventory
        .as_ref()
        .map(|inv| Foreign::find(inv, &check::vocabulary(&ev.base, &ops)));
    out.push(intrusion::check(
        foreign.as_ref(),
        scenario.expect.intrusion,
    ));
    let foreign = foreign.unwrap_or_default();
    for e in &ev.expectations {
        out.push(behaviour::job_expectation(
            &format!("step[{}] {}", e.step, e.what),
            e.job.as_ref(),
            e.seen,
            &e.expect,
        ));
    }
    for r in &ev.restores {
        if r.job.state == crate::api::JobState::Failed {
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
        let cursors = check::cursors(restored);
        let expected = check::expected_graph(&ev.base, &ops, &cursors);
        let d = consistency::diff(&expected, restored);
        if scenario.expect.consistency {
            out.push(consistency::check(
                &name("consistency"),
                &expected,
                restored,
            ));
            for (sub, ids) in &r.subgraphs {
                let mut all: BTreeSet<String> = ids.clone();
                all.extend(ev.source_subgraphs.get(sub).cloned().unwrap_or_default());
                if all.is_empty() {
                    out.push(CheckResult::new(
                        format!("{}/{sub}", name("consistency")),
                        check::Status::Unknown,
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
        if !ops.is_empty() {
            out.push(rpo::check(&rpo::RestoreInput {
                name: name("rpo"),
                ops: &ops,
                cursors: &cursors,
                differing: &d.ids(),
                disaster_ms: r.disaster_ms,
                claimed_ms: r.claimed_ms,
                rpo_max_ms: scenario.expect.rpo_max.map(|d| d.0.as_millis() as u64),
            }));
        }
        out.push(sla::check(
            &format!("{}/{}", name("recovery-sla"), r.tier.name()),
            &r.job,
            r.disaster_ms,
            r.queryable_ms,
            scenario.expect.restore_sla.of(r.tier).0.as_millis() as u64,
        ));
    }
    let arrivals: Vec<u64> = ev
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Heartbeat { .. }))
        .map(|e| e.time_ms)
        .collect();
    for w in &ev.heartbeat_windows {
        let name = format!("heartbeat[step {}]", w.step);
        let Some((from, to)) = fault_window(ev, w.fault) else {
            out.push(CheckResult::new(
                name,
                check::Status::Unknown,
                "the fault was never injected",
            ));
            continue;
        };
        let start = ev.events.first().map_or(0, |e| e.time_ms);
        let end = ev.events.last().map_or(0, |e| e.time_ms);
        let periods = behaviour::offline_periods(&arrivals, start, end, ev.offline_threshold_ms);
        out.push(match w.expect {
            HeartbeatExpect::Offline => behaviour::offline_detected(
                &name,
                &periods,
                (from, to),
                end,
                (ev.offline_threshold_ms, ev.heartbeat_interval_ms),
            ),
            HeartbeatExpect::Online => behaviour::never_offline(&name, &periods, (from, to)),
        });
    }
    out.push(behaviour::no_stuck_jobs(&ev.events));
    if ev.events.iter().any(|e| matches!(&e.kind, EventKind::Job { job, .. } if job.kind == crate::api::JobKind::Backup)) {
        out.push(behaviour::claims(&ev.events));
    }
    out.push(behaviour::no_unclaimed_backups(&ev.events, &ev.catalogs));
    out.push(behaviour::retries_bounded(&ev.events, ev.max_retries));
    out.push(behaviour::no_secrets(&store.files(), &ev.secrets));
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

/// Acknowledged operations per second since `started_ms`.
pub fn throughput(ops: &[Op], started_ms: u64) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for op in ops.iter().filter(|o| o.phase == Phase::Ok && o.index > 0) {
        let s = (op.time_ms.saturating_sub(started_ms) / 1000) as usize;
        if out.len() <= s {
            out.resize(s + 1, 0);
        }
        out[s] += 1;
    }
    out
}
