//! `steward ottoscaler ...`: the command line. [`serve`](self::serve) builds the
//! scaler on the chosen backend and serves gRPC; the other subcommands
//! ([`commands`](self::commands)) are clients of a running server, through
//! [`client`].
//!
//! Exit statuses (`steward_runtime::Exit`): 0 done (for `run`: the pipeline run
//! succeeded), 1 failed (the run failed, or the server refused the request), 2 a
//! flag or the request is wrong, 3 the run was cancelled or the command
//! interrupted, 4 the server cannot be reached or stopped answering.

pub mod client;
mod commands;
mod election;
mod serve;

use clap::Subcommand;
use futures::FutureExt;
use steward_runtime::{Context, Exit, Localized};

use self::commands::{
    CancelArgs, LogsArgs, RunPipelineArgs, ScaleDownArgs, ScaleUpArgs, StatusArgs,
};
use self::serve::ServeArgs;
use crate::error::Result;
use crate::messages::Msg;

/// `steward ottoscaler`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_STATUS)]
pub struct OttoscalerArgs {
    #[command(subcommand)]
    command: OttoCommand,
}

const EXIT_STATUS: &str = "Exit status: 0 done (run: the pipeline run succeeded), 1 failed (the run failed or the server refused), 2 a flag or the request is wrong, 3 the run was cancelled or the command interrupted, 4 the server cannot be reached.";

#[derive(Debug, Subcommand)]
enum OttoCommand {
    /// Run the gRPC scaler (OttoscalerService, LogStreamingService, grpc.health.v1).
    Serve(Box<ServeArgs>),
    /// Start N worker pods for a task.
    ScaleUp(ScaleUpArgs),
    /// Remove a task's workers: idle ones first, busy ones only with --force.
    ScaleDown(ScaleDownArgs),
    /// Show workers and the concurrency cap.
    Status(StatusArgs),
    /// Run a pipeline file, printing live progress and logs; exits 0 if the run succeeded, 1 if it failed, 3 if it was cancelled, 4 if the server cannot be reached.
    Run(RunPipelineArgs),
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

/// Runs a subcommand. `serve` stops gracefully on the shared shutdown signal; a
/// client command stops at once on it and exits 3 (a pipeline run it followed
/// goes on on the server).
pub async fn run(args: OttoscalerArgs, ctx: Context) -> Result<Exit> {
    let lang = ctx.lang;
    let client = match args.command {
        OttoCommand::Serve(a) => return serve::serve(*a, ctx.shutdown).await.map(|()| Exit::Ok),
        OttoCommand::ScaleUp(a) => commands::scale_up(a, lang).boxed(),
        OttoCommand::ScaleDown(a) => commands::scale_down(a, lang).boxed(),
        OttoCommand::Status(a) => commands::status(a, lang).boxed(),
        OttoCommand::Run(a) => commands::run_pipeline(a, lang).boxed(),
        OttoCommand::Logs(a) => commands::logs(a).boxed(),
        OttoCommand::Cancel(a) => commands::cancel(a, lang).boxed(),
    };
    tokio::select! {
        r = client => r,
        () = ctx.shutdown.signaled() => {
            eprintln!("{}", Msg::Interrupted.render(lang));
            Ok(Exit::Cancelled)
        }
    }
}
