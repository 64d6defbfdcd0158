//! `steward ottoscaler ...`: flags and wiring. `serve` builds the scaler on the
//! chosen backend and serves gRPC; the other subcommands are clients.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use steward_runtime::admin::{AdminArgs, AdminServer, Readiness};
use steward_runtime::kube_client::KubeArgs;
use steward_runtime::{Context, Exit, Lang, Localized, Shutdown};
use tracing::warn;

use crate::backend::Backend;
use crate::client::{self, ClientArgs, rpc};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::kube_backend::KubeBackend;
use crate::local_backend::LocalBackend;
use crate::messages::Msg;
use crate::metrics::Metrics;
use crate::proto;
use crate::room::CapacityCheck;
use crate::scaler::{Options, Scaler};
use crate::server::{ServeOptions, Tls, serve};

/// `steward ottoscaler`.
#[derive(Debug, clap::Args)]
pub struct OttoscalerArgs {
    #[command(subcommand)]
    command: OttoCommand,
}

#[derive(Debug, Subcommand)]
enum OttoCommand {
    /// Run the gRPC scaler (OttoscalerService, LogStreamingService, grpc.health.v1).
    Serve(ServeArgs),
    /// Start N worker pods for a task.
    ScaleUp(ScaleUpArgs),
    /// Remove a task's workers: idle ones first, busy ones only with --force.
    ScaleDown(ScaleDownArgs),
    /// Show workers and the concurrency cap.
    Status(StatusArgs),
    /// Run a pipeline file, printing live progress and logs; exits non-zero unless it succeeded.
    Run(RunArgs),
    /// Print the logs of a run or a worker.
    Logs(LogsArgs),
    /// Cancel a run (finally stages still run).
    Cancel(CancelArgs),
}

/// Which worker layer `serve` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// One pod per worker.
    Kubernetes,
    /// One local process per worker (runs `command`; for laptops).
    Local,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// gRPC listen address.
    #[arg(
        long,
        env = "OTTOSCALER_LISTEN",
        default_value = "0.0.0.0:9090",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Where workers run.
    #[arg(long, value_enum, default_value = "kubernetes")]
    backend: BackendKind,
    /// Namespace of worker pods and run records.
    #[arg(long, env = "OTTOSCALER_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Bearer token clients must send.
    #[arg(
        long,
        env = "OTTOSCALER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// File holding the bearer token (instead of --token).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Worker classes (YAML); without it one class "default" (100m/128Mi requests, 1/512Mi limits, caps 4/8Gi).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Concurrency cap on workers; stages over it wait in a fair queue.
    #[arg(long, default_value_t = 100)]
    max_workers: u32,
    /// Workers no node has room for now: `wait` creates them and they wait as Pending (a stage within its timeout) until a node with room appears, as Karpenter or the cluster autoscaler provision one for a Pending pod, with progress and status saying "waiting for capacity"; `strict` refuses the ScaleUp or pipeline with RESOURCE_EXHAUSTED naming the field, creating nothing.
    #[arg(
        long,
        value_enum,
        env = "OTTOSCALER_CAPACITY_CHECK",
        default_value = "wait",
        value_name = "MODE"
    )]
    capacity_check: CapacityCheck,
    /// Default termination grace period of removed workers.
    #[arg(long, default_value = "10s", value_parser = steward_runtime::duration::parse)]
    grace_period: Duration,
    /// How long a finished run's progress, logs and record are kept.
    #[arg(long, default_value = "1h", value_parser = steward_runtime::duration::parse)]
    retention: Duration,
    /// Log lines kept per run or task; slower clients get a "dropped N lines" marker.
    #[arg(long, default_value_t = 10_000)]
    log_lines: usize,
    /// How often workers of no live run or task are looked for and deleted.
    #[arg(long, default_value = "60s", value_parser = steward_runtime::duration::parse)]
    orphan_interval: Duration,
    /// Serve gRPC reflection.
    #[arg(long)]
    reflection: bool,
    /// TLS certificate (PEM).
    #[arg(long, requires = "tls_key", value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// TLS key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PATH")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mTLS).
    #[arg(long, requires = "tls_cert", value_name = "PATH")]
    tls_client_ca: Option<PathBuf>,
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, clap::Args)]
struct ScaleUpArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Task id.
    #[arg(long)]
    task: String,
    /// Number of workers.
    #[arg(long)]
    workers: i32,
    /// Worker image.
    #[arg(long, default_value = "")]
    image: String,
    /// Worker class.
    #[arg(long, default_value = "")]
    class: String,
    /// CPU request override.
    #[arg(long, default_value = "")]
    cpu: String,
    /// Memory request override.
    #[arg(long, default_value = "")]
    memory: String,
    /// Command after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct ScaleDownArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Task id.
    #[arg(long)]
    task: String,
    /// How many to remove; 0 = all.
    #[arg(long, default_value_t = 0)]
    workers: i32,
    /// Also remove busy workers.
    #[arg(long)]
    force: bool,
    /// Termination grace period in seconds; 0 = the server's default.
    #[arg(long, default_value_t = 0)]
    grace_period: i32,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only this task.
    #[arg(long, default_value = "")]
    task: String,
    /// Only this run.
    #[arg(long, default_value = "")]
    run: String,
    /// Print again whenever something changes (refreshing every --interval).
    #[arg(long)]
    watch: bool,
    /// Refresh interval of --watch.
    #[arg(long, default_value = "1s", value_parser = steward_runtime::duration::parse)]
    interval: Duration,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Pipeline file (YAML).
    file: PathBuf,
    /// Run id (default: generated).
    #[arg(long, default_value = "")]
    run_id: String,
    /// Progress only, no logs.
    #[arg(long)]
    no_logs: bool,
}

#[derive(Debug, clap::Args)]
struct LogsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// A run id or a worker name.
    target: String,
    /// Follow until the run or worker ends.
    #[arg(short, long)]
    follow: bool,
    /// Start at this sequence number.
    #[arg(long, default_value_t = 0)]
    from_seq: u64,
}

#[derive(Debug, clap::Args)]
struct CancelArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Run id.
    run: String,
    /// Why, for the record.
    #[arg(long, default_value = "cancelled from the CLI")]
    reason: String,
}

/// Runs a subcommand.
pub async fn run(args: OttoscalerArgs, ctx: Context) -> Result<Exit> {
    let lang = ctx.lang;
    match args.command {
        OttoCommand::Serve(a) => serve_cmd(a, ctx.shutdown).await.map(|()| Exit::Ok),
        OttoCommand::ScaleUp(a) => {
            let (mut otto, _) = a.client.connect().await?;
            let r = otto
                .scale_up(proto::ScaleRequest {
                    task_id: a.task,
                    worker_count: a.workers,
                    worker: Some(proto::WorkerTemplate {
                        image: a.image,
                        command: a.command,
                        worker_class: a.class,
                        resources: Some(proto::Resources {
                            cpu_request: a.cpu,
                            memory_request: a.memory,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(rpc)?
                .into_inner();
            println!(
                "{}",
                Msg::ScaledUp {
                    task: &r.task_id,
                    workers: &r.workers,
                    waiting: &r.capacity_wait,
                }
                .render(lang)
            );
            Ok(Exit::Ok)
        }
        OttoCommand::ScaleDown(a) => {
            let (mut otto, _) = a.client.connect().await?;
            let r = otto
                .scale_down(proto::ScaleRequest {
                    task_id: a.task,
                    worker_count: a.workers,
                    force: a.force,
                    grace_period_seconds: a.grace_period,
                    ..Default::default()
                })
                .await
                .map_err(rpc)?
                .into_inner();
            println!(
                "{}",
                Msg::ScaledDown {
                    task: &r.task_id,
                    workers: &r.workers,
                    left: r.active_workers
                }
                .render(lang)
            );
            Ok(Exit::Ok)
        }
        OttoCommand::Status(a) => status_cmd(a, lang).await.map(|()| Exit::Ok),
        OttoCommand::Run(a) => {
            let text = std::fs::read_to_string(&a.file).map_err(|source| Error::Io {
                what: format!("reading {}", a.file.display()),
                source,
            })?;
            let mut req = crate::pipeline_file::parse(&text).map_err(|reason| Error::Config {
                path: a.file.display().to_string(),
                reason,
            })?;
            req.run_id = a.run_id;
            let (mut otto, mut logs) = a.client.connect().await?;
            let stream = otto.execute_pipeline(req).await.map_err(rpc)?.into_inner();
            let state = client::follow_run(&mut otto, &mut logs, stream, lang, !a.no_logs).await?;
            Ok(client::exit_for(state))
        }
        OttoCommand::Logs(a) => {
            let (_, mut logs) = a.client.connect().await?;
            match client::print_build_logs(&mut logs, &a.target, a.from_seq, a.follow).await {
                Err(Error::Rpc(m)) if m.starts_with("not found") => {
                    client::print_worker_logs(&mut logs, &a.target, a.from_seq, a.follow).await?;
                }
                other => other?,
            }
            Ok(Exit::Ok)
        }
        OttoCommand::Cancel(a) => {
            let (mut otto, _) = a.client.connect().await?;
            let r = otto
                .cancel_pipeline(proto::CancelPipelineRequest {
                    run_id: a.run.clone(),
                    reason: a.reason,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            println!(
                "{}",
                Msg::Cancel {
                    run: &r.run_id,
                    cancelled: r.cancelled
                }
                .render(lang)
            );
            Ok(Exit::Ok)
        }
    }
}

async fn status_cmd(a: StatusArgs, lang: Lang) -> Result<()> {
    let (mut otto, _) = a.client.connect().await?;
    let mut last = None;
    loop {
        let r = otto
            .get_worker_status(proto::WorkerStatusRequest {
                task_id: a.task.clone(),
                run_id: a.run.clone(),
            })
            .await
            .map_err(rpc)?
            .into_inner();
        if last.as_ref() != Some(&r) {
            client::print_status(&r, lang);
            last = Some(r);
        }
        if !a.watch {
            return Ok(());
        }
        tokio::time::sleep(a.interval).await;
        println!();
    }
}

fn read_file(flag: &str, p: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|source| Error::Io {
        what: format!("{flag} {}", p.display()),
        source,
    })
}

async fn serve_cmd(a: ServeArgs, shutdown: Shutdown) -> Result<()> {
    let token = match (&a.token_file, &a.token) {
        (Some(p), _) => String::from_utf8_lossy(&read_file("--token-file", p)?)
            .trim()
            .to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => String::new(),
    };
    if token.is_empty() {
        return Err(crate::spec::bad(
            "--token",
            "a bearer token is required: set --token, --token-file or OTTOSCALER_TOKEN",
        )
        .into());
    }
    let config = match &a.config {
        Some(p) => {
            let text = String::from_utf8_lossy(&read_file("--config", p)?).into_owned();
            Config::parse(&text).map_err(|reason| Error::Config {
                path: p.display().to_string(),
                reason,
            })?
        }
        None => Config::default(),
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(Tls {
            cert: read_file("--tls-cert", c)?,
            key: read_file("--tls-key", k)?,
            client_ca: a
                .tls_client_ca
                .as_ref()
                .map(|p| read_file("--tls-client-ca", p))
                .transpose()?,
        }),
        _ => None,
    };
    let backend: Arc<dyn Backend> = match a.backend {
        BackendKind::Kubernetes => Arc::new(KubeBackend::new(
            a.kube.connect().await?.client,
            &a.namespace,
        )),
        BackendKind::Local => Arc::new(LocalBackend::new()),
    };
    let metrics = Metrics::default();
    let mut registry = steward_runtime::admin::registry(env!("CARGO_PKG_VERSION"));
    metrics.register(&mut registry);
    let admin = AdminServer::bind(a.admin.admin_addr).await?;
    let ready = Readiness::default();
    tokio::spawn(admin.serve(Arc::new(registry), ready.clone(), shutdown.clone()));
    let opts = Options {
        max_workers: a.max_workers,
        grace: a.grace_period,
        retention: a.retention,
        log_lines: a.log_lines,
        capacity: a.capacity_check,
    };
    let scaler = Scaler::new(backend, config, opts, metrics);
    scaler.start(shutdown.token()).await?;
    let sweeper = scaler.clone();
    let (interval, stop) = (a.orphan_interval, shutdown.token());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            if let Err(e) = sweeper.sweep().await {
                warn!(error = %e, "orphan sweep failed; next try at the next interval");
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|source| Error::Io {
            what: format!("binding {}", a.listen),
            source,
        })?;
    ready.set(true);
    serve(
        scaler,
        listener,
        ServeOptions {
            token,
            reflection: a.reflection,
            tls,
        },
        shutdown.token(),
    )
    .await
}
