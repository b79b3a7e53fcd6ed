//! The verify job: every backup of a chain re-read from its tier (a sample
//! of its chunks) and checked, without restoring.

use super::Agent;
use crate::JobError;
use crate::defect::{self, Defect};

impl Agent {
    pub(super) async fn verify(
        &self,
        id: &str,
        backup: &str,
        tier: &str,
        sample: f64,
    ) -> Result<String, JobError> {
        self.attempt(id, || {
            Box::pin(async {
                let repo = self.repository(tier).await?;
                for m in repo.chain(backup).await? {
                    if !defect::active(Defect::VerifyChecksNothing) {
                        repo.verify(&m.id, sample).await?;
                    }
                }
                Ok(backup.to_string())
            })
        })
        .await
    }
}
