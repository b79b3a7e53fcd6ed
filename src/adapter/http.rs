//! The control API as a client (graph-agent's, or any agent that speaks
//! `docs/openapi.json`), and an HTTP agent graphdrill starts
//! from an agent file.

use std::process::Command;
use std::time::{Duration, Instant};

use super::file::{AgentFile, HttpSpec};
use super::supervised::Supervised;
use super::{AgentError, AgentSetup, Profile, agent_env};
use crate::api::Job;
use crate::env::Environment;
use crate::env::process::Process;
use crate::evidence::AuthProbe;

/// How long an agent may take to listen after it is started.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The agent's control API; it keeps working across restarts (same port).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    pub fn new(url: String, token: String) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a default reqwest client builds"),
            url,
            token,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks for a backup with no token, a wrong one, and the right one in
    /// another scheme: each must be refused with 401 and start no job.
    pub async fn probe_auth(&self) -> Vec<AuthProbe> {
        let wrong = format!("Bearer {}", crate::env::random_secret(32));
        let other_scheme = format!("Basic {}", self.token);
        let mut out = Vec::new();
        for (credential, header) in [
            ("no token", None),
            ("a wrong token", Some(wrong)),
            ("the token in the Basic scheme", Some(other_scheme)),
        ] {
            let mut req = self
                .http
                .post(format!("{}/v1/backups", self.url))
                .json(&serde_json::json!({"kind": "full", "tier": "local"}));
            if let Some(h) = header {
                req = req.header(reqwest::header::AUTHORIZATION, h);
            }
            let mut probe = AuthProbe {
                credential: credential.into(),
                status: None,
                job: None,
                error: None,
            };
            match req.send().await {
                Ok(resp) => {
                    probe.status = Some(resp.status().as_u16());
                    if resp.status().is_success() {
                        probe.job = resp.json::<Job>().await.ok().map(|j| j.id);
                    }
                }
                Err(e) => probe.error = Some(e.to_string()),
            }
            out.push(probe);
        }
        out
    }

    /// Submits a job (`path` like `/v1/backups`) and returns it as accepted.
    pub async fn submit(&self, path: &str, body: serde_json::Value) -> Result<Job, AgentError> {
        let api = |message: String| AgentError::Api {
            path: path.to_string(),
            message,
        };
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| api(e.to_string()))?;
        let status = resp.status();
        if status != reqwest::StatusCode::ACCEPTED {
            let text = resp.text().await.unwrap_or_default();
            return Err(api(format!("HTTP {status}: {text}")));
        }
        resp.json().await.map_err(|e| api(e.to_string()))
    }

    /// The job's current state.
    pub async fn job(&self, collection: &str, id: &str) -> Result<Job, AgentError> {
        let path = format!("/v1/{collection}/{id}");
        let api = |message: String| AgentError::Api {
            path: path.clone(),
            message,
        };
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| api(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(api(format!("HTTP {}", resp.status())));
        }
        resp.json().await.map_err(|e| api(e.to_string()))
    }

    /// Polls a job until it ends or `limit` passes; returns the last state
    /// seen. `on_poll` sees every answer (for a progress display).
    pub async fn follow(
        &self,
        collection: &str,
        job: Job,
        limit: Duration,
        on_poll: impl Fn(&Job),
    ) -> Job {
        let started = Instant::now();
        let mut last = job;
        while !last.state.is_terminal() && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match self.job(collection, &last.id).await {
                Ok(j) => {
                    on_poll(&j);
                    last = j;
                }
                Err(e) => tracing::debug!(error = %e, "poll failed"),
            }
        }
        last
    }
}

/// An HTTP agent graphdrill started: its process, port and token.
pub struct HttpAgent {
    file: AgentFile,
    spec: HttpSpec,
    setup: AgentSetup,
    vars: Vec<(String, String)>,
    port: u16,
    proc: Supervised,
    api: Api,
}

impl HttpAgent {
    /// Starts `spec.start` in the agent's folder with the environment's
    /// endpoints, a port and a token, and waits until it listens.
    pub fn start(
        env: &Environment,
        file: &AgentFile,
        spec: &HttpSpec,
        setup: AgentSetup,
    ) -> Result<Self, AgentError> {
        let port = crate::env::free_port().map_err(|e| AgentError::process(&file.name, e))?;
        std::fs::create_dir_all(&setup.dir).map_err(|e| {
            AgentError::process(&file.name, format!("{}: {e}", setup.dir.display()))
        })?;
        let token_file = setup.dir.join("token");
        crate::env::write_secret(&token_file, &setup.token)
            .map_err(|e| AgentError::process(&file.name, e))?;
        let mut vars = agent_env(env, &file.name, &setup.dir)?;
        vars.push(("GRAPHDRILL_AGENT_PORT".into(), port.to_string()));
        vars.push((
            "GRAPHDRILL_TOKEN_FILE".into(),
            token_file.display().to_string(),
        ));
        let mut agent = Self {
            api: Api::new(format!("http://127.0.0.1:{port}"), setup.token.clone()),
            file: file.clone(),
            spec: spec.clone(),
            setup,
            vars,
            port,
            proc: Supervised::new(&file.name),
        };
        agent.spawn()?;
        Ok(agent)
    }

    pub fn profile(&self) -> Profile {
        self.file.profile()
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    fn spawn(&mut self) -> Result<(), AgentError> {
        let name = &self.file.name;
        let mut cmd = Command::new(&self.spec.start[0]);
        cmd.args(&self.spec.start[1..])
            .current_dir(&self.file.dir)
            .envs(self.vars.iter().cloned());
        let mut proc = Process::spawn(name, cmd, &self.setup.log).map_err(|e| {
            AgentError::process(name, format!("cannot start `{}`: {e}", self.spec.start[0]))
        })?;
        wait_listening(name, &mut proc, self.port, &self.setup.log)?;
        self.proc.started(proc);
        Ok(())
    }

    /// Its process, for the scenario's kill, pause and resume.
    pub(super) fn process(&mut self) -> &mut Supervised {
        &mut self.proc
    }

    pub fn restart(&mut self) -> Result<(), AgentError> {
        self.proc.stop();
        self.spawn()
    }

    /// SIGTERM to its process group, SIGKILL after a grace period.
    pub fn stop(&mut self) {
        self.proc.stop();
    }
}

/// Waits until `proc` listens on `port`; an exit or [`START_TIMEOUT`] is an
/// error carrying the end of its log.
pub fn wait_listening(
    name: &str,
    proc: &mut Process,
    port: u16,
    log: &std::path::Path,
) -> Result<(), AgentError> {
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = proc.exited() {
            let tail = crate::env::process::log_tail(log, 20);
            proc.kill();
            return Err(AgentError::process(
                name,
                format!(
                    "exited with {} at start; its log:\n{tail}",
                    status.unwrap_or_else(|| "an unknown status".into()),
                ),
            ));
        }
        if Instant::now() > deadline {
            proc.kill();
            return Err(AgentError::process(
                name,
                format!(
                    "did not listen on port {port} within {}",
                    humantime::format_duration(START_TIMEOUT)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
