//! A claimed recovery point is a promise about time, judged by the
//! runner's clock: the RPO checker against claims after the backup ended,
//! inside the backup job, before it was asked for, and past the disaster.

use std::collections::{BTreeMap, BTreeSet};

use graphdrill::check::Status;
use graphdrill::check::rpo::{CLAIM_TOLERANCE_MS, RestoreInput, check};
use graphdrill::history::{CURSOR_PROPERTY, Completed, Phase, PropValue, Seen, Write, cursor_id};

/// Writer 0's operation `index`: creates node `id`, acknowledged at
/// `index * 10 + 5` ms.
fn op(index: u64, id: &str) -> Completed {
    Completed {
        process: 0,
        index,
        f: "create".into(),
        invoked_ms: index * 10,
        ended_ms: index * 10 + 5,
        outcome: Phase::Ok,
        committed: true,
        writes: vec![
            Write::PutNode {
                id: id.into(),
                labels: vec!["DrillItem".into()],
                props: BTreeMap::new(),
            },
            Write::SetProps {
                id: cursor_id(0),
                props: BTreeMap::from([(CURSOR_PROPERTY.into(), PropValue::Int(index as i64))]),
            },
        ],
    }
}

/// Operations 1–3 (acknowledged at 15, 25, 35 ms), all in the restore; the
/// disaster at 100 ms; the backup asked for at 40 ms and seen ending at 60.
fn judge(claimed_ms: u64, extra: Option<Completed>) -> graphdrill::check::CheckResult {
    let mut ops = vec![op(1, "a"), op(2, "b"), op(3, "c")];
    ops.extend(extra);
    let cursors = BTreeMap::from([(0, 3)]);
    let differing = BTreeSet::new();
    check(&RestoreInput {
        claim_expected: true,
        name: "rpo".into(),
        ops: &ops,
        cursors: &cursors,
        differing: &differing,
        disaster_ms: 100,
        claimed_ms: Some(claimed_ms),
        backup_seen: Some(Seen {
            submitted_ms: 40,
            ended_ms: Some(60),
        }),
        rpo_max_ms: None,
    })
}

#[test]
fn a_recovery_point_after_the_backup_ended_is_a_broken_claim() {
    // Ten minutes fast, as an agent stamping its own skewed clock would.
    let r = judge(60 + 600_000, None);
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(
        r.details[0].contains("after the runner saw the backup end"),
        "{r:?}"
    );
    let claimed = r.measures.iter().find(|m| m.name == "claimed rpo").unwrap();
    assert!(
        claimed.value.is_some_and(|s| s < 0.0) && claimed.display.starts_with('-'),
        "not clipped to 0: {claimed:?}"
    );
    assert_eq!(
        judge(60 + CLAIM_TOLERANCE_MS + 1, None).status,
        Status::Fail
    );
}

#[test]
fn a_recovery_point_inside_the_backup_job_is_believed() {
    assert_eq!(judge(50, None).status, Status::Pass);
    assert_eq!(judge(60 + CLAIM_TOLERANCE_MS, None).status, Status::Pass);
}

#[test]
fn a_recovery_point_before_the_backup_was_asked_for_is_a_broken_claim() {
    let ops = vec![op(1, "a")];
    let cursors = BTreeMap::from([(0, 1)]);
    let differing = BTreeSet::new();
    let r = check(&RestoreInput {
        claim_expected: true,
        name: "rpo".into(),
        ops: &ops,
        cursors: &cursors,
        differing: &differing,
        disaster_ms: 10_000,
        claimed_ms: Some(5_000 - CLAIM_TOLERANCE_MS - 1),
        backup_seen: Some(Seen {
            submitted_ms: 5_000,
            ended_ms: Some(6_000),
        }),
        rpo_max_ms: None,
    });
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(r.details[0].contains("before the runner asked"), "{r:?}");
}

#[test]
fn a_write_acknowledged_after_the_disaster_but_before_the_claim_is_lost() {
    // Acknowledged at 205 ms: after the disaster (100 ms), before the claim
    // (300 ms), and not in the restore.
    let r = judge(300, Some(op(20, "late")));
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(
        r.details
            .iter()
            .any(|d| d.starts_with("claim broken: writer 0 op 20")),
        "{r:?}"
    );
    assert!(
        r.details
            .iter()
            .any(|d| d.starts_with("lost: writer 0 op 20")),
        "{r:?}"
    );
}
