//! `steward`: one binary for the four systems. Each subcommand is a thin `run(args)`
//! into its crate; this file only parses flags, sets up logging and prints errors.
//! Installed as `kubectl-steward`, it is the kubectl plugin `kubectl steward`.

mod cli;
mod sim;
mod version;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use steward_runtime::i18n::{Lang, Localized, Msg};
use steward_runtime::{Exit, ExitStatus};

fn main() -> ExitCode {
    let as_plugin = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().starts_with("kubectl-"))
        })
        .unwrap_or(false);
    let mut command = cli::Cli::command();
    if as_plugin {
        command = command.bin_name("kubectl steward");
    }
    let cli = match cli::Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // A live progress display owns the terminal; routine log lines would tear it.
    let default_level = match &cli.command {
        cli::Command::Drain(d) if d.live_display() => "warn",
        _ => "info",
    };
    steward_runtime::logging::init(cli.log_format, default_level);
    if matches!(
        &cli.command,
        cli::Command::GracefulDrain(graceful_drain::Command::Run(_))
    ) {
        graceful_drain::memory::one_malloc_arena();
    }
    let lang = cli.lang;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(lang, &anyhow::Error::from(e)),
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(exit) => exit.into(),
        Err(e) => fail(lang, &e),
    }
}

/// The exit status an error stands for: the first error in its chain that knows
/// (see `steward_runtime::exit`), else 1.
fn exit_status(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        let known = cause
            .downcast_ref::<steward_runtime::Error>()
            .map(ExitStatus::exit)
            .or_else(|| {
                cause
                    .downcast_ref::<node_drain::Error>()
                    .map(ExitStatus::exit)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<graceful_drain::Error>()
                    .map(ExitStatus::exit)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<auto_monitor::Error>()
                    .map(ExitStatus::exit)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<ottoscaler::Error>()
                    .map(ExitStatus::exit)
            });
        if let Some(exit) = known {
            return exit;
        }
    }
    Exit::Failed
}

/// One line: `error: what failed: why`, each cause once (our errors already name
/// their source, so a cause whose text the line holds is skipped), and only the first
/// line of each (parsers add source excerpts below it). No backtrace.
fn fail(lang: Lang, e: &anyhow::Error) -> ExitCode {
    let first_line = |e: &dyn std::error::Error| {
        e.to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_string()
    };
    let mut line = first_line(e.as_ref());
    for cause in e.chain().skip(1) {
        let text = first_line(cause);
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
    }
    eprintln!("{}: {line}", Msg::ErrorPrefix.render(lang));
    exit_status(e).into()
}
