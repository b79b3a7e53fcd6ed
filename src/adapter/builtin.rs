//! graph-agent as the runner drives it: a `graph-agent serve` process it
//! configures, starts, kills, pauses and restarts; everything else goes
//! through its control API ([`Api`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::AgentError;
use super::http::{Api, wait_listening};
use super::supervised::Supervised;
use crate::env::{Backend, Environment, Link, Role};
use crate::scenario::{Retention, Tier};

const NAME: &str = "graph-agent";

/// graph-agent's documented settings prefix: `GRAPH_AGENT_SECTION__FIELD`
/// overrides `[section] field` of its config.
pub const ENV_PREFIX: &str = "GRAPH_AGENT_";

/// The agent's settings the runner chooses; a scenario's `[agent]` tables
/// override them (as `GRAPH_AGENT_SECTION__FIELD`).
const DEFAULTS: &str = "\
[transfer]
max_retries = 2
request_timeout = \"5s\"
upload_concurrency = 3
backoff_base = \"200ms\"
backoff_cap = \"2s\"
metadata_sync = \"30s\"
job_deadline = \"2m\"
";

/// Where the agent's files live and how to start it.
pub struct AgentSetup {
    /// Config, keys, token, state and local snapshots go here.
    pub dir: PathBuf,
    /// The agent's stdout and stderr.
    pub log: PathBuf,
    pub overrides: Vec<(String, String)>,
    pub token: String,
    /// (key id, key) pairs: the last seals, all open.
    pub keys: Vec<(String, [u8; 32])>,
    /// How far off the agent's wall clock runs, in ms (libfaketime).
    pub clock_skew_ms: i64,
    /// How long each tier keeps a backup.
    pub retention: Retention,
    /// TOML appended to the configuration, e.g. `[[schedule]]` tables.
    pub extra: String,
}

/// A running (or stopped) agent: a process, or a container on the
/// container backend.
pub struct AgentProcess {
    /// The `graph-agent` executable.
    bin: PathBuf,
    setup: AgentSetup,
    backend: Backend,
    env_dir: PathBuf,
    proc: Supervised,
    port: u16,
    api: Api,
}

impl AgentProcess {
    /// Writes the configuration for `env` and starts the agent.
    pub fn start(env: &Environment, bin: &Path, setup: AgentSetup) -> Result<Self, AgentError> {
        let port = crate::env::free_port().map_err(|e| AgentError::process(NAME, e))?;
        let api = Api::new(format!("http://127.0.0.1:{port}"), setup.token.clone());
        let mut agent = Self {
            bin: bin.to_path_buf(),
            setup,
            backend: env.backend().clone(),
            env_dir: env.dir().to_path_buf(),
            proc: Supervised::new(NAME),
            port,
            api,
        };
        agent.write_config(env)?;
        agent.spawn()?;
        Ok(agent)
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    pub fn log_path(&self) -> PathBuf {
        self.setup.log.clone()
    }

    /// The agent's key files, written mode 0600.
    fn write_config(&self, env: &Environment) -> Result<(), AgentError> {
        let d = &self.setup.dir;
        let io = |e: std::io::Error| AgentError::process(NAME, format!("{}: {e}", d.display()));
        std::fs::create_dir_all(d.join("keys")).map_err(io)?;
        crate::env::write_secret(&d.join("token"), &self.setup.token)
            .map_err(|e| AgentError::process(NAME, e))?;
        let mut key_lines = String::new();
        for (i, (id, key)) in self.setup.keys.iter().enumerate() {
            let file = d.join("keys").join(format!("{id}.hex"));
            crate::env::write_secret(&file, &hex::encode(key))
                .map_err(|e| AgentError::process(NAME, e))?;
            if i + 1 == self.setup.keys.len() {
                key_lines.push_str(&format!(
                    "[encryption]\nkey_id = \"{id}\"\nkey_file = \"{}\"\n",
                    file.display()
                ));
            }
        }
        for (id, _) in &self.setup.keys[..self.setup.keys.len().saturating_sub(1)] {
            key_lines.push_str(&format!(
                "[[encryption.previous]]\nkey_id = \"{id}\"\nkey_file = \"{}\"\n",
                d.join("keys").join(format!("{id}.hex")).display()
            ));
        }
        let state = env.state();
        let retention = &self.setup.retention;
        let s3_tier = |tier: Tier, region: &str, link: Link| {
            let s3 = &state.s3[region];
            format!(
                "[[tier]]\nname = \"{}\"\nkind = \"s3\"\nendpoint = \"http://{}\"\nbucket = \"{}\"\n\
                 credentials_file = \"{}\"\nretention = \"{}\"\nrestore_sla = \"30m\"\n",
                tier.name(),
                state.link(link).listen,
                s3.bucket,
                s3.agent_credentials_file.display(),
                retention.of(tier),
            )
        };
        let db = |section: &str, instance: &str, link: Link| {
            let n = &state.neo4j[instance];
            format!(
                "[{section}]\nuri = \"{}\"\nuser = \"{}\"\npassword_file = \"{}\"\n",
                state.link(link).listen,
                n.agent_user,
                n.agent_password_file.display()
            )
        };
        let config = format!(
            "[agent]\nid = \"drill-agent\"\nport = {}\nenvironment = \"drill\"\nstate_dir = \"{}\"\n\n\
             [control]\ntoken_file = \"{}\"\n\n{DEFAULTS}\n\
             [heartbeat]\nurl = \"http://{}/heartbeat\"\ninterval = \"1s\"\noffline_threshold = \"3s\"\n\n\
             {}\n{}\n{key_lines}\n{}\n{}\n\
             [[tier]]\nname = \"local\"\nkind = \"local\"\npath = \"{}\"\nretention = \"{}\"\nrestore_sla = \"5m\"\n{}",
            self.port,
            d.join("state").display(),
            d.join("token").display(),
            state.link(Link::Control).listen,
            db("neo4j", "neo4j", Link::Neo4j),
            db("restore", "neo4j-recovery", Link::Neo4jRecovery),
            s3_tier(Tier::Primary, "s3-primary", Link::S3Primary),
            s3_tier(Tier::Archive, "s3-archive", Link::S3Archive),
            d.join("snapshots").display(),
            retention.of(Tier::Local),
            self.setup.extra,
        );
        std::fs::write(d.join("agent.toml"), config).map_err(io)
    }

    fn spawn(&mut self) -> Result<(), AgentError> {
        let program = self.backend.agent_program(&self.bin);
        let mut cmd = Command::new(&program);
        cmd.arg("--config")
            .arg(self.setup.dir.join("agent.toml"))
            .arg("serve")
            .env("GRAPH_AGENT_LOG", "info,neo4rs=warn");
        // The agent's own variables (settings, log filter, the self-test's
        // defects) reach it on either backend; a container inherits nothing
        // else. The scenario's overrides come last and win.
        cmd.envs(std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)));
        for (k, v) in &self.setup.overrides {
            cmd.env(k, v);
        }
        let mut mounts = vec![self.setup.dir.clone()];
        if self.setup.clock_skew_ms != 0 {
            let lib = faketime_lib().ok_or_else(|| AgentError::process(NAME, FAKETIME_MISSING))?;
            // A container sees the host's library at the same path.
            mounts.extend(lib.parent().map(Path::to_path_buf));
            // Only the wall clock: timers and timeouts run true.
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME", format!("{:+}", self.setup.clock_skew_ms / 1000))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        let mut proc = self
            .backend
            .spawn(
                "graph-agent",
                Role::Agent,
                cmd,
                &self.log_path(),
                &self.env_dir,
                &mounts,
            )
            .map_err(|e| {
                AgentError::process(NAME, format!("cannot start `{}`: {e}", program.display()))
            })?;
        wait_listening(NAME, &mut proc, self.port, &self.log_path())?;
        self.proc.started(proc);
        Ok(())
    }

    /// SIGKILL (`docker kill`), as a crash.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Its process, for the scenario's kill, pause and resume.
    pub(super) fn process(&mut self) -> &mut Supervised {
        &mut self.proc
    }

    /// Stops the agent (if running) and starts it with the same settings.
    pub fn restart(&mut self, env: &Environment) -> Result<(), AgentError> {
        self.stop();
        self.write_config(env)?;
        self.spawn()
    }

    /// Runs the agent's wall clock `ms` off from now on (restarts it).
    pub fn set_clock_skew(&mut self, env: &Environment, ms: i64) -> Result<(), AgentError> {
        self.setup.clock_skew_ms = ms;
        self.restart(env)
    }

    /// Replaces the keys (a rotation or a wrong key) and restarts.
    pub fn set_keys(
        &mut self,
        env: &Environment,
        keys: Vec<(String, [u8; 32])>,
    ) -> Result<(), AgentError> {
        self.setup.keys = keys;
        self.restart(env)
    }

    pub fn keys(&self) -> &[(String, [u8; 32])] {
        &self.setup.keys
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        self.proc.stop();
    }
}

const FAKETIME_MISSING: &str =
    "a clock skew needs libfaketime, which is not installed (Debian: apt-get install faketime)";

/// libfaketime, where Debian puts it.
pub fn faketime_lib() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The `graph-agent` next to the running executable (cargo builds both
/// into the same folder), unless `GRAPHDRILL_AGENT_BIN` names another.
pub fn default_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GRAPHDRILL_AGENT_BIN") {
        return PathBuf::from(p);
    }
    super::beside_exe("graph-agent")
}
