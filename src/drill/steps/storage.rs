//! What the runner reads from the tiers' storage, with its own reader and
//! its own credentials.

use super::jobs::job_tier;
use super::*;
use crate::adapter::{Ended, StoredObject};

/// The runner's own view of the tiers' storage: admin credentials, direct
/// connections, never the agent's links; and every master key the runner
/// gave the agent, to read what it stored.
#[derive(Clone)]
pub(super) struct Storage {
    pub(super) env: Arc<Environment>,
    /// The local tier's folder.
    pub(super) snapshots: std::path::PathBuf,
    pub(super) masters: Arc<std::sync::Mutex<Keys>>,
}

impl Storage {
    pub(super) fn bucket(&self, region: &'static str) -> Result<Bucket, StepError> {
        let state = self.env.state();
        let s3 = &state.s3[region];
        let creds = load_s3_credentials(&s3.admin_credentials_file)?;
        Bucket::new(&s3.url, &creds, &s3.bucket, Duration::from_secs(10)).map_err(|source| {
            StepError::Storage {
                region,
                doing: "connect",
                source: Box::new(source),
            }
        })
    }

    /// A tier's objects, as the runner reaches them.
    pub(super) fn objects(&self, tier: Tier) -> Result<Objects, StepError> {
        Ok(match tier {
            Tier::Local => Objects::Folder(self.snapshots.clone()),
            Tier::Primary => Objects::Bucket(self.bucket("s3-primary")?),
            Tier::Archive => Objects::Bucket(self.bucket("s3-archive")?),
        })
    }

    /// The catalog entry of `backup` in `tier`.
    pub(super) async fn catalog(&self, tier: Option<Tier>, backup: &str) -> Option<catalog::Entry> {
        let key = catalog::key(backup);
        let bytes = self.objects(tier?).ok()?.get(&key).await.ok()??;
        catalog::decode(&key, backup, &bytes)
            .inspect_err(|e| tracing::warn!(error = %e, "unreadable catalog entry"))
            .ok()
    }

    /// For a backup job that succeeded: whether what the agent claims is in
    /// storage. graph-agent's backup must come back whole through the
    /// judge's reader; a foreign agent's named objects must all be there.
    /// `None` when the agent makes no claim graphdrill can check.
    pub(super) async fn claim_holds(&self, profile: &Profile, ended: &Ended) -> Option<InStorage> {
        let job = &ended.job;
        let (JobKind::Backup, JobState::Succeeded, Some(id)) = (job.kind, job.state, &job.backup)
        else {
            return None;
        };
        let read = if profile.has(Capability::Repository) {
            self.backup_readable(&job.tier, id).await
        } else if profile.has(Capability::Claims) {
            let objects = ended.claim.as_ref().map_or(&[][..], |c| &c.objects[..]);
            self.objects_present(objects).await
        } else {
            return None;
        };
        Some(match read {
            Ok(detail) => InStorage {
                restorable: true,
                detail,
            },
            Err(e) => InStorage {
                restorable: false,
                detail: e.to_string(),
            },
        })
    }

    /// The judge's reader of graph-agent's repository in `tier`.
    pub(super) async fn reader(&self, tier: Tier) -> Result<Reader, StepError> {
        let masters = self
            .masters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(Reader::open(self.objects(tier)?, &masters).await?)
    }

    /// `id` read back whole from `tier`, with its chain: what was read.
    pub(super) async fn backup_readable(&self, tier: &str, id: &str) -> Result<String, StepError> {
        let tier = job_tier(tier).ok_or(StepError::UnknownTier(tier.to_string()))?;
        let v = self.reader(tier).await?.verify(id).await?;
        Ok(format!(
            "{} backups in the chain, {} chunks, {} bytes of records",
            v.chain.len(),
            v.chunks,
            v.bytes
        ))
    }

    /// Every object named is there and not empty.
    async fn objects_present(&self, objects: &[StoredObject]) -> Result<String, StepError> {
        if objects.is_empty() {
            return Err(StepError::Claim(
                "the backup's result line names no stored object".into(),
            ));
        }
        let mut bytes = 0;
        for o in objects {
            let tier = job_tier(&o.tier).ok_or(StepError::UnknownTier(o.tier.clone()))?;
            match self.objects(tier)?.get(&o.key).await? {
                Some(b) if !b.is_empty() => bytes += b.len(),
                Some(_) => {
                    return Err(StepError::Claim(format!(
                        "`{}` in {} is empty",
                        o.key, o.tier
                    )));
                }
                None => {
                    return Err(StepError::Claim(format!(
                        "`{}` is not in {}",
                        o.key, o.tier
                    )));
                }
            }
        }
        Ok(format!("{} objects, {bytes} bytes", objects.len()))
    }
}
