//! The golden repository (`fixtures/golden-repo/`, written by graph-agent
//! when format 1 was current) still opens with today's code: a change to the
//! format that would strand existing backups fails here first.

use std::path::Path;

use graph_agent::graph::{Decoder, Record, Value};
use graph_agent::repo::{Counts, Keyring, Repository, Store};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/golden-repo");
const KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/golden-repo.key"
);

#[tokio::test]
async fn every_backup_of_the_golden_repository_restores_with_todays_reader() {
    let key = Keyring::load_key(Path::new(KEY_FILE)).unwrap();
    let repo = Repository::open(Store::Local(GOLDEN.into()), Keyring::new("key-1", key))
        .await
        .unwrap();
    let catalog = repo.catalog().await.unwrap();
    assert_eq!(catalog.len(), 2, "{catalog:?}");
    let mut kinds = std::collections::HashSet::new();
    for entry in &catalog {
        let mut records = Vec::new();
        for m in repo.chain(&entry.id).await.unwrap() {
            let stream = repo.read_stream(&m, 4).await.unwrap();
            let got = Decoder::new(&stream).records().unwrap();
            let mut counts = Counts::default();
            for r in &got {
                match r {
                    Record::Node(_) => counts.nodes += 1,
                    Record::Rel(_) => counts.rels += 1,
                    Record::DeleteNode(_) | Record::DeleteRel(_) => counts.deletions += 1,
                    Record::Schema(_) => counts.schema += 1,
                }
            }
            assert_eq!(counts, m.counts, "{}", m.id);
            records.extend(got);
        }
        for r in &records {
            let props = match r {
                Record::Node(n) => &n.props,
                Record::Rel(r) => &r.props,
                _ => continue,
            };
            for v in props.values() {
                kinds.insert(std::mem::discriminant(v));
            }
        }
    }
    // Every type fixtures/every-type.cypher holds (its byte array is set
    // by the agent's own tests, not by the drill's loader).
    let float = graph_agent::graph::Float(0.0);
    let every = [
        Value::Bool(true),
        Value::Int(0),
        Value::Float(float),
        Value::String(String::new()),
        Value::List(Vec::new()),
        Value::Date(0),
        Value::LocalTime(0),
        Value::Time {
            nanos: 0,
            offset_s: 0,
        },
        Value::LocalDateTime { secs: 0, nanos: 0 },
        Value::DateTime {
            secs: 0,
            nanos: 0,
            tz: graph_agent::graph::Tz::Offset(0),
        },
        Value::Duration {
            months: 0,
            days: 0,
            secs: 0,
            nanos: 0,
        },
        Value::Point2D {
            srid: 0,
            x: float,
            y: float,
        },
        Value::Point3D {
            srid: 0,
            x: float,
            y: float,
            z: float,
        },
    ];
    for v in every {
        assert!(kinds.contains(&std::mem::discriminant(&v)), "no {v:?}");
    }
}
