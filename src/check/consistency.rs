//! Subgraph consistency: a restored graph against the expected one.
//! Canonical hashes first; on a mismatch, the exact difference (missing,
//! extra and changed entities with their ids and properties) and
//! referential integrity (no relationship may dangle).

use std::collections::{BTreeMap, BTreeSet};

use super::{CheckResult, Measure, Status};
use crate::graph::{Graph, Props};

/// How two graphs differ; empty when they are equal.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub changed: Vec<String>,
    /// Relationships of the restored graph whose start or end is missing.
    pub dangling: Vec<String>,
    pub schema_missing: Vec<String>,
    pub schema_extra: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.changed.is_empty()
            && self.dangling.is_empty()
            && self.schema_missing.is_empty()
            && self.schema_extra.is_empty()
    }

    /// Ids of every entity that differs.
    pub fn ids(&self) -> BTreeSet<String> {
        let id = |s: &String| {
            let word = s.split_whitespace().nth(1).unwrap_or(s);
            word.trim_end_matches(':').to_string()
        };
        self.missing
            .iter()
            .chain(&self.extra)
            .chain(&self.changed)
            .chain(&self.dangling)
            .map(id)
            .collect()
    }

    /// One line per finding, e.g. `missing node w0-n3`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, items) in [
            ("missing", &self.missing),
            ("extra", &self.extra),
            ("changed", &self.changed),
            ("dangling", &self.dangling),
            ("missing schema", &self.schema_missing),
            ("extra schema", &self.schema_extra),
        ] {
            out.extend(items.iter().map(|i| format!("{what} {i}")));
        }
        out
    }
}

/// Every difference between `expected` and `restored`.
pub fn diff(expected: &Graph, restored: &Graph) -> Diff {
    let mut d = Diff::default();
    for (id, n) in &expected.nodes {
        match restored.nodes.get(id) {
            None => d.missing.push(format!("node {id}")),
            Some(r) if r != n => {
                let mut what = props_diff(&n.props, &r.props);
                if r.labels != n.labels {
                    what.push(format!("labels {:?} → {:?}", n.labels, r.labels));
                }
                d.changed.push(format!("node {id}: {}", what.join(", ")));
            }
            Some(_) => {}
        }
    }
    d.extra.extend(
        restored
            .nodes
            .keys()
            .filter(|id| !expected.nodes.contains_key(*id))
            .map(|id| format!("node {id}")),
    );
    for (id, e) in &expected.rels {
        match restored.rels.get(id) {
            None => d.missing.push(format!("relationship {id}")),
            Some(r) if r != e => {
                let mut what = props_diff(&e.props, &r.props);
                if (&r.rel_type, &r.start, &r.end) != (&e.rel_type, &e.start, &e.end) {
                    what.push(format!(
                        "({})-[:{}]->({}) → ({})-[:{}]->({})",
                        e.start, e.rel_type, e.end, r.start, r.rel_type, r.end
                    ));
                }
                d.changed
                    .push(format!("relationship {id}: {}", what.join(", ")));
            }
            Some(_) => {}
        }
    }
    d.extra.extend(
        restored
            .rels
            .keys()
            .filter(|id| !expected.rels.contains_key(*id))
            .map(|id| format!("relationship {id}")),
    );
    d.dangling = restored
        .dangling()
        .into_iter()
        .map(|r| format!("relationship {} ({} → {})", r.id, r.start, r.end))
        .collect();
    d.schema_missing = expected
        .schema
        .difference(&restored.schema)
        .cloned()
        .collect();
    d.schema_extra = restored
        .schema
        .difference(&expected.schema)
        .cloned()
        .collect();
    d
}

fn props_diff(expected: &Props, restored: &Props) -> Vec<String> {
    let keys: BTreeSet<&String> = expected.keys().chain(restored.keys()).collect();
    keys.into_iter()
        .filter(|k| expected.get(*k) != restored.get(*k))
        .map(|k| match (expected.get(k), restored.get(k)) {
            (Some(e), Some(r)) => format!("{k}: {e} → {r}"),
            (Some(_), None) => format!("{k}: missing"),
            _ => format!("{k}: unexpected"),
        })
        .collect()
}

/// The part of `g` on the nodes `ids`: those nodes and the relationships
/// between them. Schema is not part of a subgraph.
pub fn restrict(g: &Graph, ids: &BTreeSet<String>) -> Graph {
    Graph {
        nodes: g
            .nodes
            .iter()
            .filter(|(id, _)| ids.contains(*id))
            .map(|(id, n)| (id.clone(), n.clone()))
            .collect::<BTreeMap<_, _>>(),
        rels: g
            .rels
            .iter()
            .filter(|(_, r)| ids.contains(&r.start) && ids.contains(&r.end))
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect(),
        schema: BTreeSet::new(),
    }
}

/// Judges `restored` against `expected`.
pub fn check(name: &str, expected: &Graph, restored: &Graph) -> CheckResult {
    let started = std::time::Instant::now();
    let (he, hr) = (expected.canonical_hash(), restored.canonical_hash());
    let entities = (expected.nodes.len() + expected.rels.len()) as u64;
    let counts = |g: &Graph| format!("{} nodes, {} relationships", g.nodes.len(), g.rels.len());
    let result = if he == hr {
        CheckResult::new(
            name,
            Status::Pass,
            format!(
                "restored graph equals the expected one ({})",
                counts(expected)
            ),
        )
    } else {
        let d = diff(expected, restored);
        CheckResult::new(
            name,
            Status::Fail,
            format!(
                "restored graph differs: {} missing, {} extra, {} changed, {} dangling, {} schema",
                d.missing.len(),
                d.extra.len(),
                d.changed.len(),
                d.dangling.len(),
                d.schema_missing.len() + d.schema_extra.len()
            ),
        )
        .details(d.lines())
    };
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    result
        .measure(Measure::text("expected", counts(expected)))
        .measure(Measure::text("restored", counts(restored)))
        .measure(Measure::text("expected hash", hex::encode(&he[..8])))
        .measure(Measure::text("restored hash", hex::encode(&hr[..8])))
        .measure(Measure::rate("checked entities", entities as f64 / secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Node, Rel, Value};

    fn graph() -> Graph {
        let mut g = Graph::default();
        for id in ["a", "b", "c"] {
            g.put_node(Node {
                id: id.into(),
                labels: ["L".to_string()].into(),
                props: [("v".to_string(), Value::int(1))].into(),
            });
        }
        g.put_rel(Rel {
            id: "r".into(),
            rel_type: "T".into(),
            start: "a".into(),
            end: "b".into(),
            props: Props::new(),
        });
        g
    }

    #[test]
    fn equal_graphs_pass() {
        let r = check("c", &graph(), &graph());
        assert_eq!(r.status, Status::Pass, "{r:?}");
    }

    #[test]
    fn every_kind_of_difference_is_named_with_its_id() {
        let expected = graph();
        let mut restored = graph();
        restored.nodes.remove("b"); // r now dangles
        restored
            .nodes
            .get_mut("c")
            .unwrap()
            .props
            .insert("v".into(), Value::int(2));
        restored.put_node(Node {
            id: "x".into(),
            labels: Default::default(),
            props: Props::new(),
        });
        let d = diff(&expected, &restored);
        assert_eq!(d.missing, ["node b"]);
        assert_eq!(d.extra, ["node x"]);
        assert_eq!(d.changed, ["node c: v: INTEGER \"1\" → INTEGER \"2\""]);
        assert_eq!(d.dangling, ["relationship r (a → b)"]);
        let ids: Vec<String> = d.ids().into_iter().collect();
        assert_eq!(ids, ["b", "c", "r", "x"]);
        assert_eq!(check("c", &expected, &restored).status, Status::Fail);
    }

    #[test]
    fn a_subgraph_keeps_only_relationships_inside_it() {
        let g = graph();
        let sub = restrict(&g, &["a".to_string(), "c".to_string()].into());
        assert_eq!(sub.nodes.len(), 2);
        assert!(sub.rels.is_empty());
        let sub = restrict(&g, &["a".to_string(), "b".to_string()].into());
        assert_eq!(sub.rels.len(), 1);
    }
}
