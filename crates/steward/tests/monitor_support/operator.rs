//! The real prometheus-operator beside the simulated cluster: its CRDs (from the same
//! Go module as the binary) and the operator for one namespace.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::core::{ApiResource, GroupVersionKind};
use testkit::wait;

use super::{Proc, free_port};

const T: Duration = Duration::from_secs(120);

fn bin_dir() -> PathBuf {
    testkit::bin_dir().unwrap()
}

/// Applies every CRD of the operator's module.
pub fn install_operator_crds() {
    let dir = bin_dir().join("../prometheus-operator-crds");
    let dir = dir.display().to_string();
    let args = ["apply", "--server-side", "--force-conflicts", "-f", &dir];
    super::kubectl("applying the operator CRDs", &args);
}

/// Waits until the CRDs the test uses are Established. (`kubectl wait` gives up at once
/// on a CRD whose status has no conditions yet.)
pub async fn wait_established(client: &kube::Client) {
    for name in [
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "prometheuses.monitoring.coreos.com",
    ] {
        wait::crd_established(client, name, T).await.unwrap();
    }
}

/// The real prometheus-operator for one namespace, talking to the simulated API server
/// with the admin client certificate (it has no kubeconfig flag).
pub fn operator(ns: &str) -> Proc {
    let cluster = testkit::cluster();
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let user = kc.auth_infos[0].auth_info.clone().unwrap();
    let ca = kc.clusters[0]
        .cluster
        .clone()
        .unwrap()
        .certificate_authority;
    let file = |v: Option<String>| v.unwrap();
    let log = std::env::temp_dir().join(format!("prometheus-operator-{ns}-{}.log", free_port()));
    let mut operator = Command::new(bin_dir().join("prometheus-operator"));
    operator
        .arg(format!("--apiserver={}", cluster.server()))
        .arg(format!(
            "--ca-file={}",
            file(ca)
        ))
        .arg(format!("--cert-file={}", file(user.client_certificate)))
        .arg(format!("--key-file={}", file(user.client_key)))
        .arg(format!("--namespaces={ns}"))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg("--prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0");
    Proc::spawn(&mut operator, log)
}

pub fn monitoring(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind),
        plural,
    )
}

pub fn gunzip(data: &[u8]) -> String {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gzip -dc failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The configuration the operator generated for Prometheus `name` (its Secret
/// `prometheus-<name>`, `prometheus.yaml.gz`), once `ready` holds for it.
pub async fn generated_config(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
    ready: impl Fn(&str) -> bool + Clone,
) -> anyhow::Result<String> {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), ns);
    let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let secret = format!("prometheus-{name}");
    let found = wait::until(T, what, || {
        let (secrets, last, secret, ready) =
            (secrets.clone(), last.clone(), secret.clone(), ready.clone());
        async move {
            let Some(s) = secrets.get_opt(&secret).await? else {
                return Ok(false);
            };
            let Some(gz) = s.data.as_ref().and_then(|d| d.get("prometheus.yaml.gz")) else {
                return Ok(false);
            };
            let text = gunzip(&gz.0);
            let ok = ready(&text);
            *last.lock().unwrap() = text;
            Ok(ok)
        }
    })
    .await;
    let text = last.lock().unwrap().clone();
    found
        .map(|()| text.clone())
        .map_err(|e| anyhow::anyhow!("{e:#}\nlast configuration:\n{text}"))
}
