//! One drill's state and the steps of its timeline. Each step does one
//! thing to the environment or the agent and records what it saw; judging
//! happens later, over the records.

mod damage;
mod error;
mod faults;
mod jobs;
mod prune;
mod restore;
mod storage;

pub use error::StepError;
use faults::Injected;
use jobs::Pending;
use storage::Storage;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use neo4rs::query;
use serde_json::json;

use super::store::{Events, RunStore};
use super::{Progress, RunOptions, heartbeat};
use crate::adapter::{Agent, AgentError, AgentSetup, Capability, Claim, Jobs, Profile};
use crate::api::{Job, JobKind, JobState};
use crate::check::behaviour::Expectation;
use crate::env::toxiproxy::{Toxic, ToxicKind};
use crate::env::{self, Environment, load_s3_credentials};
use crate::evidence::{self, ExpectRecord, Fingerprint, HeartbeatWindow, RestoreRecord};
use crate::fault::{self, AccessDenied, Fault, LinkToxic, Partition, RegionLoss, RotatePassword};
use crate::graph::{self, Graph, Inventory};
use crate::history::{EventKind, InStorage, Op, Seen, now_ms};
use crate::repository::envelope::Keys;
use crate::repository::{Objects, Reader, catalog};
use crate::s3::Bucket;
use crate::scenario::{
    Action, AgentAction, BackupStep, ExpectedState, FaultKind, FaultStep, JobExpect, KeyAction,
    Neo4jAction, RegionAction, Scenario, Step, Tier, word,
};
use crate::workload::{self, Plan, WorkloadError, fixture};

/// A job may outlive its deadline by this much before the runner stops waiting.
const FOLLOW_GRACE: Duration = Duration::from_secs(15);

pub struct Drill<'a> {
    env: Arc<Environment>,
    storage: Storage,
    scenario: &'a Scenario,
    store: &'a RunStore,
    opts: &'a RunOptions,
    progress: &'a Progress,
    agent: Option<Agent>,
    /// Who is drilled, and what of it can be judged.
    profile: Profile,
    /// What a foreign agent said of each backup it made, by backup id.
    claims: BTreeMap<String, Claim>,
    auth_probes: Vec<evidence::AuthProbe>,
    receiver: Option<heartbeat::Receiver>,
    workload: Option<tokio::task::JoinHandle<Result<Vec<Op>, WorkloadError>>>,
    ops: Vec<Op>,
    base: Graph,
    faults: Vec<Injected>,
    /// Stored objects damaged, and who read their backups meanwhile.
    damaged: Vec<evidence::DamageRecord>,
    prunes: Vec<evidence::PruneRecord>,
    pending: Vec<Pending>,
    /// Successful backups per tier, oldest first.
    backups: BTreeMap<Tier, Vec<String>>,
    /// Backup step id → backup id.
    named: BTreeMap<String, String>,
    restores: Vec<RestoreRecord>,
    expectations: Vec<ExpectRecord>,
    heartbeat_windows: Vec<HeartbeatWindow>,
    source_subgraphs: BTreeMap<String, BTreeSet<String>>,
    source_inventory: Option<Inventory>,
    catalogs: BTreeMap<String, Vec<String>>,
    secrets: Vec<(String, String)>,
    keys_made: u32,
}

/// One line naming a step, for progress and reports.
pub fn describe(step: &Step) -> String {
    let expect = |e: &Option<JobExpect>| match e {
        Some(JobExpect {
            state: ExpectedState::Failed,
            class,
            ..
        }) => format!(
            " (expect failure{})",
            class.map_or(String::new(), |c| format!(" {}", word(&c)))
        ),
        _ => String::new(),
    };
    match &step.action {
        Action::Backup(b) => format!(
            "backup {} → {}{}",
            word(&b.kind),
            b.tier.name(),
            expect(&b.expect)
        ),
        Action::Restore(r) => format!(
            "restore {} from {}{}",
            r.backup,
            r.tier.name(),
            expect(&r.expect)
        ),
        Action::Verify(v) => format!(
            "verify {} in {}{}",
            v.backup,
            v.tier.name(),
            expect(&v.expect)
        ),
        Action::Copy(c) => format!("copy {} {} → {}", c.backup, c.from.name(), c.to.name()),
        Action::Prune(p) => format!("prune {}{}", p.tier.name(), expect(&p.expect)),
        Action::Damage(d) => format!(
            "damage {} of {} in {} ({})",
            d.object.map_or("an object".into(), |k| word(&k)),
            d.backup,
            d.tier.name(),
            word(&d.how)
        ),
        Action::Fault(f) => {
            let target = f
                .link
                .map(|l| l.link().to_string())
                .or(f.region.map(|r| r.component().to_string()))
                .unwrap_or_default();
            let dur = f.duration.map_or(String::new(), |d| format!(" for {d}"));
            format!("fault {} on {target}{dur}", word(&f.kind))
        }
        Action::Heal => "heal all faults".into(),
        Action::Wait(w) => format!("wait {w}"),
        Action::Agent(a) => format!("agent {}", word(a)),
        Action::Region(r) => format!(
            "region {} {}{}",
            word(&r.region),
            word(&r.action),
            if r.wipe { " (data wiped)" } else { "" }
        ),
        Action::Neo4j(n) => format!("neo4j {}", word(n)),
        Action::Key(k) => format!("key {}", word(k)),
        Action::Clock(c) => format!("agent clock {:+} s", c.ms / 1000),
        Action::WaitWorkload => "wait for the workload".into(),
    }
}

/// Scenario `[agent]` overrides as graph-agent's environment variables.
fn overrides(scenario: &Scenario) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (section, fields) in &scenario.agent {
        for (field, value) in fields {
            let v = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push((
                format!(
                    "{}{}__{}",
                    crate::adapter::builtin::ENV_PREFIX,
                    section.to_uppercase(),
                    field.to_uppercase()
                ),
                v,
            ));
        }
    }
    out
}

impl<'a> Drill<'a> {
    pub fn new(
        env: Arc<Environment>,
        scenario: &'a Scenario,
        store: &'a RunStore,
        opts: &'a RunOptions,
        progress: &'a Progress,
    ) -> Self {
        let storage = Storage {
            env: env.clone(),
            snapshots: agent_dir(&env, store).join("snapshots"),
            masters: Default::default(),
        };
        Self {
            storage,
            env,
            scenario,
            store,
            opts,
            progress,
            agent: None,
            profile: opts.agent.profile(),
            claims: BTreeMap::new(),
            auth_probes: Vec::new(),
            receiver: None,
            workload: None,
            ops: Vec::new(),
            base: Graph::default(),
            faults: Vec::new(),
            damaged: Vec::new(),
            prunes: Vec::new(),
            pending: Vec::new(),
            backups: BTreeMap::new(),
            named: BTreeMap::new(),
            restores: Vec::new(),
            expectations: Vec::new(),
            heartbeat_windows: Vec::new(),
            source_subgraphs: BTreeMap::new(),
            source_inventory: None,
            catalogs: BTreeMap::new(),
            secrets: Vec::new(),
            keys_made: 0,
        }
    }

    pub fn events(&self) -> &Events {
        &self.store.events
    }

    async fn admin(&self, instance: &'static str) -> Result<neo4rs::Graph, StepError> {
        env::neo4j::admin(&self.env.state().neo4j[instance], "neo4j")
            .await
            .map_err(|source| StepError::Neo4j {
                instance,
                doing: "connect as admin",
                source,
            })
    }

    /// A key for this drill, the same for the same seed.
    fn next_key(&mut self) -> (String, [u8; 32]) {
        self.keys_made += 1;
        let mut material = self.scenario.seed.to_le_bytes().to_vec();
        material.extend(self.keys_made.to_le_bytes());
        let key = blake3::derive_key("graphdrill 2026 drill encryption key", &material);
        self.secrets.push((
            format!("encryption key {}", self.keys_made),
            hex::encode(key),
        ));
        let id = format!("key-{}", self.keys_made);
        self.storage
            .masters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), key.to_vec());
        (id, key)
    }

    /// Puts the environment back to clean, loads the fixture, records the
    /// base graph, and starts the heartbeat receiver, the agent and the workload.
    pub async fn prepare(&mut self) -> Result<(), StepError> {
        fault::heal_all(&self.env)
            .await
            .map_err(|source| StepError::Heal {
                what: "the faults of an earlier run".into(),
                source: Box::new(source),
            })?;
        let source = self.admin("neo4j").await?;
        env::neo4j::drop_triggers(&self.env.state().neo4j["neo4j"])
            .await
            .map_err(|source| StepError::Neo4j {
                instance: "neo4j",
                doing: "remove an earlier agent's triggers",
                source,
            })?;
        for instance in ["neo4j", "neo4j-recovery"] {
            let g = self.admin(instance).await?;
            crate::bolt::wipe(&g).await.map_err(|e| StepError::Neo4j {
                instance,
                doing: "empty the database",
                source: e.into(),
            })?;
        }
        for region in ["s3-primary", "s3-archive"] {
            let bucket = self.storage.bucket(region)?;
            let failed = |doing| {
                move |source| StepError::Storage {
                    region,
                    doing,
                    source: Box::new(source),
                }
            };
            let keys = bucket.list("").await.map_err(failed("list"))?;
            for (key, _) in keys {
                bucket.delete(&key).await.map_err(failed("empty"))?;
            }
        }
        let started = std::time::Instant::now();
        self.progress.status("loading the fixture");
        match (self.scenario.fixture_path(), self.scenario.fixture.generate) {
            (Some(path), _) => {
                fixture::load_file(&source, &path).await?;
            }
            (None, Some(g)) => {
                fixture::generate(&source, self.scenario.seed, g.nodes, g.rels).await?;
            }
            (None, None) => {}
        }
        if self.scenario.workload.is_some() {
            workload::install_schema(&source).await?;
        }
        fixture::name_entities(&source).await?;
        let loaded = started.elapsed();
        self.progress.status("recording the base graph");
        self.base = graph::read::read(&source).await?;
        self.progress.line(&format!(
            "  fixture: {} nodes, {} relationships; loaded in {:.1} s, recorded in {:.1} s",
            self.base.nodes.len(),
            self.base.rels.len(),
            loaded.as_secs_f64(),
            (started.elapsed() - loaded).as_secs_f64()
        ));
        self.collect_secrets();
        let state = self.env.state();
        self.receiver = Some(
            heartbeat::Receiver::start(state.control_port, self.store.events.clone())
                .await
                .map_err(|source| StepError::Heartbeat {
                    port: state.control_port,
                    source,
                })?,
        );
        let token = env::random_secret(32);
        self.secrets.push(("control token".into(), token.clone()));
        let key = self.next_key();
        let dir = agent_dir(&self.env, self.store);
        let _ = std::fs::remove_dir_all(&dir);
        let setup = AgentSetup {
            dir,
            log: self.store.dir.join("logs").join("agent.log"),
            overrides: overrides(self.scenario),
            token,
            keys: vec![key],
            clock_skew_ms: 0,
            retention: self.scenario.retention.clone(),
            extra: String::new(),
        };
        let _ = std::fs::create_dir_all(self.store.dir.join("logs"));
        let env = self.env.clone();
        let spec = self.opts.agent.clone();
        let agent = tokio::task::spawn_blocking(move || Agent::start(&env, &spec, setup)).await??;
        if let (Jobs::Api(api), true) = (agent.jobs(), self.profile.has(Capability::ControlApi)) {
            self.auth_probes = api.probe_auth().await;
        }
        self.agent = Some(agent);
        self.events().push(EventKind::Agent {
            action: "started".into(),
        });
        if let Some(w) = &self.scenario.workload {
            let plan = Plan {
                writers: w.writers,
                rate: w.rate,
                duration: w.duration.0,
                mix: w.mix,
                seed: self.scenario.seed,
            };
            let graph = self.admin("neo4j").await?;
            let sink = self.store.history.clone();
            self.workload = Some(tokio::spawn(workload::run(graph, plan, sink)));
        }
        Ok(())
    }

    /// Every secret the run could leak: passwords, S3 secret keys.
    fn collect_secrets(&mut self) {
        let state = self.env.state();
        for (name, n) in &state.neo4j {
            for (who, file) in [
                ("admin", &n.admin_password_file),
                ("agent", &n.agent_password_file),
            ] {
                if let Ok(pw) = env::read_secret(file) {
                    self.secrets.push((format!("{name} {who} password"), pw));
                }
            }
        }
        for (name, s3) in &state.s3 {
            for (who, file) in [
                ("admin", &s3.admin_credentials_file),
                ("agent", &s3.agent_credentials_file),
            ] {
                if let Ok(c) = load_s3_credentials(file) {
                    self.secrets
                        .push((format!("{name} {who} secret key"), c.secret_key));
                }
            }
        }
    }

    fn agent(&self) -> Result<&Agent, StepError> {
        self.agent.as_ref().ok_or(StepError::NoAgent)
    }

    /// Runs one step; an error means the drill itself broke (a failed job
    /// is not one: it is recorded and judged).
    pub async fn step(&mut self, i: usize, step: &Step) -> Result<String, StepError> {
        if matches!(
            step.action,
            Action::Backup(BackupStep {
                background: false,
                ..
            }) | Action::Restore(_)
                | Action::Verify(_)
                | Action::Copy(_)
                | Action::Prune(_)
                | Action::Damage(_)
        ) {
            self.settle().await;
        }
        let read = match &step.action {
            Action::Restore(r) => Some((r.tier, &r.backup)),
            Action::Verify(v) => Some((v.tier, &v.backup)),
            Action::Copy(c) => Some((c.from, &c.backup)),
            _ => None,
        };
        if let Some((tier, reference)) = read
            && let Some(backup) = self.resolve(reference, tier)
        {
            self.note_read(i, tier, &backup);
        }
        match &step.action {
            Action::Backup(b) => {
                let body = json!({"kind": b.kind, "tier": b.tier.name()});
                if b.background {
                    return Ok(self.background_backup(i, step, b, body).await);
                }
                let job = self
                    .job_step(i, "backups", body, describe(step), &b.expect)
                    .await;
                self.note_backup(b.tier, step.id.as_ref(), job.as_ref());
                Ok(self.last_job_line())
            }
            Action::Restore(r) => {
                self.restore(i, r.tier, &r.backup, &r.expect, describe(step))
                    .await
            }
            Action::Verify(v) => {
                let Some(backup) = self.resolve(&v.backup, v.tier) else {
                    return Ok(self.nothing_to(i, "verify", v.tier, &v.expect, describe(step)));
                };
                let mut body = json!({"backup": backup, "tier": v.tier.name()});
                if let Some(s) = v.sample {
                    body["sample"] = json!(s);
                }
                self.job_step(i, "verify", body, describe(step), &v.expect)
                    .await;
                Ok(self.last_job_line())
            }
            Action::Copy(c) => {
                let Some(backup) = self.resolve(&c.backup, c.from) else {
                    return Ok(self.nothing_to(i, "copy", c.from, &c.expect, describe(step)));
                };
                let body = json!({"backup": backup, "from": c.from.name(), "to": c.to.name()});
                let job = self
                    .job_step(i, "copies", body, describe(step), &c.expect)
                    .await;
                if job.is_some_and(|j| j.state == JobState::Succeeded) {
                    self.backups.entry(c.to).or_default().push(backup);
                }
                Ok(self.last_job_line())
            }
            Action::Prune(p) => self.prune(i, p, describe(step)).await,
            Action::Fault(f) => self.inject_fault(i, f).await,
            Action::Damage(d) => self.damage(i, d).await,
            Action::Heal => {
                self.heal_all().await?;
                Ok(String::new())
            }
            Action::Wait(d) => {
                tokio::time::sleep(d.0).await;
                Ok(String::new())
            }
            Action::Agent(a) => self.agent_action(*a).await,
            Action::Region(r) => {
                let tag = format!("region {}", r.region.component());
                match r.action {
                    RegionAction::Lose => {
                        let f: Arc<dyn Fault> =
                            Arc::new(RegionLoss::new(r.region.component(), r.wipe));
                        self.inject(vec![f], tag, None).await
                    }
                    RegionAction::Restore => self.heal_tagged(&tag).await,
                }
            }
            Action::Neo4j(n) => {
                let tag = "neo4j password".to_string();
                match n {
                    Neo4jAction::RotatePassword => {
                        let f: Arc<dyn Fault> = Arc::new(RotatePassword::new("neo4j"));
                        self.inject(vec![f], tag, None).await
                    }
                    Neo4jAction::RestorePassword => self.heal_tagged(&tag).await,
                }
            }
            Action::Clock(skew) => {
                let ms = skew.ms;
                self.restart_agent(move |agent, env| agent.set_clock_skew(env, ms))
                    .await?;
                Ok(format!("agent restarted {:+} s off", ms / 1000))
            }
            Action::Key(k) => {
                let key = self.next_key();
                let mut keys = match k {
                    KeyAction::Rotate => self.agent()?.keys(),
                    KeyAction::Replace => Vec::new(),
                };
                keys.push(key);
                self.restart_agent(move |agent, env| agent.set_keys(env, keys))
                    .await?;
                Ok(format!("agent restarted with key {}", self.keys_made))
            }
            Action::WaitWorkload => {
                self.wait_workload().await?;
                Ok(format!("{} operations", self.ops.len()))
            }
        }
    }

    /// Does `f` to the agent process off the async threads (it waits for
    /// the process), and keeps the agent whatever the outcome.
    async fn restart_agent(
        &mut self,
        f: impl FnOnce(&mut Agent, &Environment) -> Result<(), AgentError> + Send + 'static,
    ) -> Result<(), StepError> {
        let mut agent = self.agent.take().ok_or(StepError::NoAgent)?;
        let env = self.env.clone();
        let (agent, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut agent, &env);
            (agent, r)
        })
        .await?;
        self.agent = Some(agent);
        Ok(result?)
    }

    async fn agent_action(&mut self, a: AgentAction) -> Result<String, StepError> {
        self.restart_agent(move |agent, env| match a {
            AgentAction::Kill => agent.kill(),
            AgentAction::Pause => agent.pause(),
            AgentAction::Resume => agent.resume(),
            AgentAction::Restart => agent.restart(env),
        })
        .await?;
        self.events().push(EventKind::Agent { action: word(&a) });
        Ok(String::new())
    }

    async fn wait_workload(&mut self) -> Result<(), StepError> {
        if let Some(w) = self.workload.take() {
            self.progress.status("waiting for the workload to finish");
            self.ops = w.await??;
        }
        Ok(())
    }

    /// Ends the drill: the workload finishes, every fault is healed, the
    /// agent stops. Runs even when a step broke the drill off.
    pub async fn finish(&mut self) -> Result<(), StepError> {
        let workload = self.wait_workload().await;
        let healed = self.heal_all().await;
        self.settle().await;
        if let Some(mut agent) = self.agent.take() {
            let _ = tokio::task::spawn_blocking(move || agent.stop()).await;
            self.events().push(EventKind::Agent {
                action: "stopped".into(),
            });
        }
        self.receiver = None;
        let source = async {
            let g = self.admin("neo4j").await?;
            self.source_inventory = Some(graph::read::inventory(&g).await?);
            self.subgraph_ids(&g).await
        }
        .await;
        let source = source.map(|ids| self.source_subgraphs = ids);
        if self.profile.has(Capability::Repository) {
            self.catalogs = self.list_catalogs().await;
        }
        workload.and(healed).and(source)
    }

    /// The backup ids each tier's catalog lists, read from storage directly.
    async fn list_catalogs(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for tier in [Tier::Local, Tier::Primary, Tier::Archive] {
            let listed = match self.storage.objects(tier) {
                Ok(objects) => objects.list("catalog/").await.map_err(StepError::from),
                Err(e) => Err(e),
            };
            match listed {
                Ok(keys) => {
                    let ids = keys.iter().filter_map(|k| {
                        k.strip_prefix("catalog/")?
                            .strip_suffix(".json")
                            .map(str::to_string)
                    });
                    out.insert(tier.name().to_string(), ids.collect());
                }
                Err(e) => tracing::warn!(tier = tier.name(), error = %e, "cannot list the catalog"),
            }
        }
        out
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.clone()
    }

    /// Component logs to keep with the run.
    pub fn logs(&self) -> Vec<(String, std::path::PathBuf)> {
        let d = self.env.dir();
        vec![
            ("neo4j".into(), d.join("neo4j/console.log")),
            ("neo4j-debug".into(), d.join("neo4j/logs/debug.log")),
            (
                "neo4j-recovery".into(),
                d.join("neo4j-recovery/console.log"),
            ),
            ("s3-primary".into(), d.join("s3-primary/weed.log")),
            ("s3-archive".into(), d.join("s3-archive/weed.log")),
            ("toxiproxy".into(), d.join("toxiproxy/toxiproxy.log")),
        ]
    }

    /// Everything the checkers need, taken out of the drill.
    pub fn evidence(&mut self) -> evidence::Evidence {
        let setting = |section: &str, field: &str| {
            self.scenario
                .agent
                .get(section)
                .and_then(|s| s.get(field))
                .cloned()
        };
        let ms = |v: Option<toml::Value>, default: u64| {
            v.and_then(|v| v.as_str().and_then(|s| humantime::parse_duration(s).ok()))
                .map_or(default, |d| d.as_millis() as u64)
        };
        evidence::Evidence {
            scenario: self.scenario.clone(),
            base: std::mem::take(&mut self.base),
            ops: self.ops.clone(),
            events: self.store.events.snapshot(),
            restores: std::mem::take(&mut self.restores),
            expectations: std::mem::take(&mut self.expectations),
            heartbeat_windows: std::mem::take(&mut self.heartbeat_windows),
            source: evidence::Source {
                subgraphs: std::mem::take(&mut self.source_subgraphs),
                inventory: self.source_inventory.take(),
            },
            catalogs: std::mem::take(&mut self.catalogs),
            agent: self.profile.clone(),
            auth_probes: std::mem::take(&mut self.auth_probes),
            damage: std::mem::take(&mut self.damaged),
            prunes: std::mem::take(&mut self.prunes),
            settings: evidence::Settings {
                max_retries: setting("transfer", "max_retries")
                    .and_then(|v| v.as_integer())
                    .map_or(2, |v| v.max(0) as u32),
                heartbeat_interval_ms: ms(setting("heartbeat", "interval"), 1_000),
                offline_threshold_ms: ms(setting("heartbeat", "offline_threshold"), 3_000),
            },
            secrets: self
                .secrets
                .iter()
                .map(|(name, secret)| Fingerprint::of(name, secret))
                .collect(),
            files: Vec::new(),
            missing: BTreeMap::new(),
        }
    }
}

/// The agent's own folder for this run (config, keys, state, local tier):
/// in the environment, not in the run folder the report shares.
fn agent_dir(env: &Environment, store: &RunStore) -> std::path::PathBuf {
    env.dir()
        .join("agents")
        .join(store.dir.file_name().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(toml_text: &str) -> Step {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn steps_are_named_in_the_scenario_files_words() {
        let named = [
            (
                "backup = { kind = \"full\", tier = \"primary\" }",
                "backup full → primary",
            ),
            (
                "restore = { tier = \"archive\", expect = { state = \"failed\", class = \"integrity\" } }",
                "restore latest from archive (expect failure integrity)",
            ),
            (
                "fault = { kind = \"access_denied\", region = \"primary\" }",
                "fault access_denied on s3-primary",
            ),
            (
                "region = { action = \"lose\", region = \"archive\" }",
                "region archive lose",
            ),
            ("neo4j = \"rotate-password\"", "neo4j rotate-password"),
            ("agent = \"kill\"", "agent kill"),
            (
                "damage = { tier = \"primary\", object = \"chunk\", how = \"flip\" }",
                "damage chunk of latest in primary (flip)",
            ),
            ("prune = { tier = \"local\" }", "prune local"),
        ];
        for (text, name) in named {
            assert_eq!(describe(&step(text)), name, "{text}");
        }
    }

    #[test]
    fn a_step_written_back_reads_the_same() {
        let s = step(
            "at = \"3s\"\nid = \"first\"\nbackup = { kind = \"incremental\", tier = \"local\" }",
        );
        let again: Step = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(describe(&again), describe(&s));
        assert_eq!((again.at, again.id), (s.at, s.id));
    }
}
