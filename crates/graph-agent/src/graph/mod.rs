//! The property-graph model of the agent's backup format: nodes and
//! relationships with a stable identity of their own (Neo4j element ids do
//! not survive a restore), every Neo4j property type, and one canonical byte
//! encoding, so "equal graphs" means "equal bytes" and a graph has one hash.

mod codec;
mod value;

pub use codec::{DecodeError, Decoder, Encoder};
pub use value::{Float, Tz, Value};

use std::collections::{BTreeMap, BTreeSet};

/// Properties in key order.
pub type Props = BTreeMap<String, Value>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Stable identity, carried across backup and restore.
    pub id: String,
    pub labels: BTreeSet<String>,
    pub props: Props,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rel {
    pub id: String,
    pub rel_type: String,
    /// Ids of the start and end nodes (equal for a self-loop).
    pub start: String,
    pub end: String,
    pub props: Props,
}

/// One entry of a backup stream. A full backup holds nodes, relationships
/// and schema; an incremental one also holds deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Node(Node),
    Rel(Rel),
    /// A node (and with it its relationships) deleted since the parent.
    DeleteNode(String),
    DeleteRel(String),
    /// An index or constraint, as the Cypher that creates it.
    Schema(String),
}

impl Record {
    /// The sort key of the canonical order: schema, nodes, relationships,
    /// deletions; each by id.
    pub fn sort_key(&self) -> (u8, &str) {
        match self {
            Record::Schema(s) => (0, s),
            Record::Node(n) => (1, &n.id),
            Record::Rel(r) => (2, &r.id),
            Record::DeleteNode(id) => (3, id),
            Record::DeleteRel(id) => (4, id),
        }
    }
}

/// The hash [`Graph::canonical_hash`] gives, of records already in canonical
/// order (as an export returns them), without building the graph.
pub fn canonical_hash(
    records: impl IntoIterator<Item = impl std::borrow::Borrow<Record>>,
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    let mut enc = Encoder::default();
    for record in records {
        enc.record(record.borrow());
        hasher.update(enc.bytes());
        enc.clear();
    }
    *hasher.finalize().as_bytes()
}

/// A whole graph in canonical order, as restored or as expected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    pub nodes: BTreeMap<String, Node>,
    pub rels: BTreeMap<String, Rel>,
    pub schema: BTreeSet<String>,
}

impl Graph {
    /// Applies one record (an upsert or a deletion).
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Node(n) => {
                self.nodes.insert(n.id.clone(), n);
            }
            Record::Rel(r) => {
                self.rels.insert(r.id.clone(), r);
            }
            Record::DeleteNode(id) => {
                self.nodes.remove(&id);
                self.rels.retain(|_, r| r.start != id && r.end != id);
            }
            Record::DeleteRel(id) => {
                self.rels.remove(&id);
            }
            Record::Schema(s) => {
                self.schema.insert(s);
            }
        }
    }

    /// Applies one backup's records, in canonical order (upserts before
    /// deletions). Deleted nodes take their relationships along in one pass
    /// at the end, not one pass over every relationship per deleted node.
    pub fn apply_all(&mut self, records: impl IntoIterator<Item = Record>) {
        let mut deleted = std::collections::HashSet::new();
        for r in records {
            match r {
                Record::DeleteNode(id) => {
                    self.nodes.remove(&id);
                    deleted.insert(id);
                }
                other => self.apply(other),
            }
        }
        if !deleted.is_empty() {
            self.rels
                .retain(|_, r| !deleted.contains(&r.start) && !deleted.contains(&r.end));
        }
    }

    /// The graph as records in canonical order.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.schema
            .iter()
            .map(|s| Record::Schema(s.clone()))
            .chain(self.nodes.values().cloned().map(Record::Node))
            .chain(self.rels.values().cloned().map(Record::Rel))
    }

    /// The canonical encoding's BLAKE3 hash: equal graphs, equal hashes.
    pub fn canonical_hash(&self) -> [u8; 32] {
        canonical_hash(self.records())
    }

    /// Relationships whose start or end node is missing.
    pub fn dangling(&self) -> Vec<&Rel> {
        self.rels
            .values()
            .filter(|r| !self.nodes.contains_key(&r.start) || !self.nodes.contains_key(&r.end))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Record {
        Record::Node(Node {
            id: id.into(),
            labels: ["L".to_string()].into(),
            props: Props::new(),
        })
    }

    fn rel(id: &str, start: &str, end: &str) -> Record {
        Record::Rel(Rel {
            id: id.into(),
            rel_type: "T".into(),
            start: start.into(),
            end: end.into(),
            props: Props::new(),
        })
    }

    #[test]
    fn hash_depends_on_content_not_on_insertion_order() {
        let mut a = Graph::default();
        let mut b = Graph::default();
        for r in [node("1"), node("2"), rel("r", "1", "2")] {
            a.apply(r);
        }
        for r in [rel("r", "1", "2"), node("2"), node("1")] {
            b.apply(r);
        }
        assert_eq!(a.canonical_hash(), b.canonical_hash());
        b.apply(rel("r", "2", "1"));
        assert_ne!(a.canonical_hash(), b.canonical_hash(), "direction matters");
    }

    #[test]
    fn deleting_a_node_takes_its_relationships_along() {
        let mut g = Graph::default();
        for r in [
            node("1"),
            node("2"),
            rel("a", "1", "2"),
            rel("loop", "1", "1"),
        ] {
            g.apply(r);
        }
        g.apply(Record::DeleteNode("1".into()));
        assert!(g.rels.is_empty());
        assert!(g.dangling().is_empty());
    }

    #[test]
    fn applying_a_stream_at_once_equals_applying_it_record_by_record() {
        let stream = [
            node("1"),
            node("2"),
            node("3"),
            rel("a", "1", "2"),
            rel("b", "2", "3"),
            rel("loop", "3", "3"),
            Record::DeleteRel("b".into()),
            Record::DeleteNode("3".into()),
        ];
        let (mut one, mut all) = (Graph::default(), Graph::default());
        for r in stream.clone() {
            one.apply(r);
        }
        all.apply_all(stream);
        assert_eq!(one, all);
        assert_eq!(all.rels.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn dangling_relationships_are_found() {
        let mut g = Graph::default();
        g.apply(node("1"));
        g.apply(rel("a", "1", "ghost"));
        assert_eq!(g.dangling().len(), 1);
    }
}
