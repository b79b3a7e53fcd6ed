//! What happened in a drill, as data: the workload's operations
//! (`history.jsonl`, Jepsen style: each operation is invoked, then ends ok,
//! fail or info) and the runner's events (`events.jsonl`: steps, faults,
//! jobs, heartbeats). Checkers are pure functions over these; the agent's
//! own word is only one more event.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::api::{Job, JobState};

/// How an operation ended, or that it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Invoke,
    /// Committed: the database acknowledged it.
    Ok,
    /// Definitely not committed.
    Fail,
    /// Unknown outcome (e.g. the connection broke during commit).
    Info,
}

/// A property value the workload writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropValue {
    Int(i64),
    Str(String),
}

/// One change an operation makes; all of an operation's writes commit
/// together or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "w", rename_all = "snake_case")]
pub enum Write {
    /// Creates a node, or replaces all of its properties.
    PutNode {
        id: String,
        labels: Vec<String>,
        props: BTreeMap<String, PropValue>,
    },
    /// Sets some properties of an existing node.
    SetProps {
        id: String,
        props: BTreeMap<String, PropValue>,
    },
    PutRel {
        id: String,
        rel_type: String,
        start: String,
        end: String,
        props: BTreeMap<String, PropValue>,
    },
    DeleteRel {
        id: String,
        /// The start node's id, so the writer finds it through an index.
        start: String,
    },
    /// Deletes a node and its relationships.
    DeleteNode { id: String },
}

impl Write {
    /// The id of the entity written.
    pub fn id(&self) -> &str {
        match self {
            Write::PutNode { id, .. }
            | Write::SetProps { id, .. }
            | Write::PutRel { id, .. }
            | Write::DeleteRel { id, .. }
            | Write::DeleteNode { id } => id,
        }
    }
}

/// One line of `history.jsonl`. The invocation carries the writes; its
/// completion repeats `process` and `index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The writer (Jepsen's process).
    pub process: u32,
    /// The writer's operation number, from 1; operation 0 creates its cursor.
    pub index: u64,
    /// e.g. `create`, `update`, `delete_rel`, `delete_node`, `move_edge`.
    pub f: String,
    pub phase: Phase,
    pub time_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<Write>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For an `info` completion: whether the writer found, by reading its
    /// cursor, that the operation committed. A writer that cannot tell stops,
    /// so an unresolved operation is its writer's last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<bool>,
}

/// An operation with its outcome, as checkers use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub process: u32,
    pub index: u64,
    pub f: String,
    pub invoked_ms: u64,
    pub ended_ms: u64,
    pub outcome: Phase,
    /// Whether it committed, as far as the writer knows (`ok`, or an `info`
    /// resolved by the cursor; an unresolved `info` counts as committed).
    pub committed: bool,
    pub writes: Vec<Write>,
}

/// Pairs invocations with completions, in invocation order per writer. An
/// invocation without completion (the run was cut short) counts as `info`.
pub fn complete(ops: &[Op]) -> Vec<Completed> {
    let mut open: BTreeMap<(u32, u64), &Op> = BTreeMap::new();
    let mut done: BTreeMap<(u32, u64), Completed> = BTreeMap::new();
    for op in ops {
        let key = (op.process, op.index);
        if op.phase == Phase::Invoke {
            open.insert(key, op);
        } else if let Some(inv) = open.remove(&key) {
            let committed = match op.phase {
                Phase::Ok => true,
                Phase::Info => op.committed.unwrap_or(true),
                _ => false,
            };
            done.insert(key, completed(inv, op.phase, op.time_ms, committed));
        }
    }
    for (key, inv) in open {
        done.insert(key, completed(inv, Phase::Info, u64::MAX, true));
    }
    done.into_values().collect()
}

fn completed(inv: &Op, outcome: Phase, ended_ms: u64, committed: bool) -> Completed {
    Completed {
        process: inv.process,
        index: inv.index,
        f: inv.f.clone(),
        invoked_ms: inv.time_ms,
        ended_ms,
        outcome,
        committed,
        writes: inv.writes.clone(),
    }
}

/// Label of a writer's cursor node.
pub const CURSOR_LABEL: &str = "DrillWriter";
/// Property of the cursor holding the index of the writer's last committed operation.
pub const CURSOR_PROPERTY: &str = "last";

/// The id of writer `process`'s cursor node. Every operation of a writer
/// also sets its cursor, so a restored cursor says which prefix of the
/// writer's operations the restore holds.
pub fn cursor_id(process: u32) -> String {
    format!("writer-{process}")
}

/// What the runner saw, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Whether a backup the agent called successful could be read back from
/// storage by the judge's own reader ([`crate::repository`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InStorage {
    pub restorable: bool,
    /// What was read (the chain, chunks and bytes), or the first broken
    /// promise, naming the object.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    StepStarted {
        step: usize,
        what: String,
    },
    StepFinished {
        step: usize,
        what: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
    FaultInjected {
        fault: usize,
        what: String,
    },
    FaultHealed {
        fault: usize,
        what: String,
    },
    /// A job reached a terminal state, or was still running when given up on.
    Job {
        step: usize,
        job: Box<Job>,
        /// When the runner asked for it and saw it end, by its own clock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seen: Option<Seen>,
        /// What the judge's reader found in storage when the runner first
        /// saw the job succeed (backups only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_storage: Option<InStorage>,
    },
    /// A restore finished and the runner could query the restored graph.
    Queryable {
        step: usize,
        job: String,
    },
    Heartbeat {
        sequence: u64,
        sent_ms: u64,
    },
    Agent {
        action: String,
    },
}

/// A job's life as the runner saw it (the agent's own stamps may be off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub submitted_ms: u64,
    /// None: still not ended when the runner gave up.
    pub ended_ms: Option<u64>,
}

impl Seen {
    pub fn took_ms(&self) -> Option<u64> {
        Some(self.ended_ms?.saturating_sub(self.submitted_ms))
    }
}

impl Event {
    pub fn now(kind: EventKind) -> Self {
        Self {
            time_ms: now_ms(),
            kind,
        }
    }

    /// The job of a `Job` event that reached a terminal state.
    pub fn finished_job(&self) -> Option<&Job> {
        match &self.kind {
            EventKind::Job { job, .. } if job.state.is_terminal() => Some(job),
            _ => None,
        }
    }
}

/// Whether a job event says the job succeeded.
pub fn succeeded(job: &Job) -> bool {
    job.state == JobState::Succeeded
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Appends one JSON line.
pub fn append<T: Serialize>(
    out: &mut (impl std::io::Write + ?Sized),
    item: &T,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, item)?;
    out.write_all(b"\n")
}

/// Reads a JSON-lines file; a bad line is an error naming the file and line.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(process: u32, index: u64, phase: Phase, time_ms: u64) -> Op {
        Op {
            process,
            index,
            f: "create".into(),
            phase,
            time_ms,
            writes: Vec::new(),
            error: None,
            committed: None,
        }
    }

    #[test]
    fn invocations_pair_with_their_completions_and_open_ones_are_info() {
        let ops = [
            op(1, 1, Phase::Invoke, 10),
            op(2, 1, Phase::Invoke, 11),
            op(1, 1, Phase::Ok, 15),
            op(1, 2, Phase::Invoke, 16),
            op(2, 1, Phase::Fail, 17),
        ];
        let done = complete(&ops);
        let got: Vec<_> = done
            .iter()
            .map(|c| (c.process, c.index, c.outcome, c.ended_ms))
            .collect();
        assert_eq!(
            got,
            [
                (1, 1, Phase::Ok, 15),
                (1, 2, Phase::Info, u64::MAX),
                (2, 1, Phase::Fail, 17)
            ]
        );
    }

    #[test]
    fn history_lines_round_trip() {
        let mut o = op(3, 7, Phase::Invoke, 42);
        o.writes.push(Write::PutRel {
            id: "r".into(),
            rel_type: "LINKS".into(),
            start: "a".into(),
            end: "b".into(),
            props: BTreeMap::from([("v".into(), PropValue::Int(1))]),
        });
        let mut buf = Vec::new();
        append(&mut buf, &o).unwrap();
        let back: Op = serde_json::from_slice(&buf).unwrap();
        assert_eq!(back, o);
    }
}
