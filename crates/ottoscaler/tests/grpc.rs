//! The gRPC edge in process, over loopback with real tonic clients, on the local
//! backend: TLS and mTLS, health following the backend's watch, the fair queue's
//! "queued, position N", and the whole-run timeout with a `finally` stage.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ottoscaler::backend::local::LocalBackend;
use ottoscaler::backend::{Backend, BackendResult, EventSink, WorkerEvent};
use ottoscaler::cli::client::{ClientArgs, Otto};
use ottoscaler::core::config::Config;
use ottoscaler::core::worker::{Group, GroupRecord, WorkerObs, WorkerPlan};
use ottoscaler::logs::LogHub;
use ottoscaler::metrics::Metrics;
use ottoscaler::proto::{self, RunState, StageState};
use ottoscaler::scaler::{Options, Scaler};
use ottoscaler::server::{ServeOptions, Tls, serve};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;

const TOKEN: &str = "t0ken";

/// The local backend, with a handle on its event sink so a test can report the
/// watch as broken.
#[derive(Debug, Default)]
struct Flaky {
    inner: LocalBackend,
    sink: Mutex<Option<EventSink>>,
}

#[async_trait::async_trait]
impl Backend for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn start(&self, sink: EventSink, logs: LogHub, shutdown: CancellationToken) {
        *self.sink.lock().unwrap() = Some(sink.clone());
        self.inner.start(sink, logs, shutdown);
    }
    async fn put_group(&self, r: &GroupRecord) -> BackendResult<()> {
        self.inner.put_group(r).await
    }
    async fn delete_group(&self, g: &Group) -> BackendResult<()> {
        self.inner.delete_group(g).await
    }
    async fn list_groups(&self) -> BackendResult<Vec<GroupRecord>> {
        self.inner.list_groups().await
    }
    async fn create_worker(&self, w: &WorkerPlan) -> BackendResult<()> {
        self.inner.create_worker(w).await
    }
    async fn delete_worker(&self, name: &str, grace: Duration) -> BackendResult<()> {
        self.inner.delete_worker(name, grace).await
    }
    async fn list_workers(&self) -> BackendResult<Vec<WorkerObs>> {
        self.inner.list_workers().await
    }
}

struct Running {
    url: String,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(backend: Arc<dyn Backend>, opts: Options, tls: Option<Tls>) -> Running {
    let stop = CancellationToken::new();
    let scaler = Scaler::new(backend, Config::default(), opts, Metrics::default());
    scaler.start(stop.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        scaler,
        listener,
        ServeOptions {
            teams: ottoscaler::core::teams::Teams::single(TOKEN),
            audit: ottoscaler::audit::Audit::default(),
            reflection: false,
            tls,
        },
        stop.clone(),
    ));
    Running { url, stop }
}

fn args(url: &str) -> ClientArgs {
    ClientArgs {
        server: url.into(),
        token: Some(TOKEN.into()),
        token_file: None,
        ca_cert: None,
        client_cert: None,
        client_key: None,
    }
}

async fn otto(url: &str) -> Otto {
    args(url).connect().await.unwrap().0
}

fn sh(name: &str, deps: &[&str], script: &str) -> proto::Stage {
    proto::Stage {
        name: name.into(),
        depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
        worker: Some(proto::WorkerTemplate {
            command: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn run(o: &mut Otto, req: proto::PipelineRequest) -> Vec<proto::PipelineProgress> {
    let s = o.execute_pipeline(req).await.unwrap().into_inner();
    tokio::time::timeout(Duration::from_secs(30), s.map(Result::unwrap).collect())
        .await
        .unwrap()
}

#[tokio::test]
async fn tls_and_mtls() {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |sans: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::new(sans).unwrap();
        p.extended_key_usages = vec![usage];
        let k = KeyPair::generate().unwrap();
        (p.signed_by(&k, &issuer).unwrap().pem(), k.serialize_pem())
    };
    let (srv_cert, srv_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (cli_cert, cli_key) = leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth);
    let tls = Tls {
        cert: srv_cert.into_bytes(),
        key: srv_key.into_bytes(),
        client_ca: Some(ca_pem.clone().into_bytes()),
    };
    let server = start(Arc::new(LocalBackend::new()), Options::default(), Some(tls)).await;
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut a = args(&server.url);
    a.ca_cert = Some(write("ca.pem", &ca_pem));
    // Without a client certificate the handshake is refused.
    let refused = match a.connect().await {
        Err(_) => true,
        Ok((mut o, _)) => o
            .get_worker_status(proto::WorkerStatusRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "mTLS must refuse a client without a certificate");
    a.client_cert = Some(write("c.pem", &cli_cert));
    a.client_key = Some(write("c.key", &cli_key));
    let (mut o, _) = a.connect().await.unwrap();
    let r = o
        .get_worker_status(proto::WorkerStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.capacity, 100);
}

#[tokio::test]
async fn health_is_not_serving_while_the_worker_watch_is_broken() {
    let backend = Arc::new(Flaky::default());
    let server = start(backend.clone(), Options::default(), None).await;
    let ch = tonic::transport::Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
    let mut watch = h
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "ottoscaler.v1.OttoscalerService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || watch.next().await.unwrap().unwrap().status;
    let mut status = next().await;
    while status != ServingStatus::Serving as i32 {
        status = next().await;
    }
    let sink = backend.sink.lock().unwrap().clone().unwrap();
    sink.send(WorkerEvent::Healthy(false)).unwrap();
    assert_eq!(next().await, ServingStatus::NotServing as i32);
    sink.send(WorkerEvent::Healthy(true)).unwrap();
    assert_eq!(next().await, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn stages_over_the_cap_wait_in_line_and_say_so() {
    let server = start(
        Arc::new(LocalBackend::new()),
        Options {
            max_workers: 1,
            ..Options::default()
        },
        None,
    )
    .await;
    let mut o = otto(&server.url).await;
    let req = proto::PipelineRequest {
        stages: vec![
            sh("one", &[], "sleep 0.3"),
            sh("two", &[], "sleep 0.3"),
            sh("three", &[], "sleep 0.3"),
        ],
        ..Default::default()
    };
    let ps = run(&mut o, req).await;
    assert_eq!(ps.last().unwrap().run_state(), RunState::Succeeded);
    let queued: Vec<(String, i32)> = ps
        .iter()
        .filter(|p| p.stage_state() == StageState::Queued)
        .map(|p| (p.stage.clone(), p.queue_position))
        .collect();
    // The three stages start together; the two that wait get positions 1 and 2 (in the
    // order their requests reached the queue), and the second moves up to 1.
    let second = queued
        .iter()
        .find(|(_, pos)| *pos == 2)
        .map(|(s, _)| s.clone())
        .expect("a stage at position 2");
    assert!(
        queued.iter().any(|(s, pos)| *pos == 1 && *s != second)
            && queued.contains(&(second.clone(), 1)),
        "{queued:?}"
    );
    assert!(ps.iter().any(|p| p.message == "queued, position 2"));
    // Never two at once: each start comes after the previous stage's end.
    let order: Vec<(String, StageState)> = ps
        .iter()
        .filter(|p| {
            matches!(
                p.stage_state(),
                StageState::Starting | StageState::Succeeded
            )
        })
        .map(|p| (p.stage.clone(), p.stage_state()))
        .collect();
    for pair in order.chunks(2) {
        assert_eq!(pair[0].0, pair[1].0, "{order:?}");
    }
}

#[tokio::test]
async fn whole_run_timeout_stops_the_run_and_finally_still_runs() {
    let server = start(Arc::new(LocalBackend::new()), Options::default(), None).await;
    let mut o = otto(&server.url).await;
    let mut bye = sh("bye", &[], "echo bye");
    bye.finally = true;
    let req = proto::PipelineRequest {
        stages: vec![
            sh("forever", &[], "sleep 30"),
            sh("next", &["forever"], "true"),
            bye,
        ],
        timeout_seconds: 1,
        ..Default::default()
    };
    let ps = run(&mut o, req).await;
    let last = ps.last().unwrap();
    assert_eq!(last.run_state(), RunState::Failed);
    assert_eq!(last.message, "run failed: the run timed out");
    let f = ps
        .iter()
        .find(|p| p.stage == "forever" && p.stage_state() == StageState::Failed)
        .unwrap();
    assert_eq!(f.failure_class, "timeout");
    assert!(
        ps.iter()
            .any(|p| p.stage == "next" && p.stage_state() == StageState::Skipped)
    );
    assert!(
        ps.iter()
            .any(|p| p.stage == "bye" && p.stage_state() == StageState::Succeeded)
    );
}
