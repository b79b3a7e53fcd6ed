//! Recovery point: which acknowledged transactions a restore holds.
//!
//! Per writer, the restored cursor says which prefix of its operations is
//! in. An acknowledged operation past it is **lost**; an operation that
//! failed yet is in is a **phantom**; one whose entities differ from the
//! expected graph is **torn** (in only in part). Operations with unknown
//! outcome are reported apart and never counted as lost. The measured RPO
//! is the time from the last acknowledged operation that survived to the
//! disaster instant (0 when nothing acknowledged was lost), shown next to
//! the RPO the agent claimed (disaster − its recovery point).
//!
//! A claimed recovery point is a promise about time, judged by the
//! runner's clock alone: it must lie between the moment the runner asked
//! for the backup and the moment it saw the backup end (within
//! [`CLAIM_TOLERANCE_MS`]), and every write acknowledged before it must be
//! in the restore, even one acknowledged after the disaster.

use std::collections::{BTreeMap, BTreeSet};

use super::{CheckResult, Measure, Status, secs};
use crate::history::{Completed, Phase, Seen};

/// How far a claimed recovery point may lie outside the backup job's life
/// as the runner saw it. The database and the runner share the host's
/// clock; this covers only the runner's own polling.
pub const CLAIM_TOLERANCE_MS: u64 = 1_000;

/// What the RPO check needs about one restore.
pub struct RestoreInput<'a> {
    pub name: String,
    pub ops: &'a [Completed],
    /// Writer → index of its last operation in the restored graph.
    pub cursors: &'a BTreeMap<u32, u64>,
    /// Ids of entities that differ between the restored and expected graphs.
    pub differing: &'a BTreeSet<String>,
    /// When the disaster happened (the restore was asked for).
    pub disaster_ms: u64,
    /// The recovery point the agent claimed for the restored backup.
    pub claimed_ms: Option<u64>,
    /// Whether the agent keeps claims graphdrill reads (graph-agent's
    /// catalog): then a claim that could not be read makes the check
    /// unknown. Without, an absent claim only goes unjudged.
    pub claim_expected: bool,
    /// The backup job that made the restored backup, as the runner saw it.
    pub backup_seen: Option<Seen>,
    pub rpo_max_ms: Option<u64>,
}

/// Why a claimed recovery point cannot be true, whatever the data shows.
fn impossible_claim(claimed: u64, seen: Seen) -> Option<String> {
    if let Some(end) = seen.ended_ms
        && claimed > end + CLAIM_TOLERANCE_MS
    {
        return Some(format!(
            "claim broken: the recovery point ({claimed} ms) is {} after the runner saw the backup end ({end} ms)",
            secs(claimed - end)
        ));
    }
    if claimed + CLAIM_TOLERANCE_MS < seen.submitted_ms {
        return Some(format!(
            "claim broken: the recovery point ({claimed} ms) is {} before the runner asked for the backup ({} ms)",
            secs(seen.submitted_ms - claimed),
            seen.submitted_ms
        ));
    }
    None
}

pub fn check(input: &RestoreInput) -> CheckResult {
    let mut present = 0u64;
    let mut lost = Vec::new();
    let mut phantom = Vec::new();
    let mut unknown = 0u64;
    // Per writer: when its newest surviving acknowledged op ended.
    let mut last_survived: BTreeMap<u32, u64> = BTreeMap::new();
    let mut claim_broken = Vec::new();
    let touched = |op: &Completed| op.writes.iter().any(|w| input.differing.contains(w.id()));
    // A write is owed if acknowledged before the disaster or before the
    // claimed point, whichever is later.
    let owed_until = input.disaster_ms.max(input.claimed_ms.unwrap_or(0));
    let impossible = input
        .claimed_ms
        .zip(input.backup_seen)
        .and_then(|(c, seen)| impossible_claim(c, seen));
    for op in input.ops {
        let cursor = input.cursors.get(&op.process).copied();
        let included = cursor.is_some_and(|c| op.index <= c);
        // Never committed, yet the restore holds its index or its entities.
        let never_committed = !op.committed && op.outcome != Phase::Info;
        if never_committed && (cursor == Some(op.index) || touched(op)) {
            phantom.push(op);
            continue;
        }
        match op.outcome {
            Phase::Ok if included => {
                present += 1;
                let t = last_survived.entry(op.process).or_default();
                *t = (*t).max(op.ended_ms);
            }
            Phase::Ok if op.ended_ms <= owed_until => {
                lost.push(op);
                if input.claimed_ms.is_some_and(|c| op.ended_ms <= c) {
                    claim_broken.push(op);
                }
            }
            Phase::Info | Phase::Invoke => unknown += 1,
            _ => {}
        }
    }
    let writers: BTreeSet<u32> = input.ops.iter().map(|o| o.process).collect();
    // Committed ops whose entities differ from the expected graph: in part
    // (within the restored prefix) or out of order (past it).
    let torn: Vec<&Completed> = input
        .ops
        .iter()
        .filter(|op| op.committed && touched(op))
        .collect();
    // The widest window of lost writes: per writer that lost any, from its
    // last surviving acknowledged op (or the first op of all) to the disaster.
    let first_ms = input.ops.iter().map(|o| o.invoked_ms).min().unwrap_or(0);
    let rpo_ms = lost
        .iter()
        .map(|op| {
            let since = last_survived.get(&op.process).copied().unwrap_or(first_ms);
            input.disaster_ms.saturating_sub(since)
        })
        .max()
        .unwrap_or(0);
    let too_old = input.rpo_max_ms.is_some_and(|max| rpo_ms > max);
    let status = if !phantom.is_empty()
        || !torn.is_empty()
        || !claim_broken.is_empty()
        || impossible.is_some()
        || too_old
    {
        Status::Fail
    } else if input.ops.is_empty() || (input.claim_expected && input.claimed_ms.is_none()) {
        // Nothing to judge, or the agent's claim could not be read.
        Status::Unknown
    } else {
        Status::Pass
    };
    let mut details = Vec::new();
    let name = |op: &Completed| format!("writer {} op {} ({})", op.process, op.index, op.f);
    details.extend(impossible);
    for op in &claim_broken {
        details.push(format!(
            "claim broken: {} acknowledged at {} ms, before the claimed recovery point, is missing",
            name(op),
            op.ended_ms
        ));
    }
    details.extend(
        phantom
            .iter()
            .map(|op| format!("phantom: {} failed but is in the restore", name(op))),
    );
    details.extend(
        torn.iter()
            .map(|op| format!("torn: {} is in only in part", name(op))),
    );
    details.extend(
        lost.iter()
            .map(|op| format!("lost: {} acknowledged at {} ms", name(op), op.ended_ms)),
    );
    for w in &writers {
        if !input.cursors.contains_key(w) {
            details.push(format!("writer {w}: its cursor is not in the restore"));
        }
    }
    let mut summary = format!(
        "{present} acknowledged transactions present, {} lost, {} phantom, {} torn, {unknown} of unknown outcome; RPO {}",
        lost.len(),
        phantom.len(),
        torn.len(),
        secs(rpo_ms)
    );
    if input.claimed_ms.is_none() && !input.claim_expected {
        summary.push_str("; no recovery point claimed");
    }
    let mut rpo = Measure::seconds("rpo", rpo_ms);
    if let Some(max) = input.rpo_max_ms {
        rpo = rpo.at_most_ms(max);
    }
    let mut result = CheckResult::new(input.name.clone(), status, summary)
        .measure(rpo)
        .measure(Measure::count("present", present))
        .measure(Measure::count("lost", lost.len() as u64))
        .measure(Measure::count("phantom", phantom.len() as u64).at_most(0.0))
        .measure(Measure::count("torn", torn.len() as u64).at_most(0.0))
        .measure(Measure::count("unknown outcome", unknown));
    if let Some(c) = input.claimed_ms {
        // Negative when the claimed point lies after the disaster.
        let claimed = input.disaster_ms as i64 - c as i64;
        result = result.measure(Measure::signed_seconds("claimed rpo", claimed));
    }
    result.details(details)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cursor_op, node, op};
    use super::*;

    fn input<'a>(
        ops: &'a [Completed],
        cursors: &'a BTreeMap<u32, u64>,
        differing: &'a BTreeSet<String>,
    ) -> RestoreInput<'a> {
        RestoreInput {
            claim_expected: true,
            name: "rpo".into(),
            ops,
            cursors,
            differing,
            disaster_ms: 100,
            claimed_ms: Some(0),
            backup_seen: None,
            rpo_max_ms: None,
        }
    }

    fn ops() -> Vec<Completed> {
        vec![
            cursor_op(0),
            op(0, 1, true, vec![node("a")]),
            op(0, 2, true, vec![node("b")]),
            op(0, 3, true, vec![node("c")]),
        ]
    }

    #[test]
    fn a_complete_restore_has_zero_rpo_and_passes() {
        let ops = ops();
        let cursors = BTreeMap::from([(0, 3)]);
        let none = BTreeSet::new();
        let r = check(&input(&ops, &cursors, &none));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.measures[0].value, Some(0.0));
    }

    #[test]
    fn lost_writes_measure_the_rpo_from_the_last_survivor() {
        let ops = ops();
        let cursors = BTreeMap::from([(0, 1)]);
        let none = BTreeSet::new();
        let mut i = input(&ops, &cursors, &none);
        // op 1 was acknowledged at 15 ms; the disaster came at 100 ms.
        let r = check(&i);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.measures[0].value, Some(0.085));
        i.rpo_max_ms = Some(50);
        assert_eq!(check(&i).status, Status::Fail);
    }

    #[test]
    fn a_missing_write_acknowledged_before_the_claimed_point_breaks_the_claim() {
        let ops = ops();
        let cursors = BTreeMap::from([(0, 1)]);
        let none = BTreeSet::new();
        let mut i = input(&ops, &cursors, &none);
        i.claimed_ms = Some(30); // op 2 was acknowledged at 25 ms
        let r = check(&i);
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(
            r.details[0].contains("claim broken: writer 0 op 2"),
            "{r:?}"
        );
    }

    #[test]
    fn a_failed_write_in_the_restore_is_a_phantom_and_a_differing_one_torn() {
        let mut ops = ops();
        ops.push(op(0, 4, false, vec![node("d")]));
        let cursors = BTreeMap::from([(0, 4)]);
        let differing = BTreeSet::from(["b".to_string()]);
        let r = check(&input(&ops, &cursors, &differing));
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.details
                .iter()
                .any(|d| d.starts_with("phantom: writer 0 op 4")),
            "{r:?}"
        );
        assert!(
            r.details
                .iter()
                .any(|d| d.starts_with("torn: writer 0 op 2")),
            "{r:?}"
        );
    }

    #[test]
    fn an_unreadable_claim_is_unknown_but_an_agent_without_claims_is_judged_on_the_data() {
        let ops = ops();
        let cursors = BTreeMap::from([(0, 3)]);
        let none = BTreeSet::new();
        let mut i = input(&ops, &cursors, &none);
        i.claimed_ms = None;
        assert_eq!(check(&i).status, Status::Unknown);
        i.claim_expected = false;
        let r = check(&i);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(r.summary.ends_with("no recovery point claimed"), "{r:?}");
    }
}
