//! Reading and validating scenario files.

use std::path::{Path, PathBuf};

use super::{Action, FaultKind, Scenario, Step};

/// Why a scenario file is invalid: where, which field, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The field's path, e.g. `step[2].fault.kind`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            // Not a position in the file: the file itself.
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            _ => write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.path,
                self.message
            ),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Reads and validates one scenario file.
pub fn load(file: &Path) -> Result<Scenario, ScenarioError> {
    let at = |line, column, path: &str, message: String| ScenarioError {
        file: file.to_path_buf(),
        line,
        column,
        path: path.to_string(),
        message,
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| at(0, 0, "(file)", format!("cannot read: {e}")))?;
    let de = toml::Deserializer::parse(&text).map_err(|e| {
        let (line, column) = position(&text, e.span().map_or(0, |s| s.start));
        at(line, column, "(syntax)", e.message().to_string())
    })?;
    let mut scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string().replace(".step[", "step[");
        let inner = e.into_inner();
        // An error of a whole step (no action, or two) points at its header:
        // toml spans the array of steps.
        let whole_step = path
            .strip_prefix("step[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse().ok());
        let (line, column) = match whole_step {
            Some(i) => step_position(&text, i),
            None => position(&text, inner.span().map_or(0, |s| s.start)),
        };
        at(line, column, &path, inner.message().to_string())
    })?;
    scenario.file = file.to_path_buf();
    validate(&scenario, &text).map_err(|(step, path, message)| {
        let (line, column) = match step {
            Some(i) => step_position(&text, i),
            None => (1, 1),
        };
        at(line, column, &path, message)
    })?;
    Ok(scenario)
}

/// Loads every `*.toml` under each path (a file or a folder), in name
/// order; all errors are returned, not only the first.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => errors.push(file_error(p, e.to_string())),
            }
        } else if p.extension().is_none() && p.with_extension("toml").is_file() {
            // `scenarios/smoke` names `scenarios/smoke.toml`.
            files.push(p.with_extension("toml"));
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        match load(&f) {
            Ok(s) => out.push(s),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn file_error(p: &Path, message: String) -> ScenarioError {
    ScenarioError {
        file: p.to_path_buf(),
        line: 0,
        column: 0,
        path: "(file)".into(),
        message,
    }
}

/// 1-based line and column of byte `offset`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where the `index`-th `[[step]]` header is.
fn step_position(text: &str, index: usize) -> (usize, usize) {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[step]]"))
        .nth(index)
        .map_or((1, 1), |(n, _)| (n + 1, 1))
}

type Invalid = (Option<usize>, String, String);

/// Checks what serde cannot: the parameters each fault kind needs,
/// references between steps, the fixture.
fn validate(s: &Scenario, _text: &str) -> Result<(), Invalid> {
    let top = |path: &str, message: String| (None, path.to_string(), message);
    match (&s.fixture.file, &s.fixture.generate) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(top(
                "fixture",
                "set exactly one of `file` and `generate`".into(),
            ));
        }
        (Some(f), None) => {
            let path = s.fixture_path().unwrap_or_else(|| f.clone());
            if !path.is_file() {
                return Err(top(
                    "fixture.file",
                    format!(
                        "`{}` does not exist (paths are relative to the scenario file)",
                        path.display()
                    ),
                ));
            }
        }
        (None, Some(g)) if g.nodes == 0 && g.rels > 0 => {
            return Err(top("fixture.generate", "relationships need nodes".into()));
        }
        _ => {}
    }
    if let Some(w) = &s.workload {
        if w.writers == 0 || w.rate.is_nan() || w.rate <= 0.0 {
            return Err(top(
                "workload",
                "`writers` and `rate` must be above 0".into(),
            ));
        }
        if w.mix.total() == 0 {
            return Err(top(
                "workload.mix",
                "at least one weight must be above 0".into(),
            ));
        }
    }
    let mut ids: Vec<&str> = Vec::new();
    for (i, step) in s.steps.iter().enumerate() {
        let bad = |field: &str, message: String| (Some(i), format!("step[{i}]{field}"), message);
        if matches!(step.action, Action::WaitWorkload) && s.workload.is_none() {
            return Err(bad(
                ".workload",
                "there is no [workload] to wait for".into(),
            ));
        }
        if let Some(r) = step.action.reads_backup()
            && r != "latest"
            && !ids.contains(&r)
        {
            return Err(bad(
                ".backup",
                format!(
                    "`{r}` names no earlier backup step (use `latest` or an earlier step's `id`)"
                ),
            ));
        }
        if let Some(id) = &step.id {
            if !matches!(step.action, Action::Backup(_)) {
                return Err(bad(".id", "only backup steps take an id".into()));
            }
            ids.push(id);
        }
        if let Action::Verify(v) = &step.action
            && let Some(x) = v.sample
            && (x.is_nan() || x <= 0.0 || x > 1.0)
        {
            return Err(bad(".verify.sample", format!("{x} is not in (0, 1]")));
        }
        if let Action::Fault(f) = &step.action {
            check_fault(f).map_err(|(field, m)| bad(&format!(".fault.{field}"), m))?;
        }
    }
    if s.expect.rpo_max.is_some() && s.workload.is_none() {
        return Err(top(
            "expect.rpo_max",
            "RPO is measured against the workload's writes: add a [workload]".into(),
        ));
    }
    for (i, g) in s.expect.subgraph.iter().enumerate() {
        if !g.cypher.contains("id") {
            return Err(top(
                &format!("expect.subgraph[{i}].cypher"),
                "must return the nodes' `drill_id` as column `id`".into(),
            ));
        }
    }
    Ok(())
}

/// The parameters each fault kind needs.
fn check_fault(f: &super::FaultStep) -> Result<(), (&'static str, String)> {
    let needs_link = !matches!(f.kind, FaultKind::AccessDenied);
    if needs_link && f.link.is_none() {
        return Err((
            "link",
            format!(
                "`{}` needs a `link` (neo4j, neo4j-recovery, s3-primary, s3-archive, control)",
                super::word(&f.kind)
            ),
        ));
    }
    if f.kind == FaultKind::AccessDenied && f.region.is_none() {
        return Err((
            "region",
            "`access_denied` needs a `region` (primary, archive)".into(),
        ));
    }
    let (field, present) = match f.kind {
        FaultKind::Latency => ("latency", f.latency.is_some()),
        FaultKind::Bandwidth => ("rate_kb_s", f.rate_kb_s.is_some()),
        FaultKind::SlowClose => ("delay", f.delay.is_some()),
        _ => ("", true),
    };
    if !present {
        return Err((field, format!("`{}` needs `{field}`", super::word(&f.kind))));
    }
    if f.heartbeat.is_some() && f.link != Some(super::LinkName::Control) {
        return Err((
            "heartbeat",
            "heartbeat expectations apply to faults on the `control` link".into(),
        ));
    }
    Ok(())
}

impl Scenario {
    /// The fixture file, resolved against the scenario file's folder.
    pub fn fixture_path(&self) -> Option<PathBuf> {
        let f = self.fixture.file.as_ref()?;
        Some(match self.file.parent() {
            Some(dir) if f.is_relative() => dir.join(f),
            _ => f.clone(),
        })
    }

    /// The steps, each with its index.
    pub fn timeline(&self) -> impl Iterator<Item = (usize, &Step)> {
        self.steps.iter().enumerate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.cypher"), "CREATE (:A);").unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    const GOOD: &str = r#"
name = "t"
description = "a test"
[fixture]
file = "f.cypher"
[workload]
duration = "2s"
[[step]]
id = "first"
backup = { kind = "full", tier = "primary" }
[[step]]
fault = { kind = "latency", link = "s3-primary", latency = "100ms", for = "1s" }
[[step]]
restore = { backup = "first", tier = "primary" }
"#;

    #[test]
    fn a_good_scenario_loads_with_defaults() {
        let (_d, p) = write(GOOD);
        let s = load(&p).unwrap();
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.seed, 1);
        assert_eq!(s.workload.unwrap().writers, 2);
        assert_eq!(s.expect.restore_sla.primary.0.as_secs(), 1800);
    }

    #[test]
    fn an_unknown_fault_kind_lists_the_valid_ones_with_its_position() {
        let (_d, p) = write(&GOOD.replace("\"latency\", link", "\"latncy\", link"));
        let e = load(&p).unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (12, "step[1].fault.kind"), "{e}");
        assert!(
            e.message.contains("latency") && e.message.contains("access_denied"),
            "{e}"
        );
        assert!(
            e.to_string().starts_with(&format!("{}:12:", p.display())),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let (_d, p) = write(&GOOD.replace("[workload]", "[workload]\nwriterz = 3"));
        let e = load(&p).unwrap_err();
        assert_eq!(e.path, "workload.writerz", "{e}");
        assert_eq!(e.line, 7, "{e}");
        assert!(
            e.message.contains("writerz") && e.message.contains("writers"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_duration_names_the_field() {
        let (_d, p) = write(&GOOD.replace("\"2s\"", "\"two seconds\""));
        let e = load(&p).unwrap_err();
        assert_eq!(e.path, "workload.duration", "{e}");
        assert!(e.message.contains("not a duration"), "{e}");
    }

    #[test]
    fn semantic_errors_point_at_their_step() {
        let (_d, p) = write(&GOOD.replace("backup = \"first\"", "backup = \"nope\""));
        let e = load(&p).unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (13, "step[2].backup"), "{e}");
        let (_d, p) = write(&GOOD.replace("latency = \"100ms\", ", ""));
        let e = load(&p).unwrap_err();
        assert_eq!(e.path, "step[1].fault.latency", "{e}");
        let (_d, p) = write(&format!("{GOOD}[[step]]\nwait = \"1s\"\nheal = \"all\"\n"));
        let e = load(&p).unwrap_err();
        assert!(e.message.contains("found heal, wait"), "{e}");
        assert_eq!((e.line, e.path.as_str()), (15, "step[3]"), "{e}");
    }

    #[test]
    fn a_syntax_error_has_a_position() {
        let (_d, p) = write("name = \"x\"\ndescription = \n");
        let e = load(&p).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn a_missing_fixture_file_is_named() {
        let (_d, p) = write(&GOOD.replace("f.cypher", "missing.cypher"));
        let e = load(&p).unwrap_err();
        assert_eq!(e.path, "fixture.file");
        assert!(e.message.contains("missing.cypher"), "{e}");
    }
}
