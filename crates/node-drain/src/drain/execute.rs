//! The changes a drain makes: cordon every node of the batch (marking it, unless an
//! earlier run left it mid-drain), then drain the nodes, `--parallel-nodes` at a
//! time, through the engine, reporting each node's end to Slack and stdout.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::{Client, ResourceExt};
use steward_runtime::{Lang, Localized, Shutdown};
use tokio::sync::{Semaphore, mpsc};

use super::Settings;
use crate::core::batch::NodeState;
use crate::core::report::{NodeOutcome, NodeReport, Progress, Report};
use crate::display::Display;
use crate::engine::{Engine, FIELD_MANAGER, record_state};
use crate::error::{Error, Result, kube as kerr};
use crate::events::Events;
use crate::messages::Msg;
use crate::metrics::Metrics;

/// One run's handles.
pub(super) struct Run<'a> {
    pub client: &'a Client,
    pub settings: &'a Settings,
    pub shutdown: &'a Shutdown,
    pub lang: Lang,
    pub events: &'a Events,
}

impl Run<'_> {
    /// Cordons `nodes` in order, stopping at the first failure: the nodes cordoned,
    /// and the failure if there was one. `known` are the nodes as read at the start.
    pub async fn cordon_all(
        &self,
        nodes: &[String],
        known: &[Node],
    ) -> (Vec<String>, Option<Error>) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut cordoned = Vec::new();
        for name in nodes {
            let node = known.iter().find(|n| &n.name_any() == name);
            match cordon(&api, name, node).await {
                Ok(()) => cordoned.push(name.clone()),
                Err(e) => return (cordoned, Some(e)),
            }
        }
        (cordoned, None)
    }

    /// Drains `nodes`; every node's outcome goes into `report`. Returns the nodes
    /// whose drain started.
    pub async fn drain_all(&self, nodes: &[String], report: &mut Report) -> BTreeSet<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = self.settings;
        let engine = Engine::new(
            self.client.clone(),
            s.engine.clone(),
            tx,
            self.shutdown.clone(),
            self.events.clone(),
        );
        let printer = tokio::spawn(show(Display::new(s.live), rx, s.metrics.clone()));
        let slots = Arc::new(Semaphore::new(
            s.parallel_nodes.unwrap_or(nodes.len()).max(1),
        ));
        // Nodes start in the batch's order (oldest first): one feeder takes the slots
        // one after another. (A task per node racing for a slot started them in
        // whatever order the runtime polled them.)
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let feeder = {
            let (nodes, engine, shutdown, metrics) = (
                nodes.to_vec(),
                engine.clone(),
                self.shutdown.clone(),
                s.metrics.clone(),
            );
            tokio::spawn(async move {
                for node in nodes {
                    let slot = tokio::select! {
                        biased;
                        () = shutdown.signaled() => break,
                        slot = slots.clone().acquire_owned() => slot,
                    };
                    // Shutdown won the race for the slot: this node and the rest
                    // never start.
                    let Ok(slot) = slot else { break };
                    if shutdown.is_triggered() {
                        break;
                    }
                    let (engine, metrics, done) =
                        (engine.clone(), metrics.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let _slot = slot;
                        metrics.started(&node, k8s_openapi::jiff::Timestamp::now().as_second());
                        let outcome = engine.drain_node(&node).await;
                        metrics.outcome(&node, &outcome);
                        // The receiver lives until every sender is gone: this cannot fail.
                        done.send((node, outcome)).ok();
                    });
                }
            })
        };
        drop(engine);
        while let Some((node, outcome)) = done_rx.recv().await {
            self.node_done(&node, &outcome).await;
            report.nodes.push(NodeReport { node, outcome });
        }
        if let Err(e) = feeder.await {
            tracing::error!(error = %e, "the drain's node feeder failed");
        }
        report.nodes.sort_by(|a, b| a.node.cmp(&b.node));
        printer.await.unwrap_or_default()
    }

    /// Tells Slack (and, for text output, stdout) how a node ended.
    async fn node_done(&self, node: &str, outcome: &NodeOutcome) {
        let msg = Msg::NodeResult { node, outcome }.render(self.lang);
        self.settings.slack.post(&msg).await;
        if !self.settings.output.is_structured() {
            println!("{msg}");
        }
    }
}

/// Shows progress events until the engine is gone; the nodes whose drain started.
async fn show(
    mut display: Display,
    mut rx: mpsc::UnboundedReceiver<Progress>,
    metrics: Metrics,
) -> BTreeSet<String> {
    let mut started = BTreeSet::new();
    while let Some(p) = rx.recv().await {
        metrics.progress(&p);
        if let Progress::NodeStarted { node, .. } = &p {
            started.insert(node.clone());
        }
        display.show(&p);
    }
    display.finish();
    started
}

async fn cordon(api: &Api<Node>, name: &str, node: Option<&Node>) -> Result<()> {
    // A node an earlier run left draining keeps its state; resume it.
    if node.and_then(NodeState::of).is_none() {
        record_state(api, name, Some(NodeState::Cordoned))
            .await
            .map_err(kerr(format!("annotating node {name}")))?;
    }
    steward_kube::node::set_unschedulable(api, name, true, FIELD_MANAGER)
        .await
        .map_err(kerr(format!("cordoning node {name}")))?;
    tracing::info!(node = %name, "cordoned");
    Ok(())
}
