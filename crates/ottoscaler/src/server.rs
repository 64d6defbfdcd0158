//! The gRPC edge: `OttoscalerService` and `LogStreamingService` over [`Scaler`],
//! bearer-token auth on both, `grpc.health.v1` (NOT_SERVING while the worker watch
//! is broken), optional reflection, TLS/mTLS, HTTP/2 keepalive.
//!
//! When an `ExecutePipeline` client disconnects, the run goes on: the stream is only
//! a reader of the run's progress history, and the client re-attaches with
//! `WatchPipeline(run_id, from_seq)`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tracing::info;

use crate::core::worker::Group;
use crate::error::Error;
use crate::proto::log_streaming_service_server::LogStreamingServiceServer;
use crate::proto::ottoscaler_service_server::{OttoscalerService, OttoscalerServiceServer};
use crate::proto::{self, FILE_DESCRIPTOR_SET};
use crate::scaler::Scaler;

mod log_stream;
pub mod metrics_layer;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Service names for health.
pub const SERVICES: [&str; 2] = [
    "ottoscaler.v1.OttoscalerService",
    "ottoscaler.v1.LogStreamingService",
];

/// Checks `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct Auth {
    token: Arc<str>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

/// Compares in constant time (`subtle`), so the time taken does not reveal how
/// much of a guessed token was right. Only the length may show, as with any
/// token compare.
fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

impl Auth {
    /// Accepts this token.
    pub fn new(token: &str) -> Self {
        Self {
            token: token.into(),
        }
    }
}

impl Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("missing \"authorization: Bearer <token>\" metadata")
            })?;
        if same(given.as_bytes(), self.token.as_bytes()) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }
}

/// The two services over one scaler.
#[derive(Debug, Clone)]
pub struct Services {
    scaler: Arc<Scaler>,
}

impl Services {
    /// Services over `scaler`.
    pub fn new(scaler: Arc<Scaler>) -> Self {
        Self { scaler }
    }
}

fn status(e: &Error) -> Status {
    e.to_status()
}

fn i32c(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[tonic::async_trait]
impl OttoscalerService for Services {
    async fn scale_up(
        &self,
        req: Request<proto::ScaleRequest>,
    ) -> Result<Response<proto::ScaleResponse>, Status> {
        let req = req.into_inner();
        let (created, waiting) = self.scaler.scale_up(&req).await.map_err(|e| status(&e))?;
        let active = self
            .scaler
            .workers(&req.task_id, "")
            .len()
            .max(created.len());
        let mut message = format!("created {} workers for task {}", created.len(), req.task_id);
        if let Some(w) = &waiting {
            message.push_str(&format!("; waiting for capacity: {w}"));
        }
        Ok(Response::new(proto::ScaleResponse {
            message,
            task_id: req.task_id,
            workers: created,
            active_workers: i32c(active),
            capacity_wait: waiting.unwrap_or_default(),
        }))
    }

    async fn scale_down(
        &self,
        req: Request<proto::ScaleRequest>,
    ) -> Result<Response<proto::ScaleResponse>, Status> {
        let req = req.into_inner();
        let (removed, left) = self.scaler.scale_down(&req).await.map_err(|e| status(&e))?;
        let busy_kept = self
            .scaler
            .workers(&req.task_id, "")
            .iter()
            .filter(|w| w.busy)
            .count();
        let mut message = format!("removed {} workers of task {}", removed.len(), req.task_id);
        if !req.force && busy_kept > 0 {
            message.push_str(&format!(
                "; {busy_kept} busy workers kept (force removes them)"
            ));
        }
        Ok(Response::new(proto::ScaleResponse {
            task_id: req.task_id,
            workers: removed,
            message,
            active_workers: i32c(left),
            capacity_wait: String::new(),
        }))
    }

    async fn get_worker_status(
        &self,
        req: Request<proto::WorkerStatusRequest>,
    ) -> Result<Response<proto::WorkerStatusResponse>, Status> {
        let req = req.into_inner();
        let workers = self
            .scaler
            .workers(&req.task_id, &req.run_id)
            .into_iter()
            .map(|w| proto::WorkerInfo {
                task_id: match &w.labels.group {
                    Group::Task(t) => t.clone(),
                    Group::Run(_) => String::new(),
                },
                run_id: match &w.labels.group {
                    Group::Run(r) => r.clone(),
                    Group::Task(_) => String::new(),
                },
                stage: w.labels.stage.clone(),
                attempt: i32::try_from(w.labels.attempt).unwrap_or(0),
                phase: w.phase.as_str().into(),
                busy: w.busy,
                node: w.node.clone(),
                created_unix_ms: w.created_ms,
                capacity_wait: w.unschedulable.unwrap_or_default(),
                name: w.name,
            })
            .collect();
        let (cap, used, queued) = self.scaler.usage();
        let c = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Response::new(proto::WorkerStatusResponse {
            workers,
            capacity: c(cap),
            in_use: c(used),
            queued: c(queued),
        }))
    }

    type ExecutePipelineStream = BoxStream<proto::PipelineProgress>;

    async fn execute_pipeline(
        &self,
        req: Request<proto::PipelineRequest>,
    ) -> Result<Response<Self::ExecutePipelineStream>, Status> {
        let (_, progress) = self
            .scaler
            .submit(req.get_ref())
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(Box::pin(progress.follow(1).map(Ok))))
    }

    type WatchPipelineStream = BoxStream<proto::PipelineProgress>;

    async fn watch_pipeline(
        &self,
        req: Request<proto::WatchPipelineRequest>,
    ) -> Result<Response<Self::WatchPipelineStream>, Status> {
        let req = req.into_inner();
        let progress = self.scaler.progress(&req.run_id).map_err(|e| status(&e))?;
        Ok(Response::new(Box::pin(
            progress.follow(req.from_seq).map(Ok),
        )))
    }

    async fn cancel_pipeline(
        &self,
        req: Request<proto::CancelPipelineRequest>,
    ) -> Result<Response<proto::CancelPipelineResponse>, Status> {
        let req = req.into_inner();
        let cancelled = self.scaler.cancel(&req.run_id).map_err(|e| status(&e))?;
        info!(run = %req.run_id, cancelled, reason = %req.reason, "cancel requested");
        let message = if cancelled {
            "cancelling: running workers are deleted, finally stages still run"
        } else {
            "the run had already ended"
        };
        Ok(Response::new(proto::CancelPipelineResponse {
            run_id: req.run_id,
            cancelled,
            message: message.into(),
        }))
    }
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
    /// Bearer token every RPC but health must carry.
    pub token: String,
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
    let auth = Auth::new(&opts.token);
    let timed = metrics_layer::GrpcMetrics(scaler.metrics().grpc.clone());
    let svc = Services::new(scaler);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        let mut a = Auth::new("s3cret");
        let mut r = Request::new(());
        assert_eq!(
            a.call(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        r.metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(a.call(r).is_ok());
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("authorization", "Bearer nope".parse().unwrap());
        assert_eq!(a.call(r).unwrap_err().code(), tonic::Code::Unauthenticated);
    }
}
