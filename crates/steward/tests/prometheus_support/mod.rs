//! Stand-ins for `prometheus_access.rs`: a Karpenter-shaped exporter with fixed
//! figures, certificates for Prometheus's TLS, an authenticating gateway.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};

/// The NodePool the exporter's series are of.
pub const POOL: &str = "np";

/// Serves Karpenter v1 series for [`POOL`]: `cpu` cores allocatable and `req`
/// cores requested (memory 100 GB, 50 GB); the NodePool usage metric says twice
/// the allocatable, so a rate read from it would show.
pub async fn exporter(cpu: f64, req: f64) -> String {
    let usage = cpu * 2.0;
    let body = format!(
        "karpenter_nodepools_usage{{nodepool=\"{POOL}\",resource_type=\"cpu\"}} {usage}\n\
         karpenter_nodepools_usage{{nodepool=\"{POOL}\",resource_type=\"memory\"}} 2e11\n\
         karpenter_nodes_allocatable{{nodepool=\"{POOL}\",resource_type=\"cpu\",node_name=\"n1\"}} {cpu}\n\
         karpenter_nodes_allocatable{{nodepool=\"{POOL}\",resource_type=\"memory\",node_name=\"n1\"}} 1e11\n\
         karpenter_nodes_total_pod_requests{{nodepool=\"{POOL}\",resource_type=\"cpu\",node_name=\"n1\"}} {req}\n\
         karpenter_nodes_total_pod_requests{{nodepool=\"{POOL}\",resource_type=\"memory\",node_name=\"n1\"}} 5e10\n"
    );
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(move || async move { body }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr.to_string()
}

/// A CA, Prometheus's serving certificate for 127.0.0.1 and a client
/// certificate, as PEM files in `dir`: (ca, server cert, server key, client cert, client key).
pub fn certificates(dir: &Path) -> [PathBuf; 5] {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |sans: Vec<String>, usage| {
        let mut p = CertificateParams::new(sans).unwrap();
        p.extended_key_usages = vec![usage];
        let k = KeyPair::generate().unwrap();
        (p.signed_by(&k, &issuer).unwrap().pem(), k.serialize_pem())
    };
    let (srv, srv_key) = leaf(
        vec!["127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (cli, cli_key) = leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth);
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    [
        write("ca.pem", &ca_pem),
        write("server.pem", &srv),
        write("server-key.pem", &srv_key),
        write("client.pem", &cli),
        write("client-key.pem", &cli_key),
    ]
}

/// What the bearer proxy lets through.
pub struct Gate {
    pub upstream: String,
    pub token: String,
}

/// A stand-in for an authenticating gateway: a query passes only with
/// `Authorization: Bearer <token>` and `X-Team: platform`, then goes to Prometheus.
pub async fn proxy(gate: Gate) -> String {
    async fn query(
        State(g): State<Arc<Gate>>,
        headers: HeaderMap,
        RawQuery(q): RawQuery,
    ) -> (StatusCode, String) {
        let bearer = format!("Bearer {}", g.token);
        let authorised = headers
            .get("authorization")
            .is_some_and(|v| v == bearer.as_str());
        if !authorised || headers.get("x-team").is_none_or(|v| v != "platform") {
            return (StatusCode::UNAUTHORIZED, "unauthorized".into());
        }
        let url = format!("{}/api/v1/query?{}", g.upstream, q.unwrap_or_default());
        let body = testkit::http()
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (StatusCode::OK, body)
    }
    let app = axum::Router::new()
        .route("/api/v1/query", axum::routing::get(query))
        .with_state(Arc::new(gate));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}
