//! The admin HTTP server every long-running system serves: `/metrics` (Prometheus
//! text exposition, OpenMetrics flavour), `/healthz` (the process is alive) and
//! `/readyz` (it is ready for work, set by the system through [`Readiness`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

/// Flags for the admin server.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// Address of the admin server (/metrics, /healthz, /readyz).
    #[arg(
        long,
        env = "STEWARD_ADMIN_ADDR",
        default_value = "0.0.0.0:8081",
        value_name = "ADDR"
    )]
    pub admin_addr: SocketAddr,
}

/// Whether the process is ready; shared between the system and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Sets readiness.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Current readiness.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A bound, not yet serving, admin server.
#[derive(Debug)]
pub struct AdminServer {
    listener: tokio::net::TcpListener,
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    ready: Readiness,
}

impl AdminServer {
    /// Binds the address; fails with the address in the error.
    pub async fn bind(addr: SocketAddr) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::AdminBind { addr, source })?;
        Ok(Self { listener })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until shutdown.
    pub async fn serve(
        self,
        registry: Arc<Registry>,
        ready: Readiness,
        shutdown: Shutdown,
    ) -> std::io::Result<()> {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .with_state(AppState { registry, ready });
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { shutdown.signaled().await })
            .await
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            e.to_string(),
        ),
    }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.get() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// A registry with `steward_build_info{version}` = 1, for every system to extend.
pub fn registry(version: &str) -> Registry {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let mut registry = Registry::default();
    let info = Family::<Vec<(String, String)>, Gauge>::default();
    info.get_or_create(&vec![("version".to_string(), version.to_string())])
        .set(1);
    registry.register("steward_build_info", "steward build information", info);
    registry
}
