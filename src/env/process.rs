//! The running servers of an environment: on the local backend a child
//! process in its own group (stopped as a group so no grandchild
//! survives), on the container backend a container; either way its output
//! goes to a log file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::EnvError;
use super::docker::{Engine, Status};

/// A running server started by graphdrill.
pub struct Process {
    name: String,
    log: PathBuf,
    kind: Kind,
}

enum Kind {
    Group {
        pid: u32,
        /// Present when this process spawned it, so it can be reaped.
        child: Option<Child>,
    },
    Container {
        engine: Engine,
        id: String,
    },
}

impl Process {
    /// Starts `cmd` in a new process group, appending stdout and stderr to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> Result<Self, EnvError> {
        let out = open_log(log)?;
        Self::spawn_to(name, cmd, out, log)
    }

    /// Starts `cmd` in a new process group, its stdout to `out` (a command
    /// whose output is its answer) and its stderr appended to `log`.
    pub fn spawn_to(name: &str, mut cmd: Command, out: File, log: &Path) -> Result<Self, EnvError> {
        let err = open_log(log)?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().map_err(|source| EnvError::Spawn {
            name: name.to_string(),
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        Ok(Self {
            name: name.to_string(),
            log: log.to_path_buf(),
            kind: Kind::Group {
                pid: child.id(),
                child: Some(child),
            },
        })
    }

    /// A process started by another graphdrill process, known by its pid.
    pub fn adopt(name: &str, pid: u32, log: &Path) -> Self {
        Self {
            name: name.to_string(),
            log: log.to_path_buf(),
            kind: Kind::Group { pid, child: None },
        }
    }

    /// A running container, known by its id.
    pub fn container(name: &str, engine: Engine, id: String, log: &Path) -> Self {
        Self {
            name: name.to_string(),
            log: log.to_path_buf(),
            kind: Kind::Container { engine, id },
        }
    }

    /// The process group id (0 for a container).
    pub fn pid(&self) -> u32 {
        match &self.kind {
            Kind::Group { pid, .. } => *pid,
            Kind::Container { .. } => 0,
        }
    }

    /// The container's id (`None` for a process).
    pub fn container_id(&self) -> Option<&str> {
        match &self.kind {
            Kind::Group { .. } => None,
            Kind::Container { id, .. } => Some(id),
        }
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` once the process has exited (`None` status if it was
    /// not our child and so cannot be reaped).
    pub fn exited(&mut self) -> Option<Option<String>> {
        match &mut self.kind {
            Kind::Group { child: Some(_), .. } => {
                self.status().map(|s: ExitStatus| Some(s.to_string()))
            }
            Kind::Group { pid, child: None } => (!group_alive(*pid)).then_some(None),
            Kind::Container { engine, id } => match engine.status(id) {
                Status::Running | Status::Paused | Status::Unknown => None,
                Status::Exited(code) => Some(code.map(|c| format!("exit status: {c}"))),
                Status::Gone => Some(Some("container removed".into())),
            },
        }
    }

    /// How a child this process spawned exited, once it has.
    pub fn status(&mut self) -> Option<ExitStatus> {
        match &mut self.kind {
            Kind::Group {
                child: Some(child), ..
            } => child.try_wait().ok().flatten(),
            _ => None,
        }
    }

    /// The error for a process that exited while it should be serving.
    pub fn died(&self, status: Option<String>) -> EnvError {
        EnvError::Died {
            name: self.name.clone(),
            status: status.unwrap_or_else(|| "unknown".into()),
            log: self.log.clone(),
            tail: log_tail(&self.log, 40),
        }
    }

    /// SIGKILL to the whole group or container, at once (a crash, not a
    /// shutdown).
    pub fn kill(&mut self) {
        match &self.kind {
            Kind::Group { pid, .. } => {
                // Killed before thawed: a paused process runs no more code.
                signal_group(*pid, libc::SIGKILL);
                signal_group(*pid, libc::SIGCONT);
                self.reap_until(Instant::now() + Duration::from_secs(10));
            }
            Kind::Container { engine, id } => engine.kill(id),
        }
    }

    /// Copies a container's output from now on into the log file (a
    /// process writes its own).
    pub fn follow_output(&self) -> Result<(), EnvError> {
        match &self.kind {
            Kind::Group { .. } => Ok(()),
            Kind::Container { engine, id } => engine.follow(id, &self.log),
        }
    }

    /// Freezes it (SIGSTOP, `docker pause`): connections stay open.
    pub fn pause(&self) -> Result<(), EnvError> {
        match &self.kind {
            Kind::Group { pid, .. } => {
                signal_group(*pid, libc::SIGSTOP);
                Ok(())
            }
            Kind::Container { engine, id } => engine
                .pause(id)
                .map_err(|e| EnvError::component(&self.name, format!("docker pause: {e}"))),
        }
    }

    /// Thaws it after [`Process::pause`].
    pub fn resume(&self) -> Result<(), EnvError> {
        match &self.kind {
            Kind::Group { pid, .. } => {
                signal_group(*pid, libc::SIGCONT);
                Ok(())
            }
            Kind::Container { engine, id } => engine
                .unpause(id)
                .map_err(|e| EnvError::component(&self.name, format!("docker unpause: {e}"))),
        }
    }

    /// Waits until the group is gone and, for our own child, reaped: a JVM
    /// shows as a zombie while its threads still exit, and once we exit no
    /// one else may reap it.
    fn reap_until(&mut self, deadline: Instant) -> bool {
        let Kind::Group { pid, child } = &mut self.kind else {
            return true;
        };
        loop {
            let reaped = match child {
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                None => true,
            };
            if reaped && !group_alive(*pid) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Stops several processes at once (SIGTERM, SIGKILL after `grace` of its
/// name; at once if that is zero), so the slowest sets the pace. Containers
/// are removed once stopped.
pub fn stop_all(procs: &mut [Process], grace: impl Fn(&str) -> Duration) {
    let start = Instant::now();
    let graces: Vec<Duration> = procs.iter().map(|p| grace(&p.name)).collect();
    for (p, grace) in procs.iter().zip(&graces) {
        if let Kind::Group { pid, .. } = p.kind {
            signal_group(pid, libc::SIGCONT);
            let sig = if grace.is_zero() {
                libc::SIGKILL
            } else {
                libc::SIGTERM
            };
            signal_group(pid, sig);
        }
    }
    std::thread::scope(|s| {
        for (p, &grace) in procs.iter().zip(&graces) {
            if let Kind::Container { engine, id } = &p.kind {
                s.spawn(move || engine.stop(id, grace));
            }
        }
    });
    for (p, grace) in procs.iter_mut().zip(graces) {
        if !p.reap_until(start + grace) {
            if !grace.is_zero() {
                tracing::warn!(name = %p.name, pid = p.pid(), "did not stop in time; killing");
            }
            signal_group(p.pid(), libc::SIGKILL);
            p.reap_until(Instant::now() + Duration::from_secs(10));
        }
    }
}

fn signal_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

/// Whether any process of group `pgid` is alive (zombies count as gone).
pub fn group_alive(pgid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let exists = unsafe { libc::kill(-(pgid as libc::pid_t), 0) } == 0;
    exists && !only_zombies(pgid)
}

fn only_zombies(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name: state, ppid, pgrp, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
            return false;
        }
    }
    true
}

/// A server's log file, opened for appending (created if missing).
pub fn open_log(path: &Path) -> Result<File, EnvError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| EnvError::io(path, source))
}

/// The last `n` lines of a log file (empty if it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(WINDOW)));
        let _ = f.read_to_end(&mut buf);
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
