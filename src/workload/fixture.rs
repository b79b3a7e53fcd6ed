//! The graph a drill starts from: a Cypher file under `fixtures/`, or a
//! seeded generator; and emptying a database between drills.

use std::path::Path;

use neo4rs::{BoltList, BoltMap, BoltType, Graph, query};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{WorkloadError, statements};
use crate::graph::ID_PROPERTY;

/// Labels and relationship types of generated graphs.
const LABELS: [&str; 4] = ["Person", "Company", "Product", "Tag"];
const REL_TYPES: [&str; 3] = ["KNOWS", "BOUGHT", "TAGGED"];
/// Entities per transaction while generating (the transaction memory
/// limit is 256 MiB).
const BATCH: usize = 10_000;

fn neo(what: &'static str) -> impl Fn(neo4rs::Error) -> WorkloadError {
    move |e| WorkloadError::Neo4j {
        what,
        message: e.to_string(),
    }
}

/// Runs the statements of a fixture file (`;`-separated, see
/// [`statements::split`]). Statements that mention `$blob` get the bytes
/// `[0, 1, 255, 128]`: Cypher has no byte-array literal.
pub async fn load_file(graph: &Graph, path: &Path) -> Result<usize, WorkloadError> {
    let bad = |message: String| WorkloadError::Fixture {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let statements = statements::split(&text).map_err(|e| bad(e.to_string()))?;
    let mut n = 0;
    for stmt in &statements {
        let mut q = query(&stmt.text);
        if stmt.text.contains("$blob") {
            q = q.param(
                "blob",
                BoltType::Bytes(neo4rs::BoltBytes::new(vec![0u8, 1, 255, 128].into())),
            );
        }
        graph
            .run(q)
            .await
            .map_err(|e| bad(format!("statement {} (line {}): {e}", n + 1, stmt.line)))?;
        n += 1;
    }
    Ok(n)
}

/// Gives every node and relationship the fixture made without the harness
/// id a random one (the judge follows entities by it). The entities are
/// listed first and named in batches: a write that makes more unnamed
/// entities (an agent's change records, say) cannot keep it going.
pub async fn name_entities(graph: &Graph) -> Result<(), WorkloadError> {
    for (pattern, var) in [("(n)", "n"), ("()-[r]->()", "r")] {
        let mut ids = Vec::new();
        let list = format!(
            "MATCH {pattern} WHERE {var}.{ID_PROPERTY} IS NULL RETURN elementId({var}) AS id"
        );
        let mut rows = graph
            .execute(query(&list))
            .await
            .map_err(neo("name the fixture's entities"))?;
        while let Some(row) = rows
            .next()
            .await
            .map_err(neo("name the fixture's entities"))?
        {
            ids.push(row.get::<String>("id").map_err(|e| WorkloadError::Neo4j {
                what: "name the fixture's entities",
                message: e.to_string(),
            })?);
        }
        drop(rows);
        let name = format!(
            "UNWIND $rows AS id MATCH {pattern} WHERE elementId({var}) = id \
             SET {var}.{ID_PROPERTY} = randomUUID()"
        );
        for batch in ids.chunks(BATCH) {
            let batch: Vec<BoltType> = batch.iter().map(|s| s.as_str().into()).collect();
            write(graph, &name, batch).await?;
        }
    }
    Ok(())
}

/// Generates `nodes` nodes and `rels` relationships, the same for the same
/// seed. Degrees are skewed: low-numbered nodes are endpoints far more
/// often (a cube of a uniform draw), as hubs are in real graphs.
pub async fn generate(
    graph: &Graph,
    seed: u64,
    nodes: u64,
    rels: u64,
) -> Result<(), WorkloadError> {
    graph
        .run(query(&format!(
            "CREATE INDEX generated_gid IF NOT EXISTS FOR (n:Generated) ON (n.{ID_PROPERTY})"
        )))
        .await
        .map_err(neo("generate"))?;
    graph
        .run(query("CALL db.awaitIndexes(300)"))
        .await
        .map_err(neo("generate"))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut start = 0;
    while start < nodes {
        let end = (start + BATCH as u64).min(nodes);
        let rows: Vec<BoltType> = (start..end)
            .map(|i| {
                let mut m = BoltMap::new();
                m.put("id".into(), format!("g-n{i}").into());
                m.put("label".into(), LABELS[(i % 4) as usize].into());
                m.put("rank".into(), (i as i64).into());
                m.put("score".into(), rng.random_range(0..1_000_000i64).into());
                BoltType::Map(m)
            })
            .collect();
        write(
            graph,
            &format!(
                "UNWIND $rows AS r CALL apoc.create.node(['Generated', r.label], \
                 {{{ID_PROPERTY}: r.id, rank: r.rank, score: r.score}}) YIELD node RETURN count(node) AS n"
            ),
            rows,
        )
        .await?;
        start = end;
    }
    let mut made = 0;
    while made < rels {
        let end = (made + BATCH as u64).min(rels);
        let rows: Vec<BoltType> = (made..end)
            .map(|j| {
                let mut pick = || (nodes as f64 * rng.random::<f64>().powi(3)) as u64;
                let (a, b) = (pick(), rng.random_range(0..nodes));
                let mut m = BoltMap::new();
                m.put("id".into(), format!("g-r{j}").into());
                m.put("a".into(), format!("g-n{a}").into());
                m.put("b".into(), format!("g-n{b}").into());
                m.put("type".into(), REL_TYPES[(j % 3) as usize].into());
                m.put("w".into(), rng.random_range(0..100i64).into());
                BoltType::Map(m)
            })
            .collect();
        write(
            graph,
            &format!(
                "UNWIND $rows AS r MATCH (a:Generated {{{ID_PROPERTY}: r.a}}), (b:Generated {{{ID_PROPERTY}: r.b}}) \
                 CALL apoc.create.relationship(a, r.type, {{{ID_PROPERTY}: r.id, w: r.w}}, b) YIELD rel \
                 RETURN count(rel) AS n"
            ),
            rows,
        )
        .await?;
        made = end;
    }
    Ok(())
}

/// Runs `q` in one transaction with `$rows` bound to `rows`.
async fn write(graph: &Graph, q: &str, rows: Vec<BoltType>) -> Result<(), WorkloadError> {
    let mut txn = graph.start_txn().await.map_err(neo("generate"))?;
    txn.run(query(q).param("rows", BoltType::List(BoltList::from(rows))))
        .await
        .map_err(neo("generate"))?;
    txn.commit().await.map_err(neo("generate"))
}
