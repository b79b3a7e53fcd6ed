//! The one interface every server of the environment implements, and the
//! generic start sequence: prepare → spawn → probe until ready → provision.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::EnvError;
use super::backend::{Backend, Programs, Role};
use super::process::{Process, log_tail};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How to run a component: one-off set-up commands, then the server.
pub struct Launch {
    pub setup: Vec<Command>,
    pub run: Command,
}

impl From<Command> for Launch {
    fn from(run: Command) -> Self {
        Launch {
            setup: Vec::new(),
            run,
        }
    }
}

/// How long servers get to shut down cleanly before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// A server of the environment, whichever backend runs it.
pub trait Component: Send + Sync {
    /// Its name in logs, errors and `env.json` (`neo4j`, `s3-primary`, …).
    fn name(&self) -> &str;
    /// Which image runs it on the container backend.
    fn role(&self) -> Role;
    /// The file its stdout and stderr go to.
    fn log(&self) -> PathBuf;
    /// Writes its config and folders (idempotent) and returns the commands
    /// that set it up and run it in the foreground, with `programs`.
    fn prepare(&self, programs: &Programs) -> Result<Launch, EnvError>;
    /// One readiness probe: `Ok` once it answers a real request.
    fn probe(&self) -> BoxFuture<'_, Result<(), String>>;
    /// A fatal error the server reported while still running (some servers
    /// log a failed listen and carry on); checked while waiting for ready.
    fn startup_failure(&self) -> Option<String> {
        None
    }
    /// How long it may take to become ready.
    fn startup_timeout(&self) -> Duration;
    /// Set-up once ready (users, buckets, proxies); safe to repeat.
    fn provision(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        Box::pin(async { Ok(()) })
    }
    /// How long SIGTERM gets before SIGKILL; zero kills at once.
    fn stop_grace(&self) -> Duration {
        STOP_GRACE
    }
}

/// The processes of one environment by component name. A process is
/// registered the moment it is spawned, so whoever holds this can stop it
/// even if the start that spawned it is abandoned half-way.
pub type Procs = Arc<Mutex<BTreeMap<String, Process>>>;

/// Starts `c` on `backend` and returns once it is ready and provisioned.
/// On failure its process is killed and the error carries the tail of its
/// log. `env_dir` is the environment's folder.
pub async fn start(
    c: Arc<dyn Component>,
    backend: &Backend,
    env_dir: &std::path::Path,
    procs: &Procs,
) -> Result<(), EnvError> {
    let name = c.name().to_string();
    let (comp, b, dir, p) = (
        c.clone(),
        backend.clone(),
        env_dir.to_path_buf(),
        procs.clone(),
    );
    // Dropped if this start is abandoned (Ctrl-C during `up`): a server
    // the blocking task starts after that is stopped at once.
    let start_alive = Arc::new(());
    let watch = Arc::downgrade(&start_alive);
    tokio::task::spawn_blocking(move || -> Result<(), EnvError> {
        let launch = comp.prepare(&b.programs())?;
        for step in launch.setup {
            b.run_to_end(comp.name(), comp.role(), step, &comp.log(), &dir)?;
        }
        let mut proc = b.spawn(comp.name(), comp.role(), launch.run, &comp.log(), &dir, &[])?;
        tracing::debug!(
            name = comp.name(),
            pid = proc.pid(),
            container = proc.container_id(),
            "spawned"
        );
        if watch.upgrade().is_none() {
            proc.kill();
            return Err(EnvError::component(comp.name(), "start abandoned"));
        }
        lock(&p).insert(comp.name().to_string(), proc);
        Ok(())
    })
    .await
    .map_err(|e| EnvError::component(&name, e))??;
    drop(start_alive);
    let ready = match wait_ready(c.as_ref(), procs).await {
        Ok(()) => c.provision().await,
        Err(e) => Err(e),
    };
    if let Err(e) = ready {
        if let Some(mut p) = lock(procs).remove(&name) {
            p.kill();
        }
        return Err(e);
    }
    Ok(())
}

/// Locks `procs`, ignoring poisoning: the map stays valid whatever panicked.
pub fn lock(procs: &Procs) -> std::sync::MutexGuard<'_, BTreeMap<String, Process>> {
    procs.lock().unwrap_or_else(|p| p.into_inner())
}

async fn wait_ready(c: &dyn Component, procs: &Procs) -> Result<(), EnvError> {
    let started = Instant::now();
    let timeout = c.startup_timeout();
    let mut last;
    let died = || {
        let mut map = lock(procs);
        let p = map.get_mut(c.name())?;
        p.exited().map(|status| p.died(status))
    };
    loop {
        if let Some(e) = died() {
            return Err(e);
        }
        if let Some(reason) = c.startup_failure() {
            return Err(EnvError::StartFailed {
                name: c.name().to_string(),
                reason,
                log: c.log(),
                tail: log_tail(&c.log(), 40),
            });
        }
        match tokio::time::timeout(Duration::from_secs(5), c.probe()).await {
            Ok(Ok(())) => {
                tracing::info!(
                    name = c.name(),
                    secs = started.elapsed().as_secs_f64(),
                    "ready"
                );
                return Ok(());
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = "probe timed out after 5 s".into(),
        }
        if started.elapsed() > timeout {
            // Dying late is a clearer error than "not ready".
            if let Some(e) = died() {
                return Err(e);
            }
            return Err(EnvError::NotReady {
                name: c.name().to_string(),
                waited_s: timeout.as_secs(),
                last,
                log: c.log(),
                tail: log_tail(&c.log(), 40),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
