//! `steward graceful-drain` end to end on the real control plane: the real VPA
//! updater (built from its Go module) evicting pods that real local HTTP servers
//! back, a load generator that follows the Service's EndpointSlices as kube-proxy
//! does, and the `steward` binary as people run it.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod gd_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use gd_support::{StewardSpec, T, pods, ready_pods, setup, web};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testkit::TestEnv;
use testkit::traffic::{Backends, LoadGen};
use testkit::wait::{self, from_json};

/// Evictions the acceptance test waits for.
const EVICTIONS: usize = 3;

const PROBE_CONFIG: &str = "version: 1\ndefaults:\n  minWait: 3s\n  maxWait: 30s\n  probe: { port: 8080, gauge: inflight }\n";

async fn evict(env: &TestEnv, name: &str) -> u16 {
    gd_support::evict_code(&pods(env), name).await
}

/// Steady load on three targeted pods while the real VPA updater evicts until
/// `EVICTIONS` pods are gone; returns (ok, failed, sample errors).
async fn vpa_evictions_under_load(env: &TestEnv, with_steward: bool) -> (u64, u64, Vec<String>) {
    let spec = StewardSpec::new(env).await;
    let steward = if with_steward {
        spec.config(&env.client, PROBE_CONFIG).await;
        Some(spec.start().await)
    } else {
        None
    };
    let backends = Backends::start(env.client.clone(), &env.ns);
    let original = web(env, "web", 3, true, json!({})).await;
    wait::until(T, "a server for every pod", || async {
        Ok(original
            .iter()
            .all(|p| backends.addr(&p.name_any()).is_some()))
    })
    .await
    .unwrap();
    gd_support::install_vpa_crds().await;
    gd_support::vpa(env, "web").await;
    let load = LoadGen::start(env.client.clone(), &env.ns, "web", backends.clone(), 6);
    let ok = load.counts.ok.clone();
    wait::until(T, "load flowing", || async {
        Ok(ok.load(Ordering::SeqCst) > 30)
    })
    .await
    .unwrap();
    let updater = gd_support::vpa_updater(&env.ns);
    wait::until(
        Duration::from_secs(180),
        &format!("{EVICTIONS} pods evicted by the VPA updater"),
        || async { Ok(backends.deleted_count() >= EVICTIONS) },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; steward logs: {:?}",
            steward.as_ref().map(|s| s.logs.lock().unwrap().clone())
        )
    });
    drop(updater);
    let result = load.finish().await;
    if let Some(s) = &steward {
        let m = s.metrics().await;
        assert!(
            m.contains("steward_graceful_drain_outcomes_total{outcome=\"drained\"}"),
            "{m}"
        );
        assert!(
            m.contains(
                "steward_graceful_drain_webhook_requests_total{decision=\"deny_start_drain\"}"
            ),
            "{m}"
        );
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vpa_updater_evictions_lose_no_request_with_steward() {
    let env = setup("gd-accept").await;
    let (ok, failed, errors) = vpa_evictions_under_load(&env, true).await;
    eprintln!("with steward: {ok} ok, {failed} failed");
    assert!(ok > 100, "too little load to prove anything: {ok}");
    assert_eq!(failed, 0, "requests failed during drains: {errors:?}");
    // Every drained pod got its Events.
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().filter(|r| *r == "DrainStarted").count() >= EVICTIONS,
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "Drained"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vpa_updater_evictions_lose_requests_without_steward() {
    let env = setup("gd-control").await;
    let (ok, failed, _) = vpa_evictions_under_load(&env, false).await;
    eprintln!("without steward: {ok} ok, {failed} failed");
    assert!(
        failed > 0,
        "the same run without steward must show failed requests (else the acceptance test proves nothing)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_targeted_pods_pass_through_untouched() {
    let env = setup("gd-pass").await;
    let spec = StewardSpec::new(&env).await;
    spec.config(&env.client, PROBE_CONFIG).await;
    let steward = spec.start().await;
    let plain = web(&env, "plain", 1, false, json!({})).await;
    let name = plain[0].name_any();
    assert_eq!(
        evict(&env, &name).await,
        201,
        "a non-targeted pod is evicted at once"
    );
    let p = pods(&env).get(&name).await.unwrap();
    assert!(p.metadata.deletion_timestamp.is_some());
    assert!(
        !p.labels()
            .keys()
            .chain(p.annotations().keys())
            .any(|k| k.starts_with("steward.io/")),
        "{p:?}"
    );
    // A targeted pod's server-side dry run passes through too, and changes nothing.
    let targeted = web(&env, "web", 1, true, json!({})).await;
    let t = targeted[0].name_any();
    let dry = EvictParams {
        post_options: PostParams {
            dry_run: true,
            field_manager: None,
        },
        ..EvictParams::default()
    };
    pods(&env).evict(&t, &dry).await.unwrap();
    let p = pods(&env).get(&t).await.unwrap();
    assert!(
        p.metadata.deletion_timestamp.is_none() && !p.labels().contains_key("steward.io/drain"),
        "{p:?}"
    );
    let m = steward.metrics().await;
    assert!(m.contains("decision=\"allow_not_targeted\""), "{m}");
    assert!(m.contains("decision=\"allow_dry_run\""), "{m}");
}

/// Waits until no pod of the namespace carries anything of steward's.
async fn nothing_left_behind(env: &TestEnv) {
    wait::list(
        &pods(env),
        &ListParams::default(),
        T,
        "no steward.io/drain label or annotation left",
        |ps| {
            ps.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .all(|p| {
                    !p.labels().contains_key("steward.io/drain")
                        && !p.annotations().keys().any(|k| {
                            k.starts_with("steward.io/drain-")
                                && k != "steward.io/drain-probe-url"
                                && k != "steward.io/drain-not-before"
                        })
                        && p.finalizers().is_empty()
                })
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eviction_blocked_by_a_pdb_is_restored_to_service() {
    let env = setup("gd-pdb").await;
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        "version: 1\ndefaults:\n  minWait: 1s\n  delay: 6s\n  maxWait: 30s\n",
    )
    .await;
    let _steward = spec.start().await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), &env.ns);
    // The budget selects a label isolation leaves alone, so it still covers the isolated
    // pod; an absolute minAvailable counts it without needing its (released) owner.
    let pods_ = web(&env, "web", 2, true, json!({ "budget": "web" })).await;
    let pdb: PodDisruptionBudget = from_json(
        json!({ "metadata": { "name": "web" }, "spec": { "minAvailable": 2, "selector": { "matchLabels": { "budget": "web" } } } }),
    );
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    wait::object(
        &pdbs,
        "web",
        T,
        "PDB observed",
        |p: &PodDisruptionBudget| {
            p.status
                .as_ref()
                .is_some_and(|s| s.observed_generation.is_some())
        },
    )
    .await
    .unwrap();

    // 1. The budget allows no disruption: the drain waits, queued, with the pod in service.
    let first = pods_[0].name_any();
    assert_eq!(evict(&env, &first).await, 429);
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    wait::list(
        &events,
        &ListParams::default().fields(&format!("involvedObject.name={first}")),
        T,
        "DrainQueued Event naming the budget",
        |es| {
            es.iter().any(|e| {
                e.reason.as_deref() == Some("DrainQueued")
                    && e.message
                        .as_deref()
                        .unwrap_or_default()
                        .contains("PodDisruptionBudget web")
            })
        },
    )
    .await
    .unwrap();
    let queued = pods(&env).get(&first).await.unwrap();
    assert_eq!(
        queued.labels().get("app").map(String::as_str),
        Some("web"),
        "still in service"
    );
    assert_eq!(
        queued.labels().get("steward.io/drain").map(String::as_str),
        Some("requested"),
        "queued, not isolated"
    );
    // Still refused while queued, as a PDB refusal would be.
    assert_eq!(evict(&env, &first).await, 429);

    // 2. The budget allows one: the queued pod is isolated without another eviction;
    // then the budget refuses the final eviction: the labels come back.
    pdbs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "minAvailable": 1 } })),
    )
    .await
    .unwrap();
    let second = first.clone();
    wait::object(&pods(&env), &second, T, "isolated", |p: &Pod| {
        p.labels().get("steward.io/drain").map(String::as_str) == Some("isolated")
    })
    .await
    .unwrap();
    pdbs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "minAvailable": 3 } })),
    )
    .await
    .unwrap();
    wait::object(
        &pdbs,
        "web",
        T,
        "budget allows none",
        |p: &PodDisruptionBudget| {
            p.status.as_ref().is_some_and(|s| {
                s.disruptions_allowed == 0 && s.observed_generation == p.metadata.generation
            })
        },
    )
    .await
    .unwrap();
    let back = wait::object(&pods(&env), &second, T, "restored to service", |p: &Pod| {
        !p.labels().contains_key("steward.io/drain")
            && p.labels().get("app").map(String::as_str) == Some("web")
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; pod {:?}",
            futures::executor::block_on(pods(&env).get_opt(&second))
        )
    });
    assert!(
        back.metadata.deletion_timestamp.is_none(),
        "a refused eviction must not delete the pod"
    );
    assert!(
        back.annotations()
            .contains_key("steward.io/drain-not-before"),
        "back-off recorded"
    );
    wait::list(
        &events,
        &ListParams::default().fields(&format!("involvedObject.name={second}")),
        T,
        "Restored Event",
        |es| es.iter().any(|e| e.reason.as_deref() == Some("Restored")),
    )
    .await
    .unwrap();
    nothing_left_behind(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_mid_drain_still_evicts_and_leaves_nothing_behind() {
    let env = setup("gd-restart").await;
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        "version: 1\ndefaults:\n  minWait: 1s\n  delay: 8s\n  maxWait: 30s\n",
    )
    .await;
    let first = spec.start().await;
    let pods_ = web(&env, "web", 2, true, json!({})).await;
    let name = pods_[0].name_any();
    assert_eq!(
        evict(&env, &name).await,
        429,
        "a targeted pod's first eviction is refused while it drains"
    );
    wait::object(&pods(&env), &name, T, "isolated", |p: &Pod| {
        p.labels().get("steward.io/drain").map(String::as_str) == Some("isolated")
    })
    .await
    .unwrap();
    first.kill().await;
    // A new process (as a Deployment restarts it, or the second replica takes over).
    let second = spec.start().await;
    wait::object(
        &pods(&env),
        &name,
        T,
        "evicted after the restart",
        |p: &Pod| p.metadata.deletion_timestamp.is_some(),
    )
    .await
    .unwrap();
    second.wait_log(&["drained; evicted", &name]).await;
    ready_pods(&env, "web", 2).await;
    nothing_left_behind(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_config_is_rejected_and_the_last_good_one_stays() {
    let env = setup("gd-config").await;
    let spec = StewardSpec::new(&env).await;
    // Last good: only pods annotated team=blue are targeted.
    spec.config(&env.client, "version: 1\nselector:\n  annotations: { team: blue }\ndefaults:\n  minWait: 1s\n  delay: 1s\n").await;
    let steward = spec.start().await;
    steward.wait_log(&["configuration loaded"]).await;
    spec.config(
        &env.client,
        "version: 2\nselector:\n  annotations: { vpa-managed: \"true\" }\n",
    )
    .await;
    let line = steward
        .wait_log(&["configuration rejected", "\"field\":\"version\""])
        .await;
    assert!(line.contains("unsupported version 2"), "{line}");
    let events: Api<Event> = Api::namespaced(env.client.clone(), &spec.sys_ns);
    wait::list(
        &events,
        &ListParams::default().fields("involvedObject.name=steward-graceful-drain"),
        T,
        "InvalidConfig Event naming the field",
        |es| {
            es.iter().any(|e| {
                e.reason.as_deref() == Some("InvalidConfig")
                    && e.message.as_deref().is_some_and(|m| m.contains("version"))
            })
        },
    )
    .await
    .unwrap();
    let m = steward.metrics().await;
    assert!(
        m.contains("steward_graceful_drain_config_reloads_total{result=\"error\"} 1"),
        "{m}"
    );
    // vpa-managed pods are not targeted (the rejected config would have); team=blue pods are.
    let vpa = web(&env, "web", 1, true, json!({})).await;
    assert_eq!(evict(&env, &vpa[0].name_any()).await, 201);
    // The webhook said so (not the API server failing open past its timeout).
    let m = steward.metrics().await;
    assert!(m.contains("decision=\"allow_not_targeted\"} 1"), "{m}");
    let blue = gd_support::web_with(&env, "blue", 1, json!({ "team": "blue" }), json!({})).await;
    let b = blue[0].name_any();
    assert_eq!(
        evict(&env, &b).await,
        429,
        "the last good config targets team=blue"
    );
    wait::object(
        &pods(&env),
        &b,
        T,
        "blue pod drained and evicted",
        |p: &Pod| p.metadata.deletion_timestamp.is_some(),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_certificate_rotates_without_a_gap() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let env = setup("gd-certs").await;
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        "version: 1\ndefaults:\n  minWait: 1s\n  delay: 30s\n  maxWait: 60s\n",
    )
    .await;
    // Rotated when a third is left: every 6 s or so.
    let steward = spec.start_with(&["--cert-validity", "9s"]).await;
    let hooks: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    let name = format!("steward-gd-{}", env.ns);
    let bundle = |h: &ValidatingWebhookConfiguration| {
        h.webhooks
            .as_ref()
            .and_then(|w| w[0].client_config.ca_bundle.clone())
            .map(|b| b.0)
            .unwrap_or_default()
    };
    let first = bundle(&hooks.get(&name).await.unwrap());
    let rotated = wait::object(&hooks, &name, T, "caBundle rotated", |h| {
        let b = bundle(h);
        !b.is_empty() && b != first
    })
    .await
    .unwrap();
    let text = String::from_utf8(bundle(&rotated)).unwrap();
    assert_eq!(
        text.matches("BEGIN CERTIFICATE").count(),
        2,
        "new and previous CA are both trusted: {text}"
    );
    steward
        .wait_log(&["serving a rotated webhook certificate"])
        .await;
    // failurePolicy Ignore would turn a TLS failure into a silent 201: a 429 proves the
    // API server reached steward over the rotated certificate.
    let pods_ = web(&env, "web", 2, true, json!({})).await;
    for p in &pods_ {
        assert_eq!(
            evict(&env, &p.name_any()).await,
            429,
            "webhook reached after rotation"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn doctor_lists_recreate_vpas_that_could_resize_in_place() {
    let env = setup("gd-doctor").await;
    gd_support::install_vpa_crds().await;
    gd_support::vpa(&env, "web").await; // Recreate
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let (ok, out, err) = gd_support::steward(
        &["graceful-drain", "doctor", "--json", "-n", &env.ns],
        &kubeconfig,
    )
    .await;
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r["in_place_resize"], true,
        "Kubernetes 1.34 serves pods/resize: {out}"
    );
    assert_eq!(
        r["candidates"],
        json!([{ "vpa": format!("{}/web", env.ns), "target": "Deployment/web", "mode": "Recreate" }]),
        "{out}"
    );
    // `--json` is the deprecated spelling of `-o json`; YAML is the same report.
    for format in ["json", "yaml"] {
        let (ok, out, err) = gd_support::steward(
            &["graceful-drain", "doctor", "-o", format, "-n", &env.ns],
            &kubeconfig,
        )
        .await;
        assert!(ok, "{err}");
        let again: serde_json::Value = serde_saphyr::from_str(&out).unwrap();
        assert_eq!(again, r, "-o {format}: {out}");
    }
    // Switched to InPlaceOrRecreate: nothing left to report.
    let out = tokio::process::Command::new(gd_support::bin_dir().join("kubectl"))
        .args([
            "--kubeconfig",
            &kubeconfig,
            "-n",
            &env.ns,
            "patch",
            "vpa",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"updatePolicy":{"updateMode":"InPlaceOrRecreate"}}}"#,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, out, _) =
        gd_support::steward(&["graceful-drain", "doctor", "-n", &env.ns], &kubeconfig).await;
    assert!(
        ok && out.contains("no VerticalPodAutoscaler in Recreate mode"),
        "{out}"
    );
}
