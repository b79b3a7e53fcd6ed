//! The backup job: a consistent cut of Neo4j, full or incremental on the
//! tier's last backup, encoded and stored in a tier.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Agent, TierState, now_ms};
use crate::JobError;
use crate::defect::{self, Defect};
use crate::graph::{Encoder, Record};
use crate::repo::{self, Manifest, RecoveryPoint};
use crate::source::{Neo4jSource, capture};
use graph_agent_api::{BackupKind, FailureClass};

impl Agent {
    /// Takes a cut and stores it in `tier`; returns the backup's id.
    pub(super) async fn backup(
        &self,
        id: &str,
        kind: BackupKind,
        tier: &str,
    ) -> Result<String, JobError> {
        let source = self.source(id).await?;
        let parent = match kind {
            BackupKind::Full => None,
            BackupKind::Incremental => self
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .tiers
                .get(tier)
                .cloned(),
        };
        // The parent must still be in the tier (a lost region takes it along);
        // without it an incremental could never be restored, so take a full.
        let parent = match parent {
            Some(p) => {
                let key = repo::catalog_key(&p.backup);
                let present = self
                    .attempt(id, || {
                        Box::pin(async {
                            let repo = self.repository(tier).await?;
                            repo.store()
                                .stat(&key)
                                .await
                                .map_err(|e| JobError::from(repo::RepoError::from(e)))
                        })
                    })
                    .await?;
                present.is_some().then_some(p)
            }
            None => None,
        };
        let kind = if parent.is_some() {
            BackupKind::Incremental
        } else {
            BackupKind::Full
        };
        self.update(id, |j| j.backup_kind = Some(kind));
        let since = parent.as_ref().map(|p| p.seq);
        let t = std::time::Instant::now();
        // A retry reconnects first: on the old connections the driver would
        // wait out a partition by itself, unbounded by the retry policy.
        let retry = std::sync::atomic::AtomicBool::new(false);
        let mut cut = self
            .attempt(id, || {
                Box::pin(async {
                    if retry.swap(true, Ordering::SeqCst) {
                        let graph = self.connect(&self.config.neo4j, "neo4j").await?;
                        return Neo4jSource::new(graph)
                            .cut(since)
                            .await
                            .map_err(JobError::from);
                    }
                    source.cut(since).await.map_err(JobError::from)
                })
            })
            .await?;
        if defect::active(Defect::DropDeletions) {
            cut.records
                .retain(|r| !matches!(r, Record::DeleteNode(_) | Record::DeleteRel(_)));
        }
        self.phase(id, "cut", t);
        let t = std::time::Instant::now();
        let mut enc = Encoder::default();
        for r in &cut.records {
            enc.record(r);
        }
        let backup_id = format!("{}-{:04x}", cut.time_ms, rand::random::<u16>());
        let manifest = Manifest::new(
            &backup_id,
            parent.as_ref().map(|p| p.backup.clone()),
            now_ms(),
            RecoveryPoint {
                time_ms: cut.time_ms,
                seq: cut.seq,
            },
            &cut.records,
        );
        self.phase(id, "encode", t);
        let t = std::time::Instant::now();
        let concurrency = self.config.transfer.upload_concurrency as usize;
        let (_, stats) = if defect::active(Defect::EarlySuccess) {
            let repo = self.repository(tier).await?;
            let (m, bytes) = (manifest.clone(), enc.bytes().to_vec());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = repo.write_backup(m, &bytes, concurrency).await;
            });
            (manifest.clone(), Default::default())
        } else {
            self.attempt(id, || {
                Box::pin(async {
                    let repo = self.repository(tier).await?;
                    repo.write_backup(manifest.clone(), enc.bytes(), concurrency)
                        .await
                        .map_err(JobError::from)
                })
            })
            .await?
        };
        self.phase(id, "upload", t);
        *self
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bytes_uploaded
            .entry(tier.to_string())
            .or_default() += stats.bytes_uploaded;
        self.update(id, |j| j.backup = Some(backup_id.clone()));
        let keep = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.tiers.insert(
                tier.to_string(),
                TierState {
                    backup: backup_id.clone(),
                    seq: cut.seq,
                },
            );
            let file = self.config.agent.state_dir.join("state.json");
            let tmp = file.with_extension("json.tmp");
            std::fs::write(
                &tmp,
                serde_json::to_vec_pretty(&*state).expect("state serializes"),
            )
            .and_then(|_| std::fs::rename(&tmp, &file))
            .map_err(|e| {
                JobError::new(FailureClass::Internal, format!("`{}`: {e}", file.display()))
            })?;
            // Change records older than every tier's last backup are no longer needed.
            let all = self
                .config
                .tiers
                .iter()
                .all(|t| state.tiers.contains_key(&t.name));
            all.then(|| state.tiers.values().map(|t| t.seq).min().unwrap_or(0))
        };
        if let Some(seq) = keep
            && let Err(e) =
                capture::prune(&self.connect(&self.config.neo4j, "neo4j").await?, seq).await
        {
            tracing::warn!(error = %e, "pruning change records failed; will retry after the next backup");
        }
        Ok(backup_id)
    }
}
