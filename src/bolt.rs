//! The harness's Bolt sessions to Neo4j (as admin, never through the
//! agent's links), and emptying a database between drills.

use neo4rs::{ConfigBuilder, Graph, query};

/// A session to `db` at `bolt` (`host:port`).
pub async fn connect(bolt: &str, user: &str, password: &str, db: &str) -> Result<Graph, String> {
    let config = ConfigBuilder::default()
        .uri(bolt)
        .user(user)
        .password(password)
        .db(db)
        .max_connections(4)
        .build()
        .map_err(|e| e.to_string())?;
    Graph::connect(config).map_err(|e| e.to_string())
}

/// Runs `q` in its own transaction and returns column `n` of the first row.
/// Unlike `Graph::run`, a transaction is never retried behind the caller's
/// back, so a refused login fails at once instead of after a minute.
pub async fn query_i64(graph: &Graph, q: neo4rs::Query) -> Result<i64, String> {
    let mut txn = graph.start_txn().await.map_err(|e| e.to_string())?;
    let mut rows = txn.execute(q).await.map_err(|e| e.to_string())?;
    let row = rows
        .next(txn.handle())
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the query returned no row")?;
    let n = row.get::<i64>("n").map_err(|e| e.to_string())?;
    drop(rows);
    txn.commit().await.map_err(|e| e.to_string())?;
    Ok(n)
}

/// Whether the database holds no node at all.
pub async fn is_empty(graph: &Graph) -> Result<bool, String> {
    query_i64(graph, query("MATCH (n) RETURN count(n) AS n"))
        .await
        .map(|n| n == 0)
}

/// Deletes every node, relationship, constraint and index (but the
/// built-in lookup indexes), in batches: a drill starts from nothing, and a
/// failed restore leaves nothing behind.
pub async fn wipe(graph: &Graph) -> Result<(), String> {
    let text = |e: neo4rs::Error| e.to_string();
    // Relationships first, so that no batch holds a hub's whole neighbourhood
    // (a node with 100 000 relationships outgrows the transaction memory).
    for q in [
        "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS",
        "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS",
    ] {
        graph.run(query(q)).await.map_err(text)?;
    }
    for (show, kind) in [
        ("SHOW CONSTRAINTS YIELD name", "CONSTRAINT"),
        (
            "SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name",
            "INDEX",
        ),
    ] {
        let mut rows = graph.execute(query(show)).await.map_err(text)?;
        let mut names = Vec::new();
        while let Some(row) = rows.next().await.map_err(text)? {
            names.push(row.get::<String>("name").map_err(|e| e.to_string())?);
        }
        for name in names {
            graph
                .run(query(&format!("DROP {kind} `{name}` IF EXISTS")))
                .await
                .map_err(text)?;
        }
    }
    Ok(())
}
