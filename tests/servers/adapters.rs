//! Agents graphdrill did not build, drilled through its adapters: a
//! third-party agent in Python speaking the documented control API, and the
//! APOC export of `agents/`, judged for real, with the checks they cannot be
//! judged on skipped.

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
    // Its API refuses a missing, wrong or wrongly-schemed token.
    assert_eq!(check(report, "api-auth")["status"], "pass", "{report:#}");
    assert_eq!(report["verdict"], "fail");
    assert_eq!(code, 1, "{stderr}");
}

/// The online export people run, as shipped in `agents/`, drilled on smoke
/// end to end: what it is found to do is `docs/findings.md`. (The offline
/// dump, whose three server restarts take a minute, is drilled nightly.)
#[test]
fn the_apoc_export_is_drilled_on_smoke_and_found_to_lose_types() {
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
    let auth = check(report, "api-auth");
    assert_eq!(auth["status"], "skipped");
    assert_eq!(auth["summary"], "apoc-export has no control API");
    assert_eq!(code, 1, "{stderr}");
}
