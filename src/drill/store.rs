//! A run's folder, `reports/<time>-<scenario>/`: everything a person needs
//! to inspect the run afterwards (history, events, logs, report), with a
//! `latest` link beside it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::history::{self, Event, EventKind};

/// Appends events to `events.jsonl` and keeps them for the checkers.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Mutex<(Vec<Event>, LineWriter)>>,
}

impl Events {
    pub fn push(&self, kind: EventKind) {
        let event = Event::now(kind);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = history::append(&mut g.1, &event) {
            tracing::warn!(error = %e, "could not write events.jsonl");
        }
        g.0.push(event);
    }

    pub fn snapshot(&self) -> Vec<Event> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let _ = g.1.flush();
        g.0.clone()
    }
}

pub struct RunStore {
    pub dir: PathBuf,
    pub events: Events,
    /// `history.jsonl`, written by the workload as it runs.
    pub history: Arc<Mutex<dyn Write + Send>>,
}

impl RunStore {
    /// Creates `<reports>/<UTC time>-<scenario>/` and points `latest` at it.
    pub fn create(reports: &Path, scenario: &str) -> std::io::Result<Self> {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace([':', '-'], "");
        let name = format!("{stamp}-{scenario}");
        let dir = reports.join(&name);
        std::fs::create_dir_all(&dir)?;
        let latest = reports.join("latest");
        let _ = std::fs::remove_file(&latest);
        std::os::unix::fs::symlink(&name, &latest)?;
        let events = Events {
            inner: Arc::new(Mutex::new((
                Vec::new(),
                LineWriter(BufWriter::new(File::create(dir.join("events.jsonl"))?)),
            ))),
        };
        let history: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(LineWriter(
            BufWriter::new(File::create(dir.join("history.jsonl"))?),
        )));
        Ok(Self {
            dir,
            events,
            history,
        })
    }

    /// Copies the tail (at most 4 MiB) of each component log into `logs/`.
    pub fn collect_logs(&self, logs: &[(String, PathBuf)]) {
        let out = self.dir.join("logs");
        let _ = std::fs::create_dir_all(&out);
        for (name, path) in logs {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            let tail = &bytes[bytes.len().saturating_sub(4 << 20)..];
            let _ = std::fs::write(out.join(format!("{name}.log")), tail);
        }
    }
}

/// Flushes after every line, so a crashed run still leaves its history.
struct LineWriter(BufWriter<File>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        if buf.ends_with(b"\n") {
            self.0.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
