//! Heartbeats: a task of its own that POSTs to the control endpoint every
//! interval. It never waits on a job and no job waits on it; a failed
//! heartbeat is counted and the next one goes out on time.

use std::sync::Arc;

use super::defect::{self, Defect};
use super::service::{Agent, now_ms};
use graph_agent_api::Heartbeat;

/// Sends heartbeats until the returned task is aborted.
pub fn spawn(agent: Arc<Agent>) -> tokio::task::JoinHandle<()> {
    let interval = agent.config.heartbeat.interval.0;
    // A beat is worth delivering until the receiver would call us offline;
    // a shorter timeout turns a slow link into a false "offline".
    let timeout = agent.config.heartbeat.offline_threshold.0;
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("a default reqwest client builds");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sequence = 0u64;
        loop {
            tick.tick().await;
            if defect::active(Defect::QuietHeartbeats) && agent.summary().running > 0 {
                continue;
            }
            sequence += 1;
            let beat = Heartbeat {
                agent_id: agent.config.agent.id.clone(),
                version: agent.config.agent.version.clone(),
                sent_ms: now_ms(),
                sequence,
                jobs: agent.summary(),
                last_success_ms: agent
                    .metrics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_success_ms,
            };
            // Each beat is sent on its own task, so a slow endpoint never
            // delays the next one.
            let (http, url, agent) = (
                http.clone(),
                agent.config.heartbeat.url.clone(),
                agent.clone(),
            );
            tokio::spawn(async move {
                let sent = http.post(&url).json(&beat).send().await;
                if let Err(e) = sent.and_then(|r| r.error_for_status()) {
                    tracing::debug!(error = %e, "heartbeat failed");
                    agent
                        .metrics
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .heartbeat_failures += 1;
                }
            });
        }
    })
}
