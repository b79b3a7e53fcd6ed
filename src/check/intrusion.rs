//! `source-intrusion`: what the agent added to the user's source database
//! (property keys, labels, relationship types, nodes of its own, indexes),
//! found by the judge outside its own vocabulary. Reported always; failed
//! only past a scenario's `expect.intrusion` maximum.

use super::{CheckResult, Measure, Status};
use crate::graph::Foreign;
use crate::scenario::Intrusion;

/// The number `expect.intrusion` bounds: foreign names (property keys,
/// labels, relationship types, indexes and constraints, triggers) plus
/// nodes without the harness id.
pub fn additions(f: &Foreign) -> u64 {
    (f.props.len() + f.labels.len() + f.rel_types.len() + f.schema.len() + f.triggers.len()) as u64
        + f.unnamed_nodes.values().sum::<u64>()
}

pub fn check(foreign: Option<&Foreign>, limit: Intrusion) -> CheckResult {
    let name = "source-intrusion";
    let Some(f) = foreign else {
        return CheckResult::new(
            name,
            Status::Unknown,
            "the source database could not be read at the end",
        );
    };
    let n = additions(f);
    let kinds = format!(
        "{} property keys, {} labels, {} relationship types, {} nodes of its own, \
         {} indexes or constraints, {} triggers",
        f.props.len(),
        f.labels.len(),
        f.rel_types.len(),
        f.unnamed_nodes.values().sum::<u64>(),
        f.schema.len(),
        f.triggers.len()
    );
    let (status, summary) = match limit {
        Intrusion::Max(max) if n > max => (
            Status::Fail,
            format!("the agent added {n} things to the source (max {max}): {kinds}"),
        ),
        _ if n == 0 => (Status::Pass, "the agent added nothing to the source".into()),
        _ => (
            Status::Pass,
            format!("the agent added to the source: {kinds}"),
        ),
    };
    let mut details = Vec::new();
    let each =
        |what: &str, m: &std::collections::BTreeMap<String, u64>, details: &mut Vec<String>| {
            details.extend(
                m.iter()
                    .map(|(k, c)| format!("{what} `{k}` on {c} entities")),
            );
        };
    each("property", &f.props, &mut details);
    each("label", &f.labels, &mut details);
    each("relationship type", &f.rel_types, &mut details);
    details.extend(
        f.unnamed_nodes
            .iter()
            .map(|(k, c)| format!("{c} nodes `{k}` without `{}`", crate::graph::ID_PROPERTY)),
    );
    details.extend(f.schema.iter().map(|s| format!("schema: {s}")));
    details.extend(f.triggers.iter().map(|t| format!("trigger `{t}`")));
    let mut r = CheckResult::new(name, status, summary)
        .measure(match limit {
            Intrusion::Max(max) => Measure::count("additions", n).at_most(max as f64),
            Intrusion::Report => Measure::count("additions", n),
        })
        .details(details);
    r.measures.push(Measure::text("kinds", kinds));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreign() -> Foreign {
        Foreign {
            props: [("_gid".into(), 10)].into(),
            unnamed_nodes: [(":_Clock".into(), 1)].into(),
            ..Foreign::default()
        }
    }

    #[test]
    fn intrusion_is_reported_without_failing_by_default() {
        let r = check(Some(&foreign()), Intrusion::Report);
        assert_eq!(r.status, Status::Pass);
        assert!(
            r.details.iter().any(|d| d.contains("`_gid` on 10")),
            "{r:?}"
        );
    }

    #[test]
    fn intrusion_past_the_maximum_fails() {
        assert_eq!(
            check(Some(&foreign()), Intrusion::Max(2)).status,
            Status::Pass
        );
        assert_eq!(
            check(Some(&foreign()), Intrusion::Max(1)).status,
            Status::Fail
        );
        assert_eq!(check(None, Intrusion::Report).status, Status::Unknown);
    }
}
