//! The HTML report: one self-contained page (inline CSS, no script, nothing
//! fetched from the network) that still opens years later from an archived
//! run folder. It shows the verdict first, then a timeline of what was done
//! to the system and how it answered, then every check with what it
//! measured. Hover text lives in SVG `<title>` elements, so no script is
//! needed.

use std::fmt::Write;
use std::time::Duration;

use super::Report;
use super::junit::{escape, name_of};
use crate::api::Job;
use crate::check::{CheckResult, Status};
use crate::history::{Event, EventKind};

pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let verdict = name_of(&report.verdict);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · {} · graphdrill</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        verdict.to_uppercase(),
        escape(&report.scenario),
    );
    header(&mut out, report);
    out.push_str("<section>\n<h2>Timeline</h2>\n");
    Timeline::new(report).render(&mut out);
    out.push_str(LEGEND);
    out.push_str("</section>\n");
    checks(&mut out, &report.checks);
    event_log(&mut out, report);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn header(out: &mut String, report: &Report) {
    let verdict = name_of(&report.verdict);
    let count = |s| report.checks.iter().filter(|c| c.status == s).count();
    let _ = write!(
        out,
        "<header>\n<div class=\"badge {verdict}\">{}</div>\n<div>\n<h1>{}</h1>\n",
        verdict.to_uppercase(),
        escape(&report.scenario)
    );
    if !report.description.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"description\">{}</p>",
            escape(&report.description)
        );
    }
    if !report.tags.is_empty() {
        out.push_str("<ul class=\"tags\">");
        for tag in &report.tags {
            let _ = write!(out, "<li>{}</li>", escape(tag));
        }
        out.push_str("</ul>\n");
    }
    let duration = report.finished_ms.saturating_sub(report.started_ms);
    let _ = write!(
        out,
        "<dl class=\"facts\">\n<dt>Seed</dt><dd><code>{}</code></dd>\n\
         <dt>Started</dt><dd>{}</dd>\n<dt>Duration</dt><dd>{}</dd>\n\
         <dt>Checks</dt><dd>{} passed, {} failed, {} unknown, {} skipped</dd>\n</dl>\n</div>\n</header>\n",
        report.seed,
        started(report.started_ms),
        humantime::format_duration(Duration::from_secs(duration.div_ceil(1000))),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Unknown),
        count(Status::Skipped),
    );
    if let Some(error) = &report.error {
        let _ = writeln!(
            out,
            "<div class=\"error\"><strong>The drill broke off before its end.</strong>\
             <pre>{}</pre></div>",
            escape(error)
        );
    }
}

/// `2023-11-14 22:13:20 UTC`.
fn started(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

fn checks(out: &mut String, checks: &[CheckResult]) {
    out.push_str(
        "<section>\n<h2>Checks</h2>\n<table id=\"checks\">\n<thead><tr><th>Status</th>\
         <th>Check</th><th>Summary</th><th>Measured</th><th>Details</th></tr></thead>\n<tbody>\n",
    );
    if checks.is_empty() {
        out.push_str("<tr><td colspan=\"5\" class=\"none\">No check ran.</td></tr>\n");
    }
    for check in checks {
        let status = name_of(&check.status);
        let name = escape(&check.name);
        let _ = write!(
            out,
            "<tr class=\"check {status}\" data-check=\"{name}\">\
             <td><span class=\"status {status}\">{status}</span></td>\
             <td class=\"name\"><code>{name}</code></td><td>{}</td><td>",
            escape(&check.summary)
        );
        if check.measures.is_empty() {
            out.push_str("<span class=\"none\">—</span>");
        } else {
            out.push_str("<ul class=\"measures\">");
            for m in &check.measures {
                let _ = write!(
                    out,
                    "<li><span class=\"measure\">{}</span> <strong>{}</strong>",
                    escape(&m.name),
                    escape(&m.display)
                );
                if let Some(t) = &m.threshold {
                    let _ = write!(
                        out,
                        " <span class=\"vs\">vs</span> <span class=\"threshold\">{}</span>",
                        escape(t)
                    );
                }
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        }
        out.push_str("</td><td>");
        if check.details.is_empty() {
            out.push_str("<span class=\"none\">—</span>");
        } else {
            // A failed check's findings are what the reader came for.
            let open = if check.status == Status::Fail {
                " open"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<details{open}><summary>{} finding{}</summary><ul>",
                check.details.len(),
                if check.details.len() == 1 { "" } else { "s" }
            );
            for d in &check.details {
                let _ = write!(out, "<li>{}</li>", escape(d));
            }
            out.push_str("</ul></details>");
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// Every event but heartbeats, in order: what the timeline shows, as text
/// that can be searched and copied.
fn event_log(out: &mut String, report: &Report) {
    let events: Vec<&Event> = report
        .events
        .iter()
        .filter(|e| !matches!(e.kind, EventKind::Heartbeat { .. }))
        .collect();
    let _ = write!(
        out,
        "<section>\n<details class=\"events\"><summary>Events ({}, heartbeats left out)</summary>\n\
         <table>\n<tbody>\n",
        events.len()
    );
    for e in events {
        let (what, text) = match &e.kind {
            EventKind::StepStarted { step, what } => ("step", format!("{step} started: {what}")),
            EventKind::StepFinished {
                step,
                what,
                ok,
                message,
            } => {
                let result = if *ok { "finished" } else { "FAILED" };
                let mut text = format!("{step} {result}: {what}");
                if !message.is_empty() {
                    let _ = write!(text, " — {message}");
                }
                ("step", text)
            }
            EventKind::FaultInjected { fault, what } => {
                ("fault", format!("{fault} injected: {what}"))
            }
            EventKind::FaultHealed { fault, what } => ("fault", format!("{fault} healed: {what}")),
            EventKind::Job {
                job, in_storage, ..
            } => {
                let mut text = format!("{}: {}", job_name(job), name_of(&job.state));
                if let Some(f) = &job.failure {
                    let _ = write!(text, " ({}: {})", name_of(&f.class), f.message);
                }
                if let Some(found) = in_storage.as_ref().filter(|f| !f.restorable) {
                    let _ = write!(text, "; not restorable from storage: {}", found.detail);
                }
                ("job", text)
            }
            EventKind::Queryable { step, job } => {
                ("restore", format!("{job} queryable (step {step})"))
            }
            EventKind::Agent { action } => ("agent", action.clone()),
            EventKind::Heartbeat { .. } => continue,
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"time\">{}</td><td>{what}</td><td>{}</td></tr>",
            offset(e.time_ms, report.started_ms),
            escape(&text)
        );
    }
    out.push_str("</tbody>\n</table>\n</details>\n</section>\n");
}

/// `backup (full) job j1 on primary`.
fn job_name(job: &Job) -> String {
    let kind = match job.backup_kind {
        Some(k) => format!("{} ({})", name_of(&job.kind), name_of(&k)),
        None => name_of(&job.kind),
    };
    format!("{kind} job {} on {}", job.id, job.tier)
}

/// Seconds since the drill started, e.g. `+12.3 s`.
fn offset(t: u64, start: u64) -> String {
    format!("{:+.1} s", (t as f64 - start as f64) / 1000.0)
}

/// Seconds, e.g. `4.2 s`.
fn span(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

const WIDTH: f64 = 1200.0;
/// Room for the lane names.
const LEFT: f64 = 96.0;
const RIGHT: f64 = 16.0;
const ROW: f64 = 22.0;
const TICK_LANE: f64 = 26.0;
const WORKLOAD_LANE: f64 = 64.0;
const AXIS: f64 = 26.0;

/// Maps the drill's time onto the plot's x axis.
struct Timeline<'a> {
    report: &'a Report,
    start: u64,
    end: u64,
    /// Lane bands and grid lines, drawn behind the body.
    back: String,
    /// The SVG's body, written lane by lane; its height is known at the end.
    body: String,
    y: f64,
    lanes: usize,
}

/// A stretch of time in a lane: a fault or a job.
struct Bar {
    start: u64,
    end: u64,
    class: &'static str,
    /// Extra attributes, e.g. ` data-state="failed"`.
    attrs: String,
    label: String,
    title: String,
}

impl<'a> Timeline<'a> {
    fn new(report: &'a Report) -> Self {
        Self {
            report,
            start: report.started_ms,
            end: report.finished_ms.max(report.started_ms + 1),
            back: String::new(),
            body: String::new(),
            y: 0.0,
            lanes: 0,
        }
    }

    fn x(&self, t: u64) -> f64 {
        let frac = t.saturating_sub(self.start) as f64 / (self.end - self.start) as f64;
        LEFT + frac.min(1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn render(mut self, out: &mut String) {
        let faults = self.faults();
        self.bars("faults", faults);
        let jobs = self.jobs();
        self.bars("jobs", jobs);
        self.steps();
        self.heartbeats();
        self.workload();
        self.axis();
        let _ = write!(
            out,
            "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {h}\" \
             width=\"{WIDTH}\" height=\"{h}\" role=\"img\" aria-label=\"Timeline of the drill\">\n\
             {}{}</svg>\n",
            self.back,
            self.body,
            h = self.y,
        );
    }

    /// Starts a lane of `height`: its band, its name and, when it has
    /// nothing to show, a word saying so.
    fn lane(&mut self, name: &str, height: f64, empty: bool) -> f64 {
        let y = self.y;
        let band = if self.lanes % 2 == 1 {
            "band alt"
        } else {
            "band"
        };
        self.lanes += 1;
        let _ = writeln!(
            self.back,
            "<rect class=\"{band}\" x=\"0\" y=\"{y}\" width=\"{WIDTH}\" height=\"{height}\"/>"
        );
        let _ = writeln!(
            self.body,
            "<text class=\"lane\" x=\"8\" y=\"{}\">{name}</text>",
            y + height / 2.0 + 4.0
        );
        if empty {
            let _ = writeln!(
                self.body,
                "<text class=\"none\" x=\"{}\" y=\"{}\">none</text>",
                LEFT + 4.0,
                y + height / 2.0 + 4.0
            );
        }
        self.y += height;
        y
    }

    /// Each injected fault until it was healed, or until the end.
    fn faults(&self) -> Vec<Bar> {
        let events = &self.report.events;
        let mut bars = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let EventKind::FaultInjected { fault, what } = &e.kind else {
                continue;
            };
            let healed = events[i + 1..]
                .iter()
                .find(|h| matches!(&h.kind, EventKind::FaultHealed { fault: f, .. } if f == fault));
            let end = healed.map_or(self.report.finished_ms, |h| h.time_ms);
            let mut title = format!(
                "fault {fault}: {what}\ninjected at {}",
                offset(e.time_ms, self.start)
            );
            match healed {
                Some(h) => {
                    let _ = write!(
                        title,
                        ", healed at {} (after {})",
                        offset(h.time_ms, self.start),
                        span(h.time_ms.saturating_sub(e.time_ms))
                    );
                }
                None => title.push_str(", never healed during the drill"),
            }
            bars.push(Bar {
                start: e.time_ms,
                end,
                class: "fault",
                attrs: format!(" data-healed=\"{}\"", healed.is_some()),
                label: what.clone(),
                title,
            });
        }
        bars
    }

    /// Each job from its request to its end, or to when the runner gave up
    /// on it.
    fn jobs(&self) -> Vec<Bar> {
        let mut bars = Vec::new();
        for e in &self.report.events {
            let EventKind::Job {
                job, in_storage, ..
            } = &e.kind
            else {
                continue;
            };
            let end = job.finished_ms.unwrap_or(e.time_ms);
            let state = name_of(&job.state);
            let mut label = format!("{} {}", name_of(&job.kind), job.tier);
            let mut title = format!(
                "{}: {state}\nrequested at {}",
                job_name(job),
                offset(job.created_ms, self.start)
            );
            if let Some(s) = job.started_ms {
                let _ = write!(title, ", started at {}", offset(s, self.start));
            }
            match job.finished_ms {
                Some(f) => {
                    let _ = write!(
                        title,
                        ", ended at {} (took {})",
                        offset(f, self.start),
                        span(f.saturating_sub(job.created_ms))
                    );
                }
                None => {
                    let _ = write!(
                        title,
                        ", still {state} at {}",
                        offset(e.time_ms, self.start)
                    );
                }
            }
            let _ = write!(title, "\nattempts: {}", job.attempts);
            if !job.phases_ms.is_empty() {
                let phases: Vec<String> = job
                    .phases_ms
                    .iter()
                    .map(|(p, ms)| format!("{p} {}", span(*ms)))
                    .collect();
                let _ = write!(title, "\nphases: {}", phases.join(", "));
            }
            if let Some(b) = &job.backup {
                let _ = write!(title, "\nbackup: {b}");
            }
            if let Some(f) = &job.failure {
                let class = name_of(&f.class);
                let _ = write!(label, " · {class}");
                let _ = write!(title, "\nfailure: {class}: {}", f.message);
            }
            if let Some(found) = in_storage.as_ref().filter(|f| !f.restorable) {
                let _ = write!(title, "\nnot restorable from storage: {}", found.detail);
            }
            bars.push(Bar {
                start: job.created_ms,
                end,
                class: "job",
                attrs: format!(" data-state=\"{state}\""),
                label,
                title,
            });
        }
        bars.sort_by_key(|b| b.start);
        bars
    }

    /// A lane of bars, stacked into rows so that none hides another.
    fn bars(&mut self, name: &str, bars: Vec<Bar>) {
        let spans: Vec<(f64, f64)> = bars
            .iter()
            .map(|b| {
                let x = self.x(b.start);
                (x, self.x(b.end.max(b.start)).max(x + 3.0))
            })
            .collect();
        let (rows, count) = pack(&spans);
        let top = self.lane(name, count as f64 * ROW + 6.0, bars.is_empty()) + 3.0;
        for ((bar, (x0, x1)), row) in bars.iter().zip(spans).zip(rows) {
            let y = top + row as f64 * ROW + 1.0;
            let (w, h) = (x1 - x0, ROW - 2.0);
            // The nested svg clips the label to its bar.
            let _ = writeln!(
                self.body,
                "<g class=\"{}\"{}><title>{}</title>\
                 <rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h}\" rx=\"3\"/>\
                 <svg x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h}\">\
                 <text x=\"4\" y=\"14\">{}</text></svg></g>",
                bar.class,
                bar.attrs,
                escape(&bar.title),
                escape(&bar.label),
            );
        }
    }

    /// A tick where each step started and a thin bar while it ran.
    fn steps(&mut self) {
        let events = &self.report.events;
        let started = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::StepStarted { .. }))
            .count();
        let top = self.lane("steps", TICK_LANE, started == 0);
        for (i, e) in events.iter().enumerate() {
            let EventKind::StepStarted { step, what } = &e.kind else {
                continue;
            };
            let finished = events[i + 1..].iter().find_map(|f| match &f.kind {
                EventKind::StepFinished {
                    step: s,
                    ok,
                    message,
                    ..
                } if s == step => Some((f.time_ms, *ok, message)),
                _ => None,
            });
            let mut title = format!(
                "step {step}: {what}\nstarted at {}",
                offset(e.time_ms, self.start)
            );
            let (end, ok) = match finished {
                Some((t, ok, message)) => {
                    let result = if ok { "finished" } else { "FAILED" };
                    let _ = write!(
                        title,
                        ", {result} at {} (after {})",
                        offset(t, self.start),
                        span(t.saturating_sub(e.time_ms))
                    );
                    if !message.is_empty() {
                        let _ = write!(title, "\n{message}");
                    }
                    (t, if ok { "true" } else { "false" })
                }
                None => {
                    title.push_str(", never finished");
                    (self.report.finished_ms, "unknown")
                }
            };
            let (x0, x1) = (self.x(e.time_ms), self.x(end.max(e.time_ms)));
            let _ = writeln!(
                self.body,
                "<g class=\"step\" data-ok=\"{ok}\"><title>{}</title>\
                 <rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"4\"/>\
                 <line x1=\"{x0:.1}\" x2=\"{x0:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/></g>",
                escape(&title),
                top + TICK_LANE / 2.0 - 2.0,
                (x1 - x0).max(1.0),
                top + 4.0,
                top + TICK_LANE - 4.0,
            );
        }
    }

    /// A tick per heartbeat, and red stretches where the agent went quiet
    /// for more than three times its usual interval.
    fn heartbeats(&mut self) {
        let beats: Vec<(u64, u64)> = self
            .report
            .events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Heartbeat { sequence, .. } => Some((e.time_ms, sequence)),
                _ => None,
            })
            .collect();
        let top = self.lane("heartbeats", TICK_LANE, beats.is_empty());
        for (from, to, title) in offline(&beats, self.report.finished_ms) {
            let (x0, x1) = (self.x(from), self.x(to));
            let _ = writeln!(
                self.body,
                "<rect class=\"offline\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                 height=\"{:.1}\"><title>{}</title></rect>",
                top + 2.0,
                (x1 - x0).max(2.0),
                TICK_LANE - 4.0,
                escape(&format!(
                    "offline: {title} from {} to {} ({})",
                    offset(from, self.start),
                    offset(to, self.start),
                    span(to - from)
                )),
            );
        }
        for (t, sequence) in beats {
            let x = self.x(t);
            let _ = writeln!(
                self.body,
                "<line class=\"heartbeat\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\">\
                 <title>heartbeat #{sequence} at {}</title></line>",
                top + 7.0,
                top + TICK_LANE - 7.0,
                offset(t, self.start),
            );
        }
    }

    /// Acknowledged transactions per second as bars; seconds without any
    /// show as a red mark on the baseline.
    fn workload(&mut self) {
        let tps = &self.report.throughput;
        let peak = tps.iter().copied().max().unwrap_or(0).max(1);
        let top = self.lane("workload", WORKLOAD_LANE, tps.is_empty());
        let base = top + WORKLOAD_LANE - 4.0;
        let room = WORKLOAD_LANE - 20.0;
        if !tps.is_empty() {
            let _ = writeln!(
                self.body,
                "<text class=\"scale\" x=\"{}\" y=\"{:.1}\">peak {peak} tx/s</text>",
                WIDTH - RIGHT,
                top + 11.0
            );
        }
        for (i, &v) in tps.iter().enumerate() {
            let t = self.start + i as u64 * 1000;
            let (x0, x1) = (self.x(t), self.x(t + 1000));
            if x0 >= WIDTH - RIGHT {
                break;
            }
            let h = if v == 0 {
                3.0
            } else {
                (v as f64 / peak as f64 * room).max(1.0)
            };
            let _ = writeln!(
                self.body,
                "<rect class=\"throughput\" data-tps=\"{v}\" x=\"{x0:.1}\" y=\"{:.1}\" \
                 width=\"{:.1}\" height=\"{h:.1}\"><title>{i}–{} s: {v} tx/s</title></rect>",
                base - h,
                ((x1 - x0) * 0.85).max(0.5),
                i + 1,
            );
        }
    }

    /// Seconds since the start, at a round step, with grid lines across
    /// all lanes.
    fn axis(&mut self) {
        let total_s = (self.end - self.start) as f64 / 1000.0;
        let step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
            .into_iter()
            .find(|&s| total_s / s as f64 <= 12.0)
            .unwrap_or(7200);
        let lanes_bottom = self.y;
        let _ = writeln!(
            self.body,
            "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{lanes_bottom}\" y2=\"{lanes_bottom}\"/>",
            WIDTH - RIGHT
        );
        let mut s = 0;
        while s as f64 <= total_s {
            let x = self.x(self.start + s * 1000);
            let _ = writeln!(
                self.back,
                "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{:.1}\"/>",
                lanes_bottom + 4.0,
            );
            let _ = writeln!(
                self.body,
                "<text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\">{s} s</text>",
                lanes_bottom + 17.0,
            );
            s += step;
        }
        self.y += AXIS;
    }
}

/// Row per interval (by x) so that no two in a row overlap, and the number
/// of rows (at least one). Intervals come sorted by start.
fn pack(spans: &[(f64, f64)]) -> (Vec<usize>, usize) {
    let mut ends: Vec<f64> = Vec::new();
    let rows = spans
        .iter()
        .map(|&(x0, x1)| match ends.iter().position(|&e| e + 2.0 <= x0) {
            Some(r) => {
                ends[r] = x1;
                r
            }
            None => {
                ends.push(x1);
                ends.len() - 1
            }
        })
        .collect();
    (rows, ends.len().max(1))
}

/// Gaps between heartbeats (`(time, sequence)`, in order) longer than three
/// times the median gap, including a silence from the last one to `end`:
/// `(from, to, what)`.
fn offline(beats: &[(u64, u64)], end: u64) -> Vec<(u64, u64, String)> {
    let mut gaps: Vec<u64> = beats.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let Some(&median) = gaps.get(gaps.len() / 2) else {
        return Vec::new();
    };
    let limit = 3 * median.max(1);
    let mut out: Vec<(u64, u64, String)> = beats
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 > limit)
        .map(|w| {
            let what = format!("no heartbeat between #{} and #{}", w[0].1, w[1].1);
            (w[0].0, w[1].0, what)
        })
        .collect();
    if let Some(&(last, sequence)) = beats.last()
        && end > last + limit
    {
        out.push((last, end, format!("no heartbeat after #{sequence}")));
    }
    out
}

const LEGEND: &str = "<ul class=\"legend\">\
<li><i class=\"k-fault\"></i>fault active</li>\
<li><i class=\"k-ok\"></i>job succeeded</li>\
<li><i class=\"k-failed\"></i>job failed</li>\
<li><i class=\"k-running\"></i>job queued or running</li>\
<li><i class=\"k-offline\"></i>agent offline (no heartbeat for over 3× the usual interval)</li>\
<li><i class=\"k-tps\"></i>acknowledged transactions per second</li>\
<li>Hover over any mark for details.</li>\
</ul>\n";

const CSS: &str = r#"
:root { --pass: #1a7f37; --fail: #cf222e; --unknown: #9a6700; --ink: #1f2328; --muted: #656d76;
  --line: #d0d7de; --soft: #f6f8fa; --fault: #8250df; --running: #d4a72c; --tps: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 20px 48px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 13px; }
h1 { margin: 0 0 4px; font-size: 28px; }
h2 { margin: 32px 0 12px; font-size: 20px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
header { display: flex; gap: 24px; align-items: flex-start; }
.badge { flex: none; min-width: 150px; padding: 18px 20px; border-radius: 10px; color: #fff;
  font-size: 30px; font-weight: 700; letter-spacing: 2px; text-align: center; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.unknown { background: var(--unknown); }
.description { margin: 0 0 8px; color: var(--muted); }
.tags { list-style: none; margin: 0 0 8px; padding: 0; display: flex; flex-wrap: wrap; gap: 6px; }
.tags li { background: var(--soft); border: 1px solid var(--line); border-radius: 999px; padding: 0 10px; font-size: 13px; }
.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 0; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; }
.error { margin-top: 16px; border: 1px solid var(--fail); border-left-width: 6px; background: #ffebe9;
  padding: 10px 14px; border-radius: 6px; }
.error pre { margin: 6px 0 0; white-space: pre-wrap; word-break: break-word; }
#timeline { display: block; width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
#timeline .band { fill: #fff; } #timeline .band.alt { fill: var(--soft); }
#timeline text { font-size: 12px; fill: var(--ink); }
#timeline text.lane { font-weight: 600; }
#timeline text.none { fill: var(--muted); font-style: italic; }
#timeline text.tick { fill: var(--muted); text-anchor: middle; font-size: 11px; }
#timeline text.scale { fill: var(--muted); text-anchor: end; font-size: 11px; }
#timeline .grid { stroke: var(--line); stroke-dasharray: 2 3; }
#timeline .axis { stroke: var(--muted); }
#timeline g.fault rect { fill: var(--fault); fill-opacity: .25; stroke: var(--fault); }
#timeline g.fault[data-healed="false"] rect { stroke-dasharray: 4 2; }
#timeline g.job rect { fill-opacity: .3; }
#timeline g.job[data-state="succeeded"] rect { fill: var(--pass); stroke: var(--pass); }
#timeline g.job[data-state="failed"] rect { fill: var(--fail); stroke: var(--fail); }
#timeline g.job[data-state="running"] rect, #timeline g.job[data-state="queued"] rect { fill: var(--running); stroke: var(--running); }
#timeline g.step rect { fill: var(--muted); fill-opacity: .35; }
#timeline g.step line { stroke: var(--ink); stroke-width: 2; }
#timeline g.step[data-ok="false"] line, #timeline g.step[data-ok="false"] rect { stroke: var(--fail); fill: var(--fail); }
#timeline .heartbeat { stroke: var(--pass); stroke-width: 1.5; }
#timeline .offline { fill: var(--fail); fill-opacity: .3; stroke: var(--fail); }
#timeline .throughput { fill: var(--tps); }
#timeline .throughput[data-tps="0"] { fill: var(--fail); }
.legend { list-style: none; padding: 0; margin: 8px 0 0; display: flex; flex-wrap: wrap; gap: 4px 18px; color: var(--muted); font-size: 13px; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 6px; border-radius: 2px; vertical-align: middle; }
.k-fault { background: #d9c8f5; border: 1px solid var(--fault); } .k-ok { background: #b4dcbf; border: 1px solid var(--pass); }
.k-failed { background: #f3b8bc; border: 1px solid var(--fail); } .k-running { background: #f2e2b0; border: 1px solid var(--running); }
.k-offline { background: #f0b3b8; border: 1px solid var(--fail); } .k-tps { background: var(--tps); }
table { border-collapse: collapse; width: 100%; }
#checks th, #checks td { text-align: left; vertical-align: top; padding: 8px 10px; border-bottom: 1px solid var(--line); }
#checks th { background: var(--soft); font-size: 13px; color: var(--muted); }
#checks tr.fail { background: #fff5f5; } #checks tr.fail td:first-child { box-shadow: inset 4px 0 var(--fail); }
#checks tr.unknown td:first-child { box-shadow: inset 4px 0 var(--unknown); }
#checks tr.skipped td { color: var(--muted); }
#checks td.name { white-space: nowrap; }
.status { display: inline-block; min-width: 68px; text-align: center; border-radius: 4px; padding: 0 8px;
  color: #fff; font-size: 12px; font-weight: 700; text-transform: uppercase; }
.status.pass { background: var(--pass); } .status.fail { background: var(--fail); } .status.unknown { background: var(--unknown); } .status.skipped { background: var(--muted); }
.measures { list-style: none; margin: 0; padding: 0; }
.measure, .vs { color: var(--muted); }
details summary { cursor: pointer; color: var(--muted); }
details ul { margin: 4px 0 0; padding-left: 18px; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.none { color: var(--muted); }
.events { margin-top: 28px; }
.events table { margin-top: 8px; }
.events table td { padding: 2px 10px; border-bottom: 1px solid var(--soft); font-size: 13px; vertical-align: top; }
.events td.time { font-family: ui-monospace, Menlo, Consolas, monospace; text-align: right; white-space: nowrap; color: var(--muted); }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Failure, FailureClass, JobKind, JobState};
    use crate::check::Measure;
    use crate::report::SCHEMA_VERSION;

    const T0: u64 = 1_700_000_000_000;

    fn at(s: u64, kind: EventKind) -> Event {
        Event {
            time_ms: T0 + s * 1000,
            kind,
        }
    }

    fn report(checks: Vec<CheckResult>, events: Vec<Event>) -> Report {
        Report {
            schema: SCHEMA_VERSION,
            scenario: "s3-outage".into(),
            description: "S3 goes away during a backup".into(),
            tags: vec!["nightly".into(), "s3".into()],
            seed: 7,
            started_ms: T0,
            finished_ms: T0 + 60_000,
            verdict: Report::verdict_of(&checks, false),
            error: None,
            checks,
            events,
            throughput: vec![10, 12, 0, 9],
        }
    }

    fn fault(s: u64, fault: usize, healed: bool) -> Event {
        let what = format!("s3 blackhole {fault}");
        if healed {
            at(s, EventKind::FaultHealed { fault, what })
        } else {
            at(s, EventKind::FaultInjected { fault, what })
        }
    }

    fn heartbeat(s: u64, sequence: u64) -> Event {
        at(
            s,
            EventKind::Heartbeat {
                sequence,
                sent_ms: T0 + s * 1000,
            },
        )
    }

    #[test]
    fn every_check_has_a_row_with_its_status() {
        let checks = vec![
            CheckResult::new("rpo[step 4]", Status::Pass, "nothing lost"),
            CheckResult::new("sla", Status::Fail, "restore took too long")
                .measure(Measure::seconds("restore", 95_000).at_most_ms(60_000))
                .details(vec!["restore r1 took 95.0 s".into()]),
            CheckResult::new("consistency", Status::Unknown, "no restore to judge"),
        ];
        let html = render(&report(checks, Vec::new()));
        assert!(html.contains("<tr class=\"check pass\" data-check=\"rpo[step 4]\">"));
        assert!(html.contains("<tr class=\"check fail\" data-check=\"sla\">"));
        assert!(html.contains("<tr class=\"check unknown\" data-check=\"consistency\">"));
        assert!(html.contains(
            "<strong>95.000 s</strong> <span class=\"vs\">vs</span> \
             <span class=\"threshold\">≤ 60.000 s</span>"
        ));
        assert!(html.contains("<details open><summary>1 finding</summary>"));
    }

    #[test]
    fn text_from_the_drill_is_escaped_everywhere() {
        let nasty = "<script>alert('x')</script> & \"q\"";
        let mut r = report(
            vec![CheckResult::new(nasty, Status::Fail, nasty).details(vec![nasty.into()])],
            vec![at(
                1,
                EventKind::FaultInjected {
                    fault: 0,
                    what: nasty.into(),
                },
            )],
        );
        r.scenario = nasty.into();
        r.description = nasty.into();
        r.tags = vec![nasty.into()];
        r.error = Some(nasty.into());
        let html = render(&r);
        assert!(!html.contains("<script"));
        assert!(!html.contains("alert('x')"));
        assert!(
            html.contains("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;q&quot;")
        );
    }

    #[test]
    fn the_timeline_has_one_fault_element_per_injected_fault() {
        let events = vec![
            fault(5, 0, false),
            fault(10, 1, false),
            fault(20, 0, true),
            fault(30, 2, false),
            fault(40, 2, true),
        ];
        let html = render(&report(Vec::new(), events));
        assert_eq!(html.matches("<g class=\"fault\"").count(), 3);
        // Fault 1 was never healed: it lasts to the end of the drill.
        assert_eq!(
            html.matches("<g class=\"fault\" data-healed=\"false\">")
                .count(),
            1
        );
        assert!(html.contains("s3 blackhole 1\ninjected at +10.0 s, never healed"));
        assert!(html.contains("injected at +5.0 s, healed at +20.0 s (after 15.0 s)"));
    }

    #[test]
    fn jobs_are_coloured_by_state_and_labelled_with_kind_tier_and_failure() {
        let job = |id: &str, state: JobState, failure: Option<Failure>| Job {
            id: id.into(),
            kind: JobKind::Backup,
            state,
            tier: "primary".into(),
            backup_kind: None,
            backup: None,
            created_ms: T0 + 2_000,
            started_ms: Some(T0 + 2_500),
            finished_ms: state.is_terminal().then_some(T0 + 9_000),
            deadline_ms: T0 + 30_000,
            attempts: 3,
            failure,
            phases_ms: Default::default(),
            progress: None,
            scheduled: None,
        };
        let timeout = Failure {
            class: FailureClass::Timeout,
            message: "no answer".into(),
        };
        let events = [
            (job("j1", JobState::Succeeded, None), 9),
            (job("j2", JobState::Failed, Some(timeout)), 9),
            (job("j3", JobState::Running, None), 50),
        ]
        .into_iter()
        .map(|(job, s)| {
            at(
                s,
                EventKind::Job {
                    step: 1,
                    job: Box::new(job),
                    seen: None,
                    in_storage: None,
                },
            )
        })
        .collect();
        let html = render(&report(Vec::new(), events));
        assert_eq!(html.matches("<g class=\"job\"").count(), 3);
        for state in ["succeeded", "failed", "running"] {
            assert!(html.contains(&format!("<g class=\"job\" data-state=\"{state}\">")));
        }
        assert!(html.contains(">backup primary · timeout</text>"));
        assert!(html.contains("still running at +50.0 s"));
    }

    #[test]
    fn a_heartbeat_gap_over_three_median_intervals_is_offline() {
        let beats = [0, 2, 4, 6, 20, 22, 24]
            .iter()
            .enumerate()
            .map(|(i, &s)| heartbeat(s, i as u64))
            .collect();
        let html = render(&report(Vec::new(), beats));
        assert_eq!(html.matches("<line class=\"heartbeat\"").count(), 7);
        // 6 s → 20 s, and 24 s → the end at 60 s.
        assert_eq!(html.matches("<rect class=\"offline\"").count(), 2);
        assert!(html.contains("no heartbeat between #3 and #4 from +6.0 s to +20.0 s"));
        assert!(html.contains("no heartbeat after #6 from +24.0 s to +60.0 s"));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let html = render(&report(Vec::new(), vec![fault(1, 0, false)]));
        let without_svg_namespace = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for needle in [
            "http:", "https:", "<script", "<link", "<img", "url(", "@import",
        ] {
            assert!(!without_svg_namespace.contains(needle), "found {needle}");
        }
        assert_eq!(html.matches("class=\"throughput\"").count(), 4);
    }
}
