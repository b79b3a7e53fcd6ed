//! A prune step: the tier's backups and their parents read before, the
//! prune job followed, and what is left read again with the runner's own
//! reader, for `retention` to judge.

use super::*;
use crate::evidence::{PruneRecord, PrunedBackup};
use crate::scenario::PruneStep;

impl Drill<'_> {
    pub(super) async fn prune(
        &mut self,
        i: usize,
        p: &PruneStep,
        what: String,
    ) -> Result<String, StepError> {
        let tier = p.tier;
        let made: Vec<(String, Seen)> = self
            .backups
            .get(&tier)
            .into_iter()
            .flatten()
            .filter_map(|id| Some((id.clone(), self.made(id)?)))
            .collect();
        let mut parents = BTreeMap::new();
        if self.profile.has(Capability::Repository) {
            for (id, _) in &made {
                let entry = self.storage.catalog(Some(tier), id).await;
                parents.insert(id.clone(), entry.and_then(|e| e.parent));
            }
        }
        let submitted_ms = now_ms();
        let body = json!({"tier": tier.name()});
        let job = self.job_step(i, "prune", body, what, &p.expect).await;
        let (Some(job), true) = (job, self.profile.has(Capability::Repository)) else {
            return Ok(self.last_job_line());
        };
        let seen = Seen {
            submitted_ms,
            ended_ms: Some(now_ms()),
        };
        let listed: BTreeSet<String> = self
            .storage
            .objects(tier)?
            .list("catalog/")
            .await?
            .iter()
            .filter_map(|k| k.strip_prefix("catalog/")?.strip_suffix(".json"))
            .map(str::to_string)
            .collect();
        let mut backups = Vec::new();
        for (id, made) in made {
            let unreadable_after = match self.storage.backup_readable(tier.name(), &id).await {
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            backups.push(PrunedBackup {
                parent: parents.remove(&id).flatten(),
                listed_after: listed.contains(&id),
                unreadable_after,
                id,
                made,
            });
        }
        // `latest` and step ids no longer name what the prune removed.
        if let Some(ids) = self.backups.get_mut(&tier) {
            ids.retain(|id| listed.contains(id));
        }
        self.prunes.push(PruneRecord {
            step: i,
            tier,
            retention_ms: self.scenario.retention.of(tier).0.as_millis() as u64,
            job,
            seen,
            backups,
        });
        Ok(self.last_job_line())
    }

    /// How the runner saw the backup job that made `backup`.
    fn made(&self, backup: &str) -> Option<Seen> {
        self.events()
            .snapshot()
            .into_iter()
            .find_map(|e| match e.kind {
                EventKind::Job { job, seen, .. }
                    if job.kind == JobKind::Backup && job.backup.as_deref() == Some(backup) =>
                {
                    seen
                }
                _ => None,
            })
    }
}
