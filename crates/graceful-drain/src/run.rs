//! Flags and wiring of `steward graceful-drain run`: every replica serves the
//! webhook, watches the ConfigMap and keeps the certificate; the leader also runs
//! the drain controller. Losing the lease ends the process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DynamicObject, ListParams, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use steward_runtime::admin::{AdminArgs, AdminServer, Readiness};
use steward_runtime::kube_client::KubeArgs;
use steward_runtime::leader::{self, LeaderArgs};
use steward_runtime::{Lang, Shutdown};
use tokio::sync::watch;

use crate::certs::{self, Resolver};
use crate::config::Config;
use crate::controller;
use crate::error::{Error, Result};
use crate::events::{Events, Reason};
use crate::messages::Msg;
use crate::metrics::Metrics;
use crate::webhook::{self, Endpoint, Registration};

/// Key of the configuration in the ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";

/// `steward graceful-drain run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// steward's namespace: its Lease, ConfigMap and certificate Secret live here, and the webhook never sees it.
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "steward",
        value_name = "NS"
    )]
    pub namespace: String,
    /// Identity of this replica in the Lease (defaults to hostname-pid).
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    pub identity: Option<String>,
    /// Name of the Lease for leader election.
    #[arg(long, default_value = "steward-graceful-drain", value_name = "NAME")]
    pub lease_name: String,
    /// Seconds a leader holds the Lease without renewing it.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub lease_duration: u64,
    /// ConfigMap (key config.yaml) holding the configuration; watched and reloaded live.
    #[arg(long, default_value = "steward-graceful-drain", value_name = "NAME")]
    pub config_map: String,
    /// Address the webhook serves HTTPS on.
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR")]
    pub webhook_addr: SocketAddr,
    /// Name of the ValidatingWebhookConfiguration steward writes.
    #[arg(long, default_value = "steward-graceful-drain", value_name = "NAME")]
    pub webhook_name: String,
    /// URL the API server calls instead of the Service (for a webhook outside the cluster).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Service in steward's namespace in front of the webhook (port 443).
    #[arg(long, default_value = "steward-graceful-drain", value_name = "NAME")]
    pub webhook_service: String,
    /// Seconds the API server waits for the webhook before letting the eviction through.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=30))]
    pub webhook_timeout: i32,
    /// Namespace label (key=value) a namespace must carry for its evictions to reach the webhook; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    pub webhook_namespace_label: Vec<(String, String)>,
    /// Only this namespace: its evictions alone reach the webhook and the controller drains only its pods (one steward per tenant). Default: every namespace.
    #[arg(long, value_name = "NS")]
    pub watch_namespace: Option<String>,
    /// Namespaces whose evictions never reach the webhook, beside kube-system and steward's own; repeatable.
    #[arg(long, value_name = "NS")]
    pub exclude_namespace: Vec<String>,
    /// Secret holding the webhook CA and serving certificate.
    #[arg(
        long,
        default_value = "steward-graceful-drain-tls",
        value_name = "NAME"
    )]
    pub tls_secret: String,
    /// Who issues the webhook certificate: `self` (steward makes a CA, writes the Secret, rotates it) or `secret` (cert-manager or anyone writes tls.crt, tls.key and ca.crt into --tls-secret; steward only reads and follows it).
    #[arg(long, value_enum, default_value_t = TlsSource::SelfSigned, value_name = "SOURCE")]
    pub tls_source: TlsSource,
    /// Validity of the webhook certificate; renewed when a third is left.
    #[arg(long, default_value = "2160h", value_parser = steward_runtime::duration::parse, value_name = "DURATION")]
    pub cert_validity: Duration,
    /// Pods per page when listing pod metadata (at start and after a broken watch);
    /// smaller pages lower peak memory, larger ones mean fewer requests.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000), value_name = "N")]
    pub list_page_size: u32,
    /// After a refused final eviction, no new drain of that pod for this long.
    #[arg(long, default_value = "30s", value_parser = steward_runtime::duration::parse, value_name = "DURATION")]
    pub restore_backoff: Duration,
}

/// Who issues the webhook certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsSource {
    /// steward's own CA, in a Secret it writes and rotates.
    #[value(name = "self")]
    SelfSigned,
    /// A Secret someone else writes (a cert-manager Certificate's secretName).
    Secret,
}

fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("\"{s}\" is not KEY=VALUE"))
}

impl RunArgs {
    fn registration(&self) -> Registration {
        let mut excluded = vec!["kube-system".to_string(), self.namespace.clone()];
        excluded.extend(self.exclude_namespace.iter().cloned());
        Registration {
            name: self.webhook_name.clone(),
            endpoint: match &self.webhook_url {
                Some(url) => Endpoint::Url(url.clone()),
                None => Endpoint::Service {
                    namespace: self.namespace.clone(),
                    name: self.webhook_service.clone(),
                    port: 443,
                },
            },
            timeout_seconds: self.webhook_timeout,
            excluded_namespaces: excluded,
            namespace_labels: self
                .webhook_namespace_label
                .iter()
                .cloned()
                .chain(
                    self.watch_namespace
                        .iter()
                        .map(|ns| ("kubernetes.io/metadata.name".to_string(), ns.clone())),
                )
                .collect(),
        }
    }

    fn sans(&self) -> Vec<String> {
        let (svc, ns) = (&self.webhook_service, &self.namespace);
        let mut sans = vec![
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
            "localhost".into(),
            "127.0.0.1".into(),
        ];
        if let Some(host) = self
            .webhook_url
            .as_deref()
            .and_then(|u| u.split("://").nth(1))
            .and_then(|rest| rest.split(['/', ':']).next())
            .filter(|h| !h.is_empty() && !sans.iter().any(|s| s == h))
        {
            sans.push(host.to_string());
        }
        sans
    }
}

/// Runs until shutdown or loss of leadership.
pub async fn run(args: RunArgs, lang: Lang, shutdown: Shutdown) -> Result<()> {
    let client = args.kube.connect().await?.client;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let mut registry = steward_runtime::admin::registry(env!("CARGO_PKG_VERSION"));
    let metrics = Metrics::new(&mut registry);
    let ready = Readiness::default();
    let admin = AdminServer::bind(args.admin.admin_addr).await?;
    tokio::spawn(admin.serve(Arc::new(registry), ready.clone(), shutdown.clone()));
    let events = Events::new(client.clone(), identity.clone(), lang);

    // Configuration: the last good one stays in force.
    let (config_tx, config_rx) = watch::channel(Arc::new(Config::default()));
    tokio::spawn(watch_config(
        client.clone(),
        args.clone(),
        config_tx,
        metrics.clone(),
        events.clone(),
        shutdown.clone(),
    ));

    // Certificate and webhook registration.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &args.namespace);
    let bundle = match args.tls_source {
        TlsSource::SelfSigned => {
            certs::ensure(&secrets, &args.tls_secret, &args.sans(), args.cert_validity).await?
        }
        TlsSource::Secret => {
            let Some(b) = first_external(&secrets, &args.tls_secret, &shutdown).await else {
                return Ok(());
            };
            b
        }
    };
    let resolver = Resolver::new(&bundle)?;
    let registration = args.registration();
    webhook::register(&client, &registration, &bundle.ca_bundle()).await?;
    match args.tls_source {
        TlsSource::SelfSigned => tokio::spawn(keep_certificate(
            client.clone(),
            args.clone(),
            bundle,
            resolver.clone(),
            shutdown.clone(),
        )),
        TlsSource::Secret => tokio::spawn(follow_external(
            client.clone(),
            args.clone(),
            bundle,
            resolver.clone(),
            shutdown.clone(),
        )),
    };

    // Pod metadata for the webhook, all namespaces, slimmed to what it reads.
    let (pods, writer) = reflector::store();
    let stream = watcher(
        Api::<PartialObjectMeta<Pod>>::all(client.clone()),
        watcher::Config::default().page_size(args.list_page_size),
    )
    .modify(webhook::slim)
    .default_backoff();
    let pod_stream = reflector(writer, stream)
        .applied_objects()
        .for_each(|_| async {});
    tokio::spawn(pod_stream);
    let vpas = vpa_store(&client).await;
    let wait_store = pods.clone();
    tokio::select! {
        r = wait_store.wait_until_ready() => r.map_err(|_| Error::CacheStopped)?,
        () = shutdown.signaled() => return Ok(()),
    }
    if let Some(v) = &vpas {
        tokio::select! {
            r = v.wait_until_ready() => r.map_err(|_| Error::CacheStopped)?,
            () = shutdown.signaled() => return Ok(()),
        }
    }

    let listener = webhook::bind(args.webhook_addr).await?;
    tracing::info!(addr = %listener.local_addr().map_or(args.webhook_addr, |a| a), webhook = %args.webhook_name, "serving the eviction webhook");
    let ctx = webhook::Ctx {
        client: client.clone(),
        pods,
        config: config_rx.clone(),
        metrics: metrics.clone(),
        lang,
        retry_after: 5,
        vpas,
    };
    tokio::spawn(webhook::serve(listener, resolver, ctx, shutdown.clone()));
    ready.set(true);

    let leader_args = LeaderArgs {
        lease_namespace: args.namespace.clone(),
        lease_identity: Some(identity.clone()),
        lease_duration: args.lease_duration,
    };
    let Some(mut leader) =
        leader::acquire(client.clone(), &leader_args, &args.lease_name, &shutdown).await?
    else {
        return Ok(());
    };
    // In place first: advice on VPAs that need no eviction at all (leader only, so
    // each Event is published once).
    let advice = tokio::spawn(crate::inplace::run(
        client.clone(),
        metrics.clone(),
        events.clone(),
    ));
    let ctx = Arc::new(controller::Ctx {
        client: client.clone(),
        config: config_rx,
        metrics,
        events,
        http: reqwest::Client::new(),
        restore_backoff: args.restore_backoff,
        active: Mutex::new(Default::default()),
        probe_warned: Mutex::new(Default::default()),
        isolating: Mutex::new(Default::default()),
    });
    let stop = shutdown.clone();
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(
        ctx,
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
            advice.abort();
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

/// A cache of the VerticalPodAutoscalers, when their API is installed (read at
/// start; a VPA CRD installed later is picked up at the next restart).
async fn vpa_store(client: &Client) -> Option<reflector::Store<DynamicObject>> {
    let ar = crate::vpa::api_resource();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            tracing::info!("no VerticalPodAutoscaler API; targeting by VPA objects is off");
            return None;
        }
        Err(error) => {
            tracing::warn!(%error, "reading VerticalPodAutoscalers failed; targeting by VPA objects is off");
            return None;
        }
    }
    let writer = reflector::store::Writer::new(ar);
    let store = writer.as_reader();
    let stream = watcher(api, watcher::Config::default())
        .modify(|v| v.managed_fields_mut().clear())
        .default_backoff();
    tokio::spawn(reflector(writer, stream).for_each(|_| async {}));
    Some(store)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "steward".into(), |h| h.trim().to_string())
}

/// Watches the ConfigMap; a valid document replaces the configuration, an invalid
/// one is rejected with an Event and a log line naming the field.
async fn watch_config(
    client: Client,
    args: RunArgs,
    tx: watch::Sender<Arc<Config>>,
    metrics: Metrics,
    events: Events,
    shutdown: Shutdown,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &args.namespace);
    let stream = watch_named(api, &args.config_map);
    let mut stream = std::pin::pin!(stream);
    while let Some(cm) = next_change(&mut stream, &shutdown, "the ConfigMap").await {
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(CONFIG_KEY))
            .cloned()
            .unwrap_or_default();
        match Config::parse(&text) {
            Ok(config) => {
                tracing::info!(configmap = %cm.name_any(), version = cm.resource_version().unwrap_or_default(), "configuration loaded");
                metrics.reload(true);
                let _ = tx.send(Arc::new(config));
            }
            Err(error) => {
                let field = match &error {
                    Error::InvalidConfig { field, .. } => field.clone(),
                    _ => String::new(),
                };
                tracing::warn!(configmap = %cm.name_any(), %field, %error, "configuration rejected; the last good one stays in force");
                metrics.reload(false);
                events
                    .publish(
                        &cm,
                        Reason::InvalidConfig,
                        &Msg::ConfigRejected {
                            error: error.to_string(),
                        },
                    )
                    .await;
            }
        }
    }
}

/// Re-reads the Secret every tenth of the validity (at most hourly); rotates when
/// due, re-registers the webhook with both CAs, and serves the new certificate.
async fn keep_certificate(
    client: Client,
    args: RunArgs,
    mut current: certs::Bundle,
    resolver: Arc<Resolver>,
    shutdown: Shutdown,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &args.namespace);
    let every = (args.cert_validity / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let registration = args.registration();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.signaled() => return,
        }
        match certs::ensure(&secrets, &args.tls_secret, &args.sans(), args.cert_validity).await {
            Ok(b) if b != current => {
                if let Err(error) = webhook::register(&client, &registration, &b.ca_bundle()).await
                {
                    tracing::warn!(%error, "updating the webhook caBundle failed; retrying");
                    continue;
                }
                if let Err(error) = resolver.set(&b) {
                    tracing::warn!(%error, "loading the rotated certificate failed");
                    continue;
                }
                tracing::info!(not_after = %b.not_after, "serving a rotated webhook certificate");
                current = b;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "checking the webhook certificate failed; retrying")
            }
        }
    }
}

/// Waits until the externally issued Secret exists and holds a usable certificate
/// (cert-manager may issue it after steward starts); `None` on shutdown.
async fn first_external(
    secrets: &Api<Secret>,
    name: &str,
    shutdown: &Shutdown,
) -> Option<certs::Bundle> {
    let mut said = String::new();
    loop {
        let why = match secrets.get_opt(name).await {
            Ok(Some(s)) => match certs::from_external(&s) {
                Ok(b) => return Some(b),
                Err(e) => e.to_string(),
            },
            Ok(None) => format!(
                "Secret {name} does not exist yet (is its cert-manager Certificate issued?)"
            ),
            Err(e) => e.to_string(),
        };
        if why != said {
            tracing::warn!(secret = name, error = %why, "waiting for the webhook certificate; not serving yet");
            said = why;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = shutdown.signaled() => return None,
        }
    }
}

/// Follows an externally issued Secret: a renewed certificate is served from the
/// next handshake; a new CA goes into `caBundle` beside the previous one first, so
/// the API server trusts whichever certificate a replica still serves. A Secret
/// that becomes unusable keeps the last good certificate in service.
async fn follow_external(
    client: Client,
    args: RunArgs,
    mut current: certs::Bundle,
    resolver: Arc<Resolver>,
    shutdown: Shutdown,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &args.namespace);
    let stream = watch_named(secrets, &args.tls_secret);
    let mut stream = std::pin::pin!(stream);
    let registration = args.registration();
    while let Some(secret) = next_change(&mut stream, &shutdown, "the certificate Secret").await {
        let mut b = match certs::from_external(&secret) {
            Ok(b) => b,
            Err(error) => {
                tracing::warn!(secret = %args.tls_secret, %error, "the certificate Secret is not usable; the last good certificate stays in service");
                continue;
            }
        };
        if b.cert == current.cert && b.ca == current.ca && b.key == current.key {
            continue;
        }
        if b.ca != current.ca {
            b.previous_ca = Some(current.ca.clone());
        } else {
            b.previous_ca.clone_from(&current.previous_ca);
        }
        if let Err(error) = webhook::register(&client, &registration, &b.ca_bundle()).await {
            tracing::warn!(%error, "updating the webhook caBundle failed; still serving the previous certificate");
            continue;
        }
        if let Err(error) = resolver.set(&b) {
            tracing::warn!(%error, "loading the renewed certificate failed");
            continue;
        }
        tracing::info!(secret = %args.tls_secret, not_after = %b.not_after, "serving a renewed webhook certificate from the Secret");
        current = b;
    }
}

/// The changes of one named object, with kube's back-off on watch errors.
fn watch_named<K>(api: Api<K>, name: &str) -> impl Stream<Item = watcher::Result<K>> + Send
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, cfg).default_backoff().applied_objects()
}

/// The next version of the watched object; `None` when the watch ends or steward
/// stops. A watch error is logged (naming `what`) and the watch goes on.
async fn next_change<K, S>(
    stream: &mut std::pin::Pin<&mut S>,
    shutdown: &Shutdown,
    what: &str,
) -> Option<K>
where
    S: Stream<Item = watcher::Result<K>>,
{
    loop {
        tokio::select! {
            next = stream.try_next() => match next {
                Ok(Some(o)) => return Some(o),
                Ok(None) => return None,
                Err(error) => tracing::warn!(%error, object = what, "watch failed; retrying"),
            },
            () = shutdown.signaled() => return None,
        }
    }
}
