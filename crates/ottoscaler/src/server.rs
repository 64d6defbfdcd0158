//! The gRPC edge: `OttoscalerService` and `LogStreamingService` over [`Scaler`],
//! bearer-token auth on both (each token is a team's, see [`crate::core::teams`];
//! every call is authorised for it and mutating ones are audited), `grpc.health.v1` (NOT_SERVING while the worker watch
//! is broken), optional reflection, TLS/mTLS, HTTP/2 keepalive.
//!
//! When an `ExecutePipeline` client disconnects, the run goes on: the stream is only
//! a reader of the run's progress history, and the client re-attaches with
//! `WatchPipeline(run_id, from_seq)`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::Status;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tracing::info;

use crate::audit::Audit;
use crate::core::teams::Teams;
use crate::error::Error;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::log_streaming_service_server::LogStreamingServiceServer;
use crate::proto::ottoscaler_service_server::OttoscalerServiceServer;
use crate::scaler::Scaler;

mod auth;
mod log_stream;
pub mod metrics_layer;
mod service;

pub use auth::{Auth, caller};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Service names for health.
pub const SERVICES: [&str; 2] = [
    "ottoscaler.v1.OttoscalerService",
    "ottoscaler.v1.LogStreamingService",
];

/// The two services over one scaler.
#[derive(Debug, Clone)]
pub struct Services {
    scaler: Arc<Scaler>,
    audit: Audit,
}

impl Services {
    /// Services over `scaler`, auditing mutating calls into `audit`.
    pub fn new(scaler: Arc<Scaler>, audit: Audit) -> Self {
        Self { scaler, audit }
    }
}

fn status(e: &Error) -> Status {
    e.to_status()
}

/// TLS material, PEM.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// Server certificate chain.
    pub cert: Vec<u8>,
    /// Server key.
    pub key: Vec<u8>,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca: Option<Vec<u8>>,
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The teams and their tokens: every RPC but health must carry one.
    pub teams: Teams,
    /// Where mutating calls are audited.
    pub audit: Audit,
    /// Serve gRPC reflection.
    pub reflection: bool,
    /// TLS, when set.
    pub tls: Option<Tls>,
}

/// Serves on `listener` until `shutdown`.
pub async fn serve(
    scaler: Arc<Scaler>,
    listener: tokio::net::TcpListener,
    opts: ServeOptions,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut healthy = scaler.health();
    tokio::spawn(async move {
        loop {
            let s = if *healthy.borrow_and_update() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for svc in SERVICES.into_iter().chain([""]) {
                reporter.set_service_status(svc, s).await;
            }
            if healthy.changed().await.is_err() {
                return;
            }
        }
    });
    let reflection = if opts.reflection {
        Some(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .map_err(Error::Reflection)?,
        )
    } else {
        None
    };
    let auth = Auth::new(opts.teams);
    let timed = metrics_layer::GrpcMetrics(scaler.metrics().grpc.clone());
    let svc = Services::new(scaler, opts.audit);
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_keepalive(Some(Duration::from_secs(60)));
    if let Some(tls) = &opts.tls {
        let mut cfg = ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert, &tls.key));
        if let Some(ca) = &tls.client_ca {
            cfg = cfg.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(cfg).map_err(|source| Error::Transport {
            what: "configuring TLS".into(),
            source,
        })?;
    }
    info!(addr = ?addr, tls = opts.tls.is_some(), reflection = opts.reflection, "gRPC server listening");
    let stop = shutdown.clone();
    let served = builder
        .layer(timed)
        .add_service(health)
        .add_optional_service(reflection)
        .add_service(OttoscalerServiceServer::with_interceptor(
            svc.clone(),
            auth.clone(),
        ))
        .add_service(LogStreamingServiceServer::with_interceptor(svc, auth))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.cancelled_owned(),
        );
    // A graceful shutdown waits for every open call, and progress and log streams
    // last as long as their runs: after SHUTDOWN_DRAIN the remaining connections are
    // closed, and their clients re-attach (to the next leader).
    tokio::select! {
        r = served => r.map_err(|source| Error::Transport {
            what: "serving".into(),
            source,
        }),
        () = async {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_DRAIN).await;
        } => {
            info!(drain_s = SHUTDOWN_DRAIN.as_secs(), "closing the streams still open at shutdown");
            Ok(())
        }
    }
}

/// How long calls in flight at shutdown may go on before their connections close.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);
