//! The drill environment: the real servers a drill runs against, started,
//! checked, faulted and torn down by graphdrill's own code.
//!
//! An [`Environment`] owns two Neo4j instances (`neo4j`, the source, and
//! `neo4j-recovery`, the restore target), two SeaweedFS S3 servers (the regions
//! `s3-primary` and `s3-archive`) and a Toxiproxy server with one proxy per
//! [`Link`] the agent uses. Every listener binds 127.0.0.1 on a port picked at
//! start; everything lives in one state folder whose `env.json` lets another
//! process find, inspect and stop it. The workload and the checks talk to the
//! servers directly, never through the agent's proxies, so a fault on the
//! agent's links does not blind the judge.

mod backend;
mod component;
pub mod docker;
mod environment;
mod images;
pub mod install;
pub mod neo4j;
pub mod process;
mod seaweed;
mod state;
pub mod toxiproxy;

use std::path::{Path, PathBuf};

pub use backend::{Backend, BackendChoice, Programs, Role};
pub use component::{BoxFuture, Component, Launch, Procs, start};
pub use environment::{EnvOptions, Environment};
pub use images::{Images, Neo4jImage, ProgramImage, S3Image, S3Kind};
pub use install::{Tool, Tools};
pub use state::{EnvState, Link, LinkEndpoint, Neo4jEndpoint, S3Endpoint, load_s3_credentials};

/// Everything that can go wrong while installing, starting or stopping an
/// environment. Messages name the component, file or tool involved.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("`{tool}` is required but was not found on PATH (hint: {hint})")]
    MissingPrerequisite { tool: String, hint: String },
    #[error("GRAPHDRILL_HOME `{path}` is not usable: {source}")]
    Home {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("installing {tool} failed: {message}")]
    Install { tool: String, message: String },
    #[error("`{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start {name} (`{program}`): {source}")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited with {status}; last lines of `{}`:\n{tail}", log.display())]
    Died {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} failed to start: {reason}; last lines of `{}`:\n{tail}", log.display())]
    StartFailed {
        name: String,
        reason: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} was not ready after {waited_s} s ({last}); last lines of `{}`:\n{tail}", log.display())]
    NotReady {
        name: String,
        waited_s: u64,
        last: String,
        log: PathBuf,
        tail: String,
    },
    #[error("no environment in `{}` (env.json missing; is it up?)", dir.display())]
    NotFound { dir: PathBuf },
    #[error("`{}` is not a valid environment state: {message}", path.display())]
    BadState { path: PathBuf, message: String },
    #[error("{component}: {message}")]
    Component { component: String, message: String },
}

impl EnvError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn component(component: &str, message: impl std::fmt::Display) -> Self {
        Self::Component {
            component: component.to_string(),
            message: message.to_string(),
        }
    }
}

/// graphdrill's own folder: `$GRAPHDRILL_HOME`, else `<user cache>/graphdrill`.
pub fn home() -> Result<PathBuf, EnvError> {
    let path = match std::env::var_os("GRAPHDRILL_HOME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("graphdrill"),
    };
    std::fs::create_dir_all(&path).map_err(|source| EnvError::Home {
        path: path.clone(),
        source,
    })?;
    // Absolute: containers mount its folders at the same paths.
    let path = std::path::absolute(&path).map_err(|source| EnvError::Home {
        path: path.clone(),
        source,
    })?;
    // Creating the folder can succeed on a read-only one that already exists.
    let probe = path.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|source| EnvError::Home {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// A port on 127.0.0.1 that was free a moment ago, picked at random below
/// the kernel's ephemeral range: a port from that range, once released,
/// is soon handed to some outgoing connection (or another environment's
/// pick) before our server binds it.
pub(crate) fn free_port() -> Result<u16, EnvError> {
    use rand::Rng;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (20_000u16, ephemeral_low.min(32_768));
    if low + 1_000 < high {
        let mut rng = rand::rng();
        for _ in 0..200 {
            let p = rng.random_range(low..high);
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
                return Ok(p);
            }
        }
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| EnvError::io(Path::new("127.0.0.1:0"), source))
}

/// Writes a file only its owner can read (credentials).
pub(crate) fn write_secret(path: &Path, contents: &str) -> Result<(), EnvError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| EnvError::io(path, source))?;
    f.write_all(contents.as_bytes())
        .map_err(|source| EnvError::io(path, source))
}

/// Reads a secret file, trimming the trailing newline.
pub fn read_secret(path: &Path) -> Result<String, EnvError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end().to_string())
        .map_err(|source| EnvError::io(path, source))
}

/// A random password of letters and digits.
pub fn random_secret(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Bytes an unprivileged writer may still use on the disk under `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; all zeroes is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}
