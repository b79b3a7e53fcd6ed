//! The runner's side of the control channel: it receives the agent's
//! heartbeats (through the agent's `control` link) and records each as an
//! event; whether the agent looked offline is judged later, from the data.

use std::sync::Arc;

use axum::{Json, Router, extract::State, routing::post};

use super::store::Events;
use crate::api::Heartbeat;
use crate::history::EventKind;

/// A heartbeat endpoint on `127.0.0.1:port`, stopped on drop.
pub struct Receiver {
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(port: u16, events: Events) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let app = Router::new()
            .route("/heartbeat", post(beat))
            .with_state(Arc::new(events));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "heartbeat receiver stopped");
            }
        });
        Ok(Self { task })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn beat(State(events): State<Arc<Events>>, Json(hb): Json<Heartbeat>) {
    events.push(EventKind::Heartbeat {
        sequence: hb.sequence,
        sent_ms: hb.sent_ms,
    });
}
