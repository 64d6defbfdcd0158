//! `steward monitor uninstall`: removes what a MonitoringStack installed, also when
//! no controller runs (`crate::uninstall` has the how and what is kept).

use std::time::{Duration, Instant};

use steward_runtime::kube_client::KubeArgs;
use steward_runtime::{Lang, Output};

use crate::error::{Error, Result};
use crate::uninstall::{execute, plan, render};

/// `steward monitor uninstall`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  steward monitor uninstall -n monitoring mon --dry-run   # list what would be removed
  steward monitor uninstall -n monitoring mon

Removes the MonitoringStack, every object steward applied for it (cluster-scoped RBAC
too) and, in helm mode, its release (`helm uninstall`). CustomResourceDefinitions are
kept: other stacks and tools use them.")]
pub struct UninstallArgs {
    /// Namespace of the MonitoringStack.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Name of the MonitoringStack.
    pub name: String,
    /// List what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait until everything is gone.
    #[arg(long, default_value = "5m", value_parser = steward_runtime::duration::parse)]
    pub timeout: Duration,
    /// helm binary (for a helm-mode stack).
    #[arg(long, env = "STEWARD_HELM", default_value = "helm")]
    pub helm: String,
    /// Output format of the list.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

/// Lists, then (without --dry-run) removes and waits.
pub async fn uninstall(kube: &KubeArgs, args: &UninstallArgs, lang: Lang) -> Result<()> {
    let client = kube.connect().await?.client;
    let start = Instant::now();
    let p = plan(&client, &args.helm, &args.namespace, &args.name).await?;
    if p.is_empty() {
        return Err(Error::NotFound {
            namespace: args.namespace.clone(),
            name: args.name.clone(),
        });
    }
    match args.output.render(&p) {
        Some(text) => println!("{}", text.map_err(Error::Output)?.trim_end()),
        None => print!("{}", render(&p, lang, args.dry_run)),
    }
    if args.dry_run {
        return Ok(());
    }
    execute(&client, &args.helm, &p, args.timeout).await?;
    let secs = start.elapsed().as_secs_f64();
    let releases = p.releases.len();
    let objects = p.objects.len();
    // The summary goes to stderr so `-o json` stays one document on stdout.
    eprintln!(
        "{}",
        match lang {
            Lang::En => format!(
                "uninstalled MonitoringStack {}: {objects} objects and {releases} helm releases removed in {secs:.1}s",
                p.stack
            ),
            Lang::Ko => format!(
                "MonitoringStack {} 제거 완료: 객체 {objects}개, helm 릴리스 {releases}개, {secs:.1}초",
                p.stack
            ),
        }
    );
    Ok(())
}
