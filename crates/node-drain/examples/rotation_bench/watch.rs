//! What one run is watched for: its pods' readiness, its old nodes' disruption.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::Api;
use testkit::wait::pod_ready;

use super::PODS;
use super::bench_support::median;

type Shared<T> = Arc<Mutex<T>>;

/// Watches of one run: the fewest of its pods Ready, the most old nodes disrupted
/// at once, each replacement from first seen to Ready. Either watch ending
/// fails the run.
pub struct Watch {
    ready: Shared<(usize, Vec<f64>)>,
    disrupted: Shared<usize>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Watch {
    pub fn start(client: &kube::Client, ns: &str, pool: &str, old: &[String]) -> Self {
        use futures::TryStreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let ready: Shared<(usize, Vec<f64>)> = Arc::new(Mutex::new((PODS, Vec::new())));
        let disrupted: Shared<usize> = Shared::default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let cfg = watcher::Config::default().labels(&format!("app={pool}"));
        let r = ready.clone();
        let pod_task = tokio::spawn(async move {
            let mut s = std::pin::pin!(watcher(pods, cfg).applied_objects());
            let mut seen: std::collections::BTreeMap<String, Instant> = Default::default();
            let mut now: std::collections::BTreeMap<String, bool> = Default::default();
            while let Some(p) = s.try_next().await? {
                let name = p.name_any();
                let first = *seen.entry(name.clone()).or_insert_with(Instant::now);
                let is_ready = pod_ready(&p) && p.metadata.deletion_timestamp.is_none();
                let was = now.insert(name, is_ready);
                let mut st = r.lock().unwrap();
                if is_ready && was == Some(false) {
                    st.1.push(first.elapsed().as_secs_f64());
                }
                let count = now.values().filter(|v| **v).count();
                if now.len() >= PODS {
                    st.0 = st.0.min(count);
                }
            }
            anyhow::bail!("the pod watch ended")
        });
        let nodes: Api<Node> = Api::all(client.clone());
        let (d, old) = (disrupted.clone(), old.to_vec());
        let node_task = tokio::spawn(async move {
            let mut s = std::pin::pin!(watcher(nodes, watcher::Config::default()));
            let mut now: BTreeSet<String> = BTreeSet::new();
            while let Some(e) = s.try_next().await? {
                // A node that is gone no longer counts as disrupted.
                let (n, gone) = match e {
                    watcher::Event::Apply(n) | watcher::Event::InitApply(n) => (n, false),
                    watcher::Event::Delete(n) => (n, true),
                    watcher::Event::Init | watcher::Event::InitDone => continue,
                };
                if !old.contains(&n.name_any()) {
                    continue;
                }
                let hit = testkit::karpenter::disrupted(&n);
                if hit && !gone {
                    now.insert(n.name_any());
                } else {
                    now.remove(&n.name_any());
                }
                let mut m = d.lock().unwrap();
                *m = (*m).max(now.len());
            }
            anyhow::bail!("the node watch ended")
        });
        Self {
            ready,
            disrupted,
            tasks: vec![pod_task, node_task],
        }
    }

    /// (fewest Ready, most disrupted at once, median replacement seconds).
    pub fn finish(self) -> anyhow::Result<(usize, usize, f64)> {
        for t in &self.tasks {
            anyhow::ensure!(!t.is_finished(), "a watch of the run ended early");
            t.abort();
        }
        let (fewest, times) = self.ready.lock().unwrap().clone();
        let most = *self.disrupted.lock().unwrap();
        Ok((fewest, most, median(times)))
    }
}
