//! The command line: global flags and the subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use steward_runtime::Lang;
use steward_runtime::logging::LogFormat;

/// Kubernetes operations toolkit: NodePool drain, graceful drain for VPA evictions, auto-monitoring and CI worker scaling.
#[derive(Debug, Parser)]
#[command(
    name = "steward",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log format on stderr; RUST_LOG sets levels.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "STEWARD_LOG_FORMAT",
        global = true
    )]
    pub log_format: LogFormat,
    /// Language of messages for people (CLI output, Slack).
    #[arg(
        long,
        value_enum,
        default_value = "en",
        env = "STEWARD_LANG",
        global = true
    )]
    pub lang: Lang,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the steward version and the Kubernetes API server version.
    Version(crate::version::Args),
    /// Rotate the nodes of a Karpenter NodePool: size the batch from allocation metrics, cordon, evict through the Eviction API, wait, report to Slack.
    Drain(node_drain::DrainArgs),
    /// Graceful drain for VPA evictions: an eviction webhook and a controller that take a pod out of load balancing, wait until it has drained, then evict it.
    #[command(subcommand)]
    GracefulDrain(graceful_drain::Command),
    /// Karpenter NodePool metrics.
    #[command(subcommand)]
    Karpenter(KarpenterCommand),
    /// Install and keep the monitoring stack a MonitoringStack declares, and onboard every node into monitoring; `status` prints each node's onboarding.
    Monitor(auto_monitor::MonitorArgs),
    /// CI workers: the gRPC scaler (`serve`) and its clients: scale workers, run pipelines as DAGs, stream progress and logs.
    Ottoscaler(ottoscaler::OttoscalerArgs),
    /// Run a local simulated cluster: real etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with kwok nodes.
    Sim(crate::sim::Args),
}

#[derive(Debug, Subcommand)]
pub enum KarpenterCommand {
    /// Print the NodePool's memory and cpu usage, pod requests and allocate rates from Prometheus/Mimir.
    AllocateRate(node_drain::AllocateArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version(args) => crate::version::run(args, cli.lang).await,
        Command::Sim(args) => crate::sim::run(args, cli.lang).await,
        Command::Drain(args) => {
            let shutdown = steward_runtime::Shutdown::new();
            shutdown.on_signals();
            let all_drained = node_drain::run_drain(args, cli.lang, shutdown).await?;
            Ok(if all_drained {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Monitor(args) => {
            let shutdown = steward_runtime::Shutdown::new();
            shutdown.on_signals();
            auto_monitor::run(args, cli.lang, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ottoscaler(args) => Ok(ottoscaler::run(args, cli.lang).await?),
        Command::GracefulDrain(cmd) => {
            let shutdown = steward_runtime::Shutdown::new();
            shutdown.on_signals();
            graceful_drain::dispatch(cmd, cli.lang, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Karpenter(KarpenterCommand::AllocateRate(args)) => {
            node_drain::run_allocate_rate(args, cli.lang).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
