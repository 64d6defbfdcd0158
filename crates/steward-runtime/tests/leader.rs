//! Leader election against the real API server: one leader at a time, a follower
//! takes over when the leader releases, and shutdown ends a pending election.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use steward_runtime::Shutdown;
use steward_runtime::leader::{LeaderArgs, acquire};

fn args(ns: &str, id: &str) -> LeaderArgs {
    LeaderArgs {
        lease_namespace: ns.into(),
        lease_identity: Some(id.into()),
        // Renewed 4 s before it runs out. A 3 s Lease is renewed 2 s ahead, and a
        // loaded machine that delays the renewal that long hands it to b while the
        // test asserts a still leads. A follower sleeps until the expiry it last saw,
        // so b takes over at most 10 s after a's release, within the 20 s below.
        lease_duration: 10,
    }
}

#[tokio::test]
async fn one_leader_then_handover_on_release() {
    let env = testkit::env("lease").await.unwrap();
    let shutdown = Shutdown::new();
    let a = acquire(env.client.clone(), &args(&env.ns, "a"), "ctl", &shutdown)
        .await
        .unwrap()
        .expect("a leads");

    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity);
    assert_eq!(
        holder(leases.get("ctl").await.unwrap()).as_deref(),
        Some("a")
    );

    // b must wait while a holds the lease.
    let b_client = env.client.clone();
    let b_args = args(&env.ns, "b");
    let b_shutdown = shutdown.clone();
    let mut b = tokio::spawn(async move { acquire(b_client, &b_args, "ctl", &b_shutdown).await });
    assert!(
        tokio::time::timeout(Duration::from_secs(4), &mut b)
            .await
            .is_err(),
        "b became leader while a held the lease"
    );
    assert_eq!(
        holder(leases.get("ctl").await.unwrap()).as_deref(),
        Some("a")
    );

    a.release(Duration::from_secs(5)).await;
    let mut b = tokio::time::timeout(Duration::from_secs(20), b)
        .await
        .expect("b takes over")
        .unwrap()
        .unwrap()
        .expect("b leads");
    assert_eq!(
        holder(leases.get("ctl").await.unwrap()).as_deref(),
        Some("b")
    );
    assert_eq!(b.lease(), format!("{}/ctl", env.ns));

    // Someone else overwrites the holder: b learns it lost.
    let patch = serde_json::json!({ "spec": { "holderIdentity": "intruder", "leaseDurationSeconds": 3600 } });
    leases
        .patch(
            "ctl",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), b.lost())
        .await
        .expect("b notices the lost lease");
}

#[tokio::test]
async fn shutdown_ends_a_pending_election() {
    let env = testkit::env("lease-sd").await.unwrap();
    let shutdown = Shutdown::new();
    let _a = acquire(env.client.clone(), &args(&env.ns, "a"), "ctl", &shutdown)
        .await
        .unwrap()
        .expect("a leads");
    let other = Shutdown::new();
    let (client, ns) = (env.client.clone(), env.ns.clone());
    let sd = other.clone();
    let pending = tokio::spawn(async move { acquire(client, &args(&ns, "b"), "ctl", &sd).await });
    other.trigger();
    let got = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("returns on shutdown")
        .unwrap()
        .unwrap();
    assert!(got.is_none());
}
