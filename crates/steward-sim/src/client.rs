//! The admin kubeconfig of a simulated cluster and clients built from it.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::certs::Pki;
use crate::error::{Error, Result, io};

/// A client for the kubeconfig of a simulated cluster.
pub(crate) async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    let err = |source| Error::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        source,
    };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(err)?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(err)?;
    // Components and tests share one API server; keep requests from queueing client-side.
    config.read_timeout = Some(Duration::from_secs(300));
    // kube retries 429 by default (up to 15 times, backing off to minutes), which
    // turns an eviction refused by a PodDisruptionBudget into a long hang; callers
    // classify and retry API errors themselves.
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

pub(crate) fn http_get(path: &str) -> http::Request<Vec<u8>> {
    let mut req = http::Request::new(Vec::new());
    *req.uri_mut() = http::Uri::try_from(path).unwrap_or_default();
    req
}

pub(crate) fn write_kubeconfig(path: &Path, server: &str, pki: &Pki) -> Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: steward-sim\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n- name: steward-admin\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n\
         contexts:\n- name: steward-sim\n  context:\n    cluster: steward-sim\n    user: steward-admin\ncurrent-context: steward-sim\n",
        ca = pki.ca_cert.display(),
        cert = pki.admin_cert.display(),
        key = pki.admin_key.display(),
    );
    std::fs::write(path, text).map_err(io("writing kubeconfig", path))
}
