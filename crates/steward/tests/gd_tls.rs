//! `steward graceful-drain run --tls-source secret`: the webhook certificate comes
//! from a Secret someone else issues (what a cert-manager `Certificate` writes), on
//! the real control plane, whose API server calls the webhook over that TLS.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod gd_support;

use std::collections::BTreeMap;
use std::time::Duration;

use gd_support::{StewardSpec, web};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use serde_json::json;

/// The issuer's field manager: the only writer the Secret may ever have.
const ISSUER: &str = "test-issuer";

/// Writes the Secret as cert-manager does (`tls.crt`, `tls.key`, `ca.crt`).
async fn issue(api: &Api<Secret>, entries: &[(&str, &str)]) {
    let data: BTreeMap<String, ByteString> = entries
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let s = Secret {
        metadata: ObjectMeta {
            name: Some("external-tls".into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    };
    api.patch(
        "external-tls",
        &PatchParams::apply(ISSUER).force(),
        &Patch::Apply(s),
    )
    .await
    .unwrap();
}

fn bundle() -> graceful_drain::certs::Bundle {
    graceful_drain::certs::generate(
        &["127.0.0.1".into(), "localhost".into()],
        Duration::from_secs(3600),
        None,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificate_from_an_issuer_secret_is_served_and_followed() {
    let env = testkit::env("gd-tls").await.unwrap();
    env.add_nodes("n", 1, |s| s).await.unwrap();
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        "version: 1\ndefaults:\n  minWait: 1s\n  delay: 60s\n  maxWait: 90s\n",
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &spec.sys_ns);
    let first = bundle();
    issue(
        &secrets,
        &[
            ("tls.crt", &first.cert),
            ("tls.key", &first.key),
            ("ca.crt", &first.ca),
        ],
    )
    .await;
    let steward = spec
        .start_with(&["--tls-source", "secret", "--tls-secret", "external-tls"])
        .await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let evict = |name: String| {
        let pods = pods.clone();
        async move { gd_support::evict_code(&pods, &name).await }
    };
    // failurePolicy Ignore would turn a TLS failure into a silent 201: a 429 proves
    // the API server reached steward over the issuer's certificate.
    let web = web(&env, "web", 3, true, json!({})).await;
    assert_eq!(evict(web[0].name_any()).await, 429, "first certificate");
    let hooks: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    let name = format!("steward-gd-{}", env.ns);
    let ca_bundle = |h: &ValidatingWebhookConfiguration| {
        h.webhooks
            .as_ref()
            .and_then(|w| w[0].client_config.ca_bundle.clone())
            .map(|b| String::from_utf8(b.0).unwrap())
            .unwrap_or_default()
    };
    assert_eq!(ca_bundle(&hooks.get(&name).await.unwrap()), first.ca);

    // The issuer renews with a new CA: both CAs are trusted, the new leaf is served.
    let second = bundle();
    issue(
        &secrets,
        &[
            ("tls.crt", &second.cert),
            ("tls.key", &second.key),
            ("ca.crt", &second.ca),
        ],
    )
    .await;
    steward
        .wait_log(&["serving a renewed webhook certificate from the Secret"])
        .await;
    let b = ca_bundle(&hooks.get(&name).await.unwrap());
    assert!(
        b.contains(&second.ca) && b.contains(&first.ca),
        "new and previous CA: {b}"
    );
    assert_eq!(evict(web[1].name_any()).await, 429, "renewed certificate");

    // A broken renewal keeps the last good certificate in service.
    issue(
        &secrets,
        &[
            ("tls.crt", "not a certificate"),
            ("tls.key", &second.key),
            ("ca.crt", &second.ca),
        ],
    )
    .await;
    steward
        .wait_log(&["the certificate Secret is not usable", "external-tls"])
        .await;
    assert_eq!(evict(web[2].name_any()).await, 429, "last good certificate");

    // steward only ever read the Secret.
    let s = secrets.get("external-tls").await.unwrap();
    let managers: Vec<String> = s
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, [ISSUER], "writers of the Secret");
}
