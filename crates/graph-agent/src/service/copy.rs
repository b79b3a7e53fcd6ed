//! The copy job: a backup and the parents the destination lacks, copied
//! from one tier to another.

use super::Agent;
use crate::JobError;

impl Agent {
    /// Copies `backup` and every parent the destination lacks, oldest first,
    /// from one tier to another. The data comes from the source tier, checked
    /// chunk by chunk; Neo4j is not read.
    pub(super) async fn copy(
        &self,
        id: &str,
        backup: &str,
        from: &str,
        to: &str,
    ) -> Result<String, JobError> {
        self.attempt(id, || {
            Box::pin(async {
                let (src, dst) = (self.repository(from).await?, self.repository(to).await?);
                let present: std::collections::BTreeSet<String> =
                    dst.catalog().await?.into_iter().map(|e| e.id).collect();
                let concurrency = self.config.transfer.upload_concurrency as usize;
                for m in src.chain(backup).await? {
                    if present.contains(&m.id) {
                        continue;
                    }
                    let stream = src.read_stream(&m, concurrency).await?;
                    let (_, stats) = dst.write_backup(m.clone(), &stream, concurrency).await?;
                    *self
                        .metrics
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .bytes_uploaded
                        .entry(to.to_string())
                        .or_default() += stats.bytes_uploaded;
                }
                Ok(backup.to_string())
            })
        })
        .await
    }
}
