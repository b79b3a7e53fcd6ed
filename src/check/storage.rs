//! Checks over what the runner did to storage and found in it: a damaged
//! object must be noticed by whatever reads its backup, and a prune must
//! keep every backup retention (or a retained backup's chain) needs and
//! remove the rest.

use std::collections::BTreeSet;

use super::{CheckResult, Measure, Status, secs};
use crate::api::JobState;
use crate::evidence::{DamageRecord, ExpectRecord, PruneRecord};
use crate::scenario::word;

/// Each job that read a backup while one of its objects was damaged
/// failed, and its error names the object (its key or its file name): a
/// verify or restore that reports success over a flipped byte checks
/// nothing, and one that fails without saying where leaves the operator
/// guessing which copy to trust.
pub fn damage_detected(damage: &[DamageRecord], jobs: &[ExpectRecord]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for d in damage {
        let file = d.object.rsplit('/').next().unwrap_or(&d.object);
        let harm = format!("`{}` ({})", d.object, word(&d.how));
        for &step in &d.read_by {
            let name = format!("damage-detected[step {step}]");
            let job = jobs
                .iter()
                .find(|e| e.step == step)
                .and_then(|e| e.job.as_ref());
            let (status, summary) = match job {
                None => (
                    Status::Fail,
                    format!(
                        "the job reading backup {} never ended; {harm} was damaged",
                        d.backup
                    ),
                ),
                Some(j) if j.state != JobState::Failed => (
                    Status::Fail,
                    format!(
                        "{} of backup {} {} while {harm} was damaged",
                        word(&j.kind),
                        d.backup,
                        word(&j.state)
                    ),
                ),
                Some(j) => {
                    let message = j.failure.as_ref().map_or("", |f| f.message.as_str());
                    if message.contains(file) {
                        (
                            Status::Pass,
                            format!("{} failed naming {harm}: {message}", word(&j.kind)),
                        )
                    } else {
                        (
                            Status::Fail,
                            format!(
                                "{} failed, but its error does not name {harm}: {message}",
                                word(&j.kind)
                            ),
                        )
                    }
                }
            };
            out.push(CheckResult::new(name, status, summary));
        }
    }
    out
}

/// After a prune that succeeded: every backup younger than the tier's
/// retention, and every backup such a one builds on, still reads back whole;
/// every backup older than retention that none needs is gone from the
/// catalog. Ages are by the runner's clock, from the backup job's
/// submission and end to the prune's, so a backup whose age straddles the
/// retention at the prune is not judged.
pub fn retention(p: &PruneRecord) -> CheckResult {
    let name = format!("retention[step {}]", p.step);
    if p.job.state != JobState::Succeeded {
        return CheckResult::new(
            name,
            Status::Unknown,
            format!("the prune {}: nothing to judge", word(&p.job.state)),
        );
    }
    let prune_end = p.seen.ended_ms.unwrap_or(p.seen.submitted_ms);
    let young = |b: &crate::evidence::PrunedBackup| {
        prune_end.saturating_sub(b.made.submitted_ms) < p.retention_ms
    };
    let old = |b: &crate::evidence::PrunedBackup| {
        b.made
            .ended_ms
            .is_some_and(|end| p.seen.submitted_ms.saturating_sub(end) > p.retention_ms)
    };
    // Retained: the young ones and, through parents, all they build on.
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    for b in p.backups.iter().filter(|b| young(b)) {
        let mut next = Some(b.id.as_str());
        while let Some(id) = next.filter(|id| keep.insert(id)) {
            next = p
                .backups
                .iter()
                .find(|x| x.id == id)
                .and_then(|x| x.parent.as_deref());
        }
    }
    let mut problems = Vec::new();
    let (mut kept, mut gone) = (0u64, 0u64);
    for b in &p.backups {
        if keep.contains(b.id.as_str()) {
            kept += 1;
            if let Some(why) = &b.unreadable_after {
                let role = if young(b) {
                    format!(
                        "{} old",
                        secs(prune_end.saturating_sub(b.made.submitted_ms))
                    )
                } else {
                    "built on by a retained backup".into()
                };
                problems.push(format!(
                    "`{}` ({role}) must be kept, but after the prune: {why}",
                    b.id
                ));
            }
        } else if old(b) {
            gone += 1;
            if b.listed_after {
                problems.push(format!(
                    "`{}` is past its retention and nothing retained needs it, yet the catalog still lists it",
                    b.id
                ));
            }
        }
    }
    let retention = secs(p.retention_ms);
    let (status, summary) = if problems.is_empty() {
        (
            Status::Pass,
            format!(
                "retention {retention} in {}: {kept} backups kept whole, {gone} past retention removed",
                p.tier.name()
            ),
        )
    } else {
        (
            Status::Fail,
            format!(
                "retention {retention} in {}: {}",
                p.tier.name(),
                problems.join("; ")
            ),
        )
    };
    CheckResult::new(name, status, summary)
        .measure(Measure::count("kept", kept))
        .measure(Measure::count("removed", gone))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Job, JobKind};
    use crate::evidence::PrunedBackup;
    use crate::history::Seen;
    use crate::scenario::Tier;

    fn job(kind: JobKind, state: JobState, message: Option<&str>) -> Job {
        let mut j: Job = serde_json::from_value(serde_json::json!({
            "id": "j", "kind": kind, "state": state, "tier": "primary",
            "created_ms": 0, "deadline_ms": 1, "attempts": 1,
        }))
        .unwrap();
        j.failure = message.map(|m| {
            serde_json::from_value(serde_json::json!({"class": "integrity", "message": m})).unwrap()
        });
        j
    }

    fn read(job: Job) -> (Vec<DamageRecord>, Vec<ExpectRecord>) {
        let d = DamageRecord {
            fault: 0,
            step: 1,
            tier: Tier::Primary,
            backup: "b1".into(),
            object: "chunks/ab/ab12".into(),
            how: crate::fault::Harm::Flip,
            read_by: vec![2],
        };
        let e = ExpectRecord {
            step: 2,
            what: "verify".into(),
            job: Some(job),
            seen: None,
            expect: crate::check::behaviour::Expectation {
                state: JobState::Failed,
                class: None,
                within_ms: None,
                max_attempts: None,
            },
        };
        (vec![d], vec![e])
    }

    #[test]
    fn a_verify_that_passes_over_a_damaged_chunk_fails_damage_detected() {
        let (d, e) = read(job(JobKind::Verify, JobState::Succeeded, None));
        let r = &damage_detected(&d, &e)[0];
        assert_eq!(
            (r.name.as_str(), r.status),
            ("damage-detected[step 2]", Status::Fail)
        );
        assert!(r.summary.contains("chunks/ab/ab12"), "{}", r.summary);
    }

    #[test]
    fn a_failure_must_name_the_damaged_object() {
        let named = job(
            JobKind::Verify,
            JobState::Failed,
            Some("`chunks/ab/ab12` is damaged"),
        );
        let (d, e) = read(named);
        assert_eq!(damage_detected(&d, &e)[0].status, Status::Pass);
        let vague = job(JobKind::Restore, JobState::Failed, Some("restore failed"));
        let (d, e) = read(vague);
        assert_eq!(damage_detected(&d, &e)[0].status, Status::Fail);
    }

    fn backup(id: &str, at_ms: u64, parent: Option<&str>, listed: bool, ok: bool) -> PrunedBackup {
        PrunedBackup {
            id: id.into(),
            made: Seen {
                submitted_ms: at_ms,
                ended_ms: Some(at_ms + 1_000),
            },
            parent: parent.map(str::to_string),
            listed_after: listed,
            unreadable_after: (!ok).then(|| "`catalog/x.json` is missing".to_string()),
        }
    }

    fn prune(backups: Vec<PrunedBackup>) -> PruneRecord {
        PruneRecord {
            step: 5,
            tier: Tier::Local,
            retention_ms: 10_000,
            job: job(JobKind::Prune, JobState::Succeeded, None),
            seen: Seen {
                submitted_ms: 30_000,
                ended_ms: Some(31_000),
            },
            backups,
        }
    }

    #[test]
    fn a_prune_that_keeps_chains_and_drops_the_rest_passes() {
        let p = prune(vec![
            backup("old", 0, None, false, false),
            backup("base", 2_000, None, true, true),
            backup("recent", 28_000, Some("base"), true, true),
        ]);
        let r = retention(&p);
        assert_eq!(r.status, Status::Pass, "{}", r.summary);
        assert!(
            r.summary
                .contains("2 backups kept whole, 1 past retention removed")
        );
    }

    #[test]
    fn a_prune_that_deletes_a_retained_backups_parent_fails_retention() {
        let p = prune(vec![
            backup("base", 2_000, None, false, false),
            backup("recent", 28_000, Some("base"), true, false),
        ]);
        let r = retention(&p);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.summary.contains("`base` (built on by a retained backup)"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_prune_that_removes_nothing_fails_retention() {
        let p = prune(vec![
            backup("old", 0, None, true, true),
            backup("recent", 28_000, None, true, true),
        ]);
        let r = retention(&p);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.summary.contains("`old` is past its retention"),
            "{}",
            r.summary
        );
    }
}
