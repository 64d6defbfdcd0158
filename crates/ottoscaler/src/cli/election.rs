//! Two replicas of `steward ottoscaler serve`: one leader on a Lease in the worker
//! namespace creates and deletes workers and serves gRPC; a follower does nothing
//! to the cluster and forwards every gRPC connection it accepts, byte for byte, to
//! the leader's advertised address. So a Service over both replicas always reaches
//! the leader, both replicas are Ready (a PodDisruptionBudget over them lets one go
//! at a time), and TLS and the bearer token are checked by the leader itself.
//!
//! The leader advertises itself with two annotations on the Lease
//! (`steward.io/leader-identity`, `steward.io/leader-address`, merge-patched next
//! to the lease library's own fields). A follower forwards only while those name
//! the Lease's current, unexpired holder. A connection that arrives while there is
//! none (at start-up, or between a leader's death and the next one's election)
//! waits for one, up to the Lease duration and 5 s, and goes to this replica itself
//! if it is the one elected; only then is it closed, and the client re-attaches,
//! as after any break. Forwarding is hand-written (a
//! `copy_bidirectional` per connection) because a TCP relay needs nothing more;
//! a gRPC-level proxy would have to terminate TLS.

use std::net::SocketAddr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use steward_runtime::Shutdown;
use steward_runtime::leader::{self, Leader, LeaderArgs};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::error::{Error, Result, kube as kube_err};

/// The annotation naming the identity that advertises an address.
pub const IDENTITY: &str = "steward.io/leader-identity";
/// The annotation holding the leader's gRPC address.
pub const ADDRESS: &str = "steward.io/leader-address";

/// What leader election needs, checked before anything starts.
#[derive(Debug, Clone)]
pub struct Election {
    /// Lease namespace (the worker namespace), identity and duration.
    pub args: LeaderArgs,
    /// Lease name.
    pub name: String,
    /// Where other replicas reach this one's gRPC port.
    pub advertise: SocketAddr,
}

/// The address a follower `me` forwards to, at `now`: the advertised address when
/// it is the Lease's current holder's (not this replica, not expired).
pub fn target(lease: &Lease, me: &str, now: Timestamp) -> Option<SocketAddr> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.as_deref()?;
    let renewed = spec.renew_time.as_ref()?.0;
    let duration = i64::from(spec.lease_duration_seconds?);
    if holder == me || now > renewed + SignedDuration::from_secs(duration) {
        return None;
    }
    let ann = lease.metadata.annotations.as_ref()?;
    if ann.get(IDENTITY).map(String::as_str) != Some(holder) {
        return None;
    }
    ann.get(ADDRESS)?.parse().ok()
}

/// Forwards connections on `listener` to the leader until this replica leads
/// (then its leadership) or until shutdown (`None`).
pub async fn follow(
    client: kube::Client,
    e: &Election,
    listener: &TcpListener,
    shutdown: &Shutdown,
) -> Result<Option<Leader>> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &e.args.lease_namespace);
    let me = e.args.lease_identity.clone().unwrap_or_default();
    let acquire = leader::acquire(client, &e.args, &e.name, shutdown);
    let mut acquire = std::pin::pin!(acquire);
    let (leading, _) = watch::channel(false);
    let patience = Duration::from_secs(e.args.lease_duration + 5);
    info!(lease = %e.name, identity = %me, "following; gRPC connections are forwarded to the leader");
    loop {
        tokio::select! {
            held = &mut acquire => {
                let Some(held) = held? else { return Ok(None) };
                advertise(&leases, e, &me).await?;
                // Connections still waiting for a leader come to this one.
                leading.send_replace(true);
                return Ok(Some(held));
            }
            conn = listener.accept() => match conn {
                Ok((conn, peer)) => {
                    let wait = Wait {
                        leases: leases.clone(),
                        name: e.name.clone(),
                        me: me.clone(),
                        leading: leading.subscribe(),
                        own: e.advertise,
                        patience,
                    };
                    tokio::spawn(relay(wait, conn, peer));
                }
                Err(err) => warn!(error = %err, "accepting a connection to forward failed"),
            },
        }
    }
}

async fn advertise(leases: &Api<Lease>, e: &Election, me: &str) -> Result<()> {
    let patch = serde_json::json!({
        "metadata": { "annotations": { IDENTITY: me, ADDRESS: e.advertise.to_string() } }
    });
    let pp = PatchParams {
        field_manager: Some("steward-ottoscaler-leader".into()),
        ..PatchParams::default()
    };
    leases
        .patch(&e.name, &pp, &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!(
            "advertising the leader on Lease {}",
            e.name
        )))?;
    info!(lease = %e.name, address = %e.advertise, "leading; advertised on the Lease");
    Ok(())
}

/// How a forwarded connection finds its leader.
struct Wait {
    leases: Api<Lease>,
    name: String,
    me: String,
    /// Turns true once this replica leads.
    leading: watch::Receiver<bool>,
    /// This replica's own advertised address.
    own: SocketAddr,
    patience: Duration,
}

impl Wait {
    /// The leader's address, waiting up to `patience` for there to be one.
    async fn leader(mut self) -> Option<SocketAddr> {
        let deadline = tokio::time::Instant::now() + self.patience;
        loop {
            if *self.leading.borrow_and_update() {
                return Some(self.own);
            }
            match self.leases.get(&self.name).await {
                Ok(l) => {
                    if let Some(to) = target(&l, &self.me, Timestamp::now()) {
                        return Some(to);
                    }
                }
                Err(err) => {
                    debug!(error = %err, "reading the Lease to forward a connection failed")
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::select! {
                () = tokio::time::sleep(LEASE_POLL) => {}
                r = self.leading.changed() => if r.is_err() { return None },
            }
        }
    }
}

/// How often a waiting connection reads the Lease again.
const LEASE_POLL: Duration = Duration::from_millis(250);

async fn relay(wait: Wait, mut conn: TcpStream, peer: SocketAddr) {
    let patience = wait.patience;
    let Some(to) = wait.leader().await else {
        debug!(%peer, waited_s = patience.as_secs(), "no leader to forward to; closing the connection");
        return;
    };
    match TcpStream::connect(to).await {
        Ok(mut up) => {
            if let Err(err) = tokio::io::copy_bidirectional(&mut conn, &mut up).await {
                debug!(%peer, leader = %to, error = %err, "forwarded connection ended");
            }
        }
        Err(err) => debug!(%peer, leader = %to, error = %err, "connecting to the leader failed"),
    }
}

/// Completes when `leader` (if any) loses its Lease; never without one.
pub async fn lost(leader: &mut Option<Leader>) -> Error {
    match leader {
        Some(l) => {
            l.lost().await;
            Error::LostLeadership(l.lease().to_string())
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: Option<&str>, renewed_ago: i64, ann: &[(&str, &str)]) -> Lease {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let mut l = Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_ago))),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        l.metadata.annotations = Some(
            ann.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        );
        l
    }

    #[test]
    fn a_follower_forwards_only_to_the_current_advertised_holder() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let good = [(IDENTITY, "a"), (ADDRESS, "10.0.0.1:9090")];
        let addr: SocketAddr = "10.0.0.1:9090".parse().unwrap();
        let cases: Vec<(&str, Lease, Option<SocketAddr>)> = vec![
            (
                "the holder advertised itself",
                lease(Some("a"), 1, &good),
                Some(addr),
            ),
            ("nobody holds it", lease(None, 1, &good), None),
            (
                "expired: its holder is gone",
                lease(Some("a"), 16, &good),
                None,
            ),
            (
                "this replica holds it",
                lease(Some("b"), 1, &[(IDENTITY, "b"), (ADDRESS, "10.0.0.2:9090")]),
                None,
            ),
            (
                "a new holder has not advertised yet",
                lease(Some("c"), 1, &good),
                None,
            ),
            ("no address", lease(Some("a"), 1, &[(IDENTITY, "a")]), None),
            (
                "an address that is not one",
                lease(Some("a"), 1, &[(IDENTITY, "a"), (ADDRESS, "leader:grpc")]),
                None,
            ),
            ("no annotations", lease(Some("a"), 1, &[]), None),
        ];
        for (what, l, want) in cases {
            assert_eq!(target(&l, "b", now), want, "{what}");
        }
        assert_eq!(target(&Lease::default(), "b", now), None, "no spec");
    }
}
