//! Agent files: `agents/NAME/agent.toml` describes a backup tool graphdrill
//! drills that it did not build, either as an HTTP agent it starts or as
//! commands it runs. Commands run in the file's folder.
//!
//! ```toml
//! description = "APOC export to a file, uploaded with boto3"
//! capabilities = ["claims"]          # what of it can be judged
//! [command]
//! backup = ["python3", "backup.py"]
//! restore = ["python3", "restore.py"]
//! timeout = "5m"
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{AgentError, Capability, Profile};
use crate::api::Dur;

/// Where shipped agents live, relative to the working folder.
pub const AGENTS_DIR: &str = "agents";
pub const FILE_NAME: &str = "agent.toml";

/// A parsed agent file.
#[derive(Debug, Clone)]
pub struct AgentFile {
    /// The folder's name.
    pub name: String,
    pub description: String,
    /// The folder holding the file: commands run there.
    pub dir: PathBuf,
    pub capabilities: BTreeSet<Capability>,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Http(HttpSpec),
    Command(CommandSpec),
}

/// An agent speaking the control API, started by `start`; graphdrill gives
/// it a port (`GRAPHDRILL_AGENT_PORT`) and a token (`GRAPHDRILL_TOKEN_FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    pub start: Vec<String>,
}

/// A backup tool as commands: exit status 0 is success; the last line of
/// stdout that is a JSON object is the job's result (README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub backup: Vec<String>,
    pub restore: Vec<String>,
    #[serde(default)]
    pub verify: Option<Vec<String>>,
    /// Copies a backup between tiers (`GRAPHDRILL_FROM`, `GRAPHDRILL_TO`).
    #[serde(default)]
    pub copy: Option<Vec<String>>,
    /// A command still running after this is a stuck job, and is killed.
    pub timeout: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    description: String,
    #[serde(default)]
    capabilities: BTreeSet<Capability>,
    #[serde(default)]
    http: Option<HttpSpec>,
    #[serde(default)]
    command: Option<CommandSpec>,
}

impl AgentFile {
    /// `name_or_path`: an agent file, its folder, or the name of a folder
    /// in `agents/`.
    pub fn find(name_or_path: &str) -> Result<Self, AgentError> {
        let given = Path::new(name_or_path);
        let path = if given.is_file() {
            given.to_path_buf()
        } else if given.join(FILE_NAME).is_file() {
            given.join(FILE_NAME)
        } else {
            let shipped = Path::new(AGENTS_DIR).join(name_or_path).join(FILE_NAME);
            if !shipped.is_file() {
                return Err(AgentError::File {
                    path: shipped,
                    message: format!(
                        "no agent `{name_or_path}`: give `graph-agent`, one of [{}] in `{AGENTS_DIR}/`, \
                         or the path of an agent file",
                        shipped_names().join(", ")
                    ),
                });
            }
            shipped
        };
        Self::load(&path)
    }

    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let failed = |message: String| AgentError::File {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        let raw: Raw = toml::from_str(&text).map_err(|e| failed(e.to_string()))?;
        let kind = match (raw.http, raw.command) {
            (Some(h), None) => {
                if h.start.is_empty() {
                    return Err(failed("`http.start` is empty".into()));
                }
                Kind::Http(h)
            }
            (None, Some(c)) => {
                for (field, argv) in [("backup", &c.backup), ("restore", &c.restore)] {
                    if argv.is_empty() {
                        return Err(failed(format!("`command.{field}` is empty")));
                    }
                }
                Kind::Command(c)
            }
            _ => {
                return Err(failed(
                    "needs exactly one of an `[http]` or a `[command]` table".into(),
                ));
            }
        };
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = dir.canonicalize().unwrap_or(dir);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "agent".into());
        Ok(Self {
            name,
            description: raw.description,
            dir,
            capabilities: raw.capabilities,
            kind,
        })
    }

    /// What it declares, and for an HTTP agent its control API.
    pub fn profile(&self) -> Profile {
        let mut capabilities = self.capabilities.clone();
        if matches!(self.kind, Kind::Http(_)) {
            capabilities.insert(Capability::ControlApi);
        }
        Profile {
            name: self.name.clone(),
            capabilities,
        }
    }
}

/// The agents shipped in `agents/`, by name.
pub fn shipped_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(AGENTS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(FILE_NAME).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<AgentFile, AgentError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, text).unwrap();
        AgentFile::load(&path)
    }

    #[test]
    fn a_command_agent_reads_with_its_capabilities() {
        let f = load(
            "description = \"d\"\ncapabilities = [\"claims\"]\n\
             [command]\nbackup = [\"sh\", \"b\"]\nrestore = [\"sh\", \"r\"]\ntimeout = \"5m\"\n",
        )
        .unwrap();
        assert!(f.profile().has(Capability::Claims));
        assert!(!f.profile().has(Capability::Heartbeats));
        let Kind::Command(c) = f.kind else {
            panic!("not a command agent")
        };
        assert_eq!(c.timeout.0, std::time::Duration::from_secs(300));
    }

    #[test]
    fn a_file_with_both_kinds_or_neither_is_refused() {
        let both = load(
            "description = \"d\"\n[http]\nstart = [\"a\"]\n\
             [command]\nbackup = [\"b\"]\nrestore = [\"r\"]\ntimeout = \"1m\"\n",
        );
        let neither = load("description = \"d\"\n");
        for r in [both, neither] {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("exactly one of"), "{e}");
            assert!(e.contains(FILE_NAME), "{e}");
        }
    }

    #[test]
    fn an_unknown_capability_is_named() {
        let e =
            load("description = \"d\"\ncapabilities = [\"telepathy\"]\n[http]\nstart = [\"a\"]\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("telepathy"), "{e}");
    }

    #[test]
    fn an_unknown_agent_name_lists_the_shipped_ones() {
        let e = AgentFile::find("no-such-agent").unwrap_err().to_string();
        assert!(e.contains("no agent `no-such-agent`"), "{e}");
    }
}
