//! The agent's side of Neo4j: reading a whole graph out as records and
//! writing records into an empty database, every property type exact.
//!
//! Identity: Neo4j element ids do not survive a restore, so every node and
//! relationship carries graph-agent's own id in the property
//! [`ID_PROPERTY`]; [`Neo4jSource::assign_ids`] gives one to entities that
//! lack it. Labels starting with `_GraphAgent` mark graph-agent's own
//! bookkeeping and are never backed up.

pub mod capture;
mod convert;
mod cypher;

use std::collections::BTreeSet;
use std::time::Duration;

use neo4rs::{BoltList, BoltMap, BoltString, BoltType, Graph, query};

use super::defect::{self, Defect};
use crate::graph::{Graph as GraphModel, Node, Props, Record, Rel};

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

/// Times a batch of ids is tried again after a deadlock.
const DEADLOCK_RETRIES: u32 = 5;

/// Whether Neo4j ended the transaction for a deadlock: it rolled back, and
/// the same work may run again. Behind the capture trigger Neo4j reports it
/// as a failed transaction hook, so its lock wording is matched too.
fn deadlocked(e: &SourceError) -> bool {
    let m = &e.message;
    m.contains("DeadlockDetected") || (m.contains("can't acquire") && m.contains("waiting for"))
}

pub(crate) fn err(op: &'static str) -> impl Fn(neo4rs::Error) -> SourceError {
    move |e| SourceError {
        op,
        message: e.to_string(),
    }
}

/// A Neo4j database the agent reads from or restores into.
pub struct Neo4jSource {
    graph: Graph,
    limit: Option<Duration>,
}

impl Neo4jSource {
    pub fn new(graph: Graph) -> Self {
        Self { graph, limit: None }
    }

    /// Bounds each write transaction (a batch of ids or of a restore) by
    /// `limit`: the driver would otherwise wait out a lost connection on its
    /// own for a minute, unseen by the agent's retry policy.
    pub fn with_limit(self, limit: Duration) -> Self {
        Self {
            limit: Some(limit),
            ..self
        }
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        match self.limit {
            None => work.await,
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(SourceError {
                    op,
                    message: format!("timed out after {limit:?}"),
                })
            }),
        }
    }

    /// Gives every node and relationship without an id a random one.
    pub async fn assign_ids(&self) -> Result<u64, SourceError> {
        let mut assigned = 0;
        for q in [
            format!(
                "MATCH (n) WHERE n.{ID_PROPERTY} IS NULL AND NOT {} WITH n LIMIT {BATCH} \
                 SET n.{ID_PROPERTY} = randomUUID() RETURN count(n) AS c",
                internal("n")
            ),
            format!(
                "MATCH ()-[r]->() WHERE r.{ID_PROPERTY} IS NULL WITH r LIMIT {BATCH} SET r.{ID_PROPERTY} = randomUUID() RETURN count(r) AS c"
            ),
        ] {
            loop {
                let batch = || {
                    self.bounded("assign ids", async {
                        let mut txn = self.graph.start_txn().await.map_err(err("assign ids"))?;
                        let mut rows = txn.execute(query(&q)).await.map_err(err("assign ids"))?;
                        let c: i64 =
                            match rows.next(txn.handle()).await.map_err(err("assign ids"))? {
                                Some(row) => row.get("c").map_err(decode_err)?,
                                None => 0,
                            };
                        drop(rows);
                        txn.commit().await.map_err(err("assign ids"))?;
                        Ok(c)
                    })
                };
                // Writing ids locks the users' nodes and fires the capture
                // trigger: a deadlock with a user's write is to be expected.
                let mut deadlocks = 0;
                let c = loop {
                    match batch().await {
                        Err(e) if deadlocked(&e) && deadlocks < DEADLOCK_RETRIES => {
                            deadlocks += 1;
                            tracing::debug!(error = %e, "assigning ids deadlocked; again");
                            tokio::time::sleep(Duration::from_millis(25 << deadlocks)).await;
                        }
                        other => break other?,
                    }
                };
                assigned += c as u64;
                if c == 0 {
                    break;
                }
            }
        }
        Ok(assigned)
    }

    /// Every user node, relationship and index or constraint, in canonical
    /// order, as read-committed reads see them (no cut: see [`Self::cut`]).
    /// Entities without an id are an error (run [`Self::assign_ids`]).
    pub async fn export(&self) -> Result<Vec<Record>, SourceError> {
        let mut records = self.schema().await?;
        let mut txn = self.graph.start_txn().await.map_err(err("export"))?;
        read_nodes(&mut txn, Reads::Settled, "true", Vec::new(), &mut records).await?;
        read_rels(&mut txn, Reads::Settled, "true", Vec::new(), &mut records).await?;
        txn.rollback().await.map_err(err("export"))?;
        records.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        Ok(records)
    }

    /// A consistent cut: the graph (or, with `since`, the changes after that
    /// clock value) exactly as it stood at one instant, the returned `seq`.
    ///
    /// A full cut reads the graph without blocking writers, then takes the
    /// clock's lock (stopping every writer at its commit), re-reads what
    /// transactions changed meanwhile, and lets go. An incremental cut does
    /// only the second half. Either way every transaction committed before
    /// the lock was taken is in, none is in partially, and no relationship
    /// dangles.
    pub async fn cut(&self, since: Option<u64>) -> Result<Cut, SourceError> {
        let schema = self.schema().await?;
        let from = match since {
            Some(seq) => seq,
            None => capture::clock(&self.graph).await?,
        };
        let mut base = Vec::new();
        let mut txn = self.graph.start_txn().await.map_err(err("cut"))?;
        if since.is_none() {
            read_nodes(&mut txn, Reads::Racing, "true", Vec::new(), &mut base).await?;
            read_rels(&mut txn, Reads::Racing, "true", Vec::new(), &mut base).await?;
        }
        txn.run(query(&format!(
            "MATCH (c:{}) CALL apoc.lock.nodes([c])",
            capture::CLOCK_LABEL
        )))
        .await
        .map_err(err("lock the clock"))?;
        let changes = read_changes(&mut txn, from).await?;
        // The recovery point is told by the database's clock, which the
        // writers' commits are ordered by, not by this host's, which may be off.
        let time_ms = if defect::active(Defect::LocalClock) {
            now_ms()
        } else {
            changes.time_ms
        };
        let mut touched = Vec::new();
        let ids = |set: &BTreeSet<String>| {
            BoltType::List(BoltList::from(
                set.iter()
                    .map(|s| BoltType::from(s.as_str()))
                    .collect::<Vec<_>>(),
            ))
        };
        read_nodes(
            &mut txn,
            Reads::Settled,
            "elementId(n) IN $ids",
            vec![("ids", ids(&changes.nodes))],
            &mut touched,
        )
        .await?;
        read_rels(
            &mut txn,
            Reads::Settled,
            "elementId(r) IN $ids",
            vec![("ids", ids(&changes.rels))],
            &mut touched,
        )
        .await?;
        txn.rollback().await.map_err(err("release the clock"))?;

        let mut records = schema;
        match since {
            None => {
                let mut graph = GraphModel::default();
                for r in base {
                    graph.apply(r);
                }
                for id in changes.deleted_rels {
                    graph.apply(Record::DeleteRel(id));
                }
                for id in changes.deleted_nodes {
                    graph.apply(Record::DeleteNode(id));
                }
                for r in touched {
                    graph.apply(r);
                }
                if let Some(r) = graph.dangling().first() {
                    return Err(SourceError {
                        op: "cut",
                        message: format!("relationship `{}` dangles after the cut (a bug)", r.id),
                    });
                }
                records.extend(graph.records().filter(|r| !matches!(r, Record::Schema(_))));
            }
            Some(_) => {
                let present: BTreeSet<&str> = touched.iter().map(|r| r.sort_key().1).collect();
                let deletions: Vec<Record> = changes
                    .deleted_nodes
                    .iter()
                    .filter(|id| !present.contains(id.as_str()))
                    .map(|id| Record::DeleteNode(id.clone()))
                    .chain(
                        changes
                            .deleted_rels
                            .iter()
                            .filter(|id| !present.contains(id.as_str()))
                            .map(|id| Record::DeleteRel(id.clone())),
                    )
                    .collect();
                records.extend(touched);
                records.extend(deletions);
            }
        }
        records.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        Ok(Cut {
            records,
            seq: changes.seq,
            time_ms,
        })
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

    /// Writes `graph` (an incremental chain already applied) into this
    /// database, which should be empty: nodes, relationships, then schema.
    /// `progress` is called with the number of entities written so far.
    pub async fn restore(
        &self,
        graph: &GraphModel,
        mut progress: impl FnMut(u64),
    ) -> Result<(), SourceError> {
        let run = |q: String| {
            self.bounded("restore", async move {
                self.graph.run(query(&q)).await.map_err(err("restore"))
            })
        };
        run(format!(
            "CREATE INDEX graph_agent_restoring IF NOT EXISTS FOR (n:{RESTORING_LABEL}) ON (n.{ID_PROPERTY})"
        ))
        .await?;
        run("CALL db.awaitIndexes(300)".into()).await?;
        let mut written = 0u64;
        let nodes: Vec<&Node> = graph.nodes.values().collect();
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
        let rels: Vec<&Rel> = graph.rels.values().collect();
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
        for s in &graph.schema {
            run(s.clone()).await?;
        }
        Ok(())
    }

    async fn write(&self, q: &str, rows: Vec<BoltType>) -> Result<(), SourceError> {
        self.bounded("restore", async {
            let mut txn = self.graph.start_txn().await.map_err(err("restore"))?;
            txn.run(query(q).param("rows", BoltType::List(BoltList::from(rows))))
                .await
                .map_err(err("restore"))?;
            txn.commit().await.map_err(err("restore"))
        })
        .await
    }

    async fn write_counted(&self, q: &str, rows: Vec<BoltType>) -> Result<i64, SourceError> {
        self.bounded("restore", async {
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
        })
        .await
    }
}

/// A consistent cut (see [`Neo4jSource::cut`]).
#[derive(Debug, Clone)]
pub struct Cut {
    pub records: Vec<Record>,
    /// The clock value at the cut: every transaction up to it is in.
    pub seq: u64,
    /// When the cut was taken (Unix ms): every transaction committed
    /// before this time is in.
    pub time_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the change records after some clock value say.
struct Changes {
    seq: u64,
    /// The database's time when they were read (Unix ms).
    time_ms: u64,
    nodes: BTreeSet<String>,
    rels: BTreeSet<String>,
    deleted_nodes: BTreeSet<String>,
    deleted_rels: BTreeSet<String>,
}

async fn read_changes(txn: &mut neo4rs::Txn, after: u64) -> Result<Changes, SourceError> {
    let q = format!(
        "MATCH (c:{clock}) OPTIONAL MATCH (t:{tx}) WHERE t.seq > $after AND t.seq <= c.seq \
         RETURN c.seq AS seq, timestamp() AS now, collect(t.nodes) AS nodes, collect(t.rels) AS rels, \
         collect(t.delNodes) AS delNodes, collect(t.delRels) AS delRels",
        clock = capture::CLOCK_LABEL,
        tx = capture::TX_LABEL
    );
    let mut rows = txn
        .execute(query(&q).param("after", after as i64))
        .await
        .map_err(err("read change records"))?;
    let row = rows
        .next(txn.handle())
        .await
        .map_err(err("read change records"))?
        .ok_or_else(|| SourceError {
            op: "read change records",
            message: "no clock: change capture is not installed".into(),
        })?;
    let flat = |k: &str| -> Result<BTreeSet<String>, SourceError> {
        let lists: Vec<Vec<String>> = row.get(k).map_err(decode_err)?;
        Ok(lists.into_iter().flatten().collect())
    };
    Ok(Changes {
        seq: row.get::<i64>("seq").map_err(decode_err)? as u64,
        time_ms: row.get::<i64>("now").map_err(decode_err)? as u64,
        nodes: flat("nodes")?,
        rels: flat("rels")?,
        deleted_nodes: flat("delNodes")?,
        deleted_rels: flat("delRels")?,
    })
}

/// Cypher that is true when node `var` is graph-agent's own.
fn internal(var: &str) -> String {
    format!("any(l IN labels({var}) WHERE l STARTS WITH '{INTERNAL_LABEL_PREFIX}')")
}

/// Whether a read races writers. A full cut's first pass does: an entity
/// deleted under it comes back with a null id, endpoint or label list, and
/// is skipped, since the change log names every entity deleted meanwhile.
/// Anywhere else such a row is an error.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reads {
    Racing,
    Settled,
}

/// Appends the user nodes matching `filter` (over `n`).
async fn read_nodes(
    txn: &mut neo4rs::Txn,
    reads: Reads,
    filter: &str,
    params: Vec<(&str, BoltType)>,
    out: &mut Vec<Record>,
) -> Result<(), SourceError> {
    let q = format!(
        "MATCH (n) WHERE {filter} AND NOT {} \
         RETURN n.{ID_PROPERTY} AS id, labels(n) AS labels, {} AS props",
        internal("n"),
        cypher::encoded_props("n")
    );
    let mut q = query(&q);
    for (k, v) in params {
        q = q.param(k, v);
    }
    let mut rows = txn.execute(q).await.map_err(err("read nodes"))?;
    while let Some(row) = rows.next(txn.handle()).await.map_err(err("read nodes"))? {
        out.extend(node_from_row(&row, reads)?.map(Record::Node));
    }
    Ok(())
}

fn node_from_row(row: &neo4rs::Row, reads: Reads) -> Result<Option<Node>, SourceError> {
    if reads == Reads::Racing && vanished(row, &["id", "labels"]) {
        return Ok(None);
    }
    let labels: Vec<String> = row.get("labels").map_err(decode_err)?;
    Ok(Some(Node {
        id: entity_id(row, "node")?,
        labels: labels.into_iter().collect(),
        props: props(row)?,
    }))
}

/// Appends the relationships between user nodes matching `filter` (over `r`).
async fn read_rels(
    txn: &mut neo4rs::Txn,
    reads: Reads,
    filter: &str,
    params: Vec<(&str, BoltType)>,
    out: &mut Vec<Record>,
) -> Result<(), SourceError> {
    let q = format!(
        "MATCH (a)-[r]->(b) WHERE {filter} AND NOT {} AND NOT {} \
         RETURN r.{ID_PROPERTY} AS id, type(r) AS type, a.{ID_PROPERTY} AS start, \
         b.{ID_PROPERTY} AS end, {} AS props",
        internal("a"),
        internal("b"),
        cypher::encoded_props("r")
    );
    let mut q = query(&q);
    for (k, v) in params {
        q = q.param(k, v);
    }
    let mut rows = txn.execute(q).await.map_err(err("read relationships"))?;
    while let Some(row) = rows
        .next(txn.handle())
        .await
        .map_err(err("read relationships"))?
    {
        out.extend(rel_from_row(&row, reads)?.map(Record::Rel));
    }
    Ok(())
}

fn rel_from_row(row: &neo4rs::Row, reads: Reads) -> Result<Option<Rel>, SourceError> {
    if reads == Reads::Racing && vanished(row, &["id", "type", "start", "end"]) {
        return Ok(None);
    }
    Ok(Some(Rel {
        id: entity_id(row, "relationship")?,
        rel_type: row.get("type").map_err(decode_err)?,
        start: row.get("start").map_err(decode_err)?,
        end: row.get("end").map_err(decode_err)?,
        props: props(row)?,
    }))
}

/// Whether any of `keys` came back null: the entity went away mid-read.
fn vanished(row: &neo4rs::Row, keys: &[&str]) -> bool {
    keys.iter()
        .any(|k| matches!(row.get::<BoltType>(k), Ok(BoltType::Null(_))))
}

pub(crate) fn decode_err(e: impl std::fmt::Display) -> SourceError {
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
    convert::props_from_bolt(pairs).map_err(decode_err)
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

#[cfg(test)]
mod tests {
    use super::*;
    use neo4rs::BoltNull;

    #[test]
    fn a_deadlock_is_recognised_also_behind_the_capture_trigger() {
        let e = |message: &str| SourceError {
            op: "assign ids",
            message: message.into(),
        };
        // As Neo4j 5.26 reported it in a drill, through the trigger.
        let hook = "Neo4j error `Neo.ClientError.Transaction.TransactionHookFailed`: Error \
            executing triggers {graph-agent-capture=ForsetiClient[transactionId=398, clientId=9] \
            can't acquire ExclusiveLock{owner=ForsetiClient[transactionId=395, clientId=2]} on \
            NODE(418) because holders of that lock are waiting for ForsetiClient[transactionId=398, clientId=9].";
        assert!(deadlocked(&e(hook)));
        assert!(deadlocked(&e(
            "Neo4j error `Neo.TransientError.Transaction.DeadlockDetected`: ..."
        )));
        assert!(!deadlocked(&e(
            "Neo4j error `Neo.ClientError.Security.Unauthorized`: bad credentials"
        )));
        assert!(!deadlocked(&e("timed out after 30s")));
    }

    fn row(pairs: Vec<(&str, BoltType)>) -> neo4rs::Row {
        let (fields, data): (Vec<BoltType>, Vec<BoltType>) =
            pairs.into_iter().map(|(k, v)| (k.into(), v)).unzip();
        neo4rs::Row::new(BoltList::from(fields), BoltList::from(data))
    }

    fn labels(l: &[&str]) -> BoltType {
        BoltType::List(BoltList::from(
            l.iter().map(|s| BoltType::from(*s)).collect::<Vec<_>>(),
        ))
    }

    fn no_props() -> BoltType {
        BoltType::List(BoltList::from(Vec::<BoltType>::new()))
    }

    #[test]
    fn a_node_deleted_under_a_racing_read_is_skipped_and_elsewhere_an_error() {
        let deleted = || {
            row(vec![
                ("id", BoltType::Null(BoltNull)),
                ("labels", labels(&[])),
                ("props", no_props()),
            ])
        };
        assert_eq!(node_from_row(&deleted(), Reads::Racing).unwrap(), None);
        let err = node_from_row(&deleted(), Reads::Settled).unwrap_err();
        assert!(err.message.contains("ids must be assigned"), "{err}");

        let live = row(vec![
            ("id", "n1".into()),
            ("labels", labels(&["W"])),
            ("props", no_props()),
        ]);
        let node = node_from_row(&live, Reads::Racing).unwrap().unwrap();
        assert_eq!(node.id, "n1");
        assert!(node.labels.contains("W"));
    }

    #[test]
    fn a_relationship_whose_end_was_deleted_under_a_racing_read_is_skipped() {
        let dangling = || {
            row(vec![
                ("id", "r1".into()),
                ("type", "PAIR".into()),
                ("start", "n1".into()),
                ("end", BoltType::Null(BoltNull)),
                ("props", no_props()),
            ])
        };
        assert_eq!(rel_from_row(&dangling(), Reads::Racing).unwrap(), None);
        assert!(rel_from_row(&dangling(), Reads::Settled).is_err());
    }
}
