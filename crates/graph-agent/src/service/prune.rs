//! The prune job: a tier's backups past their retention, and the chunks
//! nothing references any more, removed.

use super::{Agent, now_ms};
use crate::{JobError, repo};

impl Agent {
    /// Removes the tier's backups older than its retention (keeping every
    /// chain a retained backup needs) and the chunks nothing references.
    pub(super) async fn prune(&self, id: &str, tier: &str) -> Result<repo::PruneReport, JobError> {
        let retention = self
            .tier(tier)
            .map(|t| t.retention.0.as_millis() as u64)
            .unwrap_or(u64::MAX);
        let report = self
            .attempt(id, || {
                Box::pin(async {
                    let repo = self.repository(tier).await?;
                    repo.prune(now_ms(), retention)
                        .await
                        .map_err(JobError::from)
                })
            })
            .await?;
        tracing::info!(tier, removed = ?report.backups_removed, chunks = report.chunks_removed, "pruned");
        Ok(report)
    }
}
