//! The job table and a job's life: queued → running → succeeded | failed,
//! under a deadline, with retried attempts, saved on every change of state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Agent, StartError, now_ms};
use crate::JobError;
use crate::defect::{self, Defect};
use crate::retry::Attempt;
use graph_agent_api::{BackupKind, FailureClass, Job, JobKind, JobState, JobSummary};

/// The job table in `agent.state_dir`.
pub(super) const JOBS_FILE: &str = "jobs.json";

/// Reads the job table a previous run left. Jobs it left queued or running
/// were cut off by the stop: they are failed now, not left "in progress".
pub(super) fn load_jobs(file: &std::path::Path) -> Result<BTreeMap<String, Job>, StartError> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(_) => return Ok(BTreeMap::new()),
    };
    let mut jobs: BTreeMap<String, Job> =
        serde_json::from_slice(&bytes).map_err(|e| StartError {
            file: file.to_path_buf(),
            message: format!("not a job table: {e}"),
        })?;
    for job in jobs.values_mut().filter(|j| !j.state.is_terminal()) {
        job.state = JobState::Failed;
        job.finished_ms = Some(now_ms());
        job.failure = Some(graph_agent_api::Failure {
            class: FailureClass::Internal,
            message: "interrupted: graph-agent stopped while the job ran".into(),
        });
    }
    if let Err(e) = std::fs::write(file, serde_json::to_vec(&jobs).expect("jobs serialize")) {
        tracing::warn!(file = %file.display(), error = %e, "could not save the job table");
    }
    Ok(jobs)
}

impl Agent {
    pub fn job(&self, id: &str) -> Option<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub fn jobs(&self, kind: JobKind) -> Vec<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|j| j.kind == kind)
            .cloned()
            .collect()
    }

    pub fn summary(&self) -> JobSummary {
        let mut s = JobSummary::default();
        for j in self.jobs.lock().unwrap_or_else(|p| p.into_inner()).values() {
            match j.state {
                JobState::Queued => s.queued += 1,
                JobState::Running => s.running += 1,
                JobState::Succeeded => s.succeeded += 1,
                JobState::Failed => s.failed += 1,
            }
        }
        s
    }

    pub(super) fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = jobs.get_mut(id) {
            let before = job.state;
            f(job);
            debug_assert!(before == job.state || before.may_become(job.state));
            if before != job.state {
                self.save_jobs(&jobs);
            }
        }
    }

    /// Writes the job table (on every change of state), so a restarted
    /// agent still answers for the jobs it had.
    fn save_jobs(&self, jobs: &BTreeMap<String, Job>) {
        let file = self.config.agent.state_dir.join(JOBS_FILE);
        let tmp = file.with_extension("json.tmp");
        let written = std::fs::write(&tmp, serde_json::to_vec(jobs).expect("jobs serialize"))
            .and_then(|_| std::fs::rename(&tmp, &file));
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "could not save the job table");
        }
    }

    /// Queues a job and runs `work` for it in the background.
    fn submit<W, Fut>(
        self: &Arc<Self>,
        kind: JobKind,
        tier: &str,
        backup_kind: Option<BackupKind>,
        work: W,
    ) -> Job
    where
        W: FnOnce(Arc<Self>, String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<String>, JobError>> + Send + 'static,
    {
        let created = now_ms();
        let id = format!("job-{}", self.next_job.fetch_add(1, Ordering::SeqCst));
        let deadline = self.config.transfer.job_deadline.0;
        let enforced = if defect::active(Defect::HangOnConnection) {
            Duration::from_secs(365 * 86_400)
        } else {
            deadline
        };
        let job = Job {
            id: id.clone(),
            kind,
            state: JobState::Queued,
            tier: tier.to_string(),
            backup_kind,
            backup: None,
            created_ms: created,
            started_ms: None,
            finished_ms: None,
            deadline_ms: created + deadline.as_millis() as u64,
            attempts: 0,
            failure: None,
            phases_ms: BTreeMap::new(),
            progress: None,
            scheduled: None,
        };
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.insert(id.clone(), job.clone());
            self.save_jobs(&jobs);
        }
        let agent = self.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            // Waiting for a slot counts against the deadline too: a job never
            // stays queued or running past it.
            let outcome = tokio::time::timeout(enforced, async {
                let _slot = agent
                    .slots
                    .acquire()
                    .await
                    .expect("semaphore is never closed");
                agent.update(&id, |j| {
                    j.state = JobState::Running;
                    j.started_ms = Some(now_ms());
                    j.attempts = 1;
                });
                contained(work(agent.clone(), id.clone())).await
            })
            .await
            .unwrap_or_else(|_| {
                Err(JobError::new(
                    FailureClass::Deadline,
                    format!("not finished within the job deadline of {deadline:?}"),
                ))
            });
            let secs = started.elapsed().as_secs_f64();
            let mut metrics = agent.metrics.lock().unwrap_or_else(|p| p.into_inner());
            metrics.job_seconds.push((kind, secs));
            match outcome {
                Ok(backup) => {
                    metrics.last_success_ms = Some(now_ms());
                    drop(metrics);
                    tracing::info!(job = %id, ?kind, secs, "job succeeded");
                    agent.update(&id, |j| {
                        j.state = JobState::Succeeded;
                        j.finished_ms = Some(now_ms());
                        if backup.is_some() {
                            j.backup = backup;
                        }
                    });
                }
                Err(e) => {
                    drop(metrics);
                    tracing::warn!(job = %id, ?kind, class = ?e.class, error = %e.message, "job failed");
                    agent.update(&id, |j| {
                        j.state = JobState::Failed;
                        j.finished_ms = Some(now_ms());
                        j.failure = Some(e.into_failure());
                    });
                }
            }
        });
        job
    }

    /// Records that job `id` spent the time since `since` in `phase`.
    pub(super) fn phase(&self, id: &str, phase: &str, since: std::time::Instant) {
        let ms = since.elapsed().as_millis() as u64;
        self.update(id, |j| {
            *j.phases_ms.entry(phase.to_string()).or_default() += ms;
        });
    }

    /// Runs `op` with the retry policy; each retry counts as an attempt of job `id`.
    pub(super) async fn attempt<'a, T>(
        &self,
        id: &str,
        mut op: impl FnMut() -> Attempt<'a, T>,
    ) -> Result<T, JobError> {
        self.retry_policy()
            .run(&mut op, |e| {
                self.update(id, |j| j.attempts += 1);
                tracing::info!(job = %id, class = ?e.class, error = %e.message, "retrying");
                *self
                    .metrics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retries
                    .entry(format!("{:?}", e.class).to_lowercase())
                    .or_default() += 1;
            })
            .await
    }

    pub fn submit_backup(self: &Arc<Self>, kind: BackupKind, tier: &str) -> Job {
        let tier = tier.to_string();
        self.submit(
            JobKind::Backup,
            &tier.clone(),
            Some(kind),
            move |agent, id| async move { agent.backup(&id, kind, &tier).await.map(Some) },
        )
    }

    /// A backup the scheduler starts: the job says which entry and how long
    /// busy resources held it back.
    pub fn submit_scheduled(
        self: &Arc<Self>,
        kind: BackupKind,
        tier: &str,
        scheduled: graph_agent_api::Scheduled,
    ) -> Job {
        let job = self.submit_backup(kind, tier);
        let scheduled = Some(scheduled);
        self.update(&job.id, |j| j.scheduled = scheduled.clone());
        Job { scheduled, ..job }
    }

    pub fn submit_restore(self: &Arc<Self>, backup: &str, tier: &str) -> Job {
        let (backup, tier) = (backup.to_string(), tier.to_string());
        self.submit(
            JobKind::Restore,
            &tier.clone(),
            None,
            move |agent, id| async move { agent.restore(&id, &backup, &tier).await.map(Some) },
        )
    }

    pub fn submit_copy(self: &Arc<Self>, backup: &str, from: &str, to: &str) -> Job {
        let (backup, from, to) = (backup.to_string(), from.to_string(), to.to_string());
        self.submit(
            JobKind::Copy,
            &to.clone(),
            None,
            move |agent, id| async move { agent.copy(&id, &backup, &from, &to).await.map(Some) },
        )
    }

    pub fn submit_prune(self: &Arc<Self>, tier: &str) -> Job {
        let tier = tier.to_string();
        self.submit(
            JobKind::Prune,
            &tier.clone(),
            None,
            move |agent, id| async move { agent.prune(&id, &tier).await.map(|_| None) },
        )
    }

    pub fn submit_verify(self: &Arc<Self>, backup: &str, tier: &str, sample: f64) -> Job {
        let (backup, tier) = (backup.to_string(), tier.to_string());
        self.submit(JobKind::Verify, &tier.clone(), None, move |agent, id| async move {
            agent.verify(&id, &backup, &tier, sample).await.map(Some)
        })
    }
}

/// Runs a job's work so that a panic ends the job as failed (`internal`)
/// instead of leaving it `running` for ever: the stuck job of the field
/// notes.
async fn contained<T>(work: impl Future<Output = Result<T, JobError>>) -> Result<T, JobError> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(JobError::new(
                FailureClass::Internal,
                format!("the job's task panicked: {what}"),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_whose_task_panics_fails_as_internal() {
        let failed = contained(async {
            if true {
                panic!("index out of bounds");
            }
            Ok::<(), JobError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(failed.class, FailureClass::Internal);
        assert!(failed.message.contains("index out of bounds"), "{failed:?}");
        assert_eq!(contained(async { Ok::<u8, JobError>(7) }).await.unwrap(), 7);
    }
}
