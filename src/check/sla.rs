//! Recovery SLA: how long a restore took from the request to a verified,
//! queryable graph, broken down by phase, against the tier's SLA.

use std::collections::BTreeMap;

use super::{CheckResult, Measure, Status, Unit, secs};
use crate::api::{Job, JobState};
use crate::scenario::word;

/// Judges one restore job. `requested_ms` is when the runner asked for it
/// and `queryable_ms` when it could first query the restored graph (None:
/// it never could), both by the runner's clock: the agent's may be off.
pub fn check(
    name: &str,
    job: &Job,
    requested_ms: u64,
    queryable_ms: Option<u64>,
    sla_ms: u64,
) -> CheckResult {
    let Some(done) = queryable_ms.filter(|_| job.state == JobState::Succeeded) else {
        let why = match &job.failure {
            Some(f) => format!("the restore failed ({}: {})", word(&f.class), f.message),
            None => format!("the restore ended {}", word(&job.state)),
        };
        return CheckResult::new(name, Status::Fail, why)
            .measure(Measure::absent("recovery time", Unit::Seconds, "none").at_most_ms(sla_ms));
    };
    let took = done.saturating_sub(requested_ms);
    let status = if took <= sla_ms {
        Status::Pass
    } else {
        Status::Fail
    };
    let phases: BTreeMap<&str, u64> = job
        .phases_ms
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let breakdown = phases
        .iter()
        .map(|(k, v)| format!("{k} {}", secs(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut r = CheckResult::new(
        name,
        status,
        format!(
            "restored and queryable in {} (SLA {}){}",
            secs(took),
            secs(sla_ms),
            if breakdown.is_empty() {
                String::new()
            } else {
                format!(": {breakdown}")
            }
        ),
    )
    .measure(Measure::seconds("recovery time", took).at_most_ms(sla_ms));
    for (k, v) in phases {
        r = r.measure(Measure::seconds(k, v));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::JobKind;

    fn job(state: JobState) -> Job {
        Job {
            id: "j".into(),
            kind: JobKind::Restore,
            state,
            tier: "primary".into(),
            backup_kind: None,
            backup: Some("b".into()),
            created_ms: 1_000,
            started_ms: Some(1_010),
            finished_ms: Some(3_000),
            deadline_ms: 60_000,
            attempts: 1,
            failure: None,
            phases_ms: [("fetch".to_string(), 500), ("apply".to_string(), 1_400)].into(),
            progress: None,
            scheduled: None,
        }
    }

    #[test]
    fn a_restore_within_the_sla_passes_with_its_phases() {
        let r = check("sla", &job(JobState::Succeeded), 1_000, Some(3_100), 5_000);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.measures[0].display, "2.100 s");
        assert!(r.summary.contains("fetch 0.500 s"), "{}", r.summary);
    }

    #[test]
    fn a_slow_or_failed_restore_fails() {
        assert_eq!(
            check("sla", &job(JobState::Succeeded), 1_000, Some(3_100), 2_000).status,
            Status::Fail
        );
        assert_eq!(
            check("sla", &job(JobState::Failed), 1_000, None, 5_000).status,
            Status::Fail
        );
    }
}
