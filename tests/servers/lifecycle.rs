//! Starting and stopping whole environments through the `graphdrill` binary,
//! and the clear errors of bad input: nothing is left running, no panic.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use graphdrill::env::process::group_alive;
use graphdrill::env::toxiproxy::ToxiproxyServer;
use graphdrill::env::{self, EnvError, EnvState, Procs, Tool, Tools};

fn graphdrill() -> Command {
    Command::new(env!("CARGO_BIN_EXE_graphdrill"))
}

/// Every port an environment listens on.
fn ports(state: &EnvState) -> Vec<u16> {
    let port = |addr: &str| addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let mut ports: Vec<u16> = state.neo4j.values().map(|n| port(&n.bolt)).collect();
    for s3 in state.s3.values() {
        ports.push(port(&s3.url));
        ports.extend(s3.internal_ports.values());
    }
    ports.push(port(&state.toxiproxy_api));
    ports.extend(state.links.values().map(|l| port(&l.listen)));
    ports
}

/// Live processes whose command line mentions `dir`.
fn processes_using(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

fn assert_all_gone(state: &EnvState) {
    assert_eq!(processes_using(&state.dir), Vec::<u32>::new());
    for (name, p) in &state.processes {
        assert!(!group_alive(p.pid), "{name} (pid {}) survived", p.pid);
    }
    for port in ports(state) {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is still taken"
        );
    }
}

fn assert_all_up(state: &EnvState) {
    assert_eq!(state.processes.len(), 5, "{:?}", state.processes.keys());
    for (name, p) in &state.processes {
        assert!(group_alive(p.pid), "{name} is not running");
    }
}

#[test]
fn env_down_from_another_process_stops_everything_and_frees_its_ports() {
    // A whole environment starts: nothing else runs meanwhile.
    let _serial = crate::common::serial_blocking();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("env");
    let up = graphdrill()
        .args(["env", "up", "--dir"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // Its log lines went to a pipe, not a terminal: plain text, no colour.
    let log = String::from_utf8_lossy(&up.stderr);
    assert!(log.contains(" INFO "), "{log}");
    assert!(!log.contains('\x1b'), "ANSI codes off a terminal: {log:?}");
    let state = EnvState::load(&d).unwrap();
    assert_all_up(&state);

    let status = graphdrill()
        .args(["env", "status", "--dir"])
        .arg(&d)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success());
    assert_eq!(text.matches(" up ").count(), 5, "{text}");

    a_server_dying_mid_drill_is_an_environment_failure(&d, &state);

    let down = graphdrill()
        .args(["env", "down", "--dir"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_all_gone(&state);

    let after = graphdrill()
        .args(["env", "status", "--dir"])
        .arg(&d)
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&after.stderr).contains("no environment"));
}

/// A drill in the running environment at `d`; its recovery database is
/// killed under it: the run exits 3 and names the server, not a failed check.
fn a_server_dying_mid_drill_is_an_environment_failure(d: &Path, state: &EnvState) {
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("dies.toml");
    std::fs::write(
        &scenario,
        r#"
name = "dies"
description = "the recovery database is killed before the restore"
[fixture]
generate = { nodes = 10, rels = 5 }
[[step]]
wait = "2s"
[[step]]
backup = { kind = "full", tier = "primary" }
[[step]]
restore = { backup = "latest", tier = "primary" }
"#,
    )
    .unwrap();
    let reports = work.path().join("reports");
    let run = graphdrill()
        .args(["run", "--env-dir"])
        .arg(d)
        .arg("--report-dir")
        .arg(&reports)
        .arg(&scenario)
        .env("GRAPHDRILL_AGENT_BIN", crate::common::agent_bin())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once the timeline has begun.
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = || {
        let events = std::fs::read_dir(&reports)
            .ok()?
            .flatten()
            .find_map(|e| std::fs::read_to_string(e.path().join("events.jsonl")).ok())?;
        events.contains("step_started").then_some(())
    };
    while started().is_none() {
        assert!(
            Instant::now() < deadline,
            "the drill never started its timeline"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let recovery = state.processes["neo4j-recovery"].pid;
    // SAFETY: SIGKILL to the server's own process group.
    unsafe { libc::kill(-(recovery as libc::pid_t), libc::SIGKILL) };
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("dies: the environment failed") && stderr.contains("neo4j-recovery"),
        "{stderr}"
    );
}

#[test]
fn sigint_stops_a_foreground_environment() {
    // A whole environment starts: nothing else runs meanwhile.
    let _serial = crate::common::serial_blocking();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("env");
    let mut child = graphdrill()
        .args(["env", "up", "--foreground", "--dir"])
        .arg(&d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        let ready = line.contains("running in the foreground");
        seen.push(line);
        if ready {
            break;
        }
    }
    // Keep reading so the child never writes into a closed pipe.
    let drain = std::thread::spawn(move || stderr.map_while(Result::ok).collect::<Vec<_>>());
    let state = EnvState::load(&d).unwrap_or_else(|e| panic!("{e}\n{}", seen.join("\n")));
    assert_all_up(&state);

    // SAFETY: sends SIGINT to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "env up did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let rest = drain.join().unwrap();
    assert!(status.success(), "{status}: {}", rest.join("\n"));
    assert_all_gone(&state);
}

#[test]
fn unwritable_home_is_a_clear_error() {
    let out = graphdrill()
        .args(["env", "install"])
        .env("GRAPHDRILL_HOME", "/proc/graphdrill-home")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/proc/graphdrill-home"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_prerequisite_is_named_with_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let out = graphdrill()
        .args(["env", "install"])
        .env("GRAPHDRILL_HOME", home.path())
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`java` is required"), "{err}");
    assert!(err.contains("hint"), "{err}");
}

#[test]
fn every_command_explains_itself() {
    for args in [
        vec!["--help"],
        vec!["env", "--help"],
        vec!["env", "install", "--help"],
        vec!["env", "up", "--help"],
        vec!["env", "status", "--help"],
        vec!["env", "down", "--help"],
    ] {
        let out = graphdrill().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

/// Starts a lone Toxiproxy server whose API is `api`.
fn start_toxiproxy(dir: &Path, api: &str) -> Result<(), EnvError> {
    let home = env::home().unwrap();
    let tools = Tools::new(&home);
    tools.ensure(&[Tool::Toxiproxy]).unwrap();
    let server = Arc::new(ToxiproxyServer::new(dir.to_path_buf(), api, Vec::new()));
    let procs = Procs::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = env::Backend::Local(tools);
    let started = rt.block_on(env::start(server, &backend, dir, &procs));
    assert!(
        procs.lock().unwrap().is_empty(),
        "a failed start left a process"
    );
    started
}

#[test]
fn port_taken_by_someone_else_is_reported_with_the_servers_log() {
    let dir = tempfile::tempdir().unwrap();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let api = format!("http://{}", squatter.local_addr().unwrap());
    match start_toxiproxy(dir.path(), &api) {
        Err(EnvError::StartFailed { name, tail, .. }) => {
            assert_eq!(name, "toxiproxy");
            assert!(tail.contains("address already in use"), "{tail}");
        }
        other => panic!("expected a failed start, got {other:?}"),
    }
}

#[test]
fn component_crashing_at_start_is_reported_and_nothing_is_left_running() {
    // A whole environment starts: nothing else runs meanwhile.
    let _serial = crate::common::serial_blocking();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("env");
    // A 1 MiB heap makes the JVM exit at once: a real crash at start.
    let out = graphdrill()
        .args(["env", "up", "--neo4j-heap-mb", "1", "--dir"])
        .arg(&d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("exited with exit status: 1"), "{err}");
    assert!(err.contains("heap"), "the log tail is missing: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // The failed start stopped what it had started.
    assert_eq!(processes_using(&d), Vec::<u32>::new());
}
