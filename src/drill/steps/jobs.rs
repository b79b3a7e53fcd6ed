//! Backup and restore jobs: submitted through the control API, followed
//! to their end, recorded with what the scenario expected of them.

use super::*;
use crate::adapter::Ended;

/// A backup running in the background.
pub(super) struct Pending {
    pub(super) step: usize,
    pub(super) what: String,
    pub(super) tier: Tier,
    pub(super) name: Option<String>,
    pub(super) expect: Option<JobExpect>,
    /// The job as it ended, and whether its claim held when it did.
    pub(super) task: tokio::task::JoinHandle<(Ended, Seen, Option<InStorage>)>,
}

pub(super) fn to_expectation(e: &Option<JobExpect>) -> Expectation {
    match e {
        Some(e) => Expectation {
            state: match e.state {
                ExpectedState::Succeeded => JobState::Succeeded,
                ExpectedState::Failed => JobState::Failed,
            },
            class: e.class,
            within_ms: e.within.map(|d| d.0.as_millis() as u64),
            max_attempts: e.max_attempts,
        },
        None => Expectation {
            state: JobState::Succeeded,
            class: None,
            within_ms: None,
            max_attempts: None,
        },
    }
}

/// How long to follow a job: its deadline as a duration (both ends on the
/// agent's clock, so a skewed clock does not stretch it), plus grace,
/// and never more than an hour.
pub(super) fn follow_limit(job: &Job) -> Duration {
    let deadline = Duration::from_millis(job.deadline_ms.saturating_sub(job.created_ms));
    deadline.min(Duration::from_secs(3600)) + FOLLOW_GRACE
}

pub(super) fn job_tier(name: &str) -> Option<Tier> {
    match name {
        "local" => Some(Tier::Local),
        "primary" => Some(Tier::Primary),
        "archive" => Some(Tier::Archive),
        _ => None,
    }
}

impl Drill<'_> {
    /// Remembers a successful backup, for `latest` and step ids.
    pub(super) fn note_backup(&mut self, tier: Tier, name: Option<&String>, job: Option<&Job>) {
        if let Some(job) = job.filter(|j| j.state == JobState::Succeeded)
            && let Some(id) = &job.backup
        {
            self.backups.entry(tier).or_default().push(id.clone());
            if let Some(name) = name {
                self.named.insert(name.clone(), id.clone());
            }
        }
    }

    /// Keeps what a foreign agent claimed of a backup it made.
    fn keep_claim(&mut self, ended: Ended) -> Job {
        if let (Some(claim), Some(id)) = (ended.claim, &ended.job.backup)
            && ended.job.kind == JobKind::Backup
        {
            self.claims.insert(id.clone(), claim);
        }
        ended.job
    }

    /// Submits a backup and follows it on a task of its own.
    pub(super) async fn background_backup(
        &mut self,
        i: usize,
        step: &Step,
        backup: &BackupStep,
        body: serde_json::Value,
    ) -> String {
        let what = describe(step);
        let (tier, expect) = (backup.tier, backup.expect.clone());
        let Some(agent) = &self.agent else {
            return "the agent is not running".into();
        };
        let submitted_ms = now_ms();
        match agent.jobs().submit("backups", body).await {
            Ok(submitted) => {
                let limit = follow_limit(submitted.job());
                let storage = self.storage.clone();
                let profile = self.profile.clone();
                let task = tokio::spawn(async move {
                    let ended = submitted.follow(limit, |_| {}).await;
                    let seen = Seen {
                        submitted_ms,
                        ended_ms: ended.job.state.is_terminal().then(now_ms),
                    };
                    let present = storage.claim_holds(&profile, &ended).await;
                    (ended, seen, present)
                });
                self.pending.push(Pending {
                    step: i,
                    what,
                    tier,
                    name: step.id.clone(),
                    expect,
                    task,
                });
                "submitted; running in the background".into()
            }
            Err(e) => {
                self.expectations.push(ExpectRecord {
                    step: i,
                    what,
                    job: None,
                    seen: None,
                    expect: to_expectation(&expect),
                });
                format!("not accepted: {e}")
            }
        }
    }

    /// Waits for every background job to end, and records each.
    pub(super) async fn settle(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            self.progress
                .status(&format!("waiting for step {}: {}", p.step, p.what));
            let (job, seen, in_storage) = match p.task.await.ok() {
                Some((ended, seen, present)) => (Some(self.keep_claim(ended)), Some(seen), present),
                None => (None, None, None),
            };
            self.record_job(p.step, job.as_ref(), seen, in_storage, p.what, &p.expect);
            self.note_backup(p.tier, p.name.as_ref(), job.as_ref());
        }
    }

    pub(super) fn last_job_line(&self) -> String {
        match self.expectations.last().and_then(|e| e.job.as_ref()) {
            Some(j) => match &j.failure {
                Some(f) => format!("{} ({}: {})", word(&j.state), word(&f.class), f.message),
                None => format!(
                    "{} in {:.1} s",
                    word(&j.state),
                    j.finished_ms
                        .unwrap_or(j.created_ms)
                        .saturating_sub(j.created_ms) as f64
                        / 1000.0
                ),
            },
            None => "the job never ended".into(),
        }
    }

    /// `latest` or a backup step's id, as a backup id in `tier`.
    pub(super) fn resolve(&self, reference: &str, tier: Tier) -> Option<String> {
        if reference == "latest" {
            self.backups.get(&tier).and_then(|b| b.last().cloned())
        } else {
            self.named.get(reference).cloned()
        }
    }

    /// A job step with no backup to act on: judged like a job that never ran.
    pub(super) fn nothing_to(
        &mut self,
        i: usize,
        what: &str,
        tier: Tier,
        expect: &Option<JobExpect>,
        line: String,
    ) -> String {
        self.expectations.push(ExpectRecord {
            step: i,
            what: line,
            job: None,
            seen: None,
            expect: to_expectation(expect),
        });
        format!("no successful backup in `{}` to {what}", tier.name())
    }

    /// Submits a job, follows it to its end, records it.
    pub(super) async fn job_step(
        &mut self,
        i: usize,
        collection: &str,
        body: serde_json::Value,
        what: String,
        expect: &Option<JobExpect>,
    ) -> Option<Job> {
        let jobs = self.agent.as_ref()?.jobs();
        let submitted_ms = now_ms();
        let mut seen = None;
        let ended = match jobs.submit(collection, body).await {
            Ok(submitted) => {
                let limit = follow_limit(submitted.job());
                let progress = self.progress;
                let show = |j: &Job| {
                    if let Some(p) = &j.progress {
                        progress.status(&format!("{what}: {} {}/{}", p.phase, p.done, p.total));
                    }
                };
                let ended = submitted.follow(limit, show).await;
                seen = Some(Seen {
                    submitted_ms,
                    ended_ms: ended.job.state.is_terminal().then(now_ms),
                });
                Some(ended)
            }
            Err(e) => {
                tracing::warn!(error = %e, "job not accepted");
                None
            }
        };
        // Checked the moment the runner sees the success, as a user would.
        let in_storage = match &ended {
            Some(e) => self.storage.claim_holds(&self.profile, e).await,
            None => None,
        };
        let job = ended.map(|e| self.keep_claim(e));
        self.record_job(i, job.as_ref(), seen, in_storage, what, expect);
        job
    }

    /// Records how a job ended (for a backup: what storage held at that
    /// moment) and what the scenario expected of it.
    pub(super) fn record_job(
        &mut self,
        i: usize,
        job: Option<&Job>,
        seen: Option<Seen>,
        in_storage: Option<InStorage>,
        what: String,
        expect: &Option<JobExpect>,
    ) {
        if let Some(job) = job {
            self.events().push(EventKind::Job {
                step: i,
                job: Box::new(job.clone()),
                seen,
                in_storage,
            });
        }
        self.expectations.push(ExpectRecord {
            step: i,
            what,
            job: job.cloned(),
            seen,
            expect: to_expectation(expect),
        });
    }
}
