//! The harness's Bolt sessions to Neo4j (as admin, never through the
//! agent's links), and emptying a database between drills.

use neo4rs::{ConfigBuilder, Graph, query};

/// A Bolt call of the harness that failed.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    #[error(transparent)]
    Neo4j(#[from] neo4rs::Error),
    #[error("the query returned no row")]
    NoRow,
    #[error("an unexpected column: {0}")]
    Column(#[from] neo4rs::DeError),
}

/// A session to `db` at `bolt` (`host:port`).
pub async fn connect(bolt: &str, user: &str, password: &str, db: &str) -> Result<Graph, BoltError> {
    let config = ConfigBuilder::default()
        .uri(bolt)
        .user(user)
        .password(password)
        .db(db)
        .max_connections(4)
        .build()?;
    Ok(Graph::connect(config)?)
}

/// Runs `q` in its own transaction and returns column `n` of the first row.
/// Unlike `Graph::run`, a transaction is never retried behind the caller's
/// back, so a refused login fails at once instead of after a minute.
pub async fn query_i64(graph: &Graph, q: neo4rs::Query) -> Result<i64, BoltError> {
    let mut txn = graph.start_txn().await?;
    let mut rows = txn.execute(q).await?;
    let row = rows.next(txn.handle()).await?.ok_or(BoltError::NoRow)?;
    let n = row.get::<i64>("n")?;
    drop(rows);
    txn.commit().await?;
    Ok(n)
}

/// Whether the database holds no node at all.
pub async fn is_empty(graph: &Graph) -> Result<bool, BoltError> {
    query_i64(graph, query("MATCH (n) RETURN count(n) AS n"))
        .await
        .map(|n| n == 0)
}

/// Deletes every node, relationship, constraint and index (but the
/// built-in lookup indexes), in batches: a drill starts from nothing, and a
/// failed restore leaves nothing behind.
pub async fn wipe(graph: &Graph) -> Result<(), BoltError> {
    // Relationships first, so that no batch holds a hub's whole neighbourhood
    // (a node with 100 000 relationships outgrows the transaction memory).
    for q in [
        "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS",
        "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS",
    ] {
        graph.run(query(q)).await?;
    }
    for (show, kind) in [
        ("SHOW CONSTRAINTS YIELD name", "CONSTRAINT"),
        (
            "SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name",
            "INDEX",
        ),
    ] {
        let mut rows = graph.execute(query(show)).await?;
        let mut names = Vec::new();
        while let Some(row) = rows.next().await? {
            names.push(row.get::<String>("name")?);
        }
        for name in names {
            graph
                .run(query(&format!("DROP {kind} `{name}` IF EXISTS")))
                .await?;
        }
    }
    Ok(())
}
