//! The Kubernetes backend: one pod (one container) per worker, observed through a
//! pod watch, never polled.
//!
//! Every run or task has a small ConfigMap, `ottoscaler-<run|task>-<id>`, which is
//! both its durable record (state, reason, end time, and for a run its request and
//! progress history as protobuf `binaryData`, so a new process continues it) and
//! the owner of its worker pods: deleting it lets the
//! garbage collector remove every worker, even ones the scaler never saw again.
//! Container logs are followed through the API (`follow`, `timestamps`) from the
//! moment a pod runs into the run's log buffer.

pub mod pods;
mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use self::pods::{observe, pod_for};
use crate::backend::{Backend, BackendResult, EventSink, Note};
use crate::core::history;
use crate::core::room::{Shortfall, rooms, shortfall, take_requests};
use crate::core::teams::DEFAULT_TEAM;
use crate::core::worker::{Group, GroupRecord, LABEL_TEAM, LABEL_WORKER, WorkerObs, WorkerPlan};
use crate::error::{Error, kube as kube_err};
use crate::logs::LogHub;

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "steward-ottoscaler";
/// Field manager of the progress history (a merge patch of one key).
const HISTORY_MANAGER: &str = "steward-ottoscaler-history";
/// The record's key holding the run's request.
const REQUEST_KEY: &str = "request";
/// The record's key holding the run's progress history.
const HISTORY_KEY: &str = "history";
const RECORD_LABEL_KIND: &str = "steward.io/ottoscaler-kind";
const RECORD_LABEL_ID: &str = "steward.io/ottoscaler-id";

/// Workers as pods in one namespace.
#[derive(Clone)]
pub struct KubeBackend {
    client: Client,
    pods: Api<Pod>,
    cms: Api<ConfigMap>,
    followed: Arc<Mutex<HashSet<String>>>,
    /// Record UIDs, so creating a worker costs one API call, not two.
    uids: Arc<Mutex<HashMap<Group, String>>>,
    recorder: Recorder,
    namespace: String,
}

impl std::fmt::Debug for KubeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeBackend").finish_non_exhaustive()
    }
}

fn record_name(g: &Group) -> String {
    format!("ottoscaler-{}-{}", g.kind(), g.id())
}

impl KubeBackend {
    /// Workers in `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            pods: Api::namespaced(client.clone(), namespace),
            cms: Api::namespaced(client.clone(), namespace),
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: FIELD_MANAGER.into(),
                    instance: Some(steward_runtime::leader::default_identity()),
                },
            ),
            namespace: namespace.into(),
            client,
            followed: Arc::default(),
            uids: Arc::default(),
        }
    }

    async fn owner(&self, g: &Group) -> BackendResult<OwnerReference> {
        let name = record_name(g);
        let cached = self
            .uids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(g)
            .cloned();
        let uid = match cached {
            Some(uid) => uid,
            None => {
                let cm = self
                    .cms
                    .get(&name)
                    .await
                    .map_err(kube_err(format!("reading ConfigMap {name}")))?;
                cm.uid().unwrap_or_default()
            }
        };
        Ok(OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name,
            uid,
            block_owner_deletion: Some(false),
            controller: Some(true),
        })
    }
}

fn record_from(cm: &ConfigMap) -> Option<GroupRecord> {
    let labels = cm.metadata.labels.as_ref()?;
    let id = labels.get(RECORD_LABEL_ID)?.clone();
    let group = match labels.get(RECORD_LABEL_KIND)?.as_str() {
        "run" => Group::Run(id),
        "task" => Group::Task(id),
        _ => return None,
    };
    let data = cm.data.clone().unwrap_or_default();
    let binary = cm.binary_data.clone().unwrap_or_default();
    let history = match binary.get(HISTORY_KEY).map(|b| history::decode(&b.0)) {
        None => Vec::new(),
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            warn!(record = cm.name_any(), error = %e, "the recorded progress history does not decode; it starts again");
            Vec::new()
        }
    };
    Some(GroupRecord {
        group,
        team: labels
            .get(LABEL_TEAM)
            .cloned()
            .unwrap_or_else(|| DEFAULT_TEAM.to_string()),
        state: data.get("state").cloned().unwrap_or_default(),
        reason: data.get("reason").cloned().unwrap_or_default(),
        finished_ms: data.get("finished_ms").and_then(|v| v.parse().ok()),
        request: binary
            .get(REQUEST_KEY)
            .map(|b| b.0.clone())
            .unwrap_or_default(),
        history,
    })
}

/// A delete whose object is already gone has done its job.
fn gone_ok(r: Result<impl Sized, kube::Error>) -> Result<(), kube::Error> {
    steward_kube::error::ok_if_not_found(r).map(drop)
}

#[async_trait::async_trait]
impl Backend for KubeBackend {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn start(&self, sink: EventSink, logs: LogHub, shutdown: CancellationToken) {
        tokio::spawn(self.clone().watch(sink, logs, shutdown));
    }

    async fn put_group(&self, r: &GroupRecord) -> BackendResult<()> {
        let name = record_name(&r.group);
        let mut data = BTreeMap::from([
            ("state".to_string(), r.state.clone()),
            ("reason".to_string(), r.reason.clone()),
        ]);
        if let Some(f) = r.finished_ms {
            data.insert("finished_ms".into(), f.to_string());
        }
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([
                    (LABEL_WORKER.to_string(), "record".to_string()),
                    (RECORD_LABEL_KIND.to_string(), r.group.kind().to_string()),
                    (RECORD_LABEL_ID.to_string(), r.group.id().to_string()),
                    (LABEL_TEAM.to_string(), r.team.clone()),
                ])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            binary_data: (!r.request.is_empty()).then(|| {
                BTreeMap::from([(REQUEST_KEY.to_string(), ByteString(r.request.clone()))])
            }),
            ..ConfigMap::default()
        };
        let cm = self
            .cms
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&cm),
            )
            .await
            .map_err(kube_err(format!("writing ConfigMap {name}")))?;
        if let Some(uid) = cm.uid() {
            self.uids
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(r.group.clone(), uid);
        }
        Ok(())
    }

    async fn event(&self, g: &Group, note: &Note) {
        let name = record_name(g);
        let uid = self
            .uids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(g)
            .cloned();
        let regarding = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(name.clone()),
            namespace: Some(self.namespace.clone()),
            uid,
            ..ObjectReference::default()
        };
        let ev = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.into(),
            note: Some(note.text.clone()),
            action: note.action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&ev, &regarding).await {
            warn!(record = %name, reason = note.reason, %error, "publishing an Event failed");
        }
    }

    async fn put_history(&self, run: &str, history: &[u8]) -> BackendResult<()> {
        // A merge patch, not an apply: it never creates a record that retention has
        // deleted, and the record's apply (state, request) does not own this key.
        let name = record_name(&Group::Run(run.into()));
        let patch =
            serde_json::json!({ "binaryData": { HISTORY_KEY: ByteString(history.to_vec()) } });
        self.cms
            .patch(
                &name,
                &PatchParams {
                    field_manager: Some(HISTORY_MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map(drop)
            .map_err(kube_err(format!(
                "writing the progress history into ConfigMap {name}"
            )))
    }

    async fn delete_group(&self, g: &Group) -> BackendResult<()> {
        let name = record_name(g);
        self.uids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(g);
        gone_ok(self.cms.delete(&name, &DeleteParams::background()).await)
            .map_err(kube_err(format!("deleting ConfigMap {name}")))
    }

    async fn list_groups(&self) -> BackendResult<Vec<GroupRecord>> {
        let lp = ListParams::default().labels(&format!("{LABEL_WORKER}=record"));
        let list = self
            .cms
            .list(&lp)
            .await
            .map_err(kube_err("listing ottoscaler records"))?;
        Ok(list.items.iter().filter_map(record_from).collect())
    }

    async fn create_worker(&self, w: &WorkerPlan) -> BackendResult<()> {
        if w.image.is_empty() {
            return Err(Error::Invalid(crate::core::spec::bad(
                "worker.image",
                "required by the Kubernetes backend",
            )));
        }
        let owner = self.owner(&w.labels.group).await?;
        self.pods
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                },
                &pod_for(w, owner),
            )
            .await
            .map_err(kube_err(format!("creating worker pod {}", w.name)))?;
        Ok(())
    }

    async fn delete_worker(&self, name: &str, grace: Duration) -> BackendResult<()> {
        let dp = DeleteParams {
            grace_period_seconds: Some(u32::try_from(grace.as_secs()).unwrap_or(u32::MAX)),
            ..DeleteParams::default()
        };
        gone_ok(self.pods.delete(name, &dp).await)
            .map_err(kube_err(format!("deleting worker pod {name}")))
    }

    async fn room(
        &self,
        plan: &WorkerPlan,
        count: u32,
        now: bool,
    ) -> BackendResult<Option<Shortfall>> {
        let selector = plan
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes: Api<Node> = Api::all(self.client.clone());
        let nodes = nodes
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_err("listing nodes for the capacity check"))?;
        let mut rooms = rooms(&nodes.items, &plan.tolerations, &plan.node_selector);
        if now && !rooms.is_empty() {
            let pods: Api<Pod> = Api::all(self.client.clone());
            let lp = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
            let pods = pods
                .list(&lp)
                .await
                .map_err(kube_err("listing pods for the capacity check"))?;
            take_requests(&mut rooms, &pods.items);
        }
        Ok(shortfall(rooms, &plan.requests, count, now))
    }

    async fn list_workers(&self) -> BackendResult<Vec<WorkerObs>> {
        let lp = ListParams::default().labels(&format!("{LABEL_WORKER}=worker"));
        let list = self
            .pods
            .list(&lp)
            .await
            .map_err(kube_err("listing worker pods"))?;
        Ok(list.items.iter().filter_map(observe).collect())
    }
}
