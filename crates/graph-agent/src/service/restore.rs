//! The restore job: a backup chain written into the empty restore target
//! and checked against the backup, or removed again if that fails.

use std::time::Duration;

use super::{Agent, now_ms};
use crate::JobError;
use crate::graph::{Decoder, Graph, Record};
use crate::source::Neo4jSource;
use graph_agent_api::FailureClass;

impl Agent {
    /// Restores `backup` (with its parents) into the empty restore target,
    /// then checks the result against the backup.
    pub(super) async fn restore(
        &self,
        id: &str,
        backup: &str,
        tier: &str,
    ) -> Result<String, JobError> {
        let target_cfg = self.config.restore.clone().ok_or_else(|| {
            JobError::new(
                FailureClass::Internal,
                "no `[restore]` database is configured",
            )
        })?;
        // Fetch (download, open, decompress, check) every backup of the chain
        // first, then decode: a damaged object fails before anything is written.
        let t = std::time::Instant::now();
        let streams = self
            .attempt(id, || {
                Box::pin(async {
                    let repo = self.repository(tier).await?;
                    let mut streams = Vec::new();
                    for m in repo.chain(backup).await? {
                        let concurrency = self.config.transfer.upload_concurrency as usize;
                        streams.push((m.id.clone(), repo.read_stream(&m, concurrency).await?));
                    }
                    Ok(streams)
                })
            })
            .await?;
        self.phase(id, "fetch", t);
        let t = std::time::Instant::now();
        let mut expected = Graph::default();
        for (backup_id, stream) in streams {
            let records = Decoder::new(&stream).records().map_err(|e| {
                JobError::new(
                    FailureClass::Integrity,
                    format!("backup `{backup_id}`: {e}"),
                )
            })?;
            // Each backup carries the whole schema as it stood.
            expected.schema.clear();
            expected.apply_all(records);
        }
        self.phase(id, "decode", t);
        let graph = self
            .attempt(id, || Box::pin(self.connect(&target_cfg, "neo4j")))
            .await?;
        if !crate::bolt::is_empty(&graph)
            .await
            .map_err(|m| JobError::new(FailureClass::Internal, m))?
        {
            return Err(JobError::new(
                FailureClass::Internal,
                format!("the restore target {} is not empty", target_cfg.uri),
            ));
        }
        // Writing and checking get the job's time but a reserve, so that a
        // restore that fails half-way still has time to remove what it wrote.
        let left = Duration::from_millis(
            self.job(id)
                .map_or(0, |j| j.deadline_ms)
                .saturating_sub(now_ms()),
        );
        let reserve = (left / 4).min(Duration::from_secs(300));
        let applied = tokio::time::timeout(left - reserve, self.apply(id, &graph, expected, backup))
            .await
            .unwrap_or_else(|_| {
                Err(JobError::new(
                    FailureClass::Deadline,
                    format!("restore not finished within the job deadline (a reserve of {reserve:?} kept to clean up)"),
                ))
            });
        let Err(mut e) = applied else {
            return Ok(backup.to_string());
        };
        // Nothing partial may be left looking complete: empty the target, or
        // say that it still holds a partial restore (its nodes keep the
        // restoring label until a restore ends).
        // A cut link may come back: keep trying until the reserve is spent.
        let cleaned = tokio::time::timeout(reserve, async {
            let mut last = String::new();
            for wait in [0u64, 1, 2, 4, 8, 16, 30, 60, 60, 60] {
                tokio::time::sleep(Duration::from_secs(wait)).await;
                match crate::bolt::wipe(&graph).await {
                    Ok(()) => return Ok(()),
                    Err(w) => last = w,
                }
            }
            Err(last)
        })
        .await
        .unwrap_or_else(|_| Err(format!("not done within {reserve:?}")));
        match cleaned {
            Ok(()) => e.message.push_str("; the partial restore was removed"),
            Err(w) => e.message.push_str(&format!(
                "; the target {} still holds a partial restore (removing it failed: {w})",
                target_cfg.uri
            )),
        }
        Err(e)
    }

    /// Writes `expected` into the empty target and checks the result. At
    /// most one copy of the graph is held at a time: the expected one while
    /// writing, the restored records while checking.
    async fn apply(
        &self,
        id: &str,
        graph: &neo4rs::Graph,
        expected: Graph,
        backup: &str,
    ) -> Result<(), JobError> {
        let t = std::time::Instant::now();
        let target = Neo4jSource::new(graph.clone()).with_limit(self.transaction_limit());
        let want = (
            expected.canonical_hash(),
            expected.nodes.len(),
            expected.rels.len(),
        );
        let total = (want.1 + want.2) as u64;
        target
            .restore(&expected, |done| {
                self.update(id, |j| {
                    j.progress = Some(graph_agent_api::Progress {
                        phase: "apply".into(),
                        done,
                        total,
                    })
                })
            })
            .await?;
        drop(expected);
        self.phase(id, "apply", t);
        let t = std::time::Instant::now();
        let restored = target.export().await?;
        if crate::graph::canonical_hash(&restored) != want.0 {
            let count = |f: fn(&Record) -> bool| restored.iter().filter(|r| f(r)).count();
            return Err(JobError::new(
                FailureClass::Integrity,
                format!(
                    "the restored graph differs from backup `{backup}` ({} nodes / {} relationships restored, {} / {} expected)",
                    count(|r| matches!(r, Record::Node(_))),
                    count(|r| matches!(r, Record::Rel(_))),
                    want.1,
                    want.2
                ),
            ));
        }
        self.phase(id, "verify", t);
        Ok(())
    }
}
