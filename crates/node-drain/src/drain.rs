//! `steward drain`, step by step: [`gather`](self::gather) reads everything that
//! can fail before anything changes; the plan is pure
//! ([`crate::core::batch`], [`crate::core::preflight`]); [`execute`](self::execute)
//! cordons the batch and drains its nodes through the [`crate::engine`];
//! [`rollback`](self::rollback) uncordons the nodes whose drain never started.
//! Slack hears of the start, each node and the summary; each node gets Kubernetes
//! Events ([`crate::events`]) for its start, its end and its rollback.

use kube::Client;
use steward_runtime::slack::Slack;
use steward_runtime::{Lang, Localized, Output, Shutdown};

use self::gather::Gathered;
use crate::core::batch::{self, Batch, BatchOptions};
use crate::core::budget;
use crate::core::handoff::replacements;
use crate::core::preflight::{Finding, preflight};
use crate::core::report::{Report, drained};
use crate::core::selector::Selector;
use crate::display::print_report;
use crate::engine::EngineConfig;
use crate::error::Result;
use crate::events::Events;
use crate::messages::Msg;
use crate::metrics::Metrics;
use crate::prometheus::Prometheus;

mod execute;
mod gather;
mod handoff;
mod rollback;

/// What a drain reads, from the flags (`cli::DrainArgs`), immutable for the run.
#[derive(Debug)]
pub struct Settings {
    /// The NodePool.
    pub nodepool: String,
    /// The cluster's name, for notifications.
    pub cluster: String,
    /// Where the allocation comes from.
    pub prometheus: Prometheus,
    /// Where notifications go (a no-op without a webhook).
    pub slack: Slack,
    /// How the batch is chosen.
    pub batch: BatchOptions,
    /// Limits of each node's drain.
    pub engine: EngineConfig,
    /// Nodes drained at once (`None`: the whole batch).
    pub parallel_nodes: Option<usize>,
    /// Evict pods no controller owns too (`--force`).
    pub force: bool,
    /// Leave drained nodes cordoned (`--keep-nodes`).
    pub keep_nodes: bool,
    /// Delete drained nodes no NodeClaim backs (`--delete-nodes`).
    pub delete_nodes: bool,
    /// How long a handed-off node may take to go.
    pub handoff_timeout: std::time::Duration,
    /// Plan only.
    pub dry_run: bool,
    /// The report's format.
    pub output: Output,
    /// A live display on the terminal.
    pub live: bool,
    /// The run's metrics (served on `--metrics-addr` when given).
    pub metrics: Metrics,
}

/// Drains; whether every chosen node was drained and handed off.
pub async fn drain(client: &Client, s: &Settings, lang: Lang, shutdown: &Shutdown) -> Result<bool> {
    // NodeClaims created from here on are the run's replacements (the API server
    // stamps whole seconds).
    let since = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let gathered = gather::gather(client, s).await?;
    let (batch, findings) = plan(&gathered, &s.batch, &s.nodepool, jiff::Timestamp::now())?;
    let Gathered {
        allocation,
        pool,
        budgets: _,
        claims,
        pods,
        pdbs,
        all_nodes,
    } = gathered;
    // The cluster-wide lists are not read again: free them before the drain starts.
    drop((pods, pdbs));
    let mut report = Report {
        nodepool: s.nodepool.clone(),
        allocation,
        plan: batch.clone(),
        findings,
        dry_run: s.dry_run,
        nodes: Vec::new(),
        rolled_back: Vec::new(),
        handoff: Vec::new(),
        replacements: Vec::new(),
    };
    if !s.output.is_structured() {
        show_plan(&report, pool.len(), s.prometheus.selector(), lang);
    }
    let unmanaged = unmanaged(&report.findings);
    if !s.force && !unmanaged.is_empty() {
        if s.dry_run {
            let msg = Msg::NeedsForce { pods: &unmanaged };
            eprintln!("{}", msg.render(lang));
        } else {
            // As kubectl drain without --force, but before anything is cordoned.
            return Err(crate::error::Error::Unmanaged(unmanaged));
        }
    }
    if s.dry_run || (batch.nodes.is_empty() && batch.left_drained.is_empty()) {
        let msg = if s.dry_run {
            Msg::DryRun
        } else {
            Msg::NothingToDrain {
                budget: batch.limited_by == batch::Limit::Budget,
            }
        };
        print_report(s.output, &report, &msg.render(lang));
        return Ok(true);
    }
    let start = Msg::SlackStart {
        cluster: &s.cluster,
        nodepool: &s.nodepool,
        nodes: pool.len(),
        a: &allocation,
        batch: &batch.nodes,
    };
    s.slack.post(&start.render(lang)).await;
    let known: Vec<_> = pool.into_iter().chain(all_nodes).collect();
    let events = Events::new(client.clone(), lang, &s.nodepool, &batch.nodes);
    let run = execute::Run {
        client,
        settings: s,
        shutdown,
        lang,
        events: &events,
    };
    // Nodes an earlier run left drained are disrupted already: handed off first.
    if !batch.left_drained.is_empty() && !s.keep_nodes && !shutdown.is_triggered() {
        report.handoff = run
            .hand_off_all(&batch.left_drained, &batch.left_drained, &claims)
            .await;
    }
    let failure = waves(&run, &batch, &known, &claims, &mut report).await;
    match handoff::claims(client, &s.nodepool).await {
        Ok(claims) => report.replacements = replacements(&claims, &s.nodepool, since),
        Err(e) => tracing::warn!(error = %e, "listing the run's new NodeClaims failed"),
    }
    let drained = drained(&report.nodes);
    summarize(&report, s, lang, drained).await;
    let handed_off = report.handoff.iter().all(|h| h.outcome.is_done());
    match failure {
        Some(e) => Err(e),
        None => Ok(drained == batch.nodes.len() && handed_off),
    }
}

/// Works through the batch `batch.wave` nodes at a time: cordon, drain, roll back
/// what did not start, hand off. The next wave starts only once every node of this
/// one is gone (replaced or deleted), so the NodePool's budget is never exceeded;
/// otherwise (a failure, a kept node, Ctrl-C) the rest is left untouched. The
/// first error that stopped a cordon.
async fn waves(
    run: &execute::Run<'_>,
    batch: &Batch,
    known: &[k8s_openapi::api::core::v1::Node],
    claims: &[crate::core::handoff::Claim],
    report: &mut Report,
) -> Option<crate::error::Error> {
    let shutdown = run.shutdown;
    // Every node of the batch is pending until its wave starts it.
    run.settings.metrics.planned(batch.nodes.len());
    for wave in batch.nodes.chunks(batch.wave.max(1)) {
        let (cordoned, failure) = run.cordon_all(wave, known).await;
        let started = if failure.is_none() && !shutdown.is_triggered() {
            run.drain_all(wave, report).await
        } else {
            Default::default()
        };
        let back =
            rollback::roll_back(run.client, run.events, &cordoned, &started, &batch.resumed).await;
        report.rolled_back.extend(back);
        if failure.is_some() {
            return failure;
        }
        if shutdown.is_triggered() {
            return None;
        }
        let done: Vec<String> = report
            .nodes
            .iter()
            .filter(|n| wave.contains(&n.node) && n.outcome.is_drained())
            .map(|n| n.node.clone())
            .collect();
        let ends = run.hand_off_all(&done, &[], claims).await;
        let freed = done.len() == wave.len() && ends.iter().all(|h| h.outcome.is_gone());
        report.handoff.extend(ends);
        if !freed {
            let rest = batch.nodes.len() - report.nodes.len().min(batch.nodes.len());
            if rest > 0 {
                tracing::warn!(
                    untouched = rest,
                    "a node of this wave is not gone, so the budget has no room: the rest of the batch waits for the next run"
                );
            }
            break;
        }
    }
    None
}

/// The pods without a controller among the findings.
fn unmanaged(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter_map(|f| match f {
            Finding::Unmanaged { pod } => Some(pod.clone()),
            _ => None,
        })
        .collect()
}

/// The plan: the batch, within the NodePool's budget at `now`, and what stands
/// in the way. Pure.
fn plan(
    g: &Gathered,
    opts: &BatchOptions,
    nodepool: &str,
    now: jiff::Timestamp,
) -> Result<(Batch, Vec<Finding>)> {
    let allowance = match &g.budgets {
        None => None,
        Some(budgets) => {
            let (total, disrupting) = budget::census(&g.pool);
            let a =
                budget::allowance(budgets.clone(), now, total, disrupting).map_err(|source| {
                    crate::error::Error::Budget {
                        nodepool: nodepool.into(),
                        source,
                    }
                })?;
            Some(a)
        }
    };
    // Rolling, `--nodes` past the budget are worked through within it; only a
    // budget used up, or kept nodes that all stay disrupted, refuse them.
    if let Some(a) = &allowance
        && let Some(allowed) = a.allowed
        && opts.nodes.len() > allowed
        && (allowed == 0 || !opts.rolling)
    {
        return Err(crate::error::Error::OverBudget {
            nodepool: nodepool.into(),
            named: opts.nodes.len(),
            allowed,
            why: budget::describe(a),
        });
    }
    let rate = g.allocation.max_rate_percent();
    let batch = batch::batch(&g.pool, &g.pods, &g.claims, rate, opts, allowance);
    let findings = preflight(&batch.nodes, &g.all_nodes, &g.pods, &g.pdbs);
    Ok((batch, findings))
}

/// Prints the allocation, the batch computation and the pre-flight findings.
fn show_plan(report: &Report, pool: usize, selector: &Selector, lang: Lang) {
    let queries = report.allocation.queries(&report.nodepool, selector);
    let allocation = Msg::Allocation {
        nodepool: &report.nodepool,
        a: &report.allocation,
        queries: &queries,
    };
    println!("{}", allocation.render(lang));
    let plan = Msg::Plan {
        nodes: pool,
        b: &report.plan,
    };
    println!("{}", plan.render(lang));
    for f in &report.findings {
        println!(
            "pre-flight: {}",
            serde_json::to_string(f).unwrap_or_default()
        );
    }
}

/// The summary, to Slack and stdout (or the report, for `-o json|yaml`).
async fn summarize(report: &Report, s: &Settings, lang: Lang, drained: usize) {
    let summary = Msg::Summary {
        cluster: &s.cluster,
        nodepool: &s.nodepool,
        drained,
        total: report.plan.nodes.len(),
        rolled_back: &report.rolled_back,
        handoff: &report.handoff,
        replacements: &report.replacements,
    }
    .render(lang);
    s.slack.post(&summary).await;
    print_report(s.output, report, &summary);
}
