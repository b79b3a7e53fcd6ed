//! The agent's behaviour under faults: no job stuck past its deadline, the
//! failure class the fault calls for, no claimed success without the
//! backup in storage, heartbeats that go quiet only when they should,
//! bounded retries, and no secret in any log or report.

use crate::api::{FailureClass, Job, JobState};
use crate::evidence::{AuthProbe, Fingerprint};
use crate::history::{Event, EventKind, Seen};
use crate::scenario::word;

use super::{CheckResult, Measure, Status, Unit, secs};

/// Jobs may finish this long after their deadline (polling, clocks).
pub const DEADLINE_GRACE_MS: u64 = 5_000;

/// Every job the runner followed ended, and no later than its deadline.
/// Timed by the runner's clock where it has the times (the agent's stamps
/// could lie); the deadline is the one the agent stated, as a duration.
pub fn no_stuck_jobs(events: &[Event]) -> CheckResult {
    let mut stuck = Vec::new();
    let mut jobs = 0;
    for e in events {
        if let EventKind::Job { job, seen, .. } = &e.kind {
            jobs += 1;
            if let Some(seen) = seen {
                let allowed = job.deadline_ms.saturating_sub(job.created_ms) + DEADLINE_GRACE_MS;
                match seen.took_ms().filter(|_| job.state.is_terminal()) {
                    None => stuck.push(format!(
                        "job {} ({}) still {} when the runner gave up",
                        job.id,
                        word(&job.kind),
                        word(&job.state)
                    )),
                    Some(took) if took > allowed => stuck.push(format!(
                        "job {} ({}) took {} by the runner's clock, over its deadline of {}",
                        job.id,
                        word(&job.kind),
                        secs(took),
                        secs(allowed - DEADLINE_GRACE_MS)
                    )),
                    Some(_) => {}
                }
                continue;
            }
            let ended = job.finished_ms.filter(|_| job.state.is_terminal());
            match ended {
                None => stuck.push(format!(
                    "job {} ({}) still {} when last seen at {} ms (deadline {} ms)",
                    job.id,
                    word(&job.kind),
                    word(&job.state),
                    e.time_ms,
                    job.deadline_ms
                )),
                Some(t) if t > job.deadline_ms + DEADLINE_GRACE_MS => stuck.push(format!(
                    "job {} ({}) ended {} after its deadline",
                    job.id,
                    word(&job.kind),
                    secs(t - job.deadline_ms)
                )),
                Some(_) => {}
            }
        }
    }
    // With no job to look at, there is nothing to pass.
    let status = match (jobs, stuck.is_empty()) {
        (_, false) => Status::Fail,
        (0, true) => Status::Unknown,
        _ => Status::Pass,
    };
    CheckResult::new(
        "no-stuck-jobs",
        status,
        format!(
            "{} of {jobs} jobs stuck in progress or past their deadline",
            stuck.len()
        ),
    )
    .measure(Measure::count("stuck jobs", stuck.len() as u64).at_most(0.0))
    .details(stuck)
}

/// What a scenario expects of one job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Expectation {
    pub state: JobState,
    pub class: Option<FailureClass>,
    /// From the request to the terminal state.
    pub within_ms: Option<u64>,
    pub max_attempts: Option<u32>,
}

/// Whether `job` (None: the runner never saw it end) met the expectation,
/// timed by the runner's clock when `seen` is given.
pub fn job_expectation(
    name: &str,
    job: Option<&Job>,
    seen: Option<Seen>,
    expect: &Expectation,
) -> CheckResult {
    let want = match expect.class {
        Some(c) => format!("{} with class {}", word(&expect.state), word(&c)),
        None => word(&expect.state),
    };
    let want = match expect.within_ms {
        Some(w) => format!("{want} within {}", secs(w)),
        None => want,
    };
    let want = match expect.max_attempts {
        Some(n) => format!("{want} in at most {n} attempts"),
        None => want,
    };
    let Some(job) = job.filter(|j| j.state.is_terminal()) else {
        return CheckResult::new(
            name,
            Status::Fail,
            format!("expected {want}; the job never ended"),
        );
    };
    let took = seen.and_then(|s| s.took_ms()).unwrap_or_else(|| {
        job.finished_ms
            .unwrap_or(u64::MAX)
            .saturating_sub(job.created_ms)
    });
    let class = job.failure.as_ref().map(|f| f.class);
    let ok = job.state == expect.state
        && (expect.class.is_none() || class == expect.class)
        && expect.within_ms.is_none_or(|w| took <= w)
        && expect.max_attempts.is_none_or(|n| job.attempts <= n);
    let got = match &job.failure {
        Some(f) => format!(
            "{} with class {} in {} after {} attempts ({})",
            word(&job.state),
            word(&f.class),
            secs(took),
            job.attempts,
            f.message
        ),
        None => format!(
            "{} in {} after {} attempts",
            word(&job.state),
            secs(took),
            job.attempts
        ),
    };
    CheckResult::new(
        name,
        if ok { Status::Pass } else { Status::Fail },
        format!("expected {want}; got {got}"),
    )
    .measure(match expect.within_ms {
        Some(w) => Measure::seconds("duration", took).at_most_ms(w),
        None => Measure::seconds("duration", took),
    })
    .measure(Measure::count("attempts", job.attempts))
}

/// Every backup the agent called successful could be read back from
/// storage, whole, by the judge's own reader when the runner saw the success.
pub fn claims(events: &[Event]) -> CheckResult {
    let mut checked = 0;
    let mut false_claims = Vec::new();
    for e in events {
        if let EventKind::Job {
            job,
            in_storage: Some(found),
            ..
        } = &e.kind
            && job.state == JobState::Succeeded
        {
            checked += 1;
            if !found.restorable {
                false_claims.push(format!(
                    "backup {} (job {}) reported succeeded but cannot be read back from tier `{}`: {}",
                    job.backup.as_deref().unwrap_or("?"),
                    job.id,
                    job.tier,
                    found.detail
                ));
            }
        }
    }
    let status = match (checked, false_claims.is_empty()) {
        (_, false) => Status::Fail,
        (0, true) => Status::Unknown,
        _ => Status::Pass,
    };
    CheckResult::new(
        "agent-claims",
        status,
        format!(
            "{checked} successful backups read back from storage, {} false claims",
            false_claims.len()
        ),
    )
    .measure(Measure::count("false claims", false_claims.len() as u64).at_most(0.0))
    .details(false_claims)
}

/// Every backup in a tier's catalog is one the agent reported as made: a
/// backup that died half-way (a crash, a failed upload) is not visible.
/// `catalogs` maps each tier to the backup ids its catalog lists.
pub fn no_unclaimed_backups(
    events: &[Event],
    catalogs: &std::collections::BTreeMap<String, Vec<String>>,
) -> CheckResult {
    let claimed: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(Event::finished_job)
        .filter(|j| j.state == JobState::Succeeded && j.kind == crate::api::JobKind::Backup)
        .filter_map(|j| j.backup.as_deref())
        .collect();
    let mut unclaimed = Vec::new();
    for (tier, ids) in catalogs {
        for id in ids.iter().filter(|id| !claimed.contains(id.as_str())) {
            unclaimed.push(format!(
                "backup {id} is in the `{tier}` catalog but no backup job reported it"
            ));
        }
    }
    let listed: usize = catalogs.values().map(Vec::len).sum();
    CheckResult::new(
        "no-unclaimed-backups",
        if unclaimed.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        format!(
            "{listed} catalog entries in {} tiers, {} not reported by any job",
            catalogs.len(),
            unclaimed.len()
        ),
    )
    .measure(Measure::count("unclaimed", unclaimed.len() as u64).at_most(0.0))
    .details(unclaimed)
}

/// A restore that failed left its target as it found it, empty: nothing
/// half-restored may pass for a database. `left_nodes` is what the runner
/// counted there afterwards (None: it could not look).
pub fn no_partial_restore(name: &str, left_nodes: Option<i64>) -> CheckResult {
    let (status, summary) = match left_nodes {
        Some(0) => (
            Status::Pass,
            "the failed restore left the target empty".to_string(),
        ),
        Some(n) => (
            Status::Fail,
            format!("the failed restore left {n} nodes in the target"),
        ),
        None => (
            Status::Unknown,
            "the target could not be read after the failed restore".into(),
        ),
    };
    CheckResult::new(name, status, summary).measure(
        match left_nodes {
            Some(n) => Measure::count("nodes left", n.max(0) as u64),
            None => Measure::absent("nodes left", Unit::Count, "unknown"),
        }
        .at_most(0.0),
    )
}

/// Periods `[from, to)` without a heartbeat for longer than `threshold`,
/// within `[start, end]`, given heartbeat arrival times (sorted).
pub fn offline_periods(arrivals: &[u64], start: u64, end: u64, threshold: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut last = start;
    for &t in arrivals.iter().filter(|&&t| t >= start && t <= end) {
        if t > last + threshold {
            out.push((last + threshold, t));
        }
        last = t;
    }
    if end > last + threshold {
        out.push((last + threshold, end));
    }
    out
}

/// A control-link fault from `from` to `to`: the agent must be seen
/// offline no later than `threshold + interval` after it began, and online
/// again no later than that after it ended. `end` is when the evidence ends.
pub fn offline_detected(
    name: &str,
    periods: &[(u64, u64)],
    (from, to): (u64, u64),
    end: u64,
    (threshold, interval): (u64, u64),
) -> CheckResult {
    let limit = threshold + interval;
    let during = periods.iter().find(|(s, e)| *e > from && *s <= to);
    let Some(&(s, e)) = during else {
        return CheckResult::new(
            name,
            Status::Fail,
            "the agent was never seen offline during the fault",
        )
        .measure(Measure::absent("offline after", Unit::Seconds, "never").at_most_ms(limit));
    };
    let detected = s.saturating_sub(from);
    if e >= end {
        // No heartbeat came after the fault; was there time for one?
        let (status, why) = if end.saturating_sub(to) > limit {
            (
                Status::Fail,
                "never seen online again after the fault ended",
            )
        } else {
            (
                Status::Unknown,
                "the drill ended before the agent could be seen online again",
            )
        };
        return CheckResult::new(
            name,
            status,
            format!("offline {} after the fault began; {why}", secs(detected)),
        )
        .measure(Measure::seconds("offline after", detected).at_most_ms(limit))
        .measure(Measure::absent("online again after", Unit::Seconds, "never").at_most_ms(limit));
    }
    let back = e.saturating_sub(to);
    let ok = detected <= limit && back <= limit;
    CheckResult::new(
        name,
        if ok { Status::Pass } else { Status::Fail },
        format!(
            "offline {} after the fault began, online {} after it ended",
            secs(detected),
            secs(back)
        ),
    )
    .measure(Measure::seconds("offline after", detected).at_most_ms(limit))
    .measure(Measure::seconds("online again after", back).at_most_ms(limit))
}

/// A sub-threshold fault from `from` to `to`: the agent must never be seen offline.
pub fn never_offline(name: &str, periods: &[(u64, u64)], (from, to): (u64, u64)) -> CheckResult {
    let hits: Vec<String> = periods
        .iter()
        .filter(|(s, e)| *e > from && *s <= to)
        .map(|(s, e)| {
            format!(
                "offline from +{} for {}",
                secs(s.saturating_sub(from)),
                secs(e - s)
            )
        })
        .collect();
    CheckResult::new(
        name,
        if hits.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        format!("{} false offline periods during the fault", hits.len()),
    )
    .measure(Measure::count("false offline periods", hits.len() as u64).at_most(0.0))
    .details(hits)
}

/// No job made more attempts than the agent's retry budget allows.
pub fn retries_bounded(events: &[Event], max_retries: u32) -> CheckResult {
    let over: Vec<String> = events
        .iter()
        .filter_map(Event::finished_job)
        .filter(|j| j.attempts > max_retries + 1)
        .map(|j| format!("job {} made {} attempts", j.id, j.attempts))
        .collect();
    let most = events
        .iter()
        .filter_map(Event::finished_job)
        .map(|j| j.attempts)
        .max();
    let status = match (most, over.is_empty()) {
        (_, false) => Status::Fail,
        (None, true) => Status::Unknown,
        _ => Status::Pass,
    };
    let most = most.unwrap_or(0);
    CheckResult::new(
        "retries-bounded",
        status,
        format!("at most {most} attempts per job"),
    )
    .measure(Measure::count("most attempts", most).at_most(f64::from(max_retries + 1)))
    .details(over)
}

/// Every request with a missing, wrong or wrongly-schemed token was refused
/// with 401, and none started a job.
pub fn api_auth(probes: &[AuthProbe]) -> CheckResult {
    let name = "api-auth";
    if probes.is_empty() {
        // Every drill of an agent with an API probes it; only a run stored
        // before graphdrill did has no probe, and is not judged on it.
        return CheckResult::new(
            name,
            Status::Skipped,
            "the run was stored before graphdrill probed the API",
        );
    }
    let mut let_in = Vec::new();
    let mut unanswered = Vec::new();
    for p in probes {
        match p.status {
            Some(401) => {}
            Some(status) => let_in.push(format!(
                "{}: HTTP {status}{}",
                p.credential,
                p.job
                    .as_ref()
                    .map_or(String::new(), |j| format!(", job {j} started"))
            )),
            None => unanswered.push(format!(
                "{}: no answer ({})",
                p.credential,
                p.error.as_deref().unwrap_or("unknown error")
            )),
        }
    }
    let refused = probes.len() - let_in.len() - unanswered.len();
    let status = if !let_in.is_empty() {
        Status::Fail
    } else if !unanswered.is_empty() {
        Status::Unknown
    } else {
        Status::Pass
    };
    let summary = if let_in.is_empty() {
        format!(
            "{refused} of {} requests with a bad credential refused with 401",
            probes.len()
        )
    } else {
        format!(
            "{} of {} requests with a bad credential let in",
            let_in.len(),
            probes.len()
        )
    };
    CheckResult::new(name, status, summary)
        .measure(Measure::count("let in", let_in.len() as u64).at_most(0.0))
        .details(let_in.into_iter().chain(unanswered).collect())
}

/// No secret appears in any of `files` (name, content). Findings name the
/// file and which secret, never the secret itself.
pub fn no_secrets(files: &[(String, Vec<u8>)], secrets: &[Fingerprint]) -> CheckResult {
    let mut leaks = Vec::new();
    for (file, content) in files {
        for secret in secrets {
            if secret.len >= 8 && secret.found_in(content) {
                leaks.push(format!("{} appears in {file}", secret.name));
            }
        }
    }
    CheckResult::new(
        "no-secrets-in-logs",
        if leaks.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        format!(
            "{} files searched for {} secrets",
            files.len(),
            secrets.len()
        ),
    )
    .measure(Measure::count("leaks", leaks.len() as u64).at_most(0.0))
    .details(leaks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Failure, JobKind};
    use crate::history::InStorage;

    fn job(state: JobState, finished: Option<u64>) -> Job {
        Job {
            id: "j1".into(),
            kind: JobKind::Backup,
            state,
            tier: "primary".into(),
            backup_kind: None,
            backup: Some("b1".into()),
            created_ms: 0,
            started_ms: Some(1),
            finished_ms: finished,
            deadline_ms: 10_000,
            attempts: 1,
            failure: None,
            phases_ms: Default::default(),
            progress: None,
            scheduled: None,
        }
    }

    /// A job's end; for a backup, whether the judge read it back from storage.
    fn event(job: Job, restorable: Option<bool>) -> Event {
        Event {
            time_ms: 20_000,
            kind: EventKind::Job {
                step: 0,
                job: Box::new(job),
                seen: None,
                in_storage: restorable.map(|restorable| InStorage {
                    restorable,
                    detail: "`chunks/ab/ab12` is missing".into(),
                }),
            },
        }
    }

    #[test]
    fn a_job_still_running_when_given_up_on_is_stuck() {
        let ok = [event(job(JobState::Succeeded, Some(500)), None)];
        assert_eq!(no_stuck_jobs(&ok).status, Status::Pass);
        let stuck = [event(job(JobState::Running, None), None)];
        assert_eq!(no_stuck_jobs(&stuck).status, Status::Fail);
        let late = [event(job(JobState::Failed, Some(16_000)), None)];
        assert_eq!(no_stuck_jobs(&late).status, Status::Fail);
        // No job at all proves nothing.
        assert_eq!(no_stuck_jobs(&[]).status, Status::Unknown);
        assert_eq!(retries_bounded(&[], 3).status, Status::Unknown);
    }

    #[test]
    fn the_failure_class_and_time_must_match_the_expectation() {
        let mut j = job(JobState::Failed, Some(2_000));
        j.failure = Some(Failure {
            class: FailureClass::Permission,
            message: "AccessDenied".into(),
        });
        let mut e = Expectation {
            state: JobState::Failed,
            class: Some(FailureClass::Permission),
            within_ms: Some(30_000),
            max_attempts: Some(1),
        };
        assert_eq!(
            job_expectation("x", Some(&j), None, &e).status,
            Status::Pass
        );
        j.attempts = 2; // one retry is one too many here
        assert_eq!(
            job_expectation("x", Some(&j), None, &e).status,
            Status::Fail
        );
        j.attempts = 1;
        e.within_ms = Some(1_000);
        assert_eq!(
            job_expectation("x", Some(&j), None, &e).status,
            Status::Fail
        );
        e.within_ms = None;
        e.class = Some(FailureClass::Timeout);
        assert_eq!(
            job_expectation("x", Some(&j), None, &e).status,
            Status::Fail
        );
        assert_eq!(job_expectation("x", None, None, &e).status, Status::Fail);
    }

    #[test]
    fn summaries_use_the_words_of_the_api_not_rust_names() {
        let mut j = job(JobState::Failed, Some(2_000));
        j.failure = Some(Failure {
            class: FailureClass::Permission,
            message: "AccessDenied".into(),
        });
        let e = Expectation {
            state: JobState::Succeeded,
            class: None,
            within_ms: None,
            max_attempts: None,
        };
        let summary = job_expectation("x", Some(&j), None, &e).summary;
        assert!(
            summary.starts_with("expected succeeded; got failed with class permission"),
            "{summary}"
        );
    }

    #[test]
    fn the_runners_clock_judges_when_it_saw_the_job() {
        // The agent stamps 2 s; the runner saw 40 s pass.
        let mut j = job(JobState::Failed, Some(2_000));
        j.failure = Some(Failure {
            class: FailureClass::Permission,
            message: "AccessDenied".into(),
        });
        let seen = Seen {
            submitted_ms: 100_000,
            ended_ms: Some(140_000),
        };
        let e = Expectation {
            state: JobState::Failed,
            class: Some(FailureClass::Permission),
            within_ms: Some(30_000),
            max_attempts: None,
        };
        assert_eq!(
            job_expectation("x", Some(&j), Some(seen), &e).status,
            Status::Fail
        );
        let stuck = [Event {
            time_ms: 140_000,
            kind: EventKind::Job {
                step: 0,
                job: Box::new(j),
                seen: Some(seen),
                in_storage: None,
            },
        }];
        // Deadline 10 s (+5 s grace) by the agent's word; 40 s by the runner's.
        assert_eq!(no_stuck_jobs(&stuck).status, Status::Fail);
    }

    #[test]
    fn a_success_storage_cannot_give_back_is_a_false_claim() {
        let good = [event(job(JobState::Succeeded, Some(5)), Some(true))];
        assert_eq!(claims(&good).status, Status::Pass);
        let bad = [event(job(JobState::Succeeded, Some(5)), Some(false))];
        let result = claims(&bad);
        assert_eq!(result.status, Status::Fail);
        assert!(
            result.details[0].contains("`chunks/ab/ab12` is missing"),
            "{result:?}"
        );
        assert_eq!(claims(&[]).status, Status::Unknown);
    }

    #[test]
    fn a_catalog_entry_no_job_reported_is_unclaimed() {
        let events = [event(job(JobState::Succeeded, Some(5)), Some(true))];
        let mut catalogs = std::collections::BTreeMap::new();
        catalogs.insert("primary".to_string(), vec!["b1".to_string()]);
        assert_eq!(
            no_unclaimed_backups(&events, &catalogs).status,
            Status::Pass
        );
        catalogs.insert(
            "archive".to_string(),
            vec!["b1".to_string(), "b2".to_string()],
        );
        let r = no_unclaimed_backups(&events, &catalogs);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(
            r.details,
            ["backup b2 is in the `archive` catalog but no backup job reported it"]
        );
    }

    #[test]
    fn a_failed_restore_must_leave_its_target_empty() {
        assert_eq!(no_partial_restore("r", Some(0)).status, Status::Pass);
        assert_eq!(no_partial_restore("r", Some(12)).status, Status::Fail);
        assert_eq!(no_partial_restore("r", None).status, Status::Unknown);
    }

    #[test]
    fn gaps_longer_than_the_threshold_are_offline() {
        let arrivals = [1_000, 2_000, 3_000, 9_000, 10_000];
        let p = offline_periods(&arrivals, 0, 12_000, 3_000);
        assert_eq!(p, [(6_000, 9_000)]);
        // The fault began at 3 500: offline seen 2.5 s later (≤ 3 s + 1 s).
        let r = offline_detected("hb", &p, (3_500, 8_500), 12_000, (3_000, 1_000));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        // Healed at 8.5 s, but no heartbeat ever again: not back online.
        let gone = offline_periods(&arrivals[..3], 0, 20_000, 3_000);
        let r = offline_detected("hb", &gone, (3_500, 8_500), 20_000, (3_000, 1_000));
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert_eq!(never_offline("hb", &p, (3_500, 8_500)).status, Status::Fail);
        assert_eq!(
            never_offline("hb", &p, (9_500, 12_000)).status,
            Status::Pass
        );
        let none = offline_periods(&[1_000, 2_000, 3_000], 0, 3_500, 3_000);
        assert_eq!(
            offline_detected("hb", &none, (1_000, 3_500), 3_500, (3_000, 1_000)).status,
            Status::Fail
        );
    }

    #[test]
    fn secrets_are_found_and_not_repeated() {
        let files = [("agent.log".to_string(), b"token=hunter2hunter2 ok".to_vec())];
        let secrets = [Fingerprint::of("control token", "hunter2hunter2")];
        let r = no_secrets(&files, &secrets);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.details, ["control token appears in agent.log"]);
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn more_attempts_than_the_budget_fail() {
        let mut j = job(JobState::Failed, Some(5));
        j.attempts = 4;
        let events = [event(j, None)];
        assert_eq!(retries_bounded(&events, 3).status, Status::Pass);
        assert_eq!(retries_bounded(&events, 2).status, Status::Fail);
    }

    fn probe(credential: &str, status: Option<u16>, job: Option<&str>) -> AuthProbe {
        AuthProbe {
            credential: credential.into(),
            status,
            job: job.map(str::to_string),
            error: status.is_none().then(|| "connection refused".into()),
        }
    }

    #[test]
    fn a_request_with_a_bad_token_let_in_fails_api_auth_naming_the_job_it_started() {
        let refused = [
            probe("no token", Some(401), None),
            probe("a wrong token", Some(401), None),
        ];
        assert_eq!(api_auth(&refused).status, Status::Pass);
        let let_in = [
            probe("no token", Some(401), None),
            probe("a wrong token", Some(202), Some("job-7")),
        ];
        let r = api_auth(&let_in);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(
            r.details,
            vec!["a wrong token: HTTP 202, job job-7 started"]
        );
        assert_eq!(
            api_auth(&[probe("no token", None, None)]).status,
            Status::Unknown
        );
        assert_eq!(api_auth(&[]).status, Status::Skipped);
    }
}
