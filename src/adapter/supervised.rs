//! An agent's process as the runner holds it: started by an adapter, and
//! crashed, frozen, thawed or stopped by a scenario's steps.

use std::time::Duration;

use super::AgentError;
use crate::env::process::{Process, stop_all};

/// How long a stopping agent gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The agent's process, when it runs.
pub struct Supervised {
    name: String,
    proc: Option<Process>,
}

impl Supervised {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            proc: None,
        }
    }

    pub fn started(&mut self, proc: Process) {
        self.proc = Some(proc);
    }

    /// SIGKILL (`docker kill`), as a crash.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// SIGSTOP (`docker pause`): the agent hangs, connections stay open.
    pub fn pause(&self) -> Result<(), AgentError> {
        self.each(Process::pause)
    }

    pub fn resume(&self) -> Result<(), AgentError> {
        self.each(Process::resume)
    }

    fn each(
        &self,
        f: impl Fn(&Process) -> Result<(), crate::env::EnvError>,
    ) -> Result<(), AgentError> {
        match &self.proc {
            Some(p) => f(p).map_err(|e| AgentError::process(&self.name, e)),
            None => Ok(()),
        }
    }

    /// SIGTERM to its process group (or container), SIGKILL after a grace.
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            stop_all(&mut [p], |_| STOP_GRACE);
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}
