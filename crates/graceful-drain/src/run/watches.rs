//! What every replica watches besides pods: the ConfigMap (reloaded live; an
//! invalid document is refused and the last good one stays), and the
//! VerticalPodAutoscalers when their API is installed.

use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use steward_kube::error::is_not_found;
use steward_runtime::Shutdown;
use tokio::sync::watch;

use super::{CONFIG_KEY, RunArgs};
use crate::core::config::Config;
use crate::error::Error;
use crate::events::{Events, Reason};
use crate::messages::Msg;
use crate::metrics::Metrics;

/// A cache of the VerticalPodAutoscalers, when their API is installed (read at
/// start; a VPA CRD installed later is picked up at the next restart).
pub(super) async fn vpa_store(client: &Client) -> Option<reflector::Store<DynamicObject>> {
    let ar = crate::core::vpa::api_resource();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => {}
        Err(error) if is_not_found(&error) => {
            tracing::info!("no VerticalPodAutoscaler API; targeting by VPA objects is off");
            return None;
        }
        Err(error) => {
            tracing::warn!(%error, "reading VerticalPodAutoscalers failed; targeting by VPA objects is off");
            return None;
        }
    }
    let writer = reflector::store::Writer::new(ar);
    let store = writer.as_reader();
    let stream = watcher(api, watcher::Config::default())
        .modify(|v| v.managed_fields_mut().clear())
        .default_backoff();
    tokio::spawn(reflector(writer, stream).for_each(|_| async {}));
    Some(store)
}

/// Watches the ConfigMap; a valid document replaces the configuration, an invalid
/// one is rejected with an Event and a log line naming the field.
pub(super) async fn watch_config(
    client: Client,
    args: RunArgs,
    tx: watch::Sender<Arc<Config>>,
    metrics: Metrics,
    events: Events,
    shutdown: Shutdown,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, args.namespace());
    let stream = watch_named(api, &args.config_map);
    let mut stream = std::pin::pin!(stream);
    while let Some(cm) = next_change(&mut stream, &shutdown, "the ConfigMap").await {
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(CONFIG_KEY))
            .cloned()
            .unwrap_or_default();
        match Config::parse(&text) {
            Ok(config) => {
                tracing::info!(configmap = %cm.name_any(), version = cm.resource_version().unwrap_or_default(), "configuration loaded");
                metrics.reload(true);
                let _ = tx.send(Arc::new(config));
            }
            Err(error) => {
                let field = match &error {
                    Error::InvalidConfig { field, .. } => field.clone(),
                    _ => String::new(),
                };
                tracing::warn!(configmap = %cm.name_any(), %field, %error, "configuration rejected; the last good one stays in force");
                metrics.reload(false);
                events
                    .publish(
                        &cm,
                        Reason::InvalidConfig,
                        &Msg::ConfigRejected {
                            error: error.to_string(),
                        },
                    )
                    .await;
            }
        }
    }
}

/// The changes of one named object, with kube's back-off on watch errors.
pub(super) fn watch_named<K>(
    api: Api<K>,
    name: &str,
) -> impl Stream<Item = watcher::Result<K>> + Send
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, cfg).default_backoff().applied_objects()
}

/// The next version of the watched object; `None` when the watch ends or steward
/// stops. A watch error is logged (naming `what`) and the watch goes on.
pub(super) async fn next_change<K, S>(
    stream: &mut std::pin::Pin<&mut S>,
    shutdown: &Shutdown,
    what: &str,
) -> Option<K>
where
    S: Stream<Item = watcher::Result<K>>,
{
    loop {
        tokio::select! {
            next = stream.try_next() => match next {
                Ok(Some(o)) => return Some(o),
                Ok(None) => return None,
                Err(error) => tracing::warn!(%error, object = what, "watch failed; retrying"),
            },
            () = shutdown.signaled() => return None,
        }
    }
}
