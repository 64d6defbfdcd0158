//! Flags and the two commands.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use steward_runtime::kube_client::KubeArgs;
use steward_runtime::slack::Slack;
use steward_runtime::{Context, Exit, Lang, Localized, Shutdown};
use tokio::sync::mpsc;

use crate::alloc::Allocation;
use crate::engine::{Engine, EngineConfig, FIELD_MANAGER, NodeOutcome, Progress};
use crate::error::{Error, Result, kube as kerr};
use crate::messages::Msg;
use crate::plan::{self, Batch, BatchOptions, Finding, NodeState};
use crate::prometheus::Prometheus;

/// Label Karpenter puts on the nodes of a NodePool.
pub const NODEPOOL_LABEL: &str = "karpenter.sh/nodepool";

/// Flags shared by `drain` and `karpenter allocate-rate` (the node-manager tool's).
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Prometheus or Mimir address (for Mimir include the /prometheus prefix).
    #[arg(
        long,
        env = "PROMETHEUS_ADDRESS",
        default_value = "http://localhost:8080/prometheus"
    )]
    pub prometheus_address: String,
    /// Tenant sent as X-Scope-OrgID (Mimir multi-tenancy).
    #[arg(
        long,
        env = "PROMETHEUS_SCOPE_ORG_ID",
        default_value = "organization-dev"
    )]
    pub prometheus_org_id: String,
    /// Slack incoming-webhook URL; notifications are skipped when empty.
    #[arg(long, env = "SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// Cluster name shown in notifications.
    #[arg(long, env = "CLUSTER_NAME", default_value = "")]
    pub cluster_name: String,
    /// NodePool whose nodes (label karpenter.sh/nodepool=NAME) are drained.
    #[arg(long, env = "NODEPOOL_NAME", default_value = "devel-nodepool-name")]
    pub nodepool_name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// `steward karpenter allocate-rate`.
#[derive(Debug, Clone, clap::Args)]
pub struct AllocateArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

/// `steward drain`.
#[derive(Debug, Clone, clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Print the plan and pre-flight findings; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Drain at least this many nodes when the drain rate is positive.
    #[arg(long, default_value_t = 1)]
    pub min_batch: usize,
    /// Drain at most this many nodes.
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Drain these nodes (comma-separated) instead of the computed batch; they must belong to the NodePool.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Nodes drained at the same time (default: the whole batch). 1 drains one node after another, as kubectl drain does.
    #[arg(long)]
    pub parallel_nodes: Option<usize>,
    /// Evictions in flight per node.
    #[arg(long, default_value_t = 10)]
    pub node_concurrency: usize,
    /// Evictions in flight across all nodes.
    #[arg(long, default_value_t = 50)]
    pub max_concurrency: usize,
    /// How long one node may take before the drain gives up on it (it stays cordoned).
    #[arg(long, default_value = "15m", value_parser = steward_runtime::duration::parse)]
    pub timeout: Duration,
    /// Grace period (seconds, at least 1) for deleting problem pods.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub problem_pod_grace: u32,
    /// Before evicting a Deployment's pod, wait until another schedulable node has room (by requests) for its replacement; see docs/node-drain.md for what this does and does not guarantee.
    #[arg(long)]
    pub wait_for_replacements: bool,
    /// With --wait-for-replacements: evict anyway after this long without room.
    #[arg(long, default_value = "5m", value_parser = steward_runtime::duration::parse)]
    pub replacement_timeout: Duration,
    /// Output format of the final report.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

impl DrainArgs {
    /// Whether the run shows a live per-node display: text output on a terminal.
    pub fn live_display(&self) -> bool {
        use std::io::IsTerminal;
        self.output == Output::Text && !self.dry_run && std::io::stderr().is_terminal()
    }
}

/// The JSON report of `steward drain -o json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub nodepool: String,
    pub allocation: Allocation,
    pub plan: Batch,
    pub findings: Vec<Finding>,
    pub dry_run: bool,
    pub nodes: Vec<NodeReport>,
    pub rolled_back: Vec<String>,
}

/// One node in the report.
#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub node: String,
    #[serde(flatten)]
    pub outcome: NodeOutcome,
}

fn prometheus(g: &GlobalArgs) -> Result<Prometheus> {
    Prometheus::new(
        &g.prometheus_address,
        &g.prometheus_org_id,
        Duration::from_secs(15),
    )
}

/// `steward karpenter allocate-rate`.
pub async fn run_allocate_rate(args: AllocateArgs, ctx: Context) -> Result<Exit> {
    let lang = ctx.lang;
    let a = prometheus(&args.global)?
        .allocation(&args.global.nodepool_name)
        .await?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&serde_json::json!({
            "nodepool": args.global.nodepool_name,
            "generation": a.generation,
            "memory": { "usage_bytes": a.memory.usage, "requests_bytes": a.memory.requests, "allocate_rate_percent": a.memory.rate_percent() },
            "cpu": { "usage_cores": a.cpu.usage, "requests_cores": a.cpu.requests, "allocate_rate_percent": a.cpu.rate_percent() },
            "max_allocate_rate_percent": a.max_rate_percent(),
        })).unwrap_or_default()),
        Output::Text => println!("{}", Msg::Allocation { nodepool: &args.global.nodepool_name, a: &a }.render(lang)),
    }
    Ok(Exit::Ok)
}

/// `steward drain`: 0 when every chosen node was drained, 3 when Ctrl-C or
/// SIGTERM stopped the run first, 1 when a node failed.
pub async fn run_drain(args: DrainArgs, ctx: Context) -> Result<Exit> {
    let all = drain(args, ctx.lang, ctx.shutdown.clone()).await?;
    Ok(match (all, ctx.shutdown.is_triggered()) {
        (true, _) => Exit::Ok,
        (false, true) => Exit::Cancelled,
        (false, false) => Exit::Failed,
    })
}

/// Drains; whether every chosen node was drained.
async fn drain(args: DrainArgs, lang: Lang, shutdown: Shutdown) -> Result<bool> {
    let g = &args.global;
    let client = g.kube.connect().await?.client;
    // Everything that can fail is read before anything changes.
    let allocation = prometheus(g)?.allocation(&g.nodepool_name).await?;
    let nodes_api: Api<Node> = Api::all(client.clone());
    let pool = nodes_api
        .list(&ListParams::default().labels(&format!("{NODEPOOL_LABEL}={}", g.nodepool_name)))
        .await
        .map_err(kerr("listing NodePool nodes"))?
        .items;
    for n in &args.nodes {
        if !pool.iter().any(|p| &p.name_any() == n) {
            return Err(Error::UnknownNode(n.clone(), g.nodepool_name.clone()));
        }
    }
    // Every pod of the cluster, kept only as far as planning reads them.
    let pods = steward_kube::list::list_all_map(
        &Api::<Pod>::all(client.clone()),
        &ListParams::default(),
        plan::slim,
    )
    .await
    .map_err(kerr("listing pods"))?;
    let pdbs = Api::<PodDisruptionBudget>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kerr("listing PodDisruptionBudgets"))?
        .items;
    let all_nodes = nodes_api
        .list(&ListParams::default())
        .await
        .map_err(kerr("listing nodes"))?
        .items;

    let opts = BatchOptions {
        min_batch: args.min_batch,
        max_batch: args.max_batch,
        nodes: args.nodes.clone(),
    };
    let batch = plan::batch(&pool, &pods, allocation.max_rate_percent(), &opts);
    let findings = plan::preflight(&batch.nodes, &all_nodes, &pods, &pdbs);
    // The cluster-wide lists are not read again: free them before the drain starts.
    drop((pods, pdbs));
    let mut report = Report {
        nodepool: g.nodepool_name.clone(),
        allocation,
        plan: batch.clone(),
        findings,
        dry_run: args.dry_run,
        nodes: Vec::new(),
        rolled_back: Vec::new(),
    };
    if args.output == Output::Text {
        println!(
            "{}",
            Msg::Allocation {
                nodepool: &g.nodepool_name,
                a: &allocation
            }
            .render(lang)
        );
        println!(
            "{}",
            Msg::Plan {
                nodes: pool.len(),
                b: &batch
            }
            .render(lang)
        );
        for f in &report.findings {
            println!(
                "pre-flight: {}",
                serde_json::to_string(f).unwrap_or_default()
            );
        }
    }
    if args.dry_run || batch.nodes.is_empty() {
        let msg = if args.dry_run {
            Msg::DryRun
        } else {
            Msg::NothingToDrain
        };
        finish(&report, args.output, &msg.render(lang));
        return Ok(true);
    }

    let slack = Slack::new(g.slack_webhook_url.clone());
    slack
        .post(
            &Msg::SlackStart {
                cluster: &g.cluster_name,
                nodepool: &g.nodepool_name,
                nodes: pool.len(),
                a: &allocation,
                batch: &batch.nodes,
            }
            .render(lang),
        )
        .await;
    let mut cordoned = Vec::new();
    let mut failure = None;
    for name in &batch.nodes {
        match cordon(
            &nodes_api,
            name,
            pool.iter()
                .chain(&all_nodes)
                .find(|n| &n.name_any() == name),
        )
        .await
        {
            Ok(()) => cordoned.push(name.clone()),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }

    let started = if failure.is_none() && !shutdown.is_triggered() {
        drain_all(
            &client,
            &args,
            &batch.nodes,
            &shutdown,
            &slack,
            lang,
            &mut report,
        )
        .await
    } else {
        BTreeSet::new()
    };
    // Roll back nodes this run cordoned but never started draining.
    for name in cordoned
        .iter()
        .filter(|n| !started.contains(*n) && !batch.resumed.contains(n))
    {
        if let Err(e) = uncordon(&nodes_api, name).await {
            tracing::error!(node = %name, error = %e, "rolling back the cordon failed; uncordon it by hand");
        } else {
            report.rolled_back.push(name.clone());
        }
    }
    let drained = report
        .nodes
        .iter()
        .filter(|n| matches!(n.outcome, NodeOutcome::Drained { .. }))
        .count();
    let summary = Msg::Summary {
        cluster: &g.cluster_name,
        nodepool: &g.nodepool_name,
        drained,
        total: batch.nodes.len(),
        rolled_back: &report.rolled_back,
    }
    .render(lang);
    slack.post(&summary).await;
    finish(&report, args.output, &summary);
    match failure {
        Some(e) => Err(e),
        None => Ok(drained == batch.nodes.len()),
    }
}

async fn drain_all(
    client: &Client,
    args: &DrainArgs,
    nodes: &[String],
    shutdown: &Shutdown,
    slack: &Slack,
    lang: Lang,
    report: &mut Report,
) -> BTreeSet<String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cfg = EngineConfig {
        per_node: args.node_concurrency,
        overall: args.max_concurrency,
        node_timeout: args.timeout,
        problem_grace: args.problem_pod_grace,
        wait_for_replacements: args
            .wait_for_replacements
            .then_some(args.replacement_timeout),
    };
    let engine = Engine::new(client.clone(), cfg, tx, shutdown.clone());
    let mut display = crate::progress::Display::new(args.live_display());
    let printer = tokio::spawn(async move {
        let mut started = BTreeSet::new();
        while let Some(p) = rx.recv().await {
            if let Progress::NodeStarted { node, .. } = &p {
                started.insert(node.clone());
            }
            display.show(&p);
        }
        display.finish();
        started
    });
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(
        args.parallel_nodes.unwrap_or(nodes.len()).max(1),
    ));
    let mut set = tokio::task::JoinSet::new();
    for node in nodes {
        let (engine, node, slots, shutdown) = (
            engine.clone(),
            node.clone(),
            slots.clone(),
            shutdown.clone(),
        );
        set.spawn(async move {
            let _slot = tokio::select! {
                slot = slots.acquire_owned() => slot.ok()?,
                () = shutdown.signaled() => return None,
            };
            // Shutdown won the race for the slot: this node never starts.
            if shutdown.is_triggered() {
                return None;
            }
            let outcome = engine.drain_node(&node).await;
            Some((node, outcome))
        });
    }
    drop(engine);
    while let Some(joined) = set.join_next().await {
        let Ok(Some((node, outcome))) = joined else {
            continue;
        };
        slack
            .post(
                &Msg::NodeResult {
                    node: &node,
                    outcome: &outcome,
                }
                .render(lang),
            )
            .await;
        if args.output == Output::Text {
            println!(
                "{}",
                Msg::NodeResult {
                    node: &node,
                    outcome: &outcome
                }
                .render(lang)
            );
        }
        report.nodes.push(NodeReport { node, outcome });
    }
    report.nodes.sort_by(|a, b| a.node.cmp(&b.node));
    printer.await.unwrap_or_default()
}

fn finish(report: &Report, output: Output, line: &str) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        ),
        Output::Text => println!("{line}"),
    }
}

async fn cordon(api: &Api<Node>, name: &str, node: Option<&Node>) -> Result<()> {
    // A node an earlier run left draining keeps its state; resume it.
    if node.and_then(NodeState::of).is_none() {
        crate::engine::record_state(api, name, Some(NodeState::Cordoned))
            .await
            .map_err(kerr(format!("annotating node {name}")))?;
    }
    steward_kube::node::set_unschedulable(api, name, true, FIELD_MANAGER)
        .await
        .map_err(kerr(format!("cordoning node {name}")))?;
    tracing::info!(node = %name, "cordoned");
    Ok(())
}

async fn uncordon(api: &Api<Node>, name: &str) -> Result<()> {
    steward_kube::node::set_unschedulable(api, name, false, FIELD_MANAGER)
        .await
        .map_err(kerr(format!("uncordoning node {name}")))?;
    crate::engine::record_state(api, name, None)
        .await
        .map_err(kerr(format!("annotating node {name}")))?;
    tracing::info!(node = %name, "uncordoned: its drain never started");
    Ok(())
}
