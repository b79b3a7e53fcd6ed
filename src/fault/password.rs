//! Credential rotation: the agent's Neo4j password is changed behind its
//! back, so its logins fail with an auth error; heal sets it back to the
//! value in the agent's password file.

use super::{BoxFuture, Fault, FaultError, valid};
use crate::env::{Environment, Neo4jEndpoint, neo4j, random_secret, read_secret};

pub struct RotatePassword {
    /// `neo4j` or `neo4j-recovery`.
    pub instance: String,
}

impl RotatePassword {
    pub fn new(instance: &str) -> Self {
        Self {
            instance: instance.to_string(),
        }
    }

    fn endpoint(&self, env: &Environment) -> Result<Neo4jEndpoint, FaultError> {
        let state = env.state();
        state
            .neo4j
            .get(&self.instance)
            .cloned()
            .ok_or_else(|| FaultError::UnknownTarget {
                what: "neo4j instance",
                name: self.instance.clone(),
                valid: valid(state.neo4j.keys()),
            })
    }

    async fn set(&self, env: &Environment, password: &str) -> Result<(), FaultError> {
        let endpoint = self.endpoint(env)?;
        neo4j::set_password(&endpoint, &endpoint.agent_user, password)
            .await
            .map_err(|source| FaultError::Neo4j {
                instance: self.instance.clone(),
                source,
            })
    }
}

impl Fault for RotatePassword {
    fn describe(&self) -> String {
        format!("rotation of the agent's password on {}", self.instance)
    }

    fn inject<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move { self.set(env, &random_secret(24)).await })
    }

    fn heal<'a>(&'a self, env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let endpoint = self.endpoint(env)?;
            let original = read_secret(&endpoint.agent_password_file)?;
            self.set(env, &original).await
        })
    }
}
