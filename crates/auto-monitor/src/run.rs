//! Flags and the commands: `steward monitor run` (the controller), `steward
//! monitor status` (the per-node table), `steward monitor crd` (the CRD) and
//! `steward monitor uninstall` (`run::uninstall`).
//! `steward monitor` with no subcommand still runs the controller for one
//! release, with a deprecation line on stderr.
//!
//! `-n/--namespace` means one thing in every `steward monitor` command: the
//! namespace of the MonitoringStacks (`run` reconciles only those, `status`
//! reads those).

mod uninstall;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use steward_runtime::admin::{AdminArgs, AdminServer, Readiness};
use steward_runtime::kube_client::KubeArgs;
use steward_runtime::leader::LeaderArgs;
use steward_runtime::{Context, Exit, Lang, Localized, Output, Shutdown};

use crate::controller::{self, Config};
use crate::core::stack::FIELD_MANAGER;
use crate::crd::MonitoringStack;
use crate::error::{Error, Result, kube as kerr};
use crate::messages::Msg;
use crate::metrics::Metrics;
pub use uninstall::UninstallArgs;

/// `steward monitor`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  steward monitor run                       # the controller, every namespace
  steward monitor status -n monitoring      # each node's onboarding
  steward monitor crd --apply               # install the MonitoringStack CRD
  steward monitor uninstall -n monitoring mon --dry-run

-n/--namespace is the MonitoringStacks' namespace in every `steward monitor` command.
`steward monitor` with no subcommand runs the controller as `run` does (deprecated)."
)]
pub struct MonitorArgs {
    #[command(subcommand)]
    pub command: Option<MonitorCommand>,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The controller's flags for the deprecated bare form (last: the heading
    /// holds for every flag after it).
    #[command(
        flatten,
        next_help_heading = "Deprecated: `steward monitor` with no subcommand takes `run`'s flags"
    )]
    pub run: RunArgs,
}

/// Subcommands of `steward monitor`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MonitorCommand {
    /// Run the controller: install and keep each MonitoringStack's stack and onboard every node into monitoring.
    Run(RunArgs),
    /// Print each node's onboarding: exporter pod, scrape target up, first sample, availability over the last hour.
    Status(StatusArgs),
    /// Print the MonitoringStack CRD (generated from steward's types), or apply it with --apply.
    Crd(CrdArgs),
    /// Remove a MonitoringStack and everything it installed (helm mode: `helm uninstall`); --dry-run lists it first.
    Uninstall(UninstallArgs),
}

/// The controller's flags.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  steward monitor run                                    # every namespace
  steward monitor run -n monitoring --leader-elect       # one namespace, two replicas
  # Outside the cluster, reading onboarding from a port-forwarded Prometheus
  steward monitor run -n monitoring --prometheus-url http://127.0.0.1:9090")]
pub struct RunArgs {
    /// Reconcile the MonitoringStacks of this namespace only (default: all namespaces).
    #[arg(long, short = 'n', env = "STEWARD_MONITOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Read onboarding from this Prometheus API instead of each stack's own Service (for a controller running outside the cluster).
    #[arg(long, env = "STEWARD_MONITOR_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// How often Prometheus is asked about the nodes' targets.
    #[arg(long, default_value = "2s", value_parser = steward_runtime::duration::parse)]
    pub poll_interval: Duration,
    /// Reapply the whole stack this often even when nothing changed (heals drift).
    #[arg(long, default_value = "5m", value_parser = steward_runtime::duration::parse)]
    pub resync: Duration,
    /// Apply the MonitoringStack CRD at start (server-side apply).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub install_crd: bool,
    /// Hold a Lease so only one replica writes.
    #[arg(long)]
    pub leader_elect: bool,
    /// helm binary for installMode: helm.
    #[arg(long, env = "STEWARD_HELM", default_value = "helm")]
    pub helm: String,
    /// A chart installMode: helm may install, exactly as a MonitoringStack's
    /// spec.helm.chart names it (repeatable; a stack naming another is refused,
    /// SpecValid=False). Default: kube-prometheus-stack from
    /// prometheus-community/kube-prometheus-stack and
    /// oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack.
    #[arg(
        long = "helm-chart",
        env = "STEWARD_HELM_CHARTS",
        value_delimiter = ',',
        value_name = "CHART"
    )]
    pub helm_charts: Vec<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Name of the Lease for leader election (with --leader-elect).
    #[arg(long, default_value = "steward-monitor", value_name = "NAME")]
    pub lease_name: String,
}

/// `steward monitor status`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  steward monitor status -n monitoring            # every stack of the namespace
  steward monitor status -n monitoring mon -o yaml")]
pub struct StatusArgs {
    /// Namespace of the MonitoringStack.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Name of the MonitoringStack (default: every stack in the namespace).
    pub name: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
    /// Also print each stack's Grafana admin user and password (from the Secret
    /// <stack>-grafana-admin); never printed otherwise.
    #[arg(long)]
    pub show_grafana_password: bool,
}

/// `steward monitor crd`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  steward monitor crd > crds/steward.io_monitoringstacks.yaml
  steward monitor crd --apply")]
pub struct CrdArgs {
    /// Apply the CRD to the cluster (server-side apply) instead of printing it.
    #[arg(long)]
    pub apply: bool,
}

/// Runs `steward monitor` and its subcommands.
pub async fn run(args: MonitorArgs, ctx: Context) -> Result<Exit> {
    let Context { lang, shutdown } = ctx;
    match args.command {
        Some(MonitorCommand::Crd(c)) if !c.apply => {
            print!("{}", crate::crd::crd_yaml());
            Ok(())
        }
        Some(MonitorCommand::Crd(_)) => {
            let client = args.kube.connect().await?.client;
            apply_crd(&client).await?;
            println!(
                "customresourcedefinition.apiextensions.k8s.io/monitoringstacks.steward.io serverside-applied"
            );
            Ok(())
        }
        Some(MonitorCommand::Status(s)) => status(&args.kube, &s, lang).await,
        Some(MonitorCommand::Uninstall(u)) => uninstall::uninstall(&args.kube, &u, lang).await,
        Some(MonitorCommand::Run(r)) => controller_main(r, &args.kube, lang, shutdown).await,
        None => {
            eprintln!("{}", Msg::BareDeprecated.render(lang));
            controller_main(args.run, &args.kube, lang, shutdown).await
        }
    }
    .map(|()| Exit::Ok)
}

/// Applies the CRD by server-side apply and waits until it is Established.
pub async fn apply_crd(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = MonitoringStack::crd();
    let name = MonitoringStack::crd_name();
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .map_err(kerr("applying the MonitoringStack CRD"))?;
    let established = kube::runtime::wait::await_condition(
        api,
        name,
        kube::runtime::wait::conditions::is_crd_established(),
    );
    // Not Established in time: the controller's watch retries until it is.
    let _ = tokio::time::timeout(Duration::from_secs(30), established).await;
    Ok(())
}

/// The controller until shutdown (`Ok`) or until leadership is lost
/// ([`Error::LostLeadership`], exit status 1).
async fn controller_main(
    args: RunArgs,
    kube: &KubeArgs,
    lang: Lang,
    shutdown: Shutdown,
) -> Result<()> {
    let client = kube.connect().await?.client;
    if args.install_crd {
        apply_crd(&client).await?;
    }
    let metrics = Metrics::default();
    let mut registry = steward_runtime::admin::registry(env!("CARGO_PKG_VERSION"));
    if args.leader_elect {
        steward_runtime::leader::register_metrics(&mut registry);
    }
    metrics.register(&mut registry);
    let ready = Readiness::default();
    let admin = AdminServer::bind(args.admin.admin_addr).await?;
    tracing::info!(addr = %admin.local_addr().map(|a| a.to_string()).unwrap_or_default(), "admin server listening");
    let serve = tokio::spawn(admin.serve(Arc::new(registry), ready.clone(), shutdown.clone()));
    let mut leader = None;
    if args.leader_elect {
        match steward_runtime::leader::acquire(
            client.clone(),
            &args.leader,
            &args.lease_name,
            &shutdown,
        )
        .await?
        {
            Some(l) => leader = Some(l),
            None => return Ok(()),
        }
    }
    let cfg = Config {
        namespace: args.namespace,
        prometheus_url: args.prometheus_url,
        poll: args.poll_interval,
        resync: args.resync,
        lang,
        helm: args.helm,
        helm_charts: if args.helm_charts.is_empty() {
            crate::core::validate::DEFAULT_CHARTS
                .map(String::from)
                .into()
        } else {
            args.helm_charts
        },
        instance: args.leader.lease_identity,
    };
    let work = controller::run(client, cfg, metrics, ready, shutdown.clone());
    let result = match &mut leader {
        Some(l) => tokio::select! {
            r = work => r,
            () = l.lost() => {
                tracing::error!(lease = %l.lease(), "leadership lost; exiting so the Deployment restarts this replica as a follower");
                Err(Error::LostLeadership(l.lease().to_string()))
            }
        },
        None => work.await,
    };
    shutdown.trigger();
    // A lost Lease is another replica's now: nothing to give up.
    if let Some(l) = leader
        && result.is_ok()
    {
        l.release(Duration::from_secs(5)).await;
    }
    // The admin server ends with the shutdown just triggered.
    let _ = serve.await;
    result
}

async fn status(kube: &KubeArgs, args: &StatusArgs, lang: Lang) -> Result<()> {
    let client = kube.connect().await?.client;
    let api: Api<MonitoringStack> = Api::namespaced(client.clone(), &args.namespace);
    let stacks = match &args.name {
        Some(name) => vec![
            api.get_opt(name)
                .await
                .map_err(kerr("reading the MonitoringStack"))?
                .ok_or_else(|| Error::NotFound {
                    namespace: args.namespace.clone(),
                    name: name.clone(),
                })?,
        ],
        None => {
            api.list(&ListParams::default())
                .await
                .map_err(kerr("listing MonitoringStacks"))?
                .items
        }
    };
    if stacks.is_empty() {
        return Err(Error::NotFound {
            namespace: args.namespace.clone(),
            name: "(any)".into(),
        });
    }
    let mut admins = Vec::new();
    for s in &stacks {
        let admin = if args.show_grafana_password {
            let name = crate::core::manifests::workloads::grafana_admin_secret_of(
                s.metadata.name.as_deref().unwrap_or_default(),
            );
            crate::grafana_admin::read(&client, &args.namespace, &name).await?
        } else {
            None
        };
        admins.push(admin);
    }
    let all: Vec<_> = stacks
        .iter()
        .zip(&admins)
        .map(|(s, admin)| {
            let mut v = serde_json::json!({ "name": s.metadata.name, "namespace": s.metadata.namespace, "status": s.status });
            if let Some((user, password)) = admin {
                v["grafanaAdmin"] = serde_json::json!({ "user": user, "password": password });
            }
            v
        })
        .collect();
    match args.output.render(&all) {
        Some(text) => println!("{}", text.map_err(Error::Output)?.trim_end()),
        None => {
            for (s, admin) in stacks.iter().zip(&admins) {
                print!("{}", crate::core::report::table(s, lang));
                if let Some((user, password)) = admin {
                    match lang {
                        Lang::Ko => println!("Grafana 관리자: {user} / {password}"),
                        Lang::En => println!("Grafana admin: {user} / {password}"),
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        monitor: MonitorArgs,
    }

    fn parse(argv: &[&str]) -> MonitorArgs {
        Cli::try_parse_from(std::iter::once("monitor").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .monitor
    }

    /// `monitor run` and the deprecated bare form take the same flags to the same
    /// controller; `-n` is the stacks' namespace in each command.
    #[test]
    fn run_and_the_bare_form() {
        let run = |m: MonitorArgs| match m.command {
            Some(MonitorCommand::Run(r)) => (r, true),
            None => (m.run, false),
            Some(other) => panic!("{other:?}"),
        };
        let table: [(&[&str], bool); 3] = [
            (&["run", "-n", "mon", "--poll-interval", "500ms"], true),
            (&["-n", "mon", "--poll-interval", "500ms"], false),
            (&["--namespace=mon", "--poll-interval=500ms"], false),
        ];
        for (argv, subcommand) in table {
            let (r, sub) = run(parse(argv));
            assert_eq!(sub, subcommand, "{argv:?}");
            assert_eq!(r.namespace.as_deref(), Some("mon"), "{argv:?}");
            assert_eq!(r.poll_interval, Duration::from_millis(500), "{argv:?}");
        }
        match parse(&["status", "-n", "mon", "-o", "yaml"]).command {
            Some(MonitorCommand::Status(s)) => {
                assert_eq!((s.namespace.as_str(), s.output), ("mon", Output::Yaml));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["monitor", "-n", "mon", "status"]).is_err());
    }
}
