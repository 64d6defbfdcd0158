//! The admin server answers /healthz, /readyz and /metrics over real HTTP and stops
//! on the shutdown signal.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use steward_runtime::Shutdown;
use steward_runtime::admin::{AdminServer, Readiness, registry};

#[tokio::test]
async fn serves_health_readiness_and_metrics_until_shutdown() {
    let mut reg = registry("9.9.9");
    let evictions: Counter = Counter::default();
    reg.register(
        "steward_test_evictions",
        "evictions in this test",
        evictions.clone(),
    );
    evictions.inc_by(3);

    let server = AdminServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let ready = Readiness::default();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(Arc::new(reg), ready.clone(), shutdown.clone()));
    let http = steward_runtime::http::client(Duration::from_secs(5)).unwrap();
    let get = |path: &str| http.get(format!("http://{addr}{path}")).send();

    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 503);
    ready.set(true);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);

    let metrics = get("/metrics").await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let body = metrics.text().await.unwrap();
    assert!(body.contains("steward_test_evictions_total 3"), "{body}");
    assert!(
        body.contains(r#"steward_build_info{version="9.9.9"} 1"#),
        "{body}"
    );
    assert_eq!(get("/nope").await.unwrap().status(), 404);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops on shutdown")
        .unwrap()
        .unwrap();
    assert!(
        get("/healthz").await.is_err(),
        "still serving after shutdown"
    );
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = AdminServer::bind(addr).await.unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}
