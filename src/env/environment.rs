//! [`Environment`]: start every component in parallel, record `env.json`,
//! and stop every process on `down`, on drop, or from another process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::backend::{Backend, BackendChoice};
use super::component::{self, Component, Procs, STOP_GRACE, lock};
use super::neo4j::Neo4jServer;
use super::process::{Process, stop_all};
use super::seaweed::{INTERNAL_PORTS, SeaweedServer};
use super::state::{LinkEndpoint, ProcessRecord, STATE_FORMAT};
use super::toxiproxy::{Toxiproxy, ToxiproxyServer};
use super::{
    EnvError, EnvState, Link, Neo4jEndpoint, S3Endpoint, Tool, Tools, free_port, random_secret,
    write_secret,
};
use crate::s3::S3Credentials;

/// What to start; the defaults keep the whole environment near 2 GiB RSS.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    /// Names the state folder `<home>/envs/<name>` unless `dir` is set.
    pub name: String,
    pub dir: Option<PathBuf>,
    /// JVM heap of each Neo4j, in MiB.
    pub neo4j_heap_mb: u32,
    /// Page cache of each Neo4j, in MiB.
    pub neo4j_pagecache_mb: u32,
    /// The backup bucket in each region.
    pub bucket: String,
    /// Local processes, or containers.
    pub backend: BackendChoice,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            name: "default".into(),
            dir: None,
            neo4j_heap_mb: 384,
            neo4j_pagecache_mb: 64,
            bucket: "backups".into(),
            backend: BackendChoice::Local,
        }
    }
}

impl EnvOptions {
    /// The state folder these options name.
    pub fn state_dir(&self, home: &std::path::Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| home.join("envs").join(&self.name))
    }
}

/// A running environment. Dropping it stops every process it holds, unless
/// [`Environment::detach`] was called.
pub struct Environment {
    state: std::sync::Mutex<EnvState>,
    dir: PathBuf,
    backend: Backend,
    procs: Procs,
    detached: AtomicBool,
}

impl Environment {
    /// Installs what is missing, starts every component and waits until all
    /// are ready. A failure stops whatever had started.
    pub async fn up(home: &std::path::Path, opts: &EnvOptions) -> Result<Self, EnvError> {
        let tools = Tools::new(home);
        let (choice, t) = (opts.backend.clone(), tools.clone());
        // Containers bring their own programs.
        let backend = tokio::task::spawn_blocking(move || {
            if choice == BackendChoice::Local {
                t.ensure(&Tool::ALL)?;
            }
            Backend::new(&choice, t)
        })
        .await
        .map_err(|e| EnvError::component("installer", e))??;
        let dir = opts.state_dir(home);
        if let Ok(old) = Environment::attach(home, &dir) {
            if old.alive().iter().any(|(_, alive)| *alive) {
                old.detach();
                return Err(EnvError::component(
                    "environment",
                    format!(
                        "`{}` is already up (run `graphdrill env down` first)",
                        dir.display()
                    ),
                ));
            }
            old.detach();
        }
        // Containers a killed run left behind.
        let (b, d) = (backend.clone(), dir.clone());
        tokio::task::spawn_blocking(move || b.sweep(&d))
            .await
            .map_err(|e| EnvError::component("environment", e))??;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| EnvError::io(&dir, e))?;
        }
        std::fs::create_dir_all(dir.join("secrets")).map_err(|e| EnvError::io(&dir, e))?;
        let state = new_state(&dir, opts)?;
        state.save()?;
        let env = Environment {
            state: std::sync::Mutex::new(state),
            dir,
            backend,
            procs: Procs::default(),
            detached: AtomicBool::new(false),
        };
        env.start_all().await?;
        Ok(env)
    }

    /// The environment recorded in `dir` by another process (or this one).
    pub fn attach(home: &std::path::Path, dir: &std::path::Path) -> Result<Self, EnvError> {
        let state = EnvState::load(dir)?;
        let backend = Backend::new(&state.backend, Tools::new(home))?;
        let procs: BTreeMap<String, Process> = state
            .processes
            .iter()
            .filter_map(|(name, r)| Some((name.clone(), adopt(&backend, name, r)?)))
            .collect();
        Ok(Environment {
            dir: dir.to_path_buf(),
            state: std::sync::Mutex::new(state),
            backend,
            procs: Arc::new(std::sync::Mutex::new(procs)),
            detached: AtomicBool::new(false),
        })
    }

    /// Leaves the processes running when this value is dropped (`env up`
    /// without `--foreground`); `env down` stops them later.
    pub fn detach(self) {
        self.detached.store(true, Ordering::SeqCst);
    }

    /// A copy of the recorded state.
    pub fn state(&self) -> EnvState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Where its servers (and the agent) run.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn toxiproxy(&self) -> Toxiproxy {
        Toxiproxy::new(&self.state().toxiproxy_api)
    }

    /// From now on copies the output of servers another process started
    /// into their log files (containers; a process writes its own), for a
    /// run that reuses the environment or a `down` that stops it.
    pub fn follow_output(&self) {
        for p in lock(&self.procs).values() {
            if let Err(e) = p.follow_output() {
                tracing::warn!(error = %e, "not following a server's output");
            }
        }
    }

    /// Each recorded process and whether it is alive.
    pub fn alive(&self) -> Vec<(String, bool)> {
        self.adopt_recorded();
        lock(&self.procs)
            .iter_mut()
            .map(|(name, p)| (name.clone(), p.exited().is_none()))
            .collect()
    }

    /// Stops every process (SIGTERM, then SIGKILL after a grace period),
    /// sweeps any container still labelled for it, and removes `env.json`;
    /// data and logs stay for inspection.
    pub fn down(&self) {
        let mut procs: Vec<Process> = std::mem::take(&mut *lock(&self.procs))
            .into_values()
            .collect();
        // Another process attached to this environment (a drill, `env`)
        // may have restarted a component: what it recorded is stopped too.
        if let Ok(recorded) = EnvState::load(&self.dir) {
            for (name, r) in &recorded.processes {
                let known = procs
                    .iter()
                    .any(|p| p.pid() == r.pid && p.container_id() == r.container.as_deref());
                if !known && let Some(p) = adopt(&self.backend, name, r) {
                    procs.push(p);
                }
            }
        }
        if procs.is_empty() && !EnvState::path(&self.dir).exists() {
            return;
        }
        stop_all(&mut procs, |name| self.stop_grace(name));
        if let Err(e) = self.backend.sweep(&self.dir) {
            tracing::warn!(error = %e, "sweeping containers");
        }
        let _ = std::fs::remove_file(EnvState::path(&self.dir));
        tracing::info!(dir = %self.dir.display(), "environment down");
    }

    fn stop_grace(&self, name: &str) -> Duration {
        self.component(name).map_or(STOP_GRACE, |c| c.stop_grace())
    }

    /// The component called `name`, built from the recorded state.
    fn component(&self, name: &str) -> Option<Arc<dyn Component>> {
        let state = self.state();
        let dir = state.dir.join(name);
        if let Some(e) = state.neo4j.get(name) {
            return Some(Arc::new(Neo4jServer::new(name, dir, e.clone())));
        }
        if let Some(e) = state.s3.get(name) {
            return Some(Arc::new(SeaweedServer::new(name, dir, e.clone())));
        }
        (name == "toxiproxy").then(|| {
            let links = state
                .links
                .iter()
                .map(|(n, l)| (n.clone(), l.clone()))
                .collect();
            Arc::new(ToxiproxyServer::new(dir, &state.toxiproxy_api, links)) as Arc<dyn Component>
        })
    }

    fn component_names(&self) -> Vec<String> {
        let state = self.state();
        let mut names: Vec<String> = state.neo4j.keys().chain(state.s3.keys()).cloned().collect();
        names.push("toxiproxy".into());
        names
    }

    async fn start_all(&self) -> Result<(), EnvError> {
        let mut set = tokio::task::JoinSet::new();
        for name in self.component_names() {
            let comp = self.component(&name).expect("named from state");
            let (backend, dir, procs) =
                (self.backend.clone(), self.dir.clone(), self.procs.clone());
            set.spawn(async move { component::start(comp, &backend, &dir, &procs).await });
        }
        let mut first_err = None;
        while let Some(res) = set.join_next().await {
            let res = res
                .map_err(|e| EnvError::component("environment", e))
                .and_then(|r| r);
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        self.record_processes()?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Starts one stopped component again (region restore).
    pub async fn start_component(&self, name: &str) -> Result<(), EnvError> {
        self.adopt_recorded();
        let comp = self
            .component(name)
            .ok_or_else(|| EnvError::component(name, "no such component"))?;
        component::start(comp, &self.backend, &self.dir, &self.procs).await?;
        self.record_processes()
    }

    /// Stops one component cleanly: SIGTERM, SIGKILL after the grace time.
    pub fn stop_component(&self, name: &str) -> Result<(), EnvError> {
        self.adopt_recorded();
        let proc = lock(&self.procs).remove(name);
        match proc {
            Some(p) => {
                stop_all(&mut [p], |name| self.stop_grace(name));
                self.record_processes()
            }
            None => Err(EnvError::component(name, "is not running")),
        }
    }

    /// Runs `neo4j-admin` with `args` for the Neo4j `instance`, which must be
    /// stopped (e.g. `database dump neo4j --to-path=…`); its output on
    /// success. Local backend only.
    pub fn neo4j_admin(&self, instance: &str, args: &[&str]) -> Result<String, EnvError> {
        if !matches!(self.backend, Backend::Local(_)) {
            return Err(EnvError::component(
                instance,
                "neo4j-admin runs only on the local backend",
            ));
        }
        let state = self.state();
        let endpoint = state
            .neo4j
            .get(instance)
            .ok_or_else(|| EnvError::component(instance, "no such Neo4j instance"))?;
        let server = Neo4jServer::new(instance, state.dir.join(instance), endpoint.clone());
        let out = server
            .admin_tool(&self.backend.programs())
            .args(args)
            .output()
            .map_err(|source| EnvError::Spawn {
                name: instance.to_string(),
                program: "neo4j-admin".into(),
                source,
            })?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(EnvError::component(
                instance,
                format!(
                    "neo4j-admin {} failed ({}): {} {}",
                    args.join(" "),
                    out.status,
                    text(&out.stdout),
                    text(&out.stderr)
                ),
            ))
        }
    }

    /// Kills one component at once (SIGKILL), as a crash or region loss would.
    pub fn kill_component(&self, name: &str) -> Result<(), EnvError> {
        self.adopt_recorded();
        let proc = lock(&self.procs).remove(name);
        match proc {
            Some(mut p) => {
                p.kill();
                self.record_processes()
            }
            None => Err(EnvError::component(name, "is not running")),
        }
    }

    /// Takes over what another process attached to this environment
    /// recorded (a drill that restarted a region): where the record differs
    /// from what this handle holds and this handle's process has ended, the
    /// recorded one is the component now.
    fn adopt_recorded(&self) {
        let Ok(recorded) = EnvState::load(&self.dir) else {
            return;
        };
        let mut procs = lock(&self.procs);
        for (name, r) in &recorded.processes {
            let ours = procs.get_mut(name);
            let same = ours
                .as_ref()
                .is_some_and(|p| p.pid() == r.pid && p.container_id() == r.container.as_deref());
            let ours_ended = ours.is_none_or(|p| p.exited().is_some());
            if !same
                && ours_ended
                && let Some(mut theirs) = adopt(&self.backend, name, r)
                && theirs.exited().is_none()
            {
                procs.insert(name.clone(), theirs);
            }
        }
    }

    fn record_processes(&self) -> Result<(), EnvError> {
        let records = lock(&self.procs)
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    ProcessRecord {
                        pid: p.pid(),
                        log: p.log().to_path_buf(),
                        container: p.container_id().map(str::to_string),
                    },
                )
            })
            .collect();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.processes = records;
        state.save()
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        if !self.detached.load(Ordering::SeqCst) {
            self.down();
        }
    }
}

/// Picks ports and writes credentials for a new environment.
fn new_state(dir: &std::path::Path, opts: &EnvOptions) -> Result<EnvState, EnvError> {
    let mut ports = PortPicker::default();
    let secrets = dir.join("secrets");
    let secret = |file: &str, value: String| -> Result<PathBuf, EnvError> {
        let path = secrets.join(file);
        write_secret(&path, &value)?;
        Ok(path)
    };

    let mut neo4j = BTreeMap::new();
    for name in ["neo4j", "neo4j-recovery"] {
        let endpoint = Neo4jEndpoint {
            bolt: format!("127.0.0.1:{}", ports.pick()?),
            admin_user: "neo4j".into(),
            admin_password_file: secret(&format!("{name}-admin.password"), random_secret(24))?,
            agent_user: "graph_agent".into(),
            agent_password_file: secret(&format!("{name}-agent.password"), random_secret(24))?,
            heap_mb: opts.neo4j_heap_mb,
            pagecache_mb: opts.neo4j_pagecache_mb,
        };
        neo4j.insert(name.to_string(), endpoint);
    }

    let creds = |prefix: &str| {
        serde_json::to_string(&S3Credentials {
            access_key: format!("{prefix}{}", random_secret(12)),
            secret_key: random_secret(32),
        })
        .expect("credentials serialize")
    };
    let mut s3 = BTreeMap::new();
    for (name, region) in [("s3-primary", "primary"), ("s3-archive", "archive")] {
        let mut internal_ports = BTreeMap::new();
        for flag in INTERNAL_PORTS {
            internal_ports.insert(flag.to_string(), ports.pick()?);
        }
        let endpoint = S3Endpoint {
            url: format!("http://127.0.0.1:{}", ports.pick()?),
            region: region.into(),
            bucket: opts.bucket.clone(),
            admin_credentials_file: secret(&format!("{name}-admin.json"), creds("ADMIN"))?,
            agent_credentials_file: secret(&format!("{name}-agent.json"), creds("AGENT"))?,
            data_dir: dir.join(name).join("data"),
            internal_ports,
        };
        s3.insert(name.to_string(), endpoint);
    }

    let control_port = ports.pick()?;
    let mut links = BTreeMap::new();
    for link in Link::ALL {
        let upstream = match link {
            Link::Neo4j | Link::Neo4jRecovery => neo4j[link.target()].bolt.clone(),
            Link::S3Primary | Link::S3Archive => s3[link.target()]
                .url
                .trim_start_matches("http://")
                .to_string(),
            Link::Control => format!("127.0.0.1:{control_port}"),
        };
        let listen = format!("127.0.0.1:{}", ports.pick()?);
        links.insert(link.name().to_string(), LinkEndpoint { listen, upstream });
    }

    Ok(EnvState {
        format: STATE_FORMAT,
        name: opts.name.clone(),
        dir: dir.to_path_buf(),
        started_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        neo4j,
        s3,
        toxiproxy_api: format!("http://127.0.0.1:{}", ports.pick()?),
        links,
        control_port,
        processes: BTreeMap::new(),
        backend: opts.backend.clone(),
    })
}

/// Free ports, never the same one twice within an environment.
#[derive(Default)]
struct PortPicker {
    taken: std::collections::HashSet<u16>,
}

impl PortPicker {
    fn pick(&mut self) -> Result<u16, EnvError> {
        loop {
            let p = free_port()?;
            // SeaweedFS derives no ports from these, but keep clear of the
            // conventional `port + 10000` gRPC offset overflowing.
            if p < 55000 && self.taken.insert(p) {
                return Ok(p);
            }
        }
    }
}

/// A process or container another process recorded, to be followed or stopped.
fn adopt(backend: &Backend, name: &str, r: &ProcessRecord) -> Option<Process> {
    match (&r.container, backend) {
        (Some(id), Backend::Docker { engine, .. }) => {
            Some(Process::container(name, engine.clone(), id.clone(), &r.log))
        }
        // Pid 0 would name our own process group.
        (None, _) if r.pid != 0 => Some(Process::adopt(name, r.pid, &r.log)),
        _ => None,
    }
}
