//! The node agent and the `connections` drain probe end to end, on the real
//! control plane: `steward graceful-drain agent` runs as a local process for a kwok
//! node, and each simulated pod is backed by a real server process that sits in a
//! cgroup named as the kubelet names a pod's (cgroup v1 cgroupfs or cgroup v2
//! systemd layout) and in a network namespace of its own (`unshare -n`), so the
//! agent must find the pod's namespace: a decoy on the same port in the host's
//! namespace holds a different number of connections.
//!
//! Needs root (cgroups, namespaces), python3 for the server and clients, and
//! util-linux's `unshare`/`nsenter`.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod gd_agent_support;
mod gd_support;

use std::process::Stdio;
use std::time::Instant;

use gd_agent_support::{
    ANN_AGENT, ANN_AGENT_ID, Clients, Layout, PodProcess, decoy, netns_inode, node_annotations,
    setup, start_agent,
};
use gd_support::{StewardSpec, T, free_port, web};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, EvictParams, Patch, PatchParams};
use serde_json::{Value, json};
use testkit::wait;

/// One steward at a time in this file: every steward's controller watches drains
/// in all namespaces, so two running side by side would each act on the other
/// test's pods with their own configuration.
static ONE_STEWARD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The Istio and Linkerd probe presets against sidecar stats served by a stand-in.
#[path = "gd_agent_support/mesh.rs"]
mod mesh;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eviction_waits_until_the_pods_connections_close() {
    let _one = ONE_STEWARD.lock().await;
    let (env, node) = setup("gd-agent").await;
    let port = free_port();
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        &format!("version: 1\ndefaults:\n  minWait: 1s\n  maxWait: 120s\n  probe: {{ connections: {{ ports: [{port}] }} }}\n"),
    )
    .await;
    let steward = spec.start().await;
    let agent = start_agent(&env.client, &node, "agent-a").await;
    let pod = web(&env, "web", 1, true, json!({})).await.remove(0);
    let (name, uid) = (pod.name_any(), pod.uid().unwrap());
    let server = PodProcess::start(&uid, port, Layout::V1Cgroupfs);
    // Two connections on the same port in the host's namespace: an agent reading
    // the wrong table would count them.
    let _decoy = decoy(port, 2).await;
    agent.wait_count(&uid, port, 0).await;
    let clients = Clients::open(Some(server.pid()), port, 3).await;
    let answer = agent.wait_count(&uid, port, 3).await;
    assert_eq!(answer["pids"], json!([server.pid()]), "{answer}");
    assert_eq!(answer["hostNetwork"], json!(false), "{answer}");
    let pod_ns = netns_inode(&server.pid().to_string());
    assert_eq!(answer["netns"], json!([pod_ns]), "{answer}");
    assert_ne!(
        pod_ns,
        netns_inode("self"),
        "the pod server has a namespace of its own"
    );

    // The eviction is refused with 429 and the drain starts.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    gd_support::start_drain(&env, &name).await;
    // The controller asks the agent again and again and does not evict while the
    // three connections stay open.
    let ok = "steward_graceful_drain_agent_requests_total{result=\"ok\"} ";
    let before = agent.metric(ok).await;
    wait::until(T, "the controller probed 4 more times", || async {
        Ok(agent.metric(ok).await >= before + 4.0)
    })
    .await
    .unwrap();
    let p = pods.get(&name).await.unwrap();
    assert!(
        p.metadata.deletion_timestamp.is_none(),
        "evicted with connections open"
    );
    assert_eq!(
        p.labels().get("steward.io/drain").map(String::as_str),
        Some("isolated")
    );

    // Connections close: evicted soon after, as drained (not by the maximum wait).
    let closed = Instant::now();
    clients.close().await;
    wait::until(T, "pod evicted after its connections closed", || async {
        Ok(pods.get_opt(&name).await?.is_none_or(|p| {
            p.uid() != Some(uid.clone()) || p.metadata.deletion_timestamp.is_some()
        }))
    })
    .await
    .unwrap();
    eprintln!("connections closed -> evicted in {:?}", closed.elapsed());
    let log = steward
        .wait_log(&["drained; evicted", &name, "\"reason\":\"drained\""])
        .await;
    assert!(log.contains("drained"), "{log}");

    // SIGTERM: the agent removes its advertisement.
    drop(server);
    agent.stop().await;
    let ann = node_annotations(&env.client, &node).await;
    assert!(
        !ann.contains_key(ANN_AGENT) && !ann.contains_key(ANN_AGENT_ID),
        "left behind: {ann:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_finds_pods_by_cgroup_and_leaves_a_newer_agents_advertisement() {
    let (env, node) = setup("gd-agent-api").await;
    let agent = start_agent(&env.client, &node, "agent-old").await;
    // A pod UID the API server made, served in a cgroup v2 systemd-layout cgroup.
    let pod = web(&env, "api", 1, false, json!({})).await.remove(0);
    let uid = pod.uid().unwrap();
    let port = free_port();
    let server = PodProcess::start(&uid, port, Layout::V2Systemd);
    agent.wait_count(&uid, port, 0).await;
    let clients = Clients::open(Some(server.pid()), port, 2).await;
    let answer = agent.wait_count(&uid, port, 2).await;
    assert_eq!(answer["ports"], json!([port]), "{answer}");
    clients.close().await;
    agent.wait_count(&uid, port, 0).await;
    drop(server);

    // No process of the pod: 404; bad queries: 400 naming the parameter.
    let (status, body) = agent.count(&uid, &port.to_string()).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = agent.count("not-a-uid", "80").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("uid:"),
        "{body}"
    );
    let (status, body) = agent.count(&uid, "0").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("ports:"),
        "{body}"
    );

    // A newer agent took the Node over (a DaemonSet rolling update with surge):
    // the old one must not remove its advertisement when it stops.
    let patch = json!({ "metadata": { "annotations": { ANN_AGENT: "http://127.0.0.1:1", ANN_AGENT_ID: "agent-new" } } });
    Api::<Node>::all(env.client.clone())
        .patch_metadata(&node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let node_name = agent.node.clone();
    agent.stop().await;
    let ann = node_annotations(&env.client, &node_name).await;
    assert_eq!(
        ann.get(ANN_AGENT_ID).map(String::as_str),
        Some("agent-new"),
        "{ann:?}"
    );

    // Started again, it takes the Node back, and writes it again when removed.
    let agent = start_agent(&env.client, &node, "agent-next").await;
    let gone = json!({ "metadata": { "annotations": { ANN_AGENT: null, ANN_AGENT_ID: null } } });
    let nodes: Api<Node> = Api::all(env.client.clone());
    nodes
        .patch_metadata(&node, &PatchParams::default(), &Patch::Merge(&gone))
        .await
        .unwrap();
    wait::object(
        &nodes,
        &node,
        T,
        "the agent advertised again",
        |n: &Node| {
            n.annotations().get(ANN_AGENT) == Some(&agent.url)
                && n.annotations().get(ANN_AGENT_ID).map(String::as_str) == Some("agent-next")
        },
    )
    .await
    .unwrap();
    // Stopped, it leaves nothing.
    agent.stop().await;
    let ann = node_annotations(&env.client, &node).await;
    assert!(
        !ann.contains_key(ANN_AGENT) && !ann.contains_key(ANN_AGENT_ID),
        "left behind: {ann:?}"
    );
}

/// The DaemonSet manifest in deploy/ is accepted by the API server as written
/// (server-side dry run: schema, RBAC objects, downward API fields).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_manifest_passes_server_side_validation() {
    let env = testkit::env("gd-agent-manifest").await.unwrap();
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/graceful-drain-agent.yaml"
    ))
    .unwrap()
    .replace("namespace: steward", &format!("namespace: {}", env.ns));
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let out = gd_support::kubectl_apply_text(&kubeconfig, &manifest, &["--dry-run=server"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("daemonset.apps/steward-graceful-drain-agent created (server dry run)"),
        "{stdout}"
    );
}

/// An agent that finds no process of the pod (404) must not shorten the drain:
/// the probe reads as failed, and the pod is evicted at its maximum wait. The
/// probe comes from the pod's `steward.io/drain-ports` annotation alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_the_agent_cannot_see_waits_until_the_maximum() {
    let _one = ONE_STEWARD.lock().await;
    let (env, node) = setup("gd-agent-404").await;
    let spec = StewardSpec::new(&env).await;
    spec.config(&env.client, "version: 1\n").await;
    let steward = spec.start().await;
    let agent = start_agent(&env.client, &node, "agent-404").await;
    let pod = gd_support::web_with(
        &env,
        "unseen",
        1,
        json!({
            "vpa-managed": "true",
            "steward.io/drain-ports": "8080",
            "steward.io/drain-min-wait": "1s",
            "steward.io/drain-max-wait": "4s",
        }),
        json!({}),
    )
    .await
    .remove(0);
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    match pods.evict(&name, &EvictParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 429, "{s:?}"),
        other => panic!("eviction of a targeted pod: {other:?}"),
    }
    let log = steward
        .wait_log(&["drained; evicted", &name, "\"reason\":\"max_wait\""])
        .await;
    let line: Value = serde_json::from_str(&log).unwrap();
    let seconds = line["seconds"].as_f64().unwrap();
    assert!(seconds >= 4.0, "evicted {seconds}s after isolation: {log}");
    let not_found = "steward_graceful_drain_agent_requests_total{result=\"not_found\"} ";
    assert!(
        agent.metric(not_found).await >= 2.0,
        "the controller asked the agent"
    );
    // People are told once why the drain waits to the maximum.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(env.client.clone(), &env.ns);
    let warned: Vec<_> = events
        .list(&kube::api::ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("DrainProbeFailing")
                && e.involved_object.name.as_deref() == Some(name.as_str())
        })
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].series.is_none() && warned[0].count.unwrap_or(1) == 1,
        "published once: {warned:?}"
    );
    agent.stop().await;
}
