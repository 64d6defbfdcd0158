//! Flags and the commands: `steward monitor` (the controller), `steward monitor
//! status` (the per-node table) and `steward monitor crd` (the CRD).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use steward_runtime::admin::{AdminArgs, AdminServer, Readiness};
use steward_runtime::kube_client::KubeArgs;
use steward_runtime::leader::LeaderArgs;
use steward_runtime::{Context, Exit, Lang, Shutdown};

use crate::controller::{self, Config};
use crate::crd::MonitoringStack;
use crate::error::{Error, Result, kube as kerr};
use crate::metrics::Metrics;
use crate::stack::FIELD_MANAGER;

/// `steward monitor`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MonitorArgs {
    #[command(subcommand)]
    pub command: Option<MonitorCommand>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Subcommands of `steward monitor`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MonitorCommand {
    /// Print each node's onboarding: exporter pod, scrape target up, first sample, availability over the last hour.
    Status(StatusArgs),
    /// Print the MonitoringStack CRD (generated from steward's types), or apply it with --apply.
    Crd(CrdArgs),
}

/// The controller's flags.
#[derive(Debug, Clone, clap::Args)]
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
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// `steward monitor status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Namespace of the MonitoringStack.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Name of the MonitoringStack (default: every stack in the namespace).
    pub name: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

/// `steward monitor crd`.
#[derive(Debug, Clone, clap::Args)]
pub struct CrdArgs {
    /// Apply the CRD to the cluster (server-side apply) instead of printing it.
    #[arg(long)]
    pub apply: bool,
}

/// Output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table for people.
    #[default]
    Text,
    /// The statuses as JSON.
    Json,
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
        None => controller_main(args.run, &args.kube, lang, shutdown).await,
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
    let _ = tokio::time::timeout(Duration::from_secs(30), established).await;
    Ok(())
}

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
            "steward-monitor",
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
    };
    let work = controller::run(client, cfg, metrics, ready, shutdown.clone());
    let result = match &mut leader {
        Some(l) => tokio::select! {
            r = work => r,
            () = l.lost() => {
                tracing::error!(lease = %l.lease(), "lost leadership; stopping");
                Ok(())
            }
        },
        None => work.await,
    };
    shutdown.trigger();
    if let Some(l) = leader {
        l.release(Duration::from_secs(5)).await;
    }
    let _ = serve.await;
    result
}

async fn status(kube: &KubeArgs, args: &StatusArgs, lang: Lang) -> Result<()> {
    let client = kube.connect().await?.client;
    let api: Api<MonitoringStack> = Api::namespaced(client, &args.namespace);
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
    match args.output {
        Output::Json => {
            let all: Vec<_> = stacks.iter().map(|s| serde_json::json!({ "name": s.metadata.name, "namespace": s.metadata.namespace, "status": s.status })).collect();
            println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        }
        Output::Text => {
            for s in &stacks {
                print!("{}", crate::report::table(s, lang));
            }
        }
    }
    Ok(())
}
