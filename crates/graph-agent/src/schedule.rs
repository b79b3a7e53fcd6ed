//! The scheduler: each `[[schedule]]` entry starts a backup every `every`,
//! and a new data key seals from every `encryption.rotation` on.
//!
//! A due backup waits while the host is busier than `[resources]` allows
//! (CPU use, average I/O wait), measured over one second at a time, but
//! never longer than the entry's `max_delay`: then it runs anyway. A busy
//! host delays a backup; it never skips one or leaves it hanging. A run
//! still going when the next is due is not doubled: the due run is skipped
//! and logged.

use std::sync::Arc;
use std::time::Duration;

use super::config::{Resources, Schedule};
use super::service::{Agent, now_ms};
use graph_agent_api::Scheduled;

/// How busy the host was over a sampling window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Share of CPU time not idle, over all CPUs (0–100).
    pub cpu_percent: f64,
    /// Average time an I/O request took to complete, in ms.
    pub io_wait_ms: f64,
}

/// Counters read from `/proc` at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    cpu_busy: u64,
    cpu_total: u64,
    io_ms: u64,
    ios: u64,
}

/// `(busy, total)` jiffies from the `cpu` line of `/proc/stat`.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = f.iter().sum();
    let idle = f.get(3)? + f.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// `(ms spent on I/O, I/Os completed)` over the block devices of
/// `/proc/diskstats` (loop and RAM devices left out).
pub fn parse_diskstats(text: &str) -> (u64, u64) {
    let mut out = (0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 11 || ["loop", "ram", "zram"].iter().any(|p| f[2].starts_with(p)) {
            continue;
        }
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        out.0 += n(6) + n(10);
        out.1 += n(3) + n(7);
    }
    out
}

/// The load between two samples.
pub fn load(a: Sample, b: Sample) -> Load {
    let ratio = |x: u64, y: u64| if y == 0 { 0.0 } else { x as f64 / y as f64 };
    Load {
        cpu_percent: 100.0
            * ratio(
                b.cpu_busy.saturating_sub(a.cpu_busy),
                b.cpu_total.saturating_sub(a.cpu_total),
            ),
        io_wait_ms: ratio(b.io_ms.saturating_sub(a.io_ms), b.ios.saturating_sub(a.ios)),
    }
}

/// Why `load` should hold a job back under `limits`, if it should.
pub fn held_by(load: Load, limits: &Resources) -> Option<String> {
    let mut over = Vec::new();
    if load.cpu_percent > limits.max_cpu_percent as f64 {
        over.push(format!(
            "cpu {:.0}% > {}%",
            load.cpu_percent, limits.max_cpu_percent
        ));
    }
    if load.io_wait_ms > limits.max_io_wait_ms as f64 {
        over.push(format!(
            "io wait {:.1} ms > {} ms",
            load.io_wait_ms, limits.max_io_wait_ms
        ));
    }
    (!over.is_empty()).then(|| over.join(", "))
}

/// Reads the counters now. Where `/proc` is missing (not Linux), all are
/// zero, so nothing is ever held back.
fn sample() -> Sample {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let (cpu_busy, cpu_total) = parse_stat(&read("/proc/stat")).unwrap_or((0, 0));
    let (io_ms, ios) = parse_diskstats(&read("/proc/diskstats"));
    Sample {
        cpu_busy,
        cpu_total,
        io_ms,
        ios,
    }
}

/// The host's load over the next second.
async fn measure() -> Load {
    let a = sample();
    tokio::time::sleep(Duration::from_secs(1)).await;
    load(a, sample())
}

/// Starts one task per `[[schedule]]` entry, and the data-key rotation
/// every `encryption.rotation`; they end with the process.
pub fn spawn(agent: Arc<Agent>) {
    for entry in agent.config.schedules.clone() {
        tokio::spawn(run(agent.clone(), entry));
    }
    let every = agent.config.encryption.rotation.0;
    tokio::spawn(async move {
        // The current data key was made at start, or before a restart.
        let (_, _, since_ms) = agent.key_status();
        let first = tokio::time::Instant::now() + until_rotation(every, since_ms, now_ms());
        let mut tick = tokio::time::interval_at(first, every);
        loop {
            tick.tick().await;
            agent.rotate_data_key();
        }
    });
}

/// How long until a data key made at `since_ms` is due for rotation.
fn until_rotation(every: Duration, since_ms: u64, now_ms: u64) -> Duration {
    every.saturating_sub(Duration::from_millis(now_ms.saturating_sub(since_ms)))
}

async fn run(agent: Arc<Agent>, entry: Schedule) {
    let every = entry.every.0;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<String> = None;
    loop {
        tick.tick().await;
        if let Some(job) = last.as_deref().and_then(|id| agent.job(id))
            && !job.state.is_terminal()
        {
            tracing::warn!(entry = %entry.name, job = %job.id, "the last scheduled run is still going: this one is skipped");
            continue;
        }
        let (due, due_ms) = (tokio::time::Instant::now(), now_ms());
        let mut reason = None;
        loop {
            let Some(why) = held_by(measure().await, &agent.config.resources) else {
                break;
            };
            let held = due.elapsed();
            if held >= entry.max_delay() {
                tracing::warn!(entry = %entry.name, %why, ?held, "still busy at max_delay: running anyway");
                reason = Some(format!("{why}; ran at max_delay"));
                break;
            }
            tracing::info!(entry = %entry.name, %why, "host busy: holding the backup");
            reason = Some(why);
        }
        let scheduled = Scheduled {
            entry: entry.name.clone(),
            due_ms,
            held_ms: due.elapsed().as_millis() as u64,
            held_by: reason,
        };
        let job = agent.submit_scheduled(entry.kind, &entry.tier, scheduled);
        tracing::info!(entry = %entry.name, job = %job.id, "scheduled backup started");
        last = Some(job.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_data_key_rotates_when_its_own_age_says_so() {
        let day = Duration::from_secs(86_400);
        assert_eq!(until_rotation(day, 1_000, 1_000), day);
        let half = 43_200_000;
        assert_eq!(until_rotation(day, 1_000, 1_000 + half), day / 2);
        // Overdue (the agent was down past it): at once.
        assert_eq!(
            until_rotation(day, 1_000, 1_000 + 2 * half + 5),
            Duration::ZERO
        );
    }

    const STAT_A: &str = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\n";
    const STAT_B: &str = "cpu  250 0 150 800 100 0 0 0 0 0\n";
    const DISK_A: &str = "   8       0 sda 100 0 800 500 50 0 400 250 0 700 750\n   7       0 loop0 9 0 9 9000 0 0 0 0 0 0 0\n";
    const DISK_B: &str = "   8       0 sda 110 0 880 800 60 0 480 350 0 900 1150\n   7       0 loop0 10 0 10 99000 0 0 0 0 0 0 0\n";

    fn at(stat: &str, disk: &str) -> Sample {
        let (cpu_busy, cpu_total) = parse_stat(stat).unwrap();
        let (io_ms, ios) = parse_diskstats(disk);
        Sample {
            cpu_busy,
            cpu_total,
            io_ms,
            ios,
        }
    }

    #[test]
    fn load_is_the_busy_share_and_the_mean_io_time_between_samples() {
        // 200 of 300 jiffies busy; 400 ms over 20 I/Os; loop devices ignored.
        let l = load(at(STAT_A, DISK_A), at(STAT_B, DISK_B));
        assert!((l.cpu_percent - 66.666).abs() < 0.01, "{l:?}");
        assert!((l.io_wait_ms - 20.0).abs() < 1e-9, "{l:?}");
    }

    #[test]
    fn iowait_counts_as_idle_cpu() {
        assert_eq!(parse_stat("cpu  1 2 3 4 5 6 7 8 9 10"), Some((27, 36)));
        assert_eq!(parse_stat("intr 1 2"), None);
        assert_eq!(parse_stat("cpu  x"), None);
    }

    #[test]
    fn an_idle_window_has_no_load() {
        let s = at(STAT_A, DISK_A);
        assert_eq!(
            load(s, s),
            Load {
                cpu_percent: 0.0,
                io_wait_ms: 0.0
            }
        );
    }

    #[test]
    fn a_job_is_held_only_above_a_threshold_and_says_which() {
        let limits = Resources::default(); // 70 %, 15 ms
        let calm = Load {
            cpu_percent: 70.0,
            io_wait_ms: 15.0,
        };
        assert_eq!(held_by(calm, &limits), None);
        let busy = Load {
            cpu_percent: 93.2,
            io_wait_ms: 22.0,
        };
        assert_eq!(
            held_by(busy, &limits).as_deref(),
            Some("cpu 93% > 70%, io wait 22.0 ms > 15 ms")
        );
    }
}
