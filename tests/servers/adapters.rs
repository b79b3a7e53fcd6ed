//! Agents graphdrill did not build, drilled through its adapters: a
//! third-party agent in Python speaking the documented control API, and the
//! two command agents of `agents/`, judged for real, with the checks they
//! cannot be judged on skipped.

use serde_json::Value;

use crate::common::serial_blocking;
use crate::drill::run;

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"))
}

#[test]
fn a_minimal_python_agent_is_drilled_through_the_http_adapter() {
    let _guard = serial_blocking();
    let (code, reports, stderr) = run(
        &[
            "tests/servers/scenarios/third-party-agent.toml",
            "--agent",
            "minimal-http",
        ],
        &[],
    );
    let [report] = &reports[..] else {
        panic!("one report expected: {stderr}")
    };
    // Its restores are judged like graph-agent's: nothing lost, no write
    // torn, every entity back, but not the schema, which it never copies.
    assert_eq!(check(report, "rpo[step 3]")["status"], "pass", "{report:#}");
    let consistency = check(report, "consistency[step 3]");
    assert_eq!(consistency["status"], "fail", "{report:#}");
    assert!(
        consistency["summary"].as_str().unwrap().starts_with(
            "restored graph differs: 0 missing, 0 extra, 0 changed, 0 dangling, 2 schema"
        ),
        "{consistency:#}"
    );
    for d in consistency["details"].as_array().unwrap() {
        assert!(
            d.as_str()
                .unwrap()
                .starts_with("missing schema CREATE RANGE INDEX"),
            "{d}"
        );
    }
    assert_eq!(
        check(report, "recovery-sla[step 3]/local")["status"],
        "pass"
    );
    // What it cannot be judged on is skipped, saying why.
    for (name, why) in [
        (
            "agent-claims",
            "minimal-http names no stored objects for its backups",
        ),
        (
            "no-unclaimed-backups",
            "minimal-http keeps no repository graphdrill reads",
        ),
        ("retries-bounded", "minimal-http reports no attempts"),
    ] {
        let c = check(report, name);
        assert_eq!(c["status"], "skipped", "{c:#}");
        assert_eq!(c["summary"], why);
    }
    assert_eq!(report["verdict"], "fail");
    assert_eq!(code, 1, "{stderr}");
}

/// The backups people run, as shipped in `agents/`, drilled on smoke end
/// to end: what they are found to do is `docs/findings.md`.
#[test]
fn the_apoc_export_and_the_offline_dump_are_drilled_on_smoke() {
    let _guard = serial_blocking();
    let (code, reports, stderr) = run(&["scenarios/smoke", "--agent", "apoc-export"], &[]);
    let [report] = &reports[..] else {
        panic!("one report expected: {stderr}")
    };
    // GraphML brings dates, times, durations and points back as strings.
    let consistency = check(report, "consistency[step 3]");
    assert_eq!(consistency["status"], "fail", "{report:#}");
    let details = consistency["details"].to_string();
    assert!(
        details.contains("DATE \\\"1815-12-10\\\" → STRING"),
        "{details}"
    );
    assert_eq!(check(report, "rpo[step 3]")["status"], "pass", "{report:#}");
    assert_eq!(
        check(report, "agent-claims")["status"],
        "pass",
        "{report:#}"
    );
    assert_eq!(code, 1, "{stderr}");

    // Stopped, dumped, started: everything acknowledged before the stop is
    // back, and the writes during the downtime failed.
    let (code, reports, stderr) = run(&["scenarios/smoke", "--agent", "neo4j-admin-dump"], &[]);
    let [report] = &reports[..] else {
        panic!("one report expected: {stderr}")
    };
    assert_eq!(report["verdict"], "pass", "{report:#}");
    assert_eq!(code, 0, "{stderr}");
    let rpo = check(report, "rpo[step 3]")["summary"].as_str().unwrap();
    assert!(rpo.contains(" 0 lost, 0 phantom, 0 torn"), "{rpo}");
    assert_eq!(check(report, "retries-bounded")["status"], "skipped");
}
