//! Change capture with an APOC `before` trigger, and the clock that orders
//! every write transaction.
//!
//! The trigger runs inside each write transaction, just before it commits:
//! it bumps the single `_GraphAgentClock` node's `seq` (which takes that
//! node's write lock until the commit, so sequence order is commit order),
//! gives new entities their `_gid`, and records the element ids of what the
//! transaction touched and the ids of what it deleted in a
//! `_GraphAgentTx {seq}` node. The record commits with the transaction or not
//! at all.
//!
//! Whoever holds the clock's lock stops every writer at its commit, so a
//! reader holding it sees a state no transaction is half-way through: that
//! is how a backup gets its cut (see [`super::Neo4jSource::cut`]).

use std::time::{Duration, Instant};

use neo4rs::{Graph, query};

use super::{SourceError, err};

pub const CLOCK_LABEL: &str = "_GraphAgentClock";
pub const TX_LABEL: &str = "_GraphAgentTx";
const PROBE_LABEL: &str = "_GraphAgentProbe";
const TRIGGER_NAME: &str = "graph-agent-capture";

/// The trigger's statement (APOC passes the transaction's changes as
/// `$createdNodes`, `$assignedNodeProperties`, …).
const TRIGGER: &str = "
MATCH (c:_GraphAgentClock)
SET c.seq = c.seq + 1
WITH c.seq AS seq
FOREACH (n IN $createdNodes | SET n._gid = coalesce(n._gid, randomUUID()))
FOREACH (r IN $createdRelationships | SET r._gid = coalesce(r._gid, randomUUID()))
WITH seq,
  [n IN $createdNodes | elementId(n)]
  + reduce(a = [], k IN keys($assignedNodeProperties) | a + [p IN $assignedNodeProperties[k] | elementId(p.node)])
  + reduce(a = [], k IN keys($removedNodeProperties) | a + [p IN $removedNodeProperties[k] | elementId(p.node)])
  + reduce(a = [], k IN keys($assignedLabels) | a + [n IN $assignedLabels[k] | elementId(n)])
  + reduce(a = [], k IN keys($removedLabels) | a + [n IN $removedLabels[k] | elementId(n)]) AS nodes,
  [r IN $createdRelationships | elementId(r)]
  + reduce(a = [], k IN keys($assignedRelationshipProperties) | a + [p IN $assignedRelationshipProperties[k] | elementId(p.relationship)])
  + reduce(a = [], k IN keys($removedRelationshipProperties) | a + [p IN $removedRelationshipProperties[k] | elementId(p.relationship)]) AS rels,
  [p IN coalesce($removedNodeProperties['_gid'], []) | p.old] AS delNodes,
  [p IN coalesce($removedRelationshipProperties['_gid'], []) | p.old] AS delRels
WITH seq, nodes, rels, delNodes, delRels
WHERE size(nodes) + size(rels) + size(delNodes) + size(delRels) > 0
CREATE (:_GraphAgentTx {seq: seq, time: timestamp(), nodes: nodes, rels: rels, delNodes: delNodes, delRels: delRels})
";

/// Installs the clock, the trigger and an index on change records, and
/// waits until the trigger fires (APOC installs triggers asynchronously).
/// `system` is a session to the `system` database. Safe to repeat.
pub async fn install(graph: &Graph, system: &Graph, wait: Duration) -> Result<(), SourceError> {
    graph
        .run(query(&format!(
            "CREATE INDEX graph_agent_tx_seq IF NOT EXISTS FOR (t:{TX_LABEL}) ON (t.seq)"
        )))
        .await
        .map_err(err("install capture"))?;
    graph
        .run(query(&format!(
            "MERGE (c:{CLOCK_LABEL}) ON CREATE SET c.seq = 0"
        )))
        .await
        .map_err(err("install capture"))?;
    system
        .run(
            query("CALL apoc.trigger.install('neo4j', $name, $stmt, {phase: 'before'})")
                .param("name", TRIGGER_NAME)
                .param("stmt", TRIGGER),
        )
        .await
        .map_err(err("install capture trigger"))?;
    let started = Instant::now();
    loop {
        let before = clock(graph).await?;
        graph
            .run(query(&format!("CREATE (p:{PROBE_LABEL}) WITH p DELETE p")))
            .await
            .map_err(err("probe capture trigger"))?;
        if clock(graph).await? > before {
            return Ok(());
        }
        if started.elapsed() > wait {
            return Err(SourceError {
                op: "install capture trigger",
                message: format!(
                    "the trigger did not fire within {wait:?} (is apoc.trigger.enabled=true in apoc.conf?)"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The clock's current sequence number (0 before any captured write).
pub async fn clock(graph: &Graph) -> Result<u64, SourceError> {
    let q = format!("MATCH (c:{CLOCK_LABEL}) RETURN c.seq AS seq");
    let mut rows = graph.execute(query(&q)).await.map_err(err("read clock"))?;
    match rows.next().await.map_err(err("read clock"))? {
        Some(row) => Ok(row.get::<i64>("seq").map_err(super::decode_err)? as u64),
        None => Err(SourceError {
            op: "read clock",
            message: format!("no `{CLOCK_LABEL}` node: change capture is not installed"),
        }),
    }
}

/// Deletes change records up to and including `seq` (already in a backup
/// of every tier).
pub async fn prune(graph: &Graph, seq: u64) -> Result<(), SourceError> {
    loop {
        let q = format!(
            "MATCH (t:{TX_LABEL}) WHERE t.seq <= $seq WITH t LIMIT 5000 DELETE t RETURN count(t) AS c"
        );
        let mut rows = graph
            .execute(query(&q).param("seq", seq as i64))
            .await
            .map_err(err("prune change records"))?;
        let c = match rows.next().await.map_err(err("prune change records"))? {
            Some(row) => row.get::<i64>("c").map_err(super::decode_err)?,
            None => 0,
        };
        if c == 0 {
            return Ok(());
        }
    }
}
