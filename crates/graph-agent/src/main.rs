//! `graph-agent`: the backup agent. `serve` runs the control API and
//! heartbeats; the other commands run one job in the foreground.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use graph_agent::config::AgentConfig;
use graph_agent::service::Agent;
use graph_agent::{heartbeat, metadata, schedule, server};
use graph_agent_api::{BackupKind, Job, JobState, exit};

/// Consistent, encrypted, tiered Neo4j backups with restore and verification.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The agent's settings (TOML); GRAPH_AGENT_<SECTION>__<FIELD> overrides.
    #[arg(long, short, required_unless_present = "list_defects")]
    config: Option<PathBuf>,
    /// Print the names of the deliberate bugs this build can switch on with
    /// GRAPH_AGENT_DEFECTS (none without the `defects` feature), and exit.
    #[arg(long)]
    list_defects: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the control API and send heartbeats until SIGINT or SIGTERM.
    Serve,
    /// Take one backup into a tier.
    Backup {
        #[arg(long, value_parser = ["full", "incremental"], default_value = "full")]
        kind: String,
        #[arg(long)]
        tier: String,
    },
    /// Restore a backup (and its parents) into the `[restore]` database.
    Restore {
        #[arg(long)]
        backup: String,
        #[arg(long)]
        tier: String,
    },
    /// Remove a tier's backups older than its retention, and unreferenced chunks.
    Prune {
        #[arg(long)]
        tier: String,
    },
    /// Copy a backup and its parents to another tier, without reading Neo4j.
    Copy {
        #[arg(long)]
        backup: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Re-read and check a backup's chunks without restoring.
    Verify {
        #[arg(long)]
        backup: String,
        #[arg(long)]
        tier: String,
        /// Fraction of chunks to check, in (0, 1].
        #[arg(long, default_value_t = 1.0)]
        sample: f64,
    },
}

fn main() -> ExitCode {
    graph_agent::init_logging("GRAPH_AGENT_LOG");
    let cli = Cli::parse();
    let (Some(path), Some(command)) = (&cli.config, cli.command) else {
        if cfg!(feature = "defects") {
            for d in graph_agent::defect::Defect::ALL {
                println!("{}", d.name());
            }
        }
        return ExitCode::SUCCESS;
    };
    let config = match AgentConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let agent = match Agent::new(config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    runtime.block_on(run(agent, command))
}

async fn run(agent: Arc<Agent>, command: Command) -> ExitCode {
    let job = match command {
        Command::Serve => return serve(agent).await,
        Command::Backup { kind, tier } => {
            let kind = if kind == "full" {
                BackupKind::Full
            } else {
                BackupKind::Incremental
            };
            agent.submit_backup(kind, &tier)
        }
        Command::Restore { backup, tier } => agent.submit_restore(&backup, &tier),
        Command::Verify {
            backup,
            tier,
            sample,
        } => agent.submit_verify(&backup, &tier, sample),
        Command::Prune { tier } => agent.submit_prune(&tier),
        Command::Copy { backup, from, to } => agent.submit_copy(&backup, &from, &to),
    };
    let done = wait(&agent, &job).await;
    println!(
        "{}",
        serde_json::to_string_pretty(&done).expect("job serializes")
    );
    if done.state == JobState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    }
}

/// Polls a job until it is terminal (its deadline bounds the wait).
async fn wait(agent: &Agent, job: &Job) -> Job {
    loop {
        let now = agent.job(&job.id).expect("submitted jobs stay listed");
        if now.state.is_terminal() {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn serve(agent: Arc<Agent>) -> ExitCode {
    let addr = format!("{}:{}", agent.config.agent.host, agent.config.agent.port);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr} (`agent.host`, `agent.port`): {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    tracing::info!(%addr, agent = %agent.config.agent.id, "serving the control API");
    let beats = heartbeat::spawn(agent.clone());
    schedule::spawn(agent.clone());
    metadata::spawn(agent.clone());
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    };
    let served = axum::serve(listener, server::router(agent))
        .with_graceful_shutdown(shutdown)
        .await;
    beats.abort();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::FAILED)
        }
    }
}
