//! Checkers: pure functions over the history, the events, the restored
//! graphs and the agent's claims. Each returns pass, fail or unknown with
//! what it measured, so a report can show value against threshold.

pub mod behaviour;
pub mod consistency;
pub mod intrusion;
pub mod registry;
pub mod rpo;
pub mod sla;
pub mod storage;

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
    /// The check does not apply to the agent under test (it has no
    /// heartbeat, say): not counted in the verdict.
    Skipped,
}

/// What a measure's number counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
    /// A number of things (transactions, jobs, entities).
    #[serde(rename = "count")]
    Count,
    #[serde(rename = "per_s")]
    PerSecond,
    /// Not a number: a hash, entity counts by kind.
    #[serde(rename = "text")]
    Text,
}

/// One measured value, next to the threshold it was held to: a number in
/// its unit for dashboards and `jq` (`value`, `unit`, `max`), and the same
/// as people read it (`display`, `threshold`). See `docs/report.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    pub name: String,
    /// `None` for text, and where nothing could be measured (a restore that
    /// never ended): `display` then says so.
    pub value: Option<f64>,
    pub unit: Unit,
    pub display: String,
    /// The most the check allowed, in `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
}

impl Measure {
    fn of(name: &str, value: Option<f64>, unit: Unit, display: String) -> Self {
        Self {
            name: name.into(),
            value,
            unit,
            display,
            max: None,
            threshold: None,
        }
    }

    pub fn seconds(name: &str, ms: u64) -> Self {
        Self::of(name, Some(ms as f64 / 1000.0), Unit::Seconds, secs(ms))
    }

    /// Seconds that may be negative (a point claimed after the disaster).
    pub fn signed_seconds(name: &str, ms: i64) -> Self {
        let display = match ms {
            ..0 => format!("-{}", secs(ms.unsigned_abs())),
            _ => secs(ms as u64),
        };
        Self::of(name, Some(ms as f64 / 1000.0), Unit::Seconds, display)
    }

    pub fn count(name: &str, n: impl Into<u64>) -> Self {
        let n = n.into();
        Self::of(name, Some(n as f64), Unit::Count, n.to_string())
    }

    pub fn rate(name: &str, per_second: f64) -> Self {
        let display = format!("{per_second:.0}/s");
        Self::of(name, Some(per_second), Unit::PerSecond, display)
    }

    pub fn text(name: &str, text: impl Into<String>) -> Self {
        Self::of(name, None, Unit::Text, text.into())
    }

    /// A measure in `unit` that has no value: `why` (`never`, `none`) is shown.
    pub fn absent(name: &str, unit: Unit, why: &str) -> Self {
        Self::of(name, None, unit, why.into())
    }

    /// Held to at most `max`, in the measure's unit (seconds for durations).
    pub fn at_most(mut self, max: f64) -> Self {
        let shown = match self.unit {
            Unit::Seconds => secs((max * 1000.0).round() as u64),
            _ => format!("{max}"),
        };
        self.max = Some(max);
        self.threshold = Some(format!("≤ {shown}"));
        self
    }

    /// [`Self::at_most`] for a duration given in milliseconds.
    pub fn at_most_ms(self, max_ms: u64) -> Self {
        self.at_most(max_ms as f64 / 1000.0)
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

    #[test]
    fn a_measure_carries_its_number_and_unit_beside_the_text() {
        let m = Measure::seconds("rpo", 12_443).at_most_ms(60_000);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"name": "rpo", "value": 12.443, "unit": "s",
                "display": "12.443 s", "max": 60.0, "threshold": "≤ 60.000 s"})
        );
        let never = Measure::absent("offline after", Unit::Seconds, "never");
        assert_eq!((never.value, never.display.as_str()), (None, "never"));
        let claimed = Measure::signed_seconds("claimed rpo", -1_500);
        assert_eq!(
            (claimed.value, claimed.display.as_str()),
            (Some(-1.5), "-1.500 s")
        );
        assert_eq!(
            Measure::count("lost", 3u64)
                .at_most(0.0)
                .threshold
                .as_deref(),
            Some("≤ 0")
        );
    }

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
