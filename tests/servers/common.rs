//! What the tests on real servers share: one real environment, started on
//! first use and stopped when the binary exits, and the lock that orders
//! them. Tests that inject faults or load the machine (drills, whole
//! environments, containers, Chromium) hold [`serial`]; the others hold
//! [`healthy`], so one test's fault never lands in another's measurement.
//! (Running drills side by side was tried: on two cores, jobs then missed
//! their deadlines and timeouts fired, so heavy tests take turns.)

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use std::time::Duration;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use graphdrill::env::{self, EnvOptions, Environment, Link, load_s3_credentials};
use graphdrill::s3::Bucket;

static ENV: OnceLock<Environment> = OnceLock::new();
static FAULTS: RwLock<()> = RwLock::const_new(());

extern "C" fn stop_shared_env() {
    if let Some(env) = ENV.get() {
        env.down();
    }
}

/// Stops environments left by test binaries that were killed (no atexit ran).
fn sweep_stale_test_envs(home: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(home.join("envs")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if left_by_dead_test(&name, "test-") {
            if let Ok(stale) = Environment::attach(home, &entry.path()) {
                stale.down();
            }
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `name` is `<prefix><pid>` for a test process that is gone: what
/// a killed test binary left behind (its atexit never ran).
pub fn left_by_dead_test(name: &str, prefix: &str) -> bool {
    match name
        .strip_prefix(prefix)
        .and_then(|p| p.parse::<i32>().ok())
    {
        // SAFETY: signal 0 only checks whether the owner still runs.
        Some(pid) => (unsafe { libc::kill(pid, 0) }) != 0,
        None => false,
    }
}

/// The shared environment, started on first call.
pub fn shared_env() -> &'static Environment {
    ENV.get_or_init(|| {
        // Started on its own thread: the caller may already be inside a runtime.
        let env = std::thread::spawn(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let home = env::home().unwrap();
            sweep_stale_test_envs(&home);
            let opts = EnvOptions {
                name: format!("test-{}", std::process::id()),
                ..EnvOptions::default()
            };
            rt.block_on(Environment::up(&home, &opts))
        })
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("shared environment failed to start: {e}"));
        // SAFETY: registers a plain function to run at process exit.
        unsafe { libc::atexit(stop_shared_env) };
        env
    })
}

/// Held by a test that injects faults or loads the machine: no other
/// test on real servers runs meanwhile.
pub async fn serial() -> RwLockWriteGuard<'static, ()> {
    FAULTS.write().await
}

/// [`serial`], for a test outside any async runtime.
pub fn serial_blocking() -> RwLockWriteGuard<'static, ()> {
    FAULTS.blocking_write()
}

/// Held by a test that needs a healthy shared environment: no fault test
/// runs meanwhile.
pub async fn healthy() -> RwLockReadGuard<'static, ()> {
    FAULTS.read().await
}

/// The agent's view of a region's bucket: its own credentials, through its link.
pub fn agent_bucket(env: &Environment, region: &str, timeout: Duration) -> Bucket {
    let state = env.state();
    let s3 = &state.s3[region];
    let link = Link::parse(region).unwrap();
    let creds = load_s3_credentials(&s3.agent_credentials_file).unwrap();
    let url = format!("http://{}", state.link(link).listen);
    Bucket::new(&url, &creds, &s3.bucket, timeout).unwrap()
}

/// The harness's view of a region's bucket: admin, direct.
pub fn admin_bucket(env: &Environment, region: &str) -> Bucket {
    let state = env.state();
    let s3 = &state.s3[region];
    let creds = load_s3_credentials(&s3.admin_credentials_file).unwrap();
    Bucket::new(&s3.url, &creds, &s3.bucket, Duration::from_secs(10)).unwrap()
}

/// A Bolt session as the agent, through its link to `instance`.
pub async fn agent_graph(env: &Environment, instance: &str) -> Result<neo4rs::Graph, String> {
    let state = env.state();
    let n = &state.neo4j[instance];
    let pw = env::read_secret(&n.agent_password_file).unwrap();
    let link = Link::parse(instance).unwrap();
    env::neo4j::connect(&state.link(link).listen, &n.agent_user, &pw, "neo4j")
        .await
        .map_err(|e| e.to_string())
}

/// A Bolt session as the harness's admin, direct.
pub async fn admin_graph(env: &Environment, instance: &str) -> neo4rs::Graph {
    env::neo4j::admin(&env.state().neo4j[instance], "neo4j")
        .await
        .unwrap()
}

/// Runs `q` (returning a column `n`) without neo4rs's hidden retries.
/// Errors as text: the tests compare and search them.
pub async fn scalar(graph: &neo4rs::Graph, q: neo4rs::Query) -> Result<i64, String> {
    env::neo4j::query_i64(graph, q)
        .await
        .map_err(|e| e.to_string())
}

/// Makes sure `file` is there, installing Debian's `package` with apt-get
/// if not (once per package, the package lists once per run); panics with
/// apt's own words when that fails, so a test never passes without what it
/// checks.
pub fn ensure_debian_package(package: &str, file: &Path) {
    static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if file.exists() || done.iter().any(|p| p == package) {
        assert!(
            file.exists(),
            "`{package}` was installed but {} is missing",
            file.display()
        );
        return;
    }
    // The package lists are fetched once, before the first install.
    let update = done.is_empty().then_some(&["update", "-q"][..]);
    done.push(package.to_string());
    let install = ["install", "-y", "-q", "--no-install-recommends", package];
    for args in update.into_iter().chain([&install[..]]) {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("this test needs `{package}`: apt-get {}: {e}", args[0]));
        assert!(
            out.status.success(),
            "this test needs `{package}`: apt-get {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        file.exists(),
        "apt-get installed `{package}`, but {} is missing",
        file.display()
    );
}

/// The graph-agent executable the tests drive: built beside them by the
/// workspace's `cargo test` (graphdrill never links the agent: it runs it).
pub fn agent_bin() -> std::path::PathBuf {
    let bin = graphdrill::adapter::builtin::default_bin();
    assert!(
        bin.is_file(),
        "graph-agent not at {} (run the tests with `cargo test --workspace`)",
        bin.display()
    );
    bin
}

/// What `value` lacks or has wrong against `schema`, a part of the JSON
/// Schema or OpenAPI document `root`: the subset the project's documents
/// use (`$ref`, `type`, `enum`, `const`, `required`, `properties`,
/// `additionalProperties`, `items`). Empty when it conforms.
pub fn schema_violations(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value;
    if let Some(r) = schema["$ref"].as_str() {
        let target = root
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("`{r}` names nothing in the document"));
        return schema_violations(root, target, value, at);
    }
    let is = |ty: &str| match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_u64() || value.is_i64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| is(t)) {
        return vec![format!("{at}: {value} is not of type {types:?}")];
    }
    let mut out = Vec::new();
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is none of {allowed:?}"));
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        out.push(format!("{at}: {value} is not {c}"));
    }
    if let Some(obj) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                out.push(format!("{at}: `{name}` is missing"));
            }
        }
        for (k, v) in obj {
            let here = format!("{at}.{k}");
            match (&schema["properties"][k], &schema["additionalProperties"]) {
                (Value::Null, Value::Bool(false)) => out.push(format!("{here}: not in the schema")),
                (Value::Null, extra @ Value::Object(_)) => {
                    out.extend(schema_violations(root, extra, v, &here))
                }
                (Value::Null, _) => {}
                (s, _) => out.extend(schema_violations(root, s, v, &here)),
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            out.extend(schema_violations(root, schema, v, &format!("{at}[{i}]")));
        }
    }
    out
}
