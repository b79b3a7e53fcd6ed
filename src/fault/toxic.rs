//! A Toxiproxy toxic on one of the agent's links: latency with jitter,
//! timeout, reset_peer, bandwidth, slow_close.

use super::{BoxFuture, Fault, FaultError};
use crate::env::toxiproxy::Toxic;
use crate::env::{Environment, Link};

pub struct LinkToxic {
    pub link: Link,
    pub toxic: Toxic,
}

impl LinkToxic {
    pub fn new(link: Link, toxic: Toxic) -> Self {
        Self { link, toxic }
    }
}

impl Fault for LinkToxic {
    fn describe(&self) -> String {
        format!("{} on {}", self.toxic.kind, self.link)
    }

    fn inject<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            env.toxiproxy()
                .add_toxic(self.link.name(), &self.toxic)
                .await?;
            Ok(())
        })
    }

    fn heal<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let proxy = env.toxiproxy();
            let present = proxy.toxics(self.link.name()).await?;
            if present.contains(&self.toxic.name) {
                proxy
                    .remove_toxic(self.link.name(), &self.toxic.name)
                    .await?;
            }
            Ok(())
        })
    }
}
