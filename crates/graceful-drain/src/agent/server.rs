//! The agent's HTTP server: `/v1/connections`, `/healthz`, `/metrics`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Query as QueryParams, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use steward_runtime::Shutdown;

use super::query::{self, Problem};
use super::scan;
use crate::metrics::AgentMetrics;

#[derive(Clone)]
struct AppState {
    proc: Arc<PathBuf>,
    registry: Arc<Registry>,
    metrics: AgentMetrics,
}

/// Serves until shutdown.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    proc: PathBuf,
    registry: Registry,
    metrics: AgentMetrics,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(query::PATH, get(connections))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(render_metrics))
        .with_state(AppState {
            proc: Arc::new(proc),
            registry: Arc::new(registry),
            metrics,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.signaled().await })
        .await
}

fn problem(status: StatusCode, error: String) -> Response {
    (status, axum::Json(Problem { error })).into_response()
}

async fn connections(
    State(s): State<AppState>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
) -> Response {
    let q = match query::parse(&params) {
        Ok(q) => q,
        Err(e) => {
            s.metrics.request("bad_request");
            return problem(StatusCode::BAD_REQUEST, e);
        }
    };
    let started = Instant::now();
    let proc = s.proc.clone();
    let q2 = q.clone();
    let scanned = tokio::task::spawn_blocking(move || scan::connections(&proc, &q2)).await;
    s.metrics
        .scan_duration
        .observe(started.elapsed().as_secs_f64());
    match scanned {
        Ok(Ok(Some(c))) => {
            s.metrics.request("ok");
            tracing::debug!(uid = %c.uid, established = c.established, pids = ?c.pids, "connections counted");
            axum::Json(c).into_response()
        }
        Ok(Ok(None)) => {
            s.metrics.request("not_found");
            problem(
                StatusCode::NOT_FOUND,
                format!("no process of pod {} on this node", q.uid),
            )
        }
        Ok(Err(e)) => {
            s.metrics.request("error");
            tracing::warn!(uid = %q.uid, error = %e, "counting connections failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => {
            s.metrics.request("error");
            problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

async fn render_metrics(State(s): State<AppState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
