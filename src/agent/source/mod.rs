//! The agent's side of Neo4j: reading a whole graph out as records and
//! writing records into an empty database, every property type exact.
//!
//! Identity: Neo4j element ids do not survive a restore, so every node and
//! relationship carries graph-agent's own id in the property
//! [`ID_PROPERTY`]; [`Neo4jSource::assign_ids`] gives one to entities that
//! lack it. Labels starting with `_GraphAgent` mark graph-agent's own
//! bookkeeping and are never backed up.

mod convert;
mod cypher;

use std::collections::BTreeSet;

use neo4rs::{BoltList, BoltMap, BoltString, BoltType, Graph, query};

use crate::graph::{Node, Props, Record, Rel};

/// The property holding an entity's stable id.
pub const ID_PROPERTY: &str = "_gid";
/// Labels with this prefix are graph-agent's own and never backed up.
pub const INTERNAL_LABEL_PREFIX: &str = "_GraphAgent";
/// Label every restored node carries until the restore ends, so
/// relationships can find their ends through an index.
const RESTORING_LABEL: &str = "_GraphAgentRestoring";
/// Entities written per transaction during a restore.
const BATCH: usize = 2_000;

#[derive(Debug, thiserror::Error)]
#[error("neo4j {op}: {message}")]
pub struct SourceError {
    pub op: &'static str,
    pub message: String,
}

fn err(op: &'static str) -> impl Fn(neo4rs::Error) -> SourceError {
    move |e| SourceError {
        op,
        message: e.to_string(),
    }
}

/// A Neo4j database the agent reads from or restores into.
pub struct Neo4jSource {
    graph: Graph,
}

impl Neo4jSource {
    pub fn new(graph: Graph) -> Self {
        Self { graph }
    }

    /// Gives every node and relationship without an id a random one.
    pub async fn assign_ids(&self) -> Result<u64, SourceError> {
        let mut assigned = 0;
        for q in [
            format!(
                "MATCH (n) WHERE n.{ID_PROPERTY} IS NULL WITH n LIMIT {BATCH} SET n.{ID_PROPERTY} = randomUUID() RETURN count(n) AS c"
            ),
            format!(
                "MATCH ()-[r]->() WHERE r.{ID_PROPERTY} IS NULL WITH r LIMIT {BATCH} SET r.{ID_PROPERTY} = randomUUID() RETURN count(r) AS c"
            ),
        ] {
            loop {
                let mut txn = self.graph.start_txn().await.map_err(err("assign ids"))?;
                let mut rows = txn.execute(query(&q)).await.map_err(err("assign ids"))?;
                let c: i64 = match rows.next(txn.handle()).await.map_err(err("assign ids"))? {
                    Some(row) => row.get("c").map_err(|e| SourceError {
                        op: "assign ids",
                        message: e.to_string(),
                    })?,
                    None => 0,
                };
                drop(rows);
                txn.commit().await.map_err(err("assign ids"))?;
                assigned += c as u64;
                if c == 0 {
                    break;
                }
            }
        }
        Ok(assigned)
    }

    /// Every user node, relationship and index or constraint, in canonical
    /// order. Entities without an id are an error (run [`Self::assign_ids`]).
    pub async fn export(&self) -> Result<Vec<Record>, SourceError> {
        let mut records = self.schema().await?;
        let internal = format!("any(l IN labels(n) WHERE l STARTS WITH '{INTERNAL_LABEL_PREFIX}')");
        let nodes = format!(
            "MATCH (n) WHERE NOT {internal} \
             RETURN n.{ID_PROPERTY} AS id, labels(n) AS labels, {} AS props",
            cypher::encoded_props("n")
        );
        let mut txn = self.graph.start_txn().await.map_err(err("export"))?;
        let mut rows = txn
            .execute(query(&nodes))
            .await
            .map_err(err("export nodes"))?;
        while let Some(row) = rows.next(txn.handle()).await.map_err(err("export nodes"))? {
            let id = entity_id(&row, "node")?;
            let labels: Vec<String> = row.get("labels").map_err(decode_err)?;
            records.push(Record::Node(Node {
                id,
                labels: labels.into_iter().collect(),
                props: props(&row)?,
            }));
        }
        drop(rows);
        let rels = format!(
            "MATCH (a)-[r]->(b) WHERE NOT {} AND NOT {} \
             RETURN r.{ID_PROPERTY} AS id, type(r) AS type, a.{ID_PROPERTY} AS start, \
             b.{ID_PROPERTY} AS end, {} AS props",
            internal.replace("(n)", "(a)"),
            internal.replace("(n)", "(b)"),
            cypher::encoded_props("r")
        );
        let mut rows = txn
            .execute(query(&rels))
            .await
            .map_err(err("export relationships"))?;
        while let Some(row) = rows
            .next(txn.handle())
            .await
            .map_err(err("export relationships"))?
        {
            records.push(Record::Rel(Rel {
                id: entity_id(&row, "relationship")?,
                rel_type: row.get("type").map_err(decode_err)?,
                start: row.get("start").map_err(decode_err)?,
                end: row.get("end").map_err(decode_err)?,
                props: props(&row)?,
            }));
        }
        drop(rows);
        txn.rollback().await.map_err(err("export"))?;
        records.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        Ok(records)
    }

    /// Indexes and constraints as the Cypher that creates them (the
    /// built-in lookup indexes and graph-agent's own are left out).
    async fn schema(&self) -> Result<Vec<Record>, SourceError> {
        let mut out = BTreeSet::new();
        for q in [
            "SHOW CONSTRAINTS YIELD createStatement RETURN createStatement AS s",
            "SHOW INDEXES YIELD type, owningConstraint, createStatement \
             WHERE type <> 'LOOKUP' AND owningConstraint IS NULL RETURN createStatement AS s",
        ] {
            let mut rows = self
                .graph
                .execute(query(q))
                .await
                .map_err(err("read schema"))?;
            while let Some(row) = rows.next().await.map_err(err("read schema"))? {
                let s: String = row.get("s").map_err(decode_err)?;
                if !s.contains(INTERNAL_LABEL_PREFIX) {
                    out.insert(s);
                }
            }
        }
        Ok(out.into_iter().map(Record::Schema).collect())
    }

    /// Writes `records` (schema, nodes, relationships; an incremental chain
    /// already applied) into this database, which should be empty. `progress`
    /// is called with the number of entities written so far.
    pub async fn restore(
        &self,
        records: &[Record],
        mut progress: impl FnMut(u64),
    ) -> Result<(), SourceError> {
        let run =
            |q: String| async move { self.graph.run(query(&q)).await.map_err(err("restore")) };
        run(format!(
            "CREATE INDEX graph_agent_restoring IF NOT EXISTS FOR (n:{RESTORING_LABEL}) ON (n.{ID_PROPERTY})"
        ))
        .await?;
        run("CALL db.awaitIndexes(300)".into()).await?;
        let mut written = 0u64;
        let nodes: Vec<&Node> = records
            .iter()
            .filter_map(|r| {
                if let Record::Node(n) = r {
                    Some(n)
                } else {
                    None
                }
            })
            .collect();
        let create_nodes = format!(
            "UNWIND $rows AS r \
             CALL apoc.create.node(r.labels + '{RESTORING_LABEL}', \
               apoc.map.merge(r.plain, apoc.map.fromPairs([p IN r.typed | [p.k, {}]]))) YIELD node \
             SET node.{ID_PROPERTY} = r.id",
            cypher::decode("p.v")
        );
        for batch in nodes.chunks(BATCH) {
            let rows: Vec<BoltType> = batch
                .iter()
                .map(|n| {
                    let mut m = props_param(&n.props);
                    m.put("id".into(), n.id.as_str().into());
                    m.put(
                        "labels".into(),
                        BoltType::List(BoltList::from(
                            n.labels
                                .iter()
                                .map(|l| BoltType::from(l.as_str()))
                                .collect::<Vec<_>>(),
                        )),
                    );
                    BoltType::Map(m)
                })
                .collect();
            self.write(&create_nodes, rows).await?;
            written += batch.len() as u64;
            progress(written);
        }
        let rels: Vec<&Rel> = records
            .iter()
            .filter_map(|r| {
                if let Record::Rel(r) = r {
                    Some(r)
                } else {
                    None
                }
            })
            .collect();
        let create_rels = format!(
            "UNWIND $rows AS r \
             MATCH (a:{RESTORING_LABEL} {{{ID_PROPERTY}: r.start}}), (b:{RESTORING_LABEL} {{{ID_PROPERTY}: r.end}}) \
             CALL apoc.create.relationship(a, r.type, \
               apoc.map.merge(r.plain, apoc.map.fromPairs([p IN r.typed | [p.k, {}]])), b) YIELD rel \
             SET rel.{ID_PROPERTY} = r.id \
             RETURN count(rel) AS c",
            cypher::decode("p.v")
        );
        for batch in rels.chunks(BATCH) {
            let rows: Vec<BoltType> = batch
                .iter()
                .map(|r| {
                    let mut m = props_param(&r.props);
                    m.put("id".into(), r.id.as_str().into());
                    m.put("type".into(), r.rel_type.as_str().into());
                    m.put("start".into(), r.start.as_str().into());
                    m.put("end".into(), r.end.as_str().into());
                    BoltType::Map(m)
                })
                .collect();
            let created = self.write_counted(&create_rels, rows).await?;
            if created != batch.len() as i64 {
                return Err(SourceError {
                    op: "restore relationships",
                    message: format!(
                        "{} of {} relationships found their end nodes",
                        created,
                        batch.len()
                    ),
                });
            }
            written += batch.len() as u64;
            progress(written);
        }
        loop {
            let q = format!(
                "MATCH (n:{RESTORING_LABEL}) WITH n LIMIT {BATCH} REMOVE n:{RESTORING_LABEL} RETURN count(n) AS c"
            );
            if self.write_counted(&q, Vec::new()).await? == 0 {
                break;
            }
        }
        run("DROP INDEX graph_agent_restoring IF EXISTS".into()).await?;
        for r in records {
            if let Record::Schema(s) = r {
                run(s.clone()).await?;
            }
        }
        Ok(())
    }

    async fn write(&self, q: &str, rows: Vec<BoltType>) -> Result<(), SourceError> {
        let mut txn = self.graph.start_txn().await.map_err(err("restore"))?;
        txn.run(query(q).param("rows", BoltType::List(BoltList::from(rows))))
            .await
            .map_err(err("restore"))?;
        txn.commit().await.map_err(err("restore"))
    }

    async fn write_counted(&self, q: &str, rows: Vec<BoltType>) -> Result<i64, SourceError> {
        let mut txn = self.graph.start_txn().await.map_err(err("restore"))?;
        let mut stream = txn
            .execute(query(q).param("rows", BoltType::List(BoltList::from(rows))))
            .await
            .map_err(err("restore"))?;
        let c = match stream.next(txn.handle()).await.map_err(err("restore"))? {
            Some(row) => row.get::<i64>("c").map_err(decode_err)?,
            None => 0,
        };
        drop(stream);
        txn.commit().await.map_err(err("restore"))?;
        Ok(c)
    }
}

fn decode_err(e: impl std::fmt::Display) -> SourceError {
    SourceError {
        op: "decode export",
        message: e.to_string(),
    }
}

fn entity_id(row: &neo4rs::Row, what: &str) -> Result<String, SourceError> {
    row.get::<Option<String>>("id")
        .map_err(decode_err)?
        .ok_or_else(|| SourceError {
            op: "export",
            message: format!("a {what} has no `{ID_PROPERTY}` (ids must be assigned first)"),
        })
}

fn props(row: &neo4rs::Row) -> Result<Props, SourceError> {
    let pairs: Vec<(String, BoltType)> = row.get("props").map_err(decode_err)?;
    pairs
        .into_iter()
        .map(|(k, v)| {
            let value = convert::from_bolt(&v).map_err(|m| SourceError {
                op: "decode export",
                message: format!("property `{k}`: {m}"),
            })?;
            Ok((k, value))
        })
        .collect()
}

/// `{plain: {k: v}, typed: [{k, v}]}`: values that must cross encoded apart.
fn props_param(props: &Props) -> BoltMap {
    let mut plain = BoltMap::new();
    let mut typed = Vec::new();
    for (k, v) in props {
        if convert::needs_encoding(v) {
            let mut p = BoltMap::new();
            p.put("k".into(), k.as_str().into());
            p.put("v".into(), convert::to_bolt(v));
            typed.push(BoltType::Map(p));
        } else {
            plain.put(BoltString::from(k.as_str()), convert::to_bolt(v));
        }
    }
    let mut m = BoltMap::new();
    m.put("plain".into(), BoltType::Map(plain));
    m.put("typed".into(), BoltType::List(BoltList::from(typed)));
    m
}
