//! The judge never links the agent it judges, and the agent knows nothing
//! of its judge: the workspace's crate graph is the proof, read from Cargo.

use std::collections::BTreeMap;
use std::process::Command;

/// Each workspace package → the packages it depends on, of any kind
/// (normal, dev, build), as Cargo resolves the manifests.
fn dependencies() -> BTreeMap<String, Vec<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn neither_the_harness_nor_the_agent_depends_on_the_other() {
    let deps = dependencies();
    assert!(deps.contains_key("graph-agent"), "{deps:?}");
    for (from, to) in [
        ("graphdrill", "graph-agent"),
        ("graph-agent", "graphdrill"),
        ("graph-agent-api", "graph-agent"),
        ("graph-agent-api", "graphdrill"),
    ] {
        assert!(
            !deps[from].iter().any(|d| d == to),
            "`{from}` depends on `{to}`: {:?}",
            deps[from]
        );
    }
    // What they do share is the control API's types, and only those.
    assert!(deps["graphdrill"].iter().any(|d| d == "graph-agent-api"));
    assert!(deps["graph-agent"].iter().any(|d| d == "graph-agent-api"));
}
