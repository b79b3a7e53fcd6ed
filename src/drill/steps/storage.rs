//! What the runner reads from the tiers' storage, with its own reader and
//! its own credentials.

use super::jobs::job_tier;
use super::*;

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

    /// For a backup job that succeeded: whether the judge's reader gets the
    /// whole backup back from its tier.
    pub(super) async fn claim_holds(&self, job: &Job) -> Option<InStorage> {
        let (JobKind::Backup, JobState::Succeeded, Some(id)) = (job.kind, job.state, &job.backup)
        else {
            return None;
        };
        let masters = self
            .masters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let read = async {
            let tier = job_tier(&job.tier).ok_or(StepError::UnknownTier(job.tier.clone()))?;
            let reader = Reader::open(self.objects(tier)?, &masters).await?;
            Ok::<_, StepError>(reader.verify(id).await?)
        };
        Some(match read.await {
            Ok(v) => InStorage {
                restorable: true,
                detail: format!(
                    "{} backups in the chain, {} chunks, {} bytes of records",
                    v.chain.len(),
                    v.chunks,
                    v.bytes
                ),
            },
            Err(e) => InStorage {
                restorable: false,
                detail: e.to_string(),
            },
        })
    }
}
