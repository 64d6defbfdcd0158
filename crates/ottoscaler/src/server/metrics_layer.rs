//! `steward_ottoscaler_grpc_request_duration_seconds{method,code}`: a tower layer
//! around the gRPC server timing every call from its request to its response's
//! headers, labelled with the method path and the gRPC status. Errors reach the
//! client as trailers-only responses (the status in the headers), so every failed
//! unary call and every refused stream is counted with its code; a stream that
//! starts is counted as `OK` with the time to its start (its end is in the progress
//! and log metrics). Hand-written: a layer that reads one header needs no crate.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Method and code.
pub type Labels = Vec<(String, String)>;

/// Every method the server answers: a path outside it is labelled `unknown`, so
/// no caller (the layer sees calls before the token check) can grow the label set.
pub const METHODS: [&str; 12] = [
    "/ottoscaler.v1.OttoscalerService/ScaleUp",
    "/ottoscaler.v1.OttoscalerService/ScaleDown",
    "/ottoscaler.v1.OttoscalerService/GetWorkerStatus",
    "/ottoscaler.v1.OttoscalerService/ExecutePipeline",
    "/ottoscaler.v1.OttoscalerService/WatchPipeline",
    "/ottoscaler.v1.OttoscalerService/CancelPipeline",
    "/ottoscaler.v1.LogStreamingService/StreamWorkerLogs",
    "/ottoscaler.v1.LogStreamingService/StreamBuildLogs",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The `method` label of a request path.
pub fn method_label(path: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == path)
        .copied()
        .unwrap_or("unknown")
}

/// The histogram family the layer fills.
pub fn family() -> Family<Labels, Histogram> {
    // 100 µs to about 13 s.
    Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 18)))
}

/// The gRPC code name of a `grpc-status` header value (absent: OK).
pub fn code_name(status: Option<&str>) -> &'static str {
    let n: i32 = status.and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    match tonic::Code::from_i32(n) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "Canceled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}

/// The layer.
#[derive(Debug, Clone)]
pub struct GrpcMetrics(pub Family<Labels, Histogram>);

impl<S> tower::Layer<S> for GrpcMetrics {
    type Service = Timed<S>;
    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            family: self.0.clone(),
        }
    }
}

/// A service timed by [`GrpcMetrics`].
#[derive(Debug, Clone)]
pub struct Timed<S> {
    inner: S,
    family: Family<Labels, Histogram>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Timed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path()).to_string();
        let started = Instant::now();
        let family = self.family.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let status = res
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok());
            let code = code_name(status);
            family
                .get_or_create(&vec![
                    ("method".into(), method),
                    ("code".into(), code.into()),
                ])
                .observe(started.elapsed().as_secs_f64());
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_proto_has_its_label_and_others_are_unknown() {
        let proto = include_str!("../../proto/ottoscaler.proto");
        let mut service = "";
        for line in proto.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().unwrap();
            }
            if let Some(rest) = line.strip_prefix("rpc ") {
                let name = rest.split('(').next().unwrap();
                let path = format!("/ottoscaler.v1.{service}/{name}");
                assert_eq!(
                    method_label(&path),
                    path.as_str(),
                    "{path} missing from METHODS"
                );
            }
        }
        for path in ["/x/1", "/ottoscaler.v1.OttoscalerService/Nope", "", "/"] {
            assert_eq!(method_label(path), "unknown");
        }
    }

    #[test]
    fn codes() {
        for (header, want) in [
            (None, "OK"),
            (Some("0"), "OK"),
            (Some("5"), "NotFound"),
            (Some("16"), "Unauthenticated"),
            (Some("14"), "Unavailable"),
            (Some(" 3 "), "InvalidArgument"),
            (Some("x"), "OK"),
            (Some("99"), "Unknown"),
        ] {
            assert_eq!(code_name(header), want, "{header:?}");
        }
    }
}
