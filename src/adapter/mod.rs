//! The agent under test as the runner drives it: started, stopped, asked for
//! jobs and followed to their end through one of three adapters, with a
//! [`Profile`] that says which of its behaviours can be judged.
//!
//! - [`builtin`]: graph-agent, configured and run by graphdrill and
//!   driven through its control API;
//! - [`http`]: any agent that speaks that API (`docs/openapi.json`),
//!   started by a command of its own;
//! - [`command`]: a backup tool run as commands, the way a cron job runs it.
//!
//! The last two are described by an agent file (`agents/NAME/agent.toml`,
//! see [`file`]). Whatever the adapter, the drill sees jobs in the control
//! API's shape ([`Job`]); a check whose evidence an agent cannot give is
//! skipped, naming what the agent lacks.

pub mod builtin;
pub mod command;
pub mod file;
pub mod http;
mod supervised;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::Job;
use crate::env::{Environment, Link, Tool, Tools};
pub use builtin::{AgentProcess, AgentSetup};
pub use file::AgentFile;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{agent}: {message}")]
    Process { agent: String, message: String },
    #[error("agent API {path}: {message}")]
    Api { path: String, message: String },
    #[error("{agent} cannot {what}: {why}")]
    Unsupported {
        agent: String,
        what: String,
        why: &'static str,
    },
    #[error("agent file `{}`: {message}", path.display())]
    File { path: PathBuf, message: String },
}

impl AgentError {
    pub fn process(agent: &str, message: impl std::fmt::Display) -> Self {
        Self::Process {
            agent: agent.to_string(),
            message: message.to_string(),
        }
    }
}

/// A behaviour of an agent that graphdrill can judge; a check that needs
/// one the agent lacks is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Serves the control API (graph-agent, HTTP agents): its
    /// authentication is probed.
    ControlApi,
    /// Sends heartbeats to the runner's endpoint (`GRAPHDRILL_HEARTBEAT_URL`).
    Heartbeats,
    /// Says why a job failed in the control API's failure classes.
    FailureClasses,
    /// Counts a job's attempts, so bounded retries can be judged.
    Attempts,
    /// Writes graphdrill's repository format (`docs/format.md`): its catalog
    /// and chains are read back by the judge's own reader.
    Repository,
    /// Names the objects a backup stored, so storage can be asked whether
    /// they are there the moment the backup is reported done.
    Claims,
    /// Runs as a process graphdrill starts: it can be killed, paused and
    /// restarted.
    Process,
    /// Takes its encryption keys from graphdrill (rotation, a wrong key)
    /// and runs under a skewed clock.
    Keys,
}

impl Capability {
    /// What an agent without it lacks, in a skipped check's words.
    pub fn lacking(self) -> &'static str {
        match self {
            Capability::ControlApi => "has no control API",
            Capability::Heartbeats => "has no heartbeat",
            Capability::FailureClasses => "reports no failure class",
            Capability::Attempts => "reports no attempts",
            Capability::Repository => "keeps no repository graphdrill reads",
            Capability::Claims => "names no stored objects for its backups",
            Capability::Process => "is not a process graphdrill runs",
            Capability::Keys => "takes no encryption key from graphdrill",
        }
    }
}

/// Who was drilled and what of its behaviour can be judged; stored with
/// the run as `evidence/agent.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub capabilities: BTreeSet<Capability>,
}

impl Profile {
    /// graph-agent does all of it.
    pub fn graph_agent() -> Self {
        Self {
            name: "graph-agent".into(),
            capabilities: [
                Capability::ControlApi,
                Capability::Heartbeats,
                Capability::FailureClasses,
                Capability::Attempts,
                Capability::Repository,
                Capability::Claims,
                Capability::Process,
                Capability::Keys,
            ]
            .into(),
        }
    }

    pub fn has(&self, c: Capability) -> bool {
        self.capabilities.contains(&c)
    }

    /// The error for asking this agent to do what it cannot.
    pub fn cannot(&self, what: impl Into<String>, lacks: Capability) -> AgentError {
        AgentError::Unsupported {
            agent: self.name.clone(),
            what: what.into(),
            why: lacks.lacking(),
        }
    }
}

/// Which agent to drill.
#[derive(Debug, Clone)]
pub enum Spec {
    /// graph-agent, from this executable.
    GraphAgent { bin: PathBuf },
    /// An agent described by an agent file.
    File(Arc<AgentFile>),
}

impl Spec {
    /// One line naming the agent, for the run's progress.
    pub fn describe(&self) -> String {
        match self {
            Spec::GraphAgent { bin } => format!("graph-agent ({})", bin.display()),
            Spec::File(f) => format!("{}: {} ({})", f.name, f.description, f.dir.display()),
        }
    }

    pub fn profile(&self) -> Profile {
        match self {
            Spec::GraphAgent { .. } => Profile::graph_agent(),
            Spec::File(f) => f.profile(),
        }
    }

    /// `graph-agent` (from `bin`), the name of an agent shipped in
    /// `agents/`, or the path of an agent file or its folder.
    pub fn choose(name_or_path: &str, graph_agent_bin: PathBuf) -> Result<Self, AgentError> {
        if name_or_path == "graph-agent" {
            return Ok(Spec::GraphAgent {
                bin: graph_agent_bin,
            });
        }
        Ok(Spec::File(Arc::new(AgentFile::find(name_or_path)?)))
    }
}

/// A running agent under test.
pub enum Agent {
    GraphAgent(AgentProcess),
    Http(http::HttpAgent),
    Command(command::CommandAgent),
}

impl Agent {
    /// Starts the agent `spec` names for `env` (blocks while it starts).
    pub fn start(env: &Environment, spec: &Spec, setup: AgentSetup) -> Result<Self, AgentError> {
        match spec {
            Spec::GraphAgent { bin } => {
                Ok(Agent::GraphAgent(AgentProcess::start(env, bin, setup)?))
            }
            Spec::File(f) => match &f.kind {
                file::Kind::Http(h) => Ok(Agent::Http(http::HttpAgent::start(env, f, h, setup)?)),
                file::Kind::Command(c) => Ok(Agent::Command(command::CommandAgent::new(
                    env, f, c, setup,
                )?)),
            },
        }
    }

    pub fn profile(&self) -> Profile {
        match self {
            Agent::GraphAgent(_) => Profile::graph_agent(),
            Agent::Http(a) => a.profile(),
            Agent::Command(a) => a.profile(),
        }
    }

    /// How to ask it for jobs; a clone works from another task.
    pub fn jobs(&self) -> Jobs {
        match self {
            Agent::GraphAgent(a) => Jobs::Api(a.api().clone()),
            Agent::Http(a) => Jobs::Api(a.api().clone()),
            Agent::Command(a) => Jobs::Command(a.runner()),
        }
    }

    /// The process graphdrill runs the agent as; a command agent has none.
    fn process(&mut self, what: &str) -> Result<&mut supervised::Supervised, AgentError> {
        match self {
            Agent::GraphAgent(a) => Ok(a.process()),
            Agent::Http(a) => Ok(a.process()),
            Agent::Command(a) => Err(a.profile().cannot(what, Capability::Process)),
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) -> Result<(), AgentError> {
        self.process("be killed")?.kill();
        Ok(())
    }

    /// SIGSTOP: the agent hangs, its connections stay open.
    pub fn pause(&mut self) -> Result<(), AgentError> {
        self.process("be paused")?.pause()
    }

    pub fn resume(&mut self) -> Result<(), AgentError> {
        self.process("be resumed")?.resume()
    }

    /// Stops the agent (if running) and starts it again.
    pub fn restart(&mut self, env: &Environment) -> Result<(), AgentError> {
        match self {
            Agent::GraphAgent(a) => a.restart(env),
            Agent::Http(a) => a.restart(),
            Agent::Command(a) => Err(a.profile().cannot("be restarted", Capability::Process)),
        }
    }

    /// graph-agent's own: run off the true clock by `ms`.
    pub fn set_clock_skew(&mut self, env: &Environment, ms: i64) -> Result<(), AgentError> {
        match self {
            Agent::GraphAgent(a) => a.set_clock_skew(env, ms),
            other => Err(other
                .profile()
                .cannot("run on a skewed clock", Capability::Keys)),
        }
    }

    /// graph-agent's own: replace its keys (rotation, a wrong key).
    pub fn set_keys(
        &mut self,
        env: &Environment,
        keys: Vec<(String, [u8; 32])>,
    ) -> Result<(), AgentError> {
        match self {
            Agent::GraphAgent(a) => a.set_keys(env, keys),
            other => Err(other.profile().cannot("take a new key", Capability::Keys)),
        }
    }

    pub fn keys(&self) -> Vec<(String, [u8; 32])> {
        match self {
            Agent::GraphAgent(a) => a.keys().to_vec(),
            _ => Vec::new(),
        }
    }

    /// SIGTERM, then SIGKILL after a grace period; no child left behind.
    pub fn stop(&mut self) {
        match self {
            Agent::GraphAgent(a) => a.stop(),
            Agent::Http(a) => a.stop(),
            Agent::Command(a) => a.stop(),
        }
    }
}

/// What an agent says about a backup beyond the job itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The time the backup holds the database as of (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_ms: Option<u64>,
    /// Where it stored the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<StoredObject>,
}

/// One object a backup stored: a tier (`local`, `primary`, `archive`) and
/// its key there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredObject {
    pub tier: String,
    pub key: String,
}

/// A job as it ended (or as last seen, if it never did).
#[derive(Debug, Clone)]
pub struct Ended {
    pub job: Job,
    pub claim: Option<Claim>,
}

/// How the drill asks the agent for jobs.
#[derive(Clone)]
pub enum Jobs {
    Api(http::Api),
    Command(Arc<command::Runner>),
}

/// A job the agent accepted, not yet followed to its end.
pub enum Submitted {
    Api {
        api: http::Api,
        collection: String,
        job: Job,
    },
    Command(command::Running),
}

impl Jobs {
    /// Asks for a job: `collection` is the API's (`backups`, `restores`,
    /// `verify`, `copies`), `body` its request.
    pub async fn submit(
        &self,
        collection: &str,
        body: serde_json::Value,
    ) -> Result<Submitted, AgentError> {
        match self {
            Jobs::Api(api) => {
                let job = api.submit(&format!("/v1/{collection}"), body).await?;
                Ok(Submitted::Api {
                    api: api.clone(),
                    collection: collection.to_string(),
                    job,
                })
            }
            Jobs::Command(runner) => Ok(Submitted::Command(runner.start(collection, &body)?)),
        }
    }
}

impl Submitted {
    /// The job as accepted.
    pub fn job(&self) -> &Job {
        match self {
            Submitted::Api { job, .. } => job,
            Submitted::Command(r) => r.job(),
        }
    }

    /// Follows the job to its end, or until `limit` passes; `on_poll` sees
    /// each state (for a progress display).
    pub async fn follow(self, limit: std::time::Duration, on_poll: impl Fn(&Job)) -> Ended {
        match self {
            Submitted::Api {
                api,
                collection,
                job,
            } => Ended {
                job: api.follow(&collection, job, limit, on_poll).await,
                claim: None,
            },
            Submitted::Command(r) => r.wait().await,
        }
    }
}

/// Everything a foreign agent's process is given: the environment's
/// endpoints, and `PYTHONPATH` with the libraries graphdrill installs for
/// the example agents (installed on first use).
pub fn agent_env(
    env: &Environment,
    name: &str,
    work_dir: &std::path::Path,
) -> Result<Vec<(String, String)>, AgentError> {
    let failed = |e: crate::env::EnvError| AgentError::process(name, e);
    let tools = Tools::new(&crate::env::home().map_err(failed)?);
    tools.ensure(&[Tool::PythonLibs]).map_err(failed)?;
    let mut path = tools.python_libs().display().to_string();
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        path = format!("{path}:{}", old.to_string_lossy());
    }
    let mut vars: Vec<(String, String)> = endpoints(env, work_dir).into_iter().collect();
    vars.push(("PYTHONPATH".into(), path));
    Ok(vars)
}

/// The environment's endpoints as a foreign agent is given them: the
/// documented `GRAPHDRILL_*` variables (README, "Drilling your own backup
/// tool"). Connections go through Toxiproxy, as graph-agent's do, so the
/// scenario's faults reach the agent.
pub fn endpoints(env: &Environment, work_dir: &std::path::Path) -> BTreeMap<String, String> {
    let state = env.state();
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        out.insert(format!("GRAPHDRILL_{k}"), v);
    };
    for (prefix, instance, link) in [
        ("NEO4J", "neo4j", Link::Neo4j),
        ("RECOVERY", "neo4j-recovery", Link::Neo4jRecovery),
    ] {
        let n = &state.neo4j[instance];
        put(
            &format!("{prefix}_URI"),
            format!("bolt://{}", state.link(link).listen),
        );
        put(&format!("{prefix}_USER"), n.agent_user.clone());
        // The server's import folder, as a volume shared with a cron job
        // (APOC exports and imports files there).
        put(
            &format!("{prefix}_IMPORT_DIR"),
            env.dir()
                .join(instance)
                .join("import")
                .display()
                .to_string(),
        );
        put(
            &format!("{prefix}_PASSWORD_FILE"),
            n.agent_password_file.display().to_string(),
        );
    }
    for (prefix, region, link) in [
        ("S3_PRIMARY", "s3-primary", Link::S3Primary),
        ("S3_ARCHIVE", "s3-archive", Link::S3Archive),
    ] {
        let s3 = &state.s3[region];
        put(
            &format!("{prefix}_ENDPOINT"),
            format!("http://{}", state.link(link).listen),
        );
        put(&format!("{prefix}_BUCKET"), s3.bucket.clone());
        put(&format!("{prefix}_REGION"), s3.region.clone());
        put(
            &format!("{prefix}_CREDENTIALS_FILE"),
            s3.agent_credentials_file.display().to_string(),
        );
    }
    put(
        "HEARTBEAT_URL",
        format!("http://{}/heartbeat", state.link(Link::Control).listen),
    );
    put("ENV_DIR", env.dir().display().to_string());
    put("BIN", graphdrill_bin().display().to_string());
    put("WORK_DIR", work_dir.display().to_string());
    // The `local` tier, where graph-agent keeps its snapshots too.
    put(
        "LOCAL_DIR",
        work_dir.join("snapshots").display().to_string(),
    );
    out
}

/// The `graphdrill` executable, for agents that stop and start a component
/// (`$GRAPHDRILL_BIN env stop neo4j --dir $GRAPHDRILL_ENV_DIR`).
pub fn graphdrill_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    if exe.file_name().is_some_and(|n| n == "graphdrill") {
        return exe;
    }
    beside_exe("graphdrill")
}

/// The program `name` that cargo built beside the running executable (test
/// executables live one folder deeper, in `deps/`).
pub fn beside_exe(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(std::path::Path::new("."));
    let beside = dir.join(name);
    if beside.is_file() {
        beside
    } else {
        dir.parent().unwrap_or(dir).join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_names_its_capabilities_in_snake_case() {
        let p = Profile {
            name: "x".into(),
            capabilities: [Capability::FailureClasses, Capability::Claims].into(),
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"name":"x","capabilities":["failure_classes","claims"]}"#
        );
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), p);
    }

    #[test]
    fn graph_agent_can_be_judged_on_everything() {
        let p = Profile::graph_agent();
        for c in [
            Capability::ControlApi,
            Capability::Heartbeats,
            Capability::FailureClasses,
            Capability::Attempts,
            Capability::Repository,
            Capability::Claims,
            Capability::Process,
            Capability::Keys,
        ] {
            assert!(p.has(c), "{c:?}");
        }
    }
}
