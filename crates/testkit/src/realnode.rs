//! Helpers for tests on real nodes ([`cluster_with_real_nodes`](crate::cluster_with_real_nodes)):
//! pod specs that run the test images there, `kubectl` against the cluster, and
//! commands inside a node's network namespace (where pod IPs and ClusterIPs lead
//! somewhere).

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use steward_sim::Cluster;
pub use steward_sim::{HTTP_IMAGE, PAUSE_IMAGE, REAL_NODE_LABEL, WORKER_IMAGE};

/// A pod spec (the `spec` of a Pod or a pod template) for one container on a real
/// node, Pod Security `restricted`: non-root 65534, no privilege escalation, every
/// capability dropped, the runtime's default seccomp profile.
pub fn pod_spec(image: &str, args: &[&str]) -> Value {
    json!({
        "nodeSelector": {REAL_NODE_LABEL: "true"},
        "securityContext": {
            "runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "containers": [{
            "name": "main",
            "image": image,
            "args": args,
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
        }]
    })
}

/// The test HTTP server's pod spec: port 8080, ready when `/healthz` answers 200
/// (which it stops doing at SIGTERM), `grace` seconds to terminate.
pub fn http_pod_spec(shutdown_delay_ms: u64, grace: i64) -> Value {
    let delay = shutdown_delay_ms.to_string();
    let mut spec = pod_spec(HTTP_IMAGE, &["--shutdown-delay-ms", &delay]);
    spec["terminationGracePeriodSeconds"] = json!(grace);
    spec["containers"][0]["ports"] = json!([{"containerPort": 8080}]);
    spec["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1});
    spec
}

/// Runs kubectl (from the control-plane bin dir) against `cluster`; its stdout, or
/// an error with its stderr.
pub fn kubectl(cluster: &Cluster, args: &[&str]) -> Result<String> {
    let kubectl = crate::bin_dir()?.join("kubectl");
    let out = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .output()
        .with_context(|| format!("running {}", kubectl.display()))?;
    if !out.status.success() {
        bail!(
            "kubectl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs a command inside a real node's network namespace; its stdout, or an error.
pub fn in_node(cluster: &Cluster, node: &str, cmd: &[&str]) -> Result<String> {
    let ns = cluster
        .real_node_netns(node)
        .with_context(|| format!("{node} is not a real node of this cluster"))?;
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(cmd)
        .output()
        .context("running ip netns exec")?;
    if !out.status.success() {
        bail!(
            "{} in {node} failed ({}): {}",
            cmd.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `GET url` with curl from inside a real node's network namespace (2 s timeout).
pub fn get_in_node(cluster: &Cluster, node: &str, url: &str) -> Result<String> {
    in_node(
        cluster,
        node,
        &["curl", "-sS", "--fail", "--max-time", "2", url],
    )
}
