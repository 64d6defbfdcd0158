//! Lease-based leader election (`coordination.k8s.io/v1` Lease), through
//! kube-lease-manager. Leader-only work runs while [`Leader::lost`] has not
//! completed; losing the lease is final for the process, which exits and lets its
//! Deployment restart it as a follower, so there is never a second writer.

use std::time::Duration;

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

/// Flags for leader election.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderArgs {
    /// Namespace of the Lease (defaults to the pod's namespace).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "default",
        value_name = "NS"
    )]
    pub lease_namespace: String,
    /// Identity of this replica (defaults to the pod name).
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    pub lease_identity: Option<String>,
    /// Seconds a leader holds the Lease without renewing it.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub lease_duration: u64,
}

/// `steward_leader`: 1 while this process holds its Lease, 0 while it waits (one
/// Lease per process, so one gauge).
fn gauge() -> &'static Gauge {
    static GAUGE: std::sync::OnceLock<Gauge> = std::sync::OnceLock::new();
    GAUGE.get_or_init(Gauge::default)
}

/// Registers `steward_leader` (for "no replica leads" alerts); a system that elects
/// a leader calls it on its registry.
pub fn register_metrics(registry: &mut Registry) {
    registry.register(
        "steward_leader",
        "1 while this replica holds its leader-election Lease, 0 while it waits",
        gauge().clone(),
    );
}

/// Held leadership.
#[derive(Debug)]
pub struct Leader {
    rx: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
    lease: String,
}

/// Waits until this process holds the Lease `namespace/name`, or until shutdown
/// (then `Ok(None)`).
pub async fn acquire(
    client: kube::Client,
    args: &LeaderArgs,
    name: &str,
    shutdown: &Shutdown,
) -> Result<Option<Leader>> {
    let identity = args.lease_identity.clone().unwrap_or_else(default_identity);
    let duration = args.lease_duration.max(2);
    let err = |source| Error::Lease {
        namespace: args.lease_namespace.clone(),
        name: name.to_string(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client, name)
        .with_namespace(&args.lease_namespace)
        .with_identity(identity.clone())
        .with_duration(duration)
        .with_grace(duration / 3 + 1)
        .with_field_manager("steward")
        .build()
        .await
        .map_err(err)?;
    let (mut rx, task) = manager.watch().await;
    let lease = format!("{}/{name}", args.lease_namespace);
    loop {
        if *rx.borrow_and_update() {
            tracing::info!(%lease, %identity, "acquired leadership");
            gauge().set(1);
            return Ok(Some(Leader { rx, task, lease }));
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                let why = match task.await {
                    Ok(Err(e)) => e,
                    Ok(Ok(_)) => LeaseManagerError::InconsistentState("lease watcher stopped".into()),
                    Err(e) => LeaseManagerError::InconsistentState(e.to_string()),
                };
                return Err(err(why));
            },
            () = shutdown.signaled() => return Ok(None),
        }
    }
}

impl Leader {
    /// Completes when leadership is lost (the Lease was taken or could not be renewed).
    pub async fn lost(&mut self) {
        loop {
            if !*self.rx.borrow_and_update() || self.rx.changed().await.is_err() {
                gauge().set(0);
                return;
            }
        }
    }

    /// The Lease as `namespace/name`.
    pub fn lease(&self) -> &str {
        &self.lease
    }

    /// Gives the Lease up so a follower takes over without waiting for it to expire.
    pub async fn release(self, timeout: Duration) {
        gauge().set(0);
        drop(self.rx);
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!(lease = %self.lease, "released leadership"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(lease = %self.lease, error = %e, "releasing the lease failed; it expires on its own")
            }
            Ok(Err(e)) => tracing::warn!(lease = %self.lease, error = %e, "lease task failed"),
            Err(_) => {
                tracing::warn!(lease = %self.lease, "releasing the lease timed out; it expires on its own")
            }
        }
    }
}

/// `<hostname>-<pid>`: unique among replicas (pod names are hostnames) and readable
/// in `kubectl get lease -o yaml`.
pub fn default_identity() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "steward".into());
    format!("{}-{}", host.trim(), std::process::id())
}
