//! The judge's own model of a property graph: what the checks compare.
//!
//! It shares nothing with any agent's format. Entities are identified by the
//! harness's own id property ([`ID_PROPERTY`]), which the fixture loader and
//! the workload give every entity they create; values are kept as Neo4j
//! itself renders them ([`Value`]), so the model needs no decoding of its
//! own to be exact, and two graphs are equal exactly when Neo4j would print
//! the same values for them.

pub mod read;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The property that carries an entity's identity for the judge. An agent
/// must back it up like any other user property.
pub const ID_PROPERTY: &str = "drill_id";

/// The id prefix [`read::read`] gives an entity without [`ID_PROPERTY`]
/// (followed by its element id): never a harness id.
pub const UNNAMED: &str = "?";

/// A property value as Neo4j renders it server-side: its type name
/// (`valueType(v)`, e.g. `DURATION NOT NULL`) and its canonical text
/// (`toString(v)`; for lists, element by element).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Value {
    #[serde(rename = "type")]
    pub ty: String,
    pub text: Text,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Text {
    One(String),
    List(Vec<String>),
}

impl Value {
    /// An integer as Neo4j renders one.
    pub fn int(i: i64) -> Self {
        Self {
            ty: "INTEGER NOT NULL".into(),
            text: Text::One(i.to_string()),
        }
    }

    /// A string as Neo4j renders one.
    pub fn string(s: &str) -> Self {
        Self {
            ty: "STRING NOT NULL".into(),
            text: Text::One(s.to_string()),
        }
    }

    /// The integer this value holds, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match (&self.text, self.ty.starts_with("INTEGER")) {
            (Text::One(t), true) => t.parse().ok(),
            _ => None,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ty = self.ty.trim_end_matches(" NOT NULL");
        match &self.text {
            Text::One(t) => write!(f, "{ty} {t:?}"),
            Text::List(items) => write!(f, "{ty} {items:?}"),
        }
    }
}

/// Properties in key order.
pub type Props = BTreeMap<String, Value>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The harness id ([`ID_PROPERTY`]); not among `props`.
    pub id: String,
    pub labels: BTreeSet<String>,
    pub props: Props,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rel {
    pub id: String,
    #[serde(rename = "type")]
    pub rel_type: String,
    /// Harness ids of the start and end nodes (equal for a self-loop).
    pub start: String,
    pub end: String,
    pub props: Props,
}

/// A whole graph, as expected or as read from a database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    pub nodes: BTreeMap<String, Node>,
    pub rels: BTreeMap<String, Rel>,
    /// Indexes and constraints, one canonical line each.
    pub schema: BTreeSet<String>,
}

impl Graph {
    pub fn put_node(&mut self, n: Node) {
        self.nodes.insert(n.id.clone(), n);
    }

    pub fn put_rel(&mut self, r: Rel) {
        self.rels.insert(r.id.clone(), r);
    }

    /// Deletes a node and its relationships (a `DETACH DELETE`).
    pub fn delete_node(&mut self, id: &str) {
        self.nodes.remove(id);
        self.rels.retain(|_, r| r.start != id && r.end != id);
    }

    pub fn delete_rel(&mut self, id: &str) {
        self.rels.remove(id);
    }

    /// The graph as canonical JSON lines: schema, nodes, relationships, each
    /// in id order (what the run folder stores, and what is hashed).
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        let json = |v: serde_json::Value| v.to_string();
        self.schema
            .iter()
            .map(move |s| json(serde_json::json!({ "schema": s })))
            .chain(
                self.nodes
                    .values()
                    .map(move |n| json(serde_json::json!({ "node": n }))),
            )
            .chain(
                self.rels
                    .values()
                    .map(move |r| json(serde_json::json!({ "rel": r }))),
            )
    }

    /// BLAKE3 of the canonical lines: equal graphs, equal hashes.
    pub fn canonical_hash(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        for line in self.lines() {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        *hasher.finalize().as_bytes()
    }

    /// Relationships whose start or end node is missing.
    pub fn dangling(&self) -> Vec<&Rel> {
        self.rels
            .values()
            .filter(|r| !self.nodes.contains_key(&r.start) || !self.nodes.contains_key(&r.end))
            .collect()
    }
}

/// What a database holds, counted: entities per label, relationship type
/// and property key; nodes without the harness id per label set (`:A:B`);
/// and its schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub labels: BTreeMap<String, u64>,
    pub rel_types: BTreeMap<String, u64>,
    pub props: BTreeMap<String, u64>,
    pub unnamed_nodes: BTreeMap<String, u64>,
    pub schema: BTreeSet<String>,
    /// APOC triggers installed on the database (the harness installs none).
    #[serde(default)]
    pub triggers: BTreeSet<String>,
}

/// The names the harness itself writes: those of the base graph and of
/// every write the workload tried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vocabulary {
    pub labels: BTreeSet<String>,
    pub rel_types: BTreeSet<String>,
    pub props: BTreeSet<String>,
    pub schema: BTreeSet<String>,
}

impl Vocabulary {
    /// The names `g` uses (its schema included).
    pub fn of(g: &Graph) -> Self {
        let mut v = Self {
            schema: g.schema.clone(),
            props: [ID_PROPERTY.to_string()].into(),
            ..Self::default()
        };
        for n in g.nodes.values() {
            v.labels.extend(n.labels.iter().cloned());
            v.props.extend(n.props.keys().cloned());
        }
        for r in g.rels.values() {
            v.rel_types.insert(r.rel_type.clone());
            v.props.extend(r.props.keys().cloned());
        }
        v
    }
}

/// What an agent put into the user's database that is not user data: what
/// the source holds outside the harness's [`Vocabulary`]. Comparisons leave
/// it out ([`Foreign::strip`]); `source-intrusion` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Foreign {
    pub labels: BTreeMap<String, u64>,
    pub rel_types: BTreeMap<String, u64>,
    pub props: BTreeMap<String, u64>,
    /// Nodes without the harness id, per label set.
    pub unnamed_nodes: BTreeMap<String, u64>,
    pub schema: BTreeSet<String>,
    pub triggers: BTreeSet<String>,
}

impl Foreign {
    pub fn find(source: &Inventory, ours: &Vocabulary) -> Self {
        let outside = |counts: &BTreeMap<String, u64>, ours: &BTreeSet<String>| {
            counts
                .iter()
                .filter(|(k, _)| !ours.contains(*k))
                .map(|(k, c)| (k.clone(), *c))
                .collect()
        };
        Self {
            labels: outside(&source.labels, &ours.labels),
            rel_types: outside(&source.rel_types, &ours.rel_types),
            props: outside(&source.props, &ours.props),
            unnamed_nodes: source.unnamed_nodes.clone(),
            schema: source.schema.difference(&ours.schema).cloned().collect(),
            triggers: source.triggers.clone(),
        }
    }

    /// `g` without what is foreign: foreign labels, property keys, schema
    /// and relationship types; nodes without the harness id whose every
    /// label is foreign, and their relationships. Any other entity without
    /// the harness id stays, to be found extra.
    pub fn strip(&self, g: &Graph) -> Graph {
        let mut out = Graph {
            schema: g.schema.difference(&self.schema).cloned().collect(),
            ..Graph::default()
        };
        let keep = |props: &Props| -> Props {
            props
                .iter()
                .filter(|(k, _)| !self.props.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for n in g.nodes.values() {
            let labels: BTreeSet<String> = n
                .labels
                .iter()
                .filter(|l| !self.labels.contains_key(*l))
                .cloned()
                .collect();
            if n.id.starts_with(UNNAMED) && labels.is_empty() && !n.labels.is_empty() {
                continue;
            }
            out.put_node(Node {
                id: n.id.clone(),
                labels,
                props: keep(&n.props),
            });
        }
        for r in g.rels.values() {
            let ends = out.nodes.contains_key(&r.start) && out.nodes.contains_key(&r.end);
            let dropped_end = |id: &str| id.starts_with(UNNAMED) && !out.nodes.contains_key(id);
            if self.rel_types.contains_key(&r.rel_type)
                || (!ends && (dropped_end(&r.start) || dropped_end(&r.end)))
            {
                continue;
            }
            out.put_rel(Rel {
                props: keep(&r.props),
                ..r.clone()
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Node {
        Node {
            id: id.into(),
            labels: ["L".to_string()].into(),
            props: Props::new(),
        }
    }

    fn rel(id: &str, start: &str, end: &str) -> Rel {
        Rel {
            id: id.into(),
            rel_type: "T".into(),
            start: start.into(),
            end: end.into(),
            props: Props::new(),
        }
    }

    #[test]
    fn hash_depends_on_content_not_on_insertion_order() {
        let mut a = Graph::default();
        let mut b = Graph::default();
        a.put_node(node("1"));
        a.put_node(node("2"));
        a.put_rel(rel("r", "1", "2"));
        b.put_rel(rel("r", "1", "2"));
        b.put_node(node("2"));
        b.put_node(node("1"));
        assert_eq!(a.canonical_hash(), b.canonical_hash());
        b.put_rel(rel("r", "2", "1"));
        assert_ne!(a.canonical_hash(), b.canonical_hash(), "direction matters");
    }

    #[test]
    fn a_value_of_another_type_with_the_same_text_is_another_value() {
        let mut a = Graph::default();
        let mut n = node("1");
        n.props.insert("v".into(), Value::int(1));
        a.put_node(n.clone());
        let mut b = Graph::default();
        n.props.insert(
            "v".into(),
            Value {
                ty: "FLOAT NOT NULL".into(),
                text: Text::One("1".into()),
            },
        );
        b.put_node(n);
        assert_ne!(a.canonical_hash(), b.canonical_hash());
    }

    #[test]
    fn deleting_a_node_takes_its_relationships_along() {
        let mut g = Graph::default();
        g.put_node(node("1"));
        g.put_node(node("2"));
        g.put_rel(rel("a", "1", "2"));
        g.put_rel(rel("loop", "1", "1"));
        g.delete_node("1");
        assert!(g.rels.is_empty());
        assert!(g.dangling().is_empty());
    }

    #[test]
    fn stripping_takes_out_only_what_the_agent_added() {
        let mut g = Graph::default();
        let mut n = node("1");
        n.labels.insert("_AgentMark".into());
        n.props.insert("_gid".into(), Value::string("x"));
        n.props.insert("v".into(), Value::int(1));
        g.put_node(n);
        let clock = Node {
            id: format!("{UNNAMED}4:x:9"),
            labels: ["_AgentClock".to_string()].into(),
            props: Props::new(),
        };
        let stray = Node {
            id: format!("{UNNAMED}4:x:10"),
            labels: ["L".to_string()].into(),
            props: Props::new(),
        };
        g.put_node(clock.clone());
        g.put_node(stray.clone());
        g.put_rel(rel("r", "1", &clock.id));
        g.schema.insert("CREATE INDEX agent_idx".into());
        let source = Inventory {
            labels: [
                ("L".into(), 2),
                ("_AgentMark".into(), 1),
                ("_AgentClock".into(), 1),
            ]
            .into(),
            props: [("v".into(), 1), ("_gid".into(), 1)].into(),
            unnamed_nodes: [(":_AgentClock".into(), 1)].into(),
            schema: ["CREATE INDEX agent_idx".to_string()].into(),
            ..Inventory::default()
        };
        let ours = Vocabulary {
            labels: ["L".to_string()].into(),
            props: ["v".to_string()].into(),
            ..Vocabulary::default()
        };
        let foreign = Foreign::find(&source, &ours);
        assert_eq!(foreign.props.keys().collect::<Vec<_>>(), ["_gid"]);
        let s = foreign.strip(&g);
        assert_eq!(s.nodes["1"].labels, ["L".to_string()].into());
        assert_eq!(s.nodes["1"].props.keys().collect::<Vec<_>>(), ["v"]);
        assert!(
            !s.nodes.contains_key(&clock.id),
            "an agent's own node is left out"
        );
        assert!(
            s.nodes.contains_key(&stray.id),
            "a user-labelled node without id stays"
        );
        assert!(s.rels.is_empty() && s.schema.is_empty());
    }

    #[test]
    fn dangling_relationships_are_found() {
        let mut g = Graph::default();
        g.put_node(node("1"));
        g.put_rel(rel("a", "1", "ghost"));
        assert_eq!(g.dangling().len(), 1);
    }
}
