//! Neo4j Community run as a plain JVM process from the installed jars, with
//! auth on, a generated password and memory capped by config.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use neo4rs::{Graph, query};

pub use crate::bolt::{BoltError, connect, query_i64};

use super::backend::{Programs, Role};
use super::component::{BoxFuture, Component, Launch};
use super::{EnvError, Neo4jEndpoint, read_secret};

pub struct Neo4jServer {
    name: String,
    dir: PathBuf,
    endpoint: Neo4jEndpoint,
}

impl Neo4jServer {
    pub fn new(name: &str, dir: PathBuf, endpoint: Neo4jEndpoint) -> Self {
        Self {
            name: name.to_string(),
            dir,
            endpoint,
        }
    }

    fn conf_dir(&self) -> PathBuf {
        self.dir.join("conf")
    }

    fn config(&self, programs: &Programs) -> String {
        let d = |sub: &str| self.dir.join(sub).display().to_string();
        format!(
            "# Written by graphdrill.\n\
             server.directories.data={data}\n\
             server.directories.logs={logs}\n\
             server.directories.run={run}\n\
             server.directories.import={import}\n\
             server.directories.plugins={plugins}\n\
             server.default_listen_address=127.0.0.1\n\
             server.default_advertised_address=127.0.0.1\n\
             server.bolt.listen_address={bolt}\n\
             server.http.enabled=false\n\
             server.https.enabled=false\n\
             server.memory.heap.initial_size={heap}m\n\
             server.memory.heap.max_size={heap}m\n\
             server.memory.pagecache.size={pc}m\n\
             dbms.memory.transaction.total.max=256m\n\
             dbms.usage_report.enabled=false\n\
             dbms.security.auth_enabled=true\n\
             dbms.security.procedures.unrestricted=apoc.*\n\
             db.tx_log.rotation.retention_policy=2 files\n\
             # Bolt waits 2 x 5 s on shutdown by default; nothing here needs it.\n\
             internal.server.bolt.thread_pool_shutdown_wait_time=1s\n\
             internal.server.bolt.connection_shutdown_wait_time=1s\n",
            data = d("data"),
            logs = d("logs"),
            run = d("run"),
            import = d("import"),
            plugins = programs.neo4j_plugins.display(),
            bolt = self.endpoint.bolt,
            heap = self.endpoint.heap_mb,
            pc = self.endpoint.pagecache_mb,
        )
    }

    /// A JVM with Neo4j's classpath and a heap of `heap_mb` MiB.
    fn java(&self, programs: &Programs, heap_mb: u32) -> Command {
        let mut cmd = Command::new(&programs.java);
        cmd.arg(format!("-Xms{heap_mb}m"))
            .arg(format!("-Xmx{heap_mb}m"))
            .args([
                "-XX:+UseG1GC",
                "-XX:+ExitOnOutOfMemoryError",
                "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "--add-opens=java.base/java.io=ALL-UNNAMED",
                "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
                "--add-opens=java.base/java.lang=ALL-UNNAMED",
                "-Dio.netty.tryReflectionSetAccessible=true",
                "-Dlog4j2.disable.jmx=true",
                "-cp",
            ])
            // APOC's extensions load only from the classpath.
            .arg(format!(
                "{}:{}",
                programs.neo4j_plugins.join("*").display(),
                programs.neo4j_home.join("lib/*").display()
            ))
            .env("NEO4J_HOME", &self.dir)
            .env("NEO4J_CONF", self.conf_dir());
        cmd
    }
}

impl Neo4jServer {
    /// `neo4j-admin` for this instance (run it while the server is stopped).
    pub fn admin_tool(&self, programs: &Programs) -> Command {
        let mut cmd = self.java(programs, 512);
        cmd.arg("org.neo4j.cli.AdminTool");
        cmd
    }
}

impl Component for Neo4jServer {
    fn name(&self) -> &str {
        &self.name
    }

    fn role(&self) -> Role {
        Role::Neo4j
    }

    fn log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    fn prepare(&self, programs: &Programs) -> Result<Launch, EnvError> {
        let conf = self.conf_dir();
        for sub in ["conf", "data", "logs", "run", "import"] {
            let p = self.dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| EnvError::io(&p, e))?;
        }
        let conf_file = conf.join("neo4j.conf");
        std::fs::write(&conf_file, self.config(programs))
            .map_err(|e| EnvError::io(&conf_file, e))?;
        let apoc = conf.join("apoc.conf");
        std::fs::write(
            &apoc,
            // File export and import (inside the import folder) for the
            // side-by-side benchmark against APOC.
            "apoc.trigger.enabled=true\napoc.trigger.refresh=1000\n\
             apoc.export.file.enabled=true\napoc.import.file.enabled=true\n",
        )
        .map_err(|e| EnvError::io(&apoc, e))?;
        // The first start takes the initial password from data/dbms/auth.ini.
        let mut setup = Vec::new();
        if !self.dir.join("data/dbms/auth.ini").exists() {
            let pw = read_secret(&self.endpoint.admin_password_file)?;
            let mut set = self.admin_tool(programs);
            set.args(["dbms", "set-initial-password"]).arg(pw);
            setup.push(set);
        }
        let mut run = self.java(programs, self.endpoint.heap_mb);
        run.arg("org.neo4j.server.CommunityEntryPoint")
            .arg(format!("--home-dir={}", self.dir.display()))
            .arg(format!("--config-dir={}", conf.display()));
        Ok(Launch { setup, run })
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async {
            let graph = admin(&self.endpoint, "neo4j")
                .await
                .map_err(|e| e.to_string())?;
            match query_i64(&graph, query("RETURN 1 AS n"))
                .await
                .map_err(|e| e.to_string())?
            {
                1 => Ok(()),
                other => Err(format!("RETURN 1 gave {other}")),
            }
        })
    }

    fn startup_timeout(&self) -> Duration {
        Duration::from_secs(180)
    }

    fn provision(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        Box::pin(async {
            let err = |e: AdminError| EnvError::component(&self.name, e);
            let pw = read_secret(&self.endpoint.agent_password_file)?;
            let system = admin(&self.endpoint, "system").await.map_err(err)?;
            let create = format!(
                "CREATE USER `{}` IF NOT EXISTS SET PLAINTEXT PASSWORD $pw CHANGE NOT REQUIRED",
                self.endpoint.agent_user
            );
            system
                .run(query(&create).param("pw", pw))
                .await
                .map_err(|e| {
                    EnvError::component(&self.name, format!("creating the agent's user: {e}"))
                })
        })
    }
}

/// A call of the harness to a Neo4j instance, as its admin, that failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin password could not be read.
    #[error(transparent)]
    Secret(Box<EnvError>),
    #[error(transparent)]
    Bolt(#[from] BoltError),
}

impl From<neo4rs::Error> for AdminError {
    fn from(e: neo4rs::Error) -> Self {
        AdminError::Bolt(e.into())
    }
}

/// A session to `db` as the harness's admin user.
pub async fn admin(endpoint: &Neo4jEndpoint, db: &str) -> Result<Graph, AdminError> {
    let pw =
        read_secret(&endpoint.admin_password_file).map_err(|e| AdminError::Secret(Box::new(e)))?;
    Ok(connect(&endpoint.bolt, &endpoint.admin_user, &pw, db).await?)
}

/// Removes every APOC trigger of database `neo4j` (an agent's change
/// capture, left by an earlier drill) and waits until APOC stops running
/// them, so the next drill's fixture is written as the fixture says.
pub async fn drop_triggers(endpoint: &Neo4jEndpoint) -> Result<u64, AdminError> {
    let system = admin(endpoint, "system").await?;
    let q = query("CALL apoc.trigger.dropAll('neo4j') YIELD name RETURN count(name) AS n");
    let dropped = query_i64(&system, q).await?;
    if dropped > 0 {
        // APOC refreshes its triggers every `apoc.trigger.refresh` (1 s here).
        tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    }
    Ok(dropped as u64)
}

/// Sets a user's password as the admin (credential rotation and its heal).
pub async fn set_password(
    endpoint: &Neo4jEndpoint,
    user: &str,
    password: &str,
) -> Result<(), AdminError> {
    let system = admin(endpoint, "system").await?;
    let alter = format!("ALTER USER `{user}` SET PLAINTEXT PASSWORD $pw CHANGE NOT REQUIRED");
    match system.run(query(&alter).param("pw", password)).await {
        // Healing a fault that is not in place is not an error.
        Err(e) if e.to_string().contains("cannot be the same") => Ok(()),
        other => Ok(other?),
    }
}
