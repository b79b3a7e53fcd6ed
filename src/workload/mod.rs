//! The write workload: concurrent writers, each running small
//! multi-entity transactions on its own direct connection (never through
//! the agent's links) and recording every operation in the history.
//!
//! Each writer touches only the entities it created, so writers never
//! conflict and each writer's operations commit in the order it ran them.
//! Every transaction also sets the writer's cursor node to the operation's
//! index: a restored graph holds, per writer, exactly the prefix of its
//! operations up to its cursor (see [`crate::check::expected_graph`]).

pub mod fixture;
pub mod statements;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use neo4rs::{BoltMap, BoltType, Graph, query};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::graph::ID_PROPERTY;
use crate::history::{self, CURSOR_LABEL, CURSOR_PROPERTY, Op, Phase, PropValue, Write, cursor_id};

/// Label of every node the workload creates.
pub const ITEM_LABEL: &str = "DrillItem";
const REL_TYPE: &str = "LINKS";
/// Gives up on a transaction after this long (its outcome is then unknown).
const OP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("neo4j ({what}): {message}")]
    Neo4j { what: &'static str, message: String },
    #[error("fixture `{}`: {message}", path.display())]
    Fixture { path: PathBuf, message: String },
}

/// Relative weights of the operation kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default)]
    pub create: u32,
    #[serde(default)]
    pub update: u32,
    #[serde(default)]
    pub delete_rel: u32,
    #[serde(default)]
    pub delete_node: u32,
    #[serde(default)]
    pub move_edge: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            create: 50,
            update: 25,
            delete_rel: 10,
            delete_node: 5,
            move_edge: 10,
        }
    }
}

impl Mix {
    pub fn total(&self) -> u32 {
        self.create + self.update + self.delete_rel + self.delete_node + self.move_edge
    }
}

/// How the writers run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub writers: u32,
    /// Transactions per second across all writers.
    pub rate: f64,
    pub duration: Duration,
    pub mix: Mix,
    pub seed: u64,
}

/// A writer's own view of the entities it made.
#[derive(Default)]
struct Owned {
    nodes: Vec<String>,
    /// Relationship id → start node id.
    rels: BTreeMap<String, (String, String)>,
}

impl Owned {
    fn apply(&mut self, writes: &[Write]) {
        for w in writes {
            match w {
                Write::PutNode { id, labels, .. } if labels.iter().any(|l| l == ITEM_LABEL) => {
                    self.nodes.push(id.clone())
                }
                Write::PutRel { id, start, end, .. } => {
                    self.rels.insert(id.clone(), (start.clone(), end.clone()));
                }
                Write::DeleteRel { id, .. } => {
                    self.rels.remove(id);
                }
                Write::DeleteNode { id } => {
                    self.nodes.retain(|n| n != id);
                    self.rels.retain(|_, (s, e)| s != id && e != id);
                }
                _ => {}
            }
        }
    }
}

/// Creates the index the writers look their entities up by. Part of the
/// schema a backup carries, so it exists before the drill's base graph is
/// recorded.
pub async fn install_schema(graph: &Graph) -> Result<(), WorkloadError> {
    graph
        .run(query(&format!(
            "CREATE INDEX drill_item_gid IF NOT EXISTS FOR (n:{ITEM_LABEL}) ON (n.{ID_PROPERTY})"
        )))
        .await
        .map_err(|e| WorkloadError::Neo4j {
            what: "create index",
            message: e.to_string(),
        })
}

/// Runs the workload to its end and returns the history. `sink` receives
/// each line as it happens (the run's `history.jsonl`).
pub async fn run(
    graph: Graph,
    plan: Plan,
    sink: Arc<Mutex<dyn std::io::Write + Send>>,
) -> Result<Vec<Op>, WorkloadError> {
    let log: Arc<Mutex<Vec<Op>>> = Arc::default();
    let mut writers = tokio::task::JoinSet::new();
    let interval = Duration::from_secs_f64(plan.writers as f64 / plan.rate.max(0.001));
    for process in 0..plan.writers {
        let w = Writer {
            graph: graph.clone(),
            process,
            rng: StdRng::seed_from_u64(plan.seed ^ (u64::from(process) << 32)),
            owned: Owned::default(),
            log: log.clone(),
            sink: sink.clone(),
            mix: plan.mix,
            uncertain: false,
        };
        writers.spawn(w.run(interval, plan.duration));
    }
    // A writer that fails stops the others (dropping the set aborts them).
    while let Some(done) = writers.join_next().await {
        done.map_err(|e| WorkloadError::Neo4j {
            what: "writer task",
            message: e.to_string(),
        })??;
    }
    let ops = std::mem::take(&mut *log.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(ops)
}

struct Writer {
    graph: Graph,
    process: u32,
    rng: StdRng,
    owned: Owned,
    log: Arc<Mutex<Vec<Op>>>,
    sink: Arc<Mutex<dyn std::io::Write + Send>>,
    mix: Mix,
    uncertain: bool,
}

impl Writer {
    async fn run(mut self, interval: Duration, duration: Duration) -> Result<(), WorkloadError> {
        let cursor = vec![Write::PutNode {
            id: cursor_id(self.process),
            labels: vec![CURSOR_LABEL.into()],
            props: BTreeMap::from([(CURSOR_PROPERTY.into(), PropValue::Int(0))]),
        }];
        if self.op(0, "cursor", cursor).await != Phase::Ok {
            return Err(WorkloadError::Neo4j {
                what: "create writer cursor",
                message: format!("writer {} could not start", self.process),
            });
        }
        let end = tokio::time::Instant::now() + duration;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut index = 0;
        while tokio::time::Instant::now() < end {
            tick.tick().await;
            index += 1;
            let (f, writes) = self.next_op(index);
            self.op(index, f, writes).await;
            if self.uncertain {
                tracing::warn!(writer = self.process, "outcome unknown; the writer stops");
                break;
            }
        }
        Ok(())
    }

    /// Chooses the next operation from the mix; one that has nothing to
    /// act on yet becomes a create.
    fn next_op(&mut self, k: u64) -> (&'static str, Vec<Write>) {
        let p = self.process;
        let node = format!("w{p}-n{k}");
        let rel = format!("w{p}-r{k}");
        let props = |rng: &mut StdRng| {
            BTreeMap::from([
                (
                    "v".to_string(),
                    PropValue::Int(rng.random_range(0..1_000_000)),
                ),
                ("tx".to_string(), PropValue::Str(format!("w{p}-{k}"))),
            ])
        };
        let mut roll = self.rng.random_range(0..self.mix.total().max(1));
        // Exactly one kind: the first whose cumulative weight exceeds the roll.
        let mut pick = |weight: u32| {
            let hit = roll < weight;
            roll = if hit { u32::MAX } else { roll - weight };
            hit
        };
        let (create, update, delete_rel, delete_node) = (
            pick(self.mix.create),
            pick(self.mix.update),
            pick(self.mix.delete_rel),
            pick(self.mix.delete_node),
        );
        let any_rel = self
            .owned
            .rels
            .keys()
            .nth(self.rng.random_range(0..self.owned.rels.len().max(1)))
            .cloned();
        let n = self.owned.nodes.len();
        if !create && update && n > 0 {
            let mut writes = Vec::new();
            for _ in 0..2.min(n) {
                let id = self.owned.nodes[self.rng.random_range(0..n)].clone();
                writes.push(Write::SetProps {
                    id,
                    props: props(&mut self.rng),
                });
            }
            return ("update", writes);
        }
        if !create && delete_node && n > 1 {
            let id = self.owned.nodes[self.rng.random_range(0..n)].clone();
            return ("delete_node", vec![Write::DeleteNode { id }]);
        }
        if !create && let Some(old) = any_rel {
            let (start, _) = self.owned.rels[&old].clone();
            let mut writes = vec![Write::DeleteRel {
                id: old,
                start: start.clone(),
            }];
            if delete_rel {
                return ("delete_rel", writes);
            }
            if !update && !delete_node {
                let end = self.owned.nodes[self.rng.random_range(0..n)].clone();
                writes.push(Write::PutRel {
                    id: rel,
                    rel_type: REL_TYPE.into(),
                    start,
                    end,
                    props: props(&mut self.rng),
                });
                return ("move_edge", writes);
            }
        }
        let mut writes = vec![Write::PutNode {
            id: node.clone(),
            labels: vec![ITEM_LABEL.into()],
            props: props(&mut self.rng),
        }];
        if n > 0 {
            let start = self.owned.nodes[self.rng.random_range(0..n)].clone();
            writes.push(Write::PutRel {
                id: rel,
                rel_type: REL_TYPE.into(),
                start,
                end: node,
                props: props(&mut self.rng),
            });
        }
        ("create", writes)
    }

    /// Runs one operation as one transaction and records it.
    async fn op(&mut self, index: u64, f: &str, mut writes: Vec<Write>) -> Phase {
        if index > 0 {
            writes.push(Write::SetProps {
                id: cursor_id(self.process),
                props: BTreeMap::from([(CURSOR_PROPERTY.into(), PropValue::Int(index as i64))]),
            });
        }
        let mut op = Op {
            process: self.process,
            index,
            f: f.to_string(),
            phase: Phase::Invoke,
            time_ms: history::now_ms(),
            writes,
            error: None,
            committed: None,
        };
        self.record(&op);
        let outcome = tokio::time::timeout(OP_TIMEOUT, execute(&self.graph, &op.writes)).await;
        let (phase, error) = match outcome {
            Ok(Ok(())) => (Phase::Ok, None),
            Ok(Err((phase, e))) => (phase, Some(e)),
            Err(_) => (
                Phase::Info,
                Some(format!("no answer within {OP_TIMEOUT:?}")),
            ),
        };
        // The cursor says an unknown outcome committed when it reached the
        // op's index; below it, the commit may still land, so it stays unknown.
        let resolved = match phase {
            Phase::Info => read_cursor(&self.graph, self.process)
                .await
                .filter(|&c| c == index)
                .map(|_| true),
            _ => None,
        };
        if phase == Phase::Ok || resolved == Some(true) {
            self.owned.apply(&op.writes);
        }
        op.phase = phase;
        op.time_ms = history::now_ms();
        op.writes = Vec::new();
        op.error = error;
        op.committed = resolved;
        self.record(&op);
        // With an unresolved outcome its own model is uncertain: it stops.
        self.uncertain |= phase == Phase::Info && resolved.is_none();
        phase
    }

    fn record(&self, op: &Op) {
        if let Ok(mut out) = self.sink.lock()
            && let Err(e) = history::append(&mut *out, op)
        {
            tracing::warn!(error = %e, "could not write the history");
        }
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(op.clone());
    }
}

async fn read_cursor(graph: &Graph, process: u32) -> Option<u64> {
    let q = query(&format!(
        "MATCH (c:{CURSOR_LABEL} {{{ID_PROPERTY}: $id}}) RETURN c.{CURSOR_PROPERTY} AS n"
    ))
    .param("id", cursor_id(process));
    tokio::time::timeout(OP_TIMEOUT, crate::bolt::query_i64(graph, q))
        .await
        .ok()?
        .ok()
        .map(|n| n as u64)
}

fn bolt_props(props: &BTreeMap<String, PropValue>) -> BoltType {
    let mut m = BoltMap::new();
    for (k, v) in props {
        let v: BoltType = match v {
            PropValue::Int(i) => (*i).into(),
            PropValue::Str(s) => s.as_str().into(),
        };
        m.put(k.as_str().into(), v);
    }
    BoltType::Map(m)
}

/// Runs `writes` in one transaction. An error before the commit is a
/// definite failure, and so is a commit the server refused with a client or
/// transient error (Neo4j's status codes say both roll back: a deadlock,
/// for one). Any other error during the commit leaves the outcome unknown.
async fn execute(graph: &Graph, writes: &[Write]) -> Result<(), (Phase, String)> {
    let fail = |e: neo4rs::Error| (Phase::Fail, e.to_string());
    let mut txn = graph.start_txn().await.map_err(fail)?;
    for w in writes {
        let (q, expect) = match w {
            Write::PutNode { id, labels, props } => (
                query(&format!(
                    "CALL apoc.create.node($labels, $props) YIELD node \
                     SET node.{ID_PROPERTY} = $id RETURN count(node) AS n"
                ))
                .param("labels", labels.clone())
                .param("props", bolt_props(props))
                .param("id", id.as_str()),
                1,
            ),
            Write::SetProps { id, props } => (
                query(&format!(
                    "MATCH (n {{{ID_PROPERTY}: $id}}) WHERE n:{ITEM_LABEL} OR n:{CURSOR_LABEL} \
                     SET n += $props RETURN count(n) AS n"
                ))
                .param("id", id.as_str())
                .param("props", bolt_props(props)),
                1,
            ),
            Write::PutRel {
                id,
                rel_type,
                start,
                end,
                props,
            } => (
                query(&format!(
                    "MATCH (a:{ITEM_LABEL} {{{ID_PROPERTY}: $start}}), (b:{ITEM_LABEL} {{{ID_PROPERTY}: $end}}) \
                     CALL apoc.create.relationship(a, $type, $props, b) YIELD rel \
                     SET rel.{ID_PROPERTY} = $id RETURN count(rel) AS n"
                ))
                .param("start", start.as_str())
                .param("end", end.as_str())
                .param("type", rel_type.as_str())
                .param("props", bolt_props(props))
                .param("id", id.as_str()),
                1,
            ),
            Write::DeleteRel { id, start } => (
                query(&format!(
                    "MATCH (:{ITEM_LABEL} {{{ID_PROPERTY}: $start}})-[r {{{ID_PROPERTY}: $id}}]->() \
                     DELETE r RETURN count(r) AS n"
                ))
                .param("start", start.as_str())
                .param("id", id.as_str()),
                1,
            ),
            Write::DeleteNode { id } => (
                query(&format!(
                    "MATCH (n:{ITEM_LABEL} {{{ID_PROPERTY}: $id}}) DETACH DELETE n RETURN count(n) AS n"
                ))
                .param("id", id.as_str()),
                1,
            ),
        };
        let mut rows = txn.execute(q).await.map_err(fail)?;
        let n = match rows.next(txn.handle()).await.map_err(fail)? {
            Some(row) => row.get::<i64>("n").unwrap_or(-1),
            None => 0,
        };
        drop(rows);
        if n != expect {
            let _ = txn.rollback().await;
            return Err((
                Phase::Fail,
                format!("{w:?} matched {n} entities, expected {expect}"),
            ));
        }
    }
    txn.commit().await.map_err(|e| {
        let phase = if rolled_back(&e) {
            Phase::Fail
        } else {
            Phase::Info
        };
        (phase, format!("commit: {e}"))
    })
}

/// Whether the server answered with an error its status code documents as
/// rolling the transaction back: a client error (a constraint, say), or a
/// lock it could not take before committing. Anything else at commit, a
/// `DatabaseUnavailable` during shutdown included, may have committed:
/// measured with neo4j-admin-dump under churn (docs/findings.md), where
/// such a commit was in the dump taken right after.
fn rolled_back(e: &neo4rs::Error) -> bool {
    match e {
        neo4rs::Error::Neo4j(e) => rolled_back_code(e.code()),
        _ => false,
    }
}

fn rolled_back_code(code: &str) -> bool {
    const LOCKS: [&str; 3] = [
        "Neo.TransientError.Transaction.DeadlockDetected",
        "Neo.TransientError.Transaction.LockAcquisitionTimeout",
        "Neo.TransientError.Transaction.LockClientStopped",
    ];
    code.starts_with("Neo.ClientError.") || LOCKS.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::rolled_back_code;

    #[test]
    fn only_errors_that_roll_back_before_the_commit_make_a_write_failed() {
        for definite in [
            "Neo.ClientError.Schema.ConstraintValidationFailed",
            "Neo.TransientError.Transaction.DeadlockDetected",
            "Neo.TransientError.Transaction.LockAcquisitionTimeout",
        ] {
            assert!(rolled_back_code(definite), "{definite}");
        }
        for unknown in [
            "Neo.TransientError.General.DatabaseUnavailable",
            "Neo.TransientError.Transaction.Terminated",
            "Neo.DatabaseError.General.UnknownError",
        ] {
            assert!(!rolled_back_code(unknown), "{unknown}");
        }
    }
}
