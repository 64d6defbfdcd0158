//! One run per NodePool: a run holds the Lease `steward-drain-<nodepool>` while it
//! changes anything, renewed by kube-lease-manager (the same election the
//! controllers use, `steward_runtime::leader`). A second run finds it held and
//! exits at once naming the holder and since when (`--wait-for-lock` waits
//! instead); a holder that died stops renewing, and once the Lease has expired
//! the next run takes it over and resumes that run's nodes from their
//! `steward.io/drain-state` mark. Losing the Lease mid-run stops the run as
//! Ctrl-C does (nodes never started are rolled back), so two runs never drain
//! one pool at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::Api;
use steward_runtime::Shutdown;
use steward_runtime::leader::{self, Leader, LeaderArgs};

use crate::error::{Error, Result, kube as kerr};

/// Where the Lease lives and how a run treats one held by another.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Seconds the Lease outlives a holder that stopped renewing it.
    pub duration: u64,
    /// Wait for the holder instead of exiting.
    pub wait: bool,
}

/// The Lease of a NodePool's runs.
pub fn lease_name(nodepool: &str) -> String {
    format!("steward-drain-{nodepool}")
}

/// Who holds a Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `holderIdentity`: `<hostname>-<pid>`, or the pod's name in a Job.
    pub identity: String,
    /// `acquireTime`.
    pub since: Option<Timestamp>,
    /// `renewTime`.
    pub renewed: Option<Timestamp>,
}

/// Whether `lease` is held now by someone other than `me`: a holder named, and
/// its last renewal (or acquisition) less than `leaseDurationSeconds` ago. Pure.
pub fn held_by_other(lease: &Lease, me: &str, now: Timestamp) -> Option<Holder> {
    let spec = lease.spec.as_ref()?;
    let identity = spec.holder_identity.as_deref().filter(|h| !h.is_empty())?;
    if identity == me {
        return None;
    }
    let since = spec.acquire_time.as_ref().map(|t| t.0);
    let renewed = spec.renew_time.as_ref().map(|t| t.0);
    let last = renewed.or(since)?;
    let ttl = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(0).into());
    let alive = last.checked_add(ttl).is_ok_and(|end| now < end);
    alive.then(|| Holder {
        identity: identity.to_string(),
        since,
        renewed,
    })
}

/// This process's identity in the Lease.
fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(leader::default_identity)
}

async fn holder(api: &Api<Lease>, name: &str, me: &str) -> Result<Option<Holder>> {
    let lease = api
        .get_opt(name)
        .await
        .map_err(kerr(format!("reading Lease {name}")))?;
    Ok(lease.and_then(|l| held_by_other(&l, me, Timestamp::now())))
}

fn locked(namespace: &str, name: &str, h: Holder) -> Error {
    let show = |t: Option<Timestamp>| t.map_or_else(|| "unknown".to_string(), |t| t.to_string());
    Error::Locked {
        lease: format!("{namespace}/{name}"),
        holder: h.identity,
        since: show(h.since),
        renewed: show(h.renewed),
    }
}

/// Takes the NodePool's Lease: `Err(Error::Locked)` when another live run holds
/// it (unless `wait`), `Ok(None)` when shutdown came first. While the returned
/// [`Leader`] lives the Lease is renewed; a lost Lease triggers `shutdown`.
pub async fn take(
    client: &Client,
    opts: &LockOptions,
    nodepool: &str,
    shutdown: &Shutdown,
) -> Result<Option<Leader>> {
    let name = lease_name(nodepool);
    let me = identity();
    let api: Api<Lease> = Api::namespaced(client.clone(), &opts.namespace);
    if !opts.wait
        && let Some(h) = holder(&api, &name, &me).await?
    {
        return Err(locked(&opts.namespace, &name, h));
    }
    let args = LeaderArgs {
        lease_namespace: opts.namespace.clone(),
        lease_identity: Some(me.clone()),
        lease_duration: opts.duration,
    };
    let acquiring = leader::acquire(client.clone(), &args, &name, shutdown);
    let leader = if opts.wait {
        tracing::info!(lease = %format!("{}/{name}", opts.namespace), "waiting for the NodePool's drain lock");
        acquiring.await?
    } else {
        // Free when read: another run that read it free at the same moment may win.
        match tokio::time::timeout(Duration::from_secs(opts.duration.max(2)), acquiring).await {
            Ok(taken) => taken?,
            Err(_) => {
                return Err(match holder(&api, &name, &me).await? {
                    Some(h) => locked(&opts.namespace, &name, h),
                    None => Error::LockTimeout(format!("{}/{name}", opts.namespace)),
                });
            }
        }
    };
    Ok(leader)
}

/// Stops the run (as Ctrl-C does) when `leader` loses the Lease before `done`
/// fires; the task hands the Leader back for its release.
pub fn stop_on_loss(
    mut leader: Leader,
    shutdown: Shutdown,
    done: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<Leader> {
    tokio::spawn(async move {
        tokio::select! {
            () = leader.lost() => {
                tracing::error!(lease = %leader.lease(), "lost the NodePool's drain lock; stopping the run");
                shutdown.trigger();
            }
            _ = done => {}
        }
        leader
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use serde_json::json;

    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: Option<i64>, duration: i32) -> Lease {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let at = |s: i64| MicroTime(now.checked_sub(SignedDuration::from_secs(s)).unwrap());
        let mut l: Lease = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        l.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
            holder_identity: holder.map(str::to_string),
            acquire_time: Some(at(100)),
            renew_time: renewed_secs_ago.map(at),
            lease_duration_seconds: Some(duration),
            ..Default::default()
        });
        l
    }

    #[test]
    fn who_holds_a_lease() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let table = [
            // Held and renewed 5 s ago, 30 s lease: held.
            (lease(Some("other-1"), Some(5), 30), Some("other-1")),
            // Renewed 31 s ago, 30 s lease: expired, free to take over.
            (lease(Some("other-1"), Some(31), 30), None),
            // Exactly at expiry: expired.
            (lease(Some("other-1"), Some(30), 30), None),
            // Never renewed: acquired 100 s ago counts.
            (lease(Some("other-1"), None, 300), Some("other-1")),
            (lease(Some("other-1"), None, 30), None),
            // Mine (a resumed run with the same pod name): not another's.
            (lease(Some("me"), Some(1), 30), None),
            // Released (no holder).
            (lease(None, Some(1), 30), None),
            (lease(Some(""), Some(1), 30), None),
        ];
        for (l, want) in table {
            let got = held_by_other(&l, "me", now).map(|h| h.identity);
            assert_eq!(got.as_deref(), want, "{:?}", l.spec);
        }
        let mut bare: Lease = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(held_by_other(&bare, "me", now), None, "no spec");
        bare.spec = Some(Default::default());
        assert_eq!(held_by_other(&bare, "me", now), None, "empty spec");
    }

    #[test]
    fn lease_is_named_after_the_pool() {
        assert_eq!(lease_name("general"), "steward-drain-general");
    }
}
