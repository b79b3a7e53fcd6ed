//! graph-agent's data path against the real servers: a graph read out of
//! Neo4j, stored in a tier's repository and restored into the recovery
//! instance comes back exactly.

mod common;

use std::time::Duration;

use common::{admin_graph, healthy, shared_env};
use graphdrill::agent::repo::{Counts, Key, Keyring, Manifest, RecoveryPoint, Repository, Store};
use graphdrill::agent::source::Neo4jSource;
use graphdrill::api::BackupKind;
use graphdrill::env::{self, Environment, Link, load_s3_credentials};
use graphdrill::graph::{Decoder, Encoder, Graph, Record};
use graphdrill::s3::Bucket;
use neo4rs::query;

/// Runs the statements of a fixture file (separated by `;`).
async fn load_fixture(graph: &neo4rs::Graph, file: &str) {
    let text =
        std::fs::read_to_string(format!("{}/fixtures/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
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

/// The agent's own session to `instance`, through its link.
async fn agent_source(env: &Environment, instance: &str) -> Neo4jSource {
    let state = env.state();
    let n = &state.neo4j[instance];
    let pw = env::read_secret(&n.agent_password_file).unwrap();
    let link = Link::parse(instance).unwrap();
    let graph = env::neo4j::connect(&state.link(link).listen, &n.agent_user, &pw, "neo4j")
        .await
        .unwrap();
    Neo4jSource::new(graph)
}

/// The primary region's bucket as the agent sees it.
fn primary_store(env: &Environment) -> Store {
    let state = env.state();
    let s3 = &state.s3["s3-primary"];
    let creds = load_s3_credentials(&s3.agent_credentials_file).unwrap();
    let url = format!("http://{}", state.link(Link::S3Primary).listen);
    Store::S3(Bucket::new(&url, &creds, &s3.bucket, Duration::from_secs(10)).unwrap())
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
    use graphdrill::graph::{Float, Tz, Value};
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
    let _guard = healthy().await;
    let env = shared_env();
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
    let manifest = Manifest {
        format: 1,
        id: "full-1".into(),
        kind: BackupKind::Full,
        parent: None,
        created_ms: 1,
        recovery_point: RecoveryPoint { time_ms: 1, seq: 0 },
        counts: Counts {
            nodes: 5,
            rels: 7,
            ..Counts::default()
        },
        chunks: vec![],
        raw_bytes: 0,
        merkle_root: String::new(),
    };
    repo.write_backup(manifest, enc.bytes(), 3).await.unwrap();

    let chain = repo.chain("full-1").await.unwrap();
    let stream = repo.read_stream(&chain[0], 3).await.unwrap();
    let back = Decoder::new(&stream).records().unwrap();
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
