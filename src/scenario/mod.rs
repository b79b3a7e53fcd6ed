//! Scenario files (`scenarios/*.toml`): what a drill starts from, what it
//! writes, the timeline of steps, and what it expects. Unknown fields are
//! refused; every error names file:line:column, the field's path and what
//! was expected.

mod load;

pub use load::{ScenarioError, load, load_all};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::api::Dur;
use crate::api::{BackupKind, FailureClass};
use crate::env::Link;
use crate::workload::Mix;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Seeds the generator, the workload's choices and the key material.
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub environment: Sizes,
    pub fixture: Fixture,
    pub workload: Option<WorkloadSpec>,
    /// Overrides of graph-agent settings: `[agent.transfer] max_retries = 1`.
    #[serde(default)]
    pub agent: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// How long each tier keeps a backup: what the agent is configured
    /// with, and what `prune` steps are judged by.
    #[serde(default)]
    pub retention: Retention,
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub expect: Expect,
    /// The file it was read from (set by [`load`]).
    #[serde(skip)]
    pub file: PathBuf,
}

fn default_seed() -> u64 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    /// JVM heap of each Neo4j, in MiB.
    #[serde(default = "default_heap")]
    pub neo4j_heap_mb: u32,
}

fn default_heap() -> u32 {
    384
}

impl Default for Sizes {
    fn default() -> Self {
        Self {
            neo4j_heap_mb: default_heap(),
        }
    }
}

/// Exactly one of `file` (relative to the scenario file) and `generate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub file: Option<PathBuf>,
    pub generate: Option<Generate>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    pub nodes: u64,
    pub rels: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    #[serde(default = "default_writers")]
    pub writers: u32,
    /// Transactions per second across all writers.
    #[serde(default = "default_rate")]
    pub rate: f64,
    pub duration: Dur,
    #[serde(default)]
    pub mix: Mix,
}

fn default_writers() -> u32 {
    2
}
fn default_rate() -> f64 {
    20.0
}

/// The drill's tiers, as configured in the agent the runner starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Local,
    Primary,
    Archive,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Local => "local",
            Tier::Primary => "primary",
            Tier::Archive => "archive",
        }
    }
}

/// A region's object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    Primary,
    Archive,
}

impl Region {
    /// The environment component holding this region.
    pub fn component(self) -> &'static str {
        match self {
            Region::Primary => "s3-primary",
            Region::Archive => "s3-archive",
        }
    }
}

/// One of the agent's network links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkName {
    Neo4j,
    Neo4jRecovery,
    S3Primary,
    S3Archive,
    Control,
}

impl LinkName {
    pub fn link(self) -> Link {
        match self {
            LinkName::Neo4j => Link::Neo4j,
            LinkName::Neo4jRecovery => Link::Neo4jRecovery,
            LinkName::S3Primary => Link::S3Primary,
            LinkName::S3Archive => Link::S3Archive,
            LinkName::Control => Link::Control,
        }
    }
}

/// A value as scenario files and the control API spell it (`full`,
/// `succeeded`, `s3-primary`), for the names and summaries people read.
pub fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(e) => e.to_string(),
    }
}

/// One step of the timeline: one action, optionally not before `at` (an
/// offset from the drill's start). Read from [`StepFields`], so a step
/// with no action or several is refused where it is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "StepFields", into = "StepFields")]
pub struct Step {
    pub at: Option<Dur>,
    /// Names the step's backup, for a later `restore { backup = "<id>" }`.
    pub id: Option<String>,
    pub action: Action,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    Backup(BackupStep),
    Restore(RestoreStep),
    Verify(VerifyStep),
    Copy(CopyStep),
    Prune(PruneStep),
    Fault(FaultStep),
    Damage(DamageStep),
    /// `heal = "all"`: heals every fault in place.
    Heal,
    Wait(Dur),
    Agent(AgentAction),
    Region(RegionStep),
    Neo4j(Neo4jAction),
    Key(KeyAction),
    /// `workload = "wait"`: waits until the workload has finished.
    WaitWorkload,
    /// `clock = "+10m"`: restarts the agent with its wall clock that far off
    /// (libfaketime); `"0s"` puts it right.
    Clock(Skew),
}

impl Action {
    /// The backup a restore, verify or copy reads (`latest` or a step id).
    pub fn reads_backup(&self) -> Option<&str> {
        match self {
            Action::Restore(r) => Some(&r.backup),
            Action::Verify(v) => Some(&v.backup),
            Action::Copy(c) => Some(&c.backup),
            Action::Damage(d) => Some(&d.backup),
            _ => None,
        }
    }
}

/// A step as the file writes it: one optional field per action.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damage: Option<DamageStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heal: Option<HealAll>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neo4j: Option<Neo4jAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<Skew>,
}

/// A step written with no action, or with more than one (their names).
#[derive(Debug, thiserror::Error)]
#[error(
    "a step has exactly one action (backup, restore, verify, copy, prune, fault, damage, heal, wait, agent, region, neo4j, key, workload, clock); found {}",
    if .0.is_empty() { "none".to_string() } else { .0.join(", ") }
)]
pub struct ActionCount(Vec<&'static str>);

impl TryFrom<StepFields> for Step {
    type Error = ActionCount;

    fn try_from(f: StepFields) -> Result<Self, ActionCount> {
        let mut actions: Vec<(&'static str, Action)> = Vec::new();
        let mut put = |name, action: Option<Action>| actions.extend(action.map(|a| (name, a)));
        put("backup", f.backup.map(Action::Backup));
        put("restore", f.restore.map(Action::Restore));
        put("verify", f.verify.map(Action::Verify));
        put("copy", f.copy.map(Action::Copy));
        put("prune", f.prune.map(Action::Prune));
        put("fault", f.fault.map(Action::Fault));
        put("damage", f.damage.map(Action::Damage));
        put("heal", f.heal.map(|HealAll::All| Action::Heal));
        put("wait", f.wait.map(Action::Wait));
        put("agent", f.agent.map(Action::Agent));
        put("region", f.region.map(Action::Region));
        put("neo4j", f.neo4j.map(Action::Neo4j));
        put("key", f.key.map(Action::Key));
        put(
            "workload",
            f.workload.map(|WorkloadAction::Wait| Action::WaitWorkload),
        );
        put("clock", f.clock.map(Action::Clock));
        if actions.len() != 1 {
            return Err(ActionCount(actions.into_iter().map(|(n, _)| n).collect()));
        }
        let (_, action) = actions.remove(0);
        Ok(Step {
            at: f.at,
            id: f.id,
            action,
        })
    }
}

impl From<Step> for StepFields {
    fn from(s: Step) -> Self {
        let mut f = StepFields {
            at: s.at,
            id: s.id,
            ..StepFields::default()
        };
        match s.action {
            Action::Backup(b) => f.backup = Some(b),
            Action::Restore(r) => f.restore = Some(r),
            Action::Verify(v) => f.verify = Some(v),
            Action::Copy(c) => f.copy = Some(c),
            Action::Prune(p) => f.prune = Some(p),
            Action::Fault(x) => f.fault = Some(x),
            Action::Damage(d) => f.damage = Some(d),
            Action::Heal => f.heal = Some(HealAll::All),
            Action::Wait(d) => f.wait = Some(d),
            Action::Agent(a) => f.agent = Some(a),
            Action::Region(r) => f.region = Some(r),
            Action::Neo4j(n) => f.neo4j = Some(n),
            Action::Key(k) => f.key = Some(k),
            Action::WaitWorkload => f.workload = Some(WorkloadAction::Wait),
            Action::Clock(c) => f.clock = Some(c),
        }
        f
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedState {
    Succeeded,
    Failed,
}

/// What a job step expects; without one, the job must succeed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobExpect {
    pub state: ExpectedState,
    pub class: Option<FailureClass>,
    /// From the request to the job's end.
    pub within: Option<Dur>,
    /// At most this many attempts (1: no retry at all).
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupStep {
    pub kind: BackupKind,
    pub tier: Tier,
    pub expect: Option<JobExpect>,
    /// Submit and go on with the next step (to fault or kill the agent
    /// mid-backup); the job is followed until it ends, and judged, before
    /// the next job step and at the end.
    #[serde(default)]
    pub background: bool,
}

fn latest() -> String {
    "latest".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreStep {
    /// `latest` (the newest successful backup in `tier`) or a backup step's `id`.
    #[serde(default = "latest")]
    pub backup: String,
    pub tier: Tier,
    pub expect: Option<JobExpect>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyStep {
    #[serde(default = "latest")]
    pub backup: String,
    pub tier: Tier,
    pub sample: Option<f64>,
    pub expect: Option<JobExpect>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyStep {
    #[serde(default = "latest")]
    pub backup: String,
    pub from: Tier,
    pub to: Tier,
    pub expect: Option<JobExpect>,
}

/// `prune = { tier = "local" }`: the agent removes the tier's backups past
/// their retention (set short with `[agent.retention]`); the runner then
/// reads what is left with its own reader.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneStep {
    pub tier: Tier,
    pub expect: Option<JobExpect>,
}

/// `damage = { tier, backup, object, how }`: one stored object of a
/// backup (chosen by the seed among those of its kind) damaged until a
/// `heal` step or the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DamageStep {
    #[serde(default = "latest")]
    pub backup: String,
    pub tier: Tier,
    /// `chunk`, `manifest` or `catalog` (needs an agent whose repository
    /// graphdrill reads); any object of the backup when left out.
    pub object: Option<crate::repository::ObjectKind>,
    pub how: crate::fault::Harm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Latency,
    Timeout,
    Reset,
    Bandwidth,
    SlowClose,
    Partition,
    AccessDenied,
}

/// What the heartbeat receiver must see while a fault is in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeartbeatExpect {
    /// Offline within threshold + one interval; online again as fast after the heal.
    Offline,
    /// Never offline.
    Online,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    pub kind: FaultKind,
    /// The link, for network faults.
    pub link: Option<LinkName>,
    /// The region, for `access_denied`.
    pub region: Option<Region>,
    pub latency: Option<Dur>,
    pub jitter: Option<Dur>,
    /// For `timeout` and `reset`: when the connection is cut (0: never).
    pub after: Option<Dur>,
    pub rate_kb_s: Option<u64>,
    pub delay: Option<Dur>,
    /// Heals itself after this long; otherwise at a `heal` step or the end.
    #[serde(rename = "for")]
    pub duration: Option<Dur>,
    pub heartbeat: Option<HeartbeatExpect>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealAll {
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentAction {
    /// SIGKILL (`docker kill` on the container backend).
    Kill,
    /// SIGSTOP (`docker pause`): the agent hangs, connections stay open.
    Pause,
    /// SIGCONT (`docker unpause`).
    Resume,
    /// Starts it again (after a kill), or stops and starts it.
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionAction {
    Lose,
    Restore,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionStep {
    pub action: RegionAction,
    pub region: Region,
    /// With `lose`: the region's data is gone too.
    #[serde(default)]
    pub wipe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Neo4jAction {
    /// Changes the agent's Neo4j password behind its back.
    RotatePassword,
    /// Puts back the password the agent knows.
    RestorePassword,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAction {
    /// A new current key; older keys stay for reading (agent restarts).
    Rotate,
    /// A different key and no other: restores of older backups must fail
    /// with class `integrity` (agent restarts).
    Replace,
}

/// A signed clock offset, written `+10m`, `-30s` or `0s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skew {
    pub ms: i64,
}

impl<'de> Deserialize<'de> for Skew {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (sign, rest) = match s.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, s.strip_prefix('+').unwrap_or(&s)),
        };
        humantime::parse_duration(rest)
            .map(|d| Skew {
                ms: sign * d.as_millis() as i64,
            })
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a clock offset ({e}); write e.g. `+10m`, `-30s`, `0s`"
                ))
            })
    }
}

impl Serialize for Skew {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:+}ms", self.ms))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadAction {
    Wait,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The largest acceptable RPO per restore.
    pub rpo_max: Option<Dur>,
    #[serde(default)]
    pub restore_sla: Slas,
    /// Judge restored graphs against the expected graph.
    #[serde(default = "yes")]
    pub consistency: bool,
    #[serde(default)]
    pub subgraph: Vec<Subgraph>,
    /// What the agent may add to the source database.
    #[serde(default)]
    pub intrusion: Intrusion,
}

/// `expect.intrusion`: `"report"` (the default) only reports what the agent
/// added to the source; a number is the most additions allowed (see
/// `check::intrusion::additions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Intrusion {
    #[default]
    Report,
    Max(u64),
}

impl<'de> Deserialize<'de> for Intrusion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Max(u64),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected \"report\" or a maximum number of additions")
        })? {
            Raw::Word(w) if w == "report" => Ok(Self::Report),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "`{w}`: expected \"report\" or a maximum number of additions"
            ))),
            Raw::Max(n) => Ok(Self::Max(n)),
        }
    }
}

impl Serialize for Intrusion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Report => s.serialize_str("report"),
            Self::Max(n) => s.serialize_u64(*n),
        }
    }
}

fn yes() -> bool {
    true
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            rpo_max: None,
            restore_sla: Slas::default(),
            consistency: true,
            subgraph: Vec::new(),
            intrusion: Intrusion::Report,
        }
    }
}

/// Restore SLA per tier; the defaults are the seed's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slas {
    #[serde(default = "sla_local")]
    pub local: Dur,
    #[serde(default = "sla_primary")]
    pub primary: Dur,
    #[serde(default = "sla_archive")]
    pub archive: Dur,
}

fn sla_local() -> Dur {
    Dur(std::time::Duration::from_secs(5 * 60))
}
fn sla_primary() -> Dur {
    Dur(std::time::Duration::from_secs(30 * 60))
}
fn sla_archive() -> Dur {
    Dur(std::time::Duration::from_secs(2 * 3600))
}

impl Default for Slas {
    fn default() -> Self {
        Self {
            local: sla_local(),
            primary: sla_primary(),
            archive: sla_archive(),
        }
    }
}

impl Slas {
    pub fn of(&self, tier: Tier) -> Dur {
        match tier {
            Tier::Local => self.local,
            Tier::Primary => self.primary,
            Tier::Archive => self.archive,
        }
    }
}

/// Retention per tier; the defaults are the seed's (7 days local, 30 days
/// in the buckets), far longer than a drill.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default = "keep_local")]
    pub local: Dur,
    #[serde(default = "keep_remote")]
    pub primary: Dur,
    #[serde(default = "keep_remote")]
    pub archive: Dur,
}

fn keep_local() -> Dur {
    Dur(std::time::Duration::from_secs(7 * 86_400))
}
fn keep_remote() -> Dur {
    Dur(std::time::Duration::from_secs(30 * 86_400))
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            local: keep_local(),
            primary: keep_remote(),
            archive: keep_remote(),
        }
    }
}

impl Retention {
    pub fn of(&self, tier: Tier) -> Dur {
        match tier {
            Tier::Local => self.local,
            Tier::Primary => self.primary,
            Tier::Archive => self.archive,
        }
    }
}

/// A named part of the graph: Cypher returning the `drill_id`s of its nodes
/// as column `id`. It runs on the source after the workload and on each
/// restored graph; the subgraph is the union, and relationships between
/// its nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subgraph {
    pub name: String,
    pub cypher: String,
}
