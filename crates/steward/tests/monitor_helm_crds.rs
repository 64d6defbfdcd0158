//! Helm mode upgrades a chart's CRDs before the chart, as kube-prometheus-stack's
//! users do by hand: a chart repository served on loopback holds two versions of a
//! chart; 2.0.0's CRD adds a served storage version `v2` and is larger than the
//! 256 KiB annotation limit that client-side `kubectl apply` runs into (the
//! Prometheus Operator's CRDs are), and its templates create an object of `v2`. helm
//! itself never upgrades CRDs (`crds/` is read on first install only), so the upgrade
//! only succeeds when steward applied the new CRD server-side first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod monitor_support;

use std::path::Path;
use std::time::Duration;

use auto_monitor::crd::MonitoringStack;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PatchParams;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch};
use kube::{Client, ResourceExt};
use monitor_support::{controller, create_stack, free_port};
use serde_json::json;

const T: Duration = Duration::from_secs(120);
const CHART: &str = "crdtest/steward-test-stack";

/// The CRD of one chart version: `v1` only, or `v1` and a storage `v2` whose schema
/// carries 2 000 documented fields, as large as the operator's CRDs.
fn crd(group: &str, v2: bool) -> serde_json::Value {
    let schema = |extra: bool| {
        let mut spec = json!({ "type": "object", "properties": { "size": { "type": "integer" } } });
        if extra {
            let props = spec["properties"].as_object_mut().unwrap();
            props.insert("color".into(), json!({ "type": "string" }));
            for i in 0..2000 {
                props.insert(
                    format!("field{i:04}"),
                    json!({ "type": "string", "description": format!("Field {i} of a large CRD. {}", "Long text as the operator's CRDs have. ".repeat(5)) }),
                );
            }
        }
        json!({ "openAPIV3Schema": { "type": "object", "properties": { "spec": spec } } })
    };
    let mut versions =
        vec![json!({ "name": "v1", "served": true, "storage": !v2, "schema": schema(false) })];
    if v2 {
        versions
            .push(json!({ "name": "v2", "served": true, "storage": true, "schema": schema(true) }));
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("gadgets.{group}") },
        "spec": { "group": group, "scope": "Namespaced",
                  "names": { "kind": "Gadget", "plural": "gadgets", "singular": "gadget" },
                  "versions": versions },
    })
}

/// The test chart at `version`, its CRD and a Gadget of the CRD's newest version.
fn write_chart(dir: &Path, group: &str, version: &str, v2: bool) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../auto-monitor/tests/charts/steward-test-stack");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("crds")).unwrap();
    for f in [
        "values.yaml",
        "templates/prometheus.yaml",
        "templates/values.yaml",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("Chart.yaml"),
        format!("apiVersion: v2\nname: steward-test-stack\nversion: {version}\n"),
    )
    .unwrap();
    let crd = serde_json::to_string(&crd(group, v2)).unwrap();
    std::fs::write(dir.join("crds/gadgets.yaml"), crd).unwrap();
    let (api, spec) = if v2 {
        ("v2", "{size: 2, color: blue}")
    } else {
        ("v1", "{size: 1}")
    };
    std::fs::write(
        dir.join("templates/gadget.yaml"),
        format!("apiVersion: {group}/{api}\nkind: Gadget\nmetadata:\n  name: {{{{ .Release.Name }}}}-gadget\nspec: {spec}\n"),
    )
    .unwrap();
}

/// A static file server on loopback: the chart repository (index.yaml and packages).
async fn serve(dir: std::path::PathBuf) -> u16 {
    use axum::extract::Path as P;
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/{*file}",
        axum::routing::get(move |P(file): P<String>| {
            let dir = dir.clone();
            async move {
                if file.contains("..") {
                    return Err(StatusCode::BAD_REQUEST);
                }
                tokio::fs::read(dir.join(file))
                    .await
                    .map_err(|_| StatusCode::NOT_FOUND)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// Runs helm through `shim` (its own config, cache and data dirs); fails the test
/// unless it succeeds.
fn helm(shim: &Path, args: &[&str]) -> String {
    let out = monitor_support::run(shim, "helm", args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn gadgets(client: &Client, ns: &str, group: &str, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, "Gadget");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

async fn settled(api: &Api<MonitoringStack>, what: &str, phase: &str) -> MonitoringStack {
    testkit::wait::object(api, "mon", T, what, |m| {
        let s = m.status.as_ref();
        s.is_some_and(|s| {
            s.phase.as_deref() == Some(phase) && s.observed_generation == m.metadata.generation
        })
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_mode_applies_a_newer_and_larger_crd_server_side_before_the_upgrade() {
    let env = testkit::env("moncrd").await.unwrap();
    env.add_nodes("n", 1, |s| s).await.unwrap();
    // A group of this run only: the CRD is cluster-scoped and other runs may share
    // the cluster.
    let group = format!("{}.crdtest.steward.io", env.ns);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let real = testkit::bin_dir().unwrap().join("helm");
    let shim = dir.path().join("helm");
    let home = dir.path().display();
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\nexport HELM_CONFIG_HOME={home}/config HELM_CACHE_HOME={home}/cache HELM_DATA_HOME={home}/data\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (version, v2) in [("1.0.0", false), ("2.0.0", true)] {
        let src = dir.path().join(format!("chart-{version}"));
        write_chart(&src, &group, version, v2);
        helm(
            &shim,
            &[
                "package",
                &src.display().to_string(),
                "-d",
                &repo.display().to_string(),
            ],
        );
    }
    let port = serve(repo.clone()).await;
    let url = format!("http://127.0.0.1:{port}");
    helm(
        &shim,
        &["repo", "index", &repo.display().to_string(), "--url", &url],
    );
    helm(&shim, &["repo", "add", "crdtest", &url]);

    // What steward avoids: the new CRD is too large for client-side apply.
    let v2_file = dir.path().join("chart-2.0.0/crds/gadgets.yaml");
    let kubectl = testkit::bin_dir().unwrap().join("kubectl");
    let out = std::process::Command::new(&kubectl)
        .args([
            "apply",
            "--dry-run=server",
            "-f",
            &v2_file.display().to_string(),
        ])
        .env("KUBECONFIG", testkit::cluster().kubeconfig())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Too long"),
        "client-side apply: {err}"
    );

    let shim_arg = shim.display().to_string();
    let _ctl = controller(
        &env.ns,
        "http://127.0.0.1:1",
        free_port(),
        &["--helm", &shim_arg, "--helm-chart", CHART],
    )
    .unwrap();
    let api = create_stack(
        &env,
        json!({
            "installMode": "helm", "profile": "kind", "components": ["prometheus"],
            "helm": { "chart": CHART, "version": "1.0.0", "timeout": "60s" },
        }),
    )
    .await;
    settled(&api, "release 1.0.0 Installed", "Installed").await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let name = format!("gadgets.{group}");
    let versions = |c: &CustomResourceDefinition| -> Vec<String> {
        c.spec.versions.iter().map(|v| v.name.clone()).collect()
    };
    assert_eq!(versions(&crds.get(&name).await.unwrap()), ["v1"]);
    gadgets(&env.client, &env.ns, &group, "v1")
        .get("mon-gadget")
        .await
        .unwrap();

    api.patch(
        "mon",
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": { "helm": { "version": "2.0.0" } } })),
    )
    .await
    .unwrap();
    let ms = settled(&api, "release 2.0.0 Installed", "Installed").await;
    let crd = crds.get(&name).await.unwrap();
    assert_eq!(versions(&crd), ["v1", "v2"]);
    let size = serde_json::to_vec(&crd).unwrap().len();
    assert!(
        size > 262_144,
        "the CRD is {size} bytes, under the annotation limit"
    );
    assert!(
        !crd.annotations()
            .contains_key("kubectl.kubernetes.io/last-applied-configuration"),
        "applied client-side"
    );
    assert!(
        crd.managed_fields()
            .iter()
            .any(|f| f.manager.as_deref() == Some("steward-monitor")
                && f.operation.as_deref() == Some("Apply")),
        "{:?}",
        crd.managed_fields()
    );
    let gadget = gadgets(&env.client, &env.ns, &group, "v2")
        .get("mon-gadget")
        .await
        .unwrap();
    assert_eq!(gadget.data["spec"]["color"], "blue", "{gadget:?}");
    let history: serde_json::Value = serde_json::from_str(&helm(
        &shim,
        &["history", "mon", "--namespace", &env.ns, "--output", "json"],
    ))
    .unwrap();
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["chart"].as_str(), last["status"].as_str()),
        (Some("steward-test-stack-2.0.0"), Some("deployed")),
        "{history}"
    );
    let available = ms.status.unwrap().conditions;
    assert!(
        available
            .iter()
            .any(|c| c.type_ == "Available" && c.message.contains(&name)),
        "{available:?}"
    );

    // Deleting the stack uninstalls the release; the CRD stays (as helm keeps it),
    // so this test removes it.
    api.delete("mon", &DeleteParams::default()).await.unwrap();
    testkit::wait::gone(
        &gadgets(&env.client, &env.ns, &group, "v2"),
        "mon-gadget",
        T,
    )
    .await
    .unwrap();
    crds.delete(&name, &DeleteParams::default()).await.unwrap();
}
