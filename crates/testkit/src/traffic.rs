//! Real traffic for simulated pods. kwok runs no containers, so each pod is backed
//! by a real local HTTP server (keep-alive, slow requests, an `inflight` gauge);
//! the harness stops a pod's server the moment it sees the pod's deletion, as a
//! kubelet sending SIGTERM to an app without a preStop hook would. The load
//! generator sends only to endpoints the Service's EndpointSlices list as ready,
//! as kube-proxy would, and counts every failed request.

// A fixture: a lock poisoned by a panicking task or a loopback bind that fails
// should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinSet;

/// How long one request takes on a pod.
pub const REQUEST_TIME: Duration = Duration::from_millis(100);

struct Backend {
    addr: SocketAddr,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

/// Pods' servers, started when a pod runs and stopped when it is deleted.
#[derive(Clone, Default)]
#[allow(missing_debug_implementations)]
pub struct Backends {
    servers: Arc<Mutex<HashMap<String, Backend>>>,
    /// Names of pods whose deletion was observed (their server stopped).
    pub deleted: Arc<Mutex<HashSet<String>>>,
}

impl Backends {
    /// Watches the namespace's pods (all of them: isolation removes labels).
    pub fn start(client: Client, ns: &str) -> Self {
        let b = Self::default();
        let me = b.clone();
        let pods: Api<Pod> = Api::namespaced(client, ns);
        tokio::spawn(async move {
            let stream = watcher(pods.clone(), watcher::Config::default()).default_backoff();
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(ev)) = stream.try_next().await {
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        me.observe(&pods, &p).await
                    }
                    watcher::Event::Delete(p) => me.stop(&p.name_any()),
                    _ => {}
                }
            }
        });
        b
    }

    async fn observe(&self, api: &Api<Pod>, p: &Pod) {
        let name = p.name_any();
        if p.metadata.deletion_timestamp.is_some() {
            self.stop(&name);
            return;
        }
        let running = p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some();
        if !running
            || self.servers.lock().unwrap().contains_key(&name)
            || self.deleted.lock().unwrap().contains(&name)
        {
            return;
        }
        let backend = serve().await;
        let url = format!("http://{}/metrics", backend.addr);
        self.servers.lock().unwrap().insert(name.clone(), backend);
        // The drain probe of this pod reads its in-flight gauge.
        let patch = json!({ "metadata": { "annotations": { "steward.io/drain-probe-url": url } } });
        let _ = api
            .patch_metadata(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
    }

    fn stop(&self, name: &str) {
        if let Some(b) = self.servers.lock().unwrap().remove(name) {
            b.tasks.lock().unwrap().abort_all();
        }
        self.deleted.lock().unwrap().insert(name.to_string());
    }

    /// The server of a pod.
    pub fn addr(&self, pod: &str) -> Option<SocketAddr> {
        self.servers.lock().unwrap().get(pod).map(|b| b.addr)
    }

    /// How many pods were deleted so far.
    pub fn deleted_count(&self) -> usize {
        self.deleted.lock().unwrap().len()
    }
}

async fn serve() -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inflight = Arc::new(AtomicUsize::new(0));
    let app = {
        let work = inflight.clone();
        let gauge = inflight.clone();
        axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let g = gauge.clone();
                    async move {
                        format!(
                            "# TYPE inflight gauge\ninflight {}\n",
                            g.load(Ordering::SeqCst)
                        )
                    }
                }),
            )
            .route(
                "/work",
                axum::routing::get(move || {
                    let w = work.clone();
                    async move {
                        w.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(REQUEST_TIME).await;
                        w.fetch_sub(1, Ordering::SeqCst);
                        "ok"
                    }
                }),
            )
    };
    let tasks = Arc::new(Mutex::new(JoinSet::new()));
    let conns = tasks.clone();
    tasks.lock().unwrap().spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            conns.lock().unwrap().spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Backend { addr, tasks }
}

/// Requests sent and failed.
#[derive(Clone, Default, Debug)]
pub struct Counts {
    /// Successful requests.
    pub ok: Arc<AtomicU64>,
    /// Failed requests.
    pub failed: Arc<AtomicU64>,
    /// A few failure messages.
    pub errors: Arc<Mutex<Vec<String>>>,
}

/// Load on a Service: `workers` loops, each sending one request at a time to the
/// next ready endpoint.
#[allow(missing_debug_implementations)]
pub struct LoadGen {
    /// The counts.
    pub counts: Counts,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl LoadGen {
    /// Starts load on Service `svc`.
    pub fn start(client: Client, ns: &str, svc: &str, backends: Backends, workers: usize) -> Self {
        let ready: Arc<Mutex<Vec<String>>> = Arc::default();
        let slices: Api<EndpointSlice> = Api::namespaced(client, ns);
        let cfg = watcher::Config::default().labels(&format!("kubernetes.io/service-name={svc}"));
        let r = ready.clone();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut by_slice: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let stream = watcher(slices, cfg).default_backoff();
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(ev)) = stream.try_next().await {
                match ev {
                    watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                        by_slice.insert(s.name_any(), ready_pods(&s));
                    }
                    watcher::Event::Delete(s) => {
                        by_slice.remove(&s.name_any());
                    }
                    _ => continue,
                }
                *r.lock().unwrap() = by_slice.values().flatten().cloned().collect();
            }
        });
        let counts = Counts::default();
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..workers {
            let (ready, backends, counts, stop, http, next) = (
                ready.clone(),
                backends.clone(),
                counts.clone(),
                stop.clone(),
                http.clone(),
                next.clone(),
            );
            tasks.spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let target = {
                        let r = ready.lock().unwrap();
                        let n = r.len();
                        (n > 0).then(|| r[next.fetch_add(1, Ordering::SeqCst) % n].clone())
                    };
                    let Some(addr) = target.and_then(|p| backends.addr(&p)) else {
                        // No ready endpoint with a server yet: pace, do not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    match http
                        .get(format!("http://{addr}/work"))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {
                            counts.ok.fetch_add(1, Ordering::SeqCst);
                        }
                        other => {
                            counts.failed.fetch_add(1, Ordering::SeqCst);
                            let mut e = counts.errors.lock().unwrap();
                            if e.len() < 5 {
                                e.push(format!("{addr}: {other:?}"));
                            }
                        }
                    }
                }
            });
        }
        Self {
            counts,
            stop,
            tasks,
        }
    }

    /// Stops the load and waits for the requests in flight; returns (ok, failed).
    pub async fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        // The workers end after their request; the slice watch runs forever.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.tasks.len() > 1 && tokio::time::Instant::now() < deadline {
            if tokio::time::timeout_at(deadline, self.tasks.join_next())
                .await
                .is_err()
            {
                break;
            }
        }
        self.tasks.abort_all();
        let c = &self.counts;
        (
            c.ok.load(Ordering::SeqCst),
            c.failed.load(Ordering::SeqCst),
            c.errors.lock().unwrap().clone(),
        )
    }
}

/// Pods an EndpointSlice lists as ready (kube-proxy's view).
fn ready_pods(s: &EndpointSlice) -> Vec<String> {
    s.endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.target_ref.as_ref().and_then(|t| t.name.clone()))
        .collect()
}
