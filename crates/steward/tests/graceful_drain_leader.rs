//! `steward graceful-drain run` leader-side behaviour end to end, on its own control
//! plane (so the VPA CRD is installed after steward starts): in-place resize advice
//! on VerticalPodAutoscalers, two replicas handing a drain over with the Lease, and
//! evictions with no steward running.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod gd_support;

use gd_support::{StewardSpec, T, ready_pods, web};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testkit::TestEnv;
use testkit::wait;

fn pods(env: &TestEnv) -> Api<Pod> {
    Api::namespaced(env.client.clone(), &env.ns)
}

fn vpas(env: &TestEnv) -> Api<DynamicObject> {
    Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &graceful_drain::core::vpa::api_resource(),
    )
}

/// A VPA on Deployment `name`; `mode` None leaves `updatePolicy` out (Auto).
async fn vpa(env: &TestEnv, name: &str, mode: Option<&str>) {
    let mut spec =
        json!({ "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name } });
    if let Some(m) = mode {
        spec["updatePolicy"] = json!({ "updateMode": m });
    }
    let v: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
        "metadata": { "name": name, "namespace": env.ns }, "spec": spec
    }))
    .unwrap();
    vpas(env).create(&PostParams::default(), &v).await.unwrap();
}

fn advice_events(es: &[Event], vpa: &str) -> usize {
    es.iter()
        .filter(|e| {
            e.reason.as_deref() == Some("InPlaceResizeAvailable")
                && e.involved_object.name.as_deref() == Some(vpa)
                && e.involved_object.kind.as_deref() == Some("VerticalPodAutoscaler")
        })
        .count()
}

fn gauge_line(ns: &str, vpa: &str) -> String {
    format!("steward_graceful_drain_vpa_inplace_candidates{{namespace=\"{ns}\",vpa=\"{vpa}\"}} 1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recreate_vpas_get_in_place_advice_once_the_crd_appears() {
    let env = testkit::env("gd-inplace").await.unwrap();
    let spec = StewardSpec::new(&env).await;
    spec.config(&env.client, "version: 1\n").await;
    // This file's control plane has no VPA CRD yet: steward waits for it.
    let steward = spec.start().await;
    steward
        .wait_log(&["VerticalPodAutoscaler API is not installed"])
        .await;
    gd_support::install_vpa_crds().await;
    steward
        .wait_log(&["watching VerticalPodAutoscalers for in-place resize advice"])
        .await;

    // Created before the Recreate one: once its advice is out, these were seen too.
    vpa(&env, "inplace", Some("InPlaceOrRecreate")).await;
    vpa(&env, "off", Some("Off")).await;
    vpa(&env, "recreate", Some("Recreate")).await;
    vpa(&env, "auto", None).await;

    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let listed = wait::list(
        &events,
        &ListParams::default(),
        T,
        "InPlaceResizeAvailable Events on the Recreate and Auto VPAs",
        |es| advice_events(es, "recreate") == 1 && advice_events(es, "auto") == 1,
    )
    .await
    .unwrap();
    let e = listed
        .iter()
        .find(|e| e.involved_object.name.as_deref() == Some("recreate"))
        .unwrap();
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(
        e.involved_object.api_version.as_deref(),
        Some("autoscaling.k8s.io/v1")
    );
    assert!(
        e.message
            .as_deref()
            .is_some_and(|m| m.contains("InPlaceOrRecreate") && m.contains("Deployment/recreate")),
        "{e:?}"
    );
    assert_eq!(advice_events(&listed, "inplace"), 0);
    assert_eq!(advice_events(&listed, "off"), 0);

    let m = steward.metrics().await;
    assert!(m.contains(&gauge_line(&env.ns, "recreate")), "{m}");
    assert!(m.contains(&gauge_line(&env.ns, "auto")), "{m}");
    assert!(!m.contains("vpa=\"inplace\""), "{m}");
    assert!(!m.contains("vpa=\"off\""), "{m}");

    // Switched to InPlaceOrRecreate: the gauge goes; a status write on the other one
    // (the recommender's, every minute) advises nothing again.
    vpas(&env)
        .patch(
            "recreate",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "updatePolicy": { "updateMode": "InPlaceOrRecreate" } } }),
            ),
        )
        .await
        .unwrap();
    vpas(&env)
        .patch(
            "auto",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "touched": "yes" } } })),
        )
        .await
        .unwrap();
    let gone = gauge_line(&env.ns, "recreate");
    wait::until(T, "gauge of the switched VPA removed", || async {
        Ok(!steward.metrics().await.contains(&gone))
    })
    .await
    .unwrap();
    // The label patch came after the mode patch: it has been seen too.
    assert!(
        steward
            .metrics()
            .await
            .contains(&gauge_line(&env.ns, "auto"))
    );
    let after = events.list(&ListParams::default()).await.unwrap().items;
    let auto = after
        .iter()
        .find(|e| {
            e.reason.as_deref() == Some("InPlaceResizeAvailable")
                && e.involved_object.name.as_deref() == Some("auto")
        })
        .unwrap();
    assert!(
        auto.series.is_none(),
        "advised once, not on every update: {auto:?}"
    );
}

/// SIGTERM, as the kubelet stops a replica.
fn sigterm(child: &tokio::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_replica_takes_the_lease_and_finishes_the_drain() {
    let env = testkit::env("gd-handover").await.unwrap();
    env.add_nodes("n", 2, |s| s).await.unwrap();
    let a_spec = StewardSpec::new(&env).await;
    a_spec
        .config(
            &env.client,
            "version: 1\ndefaults:\n  minWait: 1s\n  delay: 10s\n  maxWait: 60s\n",
        )
        .await;
    // Same namespace (Lease, ConfigMap, Secret), its own webhook port.
    let b_spec = StewardSpec {
        webhook_port: gd_support::free_port(),
        ..a_spec.clone()
    };
    let mut a = a_spec.start_with(&["--identity", "replica-a"]).await;
    a.wait_log(&["acquired leadership"]).await;
    let b = b_spec.start_with(&["--identity", "replica-b"]).await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &a_spec.sys_ns);
    let holder = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        holder(&leases.get("steward-graceful-drain").await.unwrap()),
        "replica-a"
    );

    let pods_ = web(&env, "web", 2, true, json!({})).await;
    let name = pods_[0].name_any();
    let first = pods(&env).evict(&name, &EvictParams::default()).await;
    assert!(
        matches!(&first, Err(kube::Error::Api(s)) if s.code == 429),
        "a targeted pod's first eviction is refused while it drains: {first:?}"
    );
    wait::object(&pods(&env), &name, T, "isolated by replica-a", |p: &Pod| {
        p.labels().get("steward.io/drain").map(String::as_str) == Some("isolated")
    })
    .await
    .unwrap();

    // Mid-drain (10 s delay), the leader is stopped as Kubernetes stops a pod.
    sigterm(&a.child);
    let status = tokio::time::timeout(T, a.child.wait())
        .await
        .expect("replica-a exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "replica-a exits cleanly: {status}");
    assert!(
        a.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("released leadership")),
        "replica-a gives the Lease up instead of letting it expire"
    );
    wait::object(
        &leases,
        "steward-graceful-drain",
        T,
        "replica-b holds the Lease",
        |l: &Lease| holder(l) == "replica-b",
    )
    .await
    .unwrap();
    b.wait_log(&["acquired leadership", "replica-b"]).await;
    wait::object(&pods(&env), &name, T, "evicted by replica-b", |p: &Pod| {
        p.metadata.deletion_timestamp.is_some()
    })
    .await
    .unwrap();
    b.wait_log(&["drained; evicted", &name]).await;
    assert!(
        !a.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("drained; evicted")),
        "the drain was finished by replica-b, not replica-a"
    );
    ready_pods(&env, "web", 2).await;
    wait::list(
        &pods(&env),
        &ListParams::default(),
        T,
        "nothing of steward's left on any pod",
        |ps| {
            ps.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .all(|p| {
                    !p.labels().keys().any(|k| k.starts_with("steward.io/"))
                        && !p.annotations().keys().any(|k| k.starts_with("steward.io/"))
                })
        },
    )
    .await
    .unwrap();
}

/// With no steward running, its webhook registered: evictions go through, as
/// `failurePolicy: Ignore` promises, without grace. Refused connections (the process
/// is gone) cost the API server nothing; a webhook that accepts and never answers
/// costs `timeoutSeconds` per eviction (printed, the trade-off of a short timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_steward_down_evictions_proceed_as_failure_policy_ignore_promises() {
    let env = gd_support::setup("gd-down").await;
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        "version: 1\ndefaults:\n  minWait: 30s\n  maxWait: 120s\n",
    )
    .await;
    let steward = spec.start().await;
    let ps = web(&env, "down", 3, true, json!({})).await;
    steward.kill().await;
    let name = format!("steward-gd-{}", env.ns);
    let hooks: Api<DynamicObject> = Api::all_with(
        env.client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        )),
    );
    assert!(
        hooks.get_opt(&name).await.unwrap().is_some(),
        "the webhook stays registered"
    );

    // Refused: nothing listens on the webhook's address.
    let t = std::time::Instant::now();
    assert_eq!(
        gd_support::evict_code(&pods(&env), &ps[0].name_any()).await,
        201
    );
    let refused = t.elapsed();

    // Hung: something accepts and never answers; the API server waits timeoutSeconds.
    let hang = tokio::net::TcpListener::bind(("127.0.0.1", spec.webhook_port))
        .await
        .unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = hang.accept().await {
            conns.push(c);
        }
    });
    let patch = json!([{ "op": "replace", "path": "/webhooks/0/timeoutSeconds", "value": 2 }]);
    hooks
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch).unwrap()),
        )
        .await
        .unwrap();
    let t = std::time::Instant::now();
    assert_eq!(
        gd_support::evict_code(&pods(&env), &ps[1].name_any()).await,
        201
    );
    let hung = t.elapsed();
    held.abort();
    eprintln!(
        "eviction with steward down: refused {:.0} ms, webhook hanging (timeoutSeconds 2) {:.0} ms",
        refused.as_secs_f64() * 1000.0,
        hung.as_secs_f64() * 1000.0
    );
    // 201, not 429: no drain held them (with steward up, minWait 30 s would have).
    for p in &ps[..2] {
        let uid = p.uid();
        wait::until(T, "the evicted pod is deleted", || async {
            Ok(pods(&env)
                .get_opt(&p.name_any())
                .await?
                .is_none_or(|q| q.uid() != uid || q.metadata.deletion_timestamp.is_some()))
        })
        .await
        .unwrap();
    }
    hooks.delete(&name, &Default::default()).await.unwrap();
}
