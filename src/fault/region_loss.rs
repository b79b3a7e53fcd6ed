//! Region loss: the region's S3 server is killed (SIGKILL), optionally with
//! its data wiped; heal starts it again (with an empty, re-created bucket if
//! the data was wiped).

use super::{BoxFuture, Fault, FaultError, valid};
use crate::env::Environment;

pub struct RegionLoss {
    /// `s3-primary` or `s3-archive`.
    pub region: String,
    /// Also delete the region's data, as a destroyed site would.
    pub wipe: bool,
}

impl RegionLoss {
    pub fn new(region: &str, wipe: bool) -> Self {
        Self {
            region: region.to_string(),
            wipe,
        }
    }
}

impl Fault for RegionLoss {
    fn describe(&self) -> String {
        let how = if self.wipe { " with its data" } else { "" };
        format!("loss of region {}{how}", self.region)
    }

    fn inject<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let state = env.state();
            let endpoint = state
                .s3
                .get(&self.region)
                .ok_or_else(|| FaultError::UnknownTarget {
                    what: "region",
                    name: self.region.clone(),
                    valid: valid(state.s3.keys()),
                })?;
            env.kill_component(&self.region)?;
            if self.wipe {
                let dir = &endpoint.data_dir;
                std::fs::remove_dir_all(dir).map_err(|e| crate::env::EnvError::Io {
                    path: dir.clone(),
                    source: e,
                })?;
            }
            Ok(())
        })
    }

    fn heal<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let running = env
                .alive()
                .iter()
                .any(|(name, alive)| *name == self.region && *alive);
            if !running {
                env.start_component(&self.region).await?;
            }
            Ok(())
        })
    }
}
