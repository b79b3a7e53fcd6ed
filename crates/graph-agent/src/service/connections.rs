//! Reaching Neo4j and the tiers: connections (change capture installed
//! once per run), repositories and their catalogs, and the retry policy.

use std::time::Duration;

use super::Agent;
use crate::JobError;
use crate::config::TierKind;
use crate::defect::{self, Defect};
use crate::repo::{Repository, Store};
use crate::retry::RetryPolicy;
use crate::s3::{Bucket, S3Credentials};
use crate::source::{Neo4jSource, capture};
use graph_agent_api::FailureClass;

impl Agent {
    pub(super) fn retry_policy(&self) -> RetryPolicy {
        let t = &self.config.transfer;
        RetryPolicy {
            max_retries: t.max_retries as u32,
            base: t.backoff_base.0,
            cap: t.backoff_cap.0,
        }
    }

    /// The recovery points (Unix ms) of the backups `tier`'s catalog lists.
    /// A sync lists the catalog and reads only the entries it has not seen:
    /// they are written once, so one read each is enough.
    pub async fn catalog(&self, tier: &str) -> Result<Vec<u64>, String> {
        let repo = self.repository(tier).await.map_err(|e| e.message)?;
        let objects: std::collections::BTreeSet<String> = repo
            .catalog_objects()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        let seen = || self.catalog_seen.lock().unwrap_or_else(|p| p.into_inner());
        let unseen: Vec<String> = {
            let mut all = seen();
            let known = all.entry(tier.to_string()).or_default();
            // Entries gone from the listing (pruned) are forgotten.
            known.retain(|o, _| objects.contains(o));
            objects
                .iter()
                .filter(|o| !known.contains_key(*o))
                .cloned()
                .collect()
        };
        for object in unseen {
            let entry = repo
                .catalog_entry(&object)
                .await
                .map_err(|e| e.to_string())?;
            // Kept as read: a sync its timeout cuts off still counts.
            seen()
                .entry(tier.to_string())
                .or_default()
                .insert(object, entry.recovery_point.time_ms);
        }
        Ok(seen()[tier].values().copied().collect())
    }

    pub(super) async fn connect(
        &self,
        which: &crate::config::Neo4jSource,
        db: &str,
    ) -> Result<neo4rs::Graph, JobError> {
        let password = std::fs::read_to_string(&which.password_file)
            .map(|s| s.trim().to_string())
            .map_err(|e| {
                JobError::new(
                    FailureClass::Internal,
                    format!("`{}`: {e}", which.password_file.display()),
                )
            })?;
        let refused = |m: String| {
            JobError::from(crate::source::SourceError {
                op: "connect",
                message: m,
            })
        };
        // The driver retries refused connections for up to a minute on its
        // own; one attempt gets `request_timeout`, and the retry policy
        // decides what follows.
        let limit = self.config.transfer.request_timeout.0;
        tokio::time::timeout(limit, async {
            let graph = crate::bolt::connect(&which.uri, &which.user, &password, db)
                .await
                .map_err(refused)?;
            // A cheap round trip, so bad credentials fail here, clearly (the
            // system database runs only administration commands).
            if db != "system" {
                crate::bolt::query_i64(&graph, neo4rs::query("RETURN 1 AS n"))
                    .await
                    .map_err(refused)?;
            }
            Ok(graph)
        })
        .await
        .unwrap_or_else(|_| {
            Err(JobError::new(
                FailureClass::Timeout,
                format!("neo4j at {}: no connection within {limit:?}", which.uri),
            ))
        })
    }

    /// The source, with change capture installed (once per agent run).
    pub(super) async fn source(&self, id: &str) -> Result<Neo4jSource, JobError> {
        let graph = self
            .attempt(id, || Box::pin(self.connect(&self.config.neo4j, "neo4j")))
            .await?;
        self.capture_ready
            .get_or_try_init(|| async {
                let system = self.connect(&self.config.neo4j, "system").await?;
                capture::install(&graph, &system, Duration::from_secs(30)).await?;
                Neo4jSource::new(graph.clone())
                    .with_limit(self.transaction_limit())
                    .assign_ids()
                    .await?;
                Ok::<(), JobError>(())
            })
            .await?;
        Ok(Neo4jSource::new(graph))
    }

    /// How long one write transaction may take: a request's timeout for
    /// each of its round trips (begin, run, pull, commit).
    pub(super) fn transaction_limit(&self) -> Duration {
        self.config.transfer.request_timeout.0 * 4
    }

    /// Opens a tier's repository.
    pub(super) async fn repository(&self, tier: &str) -> Result<Repository, JobError> {
        let t = self
            .tier(tier)
            .ok_or_else(|| JobError::new(FailureClass::Internal, format!("no tier `{tier}`")))?;
        let store = match t.kind {
            TierKind::Local => Store::Local(t.path.clone().unwrap_or_default()),
            TierKind::S3 => {
                let creds_file = t.credentials_file.clone().unwrap_or_default();
                let text = std::fs::read_to_string(&creds_file).map_err(|e| {
                    JobError::new(
                        FailureClass::Internal,
                        format!("`{}`: {e}", creds_file.display()),
                    )
                })?;
                let creds: S3Credentials = serde_json::from_str(&text).map_err(|e| {
                    JobError::new(
                        FailureClass::Internal,
                        format!("`{}`: {e}", creds_file.display()),
                    )
                })?;
                let bucket = Bucket::new(
                    t.endpoint.as_deref().unwrap_or_default(),
                    &creds,
                    t.bucket.as_deref().unwrap_or_default(),
                    if defect::active(Defect::HangOnConnection) {
                        Duration::from_secs(365 * 86_400)
                    } else {
                        self.config.transfer.request_timeout.0
                    },
                )
                .map_err(|e| JobError::new(FailureClass::Internal, e.to_string()))?;
                Store::S3(bucket)
            }
        };
        let keyring = self
            .keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let repo = Repository::open(store, keyring).await?;
        // Data keys fetched from the tier are held from now on.
        self.keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .learn(repo.keyring());
        Ok(repo)
    }
}
