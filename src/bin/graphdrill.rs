//! `graphdrill`: the command line. Errors become one clear message and an
//! exit code from the table in [`exit`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use graphdrill::env::{self, EnvError, EnvOptions, Environment, Tool, Tools};

/// Exit codes, documented in the README.
mod exit {
    /// Bad input: a usage error, a bad setting, a missing prerequisite.
    pub const BAD_INPUT: u8 = 2;
    /// The environment failed: a component did not start, died, or timed out.
    pub const ENVIRONMENT: u8 = 3;
}

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
        }) => {
            let opts = EnvOptions {
                neo4j_heap_mb,
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
        Command::Env(EnvCommand::Down { which }) => {
            let env = Environment::attach(&home, &which.options().state_dir(&home))?;
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
        let pid = state.processes.get(&name).map_or(0, |p| p.pid);
        let what = if let Some(n) = state.neo4j.get(&name) {
            format!("bolt://{}", n.bolt)
        } else if let Some(s) = state.s3.get(&name) {
            format!("{} bucket `{}`", s.url, s.bucket)
        } else {
            state.toxiproxy_api.clone()
        };
        let alive = if alive { "up" } else { "DOWN" };
        println!("  {name:<16} {alive:<5} pid {pid:<8} {what}");
    }
    for (name, link) in &state.links {
        println!("  link {name:<22} {} -> {}", link.listen, link.upstream);
    }
}
