//! graph-agent against Neo4j's own tools on one generated graph, same
//! machine, same run: full backup vs `apoc.export.json.all` and
//! `neo4j-admin database dump`; restore vs `apoc.import.json` and
//! `neo4j-admin database load`; an incremental backup after 1 % of the
//! entities changed (time and bytes against the full backup).
//!
//! An end-to-end run of minutes, so not criterion: each step is timed once
//! by the wall clock and the table is printed and written to
//! `reports/side-by-side-<nodes>-<rels>.json`.
//!
//! ```text
//! SIDE_BY_SIDE_NODES=1000000 SIDE_BY_SIDE_RELS=5000000 cargo bench --bench side_by_side
//! ```
//! (defaults: 100 000 nodes, 500 000 relationships).

use std::path::Path;
use std::time::{Duration, Instant};

use graphdrill::adapter::builtin::{AgentProcess, AgentSetup};
use graphdrill::api::{Job, JobState};
use graphdrill::env::{self, EnvOptions, Environment};
use graphdrill::workload::fixture;
use neo4rs::{Graph, query};

const TOKEN: &str = "bench-token-0123456789abcdef";

/// One measured step.
#[derive(serde::Serialize)]
struct Row {
    what: String,
    tool: &'static str,
    secs: f64,
    bytes: Option<u64>,
    note: String,
}

fn size_of(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|d| d.flatten().map(|e| size_of(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn count(graph: &Graph, q: &str) -> i64 {
    env::neo4j::query_i64(graph, query(q)).await.expect(q)
}

/// Runs a job to its end; panics unless it succeeded.
async fn job(agent: &AgentProcess, path: &str, body: serde_json::Value) -> Job {
    let api = agent.api();
    let collection = path.trim_start_matches("/v1/");
    let accepted = api.submit(path, body).await.expect("job accepted");
    let done = api
        .follow(collection, accepted, Duration::from_secs(4 * 3600), |_| {})
        .await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    done
}

/// graph-agent's uploaded-bytes counter for the local tier.
async fn uploaded(agent: &AgentProcess) -> u64 {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", agent.api().url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("graph_agent_uploaded_bytes_total{tier=\"local\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs a procedure call and reads every row: a procedure's result is lazy,
/// and a call whose rows are discarded may do nothing at all.
async fn call(graph: &Graph, q: &str) -> Result<usize, neo4rs::Error> {
    let mut rows = graph.execute(query(q)).await?;
    let mut n = 0;
    while rows.next().await?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Times `f`.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, f64) {
    let t = Instant::now();
    let out = f.await;
    (out, t.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let (nodes, rels) = (
        setting("SIDE_BY_SIDE_NODES", 100_000),
        setting("SIDE_BY_SIDE_RELS", 500_000),
    );
    let home = env::home().expect("GRAPHDRILL_HOME");
    let opts = EnvOptions {
        name: "side-by-side".into(),
        neo4j_heap_mb: 2048,
        neo4j_pagecache_mb: 1024,
        ..EnvOptions::default()
    };
    let env = Environment::up(&home, &opts).await.expect("environment up");
    let state = env.state();
    let admin = |instance: &str| {
        let endpoint = state.neo4j[instance].clone();
        async move { env::neo4j::admin(&endpoint, "neo4j").await.expect("admin") }
    };
    let (source, recovery) = (admin("neo4j").await, admin("neo4j-recovery").await);
    for g in [&source, &recovery] {
        graphdrill::bolt::wipe(g).await.expect("wipe");
    }
    let mut rows = Vec::new();
    let mut row = |what: &str, tool: &'static str, secs: f64, bytes: Option<u64>, note: String| {
        println!(
            "{what:<24} {tool:<14} {secs:>9.1} s {:>12} {note}",
            bytes.map_or(String::new(), |b| format!(
                "{:.1} MiB",
                b as f64 / 1048576.0
            ))
        );
        rows.push(Row {
            what: what.into(),
            tool,
            secs,
            bytes,
            note,
        });
    };

    let (generated, secs) = timed(fixture::generate(&source, 7, nodes, rels)).await;
    generated.expect("generate");
    let entities = count(&source, "MATCH (n) RETURN count(n) AS n").await
        + count(&source, "MATCH ()-[r]->() RETURN count(r) AS n").await;
    row(
        "generate",
        "cypher",
        secs,
        None,
        format!("{entities} entities"),
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let setup = AgentSetup {
        dir: dir.path().to_path_buf(),
        log: dir.path().join("agent.log"),
        overrides: vec![
            ("GRAPH_AGENT_TRANSFER__JOB_DEADLINE".into(), "4h".into()),
            ("GRAPH_AGENT_TRANSFER__REQUEST_TIMEOUT".into(), "60s".into()),
        ],
        token: TOKEN.into(),
        keys: vec![("bench".into(), [7; 32])],
        clock_skew_ms: 0,
        retention: Default::default(),
        extra: String::new(),
    };
    let agent = AgentProcess::start(&env, &graphdrill::adapter::builtin::default_bin(), setup)
        .expect("graph-agent starts");

    // Full backups.
    let (full, secs) = timed(job(
        &agent,
        "/v1/backups",
        serde_json::json!({"kind": "full", "tier": "local"}),
    ))
    .await;
    let full_bytes = uploaded(&agent).await;
    row(
        "full backup",
        "graph-agent",
        secs,
        Some(full_bytes),
        format!(
            "phases {:?} (first run installs change capture and ids)",
            full.phases_ms
        ),
    );
    let import_dir = |instance: &str| state.dir.join(instance).join("import");
    let (exported, secs) = timed(call(
        &source,
        "CALL apoc.export.json.all('side-by-side.json', {useTypes: true})",
    ))
    .await;
    exported.expect("apoc export");
    let json = import_dir("neo4j").join("side-by-side.json");
    row(
        "full backup",
        "apoc export",
        secs,
        Some(size_of(&json)),
        "JSON, useTypes".into(),
    );

    // Restores.
    let (restored, secs) = timed(job(
        &agent,
        "/v1/restores",
        serde_json::json!({"backup": full.backup, "tier": "local"}),
    ))
    .await;
    row(
        "restore",
        "graph-agent",
        secs,
        None,
        format!(
            "phases {:?} (verify re-reads the whole graph)",
            restored.phases_ms
        ),
    );
    // An incremental backup after 1 % of the entities changed.
    let (touched, secs) = timed(async {
        source
            .run(query(
                "MATCH (n:Generated) WHERE id(n) % 100 = 0 \
                 CALL (n) { SET n.touched = true } IN TRANSACTIONS OF 5000 ROWS",
            ))
            .await?;
        source
            .run(query(
                "MATCH ()-[r]->() WHERE id(r) % 100 = 0 \
                 CALL (r) { SET r.touched = true } IN TRANSACTIONS OF 5000 ROWS",
            ))
            .await
    })
    .await;
    touched.expect("touch 1 %");
    row("change 1 %", "cypher", secs, None, String::new());
    let before = uploaded(&agent).await;
    let (inc, secs) = timed(job(
        &agent,
        "/v1/backups",
        serde_json::json!({"kind": "incremental", "tier": "local"}),
    ))
    .await;
    let inc_bytes = uploaded(&agent).await - before;
    row(
        "incremental backup",
        "graph-agent",
        secs,
        Some(inc_bytes),
        format!(
            "{:.2} % of the full backup's bytes; phases {:?}",
            100.0 * inc_bytes as f64 / full_bytes.max(1) as f64,
            inc.phases_ms
        ),
    );
    graphdrill::bolt::wipe(&recovery)
        .await
        .expect("wipe recovery");
    std::fs::copy(
        &json,
        import_dir("neo4j-recovery").join("side-by-side.json"),
    )
    .expect("copy the export");
    let labels = {
        let mut rows = source
            .execute(query("CALL db.labels() YIELD label RETURN label"))
            .await
            .expect("labels");
        let mut out = Vec::new();
        while let Some(r) = rows.next().await.expect("labels") {
            out.push(r.get::<String>("label").expect("label"));
        }
        out
    };
    // apoc.import.json may take very long: it gets a limit, and what it
    // imported by then is counted.
    let limit = Duration::from_secs(setting("SIDE_BY_SIDE_IMPORT_LIMIT_S", 1200));
    let (imported, secs) = timed(tokio::time::timeout(limit, async {
        // apoc.import.json requires a unique import id per label.
        for l in &labels {
            recovery
                .run(query(&format!(
                    "CREATE CONSTRAINT IF NOT EXISTS FOR (n:`{l}`) REQUIRE n.neo4jImportId IS UNIQUE"
                )))
                .await?;
        }
        call(&recovery, "CALL apoc.import.json('side-by-side.json')").await
    }))
    .await;
    let finished = match imported {
        Ok(done) => {
            done.expect("apoc import");
            true
        }
        Err(_) => false,
    };
    let recovery = admin("neo4j-recovery").await;
    let back = count(&recovery, "MATCH (n) RETURN count(n) AS n").await
        + count(&recovery, "MATCH ()-[r]->() RETURN count(r) AS n").await;
    row(
        "restore",
        "apoc import",
        secs,
        None,
        if finished {
            format!("{back} entities, import-id constraints included")
        } else {
            format!("NOT FINISHED: {back} entities imported when stopped at the limit")
        },
    );

    drop(agent);

    // neo4j-admin needs the database offline: the server is stopped for it.
    let dumps = dir.path().join("dumps");
    std::fs::create_dir_all(&dumps).expect("dump folder");
    let to = format!("--to-path={}", dumps.display());
    env.stop_component("neo4j").expect("stop neo4j");
    let (dumped, secs) = timed(async {
        env.neo4j_admin(
            "neo4j",
            &[
                "database",
                "dump",
                "neo4j",
                &to,
                "--overwrite-destination=true",
            ],
        )
    })
    .await;
    dumped.expect("dump");
    row(
        "full backup",
        "neo4j-admin",
        secs,
        Some(size_of(&dumps)),
        "dump, database offline".into(),
    );
    env.stop_component("neo4j-recovery").expect("stop recovery");
    let from = format!("--from-path={}", dumps.display());
    let (loaded, secs) = timed(async {
        env.neo4j_admin(
            "neo4j-recovery",
            &[
                "database",
                "load",
                "neo4j",
                &from,
                "--overwrite-destination=true",
            ],
        )
    })
    .await;
    loaded.expect("load");
    row(
        "restore",
        "neo4j-admin",
        secs,
        None,
        "load, database offline; server start not included".into(),
    );
    let (started, secs) = timed(env.start_component("neo4j-recovery")).await;
    started.expect("recovery starts");
    row(
        "server start after load",
        "neo4j",
        secs,
        None,
        String::new(),
    );

    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("reports")
        .join(format!("side-by-side-{nodes}-{rels}.json"));
    std::fs::write(
        &out,
        serde_json::to_vec_pretty(&rows).expect("rows serialize"),
    )
    .expect("write the results");
    println!("written to {}", out.display());
    env.down();
}
