//! Checkers: pure functions over the history, the events, the restored
//! graphs and the agent's claims. Each returns pass, fail or unknown with
//! what it measured, so a report can show value against threshold.

pub mod behaviour;
pub mod consistency;
pub mod intrusion;
pub mod registry;
pub mod rpo;
pub mod sla;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::graph::{Graph, Node, Props, Rel, Value, Vocabulary};
use crate::history::{CURSOR_LABEL, CURSOR_PROPERTY, Completed, PropValue, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// The check could not decide (e.g. no restore to judge).
    Unknown,
}

/// One measured value, next to the threshold it was held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    pub name: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
}

impl Measure {
    pub fn new(name: &str, value: impl ToString) -> Self {
        Self {
            name: name.into(),
            value: value.to_string(),
            threshold: None,
        }
    }

    pub fn against(mut self, threshold: impl ToString) -> Self {
        self.threshold = Some(threshold.to_string());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// e.g. `rpo[step 4]`, `consistency[step 4]/items`.
    pub name: String,
    pub status: Status,
    /// One line a person reads first.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<Measure>,
    /// The exact findings (ids, differences), capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// Details kept per check; the count of the rest is reported.
pub const MAX_DETAILS: usize = 50;

impl CheckResult {
    pub fn new(name: impl Into<String>, status: Status, summary: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            summary: summary.into(),
            measures: Vec::new(),
            details: Vec::new(),
        }
    }

    pub fn measure(mut self, m: Measure) -> Self {
        self.measures.push(m);
        self
    }

    pub fn details(mut self, details: Vec<String>) -> Self {
        let extra = details.len().saturating_sub(MAX_DETAILS);
        self.details = details.into_iter().take(MAX_DETAILS).collect();
        if extra > 0 {
            self.details.push(format!("… and {extra} more"));
        }
        self
    }
}

/// The writers' cursors in a graph: writer → index of its last operation
/// the graph holds.
pub fn cursors(graph: &Graph) -> BTreeMap<u32, u64> {
    graph
        .nodes
        .values()
        .filter(|n| n.labels.contains(CURSOR_LABEL))
        .filter_map(|n| {
            let p = n.id.strip_prefix("writer-")?.parse().ok()?;
            Some((p, n.props.get(CURSOR_PROPERTY)?.as_int()? as u64))
        })
        .collect()
}

/// The graph a restore should hold: the base (the fixture as loaded), then
/// each writer's committed operations up to its restored cursor, in order.
/// Writers touch disjoint entities, so per-writer prefixes compose.
pub fn expected_graph(base: &Graph, ops: &[Completed], cursors: &BTreeMap<u32, u64>) -> Graph {
    let mut g = base.clone();
    for op in ops {
        let Some(&cursor) = cursors.get(&op.process) else {
            continue;
        };
        if op.committed && op.index <= cursor {
            apply(&mut g, &op.writes);
        }
    }
    g
}

/// Applies an operation's writes to a graph model.
pub fn apply(g: &mut Graph, writes: &[Write]) {
    for w in writes {
        match w {
            Write::PutNode { id, labels, props } => g.put_node(Node {
                id: id.clone(),
                labels: labels.iter().cloned().collect(),
                props: to_props(props),
            }),
            Write::SetProps { id, props } => {
                if let Some(n) = g.nodes.get_mut(id) {
                    n.props.extend(to_props(props));
                }
            }
            Write::PutRel {
                id,
                rel_type,
                start,
                end,
                props,
            } => g.put_rel(Rel {
                id: id.clone(),
                rel_type: rel_type.clone(),
                start: start.clone(),
                end: end.clone(),
                props: to_props(props),
            }),
            Write::DeleteRel { id, .. } => g.delete_rel(id),
            Write::DeleteNode { id } => g.delete_node(id),
        }
    }
}

fn to_props(props: &BTreeMap<String, PropValue>) -> Props {
    props
        .iter()
        .map(|(k, v)| {
            let v = match v {
                PropValue::Int(i) => Value::int(*i),
                PropValue::Str(s) => Value::string(s),
            };
            (k.clone(), v)
        })
        .collect()
}

/// The names the harness writes: the base graph's and those of every write
/// the workload tried, whatever came of it.
pub fn vocabulary(base: &Graph, ops: &[Completed]) -> Vocabulary {
    let mut v = Vocabulary::of(base);
    for w in ops.iter().flat_map(|o| &o.writes) {
        match w {
            Write::PutNode { labels, props, .. } => {
                v.labels.extend(labels.iter().cloned());
                v.props.extend(props.keys().cloned());
            }
            Write::SetProps { props, .. } => v.props.extend(props.keys().cloned()),
            Write::PutRel {
                rel_type, props, ..
            } => {
                v.rel_types.insert(rel_type.clone());
                v.props.extend(props.keys().cloned());
            }
            Write::DeleteRel { .. } | Write::DeleteNode { .. } => {}
        }
    }
    v
}

/// `1.234 s` for milliseconds.
pub fn secs(ms: u64) -> String {
    format!("{:.3} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Phase, cursor_id};

    pub(crate) fn op(process: u32, index: u64, committed: bool, writes: Vec<Write>) -> Completed {
        let mut writes = writes;
        writes.push(Write::SetProps {
            id: cursor_id(process),
            props: BTreeMap::from([(CURSOR_PROPERTY.into(), PropValue::Int(index as i64))]),
        });
        Completed {
            process,
            index,
            f: "t".into(),
            invoked_ms: index * 10,
            ended_ms: index * 10 + 5,
            outcome: if committed { Phase::Ok } else { Phase::Fail },
            committed,
            writes,
        }
    }

    pub(crate) fn cursor_op(process: u32) -> Completed {
        Completed {
            process,
            index: 0,
            f: "cursor".into(),
            invoked_ms: 0,
            ended_ms: 1,
            outcome: Phase::Ok,
            committed: true,
            writes: vec![Write::PutNode {
                id: cursor_id(process),
                labels: vec![CURSOR_LABEL.into()],
                props: BTreeMap::from([(CURSOR_PROPERTY.into(), PropValue::Int(0))]),
            }],
        }
    }

    pub(crate) fn node(id: &str) -> Write {
        Write::PutNode {
            id: id.into(),
            labels: vec!["DrillItem".into()],
            props: BTreeMap::new(),
        }
    }

    #[test]
    fn the_expected_graph_holds_each_writers_prefix_up_to_its_cursor() {
        let ops = vec![
            cursor_op(0),
            op(0, 1, true, vec![node("a")]),
            op(0, 2, false, vec![node("failed")]),
            op(0, 3, true, vec![node("b")]),
            op(0, 4, true, vec![node("c")]),
        ];
        let cursors = BTreeMap::from([(0, 3)]);
        let g = expected_graph(&Graph::default(), &ops, &cursors);
        let ids: Vec<&str> = g.nodes.keys().map(String::as_str).collect();
        assert_eq!(ids, ["a", "b", "writer-0"]);
        assert_eq!(super::cursors(&g), cursors);
    }

    #[test]
    fn a_writer_without_a_restored_cursor_contributes_nothing() {
        let ops = vec![cursor_op(0), op(0, 1, true, vec![node("a")])];
        let g = expected_graph(&Graph::default(), &ops, &BTreeMap::new());
        assert!(g.nodes.is_empty());
    }
}
