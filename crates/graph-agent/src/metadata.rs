//! The metadata sync: every `transfer.metadata_sync` the agent reads each
//! tier's catalog, so `/health` and `/metrics` say what every tier holds
//! right now (how many backups, the newest recovery point) or that it
//! cannot be read, rather than what the agent last wrote there. A region
//! lost between two backups shows here before the next backup finds it.

use std::sync::Arc;

use serde::Serialize;

use super::service::{Agent, now_ms};

/// A tier as the last sync saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TierStatus {
    /// When the sync ended (Unix ms).
    pub synced_ms: u64,
    /// Backups listed in the catalog; `None` if it could not be read.
    pub backups: Option<usize>,
    /// The newest recovery point among them (Unix ms).
    pub newest_recovery_point_ms: Option<u64>,
    /// Why the catalog could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Syncs now and then every `transfer.metadata_sync`, until the process ends.
pub fn spawn(agent: Arc<Agent>) {
    let every = agent.config.transfer.metadata_sync.0;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for tier in agent.config.tiers.iter().map(|t| t.name.clone()) {
                // One sync never runs into the next.
                let read = tokio::time::timeout(every, agent.catalog(&tier))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {every:?}")));
                let status = match read {
                    Ok(points) => TierStatus {
                        synced_ms: now_ms(),
                        backups: Some(points.len()),
                        newest_recovery_point_ms: points.into_iter().max(),
                        error: None,
                    },
                    Err(e) => {
                        tracing::warn!(%tier, error = %e, "metadata sync: cannot read the catalog");
                        TierStatus {
                            synced_ms: now_ms(),
                            error: Some(e),
                            ..TierStatus::default()
                        }
                    }
                };
                agent.set_tier_status(&tier, status);
            }
        }
    });
}
