//! The command line: global flags and the subcommands.

use clap::{CommandFactory, Parser, Subcommand};
use steward_runtime::logging::LogFormat;
use steward_runtime::{Context, Exit, Lang, Shutdown};

/// Kubernetes operations toolkit: NodePool drain, graceful drain for VPA evictions, auto-monitoring and CI worker scaling.
#[derive(Debug, Parser)]
#[command(
    name = "steward",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = EXIT_STATUS
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

/// The exit statuses, as `steward_runtime::exit` documents them.
const EXIT_STATUS: &str = "Exit status:
  0    done
  1    the command ran and failed (nodes left undrained, a pipeline run failed, leadership lost)
  2    usage: a flag, argument or input is wrong; nothing was changed
  3    cancelled or interrupted (Ctrl-C, SIGTERM, a cancelled pipeline run)
  4    a dependency cannot be reached (Kubernetes API server, Prometheus, the ottoscaler server)
  130  a second Ctrl-C or SIGTERM: stopped at once";

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
    /// Install and keep the monitoring stack a MonitoringStack declares, and onboard every node into monitoring: `run` is the controller, `status` prints each node's onboarding.
    Monitor(auto_monitor::MonitorArgs),
    /// CI workers: the gRPC scaler (`serve`) and its clients: scale workers, run pipelines as DAGs, stream progress and logs.
    Ottoscaler(ottoscaler::OttoscalerArgs),
    /// Run a local simulated cluster: real etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with kwok nodes.
    Sim(crate::sim::Args),
    /// Print a shell completion script: `source <(steward completion bash)`.
    Completion(CompletionArgs),
}

/// `steward completion`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  source <(steward completion bash)\n  steward completion zsh > \"${fpath[1]}/_steward\"\n  steward completion fish > ~/.config/fish/completions/steward.fish"
)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum KarpenterCommand {
    /// Print the NodePool's memory and cpu capacity, pod requests and allocate rates from Prometheus/Mimir.
    AllocateRate(node_drain::AllocateArgs),
}

/// Runs the command; its exit status on success (a command may finish without an
/// error and still report a failed outcome, as a drain that left nodes does).
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let shutdown = Shutdown::new();
    let ctx = Context {
        lang: cli.lang,
        shutdown: shutdown.clone(),
    };
    match cli.command {
        Command::Version(args) => crate::version::run(args, cli.lang).await,
        Command::Sim(args) => crate::sim::run(args, cli.lang).await,
        Command::Completion(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "steward", &mut script);
            // A reader that stops early (`| head`) is not an error of ours.
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(Exit::Ok),
            }
        }
        Command::Drain(args) => {
            shutdown.on_signals();
            Ok(node_drain::run_drain(args, ctx).await?)
        }
        Command::Monitor(args) => {
            shutdown.on_signals();
            Ok(auto_monitor::run(args, ctx).await?)
        }
        Command::Ottoscaler(args) => {
            shutdown.on_signals();
            Ok(ottoscaler::run(args, ctx).await?)
        }
        Command::GracefulDrain(cmd) => {
            shutdown.on_signals();
            Ok(graceful_drain::dispatch(cmd, ctx).await?)
        }
        Command::Karpenter(KarpenterCommand::AllocateRate(args)) => {
            Ok(node_drain::run_allocate_rate(args, ctx).await?)
        }
    }
}
