//! A run's evidence: every input a check reads, written into the run folder
//! before anything is judged, and read back from there to judge. So the
//! verdicts of a run rest only on what it stored, and `graphdrill check
//! RUN_DIR` judges a stored run again with the same result.
//!
//! Files (relative to the run folder): [`HISTORY`] and [`EVENTS`] as the run
//! wrote them, and under `evidence/`: the scenario, the base graph and each
//! restored graph as the judge's canonical JSON lines, the restores, job
//! expectations, heartbeat windows, what the source held at the end, the
//! catalogs, the agent drilled and what of it can be judged, its answers
//! to requests with a bad credential, the objects it damaged and what
//! prunes left, the agent's
//! settings, and fingerprints (never the text) of the
//! run's secrets. A file that is missing is named by the checks that need it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::adapter::Profile;
use crate::api::Job;
use crate::check::behaviour::Expectation;
use crate::graph::{Graph, Inventory};
use crate::history::{Event, Op, Seen};
use crate::scenario::{HeartbeatExpect, Scenario, Tier};

pub const HISTORY: &str = "history.jsonl";
pub const EVENTS: &str = "events.jsonl";
pub const SCENARIO: &str = "evidence/scenario.json";
pub const BASE: &str = "evidence/base.jsonl";
pub const RESTORES: &str = "evidence/restores.json";
pub const EXPECTATIONS: &str = "evidence/expectations.json";
pub const HEARTBEAT_WINDOWS: &str = "evidence/heartbeat-windows.json";
pub const SOURCE: &str = "evidence/source.json";
pub const CATALOGS: &str = "evidence/catalogs.json";
/// The agent drilled and its capabilities; a run from before adapters has
/// none and was graph-agent.
pub const AGENT: &str = "evidence/agent.json";
pub const AUTH_PROBES: &str = "evidence/auth-probes.json";
pub const DAMAGE: &str = "evidence/damage.json";
pub const PRUNES: &str = "evidence/prunes.json";
pub const SETTINGS: &str = "evidence/settings.json";
pub const SECRETS: &str = "evidence/secrets.json";

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence file `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("evidence file `{}`: {message}", path.display())]
    Decode { path: PathBuf, message: String },
}

/// A restore the drill asked for, and what came back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreRecord {
    pub step: usize,
    pub tier: Tier,
    /// The backup restored.
    pub backup: String,
    pub job: Job,
    /// The disaster instant: when the restore was asked for.
    pub disaster_ms: u64,
    pub queryable_ms: Option<u64>,
    /// The recovery database as the judge read it (stored on its own, in
    /// [`restored_graph_file`]).
    #[serde(skip)]
    pub graph: Option<Graph>,
    /// The recovery point in the restored backup's catalog entry.
    pub claimed_ms: Option<u64>,
    pub subgraphs: BTreeMap<String, BTreeSet<String>>,
    /// After a failed restore: the nodes left in the target.
    pub left_nodes: Option<i64>,
}

/// Where the graph restored at `step` is stored.
pub fn restored_graph_file(step: usize) -> String {
    format!("evidence/restored-step-{step}.jsonl")
}

/// A request the runner made to the agent's API with a bad credential,
/// and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthProbe {
    /// e.g. `no token`.
    pub credential: String,
    /// `None` when the agent did not answer.
    pub status: Option<u16>,
    /// The job the agent created for it, if it let the request in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An object the runner damaged, and the job steps that read its backup
/// while it was damaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamageRecord {
    /// The fault's number in the events.
    pub fault: usize,
    pub step: usize,
    pub tier: Tier,
    pub backup: String,
    /// The damaged object's key in its tier.
    pub object: String,
    pub how: crate::fault::Harm,
    /// Steps (restore, verify, copy) that read `backup` meanwhile.
    pub read_by: Vec<usize>,
}

/// A prune job, and what the runner's reader found in its tier before
/// and after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneRecord {
    pub step: usize,
    pub tier: Tier,
    /// The retention the agent was configured with for the tier.
    pub retention_ms: u64,
    pub job: Job,
    pub seen: Seen,
    pub backups: Vec<PrunedBackup>,
}

/// One backup of a pruned tier, by the runner's clock and reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedBackup {
    pub id: String,
    /// How the runner saw the backup job that made it.
    pub made: Seen,
    /// Its parent, as its catalog entry said before the prune.
    pub parent: Option<String>,
    /// Whether the catalog lists it after the prune.
    pub listed_after: bool,
    /// After the prune: `None` when it reads back whole, else why not.
    pub unreadable_after: Option<String>,
}

/// A job step and what the scenario expected of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpectRecord {
    pub step: usize,
    pub what: String,
    pub job: Option<Job>,
    pub seen: Option<Seen>,
    pub expect: Expectation,
}

/// A fault during which heartbeats are judged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatWindow {
    pub fault: usize,
    pub step: usize,
    pub expect: HeartbeatExpect,
}

/// What the source database held at the end of the drill.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Source {
    /// Subgraph name → node ids its Cypher returned.
    pub subgraphs: BTreeMap<String, BTreeSet<String>>,
    pub inventory: Option<Inventory>,
}

/// The agent settings the checks hold it to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Settings {
    pub max_retries: u32,
    pub heartbeat_interval_ms: u64,
    pub offline_threshold_ms: u64,
}

/// A secret as stored with a run: enough to find it in a file, not to
/// know it (a keyed BLAKE3 of it under a random key kept beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub name: String,
    pub len: usize,
    /// Its first byte, so a scan hashes only the windows that could match.
    pub first: u8,
    pub key: String,
    pub hash: String,
}

impl Fingerprint {
    pub fn of(name: &str, secret: &str) -> Self {
        let key: [u8; 32] = rand::random();
        Self {
            name: name.into(),
            len: secret.len(),
            first: secret.as_bytes().first().copied().unwrap_or(0),
            key: hex::encode(key),
            hash: blake3::keyed_hash(&key, secret.as_bytes())
                .to_hex()
                .to_string(),
        }
    }

    /// Whether `content` holds the secret.
    pub fn found_in(&self, content: &[u8]) -> bool {
        let Ok(key) = hex::decode(&self.key) else {
            return false;
        };
        let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) else {
            return false;
        };
        self.len > 0
            && content.windows(self.len).any(|w| {
                w[0] == self.first && blake3::keyed_hash(&key, w).to_hex().as_str() == self.hash
            })
    }
}

/// Everything the checkers judge.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub scenario: Scenario,
    pub base: Graph,
    pub ops: Vec<Op>,
    pub events: Vec<Event>,
    pub restores: Vec<RestoreRecord>,
    pub expectations: Vec<ExpectRecord>,
    pub heartbeat_windows: Vec<HeartbeatWindow>,
    pub source: Source,
    /// Tier → backup ids its catalog lists at the end of the drill.
    pub catalogs: BTreeMap<String, Vec<String>>,
    pub agent: Profile,
    pub auth_probes: Vec<AuthProbe>,
    pub damage: Vec<DamageRecord>,
    pub prunes: Vec<PruneRecord>,
    pub settings: Settings,
    pub secrets: Vec<Fingerprint>,
    /// Every file of the run but the evidence itself, for the secret scan.
    pub files: Vec<(String, Vec<u8>)>,
    /// Evidence files that could not be read, and why: the checks that
    /// need one say `unknown` and name it.
    pub missing: BTreeMap<String, String>,
}

fn write_json<T: Serialize>(dir: &Path, name: &str, v: &T) -> Result<(), EvidenceError> {
    let path = dir.join(name);
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| EvidenceError::Decode {
        path: path.clone(),
        message: e.to_string(),
    })?;
    std::fs::write(&path, bytes).map_err(|source| EvidenceError::Io { path, source })
}

fn write_graph(dir: &Path, name: &str, g: &Graph) -> Result<(), EvidenceError> {
    let path = dir.join(name);
    let mut text = String::new();
    for line in g.lines() {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(|source| EvidenceError::Io { path, source })
}

/// Writes the drill's part of the evidence (history and events are written
/// as the drill runs).
pub fn write(dir: &Path, ev: &Evidence) -> Result<(), EvidenceError> {
    let folder = dir.join("evidence");
    std::fs::create_dir_all(&folder).map_err(|source| EvidenceError::Io {
        path: folder.clone(),
        source,
    })?;
    write_json(dir, SCENARIO, &ev.scenario)?;
    write_graph(dir, BASE, &ev.base)?;
    for r in &ev.restores {
        if let Some(g) = &r.graph {
            write_graph(dir, &restored_graph_file(r.step), g)?;
        }
    }
    write_json(dir, RESTORES, &ev.restores)?;
    write_json(dir, EXPECTATIONS, &ev.expectations)?;
    write_json(dir, HEARTBEAT_WINDOWS, &ev.heartbeat_windows)?;
    write_json(dir, SOURCE, &ev.source)?;
    write_json(dir, CATALOGS, &ev.catalogs)?;
    write_json(dir, AGENT, &ev.agent)?;
    write_json(dir, AUTH_PROBES, &ev.auth_probes)?;
    write_json(dir, DAMAGE, &ev.damage)?;
    write_json(dir, PRUNES, &ev.prunes)?;
    write_json(dir, SETTINGS, &ev.settings)?;
    write_json(dir, SECRETS, &ev.secrets)
}

/// Reads a run's evidence. Missing or damaged files are recorded in
/// [`Evidence::missing`] (their part left empty); only the scenario is
/// required, since it says what to judge.
pub fn load(dir: &Path) -> Result<Evidence, EvidenceError> {
    let mut missing = BTreeMap::new();
    let scenario: Scenario = read_json(dir, SCENARIO)?;
    let mut part = |name: &str, r: Result<(), EvidenceError>| {
        if let Err(e) = r {
            missing.insert(name.to_string(), e.to_string());
        }
    };
    let mut ev = Evidence {
        scenario,
        base: Graph::default(),
        ops: Vec::new(),
        events: Vec::new(),
        restores: Vec::new(),
        expectations: Vec::new(),
        heartbeat_windows: Vec::new(),
        source: Source::default(),
        catalogs: BTreeMap::new(),
        agent: Profile::graph_agent(),
        auth_probes: Vec::new(),
        damage: Vec::new(),
        prunes: Vec::new(),
        settings: Settings {
            max_retries: 0,
            heartbeat_interval_ms: 0,
            offline_threshold_ms: 0,
        },
        secrets: Vec::new(),
        files: Vec::new(),
        missing: BTreeMap::new(),
    };
    part(BASE, read_graph(dir, BASE).map(|g| ev.base = g));
    part(HISTORY, read_lines(dir, HISTORY).map(|v| ev.ops = v));
    part(EVENTS, read_lines(dir, EVENTS).map(|v| ev.events = v));
    part(RESTORES, read_json(dir, RESTORES).map(|v| ev.restores = v));
    for r in &mut ev.restores {
        if r.job.state == crate::api::JobState::Succeeded {
            let name = restored_graph_file(r.step);
            part(&name, read_graph(dir, &name).map(|g| r.graph = Some(g)));
        }
    }
    part(
        EXPECTATIONS,
        read_json(dir, EXPECTATIONS).map(|v| ev.expectations = v),
    );
    part(
        HEARTBEAT_WINDOWS,
        read_json(dir, HEARTBEAT_WINDOWS).map(|v| ev.heartbeat_windows = v),
    );
    part(SOURCE, read_json(dir, SOURCE).map(|v| ev.source = v));
    part(CATALOGS, read_json(dir, CATALOGS).map(|v| ev.catalogs = v));
    // A run stored before the probe has none: `api-auth` skips it.
    if dir.join(AUTH_PROBES).exists() {
        part(
            AUTH_PROBES,
            read_json(dir, AUTH_PROBES).map(|v| ev.auth_probes = v),
        );
    }
    // Runs stored before damage and prune steps have neither file.
    if dir.join(DAMAGE).exists() {
        part(DAMAGE, read_json(dir, DAMAGE).map(|v| ev.damage = v));
    }
    if dir.join(PRUNES).exists() {
        part(PRUNES, read_json(dir, PRUNES).map(|v| ev.prunes = v));
    }
    if dir.join(AGENT).exists() {
        part(AGENT, read_json(dir, AGENT).map(|v| ev.agent = v));
    }
    part(SETTINGS, read_json(dir, SETTINGS).map(|v| ev.settings = v));
    part(SECRETS, read_json(dir, SECRETS).map(|v| ev.secrets = v));
    ev.files = run_files(dir);
    ev.missing = missing;
    Ok(ev)
}

fn read(dir: &Path, name: &str) -> Result<(PathBuf, String), EvidenceError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) => Err(EvidenceError::Io { path, source }),
    }
}

fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<T, EvidenceError> {
    let (path, text) = read(dir, name)?;
    serde_json::from_str(&text).map_err(|e| EvidenceError::Decode {
        path,
        message: e.to_string(),
    })
}

fn read_lines<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Vec<T>, EvidenceError> {
    let (path, text) = read(dir, name)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| EvidenceError::Decode {
                path: path.clone(),
                message: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

fn read_graph(dir: &Path, name: &str) -> Result<Graph, EvidenceError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Line {
        Schema(String),
        Node(crate::graph::Node),
        Rel(crate::graph::Rel),
    }
    let mut g = Graph::default();
    for line in read_lines::<Line>(dir, name)? {
        match line {
            Line::Schema(s) => {
                g.schema.insert(s);
            }
            Line::Node(n) => g.put_node(n),
            Line::Rel(r) => g.put_rel(r),
        }
    }
    Ok(g)
}

/// Every file of the run folder but the evidence and the reports, which a
/// secret could not have leaked into from the run.
fn run_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
            if name == "evidence"
                || ["report.json", "junit.xml", "report.html"].contains(&name.as_str())
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((name, bytes));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_finds_its_secret_and_nothing_else() {
        let f = Fingerprint::of("token", "s3cr3t-token-value");
        assert!(f.found_in(b"log line: Bearer s3cr3t-token-value ok"));
        assert!(!f.found_in(b"log line: Bearer s3cr3t-token-valu3 ok"));
        assert!(!serde_json::to_string(&f).unwrap().contains("s3cr3t"));
    }
}
