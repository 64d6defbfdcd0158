//! `--wait-for-replacements`: before a Deployment's pod is evicted, wait until some
//! other node could take its replacement, so the replacement does not sit Pending
//! while the PDB counts the evicted pod as gone.
//!
//! What it checks ([`crate::core::room::fits`]), on a snapshot of nodes and pods at
//! most a second old: a Ready, schedulable node other than the pod's, matching the
//! pod's `nodeSelector`, whose NoSchedule/NoExecute taints the pod tolerates, with
//! free allocatable cpu, memory and pod slots (allocatable minus the requests of
//! pods on it, minus what this run reserved for replacements in the last 3 s) at
//! least the pod's requests.
//!
//! What it does not guarantee: node affinity, pod (anti-)affinity, topology spread,
//! host ports and volumes are not evaluated; nothing is reserved in the cluster, so
//! another pod may take the room first; and the replacement becoming Ready is still
//! the PDB's business. With Karpenter, a cordon alone creates no pending pods, so no
//! node appears for them; the wait then ends at `--replacement-timeout` and the pod
//! is evicted as without the flag.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::sync::Mutex;

use crate::core::pods::{pod_request, slim};
use crate::core::room::{Reservation, fits};

/// A reservation covers the gap between an eviction and the replacement pod appearing
/// in the snapshot (the ReplicaSet controller reacts within about a second); longer
/// would count the replacement twice.
const RESERVATION_TTL: Duration = Duration::from_secs(3);

/// Finds room for replacements; shared by every pod of a run.
#[derive(Default)]
#[allow(missing_debug_implementations)]
pub struct Room {
    inner: Mutex<Snapshot>,
}

#[derive(Default)]
struct Snapshot {
    taken: Option<Instant>,
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    reserved: Vec<Reservation>,
}

impl Room {
    /// Whether some node has room for a replacement of `pod`; if so, reserves it.
    pub async fn claim(&self, client: &Client, pod: &Pod) -> kube::Result<Option<String>> {
        let mut s = self.inner.lock().await;
        if s.taken.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
            s.nodes = Api::<Node>::all(client.clone())
                .list(&ListParams::default())
                .await?
                .items;
            s.pods = steward_kube::list::list_all_map(
                &Api::<Pod>::all(client.clone()),
                &ListParams::default(),
                slim,
            )
            .await?;
            s.taken = Some(Instant::now());
        }
        s.reserved.retain(|(at, ..)| at.elapsed() < RESERVATION_TTL);
        let found = fits(pod, &s.nodes, &s.pods, &s.reserved);
        if let Some(node) = &found {
            s.reserved.push((
                Instant::now(),
                node.clone(),
                pod_request(pod, "cpu"),
                pod_request(pod, "memory"),
            ));
        }
        Ok(found)
    }
}
