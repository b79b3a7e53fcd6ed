//! The container backend on a real Docker engine: a private dockerd
//! (`scripts/private-dockerd`, stopped by pid), images built here without a
//! registry (`scripts/build-local-images`), and `graphdrill run --backend
//! docker` judged against the drill tests' local run of the same scenarios. Skips, saying why, only where
//! no engine can be started or run a container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A private engine with the local images, for this test binary.
struct Engine {
    dir: PathBuf,
    host: String,
    images: PathBuf,
    /// An empty GRAPHDRILL_HOME for docker runs: with no tools installed,
    /// a passing drill can only have run on the images.
    home: PathBuf,
}

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

fn stop_private_engine(dir: &Path) {
    let _ = Command::new(format!("{ROOT}/scripts/private-dockerd"))
        .arg("stop")
        .arg(dir)
        .output();
    let _ = std::fs::remove_dir_all(dir);
}

extern "C" fn stop_engine() {
    if let Some(Ok(e)) = ENGINE.get() {
        stop_private_engine(&e.dir);
    }
}

/// Stops engines left by test binaries that were killed.
fn stop_stale_engines() {
    for entry in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
        if crate::common::left_by_dead_test(&entry.file_name().to_string_lossy(), "gd-dockerd-") {
            stop_private_engine(&entry.path());
        }
    }
}

/// The engine, or why there is none here.
fn engine() -> Result<&'static Engine, String> {
    ENGINE
        .get_or_init(start_engine)
        .as_ref()
        .map_err(Clone::clone)
}

fn start_engine() -> Result<Engine, String> {
    let on_path = |bin: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !on_path("dockerd") {
        // SAFETY: geteuid cannot fail and touches no memory.
        if unsafe { libc::geteuid() } != 0 {
            return Err("dockerd is missing, and installing it (apt) needs root".into());
        }
        crate::common::ensure_debian_package("docker.io", Path::new("/usr/sbin/dockerd"));
    }
    stop_stale_engines();
    let dir = PathBuf::from(format!("/tmp/gd-dockerd-{}", std::process::id()));
    let out = Command::new(format!("{ROOT}/scripts/private-dockerd"))
        .arg("start")
        .arg(&dir)
        .output()
        .map_err(|e| format!("scripts/private-dockerd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "no Docker engine could be started here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // SAFETY: registers a plain function to run at process exit.
    unsafe { libc::atexit(stop_engine) };
    let host = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("DOCKER_HOST=").map(str::to_string))
        .ok_or("private-dockerd printed no DOCKER_HOST")?;

    // The images: from the tools the local backend installs.
    let home = graphdrill::env::home().unwrap();
    let tools = graphdrill::env::Tools::new(&home);
    tools.ensure(&graphdrill::env::Tool::ALL).unwrap();
    let started = Instant::now();
    let mut build = Command::new(format!("{ROOT}/scripts/build-local-images"));
    build
        .arg(crate::common::agent_bin())
        .arg(home.join("tools"))
        .env("DOCKER_HOST", &host);
    let out = succeeded(build);
    eprintln!(
        "local images built in {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );
    let images = dir.join("images.toml");
    std::fs::write(&images, &out.stdout).unwrap();

    // An engine that starts but cannot run a container (no cgroups, no
    // namespaces) is no engine for these tests either.
    let probe = docker(
        &host,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "graphdrill/toxiproxy:local",
            "-version",
        ],
    )
    .output()
    .map_err(|e| format!("the docker client: {e}"))?;
    if !probe.status.success() {
        return Err(format!(
            "the private engine cannot run a container here: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    let empty_home = dir.join("home");
    std::fs::create_dir_all(&empty_home).unwrap();
    Ok(Engine {
        dir,
        host,
        images,
        home: empty_home,
    })
}

/// `None` (with the reason printed) where no engine can run containers.
fn engine_or_skip(test: &str) -> Option<&'static Engine> {
    match engine() {
        Ok(e) => Some(e),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// Runs `cmd` and asserts that it succeeded, showing its stderr if not.
fn succeeded(mut cmd: Command) -> Output {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The docker client, talking to the engine at `host`.
fn docker(host: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args).env("DOCKER_HOST", host);
    cmd
}

/// Lines of `docker ARGS` output: ids of containers, volumes, networks.
fn listed(host: &str, args: &[&str]) -> Vec<String> {
    String::from_utf8_lossy(&succeeded(docker(host, args)).stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What a run may leave on the engine: must be nothing.
fn leftovers(host: &str) -> Vec<String> {
    let mut left = listed(host, &["ps", "-aq"]);
    left.extend(listed(host, &["volume", "ls", "-q"]));
    left.extend(listed(
        host,
        &["network", "ls", "-q", "--filter", "type=custom"],
    ));
    left
}

fn graphdrill(engine: &Engine, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graphdrill"));
    cmd.args(args)
        .current_dir(ROOT)
        .env("GRAPHDRILL_AGENT_BIN", crate::common::agent_bin())
        .env("GRAPHDRILL_IMAGES", &engine.images)
        .env("GRAPHDRILL_HOME", &engine.home)
        .env("DOCKER_HOST", &engine.host)
        .env("GRAPHDRILL_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// One `graphdrill run --backend docker` in environment `env_name` (its
/// own unless one of that name runs): exit code, reports by scenario, wall
/// time, stderr.
fn run(
    engine: &Engine,
    env_name: &str,
    scenarios: &[&str],
    envs: &[(&str, &str)],
) -> (i32, BTreeMap<String, Value>, Duration, String) {
    let reports = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run",
        "--backend",
        "docker",
        "--env-name",
        env_name,
        "--report-dir",
        reports.path().to_str().unwrap(),
    ];
    args.extend_from_slice(scenarios);
    let started = Instant::now();
    let out = graphdrill(engine, &args, envs).output().unwrap();
    let took = started.elapsed();
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(reports.path()).unwrap().flatten() {
        if entry.file_name() == "latest" || !entry.path().is_dir() {
            continue;
        }
        let report: Value =
            serde_json::from_slice(&std::fs::read(entry.path().join("report.json")).unwrap())
                .unwrap();
        found.insert(report["scenario"].as_str().unwrap().to_string(), report);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), found, took, stderr)
}

/// Each check's name and status: what "the same verdict" compares.
fn verdicts(report: &Value) -> BTreeMap<String, String> {
    crate::drill::verdicts(report).into_iter().collect()
}

/// The three the issue names, and clock skew (libfaketime mounted into the
/// agent's container).
const SCENARIOS: [&str; 4] = [
    "scenarios/smoke",
    "scenarios/access-denied",
    "scenarios/region-loss",
    "scenarios/clock-skew",
];

#[test]
fn smoke_access_denied_region_loss_and_clock_skew_give_the_same_verdicts_on_docker_as_on_local() {
    let _serial = crate::common::serial_blocking();
    let Some(engine) = engine_or_skip("same verdicts") else {
        return;
    };
    if graphdrill::adapter::builtin::faketime_lib().is_none() {
        let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
        crate::common::ensure_debian_package("faketime", Path::new(lib));
    }
    let env_name = format!("docker-test-{}", std::process::id());
    let (code_d, docker_reports, took_d, err_d) = run(engine, &env_name, &SCENARIOS, &[]);
    assert_eq!(code_d, 0, "docker backend:\n{err_d}");
    assert!(
        leftovers(&engine.host).is_empty(),
        "the docker run left {:?}",
        leftovers(&engine.host)
    );
    // The local backend's verdicts: from the one local run of every
    // shipped scenario, which the drill tests judge too.
    let local = crate::drill::shipped_run();
    assert_eq!(local.code, 0, "local backend:\n{}", local.stderr);
    let local_reports = &local.reports;
    assert_eq!(docker_reports.len(), SCENARIOS.len(), "{err_d}");
    assert!(
        !engine.home.join("tools").exists(),
        "the docker runs installed tools"
    );
    // The skew reached the agent inside its container: its heartbeats
    // carry its own clock, 600 s ahead of the runner's.
    let skewed = docker_reports["clock-skew"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "heartbeat")
        .map(|e| e["sent_ms"].as_i64().unwrap() - e["time_ms"].as_i64().unwrap())
        .filter(|ahead| (590_000..610_000).contains(ahead))
        .count();
    assert!(skewed > 0, "no heartbeat from a skewed clock");
    for (name, d) in &docker_reports {
        assert_eq!(d["verdict"], "pass", "{name} on docker: {d}");
        // Every check ran on both backends and agreed.
        assert_eq!(verdicts(d), verdicts(&local_reports[name]), "{name}");
    }
    let secs = |r: &Value| {
        (r["finished_ms"].as_u64().unwrap() - r["started_ms"].as_u64().unwrap()) as f64 / 1000.0
    };
    eprintln!(
        "smoke alone: docker {:.1} s, local {:.1} s; all four with the environment's start and \
         stop: docker {:.1} s",
        secs(&docker_reports["smoke"]),
        secs(&local_reports["smoke"]),
        took_d.as_secs_f64(),
    );
}

/// Starts a docker drill and waits until the agent's container is up.
fn drill_until_agent_runs(engine: &Engine, env_name: &str) -> Child {
    // Under the engine's folder, removed with it.
    let reports = engine.dir.join(format!("reports-{env_name}"));
    let child = graphdrill(
        engine,
        &[
            "run",
            "--backend",
            "docker",
            "--env-name",
            env_name,
            "--report-dir",
            reports.to_str().unwrap(),
            "scenarios/smoke",
        ],
        &[],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let agent = "label=graphdrill.component=graph-agent";
    while listed(&engine.host, &["ps", "-q", "--filter", agent]).is_empty() {
        assert!(Instant::now() < deadline, "the agent's container never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    child
}

#[test]
fn an_interrupted_or_killed_docker_drill_leaves_no_container() {
    let _serial = crate::common::serial_blocking();
    let Some(engine) = engine_or_skip("no containers left") else {
        return;
    };
    // Ctrl-C mid-drill: graphdrill removes everything before it exits.
    let mut child = drill_until_agent_runs(engine, "docker-test-interrupted");
    let running = listed(&engine.host, &["ps", "-q"]).len();
    assert_eq!(running, 6, "5 servers and the agent");
    // SAFETY: signals the child this test spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "an interrupted drill exits 3");
    assert_eq!(
        leftovers(&engine.host),
        Vec::<String>::new(),
        "after Ctrl-C"
    );

    // SIGKILL: nothing runs graphdrill's teardown, so the label sweep of
    // `env down` (or of the next start) must find them.
    let mut child = drill_until_agent_runs(engine, "docker-test-killed");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!listed(&engine.host, &["ps", "-aq"]).is_empty());
    succeeded(graphdrill(
        engine,
        &["env", "down", "--name", "docker-test-killed"],
        &[],
    ));
    assert_eq!(
        leftovers(&engine.host),
        Vec::<String>::new(),
        "after SIGKILL and env down"
    );
}

/// The checks still fail on this backend: a deliberate agent bug is caught
/// (in the running environment `env_name`).
#[cfg(feature = "defects")]
fn a_defective_agent_fails_the_drill_on_docker_too(engine: &Engine, env_name: &str) {
    let (code, reports, _, err) = run(
        engine,
        env_name,
        &["scenarios/smoke"],
        &[("GRAPH_AGENT_DEFECTS", "early-success")],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(verdicts(&reports["smoke"])["agent-claims"], "fail", "{err}");
}

/// A drill pausing the agent's container (`docker pause`) in the running
/// environment `env_name`.
fn a_paused_agent_container_sends_no_heartbeat_until_resumed(engine: &Engine, env_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("pause.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"agent-pause\"\ndescription = \"docker pause of the agent\"\n\
             [fixture]\nfile = \"{ROOT}/fixtures/every-type.cypher\"\n\
             [[step]]\nwait = \"2s\"\n[[step]]\nagent = \"pause\"\n[[step]]\nwait = \"5s\"\n\
             [[step]]\nagent = \"resume\"\n[[step]]\nwait = \"2s\"\n\
             [[step]]\nbackup = {{ kind = \"full\", tier = \"primary\" }}\n"
        ),
    )
    .unwrap();
    let (code, reports, _, err) = run(engine, env_name, &[scenario.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    let events = reports["agent-pause"]["events"].as_array().unwrap();
    let at = |action: &str| {
        events
            .iter()
            .find(|e| e["event"] == "agent" && e["action"] == action)
            .unwrap_or_else(|| panic!("no `{action}` event"))["time_ms"]
            .as_u64()
            .unwrap()
    };
    let (paused, resumed) = (at("pause"), at("resume"));
    let beats: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "heartbeat")
        .map(|e| e["sent_ms"].as_u64().unwrap())
        .collect();
    // Allow a second at each edge: a beat on its way as the container froze,
    // and the one due at once on thaw, before the runner logs "resume".
    // Unpaused, the 1 s heartbeat would send 3 in the 3 s between.
    assert!(
        beats.iter().any(|&t| t < paused),
        "no heartbeat before the pause"
    );
    let frozen = beats
        .iter()
        .filter(|&&t| t > paused + 1_000 && t + 1_000 < resumed)
        .count();
    assert_eq!(
        frozen, 0,
        "paused {paused}, resumed {resumed}, beats {beats:?}"
    );
    assert!(
        beats.iter().any(|&t| t > resumed),
        "no heartbeat after resume"
    );
}

/// One detached environment serves several drills (each removes its agent's
/// container and leaves the servers running), then `env down` from another
/// process stops it. One environment for all of it: starting one costs more
/// than the drills.
#[test]
fn a_detached_docker_environment_serves_drills_until_env_down_from_another_process() {
    let _serial = crate::common::serial_blocking();
    let Some(engine) = engine_or_skip("detached env") else {
        return;
    };
    let name = "docker-test-detached";
    succeeded(graphdrill(
        engine,
        &["env", "up", "--backend", "docker", "--name", name],
        &[],
    ));
    // `env up` has exited; its servers run on, unfollowed.
    let containers = || {
        let mut ids = listed(&engine.host, &["ps", "-aq"]);
        ids.sort();
        ids
    };
    let servers = containers();
    assert_eq!(servers.len(), 5);

    #[cfg(feature = "defects")]
    a_defective_agent_fails_the_drill_on_docker_too(engine, name);
    a_paused_agent_container_sends_no_heartbeat_until_resumed(engine, name);
    assert_eq!(
        containers(),
        servers,
        "the drills left only the environment's servers"
    );
    let console = engine
        .home
        .join("envs")
        .join(name)
        .join("toxiproxy/toxiproxy.log");
    let before = std::fs::read_to_string(&console).unwrap();
    succeeded(graphdrill(engine, &["env", "down", "--name", name], &[]));
    assert_eq!(leftovers(&engine.host), Vec::<String>::new());
    // `env down` followed the output it caused: Toxiproxy's own shutdown line.
    let after = std::fs::read_to_string(&console).unwrap();
    let shutdown = &after[before.len()..];
    assert!(
        shutdown.contains("Shutdown started"),
        "toxiproxy.log gained: {shutdown:?}"
    );
}
