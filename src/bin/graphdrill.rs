//! `graphdrill`: the command line. Errors become one clear message and an
//! exit code from the table in [`exit`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use graphdrill::adapter::{self, builtin};
use graphdrill::api::exit;
use graphdrill::check::Status;
use graphdrill::drill::{self, Progress, RunOptions};
use graphdrill::env::{
    self, BackendChoice, EnvError, EnvOptions, Environment, Images, Tool, Tools,
};
use graphdrill::scenario::{self, Scenario};

/// Chaos and disaster-recovery drills for graph-database backups.
///
/// graphdrill starts real servers (Neo4j, SeaweedFS S3 in two regions,
/// Toxiproxy) on 127.0.0.1, injects faults and judges backups and restores.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run drills: start an environment, play each scenario's timeline
    /// against graph-agent, judge, and write reports (exit 0 when every
    /// check passed, 1 when one failed or could not decide, 2 for an
    /// invalid scenario or bad input, 3 when the environment failed).
    Run {
        /// Scenario files or folders of them (`scenarios/smoke` names
        /// `scenarios/smoke.toml`).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Overrides every scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Runs only scenarios with this tag (repeatable: any of them).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Where run folders go (each `<time>-<scenario>/`, and `latest`).
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
        /// Leaves the environment running afterwards (stop it with
        /// `graphdrill env down --name NAME`).
        #[arg(long)]
        keep_env: bool,
        /// The environment to run in: reused while all of it runs (and then
        /// left running), started otherwise.
        #[arg(long, default_value = "drill")]
        env_name: String,
        /// The environment's folder instead of a name (as `env up --dir`).
        #[arg(long, conflicts_with = "env_name")]
        env_dir: Option<PathBuf>,
        /// The agent to drill: `graph-agent` (the default), the name of an
        /// agent shipped in `agents/` (`apoc-export`, `neo4j-admin-dump`,
        /// `minimal-http`), or the path of an agent file (`agent.toml`)
        /// or its folder. See the README, "Drilling your own backup tool".
        #[arg(long, default_value = "graph-agent")]
        agent: String,
        /// The graph-agent executable (default: beside graphdrill; the
        /// docker backend runs the agent's image instead).
        #[arg(long, env = "GRAPHDRILL_AGENT_BIN")]
        agent_bin: Option<PathBuf>,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Judge a stored run again from its evidence (RUN_DIR/evidence,
    /// history.jsonl, events.jsonl) and rewrite its report files; exit 0
    /// when every check passed, 1 otherwise. A missing evidence file makes
    /// the checks that need it `unknown`, naming the file.
    Check {
        /// A run folder, e.g. `reports/latest`.
        run_dir: PathBuf,
    },
    /// Check scenario files without running them (exit 2 on any error,
    /// each given as file:line:column, field path, and what was expected).
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List scenarios with their descriptions and tags.
    List {
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Install, start, inspect and stop a drill environment.
    #[command(subcommand)]
    Env(EnvCommand),
}

#[derive(Subcommand)]
enum EnvCommand {
    /// Install the pinned servers into $GRAPHDRILL_HOME/tools (idempotent;
    /// safe to run twice at once).
    Install,
    /// Start an environment and print where it lives. Without --foreground
    /// the servers keep running after this command exits; stop them with
    /// `graphdrill env down`.
    Up {
        #[command(flatten)]
        which: Which,
        /// Stay attached and stop everything on Ctrl-C or SIGTERM.
        #[arg(long)]
        foreground: bool,
        /// JVM heap of each Neo4j instance, in MiB.
        #[arg(long, default_value_t = 384)]
        neo4j_heap_mb: u32,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Show the environment's components, their pids and endpoints.
    Status {
        #[command(flatten)]
        which: Which,
        /// Print env.json as is.
        #[arg(long)]
        json: bool,
    },
    /// Stop every process of the environment.
    Down {
        #[command(flatten)]
        which: Which,
    },
    /// Stop one component (`neo4j`, `neo4j-recovery`, `s3-primary`,
    /// `s3-archive`, `toxiproxy`) as a service manager would: SIGTERM, then
    /// SIGKILL after its grace time. For backup tools that need the
    /// database down (`neo4j-admin database dump`); a drill in progress
    /// sees the downtime.
    Stop {
        component: String,
        #[command(flatten)]
        which: Which,
    },
    /// Start a stopped component again and wait until it is ready.
    Start {
        component: String,
        #[command(flatten)]
        which: Which,
    },
    /// Run the environment's `neo4j-admin` for a stopped Neo4j instance,
    /// with its configuration: `graphdrill env neo4j-admin neo4j --dir D --
    /// database dump neo4j --to-path=/tmp/dumps`.
    Neo4jAdmin {
        instance: String,
        #[command(flatten)]
        which: Which,
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
}

/// Which environment: by name under $GRAPHDRILL_HOME/envs, or by folder.
#[derive(Args)]
struct Which {
    /// Name of the environment (its folder is $GRAPHDRILL_HOME/envs/NAME).
    #[arg(long, default_value = "default")]
    name: String,
    /// The environment's state folder, instead of a name.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Where the servers run.
#[derive(Args)]
struct BackendArgs {
    /// `local`: processes from the tools graphdrill installs (default).
    /// `docker`: containers through testcontainers, on the engine in
    /// DOCKER_HOST (or the default socket), with host networking.
    #[arg(long, value_enum, default_value_t = BackendKind::Local)]
    backend: BackendKind,
    /// The images for `--backend docker`: a TOML file overriding any part
    /// of the shipped docker/images.toml.
    #[arg(long, env = "GRAPHDRILL_IMAGES")]
    images: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    Local,
    Docker,
}

impl BackendArgs {
    fn choice(&self) -> Result<BackendChoice, EnvError> {
        Ok(match self.backend {
            BackendKind::Local => BackendChoice::Local,
            BackendKind::Docker => BackendChoice::Docker {
                host: std::env::var("DOCKER_HOST")
                    .unwrap_or_else(|_| env::docker::DEFAULT_HOST.into()),
                images: Box::new(match &self.images {
                    Some(path) => Images::load(path)?,
                    None => Images::default(),
                }),
            },
        })
    }
}

impl Which {
    fn options(&self) -> EnvOptions {
        EnvOptions {
            name: self.name.clone(),
            dir: self.dir.clone(),
            ..EnvOptions::default()
        }
    }
}

fn main() -> ExitCode {
    graphdrill::init_logging("GRAPHDRILL_LOG");
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    let cli = match cli.command {
        Command::Validate { files } => return validate(&files),
        Command::List { paths } => return list(&paths),
        Command::Check { run_dir } => return check(&run_dir),
        Command::Run {
            paths,
            seed,
            tags,
            report_dir,
            keep_env,
            env_name,
            env_dir,
            agent,
            agent_bin,
            backend,
        } => {
            let backend = match backend.choice() {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(code(&e));
                }
            };
            if agent == "graph-agent" && agent_bin.is_none() && backend == BackendChoice::Local {
                build_agent_under_cargo();
            }
            let bin = agent_bin.unwrap_or_else(builtin::default_bin);
            let agent = match adapter::Spec::choose(&agent, bin) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(exit::BAD_INPUT);
                }
            };
            let opts = RunOptions {
                reports: report_dir,
                seed,
                agent,
            };
            let env = EnvOptions {
                name: env_name,
                dir: env_dir,
                backend,
                ..EnvOptions::default()
            };
            return runtime.block_on(run_drills(&paths, &tags, opts, env, keep_env));
        }
        other => Cli { command: other },
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(code(&e))
        }
    }
}

fn code(e: &EnvError) -> u8 {
    match e {
        EnvError::MissingPrerequisite { .. }
        | EnvError::Home { .. }
        | EnvError::NotFound { .. }
        | EnvError::BadState { .. } => exit::BAD_INPUT,
        _ => exit::ENVIRONMENT,
    }
}

async fn run(cli: Cli) -> Result<(), EnvError> {
    let home = env::home()?;
    match cli.command {
        Command::Env(EnvCommand::Install) => {
            let tools = Tools::new(&home);
            tokio::task::spawn_blocking(move || tools.ensure(&Tool::ALL))
                .await
                .expect("installer thread")?;
            println!("installed in {}", home.join("tools").display());
            Ok(())
        }
        Command::Env(EnvCommand::Up {
            which,
            foreground,
            neo4j_heap_mb,
            backend,
        }) => {
            let opts = EnvOptions {
                neo4j_heap_mb,
                backend: backend.choice()?,
                ..which.options()
            };
            up(&home, &opts, foreground).await
        }
        Command::Env(EnvCommand::Status { which, json }) => {
            let env = Environment::attach(&home, &which.options().state_dir(&home))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&env.state()).expect("state serializes")
                );
            } else {
                print_status(&env);
            }
            env.detach();
            Ok(())
        }
        Command::Run { .. }
        | Command::Validate { .. }
        | Command::List { .. }
        | Command::Check { .. } => {
            unreachable!("handled in main")
        }
        Command::Env(EnvCommand::Stop { component, which }) => {
            let env = Environment::attach(&home, &which.options().state_dir(&home))?;
            let stopped = env.stop_component(&component);
            env.detach();
            stopped?;
            println!("stopped {component}");
            Ok(())
        }
        Command::Env(EnvCommand::Start { component, which }) => {
            let env = Environment::attach(&home, &which.options().state_dir(&home))?;
            let started = env.start_component(&component).await;
            env.detach();
            started?;
            println!("started {component}");
            Ok(())
        }
        Command::Env(EnvCommand::Neo4jAdmin {
            instance,
            which,
            args,
        }) => {
            let env = Environment::attach(&home, &which.options().state_dir(&home))?;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = env.neo4j_admin(&instance, &args);
            env.detach();
            println!("{}", out?);
            Ok(())
        }
        Command::Env(EnvCommand::Down { which }) => {
            let env = Environment::attach(&home, &which.options().state_dir(&home))?;
            env.follow_output();
            env.down();
            println!("stopped {}", env.dir().display());
            Ok(())
        }
    }
}

async fn up(home: &std::path::Path, opts: &EnvOptions, foreground: bool) -> Result<(), EnvError> {
    let started = std::time::Instant::now();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    // A signal during start-up drops the half-built environment, which stops
    // whatever had started.
    let env = tokio::select! {
        env = Environment::up(home, opts) => env?,
        _ = tokio::signal::ctrl_c() => return Err(interrupted()),
        _ = sigterm.recv() => return Err(interrupted()),
    };
    eprintln!("environment up in {:.1} s", started.elapsed().as_secs_f64());
    print_status(&env);
    if !foreground {
        env.detach();
        return Ok(());
    }
    eprintln!("running in the foreground; Ctrl-C stops everything");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
    }
    eprintln!("stopping…");
    tokio::task::spawn_blocking(move || env.down())
        .await
        .expect("teardown thread");
    Ok(())
}

fn interrupted() -> EnvError {
    EnvError::Component {
        component: "environment".into(),
        message: "interrupted while starting; everything started was stopped".into(),
    }
}

fn print_status(env: &Environment) {
    let state = env.state();
    println!("environment `{}` in {}", state.name, state.dir.display());
    for (name, alive) in env.alive() {
        let id = match state.processes.get(&name) {
            Some(p) => match &p.container {
                Some(c) => format!("container {}", c.chars().take(12).collect::<String>()),
                None => format!("pid {}", p.pid),
            },
            None => "-".into(),
        };
        let what = if let Some(n) = state.neo4j.get(&name) {
            format!("bolt://{}", n.bolt)
        } else if let Some(s) = state.s3.get(&name) {
            format!("{} bucket `{}`", s.url, s.bucket)
        } else {
            state.toxiproxy_api.clone()
        };
        let alive = if alive { "up" } else { "DOWN" };
        println!("  {name:<16} {alive:<5} {id:<22} {what}");
    }
    for (name, link) in &state.links {
        println!("  link {name:<22} {} -> {}", link.listen, link.upstream);
    }
}

/// Loads scenarios, printing every error; None when any was invalid.
fn load(paths: &[PathBuf]) -> Option<Vec<Scenario>> {
    match scenario::load_all(paths) {
        Ok(s) => Some(s),
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            None
        }
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    match load(files) {
        Some(s) => {
            println!("{} scenarios valid", s.len());
            ExitCode::SUCCESS
        }
        None => ExitCode::from(exit::BAD_INPUT),
    }
}

fn check(run_dir: &std::path::Path) -> ExitCode {
    match drill::rejudge(run_dir) {
        Ok(report) => {
            let progress = Progress::new();
            drill::print_checks(&progress, &report);
            progress.line(&format!(
                "{} {} (judged again) — {}",
                drill::verdict_word(report.verdict),
                report.scenario,
                run_dir.join("report.html").display()
            ));
            if report.verdict == Status::Pass {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::FAILED)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::BAD_INPUT)
        }
    }
}

fn list(paths: &[PathBuf]) -> ExitCode {
    let Some(scenarios) = load(paths) else {
        return ExitCode::from(exit::BAD_INPUT);
    };
    for s in &scenarios {
        println!("{:<30} [{}]", s.name, s.tags.join(", "));
        println!("    {}", s.description);
    }
    println!(
        "\nfault kinds: latency, timeout, reset, bandwidth, slow_close, partition, access_denied; \
         region lose/restore; neo4j rotate-password; agent kill/pause/resume/restart; key rotate/replace; \
         agent clock skew."
    );
    match builtin::faketime_lib() {
        Some(lib) => println!("clock skew for the agent: available ({})", lib.display()),
        None => println!(
            "clock skew for the agent: NOT available here: libfaketime is missing (Debian: apt-get install faketime)"
        ),
    }
    ExitCode::SUCCESS
}

/// Runs the scenarios in one environment, stopped at the end (or on
/// Ctrl-C / SIGTERM) unless `keep_env`.
async fn run_drills(
    paths: &[PathBuf],
    tags: &[String],
    opts: RunOptions,
    env_opts: EnvOptions,
    keep_env: bool,
) -> ExitCode {
    let Some(mut scenarios) = load(paths) else {
        return ExitCode::from(exit::BAD_INPUT);
    };
    if !tags.is_empty() {
        scenarios.retain(|s| s.tags.iter().any(|t| tags.contains(t)));
    }
    if scenarios.is_empty() {
        eprintln!("error: no scenario matches");
        return ExitCode::from(exit::BAD_INPUT);
    }
    if let adapter::Spec::GraphAgent { bin } = &opts.agent
        && env_opts.backend == BackendChoice::Local
        && !bin.is_file()
    {
        eprintln!(
            "error: graph-agent not found at `{}` (build it with `cargo build`, or pass --agent-bin)",
            bin.display()
        );
        return ExitCode::from(exit::BAD_INPUT);
    }
    let home = match env::home() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(code(&e));
        }
    };
    let env_opts = EnvOptions {
        neo4j_heap_mb: scenarios
            .iter()
            .map(|s| s.environment.neo4j_heap_mb)
            .max()
            .unwrap_or(384),
        ..env_opts
    };
    let progress = Progress::new();
    progress.line(&format!("agent under test: {}", opts.agent.describe()));
    progress.status("starting the environment");
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    // An environment left by `--keep-env` is reused while all of it runs.
    let kept = Environment::attach(&home, &env_opts.state_dir(&home))
        .ok()
        .filter(|e| e.state().backend == env_opts.backend)
        .filter(|e| e.alive().iter().all(|(_, up)| *up));
    let reused = kept.is_some();
    if let Some(env) = &kept {
        env.follow_output();
    }
    let env = tokio::select! {
        env = async { match kept { Some(e) => Ok(e), None => Environment::up(&home, &env_opts).await } } => env,
        _ = tokio::signal::ctrl_c() => Err(interrupted()),
        _ = sigterm.recv() => Err(interrupted()),
    };
    let env = match env {
        Ok(env) => std::sync::Arc::new(env),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(code(&e));
        }
    };
    let mut worst = ExitCode::SUCCESS;
    let mut failed = Vec::new();
    let drills = async {
        for s in &scenarios {
            match drill::run(&env, s, &opts, &progress).await {
                // The next scenarios would fail for the same reason.
                Ok(o) if o.environment.is_some() => {
                    let why = o.environment.unwrap_or_default();
                    eprintln!("error: {}: the environment failed: {why}", s.name);
                    failed.push(s.name.clone());
                    worst = ExitCode::from(exit::ENVIRONMENT);
                    break;
                }
                Ok(o) if o.report.verdict == Status::Pass => {}
                Ok(o) => {
                    failed.push(format!(
                        "{} ({})",
                        s.name,
                        o.dir.join("report.html").display()
                    ));
                    worst = ExitCode::from(exit::FAILED);
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", s.name);
                    failed.push(s.name.clone());
                    worst = ExitCode::from(exit::ENVIRONMENT);
                }
            }
        }
    };
    let interrupted = tokio::select! {
        _ = drills => false,
        _ = tokio::signal::ctrl_c() => true,
        _ = sigterm.recv() => true,
    };
    drop(progress);
    if interrupted {
        eprintln!("interrupted: stopping everything");
        worst = ExitCode::from(exit::ENVIRONMENT);
        // A kept environment must not keep the drill's faults either.
        if let Err(e) = graphdrill::fault::heal_all(&env).await {
            eprintln!("warning: healing the environment: {e}");
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {}", failed.join(", "));
    }
    match std::sync::Arc::try_unwrap(env) {
        Ok(env) if keep_env || reused => {
            let which = match &env_opts.dir {
                Some(d) => format!("--dir {}", d.display()),
                None => format!("--name {}", env_opts.name),
            };
            eprintln!("environment left running: graphdrill env down {which}");
            env.detach();
        }
        Ok(env) => {
            let _ = tokio::task::spawn_blocking(move || env.down()).await;
        }
        Err(env) => env.down(),
    }
    worst
}

/// Under `cargo run`, builds graph-agent too (cargo builds only the binary
/// it runs), with the same profile and features, so a drill never runs a
/// stale agent.
fn build_agent_under_cargo() {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return;
    };
    if std::env::var_os("CARGO_MANIFEST_DIR").is_none() {
        return;
    }
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "graph-agent",
        "--bin",
        "graph-agent",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    if cfg!(feature = "defects") {
        cmd.args(["--features", "defects"]);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("warning: building graph-agent failed ({s}); using what is there"),
        Err(e) => eprintln!("warning: cannot run cargo to build graph-agent: {e}"),
    }
}
