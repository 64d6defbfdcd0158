//! The command line of the NodePool drain: `steward drain` and `steward karpenter
//! allocate-rate`, their flags (shared ones in [`GlobalArgs`]), and their exit
//! statuses. The drain itself is [`crate::drain`].

use std::sync::Arc;
use std::time::Duration;

use steward_runtime::kube_client::KubeArgs;
use steward_runtime::slack::Slack;
use steward_runtime::{Context, Exit, Localized, Output};

use crate::core::batch::BatchOptions;
use crate::core::report::exit_of;
use crate::display::print_report;
use crate::drain::{Settings, drain};
use crate::engine::EngineConfig;
use crate::error::Result;
use crate::lock::{self, LockOptions};
use crate::messages::Msg;
use crate::metrics::Metrics;
use crate::prometheus::PrometheusArgs;

/// Flags shared by `drain` and `karpenter allocate-rate` (the node-manager tool's).
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    /// Slack incoming-webhook URL; notifications are skipped when empty. It is a
    /// credential: prefer the environment or --slack-webhook-url-file to a flag,
    /// which other users of the machine can read in the process list.
    #[arg(long, env = "SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// A file holding the Slack webhook URL (a mounted Secret key); surrounding
    /// whitespace is ignored. Not together with --slack-webhook-url.
    #[arg(long, env = "SLACK_WEBHOOK_URL_FILE", value_name = "PATH")]
    pub slack_webhook_url_file: Option<std::path::PathBuf>,
    /// Cluster name shown in notifications.
    #[arg(long, env = "CLUSTER_NAME", default_value = "")]
    pub cluster_name: String,
    /// NodePool whose nodes (label karpenter.sh/nodepool=NAME) are drained.
    #[arg(long, env = "NODEPOOL_NAME", default_value = "devel-nodepool-name")]
    pub nodepool_name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `steward karpenter allocate-rate`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  steward karpenter allocate-rate --nodepool-name general --prometheus-address http://mimir:8080/prometheus
  steward karpenter allocate-rate --nodepool-name general -o json | jq .max_allocate_rate_percent

Exit status: 0 printed, 1 Prometheus answered without the NodePool's Karpenter metrics or refused the credentials, 2 a flag (or a file it names) is unusable, 4 Prometheus cannot be reached.")]
pub struct AllocateArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

/// `steward drain`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  # What would be drained, and what stands in the way; changes nothing
  steward drain --nodepool-name general --dry-run
  # The computed batch, one node after another, at most 3
  steward drain --nodepool-name general --max-batch 3 --parallel-nodes 1
  # These nodes, waiting for room for each Deployment pod's replacement
  steward drain --nodepool-name general --nodes ip-10-0-1-7,ip-10-0-2-9 --wait-for-replacements
  # The report as JSON for a script
  steward drain --nodepool-name general -o json > report.json

Nodes are cluster-scoped and pods are moved in every namespace: drain has no -n/--namespace (everywhere in steward, -n means a Kubernetes namespace).

Exit status: 0 every chosen node was drained (or nothing had to be), 1 a node failed or timed out, 2 a flag is wrong (nothing was changed), 3 interrupted by Ctrl-C or SIGTERM (started nodes stay cordoned for the next run, the others are uncordoned), 4 Prometheus or the Kubernetes API server cannot be reached (nothing was changed).")]
pub struct DrainArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Serve /metrics, /healthz and /readyz here while the drain runs (for a Job a
    /// PodMonitor scrapes); default: no server.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
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
    /// Also evict pods no controller owns (nothing recreates them), as `kubectl
    /// drain --force`; without it a run with such pods on its nodes refuses before
    /// changing anything and names them.
    #[arg(long)]
    pub force: bool,
    /// Evict a Deployment's pod at once even when that leaves the Deployment no
    /// ready pod (one replica, or a PodDisruptionBudget allowing no disruption).
    /// Without it such a Deployment is restarted first (as `kubectl rollout
    /// restart`, needing maxUnavailable 0) and the pod leaves once its
    /// replacement is Ready.
    #[arg(long)]
    pub no_surge: bool,
    /// Leave drained nodes cordoned instead of handing them to Karpenter (by
    /// deleting their NodeClaims), as before steward finished rotations. Kept
    /// nodes stay disrupted, so the NodePool's budget then cuts the batch; handing
    /// off, it paces it (that many nodes at a time, each gone before the next).
    #[arg(long)]
    pub keep_nodes: bool,
    /// Delete the Node object of a drained node no NodeClaim backs (not a
    /// Karpenter node); the machine itself is not stopped. Without it such nodes
    /// stay cordoned and are named.
    #[arg(long, conflicts_with = "keep_nodes")]
    pub delete_nodes: bool,
    /// How long to wait for a handed-off node to be gone (Karpenter goes on after).
    #[arg(long, default_value = "10m", value_parser = steward_runtime::duration::parse)]
    pub handoff_timeout: Duration,
    /// When another run of the NodePool holds its Lease, wait for it instead of
    /// exiting at once.
    #[arg(long)]
    pub wait_for_lock: bool,
    /// Namespace of the run's Lease `steward-drain-<nodepool>` (one run per
    /// NodePool at a time); every run of a pool must use the same one.
    #[arg(
        long,
        env = "STEWARD_DRAIN_LOCK_NAMESPACE",
        default_value = "kube-system",
        value_name = "NS"
    )]
    pub lock_namespace: String,
    /// Seconds the Lease outlives a run that stopped renewing it (a crash): then
    /// the next run takes it over and resumes the nodes left mid-drain.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600), value_name = "SECONDS")]
    pub lock_duration: u64,
}

impl GlobalArgs {
    /// The Slack webhook URL from `--slack-webhook-url` or the file
    /// `--slack-webhook-url-file` names; an error names the flag and the file, never
    /// the URL.
    pub fn slack_url(&self) -> Result<Option<String>> {
        const FLAG: &str = "--slack-webhook-url-file";
        let Some(path) = &self.slack_webhook_url_file else {
            return Ok(self.slack_webhook_url.clone());
        };
        if self
            .slack_webhook_url
            .as_deref()
            .is_some_and(|u| !u.is_empty())
        {
            return Err(crate::error::Error::Flag {
                flag: FLAG,
                reason: "give the URL once: --slack-webhook-url (or SLACK_WEBHOOK_URL) is set too"
                    .into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| crate::error::Error::Flag {
            flag: FLAG,
            reason: format!("reading {}: {e}", path.display()),
        })?;
        let url = text.trim();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(crate::error::Error::Flag {
                flag: FLAG,
                reason: format!("{} does not hold an http(s) URL", path.display()),
            });
        }
        Ok(Some(url.to_string()))
    }
}

impl DrainArgs {
    /// Whether the run shows a live per-node display: text output on a terminal.
    pub fn live_display(&self) -> bool {
        use std::io::IsTerminal;
        self.output == Output::Text && !self.dry_run && std::io::stderr().is_terminal()
    }

    /// The drain's settings: the flags turned into what the run reads.
    fn settings(&self, metrics: Metrics) -> Result<Settings> {
        let g = &self.global;
        Ok(Settings {
            nodepool: g.nodepool_name.clone(),
            cluster: g.cluster_name.clone(),
            prometheus: g.prometheus.connect()?,
            slack: Slack::new(g.slack_url()?),
            batch: BatchOptions {
                min_batch: self.min_batch,
                max_batch: self.max_batch,
                nodes: self.nodes.clone(),
                rolling: !self.keep_nodes,
            },
            engine: EngineConfig {
                per_node: self.node_concurrency,
                overall: self.max_concurrency,
                node_timeout: self.timeout,
                problem_grace: self.problem_pod_grace,
                wait_for_replacements: self
                    .wait_for_replacements
                    .then_some(self.replacement_timeout),
                surge: !self.no_surge,
            },
            parallel_nodes: self.parallel_nodes,
            force: self.force,
            keep_nodes: self.keep_nodes,
            delete_nodes: self.delete_nodes,
            handoff_timeout: self.handoff_timeout,
            dry_run: self.dry_run,
            output: self.output,
            live: self.live_display(),
            metrics,
        })
    }
}

/// `steward karpenter allocate-rate`.
pub async fn run_allocate_rate(args: AllocateArgs, ctx: Context) -> Result<Exit> {
    let nodepool = &args.global.nodepool_name;
    let prometheus = args.global.prometheus.connect()?;
    let a = prometheus.allocation(nodepool).await?;
    let queries = a.queries(nodepool, prometheus.selector());
    let report = serde_json::json!({
        "nodepool": nodepool,
        "generation": a.generation,
        "capacity_metric": a.capacity,
        "selector": prometheus.selector().to_string(),
        "queries": queries,
        "memory": { "usage_bytes": a.memory.usage, "requests_bytes": a.memory.requests, "allocate_rate_percent": a.memory.rate_percent() },
        "cpu": { "usage_cores": a.cpu.usage, "requests_cores": a.cpu.requests, "allocate_rate_percent": a.cpu.rate_percent() },
        "max_allocate_rate_percent": a.max_rate_percent(),
    });
    let text = Msg::Allocation {
        nodepool,
        a: &a,
        queries: &queries,
    }
    .render(ctx.lang);
    print_report(args.output, &report, &text);
    Ok(Exit::Ok)
}

/// `steward drain`: 0 when every chosen node was drained, 3 when Ctrl-C or
/// SIGTERM stopped the run first, 1 when a node failed.
pub async fn run_drain(args: DrainArgs, ctx: Context) -> Result<Exit> {
    let mut registry = steward_runtime::admin::registry(env!("CARGO_PKG_VERSION"));
    let metrics = Metrics::new(&mut registry, args.timeout);
    let settings = args.settings(metrics)?;
    let client = args.global.kube.connect().await?.client;
    if let Some(addr) = args.metrics_addr {
        let server = steward_runtime::admin::AdminServer::bind(addr).await?;
        let ready = steward_runtime::admin::Readiness::default();
        ready.set(true);
        tokio::spawn(server.serve(Arc::new(registry), ready, ctx.shutdown.clone()));
    }
    // A dry run changes nothing and needs no lock.
    let lock = if args.dry_run {
        None
    } else {
        let opts = LockOptions {
            namespace: args.lock_namespace.clone(),
            duration: args.lock_duration,
            wait: args.wait_for_lock,
        };
        match lock::take(&client, &opts, &settings.nodepool, &ctx.shutdown).await? {
            Some(leader) => {
                let (done, watch) = tokio::sync::oneshot::channel();
                Some((
                    done,
                    lock::stop_on_loss(leader, ctx.shutdown.clone(), watch),
                ))
            }
            // Interrupted while waiting for the lock: nothing was changed.
            None => return Ok(Exit::Cancelled),
        }
    };
    let all = drain(&client, &settings, ctx.lang, &ctx.shutdown).await;
    if let Some((done, watch)) = lock {
        // A send fails only when the watch already ended, the Lease lost.
        done.send(()).ok();
        if let Ok(leader) = watch.await {
            leader.release(Duration::from_secs(5)).await;
        }
    }
    Ok(exit_of(all?, ctx.shutdown.is_triggered()))
}
