//! `agent.toml`: the agent's settings, validated at start. Every error names
//! the file (or environment variable), the field and the bad value; nothing
//! here panics on any input. Defaults follow the field notes the agent was
//! modelled on: heartbeat every 5 s, offline after 15 s, AES-256-GCM with a
//! key rotated every 24 h, metadata sync every 30 s, 3 retries, 5 s per
//! request, at most 3 uploads at once.
//!
//! Environment variables `GRAPH_AGENT_<SECTION>__<FIELD>` override fields,
//! e.g. `GRAPH_AGENT_HEARTBEAT__INTERVAL=2s`. Secrets are read from files
//! (or `GRAPH_AGENT_TOKEN` for the API token) and never printed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use graph_agent_api::Dur;
use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "GRAPH_AGENT_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("`{}`: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{file}`:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("`{file}`: `{field}` = `{value}`: {message}")]
    Invalid {
        file: String,
        field: String,
        value: String,
        message: String,
    },
}

fn secs(s: u64) -> Dur {
    Dur(Duration::from_secs(s))
}

/// The whole configuration, as written in `agent.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub agent: Registration,
    #[serde(default)]
    pub control: Control,
    pub heartbeat: Heartbeat,
    /// The database backed up.
    pub neo4j: Neo4jSource,
    /// The database restores go into (it must be empty).
    #[serde(default)]
    pub restore: Option<Neo4jSource>,
    pub encryption: Encryption,
    #[serde(default)]
    pub transfer: Transfer,
    #[serde(default)]
    pub resources: Resources,
    /// Where backups go, in order of restore speed: `[[tier]]` tables.
    #[serde(rename = "tier")]
    pub tiers: Vec<Tier>,
    /// Backups the agent starts by itself: `[[schedule]]` tables.
    #[serde(default, rename = "schedule", skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<Schedule>,
}

/// A backup taken every `every`, held back while the host is busier than
/// `[resources]` allows, but never longer than `max_delay`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub name: String,
    pub kind: graph_agent_api::BackupKind,
    pub tier: String,
    pub every: Dur,
    /// Default: half of `every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Dur>,
}

impl Schedule {
    pub fn max_delay(&self) -> Duration {
        self.max_delay.map_or(self.every.0 / 2, |d| d.0)
    }
}

/// Registration metadata, reported in heartbeats and `/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// This agent's id, unique among the agents a control plane watches.
    pub id: String,
    #[serde(default = "default_service")]
    pub service_name: String,
    #[serde(default = "default_host")]
    pub host: String,
    /// The control API's port, 1–65535.
    pub port: i64,
    #[serde(default = "default_health_path")]
    pub health_path: String,
    #[serde(default = "default_version")]
    pub version: String,
    /// e.g. `production`, `staging`, `drill`.
    pub environment: String,
    /// Where the agent keeps its own state (last backup per tier).
    pub state_dir: PathBuf,
}

fn default_service() -> String {
    "graph-agent".into()
}
fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_health_path() -> String {
    "/health".into()
}
fn default_version() -> String {
    env!("CARGO_PKG_VERSION").into()
}

/// The control API's bearer token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// File holding the token; `GRAPH_AGENT_TOKEN` is used when absent.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Serve the API (and so its token) in clear on an address other
    /// machines reach. Off: the token would cross the network readable.
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// Whether only this machine reaches `host` (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Where heartbeats are POSTed, e.g. `http://127.0.0.1:9000/heartbeat`.
    pub url: String,
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// When a watcher may call the agent offline: 2–3× `interval`.
    #[serde(default = "default_offline")]
    pub offline_threshold: Dur,
}

fn default_interval() -> Dur {
    secs(5)
}
fn default_offline() -> Dur {
    secs(15)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neo4jSource {
    /// Bolt address `host:port`.
    pub uri: String,
    pub user: String,
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    #[serde(rename = "aes-128-gcm")]
    Aes128Gcm,
}

impl Algorithm {
    pub fn key_len(self) -> usize {
        match self {
            Algorithm::Aes256Gcm => 32,
            Algorithm::Aes128Gcm => 16,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    #[serde(default = "default_algorithm")]
    pub algorithm: Algorithm,
    /// Names the key in every chunk header, so restores find the right one.
    pub key_id: String,
    /// The key as hex (64 digits for AES-256, 32 for AES-128).
    pub key_file: PathBuf,
    #[serde(default = "default_rotation")]
    pub rotation: Dur,
    /// Keys of earlier rotations, kept to open older backups; never used to seal.
    #[serde(default)]
    pub previous: Vec<PreviousKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousKey {
    pub key_id: String,
    pub key_file: PathBuf,
}

fn default_algorithm() -> Algorithm {
    Algorithm::Aes256Gcm
}
fn default_rotation() -> Dur {
    secs(24 * 3600)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub max_retries: i64,
    pub request_timeout: Dur,
    /// Uploads in flight at once.
    pub upload_concurrency: i64,
    /// Exponential backoff with full jitter: `rand(0, min(cap, base·2^n))`.
    pub backoff_base: Dur,
    pub backoff_cap: Dur,
    pub metadata_sync: Dur,
    /// A job still running after this fails with class `deadline`.
    pub job_deadline: Dur,
}

impl Default for Transfer {
    fn default() -> Self {
        Self {
            max_retries: 3,
            request_timeout: secs(5),
            upload_concurrency: 3,
            backoff_base: Dur(Duration::from_millis(200)),
            backoff_cap: secs(10),
            metadata_sync: secs(30),
            job_deadline: secs(30 * 60),
        }
    }
}

/// Thresholds that may delay (never hang) a scheduled job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub max_cpu_percent: i64,
    pub max_io_wait_ms: i64,
    pub max_bandwidth_percent: i64,
    pub max_concurrent_jobs: i64,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            max_cpu_percent: 70,
            max_io_wait_ms: 15,
            max_bandwidth_percent: 50,
            max_concurrent_jobs: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    pub kind: TierKind,
    /// `local`: the snapshot folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `s3`: endpoint URL, bucket, and a credentials file holding JSON
    /// `{"access_key": …, "secret_key": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Backups older than this are pruned.
    pub retention: Dur,
    /// How fast a restore from this tier must finish.
    pub restore_sla: Dur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierKind {
    Local,
    S3,
}

impl AgentConfig {
    /// Reads, overrides from the environment, and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
            .collect();
        let config = Self::parse(&path.display().to_string(), &text, &vars)?;
        config.validate(&path.display().to_string())?;
        Ok(config)
    }

    /// Parses TOML `text` (named `file` in errors) and applies `overrides`
    /// (`GRAPH_AGENT_SECTION__FIELD`, value) on top.
    pub fn parse(
        file: &str,
        text: &str,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let parsed: Self = toml::from_str(text).map_err(|e| parse_error(file, text, &e))?;
        if overrides.is_empty() {
            return Ok(parsed);
        }
        let mut table = toml::Table::try_from(&parsed).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
        for (var, value) in overrides {
            apply_override(&mut table, var, value)?;
        }
        let names = overrides
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Self::deserialize(table).map_err(|e| ConfigError::Parse {
            file: format!("{file} with {names}"),
            line: 0,
            column: 0,
            message: e.to_string(),
        })
    }

    /// Checks every rule a parsed file can still break.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |field: &str, value: &dyn std::fmt::Display, message: &str| {
            Err(ConfigError::Invalid {
                file: file.to_string(),
                field: field.to_string(),
                value: value.to_string(),
                message: message.to_string(),
            })
        };
        let a = &self.agent;
        if a.id.trim().is_empty() {
            return bad("agent.id", &a.id, "must not be empty");
        }
        if a.service_name.is_empty()
            || !a
                .service_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(
                "agent.service_name",
                &a.service_name,
                "use letters, digits, `-` and `_`",
            );
        }
        if a.host.trim().is_empty() {
            return bad("agent.host", &a.host, "must not be empty");
        }
        if !(1..=65535).contains(&a.port) {
            return bad("agent.port", &a.port, "must be 1–65535");
        }
        if !is_loopback(&a.host) && !self.control.allow_plain_http {
            return bad(
                "agent.host",
                &a.host,
                "the control API is plain HTTP, so its bearer token would cross the network \
                 in clear; bind a loopback address (and reach it through a TLS proxy or an SSH \
                 tunnel), or set `control.allow_plain_http = true` to accept that",
            );
        }
        if !a.health_path.starts_with('/') {
            return bad("agent.health_path", &a.health_path, "must start with `/`");
        }
        if a.version.trim().is_empty() {
            return bad("agent.version", &a.version, "must not be empty");
        }
        if a.environment.trim().is_empty() {
            return bad("agent.environment", &a.environment, "must not be empty");
        }
        if a.state_dir.as_os_str().is_empty() {
            return bad("agent.state_dir", &"", "must not be empty");
        }

        let h = &self.heartbeat;
        if !(h.url.starts_with("http://") || h.url.starts_with("https://"))
            || reqwest::Url::parse(&h.url).is_err()
        {
            return bad("heartbeat.url", &h.url, "must be an http(s) URL");
        }
        if h.interval.0.is_zero() {
            return bad("heartbeat.interval", &h.interval, "must be more than 0");
        }
        if h.offline_threshold.0 < h.interval.0 * 2 || h.offline_threshold.0 > h.interval.0 * 3 {
            return bad(
                "heartbeat.offline_threshold",
                &h.offline_threshold,
                &format!(
                    "must be 2–3× `heartbeat.interval` ({}), i.e. {}–{}",
                    h.interval,
                    Dur(h.interval.0 * 2),
                    Dur(h.interval.0 * 3)
                ),
            );
        }

        for (section, db) in std::iter::once(("neo4j", &self.neo4j))
            .chain(self.restore.iter().map(|r| ("restore", r)))
        {
            if db
                .uri
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return bad(&format!("{section}.uri"), &db.uri, "must be `host:port`");
            }
            if db.user.is_empty() {
                return bad(&format!("{section}.user"), &db.user, "must not be empty");
            }
        }

        let e = &self.encryption;
        if e.key_id.is_empty() || e.key_id.len() > 64 {
            return bad("encryption.key_id", &e.key_id, "must be 1–64 characters");
        }
        if e.rotation.0 < Duration::from_secs(1) {
            return bad("encryption.rotation", &e.rotation, "must be at least 1s");
        }

        let t = &self.transfer;
        if !(0..=20).contains(&t.max_retries) {
            return bad("transfer.max_retries", &t.max_retries, "must be 0–20");
        }
        if t.request_timeout.0.is_zero() {
            return bad(
                "transfer.request_timeout",
                &t.request_timeout,
                "must be more than 0",
            );
        }
        if !(1..=64).contains(&t.upload_concurrency) {
            return bad(
                "transfer.upload_concurrency",
                &t.upload_concurrency,
                "must be 1–64",
            );
        }
        if t.backoff_base.0.is_zero() || t.backoff_base > t.backoff_cap {
            return bad(
                "transfer.backoff_base",
                &t.backoff_base,
                &format!(
                    "must be more than 0 and at most `transfer.backoff_cap` ({})",
                    t.backoff_cap
                ),
            );
        }
        if t.metadata_sync.0.is_zero() {
            return bad(
                "transfer.metadata_sync",
                &t.metadata_sync,
                "must be more than 0",
            );
        }
        if t.job_deadline <= t.request_timeout {
            return bad(
                "transfer.job_deadline",
                &t.job_deadline,
                &format!(
                    "must be longer than `transfer.request_timeout` ({})",
                    t.request_timeout
                ),
            );
        }

        let r = &self.resources;
        for (field, v, max) in [
            ("resources.max_cpu_percent", r.max_cpu_percent, 100),
            ("resources.max_io_wait_ms", r.max_io_wait_ms, 60_000),
            (
                "resources.max_bandwidth_percent",
                r.max_bandwidth_percent,
                100,
            ),
            ("resources.max_concurrent_jobs", r.max_concurrent_jobs, 64),
        ] {
            if !(1..=max).contains(&v) {
                return bad(field, &v, &format!("must be 1–{max}"));
            }
        }

        if self.tiers.is_empty() {
            return bad("tier", &"[]", "at least one `[[tier]]` is needed");
        }
        let mut names = BTreeSet::new();
        for (i, tier) in self.tiers.iter().enumerate() {
            let field = |f: &str| format!("tier[{i}].{f}");
            if tier.name.is_empty()
                || !tier
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return bad(
                    &field("name"),
                    &tier.name,
                    "use letters, digits, `-` and `_`",
                );
            }
            if !names.insert(tier.name.as_str()) {
                return bad(&field("name"), &tier.name, "is used by another tier");
            }
            if tier.retention.0.is_zero() {
                return bad(&field("retention"), &tier.retention, "must be more than 0");
            }
            if tier.restore_sla.0.is_zero() {
                return bad(
                    &field("restore_sla"),
                    &tier.restore_sla,
                    "must be more than 0",
                );
            }
            let missing = |f: &str| {
                bad(
                    &field(f),
                    &"",
                    &format!("is required for kind `{:?}`", tier.kind).to_lowercase(),
                )
            };
            let stray = |f: &str| {
                bad(
                    &field(f),
                    &"…",
                    &format!("does not apply to kind `{:?}`", tier.kind).to_lowercase(),
                )
            };
            match tier.kind {
                TierKind::Local => {
                    match &tier.path {
                        Some(p) if !p.as_os_str().is_empty() => {}
                        _ => return missing("path"),
                    }
                    for (f, set) in [
                        ("endpoint", tier.endpoint.is_some()),
                        ("bucket", tier.bucket.is_some()),
                        ("credentials_file", tier.credentials_file.is_some()),
                    ] {
                        if set {
                            return stray(f);
                        }
                    }
                }
                TierKind::S3 => {
                    if tier.path.is_some() {
                        return stray("path");
                    }
                    let Some(endpoint) = &tier.endpoint else {
                        return missing("endpoint");
                    };
                    if reqwest::Url::parse(endpoint).is_err() {
                        return bad(&field("endpoint"), endpoint, "must be a URL");
                    }
                    let Some(bucket) = &tier.bucket else {
                        return missing("bucket");
                    };
                    if bucket.len() < 3 || bucket.len() > 63 {
                        return bad(&field("bucket"), bucket, "must be 3–63 characters");
                    }
                    if tier.credentials_file.is_none() {
                        return missing("credentials_file");
                    }
                }
            }
        }
        let mut entries = BTreeSet::new();
        for (i, e) in self.schedules.iter().enumerate() {
            let field = |f: &str| format!("schedule[{i}].{f}");
            if e.name.is_empty() || !entries.insert(e.name.as_str()) {
                return bad(&field("name"), &e.name, "must be set and unique");
            }
            if self.tiers.iter().all(|t| t.name != e.tier) {
                return bad(&field("tier"), &e.tier, "names no `[[tier]]`");
            }
            if e.every.0 < Duration::from_secs(1) {
                return bad(&field("every"), &e.every, "must be at least 1s");
            }
            if e.max_delay() > e.every.0 {
                return bad(
                    &field("max_delay"),
                    &Dur(e.max_delay()),
                    &format!(
                        "must be at most `every` ({}), or runs would pile up",
                        e.every
                    ),
                );
            }
        }
        Ok(())
    }
}

/// A toml error with the line and column of its span.
fn parse_error(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, column)
        })
        .unwrap_or((0, 0));
    ConfigError::Parse {
        file: file.to_string(),
        line,
        column,
        message: e.message().trim().to_string(),
    }
}

/// Sets `SECTION.FIELD` from `GRAPH_AGENT_SECTION__FIELD`. The value is read
/// as a TOML value when it is one (`3`, `true`), else as a string.
fn apply_override(table: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let invalid = |message: &str| ConfigError::Invalid {
        file: format!("environment variable {var}"),
        field: var
            .trim_start_matches(ENV_PREFIX)
            .to_lowercase()
            .replace("__", "."),
        value: value.to_string(),
        message: message.to_string(),
    };
    let path: Vec<String> = var
        .trim_start_matches(ENV_PREFIX)
        .split("__")
        .map(str::to_lowercase)
        .collect();
    let [section, field] = path.as_slice() else {
        return Err(invalid("expected GRAPH_AGENT_<SECTION>__<FIELD>"));
    };
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let section = table
        .entry(section.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match section {
        toml::Value::Table(t) => {
            t.insert(field.clone(), parsed);
            Ok(())
        }
        _ => Err(invalid("names no settings section")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[agent]
id = "agent-1"
port = 7450
environment = "drill"
state_dir = "state"

[heartbeat]
url = "http://127.0.0.1:9000/heartbeat"

[neo4j]
uri = "127.0.0.1:7687"
user = "graph_agent"
password_file = "neo4j.password"

[encryption]
key_id = "k1"
key_file = "key.hex"

[[tier]]
name = "primary"
kind = "s3"
endpoint = "http://127.0.0.1:8333"
bucket = "backups"
credentials_file = "s3.json"
retention = "30d"
restore_sla = "30m"
"#;

    fn load(text: &str) -> Result<AgentConfig, ConfigError> {
        let c = AgentConfig::parse("agent.toml", text, &[])?;
        c.validate("agent.toml")?;
        Ok(c)
    }

    #[test]
    fn defaults_follow_the_field_notes() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.heartbeat.interval, secs(5));
        assert_eq!(c.heartbeat.offline_threshold, secs(15));
        assert_eq!(c.encryption.algorithm, Algorithm::Aes256Gcm);
        assert_eq!(c.encryption.rotation, secs(86_400));
        assert_eq!(c.transfer.max_retries, 3);
        assert_eq!(c.transfer.request_timeout, secs(5));
        assert_eq!(c.transfer.upload_concurrency, 3);
        assert_eq!(c.transfer.metadata_sync, secs(30));
    }

    #[test]
    fn offline_threshold_outside_two_to_three_intervals_names_both_fields() {
        let text = GOOD.replace(
            "url = \"http://127.0.0.1:9000/heartbeat\"",
            "url = \"http://127.0.0.1:9000/heartbeat\"\ninterval = \"5s\"\noffline_threshold = \"40s\"",
        );
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("`heartbeat.offline_threshold` = `40s`"),
            "{err}"
        );
        assert!(err.contains("heartbeat.interval"), "{err}");
    }

    #[test]
    fn a_schedule_names_its_tier_and_cannot_outwait_its_interval() {
        let entry = |tier: &str, extra: &str| {
            format!(
                "{GOOD}\n[[schedule]]\nname = \"hourly\"\nkind = \"incremental\"\ntier = \"{tier}\"\nevery = \"1h\"\n{extra}"
            )
        };
        let c = load(&entry("primary", "")).unwrap();
        assert_eq!(c.schedules[0].max_delay(), Duration::from_secs(1800));
        let err = load(&entry("nowhere", "")).unwrap_err().to_string();
        assert_eq!(
            err,
            "`agent.toml`: `schedule[0].tier` = `nowhere`: names no `[[tier]]`"
        );
        let err = load(&entry("primary", "max_delay = \"2h\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`schedule[0].max_delay` = `2h`"), "{err}");
    }

    #[test]
    fn a_token_in_clear_off_loopback_is_refused_unless_allowed() {
        let open = GOOD.replace("port = 7450", "port = 7450\nhost = \"0.0.0.0\"");
        let err = load(&open).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "`agent.toml`: `agent.host` = `0.0.0.0`: the control API is plain HTTP"
            ),
            "{err}"
        );
        assert!(err.contains("control.allow_plain_http"), "{err}");
        let allowed = format!("{open}\n[control]\nallow_plain_http = true\n");
        assert!(load(&allowed).is_ok());
    }

    #[test]
    fn loopback_hosts_serve_without_tls() {
        for host in ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"] {
            let text = GOOD.replace("port = 7450", &format!("port = 7450\nhost = \"{host}\""));
            assert!(load(&text).is_ok(), "{host}");
        }
        assert!(!is_loopback("10.0.0.5"));
        assert!(!is_loopback("agent.example.com"));
    }

    #[test]
    fn port_out_of_range_is_named() {
        let err = load(&GOOD.replace("port = 7450", "port = 70000"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "`agent.toml`: `agent.port` = `70000`: must be 1–65535");
    }

    #[test]
    fn syntax_and_type_errors_give_line_and_column() {
        let err = load(&GOOD.replace("port = 7450", "port = \"seven\"")).unwrap_err();
        match err {
            ConfigError::Parse { line, column, .. } => assert_eq!((line, column), (4, 8)),
            other => panic!("{other}"),
        }
        let err = load(&GOOD.replace("[heartbeat]", "[heartbeat]\nintervall = \"5s\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("intervall"), "{err}");
    }

    #[test]
    fn bad_duration_says_how_to_write_one() {
        let text = GOOD.replace("retention = \"30d\"", "retention = \"a month\"");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("`a month` is not a duration"), "{err}");
        assert!(err.contains(":26:"), "{err}");
    }

    #[test]
    fn unknown_algorithm_and_duplicate_tiers_are_refused() {
        let text = GOOD.replace("key_id = \"k1\"", "key_id = \"k1\"\nalgorithm = \"des\"");
        assert!(load(&text).unwrap_err().to_string().contains("des"));
        let twice = format!(
            "{GOOD}\n[[tier]]\nname = \"primary\"\nkind = \"local\"\npath = \"/x\"\nretention = \"7d\"\nrestore_sla = \"5m\"\n"
        );
        let err = load(&twice).unwrap_err().to_string();
        assert!(
            err.contains("`tier[1].name` = `primary`: is used by another tier"),
            "{err}"
        );
    }

    #[test]
    fn tier_fields_must_match_its_kind() {
        let err = load(&GOOD.replace("bucket = \"backups\"\n", ""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`tier[0].bucket` = ``: is required for kind `s3`"),
            "{err}"
        );
        let err = load(&GOOD.replace("kind = \"s3\"", "kind = \"local\"\npath = \"/snap\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`tier[0].endpoint`"), "{err}");
        assert!(err.contains("does not apply to kind `local`"), "{err}");
    }

    #[test]
    fn environment_overrides_win_and_are_named_in_errors() {
        let vars = [
            (
                "GRAPH_AGENT_HEARTBEAT__INTERVAL".to_string(),
                "2s".to_string(),
            ),
            (
                "GRAPH_AGENT_HEARTBEAT__OFFLINE_THRESHOLD".to_string(),
                "5s".to_string(),
            ),
        ];
        let c = AgentConfig::parse("agent.toml", GOOD, &vars).unwrap();
        c.validate("agent.toml").unwrap();
        assert_eq!(c.heartbeat.interval, secs(2));
        let vars = [(
            "GRAPH_AGENT_TRANSFER__MAX_RETRIES".to_string(),
            "lots".to_string(),
        )];
        let err = AgentConfig::parse("agent.toml", GOOD, &vars)
            .unwrap_err()
            .to_string();
        assert!(err.contains("GRAPH_AGENT_TRANSFER__MAX_RETRIES"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
            let _ = load(&text);
        }

        #[test]
        fn parser_never_panics_on_mangled_config(cut in 0usize..600, junk in "[\\[\\]=\"a-z0-9 \n.]{0,20}") {
            let mut text = GOOD.to_string();
            let at = text.char_indices().map(|(i, _)| i).nth(cut % GOOD.chars().count()).unwrap_or(0);
            text.insert_str(at, &junk);
            let _ = load(&text);
        }
    }
}
