//! Where an environment's servers run: as local processes from the
//! installed tools, or as containers from images. A component writes one
//! command line for both; the backend decides where its programs are and
//! how it is started, stopped, paused and swept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::docker::{ContainerSpec, Engine};
use super::images::Images;
use super::process::{Process, log_tail, open_log};
use super::{EnvError, Tools};

/// How long a one-off set-up container may run.
const SETUP_LIMIT: Duration = Duration::from_secs(120);

/// Which backend to start an environment on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BackendChoice {
    #[default]
    Local,
    Docker {
        /// The engine (`DOCKER_HOST`) the containers run on.
        host: String,
        images: Box<Images>,
    },
}

/// What kind of server a command starts, which picks its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Neo4j,
    S3,
    Toxiproxy,
    Agent,
}

/// Where a component finds its programs.
#[derive(Debug, Clone)]
pub struct Programs {
    pub java: PathBuf,
    /// Neo4j's home: its jars in `lib/`.
    pub neo4j_home: PathBuf,
    /// Where APOC's jar is.
    pub neo4j_plugins: PathBuf,
    pub weed: PathBuf,
    pub toxiproxy: PathBuf,
}

/// A backend, ready to start servers.
#[derive(Clone)]
pub enum Backend {
    Local(Tools),
    Docker { engine: Engine, images: Box<Images> },
}

impl Backend {
    /// Connects to what `choice` names (the engine must answer).
    pub fn new(choice: &BackendChoice, tools: Tools) -> Result<Self, EnvError> {
        match choice {
            BackendChoice::Local => Ok(Backend::Local(tools)),
            BackendChoice::Docker { host, images } => {
                let engine = Engine::connect()?;
                if engine.host() != host {
                    return Err(EnvError::component(
                        "docker",
                        format!(
                            "the environment runs on the engine at `{host}`, but DOCKER_HOST is `{}`",
                            engine.host()
                        ),
                    ));
                }
                engine.require_image(
                    &images.agent.image,
                    &format!(
                        "build it from this repository: docker build -t {} .",
                        images.agent.image
                    ),
                )?;
                Ok(Backend::Docker {
                    engine,
                    images: images.clone(),
                })
            }
        }
    }

    pub fn programs(&self) -> Programs {
        match self {
            Backend::Local(tools) => Programs {
                java: "java".into(),
                neo4j_home: tools.neo4j_home(),
                neo4j_plugins: tools.neo4j_home().join("plugins"),
                weed: tools.weed(),
                toxiproxy: tools.toxiproxy(),
            },
            Backend::Docker { images, .. } => Programs {
                java: images.neo4j.java.clone(),
                neo4j_home: images.neo4j.home.clone(),
                neo4j_plugins: images.neo4j.home.join("labs"),
                weed: images.s3.program.clone(),
                toxiproxy: images.toxiproxy.program.clone(),
            },
        }
    }

    /// The agent's program: `local_bin` on the host, or the image's.
    pub fn agent_program(&self, local_bin: &Path) -> PathBuf {
        match self {
            Backend::Local(_) => local_bin.to_path_buf(),
            Backend::Docker { images, .. } => images.agent.program.clone(),
        }
    }

    /// Starts `cmd` as the server `name`. A container mounts `env_dir` and
    /// `mounts` at the same paths and is labelled for `env_dir`.
    pub fn spawn(
        &self,
        name: &str,
        role: Role,
        cmd: Command,
        log: &Path,
        env_dir: &Path,
        mounts: &[PathBuf],
    ) -> Result<Process, EnvError> {
        match self {
            Backend::Local(_) => Process::spawn(name, cmd, log),
            Backend::Docker { engine, images } => {
                let spec =
                    ContainerSpec::from_command(&cmd, image(images, role), env_dir, name, mounts);
                let id = engine.run(&spec, log)?;
                Ok(Process::container(name, engine.clone(), id, log))
            }
        }
    }

    /// Runs a one-off `cmd` for `name` to its end (set-up such as a first
    /// password); its output goes to `log`, whose tail a failure carries.
    pub fn run_to_end(
        &self,
        name: &str,
        role: Role,
        mut cmd: Command,
        log: &Path,
        env_dir: &Path,
    ) -> Result<(), EnvError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let status = match self {
            Backend::Local(_) => {
                let out = cmd.output().map_err(|source| EnvError::Spawn {
                    name: name.to_string(),
                    program: program.clone(),
                    source,
                })?;
                let mut f = open_log(log)?;
                use std::io::Write;
                let _ = f.write_all(&out.stdout).and(f.write_all(&out.stderr));
                out.status.code().map(i64::from)
            }
            Backend::Docker { engine, images } => {
                let spec =
                    ContainerSpec::from_command(&cmd, image(images, role), env_dir, name, &[]);
                engine.run_to_end(&spec, log, SETUP_LIMIT)?
            }
        };
        match status {
            Some(0) => Ok(()),
            other => Err(EnvError::StartFailed {
                name: name.to_string(),
                reason: format!(
                    "`{program}` set-up step failed ({})",
                    other.map_or_else(
                        || format!("killed, or still running after {} s", SETUP_LIMIT.as_secs()),
                        |c| format!("exit code {c}")
                    )
                ),
                log: log.to_path_buf(),
                tail: log_tail(log, 20),
            }),
        }
    }

    /// Removes whatever is left of the environment in `env_dir` (containers
    /// by label); nothing to do for local processes.
    pub fn sweep(&self, env_dir: &Path) -> Result<usize, EnvError> {
        match self {
            Backend::Local(_) => Ok(0),
            Backend::Docker { engine, .. } => engine.sweep(env_dir),
        }
    }
}

fn image(images: &Images, role: Role) -> &str {
    match role {
        Role::Neo4j => &images.neo4j.image,
        Role::S3 => &images.s3.image,
        Role::Toxiproxy => &images.toxiproxy.image,
        Role::Agent => &images.agent.image,
    }
}
