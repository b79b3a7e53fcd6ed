//! The container backend's engine: containers are created and started
//! through `testcontainers`, then handled by id through `bollard` (kill,
//! pause, inspect, and the label sweep that testcontainers has no call for).
//!
//! Every container runs with host networking and bind-mounts its folders at
//! the same paths as on the host, so a component's command line, its probes,
//! its proxies and every fault are the same as on the local backend; only
//! the program comes from the image. Each carries the label
//! [`ENV_LABEL`]` = <environment folder>`, which is what teardown sweeps.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use testcontainers::core::logs::LogFrame;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::EnvError;
use super::process::open_log;

/// The label naming the environment (its folder) a container belongs to.
pub const ENV_LABEL: &str = "graphdrill.env";
/// The label naming the component (`neo4j`, `s3-primary`, `graph-agent`, …).
pub const COMPONENT_LABEL: &str = "graphdrill.component";

/// Where Docker clients look when DOCKER_HOST is unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// One runtime owns every Docker connection and container handle, so they
/// outlive whichever runtime (or none) the caller has.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("graphdrill-docker")
        .enable_all()
        .build()
        .expect("the Docker runtime starts")
});

/// Containers this process started, by id. testcontainers removes a
/// container when its handle drops, so the handle lives here until we
/// remove the container ourselves.
static STARTED: LazyLock<Mutex<HashMap<String, ContainerAsync<GenericImage>>>> =
    LazyLock::new(Default::default);

/// Tasks copying the output of containers this process attached to, by id.
static FOLLOWERS: LazyLock<Mutex<HashMap<String, tokio::task::JoinHandle<()>>>> =
    LazyLock::new(Default::default);

/// Runs `fut` on the Docker runtime and waits for it from any thread.
fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    RUNTIME.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("a Docker task finishes")
}

/// What to run in a container: the same program and arguments a local
/// process would get, plus where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// The program inside the image (its entrypoint is replaced).
    pub entrypoint: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// `uid:gid`: the caller's, so files in the mounted folders stay the
    /// caller's and its 0600 secrets stay readable.
    pub user: String,
    /// Host folders mounted at the same path.
    pub mounts: Vec<PathBuf>,
    pub labels: BTreeMap<String, String>,
    pub workdir: Option<PathBuf>,
}

impl ContainerSpec {
    /// The container for `cmd`, whose program (a path inside `image`)
    /// becomes the entrypoint. Environment variables set on `cmd` are
    /// passed; the host's own environment is not.
    pub fn from_command(
        cmd: &Command,
        image: &str,
        env_dir: &Path,
        component: &str,
        mounts: &[PathBuf],
    ) -> Self {
        let str = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
        let mut env: BTreeMap<String, String> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some((str(k), str(v?))))
            .collect();
        // A caller uid may have no home in the image.
        env.entry("HOME".into()).or_insert_with(|| "/tmp".into());
        let mut all_mounts = vec![env_dir.to_path_buf()];
        for m in mounts {
            if !all_mounts.iter().any(|a| m.starts_with(a)) {
                all_mounts.push(m.clone());
            }
        }
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let dir_name = env_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            name: format!(
                "graphdrill-{}-{component}-{}",
                sanitize(&dir_name),
                super::random_secret(6).to_lowercase()
            ),
            image: image.to_string(),
            entrypoint: str(cmd.get_program()),
            args: cmd.get_args().map(str).collect(),
            env,
            user: format!("{uid}:{gid}"),
            mounts: all_mounts,
            labels: BTreeMap::from([
                (ENV_LABEL.to_string(), env_dir.display().to_string()),
                (COMPONENT_LABEL.to_string(), component.to_string()),
            ]),
            workdir: cmd.get_current_dir().map(Path::to_path_buf),
        }
    }

    /// testcontainers' request for this spec.
    fn request(&self) -> testcontainers::ContainerRequest<GenericImage> {
        let (name, tag) = split_image(&self.image);
        let mut req = GenericImage::new(name, tag)
            .with_entrypoint(&self.entrypoint)
            .with_wait_for(WaitFor::Nothing)
            .with_cmd(self.args.clone())
            .with_container_name(&self.name)
            .with_network("host")
            .with_user(&self.user)
            .with_labels(self.labels.clone())
            .with_startup_timeout(Duration::from_secs(120))
            // Host networking publishes nothing.
            .with_host_config_modifier(|hc| hc.publish_all_ports = Some(false));
        for (k, v) in &self.env {
            req = req.with_env_var(k, v);
        }
        for m in &self.mounts {
            let p = m.display().to_string();
            req = req.with_mount(Mount::bind_mount(p.clone(), p));
        }
        if let Some(dir) = &self.workdir {
            req = req.with_working_dir(dir.display().to_string());
        }
        req
    }
}

/// `repo[:tag]`, where a `:` before the last `/` is a registry port.
pub fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// Container names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// What the engine says of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Paused,
    Exited(Option<i64>),
    /// No such container (removed).
    Gone,
    /// The engine did not say.
    Unknown,
}

/// A Docker engine: the one `DOCKER_HOST` names, or the default socket.
#[derive(Clone)]
pub struct Engine {
    docker: bollard::Docker,
    host: String,
}

impl Engine {
    /// Connects and pings the engine; the error says where it looked.
    /// Only a local engine will do: containers share the host's network
    /// and mount its folders.
    pub fn connect() -> Result<Self, EnvError> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_HOST.into());
        let refuse =
            |e: String| EnvError::component("docker", format!("DOCKER_HOST `{host}`: {e}"));
        if !host.starts_with("unix://") {
            return Err(refuse(
                "the container backend needs a local engine (a unix:// socket): containers \
                 use host networking and mount this machine's folders"
                    .into(),
            ));
        }
        if let Some(other) = testcontainers_host_override() {
            return Err(refuse(format!(
                "~/.testcontainers.properties sets `tc.host` to `{other}`, so containers would \
                 start on another engine than the one graphdrill watches; remove that line"
            )));
        }
        let unreachable = |e: String| refuse(format!("no Docker engine answers: {e}"));
        let docker =
            bollard::Docker::connect_with_defaults().map_err(|e| unreachable(e.to_string()))?;
        let d = docker.clone();
        block(async move { tokio::time::timeout(Duration::from_secs(10), d.ping()).await })
            .map_err(|_| unreachable("no answer within 10 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self { docker, host })
    }

    /// Fails unless `image` is already on the engine: testcontainers would
    /// otherwise pull whatever a registry has under that name.
    pub fn require_image(&self, image: &str, hint: &str) -> Result<(), EnvError> {
        let (d, i) = (self.docker.clone(), image.to_string());
        block(async move { d.inspect_image(&i).await }).map_err(|e| {
            EnvError::component(
                "docker",
                format!(
                    "image `{image}` is not on the engine at `{}` ({e}); {hint}",
                    self.host
                ),
            )
        })?;
        Ok(())
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Creates and starts a container; while this process runs, its output
    /// goes to `log` as it comes.
    pub fn run(&self, spec: &ContainerSpec, log: &Path) -> Result<String, EnvError> {
        let file = open_log(log)?;
        let file = Arc::new(Mutex::new(file));
        let req = spec.request().with_log_consumer(move |frame: &LogFrame| {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            let _ = f.write_all(frame.bytes());
        });
        self.start(spec, req)
    }

    fn start(
        &self,
        spec: &ContainerSpec,
        req: testcontainers::ContainerRequest<GenericImage>,
    ) -> Result<String, EnvError> {
        let container = match block(async move { req.start().await }) {
            Ok(c) => c,
            Err(e) => {
                // Created but not started (bad entrypoint, timeout): by name.
                self.remove(&spec.name);
                return Err(EnvError::component(
                    &spec.labels[COMPONENT_LABEL],
                    format!("starting a container of `{}`: {e}", spec.image),
                ));
            }
        };
        let id = container.id().to_string();
        tracing::debug!(
            id,
            name = spec.name,
            image = spec.image,
            "container started"
        );
        lock(&STARTED).insert(id.clone(), container);
        Ok(id)
    }

    /// Appends what container `id` writes from now on to `log`, until it
    /// ends: for a container another process started (an environment left
    /// running by `env up`), whose output that process no longer follows.
    pub fn follow(&self, id: &str, log: &Path) -> Result<(), EnvError> {
        let mut file = open_log(log)?;
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i32);
        let opts = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .since(since)
            .build();
        let mut stream = self.docker.logs(id, Some(opts));
        let task = RUNTIME.spawn(async move {
            while let Some(Ok(chunk)) = stream.next().await {
                let _ = file.write_all(&chunk.into_bytes());
            }
        });
        lock(&FOLLOWERS).insert(id.to_string(), task);
        Ok(())
    }

    /// Runs a container to its end (at most `limit`), appends its whole
    /// output to `log` and returns its exit code (`None`: it did not end in
    /// time). The container is removed either way.
    pub fn run_to_end(
        &self,
        spec: &ContainerSpec,
        log: &Path,
        limit: Duration,
    ) -> Result<Option<i64>, EnvError> {
        let id = self.start(spec, spec.request())?;
        let deadline = Instant::now() + limit;
        let code = loop {
            match self.status(&id) {
                Status::Exited(code) => break code,
                Status::Gone => break None,
                _ if Instant::now() > deadline => break None,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let output = lock(&STARTED).remove(&id).map(|c| {
            block(async move {
                let mut out = c.stdout_to_vec().await.unwrap_or_default();
                out.extend(c.stderr_to_vec().await.unwrap_or_default());
                let _ = c.rm().await;
                out
            })
        });
        self.remove(&id);
        let mut f = open_log(log)?;
        f.write_all(&output.unwrap_or_default())
            .map_err(|e| EnvError::io(log, e))?;
        Ok(code)
    }

    pub fn status(&self, id: &str) -> Status {
        let (d, id) = (self.docker.clone(), id.to_string());
        match block(async move { d.inspect_container(&id, None).await }) {
            Ok(info) => {
                let s = info.state.unwrap_or_default();
                if s.paused == Some(true) {
                    Status::Paused
                } else if s.running == Some(true) {
                    Status::Running
                } else {
                    Status::Exited(s.exit_code)
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Status::Gone,
            Err(e) => {
                // A slow or restarting engine says nothing about the container.
                tracing::warn!(error = %e, "inspecting a container");
                Status::Unknown
            }
        }
    }

    /// SIGKILL (a crash), then removal.
    pub fn kill(&self, id: &str) {
        let (d, i) = (self.docker.clone(), id.to_string());
        block(async move {
            // Docker delivers SIGKILL to a paused container too, and thaws
            // it only then: a frozen agent gets no last moment to run.
            let opts = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
            let _ = d.kill_container(&i, Some(opts)).await;
        });
        self.remove(id);
    }

    /// SIGTERM, SIGKILL after `grace`, then removal.
    pub fn stop(&self, id: &str, grace: Duration) {
        let (d, i) = (self.docker.clone(), id.to_string());
        block(async move {
            let _ = d.unpause_container(&i).await;
            let opts = StopContainerOptionsBuilder::new()
                .t(grace.as_secs() as i32)
                .build();
            let _ = d.stop_container(&i, Some(opts)).await;
        });
        self.remove(id);
    }

    pub fn pause(&self, id: &str) -> Result<(), bollard::errors::Error> {
        let (d, i) = (self.docker.clone(), id.to_string());
        block(async move { d.pause_container(&i).await })
    }

    pub fn unpause(&self, id: &str) -> Result<(), bollard::errors::Error> {
        let (d, i) = (self.docker.clone(), id.to_string());
        block(async move { d.unpause_container(&i).await })
    }

    /// Removes a container (and its anonymous volumes), whoever started it.
    pub fn remove(&self, id: &str) {
        let (d, i) = (self.docker.clone(), id.to_string());
        let ours = lock(&STARTED).remove(id);
        let follower = lock(&FOLLOWERS).remove(id);
        block(async move {
            match ours {
                Some(c) => {
                    let _ = c.rm().await;
                }
                None => {
                    let opts = RemoveContainerOptionsBuilder::new()
                        .force(true)
                        .v(true)
                        .build();
                    let _ = d.remove_container(&i, Some(opts)).await;
                }
            }
            // Its last words reach the log before this returns.
            if let Some(task) = follower {
                let abort = task.abort_handle();
                if tokio::time::timeout(Duration::from_secs(2), task)
                    .await
                    .is_err()
                {
                    abort.abort();
                }
            }
        });
    }

    /// Ids of the containers labelled for environment `env_dir`.
    pub fn labelled(&self, env_dir: &Path) -> Result<Vec<String>, EnvError> {
        let d = self.docker.clone();
        let filter = HashMap::from([(
            "label".to_string(),
            vec![format!("{ENV_LABEL}={}", env_dir.display())],
        )]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filter)
            .build();
        let list = block(async move { d.list_containers(Some(opts)).await })
            .map_err(|e| EnvError::component("docker", format!("listing containers: {e}")))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Removes every container of environment `env_dir`; returns how many.
    pub fn sweep(&self, env_dir: &Path) -> Result<usize, EnvError> {
        let ids = self.labelled(env_dir)?;
        for id in &ids {
            self.remove(id);
        }
        if !ids.is_empty() {
            tracing::info!(count = ids.len(), env = %env_dir.display(), "removed containers");
        }
        Ok(ids.len())
    }
}

/// The engine `tc.host` in `~/.testcontainers.properties` sends
/// testcontainers to, over DOCKER_HOST.
fn testcontainers_host_override() -> Option<String> {
    let file = dirs::home_dir()?.join(".testcontainers.properties");
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "tc.host").then(|| v.trim().to_string())
    })
}

fn lock<T>(m: &'static Mutex<T>) -> std::sync::MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_becomes_a_container_with_the_same_arguments_and_labels() {
        let mut cmd = Command::new("/usr/bin/weed");
        cmd.args(["server", "-dir", "/envs/e1/s3-primary/data"])
            .env("WEED_X", "1")
            .current_dir("/envs/e1/s3-primary");
        let spec = ContainerSpec::from_command(
            &cmd,
            "chrislusf/seaweedfs:4.48",
            Path::new("/envs/e1"),
            "s3-primary",
            &[PathBuf::from("/envs/e1/sub"), PathBuf::from("/runs/r1")],
        );
        assert_eq!(spec.entrypoint, "/usr/bin/weed");
        assert_eq!(spec.args, ["server", "-dir", "/envs/e1/s3-primary/data"]);
        assert_eq!(spec.env["WEED_X"], "1");
        assert_eq!(spec.env["HOME"], "/tmp");
        // The env folder covers its own subfolders; others are added.
        assert_eq!(
            spec.mounts,
            [PathBuf::from("/envs/e1"), PathBuf::from("/runs/r1")]
        );
        assert_eq!(spec.labels[ENV_LABEL], "/envs/e1");
        assert_eq!(spec.labels[COMPONENT_LABEL], "s3-primary");
        assert!(spec.name.starts_with("graphdrill-e1-s3-primary-"));
        assert_eq!(
            spec.workdir.as_deref(),
            Some(Path::new("/envs/e1/s3-primary"))
        );
    }

    #[test]
    fn image_names_split_at_the_tag_not_at_a_registry_port() {
        assert_eq!(
            split_image("neo4j:5.26-community"),
            ("neo4j", "5.26-community")
        );
        assert_eq!(
            split_image("quay.io/minio/minio:RELEASE.2025"),
            ("quay.io/minio/minio", "RELEASE.2025")
        );
        assert_eq!(
            split_image("localhost:5000/agent"),
            ("localhost:5000/agent", "latest")
        );
        assert_eq!(
            split_image("graphdrill/graph-agent"),
            ("graphdrill/graph-agent", "latest")
        );
    }

    #[test]
    fn container_names_keep_only_allowed_characters() {
        assert_eq!(sanitize("drill env/1"), "drill-env-1");
    }
}
