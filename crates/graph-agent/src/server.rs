//! The control API over HTTP. Every endpoint but `/health` needs the bearer
//! token; errors are JSON [`ApiError`]s.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::defect::{self, Defect};
use super::service::Agent;
use graph_agent_api::{
    ApiError, BackupRequest, CopyRequest, JobKind, JobState, PruneRequest, RestoreRequest,
    VerifyRequest,
};

fn error(status: StatusCode, class: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            class: class.to_string(),
            message: message.into(),
        }),
    )
        .into_response()
}

/// The API's routes.
pub fn router(agent: Arc<Agent>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/backups", post(create_backup).get(list_backups))
        .route("/v1/backups/{id}", get(get_job))
        .route("/v1/restores", post(create_restore))
        .route("/v1/restores/{id}", get(get_job))
        .route("/v1/prune", post(create_prune))
        .route("/v1/prune/{id}", get(get_job))
        .route("/v1/copies", post(create_copy))
        .route("/v1/copies/{id}", get(get_job))
        .route("/v1/verify", post(create_verify))
        .route("/v1/verify/{id}", get(get_job))
        .layer(axum::middleware::from_fn_with_state(
            agent.clone(),
            require_token,
        ));
    Router::new()
        .route(&agent.config.agent.health_path.clone(), get(health))
        .merge(protected)
        .with_state(agent)
}

async fn require_token(State(agent): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(t) if agent.token_matches(t) || defect::active(Defect::AnyToken) => {
            next.run(req).await
        }
        _ => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        ),
    }
}

/// Liveness, and readiness of each dependency (checked with short timeouts).
async fn health(State(agent): State<Arc<Agent>>) -> Response {
    let cfg = &agent.config;
    let mut targets = vec![("neo4j".to_string(), cfg.neo4j.uri.clone())];
    for tier in &cfg.tiers {
        if let Some(endpoint) = &tier.endpoint {
            let addr = endpoint
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string();
            targets.push((format!("tier:{}", tier.name), addr));
        }
    }
    let mut deps = serde_json::Map::new();
    let mut ready = true;
    for (name, addr) in targets {
        // A TCP connect is enough to tell reachable from not, and never blocks a worker.
        let connect = tokio::net::TcpStream::connect(addr.clone());
        let ok = matches!(
            tokio::time::timeout(Duration::from_millis(500), connect).await,
            Ok(Ok(_))
        );
        ready &= ok;
        deps.insert(name, json!({ "ok": ok, "address": addr }));
    }
    let (master, data_key, since) = agent.key_status();
    Json(json!({
        "status": if ready { "ok" } else { "degraded" },
        "agent": cfg.agent.id,
        "service": cfg.agent.service_name,
        "version": cfg.agent.version,
        "environment": cfg.agent.environment,
        "dependencies": deps,
        "tiers": agent.tier_status(),
        "encryption": { "master_key": master, "data_key": data_key, "data_key_since_ms": since },
    }))
    .into_response()
}

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// The request body, or why it is a bad request (bad JSON, unknown tier).
fn accept<T>(agent: &Agent, body: Body<T>, tier: impl Fn(&T) -> &str) -> Result<T, String> {
    let Json(req) = body.map_err(|e| e.body_text())?;
    match agent.tier(tier(&req)) {
        Some(_) => Ok(req),
        None => Err(format!("no tier `{}`", tier(&req))),
    }
}

fn bad_request(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn accepted(job: graph_agent_api::Job) -> Response {
    (StatusCode::ACCEPTED, Json(job)).into_response()
}

async fn create_backup(State(agent): State<Arc<Agent>>, body: Body<BackupRequest>) -> Response {
    match accept(&agent, body, |r| &r.tier) {
        Ok(req) => accepted(agent.submit_backup(req.kind, &req.tier)),
        Err(m) => bad_request(m),
    }
}

async fn create_restore(State(agent): State<Arc<Agent>>, body: Body<RestoreRequest>) -> Response {
    match accept(&agent, body, |r| &r.tier) {
        Ok(req) => accepted(agent.submit_restore(&req.backup, &req.tier)),
        Err(m) => bad_request(m),
    }
}

async fn create_prune(State(agent): State<Arc<Agent>>, body: Body<PruneRequest>) -> Response {
    match accept(&agent, body, |r| &r.tier) {
        Ok(req) => accepted(agent.submit_prune(&req.tier)),
        Err(m) => bad_request(m),
    }
}

async fn create_copy(State(agent): State<Arc<Agent>>, body: Body<CopyRequest>) -> Response {
    let req = match accept(&agent, body, |r| &r.from) {
        Ok(req) => req,
        Err(m) => return bad_request(m),
    };
    if agent.tier(&req.to).is_none() || req.to == req.from {
        return bad_request(format!(
            "`to` = `{}`: must be another configured tier",
            req.to
        ));
    }
    accepted(agent.submit_copy(&req.backup, &req.from, &req.to))
}

async fn create_verify(State(agent): State<Arc<Agent>>, body: Body<VerifyRequest>) -> Response {
    let req = match accept(&agent, body, |r| &r.tier) {
        Ok(req) => req,
        Err(m) => return bad_request(m),
    };
    let sample = req.sample.unwrap_or(1.0);
    if !(sample > 0.0 && sample <= 1.0) {
        return bad_request(format!("`sample` = {sample}: must be in (0, 1]"));
    }
    accepted(agent.submit_verify(&req.backup, &req.tier, sample))
}

async fn list_backups(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.jobs(JobKind::Backup)).into_response()
}

async fn get_job(State(agent): State<Arc<Agent>>, Path(id): Path<String>) -> Response {
    match agent.job(&id) {
        Some(job) => Json(job).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", format!("no job `{id}`")),
    }
}

/// Prometheus text format.
async fn metrics(State(agent): State<Arc<Agent>>) -> Response {
    use std::fmt::Write;
    let mut out = String::new();
    let summary = agent.summary();
    let _ = writeln!(out, "# TYPE graph_agent_jobs gauge");
    for (state, n) in [
        (JobState::Queued, summary.queued),
        (JobState::Running, summary.running),
        (JobState::Succeeded, summary.succeeded),
        (JobState::Failed, summary.failed),
    ] {
        let _ = writeln!(
            out,
            "graph_agent_jobs{{state=\"{}\"}} {n}",
            format!("{state:?}").to_lowercase()
        );
    }
    let m = agent.metrics.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(out, "# TYPE graph_agent_job_duration_seconds histogram");
    for kind in [
        JobKind::Backup,
        JobKind::Restore,
        JobKind::Verify,
        JobKind::Copy,
    ] {
        let k = format!("{kind:?}").to_lowercase();
        let secs: Vec<f64> = m
            .job_seconds
            .iter()
            .filter(|(j, _)| *j == kind)
            .map(|(_, s)| *s)
            .collect();
        for le in [1.0, 5.0, 30.0, 120.0, 600.0, 1800.0, 7200.0] {
            let n = secs.iter().filter(|s| **s <= le).count();
            let _ = writeln!(
                out,
                "graph_agent_job_duration_seconds_bucket{{kind=\"{k}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "graph_agent_job_duration_seconds_bucket{{kind=\"{k}\",le=\"+Inf\"}} {}",
            secs.len()
        );
        let _ = writeln!(
            out,
            "graph_agent_job_duration_seconds_sum{{kind=\"{k}\"}} {}",
            secs.iter().sum::<f64>()
        );
        let _ = writeln!(
            out,
            "graph_agent_job_duration_seconds_count{{kind=\"{k}\"}} {}",
            secs.len()
        );
    }
    let _ = writeln!(out, "# TYPE graph_agent_uploaded_bytes_total counter");
    for (tier, n) in &m.bytes_uploaded {
        let _ = writeln!(
            out,
            "graph_agent_uploaded_bytes_total{{tier=\"{tier}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# TYPE graph_agent_retries_total counter");
    for (class, n) in &m.retries {
        let _ = writeln!(out, "graph_agent_retries_total{{class=\"{class}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# TYPE graph_agent_last_success_timestamp_seconds gauge"
    );
    let _ = writeln!(
        out,
        "graph_agent_last_success_timestamp_seconds {}",
        m.last_success_ms.map_or(0.0, |ms| ms as f64 / 1000.0)
    );
    // Each family's samples stay together under its TYPE line.
    let tiers = agent.tier_status();
    let _ = writeln!(out, "# TYPE graph_agent_tier_backups gauge");
    for (tier, n) in tiers.iter().filter_map(|(t, s)| Some((t, s.backups?))) {
        let _ = writeln!(out, "graph_agent_tier_backups{{tier=\"{tier}\"}} {n}");
    }
    let _ = writeln!(out, "# TYPE graph_agent_tier_readable gauge");
    for (tier, st) in &tiers {
        let _ = writeln!(
            out,
            "graph_agent_tier_readable{{tier=\"{tier}\"}} {}",
            u8::from(st.error.is_none())
        );
    }
    let _ = writeln!(out, "# TYPE graph_agent_key_rotations_total counter");
    let _ = writeln!(out, "graph_agent_key_rotations_total {}", m.key_rotations);
    let _ = writeln!(out, "# TYPE graph_agent_heartbeat_failures_total counter");
    let _ = writeln!(
        out,
        "graph_agent_heartbeat_failures_total {}",
        m.heartbeat_failures
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
