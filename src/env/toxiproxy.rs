//! Toxiproxy: the server as a component, and a client for its small HTTP
//! API. The client speaks the API with reqwest directly rather than through
//! the `toxiproxy_rust` crate, which is blocking and has no `reset_peer`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::backend::{Programs, Role};
use super::component::{BoxFuture, Component, Launch};
use super::process::log_tail;
use super::{EnvError, LinkEndpoint};

#[derive(Debug, thiserror::Error)]
#[error("toxiproxy {op} at {api}: {message}")]
pub struct ToxiproxyError {
    pub op: String,
    pub api: String,
    pub message: String,
}

/// Which direction of a link a toxic acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Server → agent.
    Downstream,
    /// Agent → server.
    Upstream,
}

/// A Toxiproxy toxic with its parameters; units are in the field names.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    /// Delays every chunk by `latency_ms` ± `jitter_ms`.
    Latency { latency_ms: u64, jitter_ms: u64 },
    /// Stops all data and closes the connection after `timeout_ms`
    /// (0: never closes; the peer hangs).
    Timeout { timeout_ms: u64 },
    /// Resets the connection (TCP RST) after `timeout_ms`.
    ResetPeer { timeout_ms: u64 },
    /// Caps throughput at `rate_kb_s` kilobytes per second.
    Bandwidth { rate_kb_s: u64 },
    /// Delays the close of a connection by `delay_ms`.
    SlowClose { delay_ms: u64 },
}

impl ToxicKind {
    /// Toxiproxy's `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
        }
    }

    fn attributes(&self) -> serde_json::Value {
        match *self {
            ToxicKind::Latency {
                latency_ms,
                jitter_ms,
            } => json!({"latency": latency_ms, "jitter": jitter_ms}),
            ToxicKind::Timeout { timeout_ms } => json!({"timeout": timeout_ms}),
            ToxicKind::ResetPeer { timeout_ms } => json!({"timeout": timeout_ms}),
            ToxicKind::Bandwidth { rate_kb_s } => json!({"rate": rate_kb_s}),
            ToxicKind::SlowClose { delay_ms } => json!({"delay": delay_ms}),
        }
    }
}

/// Toxiproxy's words: `latency (latency 100, jitter 0)`, in its units.
impl std::fmt::Display for ToxicKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attributes = self.attributes();
        let parts: Vec<String> = attributes
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        write!(f, "{} ({})", self.type_name(), parts.join(", "))
    }
}

/// A named toxic on one direction of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    pub kind: ToxicKind,
}

impl Toxic {
    /// A toxic named after its type, on the downstream direction.
    pub fn new(kind: ToxicKind) -> Self {
        Self {
            name: kind.type_name().to_string(),
            stream: Stream::Downstream,
            kind,
        }
    }

    pub fn upstream(mut self) -> Self {
        self.stream = Stream::Upstream;
        self
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": match self.stream { Stream::Downstream => "downstream", Stream::Upstream => "upstream" },
            "toxicity": 1.0,
            "attributes": self.kind.attributes(),
        })
    }
}

/// A client for Toxiproxy's HTTP API.
#[derive(Debug, Clone)]
pub struct Toxiproxy {
    api: String,
    http: reqwest::Client,
}

impl Toxiproxy {
    /// `api` is e.g. `http://127.0.0.1:8474`.
    pub fn new(api: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a default reqwest client builds");
        Self {
            api: api.trim_end_matches('/').to_string(),
            http,
        }
    }

    async fn send(
        &self,
        op: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, ToxiproxyError> {
        let fail = |message: String| ToxiproxyError {
            op: op.to_string(),
            api: self.api.clone(),
            message,
        };
        let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!("{status}: {}", body.trim())));
        }
        Ok(serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)))
    }

    /// The server's version string.
    pub async fn version(&self) -> Result<String, ToxiproxyError> {
        let v = self
            .send("version", self.http.get(format!("{}/version", self.api)))
            .await?;
        Ok(match v {
            serde_json::Value::String(s) => s,
            other => other["version"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// The names of all proxies.
    pub async fn proxies(&self) -> Result<Vec<String>, ToxiproxyError> {
        let v = self
            .send(
                "list proxies",
                self.http.get(format!("{}/proxies", self.api)),
            )
            .await?;
        Ok(v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Link down (`false`: connections refused, open ones dropped) or up.
    pub async fn set_enabled(&self, proxy: &str, enabled: bool) -> Result<(), ToxiproxyError> {
        self.send(
            &format!("enable={enabled} {proxy}"),
            self.http
                .post(format!("{}/proxies/{proxy}", self.api))
                .json(&json!({ "enabled": enabled })),
        )
        .await
        .map(|_| ())
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<(), ToxiproxyError> {
        self.send(
            &format!("add toxic {} to {proxy}", toxic.name),
            self.http
                .post(format!("{}/proxies/{proxy}/toxics", self.api))
                .json(&toxic.to_json()),
        )
        .await
        .map(|_| ())
    }

    pub async fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ToxiproxyError> {
        self.send(
            &format!("remove toxic {name} from {proxy}"),
            self.http
                .delete(format!("{}/proxies/{proxy}/toxics/{name}", self.api)),
        )
        .await
        .map(|_| ())
    }

    /// Heals everything: every proxy enabled, every toxic removed.
    pub async fn reset(&self) -> Result<(), ToxiproxyError> {
        self.send("reset", self.http.post(format!("{}/reset", self.api)))
            .await
            .map(|_| ())
    }

    /// The names of the toxics on `proxy`.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<String>, ToxiproxyError> {
        let v = self
            .send(
                &format!("list toxics of {proxy}"),
                self.http
                    .get(format!("{}/proxies/{proxy}/toxics", self.api)),
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The Toxiproxy server with the agent's links as proxies.
pub struct ToxiproxyServer {
    dir: PathBuf,
    api: String,
    links: Vec<(String, LinkEndpoint)>,
}

impl ToxiproxyServer {
    pub fn new(dir: PathBuf, api: &str, links: Vec<(String, LinkEndpoint)>) -> Self {
        Self {
            dir,
            api: api.to_string(),
            links,
        }
    }
}

impl Component for ToxiproxyServer {
    fn name(&self) -> &str {
        "toxiproxy"
    }

    fn role(&self) -> Role {
        Role::Toxiproxy
    }

    fn log(&self) -> PathBuf {
        self.dir.join("toxiproxy.log")
    }

    fn prepare(&self, programs: &Programs) -> Result<Launch, EnvError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| EnvError::io(&self.dir, e))?;
        let port = self.api.rsplit(':').next().unwrap_or_default();
        // The links are created from a config file at start, before the API listens.
        let proxies: Vec<_> = self
            .links
            .iter()
            .map(|(name, l)| json!({"name": name, "listen": l.listen, "upstream": l.upstream, "enabled": true}))
            .collect();
        let config = self.dir.join("proxies.json");
        std::fs::write(
            &config,
            serde_json::to_string_pretty(&proxies).expect("json"),
        )
        .map_err(|e| EnvError::io(&config, e))?;
        let mut cmd = Command::new(&programs.toxiproxy);
        cmd.args(["-host", "127.0.0.1", "-port", port, "-config"])
            .arg(&config);
        Ok(cmd.into())
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async {
            let client = Toxiproxy::new(&self.api);
            client.version().await.map_err(|e| e.to_string())?;
            let present = client.proxies().await.map_err(|e| e.to_string())?;
            match self.links.iter().find(|(name, _)| !present.contains(name)) {
                Some((missing, _)) => Err(format!("proxy `{missing}` is missing")),
                None => Ok(()),
            }
        })
    }

    fn startup_failure(&self) -> Option<String> {
        // Toxiproxy logs a failed listen and keeps running without an API.
        log_tail(&self.log(), 40)
            .lines()
            .find(|l| l.contains("Server finished with error"))
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                v["error"].as_str().unwrap_or(l).to_string()
            })
    }

    fn startup_timeout(&self) -> Duration {
        Duration::from_secs(20)
    }
}
