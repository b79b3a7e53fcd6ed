//! The judge's consistency check on 1M entities: equal graphs (hashes
//! only), and graphs with 1 000 differences (hashes, then the full diff).
//! `cargo bench --bench judge`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use graphdrill::check::consistency;
use graphdrill::graph::{Graph, Node, Props, Rel, Value};

fn graph(nodes: usize) -> Graph {
    let mut g = Graph::default();
    for i in 0..nodes {
        g.put_node(Node {
            id: format!("n{i}"),
            labels: ["Item".to_string()].into(),
            props: Props::from([
                ("rank".to_string(), Value::int(i as i64)),
                ("name".to_string(), Value::string(&format!("item {i}"))),
            ]),
        });
    }
    for i in 0..nodes * 3 {
        g.put_rel(Rel {
            id: format!("r{i}"),
            rel_type: "NEXT".into(),
            start: format!("n{}", i % nodes),
            end: format!("n{}", (i * 7) % nodes),
            props: Props::from([("w".to_string(), Value::int(i as i64))]),
        });
    }
    g
}

fn consistency(c: &mut Criterion) {
    let expected = graph(250_000);
    let mut changed = expected.clone();
    for (i, n) in changed.nodes.values_mut().enumerate().step_by(250) {
        n.props.insert("rank".into(), Value::int(-(i as i64)));
    }
    let entities = (expected.nodes.len() + expected.rels.len()) as u64;
    let mut g = c.benchmark_group("consistency");
    g.sample_size(10);
    g.throughput(Throughput::Elements(entities));
    g.bench_function("equal graphs", |b| {
        b.iter(|| consistency::check("c", &expected, &expected).status)
    });
    g.bench_function("1000 differences", |b| {
        b.iter(|| consistency::check("c", &expected, &changed).details.len())
    });
    g.finish();
}

criterion_group!(benches, consistency);
criterion_main!(benches);
