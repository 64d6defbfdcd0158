//! The end of one node's drain: a metadata-only watch of the pods on the node
//! until none of those it held at the start (by UID) is left, every one left is
//! known to be impossible to evict, the node's deadline passes, or shutdown.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::{reflector, watcher};

use super::Engine;
use crate::core::removal::{PodKey, Waiting, left, waiting};
use crate::core::report::Progress;

/// How a node's wait ended.
pub(super) enum Wait {
    /// None of the node's pods is left.
    Empty,
    /// The deadline passed with these pods left.
    Deadline(Vec<String>),
    /// Shutdown came with these pods left.
    Shutdown(Vec<String>),
    /// The watch failed for good.
    Error(String),
    /// Every pod left can never be evicted (pod -> why).
    Unevictable(BTreeMap<String, String>),
}

impl Engine {
    /// Watches the node's pods until none of `keys` (by UID) is left on it, or all
    /// that are left were reported on `failures` as impossible to evict.
    pub(super) async fn wait_empty(
        &self,
        node: &str,
        keys: &[PodKey],
        deadline: tokio::time::Instant,
        mut failures: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    ) -> Wait {
        let mut unevictable = BTreeMap::new();
        // Names and UIDs are all the wait reads: watch metadata only.
        let all: Api<PartialObjectMeta<Pod>> = Api::all(self.client.clone());
        let (reader, writer) = reflector::store();
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let events = reflector(writer, watcher(all, cfg));
        let mut events = std::pin::pin!(events);
        let mut last = usize::MAX;
        let mut synced = false;
        loop {
            let present: BTreeMap<(String, String), String> = reader
                .state()
                .iter()
                .map(|p| {
                    (
                        (p.namespace().unwrap_or_default(), p.name_any()),
                        p.uid().unwrap_or_default(),
                    )
                })
                .collect();
            let left = left(keys, &present);
            match waiting(&left, synced, &unevictable) {
                Waiting::Empty => return Wait::Empty,
                Waiting::Unevictable => return Wait::Unevictable(unevictable),
                Waiting::Moving => {}
            }
            if left.len() != last && synced {
                last = left.len();
                self.emit(Progress::Remaining {
                    node: node.into(),
                    pods: left.len(),
                });
            }
            tokio::select! {
                ev = events.try_next() => match ev {
                    Ok(Some(watcher::Event::InitDone)) => synced = true,
                    Ok(Some(_)) => {}
                    Ok(None) => return Wait::Error("pod watch ended".into()),
                    Err(e) => tracing::warn!(%node, error = %e, "pod watch error; retrying"),
                },
                Some((pod, why)) = failures.recv() => {
                    unevictable.insert(pod, why);
                }
                () = tokio::time::sleep_until(deadline) => return Wait::Deadline(left),
                () = self.shutdown.signaled() => return Wait::Shutdown(left),
            }
        }
    }
}
