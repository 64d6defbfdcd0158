//! Fixtures for the chart tests: the real helm binary on charts/steward, rendered
//! objects as JSON, ServiceAccount kubeconfigs from the TokenRequest API, the API
//! server's audit log, and a local address the API server can reach a webhook at.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// charts/steward.
pub fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/steward")
}

/// A program of the control plane's bin dir (helm, kubectl, promtool).
pub fn tool(name: &str) -> PathBuf {
    testkit::bin_dir().unwrap().join(name)
}

/// Runs helm; (success, stdout, stderr).
pub fn helm(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(tool("helm"))
        .args(args)
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("steward-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("steward-helm-config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("steward-helm-data"),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every document of a multi-document YAML text, as JSON.
pub fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap_or_else(|e| panic!("not YAML: {e}\n{yaml}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// `helm template` of the chart with `--set` values (and the Prometheus Operator
/// API when `operator`); panics with helm's message on failure.
pub fn render(sets: &[&str], operator: bool) -> Vec<Value> {
    let (ok, out, err) = render_raw(sets, operator);
    assert!(ok, "helm template {sets:?}: {err}");
    docs(&out)
}

/// `helm template`, whatever happens.
pub fn render_raw(sets: &[&str], operator: bool) -> (bool, String, String) {
    let chart = chart().display().to_string();
    let mut args = vec![
        "template",
        "rel",
        &chart,
        "--namespace",
        "steward",
        "--kube-version",
        "1.34.4",
    ];
    if operator {
        args.extend(["--api-versions", "monitoring.coreos.com/v1"]);
    }
    for s in sets {
        args.extend(["--set", s]);
    }
    helm(&args)
}

/// `Kind/name` of every object.
pub fn kinds(objs: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = objs
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

/// The object of `kind` whose name ends with `suffix`.
pub fn find<'a>(objs: &'a [Value], kind: &str, suffix: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {kind} *{suffix} in {:?}", kinds(objs)))
}

/// The pod spec of a Deployment, DaemonSet, Job or CronJob.
pub fn pod_spec(o: &Value) -> &Value {
    match o["kind"].as_str().unwrap() {
        "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &o["spec"]["template"]["spec"],
    }
}

/// The container args of a workload, as strings.
pub fn args(o: &Value) -> Vec<String> {
    pod_spec(o)["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// `args` with the flag `--name=...` replaced by `--name=value` (it must be there).
pub fn replace_flag(args: &[String], name: &str, value: &str) -> Vec<String> {
    let prefix = format!("{name}=");
    assert!(
        args.iter().any(|a| a.starts_with(&prefix)),
        "{name} is not among {args:?}"
    );
    args.iter()
        .map(|a| {
            if a.starts_with(&prefix) {
                format!("{prefix}{value}")
            } else {
                a.clone()
            }
        })
        .collect()
}

/// A kubeconfig holding only a token the TokenRequest API issued for ServiceAccount
/// `ns/sa` (no admin credentials), for the cluster of this test binary.
pub async fn sa_kubeconfig(client: &kube::Client, ns: &str, sa: &str, dir: &Path) -> PathBuf {
    sa_kubeconfig_of(testkit::cluster().kubeconfig(), client, ns, sa, dir).await
}

/// [`sa_kubeconfig`] for the cluster whose admin kubeconfig is `admin` (its
/// server and CA are copied, never its credentials).
pub async fn sa_kubeconfig_of(
    admin: &Path,
    client: &kube::Client,
    ns: &str,
    sa: &str,
    dir: &Path,
) -> PathBuf {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let req: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": { "audiences": [], "expirationSeconds": 3600 }
    }))
    .unwrap();
    let tr: TokenRequest = api
        .create_subresource("token", sa, &PostParams::default(), &req)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {ns}/{sa}: {e}"));
    let token = tr.status.unwrap().token;
    let admin = kube::config::Kubeconfig::read_from(admin).unwrap();
    let cluster = admin.clusters[0].cluster.clone().unwrap();
    let ca = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(d), _) => json!({ "certificate-authority-data": d }),
        (None, Some(f)) => json!({ "certificate-authority": f }),
        _ => panic!("the admin kubeconfig names no CA"),
    };
    let mut c = json!({ "server": cluster.server.unwrap() });
    c.as_object_mut()
        .unwrap()
        .extend(ca.as_object().unwrap().clone());
    let cfg = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "sim", "cluster": c }],
        "users": [{ "name": sa, "user": { "token": token } }],
        "contexts": [{ "name": sa, "context": { "cluster": "sim", "user": sa, "namespace": ns } }],
        "current-context": sa,
    });
    let path = dir.join(format!("{sa}.kubeconfig"));
    std::fs::write(&path, serde_saphyr::to_string(&cfg).unwrap()).unwrap();
    path
}

/// The audit events of user `system:serviceaccount:<ns>:<sa>`.
pub fn audit_events(ns: &str, sa: &str) -> Vec<Value> {
    let user = format!("system:serviceaccount:{ns}:{sa}");
    let text = std::fs::read_to_string(testkit::audit_log().unwrap()).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["user"]["username"] == user.as_str())
        .collect()
}

/// `verb resource[/subresource] [ns/]name -> code` of an audit event.
pub fn describe(e: &Value) -> String {
    let r = &e["objectRef"];
    let res = match r["subresource"].as_str() {
        Some(s) => format!("{}/{s}", r["resource"].as_str().unwrap_or("?")),
        None => r["resource"]
            .as_str()
            .unwrap_or(e["requestURI"].as_str().unwrap_or("?"))
            .to_string(),
    };
    format!(
        "{} {}.{} {}/{} -> {}",
        e["verb"].as_str().unwrap_or("?"),
        res,
        r["apiGroup"].as_str().unwrap_or(""),
        r["namespace"].as_str().unwrap_or(""),
        r["name"].as_str().unwrap_or(""),
        e["responseStatus"]["code"]
    )
}

/// A local IPv4 address the API server can call a webhook at, on a veth whose
/// other end sits in a network namespace held by a child process: the API
/// server refuses loopback endpoints, and both ends (and the address) vanish with
/// the child, even if this test crashes.
pub struct LocalAddr {
    pub ip: String,
    holder: std::process::Child,
}

impl Drop for LocalAddr {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

impl LocalAddr {
    pub fn new() -> Self {
        let holder = std::process::Command::new("unshare")
            .args(["-n", "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = holder.id();
        let n = pid % 250 + 1;
        let (host, peer, ip) = (
            format!("stc{pid}"),
            format!("stp{pid}"),
            format!("10.254.{n}.1"),
        );
        let run = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // The holder's namespace exists once /proc/<pid>/ns/net differs from ours.
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .ok()
            .as_ref()
            == Some(&ours)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare -n did not start"
            );
            std::thread::yield_now();
        }
        run(&[
            "link",
            "add",
            &host,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &pid.to_string(),
        ]);
        run(&["addr", "add", &format!("{ip}/32"), "dev", &host]);
        run(&["link", "set", &host, "up"]);
        Self { ip, holder }
    }
}
