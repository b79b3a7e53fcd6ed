//! JUnit XML: one test suite per drill, one test case per check, so a CI
//! server (Jenkins, GitLab) lists a drill's checks like unit tests. A
//! failed check carries its measured values, so the CI page alone says why.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::Report;
use crate::check::{CheckResult, Status};

pub fn render(report: &Report) -> String {
    let suite = escape(&format!("graphdrill.{}", report.scenario));
    let count = |status| report.checks.iter().filter(|c| c.status == status).count();
    let errors = usize::from(report.error.is_some());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    let _ = writeln!(
        out,
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{}\" errors=\"{errors}\" \
         skipped=\"{}\" timestamp=\"{}\" time=\"{:.3}\">",
        report.checks.len() + errors,
        count(Status::Fail),
        count(Status::Unknown) + count(Status::Skipped),
        timestamp(report.started_ms),
        report.finished_ms.saturating_sub(report.started_ms) as f64 / 1000.0,
    );
    out.push_str("    <properties>\n");
    for (name, value) in [
        ("seed", report.seed.to_string()),
        ("verdict", name_of(&report.verdict)),
    ] {
        let _ = writeln!(
            out,
            "      <property name=\"{name}\" value=\"{}\"/>",
            escape(&value)
        );
    }
    out.push_str("    </properties>\n");
    for check in &report.checks {
        testcase(&mut out, &suite, check);
    }
    if let Some(error) = &report.error {
        let _ = writeln!(
            out,
            "    <testcase classname=\"{suite}\" name=\"drill\" time=\"0\">\n      \
             <error message=\"{0}\" type=\"drill\">{0}</error>\n    </testcase>",
            escape(error)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn testcase(out: &mut String, suite: &str, check: &CheckResult) {
    let name = escape(&check.name);
    let summary = escape(&check.summary);
    let _ = write!(
        out,
        "    <testcase classname=\"{suite}\" name=\"{name}\" time=\"0\">"
    );
    match check.status {
        Status::Pass => {}
        Status::Fail => {
            let _ = write!(
                out,
                "\n      <failure message=\"{summary}\" type=\"{name}\">{}</failure>\n    ",
                escape(&failure_text(check))
            );
        }
        Status::Unknown | Status::Skipped => {
            let _ = write!(out, "\n      <skipped message=\"{summary}\"/>\n    ");
        }
    }
    out.push_str("</testcase>\n");
}

/// Every measure as `name = value (threshold)`, then the details.
fn failure_text(check: &CheckResult) -> String {
    let mut text = String::new();
    for m in &check.measures {
        let _ = write!(text, "{} = {}", m.name, m.display);
        if let Some(t) = &m.threshold {
            let _ = write!(text, " ({t})");
        }
        text.push('\n');
    }
    if !check.details.is_empty() && !text.is_empty() {
        text.push('\n');
    }
    for d in &check.details {
        text.push_str(d);
        text.push('\n');
    }
    text
}

/// UTC without a zone suffix, the form the JUnit schema's `timestamp` takes.
fn timestamp(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.trim_end_matches('Z').to_owned()
}

/// Escapes text for XML 1.0 attributes and content (HTML5 accepts the same).
/// Control characters other than tab, newline and carriage return are not
/// allowed in XML 1.0 even as references, so they are dropped.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            '\u{FFFE}' | '\u{FFFF}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The name serde gives a unit variant (`pass`, `backup`, `timeout`), so
/// the reports use the words `report.json` uses.
pub(super) fn name_of(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Measure;
    use crate::report::SCHEMA_VERSION;

    fn report(checks: Vec<CheckResult>, error: Option<&str>) -> Report {
        Report {
            schema: SCHEMA_VERSION,
            scenario: "s3-outage".into(),
            description: "S3 goes away during a backup".into(),
            tags: vec!["nightly".into()],
            seed: 42,
            started_ms: 1_700_000_000_000,
            finished_ms: 1_700_000_061_500,
            verdict: Report::verdict_of(&checks, error.is_some()),
            error: error.map(Into::into),
            checks,
            events: Vec::new(),
            throughput: Vec::new(),
        }
    }

    fn attr<'a>(xml: &'a str, tag: &str, name: &str) -> &'a str {
        let start = xml.find(&format!("<{tag} ")).expect("tag");
        let rest = &xml[start..];
        let key = format!(" {name}=\"");
        let from = rest.find(&key).expect("attribute") + key.len();
        let len = rest[from..].find('"').unwrap();
        &rest[from..from + len]
    }

    #[test]
    fn a_failure_carries_every_measured_value_against_its_threshold_and_the_details() {
        let check = CheckResult::new("rpo[step 4]", Status::Fail, "lost 3 acknowledged writes")
            .measure(Measure::count("lost", 3u64).at_most(0.0))
            .measure(Measure::count("restored", 997u64))
            .details(vec!["writer 2: ops 41..43 missing".into()]);
        let xml = render(&report(vec![check], None));
        assert!(xml.contains(
            "<failure message=\"lost 3 acknowledged writes\" type=\"rpo[step 4]\">\
             lost = 3 (≤ 0)\nrestored = 997\n\nwriter 2: ops 41..43 missing\n</failure>"
        ));
        assert!(xml.contains("<testcase classname=\"graphdrill.s3-outage\" name=\"rpo[step 4]\""));
    }

    #[test]
    fn markup_characters_are_escaped_and_control_characters_dropped() {
        let check = CheckResult::new("c", Status::Fail, "a<b & \"c\" 'd'>\u{1}\u{7}\tz");
        let xml = render(&report(vec![check], None));
        assert!(xml.contains("message=\"a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\tz\""));
        assert!(!xml.contains('\u{1}') && !xml.contains('\u{7}'));
    }

    #[test]
    fn the_suite_counts_match_the_checks_and_a_broken_drill_is_an_error() {
        let checks = vec![
            CheckResult::new("a", Status::Pass, "ok"),
            CheckResult::new("b", Status::Fail, "bad"),
            CheckResult::new("c", Status::Fail, "bad"),
            CheckResult::new("d", Status::Unknown, "no restore to judge"),
        ];
        let xml = render(&report(checks, Some("agent did not start")));
        assert_eq!(attr(&xml, "testsuite", "tests"), "5");
        assert_eq!(attr(&xml, "testsuite", "failures"), "2");
        assert_eq!(attr(&xml, "testsuite", "errors"), "1");
        assert_eq!(attr(&xml, "testsuite", "skipped"), "1");
        assert_eq!(attr(&xml, "testsuite", "time"), "61.500");
        assert_eq!(attr(&xml, "testsuite", "timestamp"), "2023-11-14T22:13:20");
        assert_eq!(xml.matches("<testcase ").count(), 5);
        assert_eq!(xml.matches("<failure ").count(), 2);
        assert_eq!(xml.matches("<skipped ").count(), 1);
        assert!(xml.contains("name=\"drill\""));
        assert!(xml.contains("<error message=\"agent did not start\""));
        assert!(xml.contains("<property name=\"verdict\" value=\"fail\"/>"));
        assert!(xml.contains("<property name=\"seed\" value=\"42\"/>"));
    }
}
