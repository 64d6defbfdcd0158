//! One onboarding pass for a stack: read the nodes and exporter pods from the watch
//! caches and the targets from Prometheus, step each node (pure, in
//! [`crate::core::onboarding`]), publish the histogram and Events, and write the
//! records into the status.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use steward_kube::scheduling::selector_matches;
use steward_runtime::Localized;

use super::Controller;
use crate::core::manifests::workloads::NODE_EXPORTER_PORT;
use crate::core::onboarding::views::{exporter, node_view, pending_for};
use crate::core::onboarding::{self, Cause, ExporterView, ScrapeView};
use crate::core::stack::{STACK_LABEL, Stack};
use crate::core::status;
use crate::core::validate::Settings;
use crate::crd::{MonitoringStackStatus, NodeOnboarding};
use crate::error::{Result, kube as kerr};
use crate::messages::Msg;
use crate::metrics::StepLabels;
use crate::promapi::PromApi;

/// What every node's step in one pass shares.
struct Pass<'a> {
    stack: &'a Stack,
    /// The exporter DaemonSet's tolerations.
    tolerations: Vec<Toleration>,
    /// What Prometheus says, by node.
    scrapes: BTreeMap<String, ScrapeView>,
    /// The records of the last pass, by node.
    prev: BTreeMap<String, NodeOnboarding>,
    /// When the stack was installed (nodes Ready before are measured from then).
    installed_at: Timestamp,
    deadline: Duration,
    now: Timestamp,
}

impl Controller {
    /// Steps every selected node's onboarding; the records go into `status`.
    pub(super) async fn onboard(
        &mut self,
        stack: &Stack,
        settings: &Settings,
        status: &mut MonitoringStackStatus,
        now: Timestamp,
    ) -> Result<()> {
        if !settings.has("node-exporter") {
            status.nodes.clear();
            status.summary = None;
            return Ok(());
        }
        let Some(scrapes) = self.scrapes(stack, status, now).await? else {
            // Without Prometheus nothing can be said about targets: keep the records.
            return Ok(());
        };
        // "Seen by steward" times are taken after the answer: the pass's start would
        // come before the sample it reports.
        let now = Timestamp::now();
        let tolerations = self.exporter_tolerations(stack).await?;
        let installed_at = status
            .applied_at
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(now);
        let prev = status
            .nodes
            .iter()
            .map(|r| (r.node.clone(), r.clone()))
            .collect();
        let mut nodes: Vec<_> = self
            .nodes
            .state()
            .into_iter()
            .filter(|n| selector_matches(n.labels(), &settings.node_selector))
            .collect();
        nodes.sort_by_key(|n| n.name_any());
        let pass = Pass {
            stack,
            tolerations,
            scrapes,
            prev,
            installed_at,
            deadline: settings.onboarding_deadline,
            now,
        };
        let mut records = Vec::with_capacity(nodes.len());
        for n in &nodes {
            records.push(self.step_node(&pass, n).await?);
        }
        let monitored = records.iter().filter(|r| r.step == "Monitored").count();
        self.metrics.nodes.clear();
        for r in &records {
            self.metrics
                .nodes
                .get_or_create(&StepLabels {
                    step: r.step.clone(),
                })
                .inc();
        }
        status.summary = Some(format!("{monitored}/{}", records.len()));
        status.nodes = records;
        Ok(())
    }

    /// What Prometheus says about every node's target, and `PrometheusReachable`;
    /// `None` when it did not answer.
    async fn scrapes(
        &mut self,
        stack: &Stack,
        status: &mut MonitoringStackStatus,
        now: Timestamp,
    ) -> Result<Option<BTreeMap<String, ScrapeView>>> {
        let url = self
            .cfg
            .prometheus_url
            .clone()
            .unwrap_or_else(|| stack.prometheus_url());
        if !self.proms.contains_key(&url) {
            self.proms.insert(url.clone(), PromApi::new(&url)?);
        }
        match self.proms[&url].scrape_views().await {
            Ok(s) => {
                status::prometheus(status, Ok(&url), now);
                Ok(Some(s))
            }
            Err(e) => {
                status::prometheus(status, Err(&e.to_string()), now);
                tracing::debug!(%url, error = %e, "Prometheus not answering; onboarding records kept as they are");
                Ok(None)
            }
        }
    }

    /// One node's step: the views, the port holders when they could be the
    /// cause of lateness, the state machine, and the Events it asks for.
    async fn step_node(&self, pass: &Pass<'_>, n: &Node) -> Result<NodeOnboarding> {
        let name = n.name_any();
        let exporter = self.exporter_view(pass.stack, &name);
        let mut view = node_view(n, &pass.tolerations);
        let scrape = pass.scrapes.get(&name).copied().unwrap_or_default();
        let waited = view
            .ready_since
            .map(|r| pass.now.duration_since(r.max(pass.installed_at)));
        let maybe_late = waited.is_some_and(|w| w.as_secs_f64() >= pass.deadline.as_secs_f64());
        if maybe_late
            && matches!(
                onboarding::cause(&view, exporter.as_ref(), &scrape),
                Some(Cause::NoExporterPod | Cause::Unschedulable(_) | Cause::HostPortConflict(_))
            )
        {
            view.port_9100_holders = self.port_holders(pass.stack, &name).await?;
        }
        let out = onboarding::step(
            pass.prev.get(&name),
            &view,
            exporter.as_ref(),
            &scrape,
            pass.installed_at,
            pass.deadline,
            pass.now,
        );
        if let Some(secs) = out.onboarded {
            if view.ready_since.is_some_and(|r| r >= pass.installed_at) {
                self.metrics.onboarding_seconds.observe(secs);
            }
            tracing::info!(node = %name, seconds = secs, "node monitored");
            let msg = Msg::NodeMonitored {
                node: &name,
                seconds: secs,
            }
            .render(self.cfg.lang);
            self.event(n, crate::events::node_monitored(msg)).await;
        }
        if let Some(cause) = &out.late {
            let msg = Msg::NodeLate {
                node: &name,
                cause,
                deadline: pass.deadline.as_secs(),
            }
            .render(self.cfg.lang);
            tracing::warn!(node = %name, cause = cause.reason(), "node not monitored past its deadline");
            self.event(n, crate::events::node_not_monitored(cause, msg))
                .await;
        }
        Ok(out.record)
    }

    /// The exporter pod on `node`, from the watch cache.
    fn exporter_view(&self, stack: &Stack, node: &str) -> Option<ExporterView> {
        let label = stack.stack_label();
        let mut pods: Vec<_> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(&stack.namespace))
            .filter(|p| p.labels().get(STACK_LABEL) == Some(&label))
            .filter(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
                    || pending_for(p, node)
            })
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        pods.sort_by_key(|p| p.metadata.creation_timestamp.clone());
        pods.last().map(|p| exporter(p))
    }

    /// Tolerations of the live node-exporter DaemonSet (helm charts may differ from ours).
    async fn exporter_tolerations(&self, stack: &Stack) -> Result<Vec<Toleration>> {
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &stack.namespace);
        let ds = api
            .get_opt(&stack.object_name("node-exporter"))
            .await
            .map_err(kerr("reading the node-exporter DaemonSet"))?;
        Ok(ds
            .and_then(|d| d.spec?.template.spec?.tolerations)
            .unwrap_or_else(|| {
                vec![Toleration {
                    operator: Some("Exists".into()),
                    ..Toleration::default()
                }]
            }))
    }

    /// Pods not of this stack on `node` that hold host port 9100.
    async fn port_holders(&self, stack: &Stack, node: &str) -> Result<Vec<String>> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let pods = api
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .map_err(kerr(format!("listing pods on {node}")))?;
        Ok(pods
            .items
            .iter()
            .filter(|p| p.labels().get(STACK_LABEL) != Some(&stack.stack_label()))
            .filter(|p| {
                p.spec
                    .iter()
                    .flat_map(|s| &s.containers)
                    .flat_map(|c| c.ports.iter().flatten())
                    .any(|port| port.host_port == Some(NODE_EXPORTER_PORT))
            })
            .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
            .collect())
    }
}
