//! graph-agent's data path against the real servers: a graph read out of
//! Neo4j, stored in a tier's repository and restored into the recovery
//! instance comes back exactly.

mod common;

use std::time::Duration;

use common::{Env as Environment, serial, shared_env};
use graph_agent::graph::{Decoder, Encoder, Graph, Record};
use graph_agent::repo::{Key, Keyring, Manifest, RecoveryPoint, Repository, Store};
use graph_agent::source::{Cut, Neo4jSource, capture};
use neo4rs::query;

async fn admin_graph(env: &Environment, instance: &str) -> neo4rs::Graph {
    env.admin(instance, "neo4j").await
}

/// Runs the statements of a fixture file (separated by `;`).
async fn load_fixture(graph: &neo4rs::Graph, file: &str) {
    let text = std::fs::read_to_string(format!(
        "{}/../../fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for stmt in body.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        graph
            .run(query(stmt))
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
}

/// Empties both databases (data and schema) and the primary bucket's
/// repository, so each test starts from nothing.
async fn wipe(env: &Environment) {
    for instance in ["neo4j", "neo4j-recovery"] {
        common::wipe(&admin_graph(env, instance).await).await;
    }
    let store = primary_store(env);
    for (key, _) in store.list("").await.unwrap() {
        store.delete(&key).await.unwrap();
    }
}

/// Installs change capture on the source, as the agent does at start.
async fn install_capture(env: &Environment) -> Neo4jSource {
    let source = agent_source(env, "neo4j").await;
    let system = env.admin("neo4j", "system").await;
    let graph = env.admin("neo4j", "neo4j").await;
    capture::install(&graph, &system, Duration::from_secs(30))
        .await
        .unwrap();
    source.assign_ids().await.unwrap();
    source
}

async fn open_repo(env: &Environment) -> Repository {
    let keyring = Keyring::new("k1", Key::from_bytes(&[7; 32]).unwrap());
    Repository::open(primary_store(env), keyring).await.unwrap()
}

/// Stores a cut as backup `id`.
async fn store_cut(repo: &Repository, id: &str, parent: Option<&str>, cut: &Cut) {
    let mut enc = Encoder::default();
    for r in &cut.records {
        enc.record(r);
    }
    let point = RecoveryPoint {
        time_ms: cut.time_ms,
        seq: cut.seq,
    };
    let manifest = Manifest::new(
        id,
        parent.map(String::from),
        cut.time_ms,
        point,
        &cut.records,
    );
    repo.write_backup(manifest, enc.bytes(), 3).await.unwrap();
}

/// The graph a backup chain describes.
async fn chain_graph(repo: &Repository, id: &str) -> Graph {
    let mut g = Graph::default();
    for m in repo.chain(id).await.unwrap() {
        // Each backup carries the whole schema as it stood.
        g.schema.clear();
        let stream = repo.read_stream(&m, 3).await.unwrap();
        for r in Decoder::new(&stream).records().unwrap() {
            g.apply(r);
        }
    }
    g
}

/// The agent's own session to `instance`, through its link.
async fn agent_source(env: &Environment, instance: &str) -> Neo4jSource {
    Neo4jSource::new(env.agent(instance).await)
}

/// The primary region's bucket as the agent sees it.
fn primary_store(env: &Environment) -> Store {
    Store::S3(env.agent_bucket("s3-primary"))
}

fn graph_of(records: Vec<Record>) -> Graph {
    let mut g = Graph::default();
    for r in records {
        g.apply(r);
    }
    g
}

/// Spot checks that the export read what the fixture wrote, bit for bit.
fn assert_export_is_exact(g: &Graph) {
    use graph_agent::graph::{Float, Tz, Value};
    let node = |label: &str| {
        g.nodes
            .values()
            .find(|n| n.labels.contains(label))
            .unwrap_or_else(|| panic!("no node labelled {label}"))
    };
    let admin = node("Admin");
    assert!(matches!(admin.props["nan"], Value::Float(Float(f)) if f.is_nan()));
    assert_eq!(admin.props["negzero"], Value::Float(Float(-0.0)));
    assert_eq!(admin.props["small"], Value::Int(i64::MIN));
    let ada = g
        .nodes
        .values()
        .find(|n| n.props.get("name") == Some(&Value::String("Ada".into())))
        .unwrap();
    assert_eq!(ada.props["blob"], Value::Bytes(vec![0, 1, 255, 128]));
    assert_eq!(ada.props["empty"], Value::List(vec![]));
    let zeit = node("Zeit ⏰");
    assert_eq!(zeit.props["ключ"], Value::String("значение".into()));
    assert_eq!(zeit.props["lt"], Value::LocalTime(1));
    assert_eq!(
        zeit.props["t"],
        Value::Time {
            nanos: 86_399_999_999_999,
            offset_s: -28_800
        }
    );
    assert_eq!(
        zeit.props["utc"],
        Value::DateTime {
            secs: -14_182_940,
            nanos: 0,
            tz: Tz::Offset(0)
        }
    );
    assert!(
        matches!(&zeit.props["zoned"], Value::DateTime { nanos: 123_456_789, tz: Tz::Zone(z), .. } if z == "Europe/Stockholm")
    );
    assert_eq!(
        zeit.props["d"],
        Value::Duration {
            months: 14,
            days: 3,
            secs: 14_706,
            nanos: 700_000_000
        }
    );
    // Small negative integers cross Bolt as one byte; neo4rs 0.8 read
    // -3 as 253, so this duration came back as `P253DT4M15S`.
    assert_eq!(
        zeit.props["negd"],
        Value::Duration {
            months: 0,
            days: -3,
            secs: -1,
            nanos: 0
        }
    );
    assert_eq!(
        zeit.props["dates"],
        Value::List(vec![Value::Date(10_957), Value::Date(-735_525)])
    );
    let city = node("City");
    assert!(matches!(
        city.props["location3d"],
        Value::Point3D { srid: 4979, .. }
    ));
    assert!(matches!(
        city.props["grid"],
        Value::Point2D { srid: 7203, .. }
    ));
    assert!(
        g.rels.values().any(|r| r.start == r.end),
        "the self-loop is missing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn full_backup_restores_every_property_type_exactly() {
    let _guard = serial().await;
    let env = shared_env();
    wipe(env).await;
    let admin = admin_graph(env, "neo4j").await;
    load_fixture(&admin, "every-type.cypher").await;
    let blob = neo4rs::BoltType::Bytes(neo4rs::BoltBytes::new(vec![0u8, 1, 255, 128].into()));
    admin
        .run(query("MATCH (a:Person {email: 'ada@example.org'}) SET a.blob = $b").param("b", blob))
        .await
        .unwrap();

    let source = agent_source(env, "neo4j").await;
    assert!(source.assign_ids().await.unwrap() > 0);
    let records = source.export().await.unwrap();
    let original = graph_of(records.clone());
    assert_eq!(original.nodes.len(), 5);
    assert_eq!(original.rels.len(), 7);
    assert_eq!(original.schema.len(), 2, "{:?}", original.schema);
    assert_export_is_exact(&original);

    let mut enc = Encoder::default();
    for r in &records {
        enc.record(r);
    }
    let keyring = Keyring::new("k1", Key::from_bytes(&[7; 32]).unwrap());
    let repo = Repository::open(primary_store(env), keyring).await.unwrap();
    let point = RecoveryPoint { time_ms: 1, seq: 0 };
    let manifest = Manifest::new("full-1", None, 1, point, &records);
    repo.write_backup(manifest, enc.bytes(), 3).await.unwrap();

    let chain = repo.chain("full-1").await.unwrap();
    assert_eq!((chain[0].counts.nodes, chain[0].counts.rels), (5, 7));
    let stream = repo.read_stream(&chain[0], 3).await.unwrap();
    let back = graph_of(Decoder::new(&stream).records().unwrap());
    let target = agent_source(env, "neo4j-recovery").await;
    let mut progress = 0;
    target.restore(&back, |n| progress = n).await.unwrap();
    assert_eq!(progress, 12);

    let restored = graph_of(target.export().await.unwrap());
    if restored != original {
        for (id, n) in &original.nodes {
            assert_eq!(restored.nodes.get(id), Some(n), "node {id}");
        }
        assert_eq!(restored.rels, original.rels);
        assert_eq!(restored.schema, original.schema);
    }
    assert_eq!(restored.canonical_hash(), original.canonical_hash());
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_chain_carries_creates_updates_and_deletes() {
    let _guard = serial().await;
    let env = shared_env();
    wipe(env).await;
    let admin = admin_graph(env, "neo4j").await;
    load_fixture(&admin, "every-type.cypher").await;
    let source = install_capture(env).await;
    let repo = open_repo(env).await;

    let full = source.cut(None).await.unwrap();
    store_cut(&repo, "full", None, &full).await;
    for change in [
        "CREATE (:Person {email: 'new@example.org', n: 1})-[:KNOWS {w: 1}]->(:City {name: 'Uppsala'})",
        "MATCH (p:Person {name: 'Ada'}) SET p.score = 10.5, p:Pioneer REMOVE p.visits",
        "MATCH (:Person {name: 'Ada'})-[r:SELF]->() DELETE r",
        "MATCH (l:Long) DETACH DELETE l",
        "MATCH ()-[r:LIVES_IN]->(:City {name: 'Stockholm'}) SET r.verified = true",
    ] {
        admin.run(query(change)).await.unwrap();
    }
    let inc = source.cut(Some(full.seq)).await.unwrap();
    assert!(inc.seq >= full.seq + 5, "{} after {}", inc.seq, full.seq);
    assert!(
        inc.records
            .iter()
            .any(|r| matches!(r, Record::DeleteNode(_)))
    );
    assert!(
        inc.records
            .iter()
            .any(|r| matches!(r, Record::DeleteRel(_)))
    );
    store_cut(&repo, "inc", Some("full"), &inc).await;

    // The chain gives the source as it is now, and an incremental holds far
    // less than the whole graph.
    let now = graph_of(source.export().await.unwrap());
    let restored = chain_graph(&repo, "inc").await;
    assert_eq!(restored.nodes, now.nodes);
    assert_eq!(restored.rels, now.rels);
    assert_eq!(restored.canonical_hash(), now.canonical_hash());
    let upserts = inc
        .records
        .iter()
        .filter(|r| matches!(r, Record::Node(_) | Record::Rel(_)))
        .count();
    assert!(
        upserts < now.nodes.len() + now.rels.len(),
        "{upserts} upserts"
    );

    // Restored into the recovery instance, it is the same graph again.
    let target = agent_source(env, "neo4j-recovery").await;
    target.restore(&restored, |_| {}).await.unwrap();
    assert_eq!(
        graph_of(target.export().await.unwrap()).canonical_hash(),
        now.canonical_hash()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn full_cut_under_concurrent_writes_keeps_the_recovery_point_contract() {
    let _guard = serial().await;
    let env = shared_env();
    wipe(env).await;
    let source = install_capture(env).await;
    let writer = admin_graph(env, "neo4j").await;

    // Each transaction creates two nodes and a relationship tagged with its
    // number, then (every third) deletes an earlier pair: all or nothing.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(i64, u64)>::new()));
    let log = acked.clone();
    let load = tokio::spawn(async move {
        for w in 0..300i64 {
            let mut txn = writer.start_txn().await.unwrap();
            txn.run(
                query("CREATE (:W {w: $w, side: 'a'})-[:PAIR {w: $w}]->(:W {w: $w, side: 'b'})")
                    .param("w", w),
            )
            .await
            .unwrap();
            if w % 3 == 2 {
                txn.run(query("MATCH (n:W {w: $old}) DETACH DELETE n").param("old", w - 2))
                    .await
                    .unwrap();
            }
            txn.commit().await.unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            log.lock().unwrap().push((w, now));
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let cut = source.cut(None).await.unwrap();
    load.await.unwrap();

    let g = graph_of(cut.records.clone());
    assert!(g.dangling().is_empty(), "dangling relationships in the cut");
    let mut pairs: std::collections::BTreeMap<i64, (usize, usize)> = Default::default();
    for n in g.nodes.values() {
        if let Some(graph_agent::graph::Value::Int(w)) = n.props.get("w") {
            pairs.entry(*w).or_default().0 += 1;
        }
    }
    for r in g.rels.values() {
        if let Some(graph_agent::graph::Value::Int(w)) = r.props.get("w") {
            pairs.entry(*w).or_default().1 += 1;
        }
    }
    for (w, (nodes, rels)) in &pairs {
        assert_eq!(
            (*nodes, *rels),
            (2, 1),
            "transaction {w} is in the cut only in part"
        );
    }
    // The writer is serial, so the cut must hold exactly a prefix 0..=k of
    // its transactions: pairs 0..=k except those deleted by a transaction in
    // the prefix.
    let k = *pairs.keys().max().expect("the cut holds no write");
    let expected: Vec<i64> = (0..=k).filter(|w| !(w % 3 == 0 && w + 2 <= k)).collect();
    assert_eq!(pairs.keys().copied().collect::<Vec<_>>(), expected);
    let acked = acked.lock().unwrap().clone();
    assert!(k < 299, "the cut came after all writes");
    for (w, at) in acked {
        if at < cut.time_ms {
            assert!(
                w <= k,
                "transaction {w}, acknowledged before the cut, is missing"
            );
        }
    }
}
