//! Throughput of each stage of graph-agent's backup pipeline, and of the
//! whole pipeline, on a generated record stream (no I/O).
//!
//! `cargo bench -p graph-agent --bench pipeline`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use graph_agent::graph::{Encoder, Float, Node, Props, Record, Rel, Tz, Value};
use graph_agent::repo::{CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, Key, Keyring};

/// A graph of `n` nodes and `3n` relationships with a mix of property types.
fn records(n: usize) -> Vec<Record> {
    let mut out = Vec::with_capacity(4 * n);
    for i in 0..n {
        let mut props = Props::new();
        props.insert("name".into(), Value::String(format!("node number {i}")));
        props.insert("score".into(), Value::Float(Float(i as f64 * 0.37)));
        props.insert("rank".into(), Value::Int(i as i64));
        props.insert(
            "seen".into(),
            Value::DateTime {
                secs: 1_700_000_000 + i as i64,
                nanos: 0,
                tz: Tz::Zone("Europe/Stockholm".into()),
            },
        );
        props.insert(
            "tags".into(),
            Value::List(vec![Value::String("a".into()), Value::String("b".into())]),
        );
        out.push(Record::Node(Node {
            id: format!("{i:016x}-node"),
            labels: ["Person".to_string()].into(),
            props,
        }));
    }
    for i in 0..3 * n {
        let mut props = Props::new();
        props.insert("weight".into(), Value::Float(Float(i as f64)));
        out.push(Record::Rel(Rel {
            id: format!("{i:016x}-rel"),
            rel_type: "KNOWS".into(),
            start: format!("{:016x}-node", i % n),
            end: format!("{:016x}-node", (i * 7 + 1) % n),
            props,
        }));
    }
    out
}

fn encode(records: &[Record]) -> Vec<u8> {
    let mut enc = Encoder::default();
    for r in records {
        enc.record(r);
    }
    enc.into_bytes()
}

fn split(stream: &[u8]) -> Vec<&[u8]> {
    fastcdc::v2020::FastCDC::new(stream, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX)
        .map(|c| &stream[c.offset..c.offset + c.length])
        .collect()
}

fn stages(c: &mut Criterion) {
    let recs = records(50_000);
    let stream = encode(&recs);
    let name_key = [9u8; 32];
    let keyring = Keyring::new("k1", Key::from_bytes(&[7; 32]).unwrap());
    let compressed = zstd::bulk::compress(&stream, 3).unwrap();

    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("canonical encode", |b| b.iter(|| encode(&recs)));
    g.bench_function("content-defined chunking", |b| {
        b.iter(|| split(&stream).len())
    });
    g.bench_function("zstd level 3", |b| {
        b.iter(|| zstd::bulk::compress(&stream, 3).unwrap())
    });
    g.bench_function("keyed hash (blake3)", |b| {
        b.iter(|| blake3::keyed_hash(&name_key, &stream))
    });
    g.throughput(Throughput::Bytes(compressed.len() as u64));
    g.bench_function("aes-256-gcm seal", |b| {
        b.iter(|| keyring.seal("chunks/ab/cd", &compressed))
    });
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("whole pipeline", |b| {
        b.iter(|| {
            let stream = encode(&recs);
            let mut stored = 0;
            for chunk in split(&stream) {
                let name = blake3::keyed_hash(&name_key, chunk);
                let z = zstd::bulk::compress(chunk, 3).unwrap();
                stored += keyring.seal(&hex::encode(name.as_bytes()), &z).len();
            }
            stored
        })
    });
    // As graph-agent runs it: chunks hashed, compressed and sealed on every
    // core at once (the repository's blocking pool), encoding on one.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    g.bench_function(format!("whole pipeline, {workers} threads"), |b| {
        b.iter(|| {
            let stream = encode(&recs);
            let chunks = split(&stream);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..workers)
                    .map(|w| {
                        let (chunks, keyring) = (&chunks, &keyring);
                        s.spawn(move || {
                            let mut stored = 0;
                            for chunk in chunks.iter().skip(w).step_by(workers) {
                                let name = blake3::keyed_hash(&name_key, chunk);
                                let z = zstd::bulk::compress(chunk, 3).unwrap();
                                stored += keyring.seal(&hex::encode(name.as_bytes()), &z).len();
                            }
                            stored
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .sum::<usize>()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
