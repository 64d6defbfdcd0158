//! Flags and wiring of `steward graceful-drain run`: every replica serves the
//! webhook, watches the ConfigMap and keeps the certificate; the leader also runs
//! the drain controller. Losing the lease ends the process with status 1 (its
//! Deployment restarts it as a follower). The flags are in `args`, the watches
//! in `watches`, the certificate's upkeep in `tls`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use steward_runtime::admin::{AdminServer, Readiness};
use steward_runtime::leader::{self, LeaderArgs};
use steward_runtime::{Context, Shutdown};
use tokio::sync::watch;

use crate::certs::{self, Resolver};
use crate::controller;
use crate::core::config::Config;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::metrics::Metrics;
use crate::webhook;

mod args;
mod tls;
mod watches;

pub use args::{RunArgs, TlsSource};

/// Key of the configuration in the ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";

/// Runs until shutdown (then `Ok`) or loss of leadership (then
/// [`Error::LostLeadership`], exit status 1).
pub async fn run(args: RunArgs, ctx: Context) -> Result<()> {
    let Context { lang, shutdown } = ctx;
    let client = args.kube.connect().await?.client;
    let identity = args.identity();
    let mut registry = steward_runtime::admin::registry(env!("CARGO_PKG_VERSION"));
    steward_runtime::leader::register_metrics(&mut registry);
    let metrics = Metrics::new(&mut registry);
    let ready = Readiness::default();
    let admin = AdminServer::bind(args.admin.admin_addr).await?;
    tokio::spawn(admin.serve(Arc::new(registry), ready.clone(), shutdown.clone()));
    let events = Events::new(client.clone(), identity.clone(), lang);

    // Configuration: the last good one stays in force.
    let (config_tx, config_rx) = watch::channel(Arc::new(Config::default()));
    tokio::spawn(watches::watch_config(
        client.clone(),
        args.clone(),
        config_tx,
        metrics.clone(),
        events.clone(),
        shutdown.clone(),
    ));
    let Some(resolver) = certificate(&client, &args, &shutdown).await? else {
        return Ok(());
    };
    let Some((pods, vpas)) = caches(&client, &args, &shutdown).await? else {
        return Ok(());
    };
    let listener = webhook::bind(args.webhook_addr).await?;
    tracing::info!(addr = %listener.local_addr().map_or(args.webhook_addr, |a| a), webhook = %args.webhook_name, "serving the eviction webhook");
    let hooks = webhook::Ctx {
        client: client.clone(),
        pods,
        config: config_rx.clone(),
        metrics: metrics.clone(),
        lang,
        retry_after: 5,
        vpas,
    };
    tokio::spawn(webhook::serve(listener, resolver, hooks, shutdown.clone()));
    ready.set(true);
    let controller = controller::Ctx {
        client: client.clone(),
        config: config_rx,
        metrics,
        events,
        http: steward_runtime::http::client(crate::probe::read::TIMEOUT).map_err(Error::Http)?,
        restore_backoff: args.restore_backoff,
        active: Mutex::new(Default::default()),
        probe_warned: Mutex::new(Default::default()),
        isolating: Mutex::new(Default::default()),
    };
    lead(client, &args, identity, controller, shutdown).await
}

/// The serving certificate (steward's own, or the external Secret's once it is
/// usable), the webhook registered with its CA, and the task that keeps both
/// current. `None` on shutdown before an external certificate appeared.
async fn certificate(
    client: &Client,
    args: &RunArgs,
    shutdown: &Shutdown,
) -> Result<Option<Arc<Resolver>>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), args.namespace());
    let bundle = match args.tls_source {
        TlsSource::SelfSigned => {
            certs::ensure(&secrets, &args.tls_secret, &args.sans(), args.cert_validity).await?
        }
        TlsSource::Secret => {
            let Some(b) = tls::first_external(&secrets, &args.tls_secret, shutdown).await else {
                return Ok(None);
            };
            b
        }
    };
    let resolver = Resolver::new(&bundle)?;
    webhook::register(client, &args.registration(), &bundle.ca_bundle()).await?;
    let (client, args, r, stop) = (
        client.clone(),
        args.clone(),
        resolver.clone(),
        shutdown.clone(),
    );
    match args.tls_source {
        TlsSource::SelfSigned => tokio::spawn(tls::keep_certificate(client, args, bundle, r, stop)),
        TlsSource::Secret => tokio::spawn(tls::follow_external(client, args, bundle, r, stop)),
    };
    Ok(Some(resolver))
}

type Caches = (Store<PartialObjectMeta<Pod>>, Option<Store<DynamicObject>>);

/// Pod metadata for the webhook, all namespaces, slimmed to what it reads, and the
/// VPAs, each after its first list. `None` on shutdown before that.
async fn caches(client: &Client, args: &RunArgs, shutdown: &Shutdown) -> Result<Option<Caches>> {
    let (pods, writer) = reflector::store();
    let stream = watcher(
        Api::<PartialObjectMeta<Pod>>::all(client.clone()),
        watcher::Config::default().page_size(args.list_page_size),
    )
    .modify(webhook::slim)
    .default_backoff();
    tokio::spawn(
        reflector(writer, stream)
            .applied_objects()
            .for_each(|_| async {}),
    );
    let vpas = watches::vpa_store(client).await;
    tokio::select! {
        r = pods.wait_until_ready() => r.map_err(|_| Error::CacheStopped)?,
        () = shutdown.signaled() => return Ok(None),
    }
    if let Some(v) = &vpas {
        tokio::select! {
            r = v.wait_until_ready() => r.map_err(|_| Error::CacheStopped)?,
            () = shutdown.signaled() => return Ok(None),
        }
    }
    Ok(Some((pods, vpas)))
}

/// Waits for the Lease, then runs the leader's work (in-place advice and the
/// drain controller) until shutdown (the Lease is released) or until leadership
/// is lost.
async fn lead(
    client: Client,
    args: &RunArgs,
    identity: String,
    ctx: controller::Ctx,
    shutdown: Shutdown,
) -> Result<()> {
    let leader_args = LeaderArgs {
        lease_identity: Some(identity),
        ..args.leader.clone()
    };
    let Some(mut leader) =
        leader::acquire(client.clone(), &leader_args, &args.lease_name, &shutdown).await?
    else {
        return Ok(());
    };
    // In place first: advice on VPAs that need no eviction at all (leader only, so
    // each Event is published once).
    let advice = tokio::spawn(crate::inplace::run(
        client,
        ctx.metrics.clone(),
        ctx.events.clone(),
    ));
    let stop = shutdown.clone();
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(
        Arc::new(ctx),
        args.watch_namespace.clone(),
        async move {
            tokio::select! {
                () = stop.signaled() => {}
                _ = lost_rx => {}
            }
        },
    ));
    tokio::select! {
        () = leader.lost() => {
            tracing::error!(lease = %leader.lease(), "leadership lost; exiting so the Deployment restarts this replica as a follower");
            advice.abort();
            // The controller's task ends with its stop future; a send to a task
            // that already ended has no one to tell.
            let _ = lost_tx.send(());
            let _ = controller.await;
            return Err(Error::LostLeadership(leader.lease().to_string()));
        }
        () = shutdown.signaled() => {}
    }
    advice.abort();
    let _ = controller.await;
    leader.release(Duration::from_secs(5)).await;
    Ok(())
}
