//! A partition of one link: the proxy is disabled, so new connections are
//! refused and open ones dropped, until healed.

use super::{BoxFuture, Fault, FaultError};
use crate::env::{Environment, Link};

pub struct Partition {
    pub link: Link,
}

impl Fault for Partition {
    fn describe(&self) -> String {
        format!("partition of {}", self.link)
    }

    fn inject<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            env.toxiproxy().set_enabled(self.link.name(), false).await?;
            Ok(())
        })
    }

    fn heal<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            env.toxiproxy().set_enabled(self.link.name(), true).await?;
            Ok(())
        })
    }
}
