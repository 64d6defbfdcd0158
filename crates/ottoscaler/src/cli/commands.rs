//! The client subcommands: each connects to a running server (`--server`,
//! `--token`), makes one call (or follows a stream) and prints the answer for
//! people, or as JSON/YAML where the answer is a document (`status -o`).

use std::path::PathBuf;
use std::time::Duration;

use steward_runtime::{Exit, Lang, Localized, Output};

use super::client::{self, ClientArgs, rpc};
use crate::error::{Error, Result};
use crate::messages::Msg;
use crate::proto;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  steward ottoscaler scale-up --task build-42 --workers 3 --image registry.example/ci:1
  steward ottoscaler scale-up --task build-42 --workers 1 --class large --cpu 2 --image ci:1
  # local backend: the command after -- is what each worker runs
  steward ottoscaler scale-up --task dev --workers 2 -- sleep 600")]
pub(super) struct ScaleUpArgs {
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
#[command(after_help = "Examples:
  steward ottoscaler scale-down --task build-42                 # every idle worker, and the task
  steward ottoscaler scale-down --task build-42 --workers 1
  steward ottoscaler scale-down --task build-42 --force --grace-period 30")]
pub(super) struct ScaleDownArgs {
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
#[command(after_help = "Examples:
  steward ottoscaler status
  steward ottoscaler status --task build-42 -o json
  steward ottoscaler status --run r-7x2kq9bd --watch --interval 2s")]
pub(super) struct StatusArgs {
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
    /// Output format: a table, or the WorkerStatusResponse as JSON or YAML (with --watch, one document per change).
    #[arg(long, short, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  steward ottoscaler run pipeline.yaml
  steward ottoscaler run pipeline.yaml --run-id build-42 --no-logs
  OTTOSCALER_SERVER=https://otto.ci:9090 steward ottoscaler run p.yaml --ca-cert ca.crt

Exit status: 0 the run succeeded, 1 it failed, 3 it was cancelled, 4 the server cannot be reached or stopped answering, 2 the file or a flag is wrong.")]
pub(super) struct RunPipelineArgs {
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
    /// How long to keep re-attaching to a run whose progress stream broke (a
    /// restart, or a failover to the other replica within its Lease duration)
    /// before exiting 4.
    #[arg(
        long,
        env = "OTTOSCALER_REATTACH_TIMEOUT",
        default_value = "60s",
        value_parser = steward_runtime::duration::parse,
        value_name = "DURATION"
    )]
    reattach_timeout: Duration,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  steward ottoscaler logs build-42                 # a run: every stage's lines
  steward ottoscaler logs build-42-test-1 -f       # one worker, followed until it ends
  steward ottoscaler logs build-42 --from-seq 200")]
pub(super) struct LogsArgs {
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
#[command(after_help = "Examples:
  steward ottoscaler cancel build-42
  steward ottoscaler cancel build-42 --reason \"superseded by build-43\"")]
pub(super) struct CancelArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Run id.
    run: String,
    /// Why, for the record.
    #[arg(long, default_value = "cancelled from the CLI")]
    reason: String,
}

/// `scale-up`.
pub(super) async fn scale_up(a: ScaleUpArgs, lang: Lang) -> Result<Exit> {
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
    let msg = Msg::ScaledUp {
        task: &r.task_id,
        workers: &r.workers,
        waiting: &r.capacity_wait,
    };
    println!("{}", msg.render(lang));
    Ok(Exit::Ok)
}

/// `scale-down`.
pub(super) async fn scale_down(a: ScaleDownArgs, lang: Lang) -> Result<Exit> {
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
    let msg = Msg::ScaledDown {
        task: &r.task_id,
        workers: &r.workers,
        left: r.active_workers,
    };
    println!("{}", msg.render(lang));
    Ok(Exit::Ok)
}

/// `status`, once or (`--watch`) whenever the answer changes.
pub(super) async fn status(a: StatusArgs, lang: Lang) -> Result<Exit> {
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
            print_status(&r, a.output, last.is_some(), lang)?;
            last = Some(r);
        }
        if !a.watch {
            return Ok(Exit::Ok);
        }
        tokio::time::sleep(a.interval).await;
        if a.output == Output::Text {
            println!();
        }
    }
}

/// Prints one answer: the table, or one JSON/YAML document (`again`: an earlier
/// one was printed, so a YAML stream gets its `---` separator).
fn print_status(
    r: &proto::WorkerStatusResponse,
    output: Output,
    again: bool,
    lang: Lang,
) -> Result<()> {
    let Some(doc) = output.render(r) else {
        client::print_status(r, lang);
        return Ok(());
    };
    let doc = doc.map_err(|reason| Error::Io {
        what: "writing the status".into(),
        source: std::io::Error::other(reason),
    })?;
    if output == Output::Yaml && again {
        println!("---");
    }
    println!("{}", doc.trim_end());
    Ok(())
}

/// `run`: submits the file and follows the run; the exit status is its end.
pub(super) async fn run_pipeline(a: RunPipelineArgs, lang: Lang) -> Result<Exit> {
    let text = std::fs::read_to_string(&a.file).map_err(|source| Error::Io {
        what: format!("reading {}", a.file.display()),
        source,
    })?;
    let mut req = crate::core::pipeline_file::parse(&text).map_err(|reason| Error::Config {
        path: a.file.display().to_string(),
        reason,
    })?;
    req.run_id = a.run_id;
    let (mut otto, mut logs) = a.client.connect().await?;
    let stream = otto.execute_pipeline(req).await.map_err(rpc)?.into_inner();
    let follow = client::Follow {
        lang,
        with_logs: !a.no_logs,
        reattach_timeout: a.reattach_timeout,
    };
    let state = client::follow_run(&mut otto, &mut logs, stream, follow).await?;
    Ok(client::exit_for(state))
}

/// `logs`: a run's lines, or (when no run has that id) a worker's.
pub(super) async fn logs(a: LogsArgs) -> Result<Exit> {
    let (_, mut logs) = a.client.connect().await?;
    match client::print_build_logs(&mut logs, &a.target, a.from_seq, a.follow).await {
        Err(Error::Rpc {
            code: tonic::Code::NotFound,
            ..
        }) => {
            client::print_worker_logs(&mut logs, &a.target, a.from_seq, a.follow).await?;
        }
        other => other?,
    }
    Ok(Exit::Ok)
}

/// `cancel`.
pub(super) async fn cancel(a: CancelArgs, lang: Lang) -> Result<Exit> {
    let (mut otto, _) = a.client.connect().await?;
    let r = otto
        .cancel_pipeline(proto::CancelPipelineRequest {
            run_id: a.run.clone(),
            reason: a.reason,
        })
        .await
        .map_err(rpc)?
        .into_inner();
    let msg = Msg::Cancel {
        run: &r.run_id,
        cancelled: r.cancelled,
    };
    println!("{}", msg.render(lang));
    Ok(Exit::Ok)
}
