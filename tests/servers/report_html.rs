//! The HTML report as a browser sees it: a realistic report written with
//! `report::write`, opened from disk in headless Chromium, must paint a
//! page and hold the timeline and a row for every check. Chromium is
//! installed from Debian's packages when missing; without it the test
//! fails, it never skips.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use graphdrill::api::{Failure, FailureClass, Job, JobKind, JobState};
use graphdrill::check::{CheckResult, Measure, Status};
use graphdrill::history::{Event, EventKind, InStorage};
use graphdrill::report::{self, Report, SCHEMA_VERSION};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Chromium may hang on a broken profile or display; it gets this long.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);
const T0: u64 = 1_750_000_000_000;

fn at(s: f64, kind: EventKind) -> Event {
    Event {
        time_ms: T0 + (s * 1000.0) as u64,
        kind,
    }
}

fn job(id: &str, state: JobState, from_s: u64, to_s: u64, failure: Option<Failure>) -> Box<Job> {
    Box::new(Job {
        id: id.into(),
        kind: JobKind::Backup,
        state,
        tier: "primary".into(),
        backup_kind: None,
        backup: (state == JobState::Succeeded).then(|| format!("backup-{id}")),
        created_ms: T0 + from_s * 1000,
        started_ms: Some(T0 + from_s * 1000 + 300),
        finished_ms: Some(T0 + to_s * 1000),
        deadline_ms: T0 + (from_s + 120) * 1000,
        attempts: if failure.is_some() { 3 } else { 1 },
        failure,
        phases_ms: [("cut".to_string(), 1_200), ("upload".to_string(), 8_400)].into(),
        progress: None,
        scheduled: None,
    })
}

/// A drill where S3 went away during a backup: the first backup failed,
/// the agent went quiet for a while, the second backup succeeded, and the
/// restore was too slow.
fn drill() -> Report {
    let mut events = vec![
        at(
            0.5,
            EventKind::StepStarted {
                step: 0,
                what: "backup full to primary".into(),
            },
        ),
        at(
            8.0,
            EventKind::FaultInjected {
                fault: 0,
                what: "partition agent ↔ s3".into(),
            },
        ),
        at(
            22.0,
            EventKind::Job {
                step: 0,
                job: job(
                    "j1",
                    JobState::Failed,
                    1,
                    22,
                    Some(Failure {
                        class: FailureClass::Network,
                        message: "connection reset by peer".into(),
                    }),
                ),
                seen: None,
                in_storage: None,
            },
        ),
        at(
            22.0,
            EventKind::StepFinished {
                step: 0,
                what: "backup full to primary".into(),
                ok: true,
                message: String::new(),
            },
        ),
        at(
            26.0,
            EventKind::FaultHealed {
                fault: 0,
                what: "partition agent ↔ s3".into(),
            },
        ),
        at(
            28.0,
            EventKind::StepStarted {
                step: 1,
                what: "backup full to primary".into(),
            },
        ),
        at(
            41.0,
            EventKind::Job {
                step: 1,
                job: job("j2", JobState::Succeeded, 28, 41, None),
                seen: None,
                in_storage: Some(InStorage {
                    restorable: true,
                    detail: "1 backup, 3 chunks, 20000 bytes".into(),
                }),
            },
        ),
        at(
            41.0,
            EventKind::StepFinished {
                step: 1,
                what: "backup full to primary".into(),
                ok: true,
                message: String::new(),
            },
        ),
        at(
            52.0,
            EventKind::Agent {
                action: "restart".into(),
            },
        ),
    ];
    // Every 2 s, but none from 12 s to 24 s.
    let beats = (0..60u64).step_by(2).filter(|s| !(12..24).contains(s));
    for (sequence, s) in (0..).zip(beats) {
        events.push(at(
            s as f64 + 0.1,
            EventKind::Heartbeat {
                sequence,
                sent_ms: T0 + s * 1000,
            },
        ));
    }
    events.sort_by_key(|e| e.time_ms);
    let checks = vec![
        CheckResult::new("rpo[step 1]", Status::Pass, "no acknowledged write lost")
            .measure(Measure::count("lost", 0u64).at_most(0.0)),
        CheckResult::new("sla/restore", Status::Fail, "restore took 95.2 s")
            .measure(Measure::seconds("restore time", 95_200).at_most_ms(60_000))
            .details(vec!["restore r1 of backup-j2: fetch 80.1 s".into()]),
        CheckResult::new(
            "consistency[step 2]/items",
            Status::Unknown,
            "no restore to judge",
        ),
    ];
    Report {
        schema: SCHEMA_VERSION,
        scenario: "s3-partition-during-backup".into(),
        description: "The agent loses S3 mid-backup; the next backup must succeed".into(),
        tags: vec!["nightly".into(), "s3".into()],
        seed: 20250615,
        started_ms: T0,
        finished_ms: T0 + 60_000,
        verdict: Report::verdict_of(&checks, false),
        error: None,
        checks,
        events,
        throughput: (0..60)
            .map(|s| if (9..25).contains(&s) { 0 } else { 300 + s * 7 })
            .collect(),
    }
}

/// Kills a process group on drop, so no Chromium helper outlives the test.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a negative pid signals only the group that
        // this test started; it reads no memory.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

/// Runs headless Chromium on `url` with `args`, its standard output into
/// `stdout`, in a fresh profile; stderr (dbus and GPU complaints) is
/// ignored. Killed after [`CHROMIUM_TIMEOUT`].
fn chromium(dir: &Path, name: &str, args: &[String], url: &str) -> ExitStatus {
    let profile = dir.join(format!("profile-{name}"));
    let stdout = File::create(dir.join(format!("{name}.out"))).unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
    let _group = Group(child.id() as i32);
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {name} did not finish within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_html_report_paints_in_chromium_with_its_timeline_and_every_check() {
    // Chromium loads both cores: nothing else runs meanwhile.
    let _serial = crate::common::serial_blocking();
    crate::common::ensure_debian_package("chromium", Path::new(CHROMIUM));
    let dir = tempfile::tempdir().unwrap();
    let report = drill();
    let written = report::write(dir.path(), &report).unwrap();
    let html = dir.path().join("report.html");
    assert!(written.contains(&html), "{written:?}");
    let url = format!("file://{}", html.display());

    let began = Instant::now();
    let shot = dir.path().join("shot.png");
    chromium(
        dir.path(),
        "screenshot",
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000".into(),
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    assert!(
        png.len() > 10_000,
        "a {} byte screenshot is too small to show the report",
        png.len()
    );

    let status = chromium(dir.path(), "dom", &["--dump-dom".into()], &url);
    let dom = std::fs::read_to_string(dir.path().join("dom.out")).unwrap();
    assert!(
        dom.contains("<svg id=\"timeline\""),
        "no timeline in the DOM (chromium {status}):\n{dom}"
    );
    for check in &report.checks {
        let row = format!("data-check=\"{}\"", check.name);
        assert!(dom.contains(&row), "no row for {}:\n{dom}", check.name);
    }
    eprintln!("chromium took {:?} for both runs", began.elapsed());
}
