//! The mesh presets of the HTTP probe (`istio`, `linkerd`): the sidecar's stats
//! served by a stand-in on loopback, in the exposition format each proxy documents.

use super::*;

/// Serves the file `argv[2]` at any path (as a sidecar serves its stats); prints
/// "hit" per request.
const STATS_SERVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open(sys.argv[2], "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print("hit", flush=True)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// Envoy's `/stats/prometheus` with `inbound` active connections on the inbound
/// listener (and busy listeners that must not count: the stats scrape, outbound).
fn envoy_stats(inbound: u32) -> String {
    format!(
        "# TYPE envoy_listener_downstream_cx_active gauge\n\
         envoy_listener_downstream_cx_active{{listener_address=\"0.0.0.0_15006\"}} {inbound}\n\
         envoy_listener_downstream_cx_active{{listener_address=\"0.0.0.0_15090\"}} 1\n\
         envoy_listener_downstream_cx_active{{listener_address=\"0.0.0.0_15001\"}} 4\n\
         # TYPE envoy_listener_downstream_cx_total counter\n\
         envoy_listener_downstream_cx_total{{listener_address=\"0.0.0.0_15006\"}} 812\n\
         # TYPE envoy_server_total_connections gauge\n\
         envoy_server_total_connections{{}} 6\n"
    )
}

/// A Linkerd proxy's `:4191/metrics` with `inbound` client connections open (and
/// connections that must not count: the proxy's to the app, outbound).
fn linkerd_metrics(inbound: u32) -> String {
    format!(
        "# TYPE tcp_open_connections gauge\n\
         tcp_open_connections{{direction=\"inbound\",peer=\"src\",target_addr=\"10.0.0.5:8080\",tls=\"true\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"8080\"}} {inbound}\n\
         tcp_open_connections{{direction=\"inbound\",peer=\"dst\",target_addr=\"10.0.0.5:8080\",tls=\"no_identity\",no_tls_reason=\"loopback\"}} 2\n\
         tcp_open_connections{{direction=\"outbound\",peer=\"dst\",dst_service=\"db\",tls=\"true\"}} 4\n\
         # TYPE tcp_open_total counter\n\
         tcp_open_total{{direction=\"inbound\",peer=\"src\",tls=\"true\"}} 91\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn istio_preset_waits_for_the_sidecars_inbound_connections() {
    mesh_preset_waits(
        "gd-istio",
        "{ istio: {} }",
        "/stats/prometheus",
        envoy_stats,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linkerd_preset_waits_for_the_proxys_inbound_connections() {
    mesh_preset_waits("gd-linkerd", "{ linkerd: {} }", "/metrics", linkerd_metrics).await;
}

/// A pod drained with the mesh `preset`: not evicted while the sidecar's stats
/// (served at `path` by a stand-in) show 2 inbound connections, evicted once 0.
async fn mesh_preset_waits(prefix: &str, preset: &str, path: &str, stats_of: fn(u32) -> String) {
    let _one = ONE_STEWARD.lock().await;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncBufReadExt;

    let env = testkit::env(prefix).await.unwrap();
    env.add_nodes("n", 1, |s| s).await.unwrap();
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        &format!("version: 1\ndefaults:\n  minWait: 1s\n  maxWait: 120s\n  probe: {preset}\n"),
    )
    .await;
    let steward = spec.start().await;
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats");
    std::fs::write(&stats, stats_of(2)).unwrap();
    let port = free_port();
    let mut server = tokio::process::Command::new("python3")
        .args(["-c", STATS_SERVER, &port.to_string()])
        .arg(&stats)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok(Some(_)) = lines.next_line().await {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    // kwok pods have no real IP: the probe URL stands in for <pod IP>:<preset port>,
    // and keeps the preset's gauge.
    let url = format!("http://127.0.0.1:{port}{path}");
    let pod = gd_support::web_with(
        &env,
        "mesh",
        1,
        json!({ "vpa-managed": "true", "steward.io/drain-probe-url": url }),
        json!({}),
    )
    .await
    .remove(0);
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    gd_support::start_drain(&env, &name).await;
    let before = hits.load(Ordering::SeqCst);
    wait::until(
        T,
        "the controller read the sidecar's stats 4 more times",
        || async { Ok(hits.load(Ordering::SeqCst) >= before + 4) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; steward logs: {:?}", steward.logs.lock().unwrap()));
    let p = pods.get(&name).await.unwrap();
    assert!(
        p.metadata.deletion_timestamp.is_none(),
        "evicted with 2 inbound connections open"
    );
    // Inbound connections gone (other listeners still busy): drained.
    std::fs::write(&stats, stats_of(0)).unwrap();
    let uid = pod.uid();
    wait::until(
        T,
        "pod evicted after its inbound connections closed",
        || async {
            Ok(pods
                .get_opt(&name)
                .await?
                .is_none_or(|p| p.uid() != uid || p.metadata.deletion_timestamp.is_some()))
        },
    )
    .await
    .unwrap();
    steward
        .wait_log(&["drained; evicted", &name, "\"reason\":\"drained\""])
        .await;
}
