//! A restore step: the recovery database emptied, the job followed, and
//! what it restored read by the judge's reader.

use super::*;

impl Drill<'_> {
    pub(super) async fn restore(
        &mut self,
        i: usize,
        tier: Tier,
        reference: &str,
        expect: &Option<JobExpect>,
        what: String,
    ) -> Result<String, StepError> {
        let Some(backup) = self.resolve(reference, tier) else {
            return Ok(self.nothing_to(i, "restore", tier, expect, what));
        };
        let recovery = self.admin("neo4j-recovery").await?;
        crate::bolt::wipe(&recovery)
            .await
            .map_err(|e| StepError::Neo4j {
                instance: "neo4j-recovery",
                doing: "empty the database",
                source: e.into(),
            })?;
        let disaster_ms = now_ms();
        let body = json!({"backup": backup, "tier": tier.name()});
        let Some(job) = self.job_step(i, "restores", body, what, expect).await else {
            return Ok(self.last_job_line());
        };
        // A new session: an agent may have restarted the server to restore.
        let recovery = self.admin("neo4j-recovery").await?;
        let mut record = RestoreRecord {
            step: i,
            tier,
            backup: backup.clone(),
            job: job.clone(),
            disaster_ms,
            queryable_ms: None,
            graph: None,
            claimed_ms: self.claimed_ms(tier, &backup).await,
            subgraphs: BTreeMap::new(),
            left_nodes: None,
        };
        if job.state == JobState::Failed {
            let q = query("MATCH (n) RETURN count(n) AS n");
            record.left_nodes = crate::bolt::query_i64(&recovery, q).await.ok();
        }
        if job.state == JobState::Succeeded {
            let n =
                crate::bolt::query_i64(&recovery, query("MATCH (n) RETURN count(n) AS n")).await;
            if n.is_ok() {
                record.queryable_ms = Some(now_ms());
                self.events().push(EventKind::Queryable {
                    step: i,
                    job: job.id.clone(),
                });
            }
            record.graph = Some(graph::read::read(&recovery).await?);
            record.subgraphs = self.subgraph_ids(&recovery).await?;
        }
        self.restores.push(record);
        Ok(self.last_job_line())
    }

    /// The recovery point the agent claims for `backup`: graph-agent's
    /// catalog, read from storage, or what a foreign agent said.
    async fn claimed_ms(&self, tier: Tier, backup: &str) -> Option<u64> {
        if self.profile.has(Capability::Repository) {
            let entry = self.storage.catalog(Some(tier), backup).await;
            entry.map(|c| c.recovery_point.time_ms)
        } else {
            self.claims.get(backup)?.recovery_point_ms
        }
    }

    /// Node ids of each named subgraph, as its Cypher finds them in `graph`.
    pub(super) async fn subgraph_ids(
        &self,
        graph: &neo4rs::Graph,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, StepError> {
        let mut out = BTreeMap::new();
        for s in &self.scenario.expect.subgraph {
            let failed = |message: String| StepError::Subgraph {
                name: s.name.clone(),
                message,
            };
            let mut ids = BTreeSet::new();
            let mut rows = graph
                .execute(query(&s.cypher))
                .await
                .map_err(|e| failed(e.to_string()))?;
            while let Some(row) = rows.next().await.map_err(|e| failed(e.to_string()))? {
                let id: String = row
                    .get("id")
                    .map_err(|e| failed(format!("column `id`: {e}")))?;
                ids.insert(id);
            }
            out.insert(s.name.clone(), ids);
        }
        Ok(out)
    }
}
