//! Real servers for the agent's own tests, started the way any user starts
//! them: `graphdrill env up` run as a program (graph-agent never links the
//! harness), found through its `env.json`, stopped with `env down` when the
//! test binary exits.

#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use graph_agent::s3::{Bucket, S3Credentials};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

static ENV: OnceLock<Env> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::const_new(());

/// One environment: its name and its `env.json`.
pub struct Env {
    name: String,
    state: Value,
}

/// The graphdrill executable the workspace built beside this test.
fn graphdrill() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("graphdrill");
    assert!(
        bin.is_file(),
        "graphdrill not at {} (run the tests with `cargo test --workspace`)",
        bin.display()
    );
    bin
}

fn graphdrill_env(args: &[&str]) -> String {
    let out = Command::new(graphdrill())
        .arg("env")
        .args(args)
        .output()
        .expect("graphdrill runs");
    assert!(
        out.status.success(),
        "graphdrill env {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

extern "C" fn stop_env() {
    if let Some(env) = ENV.get() {
        let _ = Command::new(graphdrill())
            .args(["env", "down", "--name", &env.name])
            .output();
    }
}

/// The shared environment, started on first call.
pub fn shared_env() -> &'static Env {
    ENV.get_or_init(|| {
        let name = format!("agent-test-{}", std::process::id());
        graphdrill_env(&["up", "--name", &name]);
        // SAFETY: registers a plain function to run at process exit.
        unsafe { libc::atexit(stop_env) };
        let state = graphdrill_env(&["status", "--name", &name, "--json"]);
        Env {
            name,
            state: serde_json::from_str(&state).expect("env.json"),
        }
    })
}

/// Held by every test: they share one pair of databases and one bucket.
pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

fn text(v: &Value, path: &str) -> String {
    v.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("env.json has no {path}"))
        .to_string()
}

fn secret(path: String) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim_end()
        .to_string()
}

impl Env {
    async fn connect(&self, bolt: &str, user: &str, password: &str, db: &str) -> neo4rs::Graph {
        let config = neo4rs::ConfigBuilder::default()
            .uri(bolt)
            .user(user)
            .password(password)
            .db(db)
            .max_connections(4)
            .build()
            .unwrap();
        neo4rs::Graph::connect(config).unwrap()
    }

    /// A session to `db` of `instance` as the environment's admin, direct.
    pub async fn admin(&self, instance: &str, db: &str) -> neo4rs::Graph {
        let n = format!("/neo4j/{instance}");
        let (bolt, user) = (
            text(&self.state, &format!("{n}/bolt")),
            text(&self.state, &format!("{n}/admin_user")),
        );
        let pw = secret(text(&self.state, &format!("{n}/admin_password_file")));
        self.connect(&bolt, &user, &pw, db).await
    }

    /// A session to `instance` as the agent's user, through its link.
    pub async fn agent(&self, instance: &str) -> neo4rs::Graph {
        let n = format!("/neo4j/{instance}");
        let user = text(&self.state, &format!("{n}/agent_user"));
        let pw = secret(text(&self.state, &format!("{n}/agent_password_file")));
        let listen = text(&self.state, &format!("/links/agent-{instance}/listen"));
        self.connect(&listen, &user, &pw, "neo4j").await
    }

    /// The agent's view of a region's bucket: its own key, through its link.
    pub fn agent_bucket(&self, region: &str) -> Bucket {
        let r = format!("/s3/{region}");
        let creds: S3Credentials = serde_json::from_str(&secret(text(
            &self.state,
            &format!("{r}/agent_credentials_file"),
        )))
        .unwrap();
        let url = format!(
            "http://{}",
            text(&self.state, &format!("/links/agent-{region}/listen"))
        );
        let bucket = text(&self.state, &format!("{r}/bucket"));
        Bucket::new(&url, &creds, &bucket, Duration::from_secs(10)).unwrap()
    }
}

/// Deletes every node, relationship, constraint and index (but the lookup
/// indexes) of `graph`, in batches.
pub async fn wipe(graph: &neo4rs::Graph) {
    for q in [
        "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS",
        "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS",
    ] {
        graph.run(neo4rs::query(q)).await.unwrap();
    }
    for (show, kind) in [
        ("SHOW CONSTRAINTS YIELD name", "CONSTRAINT"),
        (
            "SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name",
            "INDEX",
        ),
    ] {
        let mut rows = graph.execute(neo4rs::query(show)).await.unwrap();
        let mut names = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            names.push(row.get::<String>("name").unwrap());
        }
        for name in names {
            graph
                .run(neo4rs::query(&format!("DROP {kind} `{name}` IF EXISTS")))
                .await
                .unwrap();
        }
    }
}
