//! A backup tool run as commands, as a cron job runs it: one command per
//! job, in the agent file's folder, with the environment's endpoints and
//! the job's request in `GRAPHDRILL_*` variables (README, "Drilling your
//! own backup tool"). Exit status 0 is success; the last line of stdout
//! that is a JSON object is the job's result:
//!
//! ```json
//! {"backup": "2026-12-02T10:00:00Z", "recovery_point_ms": 1764669600000,
//!  "objects": [{"tier": "primary", "key": "exports/2026-12-02T10:00:00Z.cypher"}]}
//! ```
//!
//! A command still running at its timeout is killed (its whole process
//! group) and its job reported as never ended: a stuck job.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::file::{AgentFile, CommandSpec};
use super::{AgentError, AgentSetup, Claim, Ended, Profile, StoredObject, agent_env};
use crate::api::{BackupKind, Failure, FailureClass, Job, JobKind, JobState};
use crate::env::Environment;
use crate::env::process::{Process, log_tail};
use crate::history::now_ms;
use crate::scenario::word;

/// A command agent: nothing runs between jobs.
pub struct CommandAgent {
    file: AgentFile,
    runner: Arc<Runner>,
}

impl CommandAgent {
    pub fn new(
        env: &Environment,
        file: &AgentFile,
        spec: &CommandSpec,
        setup: AgentSetup,
    ) -> Result<Self, AgentError> {
        let jobs = setup.dir.join("jobs");
        std::fs::create_dir_all(&jobs)
            .map_err(|e| AgentError::process(&file.name, format!("{}: {e}", jobs.display())))?;
        Ok(Self {
            file: file.clone(),
            runner: Arc::new(Runner {
                name: file.name.clone(),
                dir: file.dir.clone(),
                spec: spec.clone(),
                vars: agent_env(env, &file.name, &setup.dir)?,
                jobs,
                log: setup.log,
                count: AtomicU32::new(0),
                running: Mutex::new(BTreeSet::new()),
            }),
        })
    }

    pub fn profile(&self) -> Profile {
        self.file.profile()
    }

    pub fn runner(&self) -> Arc<Runner> {
        self.runner.clone()
    }

    /// Kills any command still running (a drill that broke off).
    pub fn stop(&mut self) {
        let running = std::mem::take(&mut *self.runner.lock());
        for pgid in running {
            Process::adopt(&self.runner.name, pgid, &self.runner.log).kill();
        }
    }
}

impl Drop for CommandAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the agent's commands.
pub struct Runner {
    name: String,
    /// The agent file's folder: commands run there.
    dir: PathBuf,
    spec: CommandSpec,
    vars: Vec<(String, String)>,
    /// Each job's stdout, kept as `<job id>.out`.
    jobs: PathBuf,
    /// Every command's stderr.
    log: PathBuf,
    count: AtomicU32,
    /// Process groups of commands still running.
    running: Mutex<BTreeSet<u32>>,
}

impl Runner {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the command for a job request in the control API's shape.
    pub fn start(
        self: &Arc<Self>,
        collection: &str,
        body: &serde_json::Value,
    ) -> Result<Running, AgentError> {
        let (kind, argv) = match collection {
            "backups" => (JobKind::Backup, &self.spec.backup),
            "restores" => (JobKind::Restore, &self.spec.restore),
            "verify" if self.spec.verify.is_some() => {
                (JobKind::Verify, self.spec.verify.as_ref().expect("checked"))
            }
            "copies" if self.spec.copy.is_some() => {
                (JobKind::Copy, self.spec.copy.as_ref().expect("checked"))
            }
            other => {
                return Err(AgentError::Unsupported {
                    agent: self.name.clone(),
                    what: format!("run a `{other}` job"),
                    why: "has no command for it",
                });
            }
        };
        let field = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{}-{n}", word(&kind));
        let created_ms = now_ms();
        let backup_kind = field("kind").and_then(|k| match k.as_str() {
            "full" => Some(BackupKind::Full),
            "incremental" => Some(BackupKind::Incremental),
            _ => None,
        });
        // A copy's job is in the tier it copies to, as graph-agent's is.
        let tier = field("tier").or(field("to")).unwrap_or_default();
        let backup = field("backup");
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&self.dir)
            .envs(self.vars.iter().cloned())
            .env("GRAPHDRILL_JOB", word(&kind))
            .env("GRAPHDRILL_JOB_ID", &id)
            .env("GRAPHDRILL_TIER", &tier);
        if let Some(k) = field("kind") {
            cmd.env("GRAPHDRILL_BACKUP_KIND", k);
        }
        if let Some(b) = &backup {
            cmd.env("GRAPHDRILL_BACKUP", b);
        }
        for (var, key) in [("GRAPHDRILL_FROM", "from"), ("GRAPHDRILL_TO", "to")] {
            if let Some(v) = field(key) {
                cmd.env(var, v);
            }
        }
        let out_path = self.jobs.join(format!("{id}.out"));
        let failed = |e: String| AgentError::process(&self.name, e);
        let out = std::fs::File::create(&out_path)
            .map_err(|e| failed(format!("{}: {e}", out_path.display())))?;
        let proc = Process::spawn_to(&self.name, cmd, out, &self.log)
            .map_err(|e| failed(format!("cannot run `{}`: {e}", argv[0])))?;
        self.lock().insert(proc.pid());
        let timeout = self.spec.timeout.0;
        Ok(Running {
            job: Job {
                id,
                kind,
                state: JobState::Running,
                tier,
                backup_kind,
                backup,
                created_ms,
                started_ms: Some(created_ms),
                finished_ms: None,
                deadline_ms: created_ms + timeout.as_millis() as u64,
                attempts: 1,
                failure: None,
                phases_ms: Default::default(),
                progress: None,
                scheduled: None,
            },
            program: argv[0].clone(),
            proc,
            out_path,
            timeout,
            runner: self.clone(),
        })
    }
}

/// A command running for one job.
pub struct Running {
    job: Job,
    program: String,
    proc: Process,
    out_path: PathBuf,
    timeout: Duration,
    runner: Arc<Runner>,
}

/// The result line of a command's stdout.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ResultLine {
    #[serde(default)]
    backup: Option<String>,
    #[serde(default)]
    recovery_point_ms: Option<u64>,
    #[serde(default)]
    objects: Vec<StoredObject>,
}

impl Running {
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Waits for the command to exit, or kills it at its timeout.
    pub async fn wait(self) -> Ended {
        match tokio::task::spawn_blocking(move || self.wait_blocking()).await {
            Ok(ended) => ended,
            Err(e) => panic!("waiting for a command panicked: {e}"),
        }
    }

    fn wait_blocking(mut self) -> Ended {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.proc.status() {
                break Some(status);
            }
            if started.elapsed() > self.timeout {
                tracing::warn!(job = %self.job.id, "command timed out; killing it");
                self.proc.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        self.runner.lock().remove(&self.proc.pid());
        let mut job = self.job;
        let Some(status) = status else {
            // Never ended: the runner reports what it last saw.
            return Ended { job, claim: None };
        };
        job.finished_ms = Some(now_ms());
        let stdout = std::fs::read_to_string(&self.out_path).unwrap_or_default();
        let fail = |job: &mut Job, message: String| {
            job.state = JobState::Failed;
            job.failure = Some(Failure {
                class: FailureClass::Internal,
                message,
            });
        };
        if !status.success() {
            let tail = log_tail(&self.runner.log, 5);
            fail(
                &mut job,
                format!(
                    "`{}` exited with {status}; its stderr ends:\n{tail}",
                    self.program
                ),
            );
            return Ended { job, claim: None };
        }
        match result_line(&stdout) {
            Ok(line) => {
                job.state = JobState::Succeeded;
                let line = line.unwrap_or(ResultLine {
                    backup: None,
                    recovery_point_ms: None,
                    objects: Vec::new(),
                });
                if job.kind == JobKind::Backup {
                    job.backup = Some(line.backup.unwrap_or_else(|| job.id.clone()));
                }
                let claim = Claim {
                    recovery_point_ms: line.recovery_point_ms,
                    objects: line.objects,
                };
                Ended {
                    job,
                    claim: Some(claim),
                }
            }
            Err(e) => {
                fail(
                    &mut job,
                    format!(
                        "`{}` printed a result line that is not graphdrill's ({}): {e}",
                        self.program,
                        self.out_path.display()
                    ),
                );
                Ended { job, claim: None }
            }
        }
    }
}

/// The last line of `stdout` that is a JSON object, read as the result.
fn result_line(stdout: &str) -> Result<Option<ResultLine>, serde_json::Error> {
    let last = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{') && l.ends_with('}'));
    last.map(serde_json::from_str).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runner whose backup is `sh -c SCRIPT`, in a temporary folder.
    fn runner(script: &str, timeout: Duration) -> (Arc<Runner>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        let runner = Arc::new(Runner {
            name: "cron".into(),
            dir: dir.path().to_path_buf(),
            spec: CommandSpec {
                backup: argv.clone(),
                restore: argv,
                verify: None,
                copy: None,
                timeout: crate::api::Dur(timeout),
            },
            vars: Vec::new(),
            jobs: dir.path().to_path_buf(),
            log: dir.path().join("agent.log"),
            count: AtomicU32::new(0),
            running: Mutex::new(BTreeSet::new()),
        });
        (runner, dir)
    }

    fn backup(runner: &Arc<Runner>) -> Ended {
        let body = serde_json::json!({"kind": "full", "tier": "primary"});
        let running = runner.start("backups", &body).unwrap();
        running.wait_blocking()
    }

    #[test]
    fn a_backup_s_result_line_names_the_backup_and_its_claim() {
        let (r, _dir) = runner(
            "echo \"tier=$GRAPHDRILL_TIER kind=$GRAPHDRILL_BACKUP_KIND\" >&2; \
             echo '{\"backup\": \"b1\", \"recovery_point_ms\": 5, \"objects\": [{\"tier\": \"primary\", \"key\": \"k\"}]}'",
            Duration::from_secs(30),
        );
        let ended = backup(&r);
        assert_eq!(ended.job.state, JobState::Succeeded);
        assert_eq!(ended.job.backup.as_deref(), Some("b1"));
        let claim = ended.claim.unwrap();
        assert_eq!(claim.recovery_point_ms, Some(5));
        assert_eq!(claim.objects[0].key, "k");
        let log = std::fs::read_to_string(&r.log).unwrap();
        assert!(log.contains("tier=primary kind=full"), "{log}");
    }

    #[test]
    fn a_command_that_exits_non_zero_is_a_failed_job_with_its_stderr() {
        let (r, _dir) = runner(
            "echo 'AccessDenied on PutObject' >&2; exit 3",
            Duration::from_secs(30),
        );
        let ended = backup(&r);
        assert_eq!(ended.job.state, JobState::Failed);
        let message = ended.job.failure.unwrap().message;
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("AccessDenied on PutObject"), "{message}");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children_and_never_ends() {
        let (r, dir) = runner(
            "sleep 60 & echo $! > child.pid; wait",
            Duration::from_millis(500),
        );
        let ended = backup(&r);
        assert_eq!(ended.job.state, JobState::Running);
        assert_eq!(ended.job.finished_ms, None);
        let pid: u32 = std::fs::read_to_string(dir.path().join("child.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Gone, or a zombie left for init to reap.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
        assert!(
            !running,
            "the command's child {pid} outlived the timeout: {stat}"
        );
        assert!(r.lock().is_empty());
    }

    #[test]
    fn the_last_json_object_on_stdout_is_the_result() {
        let out = "uploading…\n{\"backup\": \"a\"}\nmore text\n\
                   {\"backup\": \"b\", \"recovery_point_ms\": 7, \"objects\": [{\"tier\": \"primary\", \"key\": \"k\"}]}\ndone\n";
        let line = result_line(out).unwrap().unwrap();
        assert_eq!(line.backup.as_deref(), Some("b"));
        assert_eq!(line.recovery_point_ms, Some(7));
        assert_eq!(line.objects[0].key, "k");
    }

    #[test]
    fn no_result_line_is_no_result_and_a_misspelt_one_is_an_error() {
        assert_eq!(result_line("all good\n").unwrap(), None);
        let e = result_line("{\"recovery_point\": 7}").unwrap_err();
        assert!(e.to_string().contains("recovery_point"), "{e}");
    }
}
