//! `steward ottoscaler serve`: reads the token, worker classes and TLS material,
//! builds the scaler on the chosen backend, and serves gRPC until the shared
//! shutdown signal, with the admin server (metrics, health) and the orphan sweep.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use steward_runtime::Shutdown;
use steward_runtime::admin::{AdminArgs, AdminServer, Readiness};
use steward_runtime::kube_client::KubeArgs;
use tracing::warn;

use super::BackendKind;
use super::election::{self, Election};
use crate::audit::Audit;
use crate::backend::Backend;
use crate::backend::kubernetes::KubeBackend;
use crate::backend::local::LocalBackend;
use crate::core::config::Config;
use crate::core::room::CapacityCheck;
use crate::core::teams::Teams;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::scaler::{Options, Scaler};
use crate::server::{ServeOptions, Tls};
use steward_runtime::leader::LeaderArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  # In a cluster: worker pods in namespace ci, the token from a mounted Secret
  steward ottoscaler serve -n ci --kube-config cluster --token-file /etc/ottoscaler/token
  # On a laptop: workers as local processes
  OTTOSCALER_TOKEN=dev steward ottoscaler serve --backend local --listen 127.0.0.1:9090
  # Teams with quotas from a mounted Secret, every mutating call audited to stdout
  steward ottoscaler serve -n ci --teams-file /etc/ottoscaler/teams.yaml --audit-log -
  # Worker classes; TLS with client certificates; refuse what no node has room for
  steward ottoscaler serve --config classes.yaml --capacity-check strict \\
    --tls-cert tls.crt --tls-key tls.key --tls-client-ca ca.crt")]
pub(super) struct ServeArgs {
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
    /// Kubernetes namespace of worker pods and run records (as kubectl's -n).
    #[arg(
        long,
        short = 'n',
        env = "OTTOSCALER_NAMESPACE",
        default_value = "default"
    )]
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
    /// Teams (YAML): each team's token hash (`printf %s "$TOKEN" | sha256sum`),
    /// quota (workers, cpu, memory) and whether it is an admin. A team sees and
    /// acts only on its own runs, tasks and workers. With it --token is optional; if
    /// given too, its token is the admin team "default".
    #[arg(long, value_name = "PATH")]
    teams_file: Option<PathBuf>,
    /// Append a JSON line for every mutating call (ScaleUp, ScaleDown,
    /// ExecutePipeline, CancelPipeline), allowed or refused, to this file (`-`:
    /// standard output).
    #[arg(long, value_name = "PATH")]
    audit_log: Option<PathBuf>,
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
    /// Webhook receiving a signed JSON event when a run ends or a stage fails for
    /// good (repeat the flag for more); retried with back-off while it is down.
    #[arg(long = "notify-url", value_name = "URL", value_parser = webhook_url)]
    notify_urls: Vec<reqwest::Url>,
    /// File holding the HMAC-SHA256 key the webhook events are signed with
    /// (`X-Steward-Signature-256`); required with --notify-url.
    #[arg(long, value_name = "PATH")]
    notify_secret_file: Option<PathBuf>,
    /// Elect a leader on a Lease in --namespace, so two replicas can run: the leader
    /// acts and serves; the other forwards gRPC connections to it and takes over
    /// (continuing every run) once the Lease expires or is released.
    #[arg(long)]
    leader_elect: bool,
    /// Name of the Lease (with --leader-elect).
    #[arg(long, default_value = "steward-ottoscaler", value_name = "NAME")]
    lease_name: String,
    /// Seconds a leader holds the Lease without renewing it: how long a follower
    /// waits after the leader dies (a SIGTERM'd leader releases it at once).
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    lease_duration: u64,
    /// Identity of this replica on the Lease (default: the pod name, else host-pid).
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    lease_identity: Option<String>,
    /// Where the other replica reaches this one's gRPC port (default: $POD_IP with
    /// the --listen port, else the --listen address when it is not 0.0.0.0).
    #[arg(long, env = "OTTOSCALER_ADVERTISE_ADDR", value_name = "ADDR")]
    advertise_addr: Option<SocketAddr>,
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

fn read_file(flag: &str, p: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|source| Error::Io {
        what: format!("{flag} {}", p.display()),
        source,
    })
}

/// Who may call: the teams of --teams-file and the single token, if any; at
/// least one of them is required.
fn teams(a: &ServeArgs) -> Result<Teams> {
    let Some(p) = &a.teams_file else {
        return token(a).map(|t| Teams::single(&t));
    };
    let text = String::from_utf8_lossy(&read_file("--teams-file", p)?).into_owned();
    let config = |reason| Error::Config {
        path: p.display().to_string(),
        reason,
    };
    let teams = Teams::parse(&text).map_err(config)?;
    if a.token.is_none() && a.token_file.is_none() {
        return Ok(teams);
    }
    teams.with_token(&token(a)?).map_err(config)
}

/// The bearer token from --token-file or --token (OTTOSCALER_TOKEN).
fn token(a: &ServeArgs) -> Result<String> {
    let token = match (&a.token_file, &a.token) {
        (Some(p), _) => String::from_utf8_lossy(&read_file("--token-file", p)?)
            .trim()
            .to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => String::new(),
    };
    if token.is_empty() {
        return Err(crate::core::spec::bad(
            "--token",
            "a bearer token is required: set --token, --token-file, OTTOSCALER_TOKEN or --teams-file",
        )
        .into());
    }
    Ok(token)
}

fn config(a: &ServeArgs) -> Result<Config> {
    let Some(p) = &a.config else {
        return Ok(Config::default());
    };
    let text = String::from_utf8_lossy(&read_file("--config", p)?).into_owned();
    Config::parse(&text).map_err(|reason| Error::Config {
        path: p.display().to_string(),
        reason,
    })
}

fn tls(a: &ServeArgs) -> Result<Option<Tls>> {
    let (Some(c), Some(k)) = (&a.tls_cert, &a.tls_key) else {
        return Ok(None);
    };
    Ok(Some(Tls {
        cert: read_file("--tls-cert", c)?,
        key: read_file("--tls-key", k)?,
        client_ca: a
            .tls_client_ca
            .as_ref()
            .map(|p| read_file("--tls-client-ca", p))
            .transpose()?,
    }))
}

fn webhook_url(s: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(s).map_err(|e| e.to_string())?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err("an http:// or https:// URL with a host is needed".into());
    }
    Ok(u)
}

/// The webhooks the flags ask for, the key read from its file.
fn notifier(a: &ServeArgs) -> Result<Notifier> {
    if a.notify_urls.is_empty() {
        return Ok(Notifier::default());
    }
    let bad = |field: &str, why: &str| Error::Invalid(crate::core::spec::bad(field, why));
    let path = a.notify_secret_file.as_ref().ok_or_else(|| {
        bad(
            "--notify-secret-file",
            "required with --notify-url (events are signed)",
        )
    })?;
    let key = read_file("--notify-secret-file", path)?;
    let key = key.trim_ascii().to_vec();
    if key.is_empty() {
        return Err(bad("--notify-secret-file", "the file is empty"));
    }
    Notifier::new(a.notify_urls.clone(), key).map_err(|e| Error::Config {
        path: "--notify-url".into(),
        reason: e.without_url().to_string(),
    })
}

/// The leader election the flags ask for, every flag checked.
fn election(a: &ServeArgs) -> Result<Option<Election>> {
    if !a.leader_elect {
        return Ok(None);
    }
    let bad = |field: &str, why: &str| Error::Invalid(crate::core::spec::bad(field, why));
    if a.backend != BackendKind::Kubernetes {
        return Err(bad(
            "--leader-elect",
            "needs --backend kubernetes (the Lease and the workers are in the cluster)",
        ));
    }
    let pod_ip = std::env::var("POD_IP").ok().and_then(|ip| ip.parse().ok());
    let advertise = a
        .advertise_addr
        .or_else(|| pod_ip.map(|ip| SocketAddr::new(ip, a.listen.port())))
        .or_else(|| (!a.listen.ip().is_unspecified()).then_some(a.listen))
        .ok_or_else(|| {
            bad(
                "--advertise-addr",
                "needed with --leader-elect when --listen is a wildcard address and POD_IP is not set",
            )
        })?;
    Ok(Some(Election {
        args: LeaderArgs {
            lease_namespace: a.namespace.clone(),
            lease_identity: Some(
                a.lease_identity
                    .clone()
                    .unwrap_or_else(steward_runtime::leader::default_identity),
            ),
            lease_duration: a.lease_duration,
        },
        name: a.lease_name.clone(),
        advertise,
    }))
}

/// Deletes workers of no live run or task every `interval`, until `stop`.
fn sweep_orphans(scaler: Arc<Scaler>, interval: Duration, stop: Shutdown) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.signaled() => return,
            }
            if let Err(e) = scaler.sweep().await {
                warn!(error = %e, "orphan sweep failed; next try at the next interval");
            }
        }
    });
}

/// Serves until `shutdown`. Every input is read and checked before anything starts.
/// With leader election, a follower forwards gRPC to the leader until it leads.
pub(super) async fn serve(a: ServeArgs, shutdown: Shutdown) -> Result<()> {
    let teams = teams(&a)?;
    let audit = Audit::open(a.audit_log.as_deref())?;
    let config = config(&a)?;
    let tls = tls(&a)?;
    let election = election(&a)?;
    let notify = notifier(&a)?;
    let client = match a.backend {
        BackendKind::Kubernetes => Some(a.kube.connect().await?.client),
        BackendKind::Local => None,
    };
    let backend: Arc<dyn Backend> = match &client {
        Some(c) => Arc::new(KubeBackend::new(c.clone(), &a.namespace)),
        None => Arc::new(LocalBackend::new()),
    };
    let metrics = Metrics::default();
    let mut registry = steward_runtime::admin::registry(env!("CARGO_PKG_VERSION"));
    metrics.register(&mut registry);
    if election.is_some() {
        steward_runtime::leader::register_metrics(&mut registry);
    }
    let admin = AdminServer::bind(a.admin.admin_addr).await?;
    let ready = Readiness::default();
    tokio::spawn(admin.serve(Arc::new(registry), ready.clone(), shutdown.clone()));
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|source| Error::Io {
            what: format!("binding {}", a.listen),
            source,
        })?;
    let mut leader = None;
    if let (Some(e), Some(c)) = (&election, &client) {
        // A forwarding follower is Ready: the Service reaches the leader through it.
        ready.set(true);
        match election::follow(c.clone(), e, &listener, &shutdown).await? {
            Some(l) => leader = Some(l),
            None => return Ok(()),
        }
    }
    let opts = Options {
        max_workers: a.max_workers,
        grace: a.grace_period,
        retention: a.retention,
        log_lines: a.log_lines,
        capacity: a.capacity_check,
        notify,
        quotas: teams.quotas(),
    };
    let scaler = Scaler::new(backend, config, opts, metrics);
    scaler.start(shutdown.token()).await?;
    sweep_orphans(scaler.clone(), a.orphan_interval, shutdown.clone());
    ready.set(true);
    let opts = ServeOptions {
        teams,
        audit,
        reflection: a.reflection,
        tls,
    };
    let served = tokio::select! {
        r = crate::server::serve(scaler.clone(), listener, opts, shutdown.token()) => r,
        e = election::lost(&mut leader) => {
            scaler.halt();
            tracing::error!(error = %e, "leadership lost; exiting so the Deployment restarts this replica as a follower");
            return Err(e);
        }
    };
    scaler.halt();
    if let Some(l) = leader {
        l.release(Duration::from_secs(5)).await;
    }
    served
}
