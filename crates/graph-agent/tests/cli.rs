//! graph-agent's exit codes, one test per code of `graph_agent_api::exit`
//! (the README's table). None of these needs a server: the jobs run
//! against a local tier, and Neo4j is never reached.

use std::path::Path;
use std::process::{Command, Output};

use graph_agent_api::exit;

fn graph_agent(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graph-agent"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("GRAPH_AGENT_LOG", "warn")
        .output()
        .expect("graph-agent runs")
}

/// A valid configuration with one local tier; Neo4j's port is closed.
fn config(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("neo4j.password"), "unused").unwrap();
    std::fs::write(dir.join("key.hex"), "11".repeat(32)).unwrap();
    std::fs::write(dir.join("token"), "t".repeat(32)).unwrap();
    let file = dir.join("agent.toml");
    let d = dir.display();
    std::fs::write(
        &file,
        format!(
            r#"
[agent]
id = "cli-test"
port = 7450
environment = "test"
state_dir = "{d}/state"

[control]
token_file = "{d}/token"

[heartbeat]
url = "http://127.0.0.1:9/heartbeat"

[neo4j]
uri = "127.0.0.1:9"
user = "graph_agent"
password_file = "{d}/neo4j.password"

[encryption]
key_id = "k1"
key_file = "{d}/key.hex"

[[tier]]
name = "local"
kind = "local"
path = "{d}/snapshots"
retention = "7d"
restore_sla = "5m"
"#
        ),
    )
    .unwrap();
    file
}

#[test]
fn a_job_that_succeeds_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = graph_agent(&config(dir.path()), &["prune", "--tier", "local"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(exit::SUCCESS.into()), "{stdout}");
    assert!(stdout.contains("\"succeeded\""), "{stdout}");
}

#[test]
fn a_job_that_fails_exits_1_and_prints_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = graph_agent(
        &config(dir.path()),
        &["verify", "--backup", "no-such-backup", "--tier", "local"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(exit::FAILED.into()), "{stdout}");
    assert!(
        stdout.contains("\"failed\"") && stdout.contains("no-such-backup"),
        "{stdout}"
    );
}

#[test]
fn a_config_it_cannot_read_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    let out = graph_agent(&missing, &["prune", "--tier", "local"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::BAD_INPUT.into()), "{stderr}");
    assert!(stderr.contains("nowhere.toml"), "{stderr}");
}

#[test]
fn a_kind_it_does_not_know_is_a_usage_error_exiting_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = graph_agent(
        &config(dir.path()),
        &["backup", "--kind", "differential", "--tier", "local"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::BAD_INPUT.into()), "{stderr}");
    assert!(stderr.contains("differential"), "{stderr}");
}
