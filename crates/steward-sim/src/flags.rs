//! The command lines of the control-plane programs. Pure.

use std::path::Path;

use crate::certs::Pki;
use crate::realnode::Net;

/// Ports of one cluster's programs.
pub(crate) struct Ports {
    pub etcd: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub kcm: u16,
    pub scheduler: u16,
    pub kwok: u16,
}

/// The API server's address: loopback, or with real nodes the host end of their
/// bridge, which the nodes and their pods reach.
pub(crate) fn api_address(net: Option<Net>) -> String {
    net.map_or_else(|| "127.0.0.1".into(), Net::api_address)
}

/// Addresses the serving certificate names besides loopback.
pub(crate) fn extra_sans(net: Option<Net>) -> Vec<String> {
    match net {
        Some(n) => vec![n.api_address(), n.kubernetes_service_ip()],
        None => vec!["10.96.0.1".into()],
    }
}

pub(crate) fn etcd_args(dir: &Path, p: &Ports) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", p.etcd);
    let peer = format!("http://127.0.0.1:{}", p.etcd_peer);
    vec![
        "--name=sim".into(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=sim={peer}"),
        // A throw-away test cluster: durability is not worth an fsync per write.
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
    ]
}

pub(crate) fn apiserver_args(dir: &Path, p: &Ports, pki: &Pki, net: Option<Net>) -> Vec<String> {
    let (key, public) = (pki.sa_key.display(), pki.sa_pub.display());
    let address = api_address(net);
    let mut args = vec![
        format!("--etcd-servers=http://127.0.0.1:{}", p.etcd),
        format!("--bind-address={address}"),
        // On one address only, the API server must be told its address.
        format!("--advertise-address={address}"),
        format!("--secure-port={}", p.apiserver),
        format!("--cert-dir={}", dir.join("apiserver").display()),
        format!("--tls-cert-file={}", pki.serving_cert.display()),
        format!("--tls-private-key-file={}", pki.serving_key.display()),
        format!("--client-ca-file={}", pki.ca_cert.display()),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={public}"),
        format!("--service-account-signing-key-file={key}"),
        // Without real nodes only used to allocate ClusterIPs; nothing routes to them.
        // With real nodes the host routes the range to a node, whose kube-proxy DNATs.
        format!(
            "--service-cluster-ip-range={}",
            net.map_or_else(|| "10.96.0.0/16".into(), Net::service_cidr)
        ),
        // The API server's identity towards kubelets (logs, exec): the admin certificate.
        format!("--kubelet-client-certificate={}", pki.admin_cert.display()),
        format!("--kubelet-client-key={}", pki.admin_key.display()),
        "--authorization-mode=Node,RBAC".into(),
        "--allow-privileged=true".into(),
        "--profiling=false".into(),
        "--v=1".into(),
    ];
    if net.is_none() {
        // Service-based webhooks (and aggregated APIs) are called at an endpoint of
        // the Service's EndpointSlices, not its ClusterIP: nothing routes ClusterIPs
        // here, and a test can point a Service at a process on this machine. With
        // real nodes the ClusterIP is routed and kube-proxy DNATs it (see above).
        args.push("--enable-aggregator-routing=true".into());
    }
    if net.is_some() {
        // Real nodes never pull: a MutatingAdmissionPolicy (beta, off by default in
        // 1.34) sets imagePullPolicy: Never on every container (realnode/policy.rs).
        args.push("--feature-gates=MutatingAdmissionPolicy=true".into());
        args.push("--runtime-config=admissionregistration.k8s.io/v1beta1=true".into());
        // Node names resolve nowhere here; reach kubelets at their InternalIP: a real
        // node's address on the bridge, a kwok node's 127.0.0.1 (kwok_args), where
        // nothing listens on the kubelet port, so a request for a kwok pod's logs is
        // refused at once and never leaves the machine.
        args.push("--kubelet-preferred-address-types=InternalIP".into());
    }
    args
}

/// Flags kube-controller-manager and kube-scheduler share: admin kubeconfig for API,
/// authentication and authorization, no leader election, serving on loopback.
pub(crate) fn component_args(kubeconfig: &str, port: u16) -> Vec<String> {
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--leader-elect=false".into(),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        "--v=1".into(),
    ]
}

pub(crate) fn kcm_args(kubeconfig: &str, p: &Ports, pki: &Pki) -> Vec<String> {
    let mut args = component_args(kubeconfig, p.kcm);
    args.extend([
        format!(
            "--service-account-private-key-file={}",
            pki.sa_key.display()
        ),
        format!("--root-ca-file={}", pki.ca_cert.display()),
        "--use-service-account-credentials=false".into(),
        // The defaults (20 QPS) make thousands of simulated pods crawl.
        "--kube-api-qps=200".into(),
        "--kube-api-burst=400".into(),
        "--concurrent-replicaset-syncs=10".into(),
        "--concurrent-gc-syncs=40".into(),
    ]);
    args
}

pub(crate) fn scheduler_args(kubeconfig: &str, p: &Ports) -> Vec<String> {
    component_args(kubeconfig, p.scheduler)
}

pub(crate) fn kwok_args(kubeconfig: &str, p: &Ports, stages: &Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--config={}", stages.display()),
        "--manage-all-nodes=false".into(),
        format!(
            "--manage-nodes-with-annotation-selector={}=fake",
            crate::KWOK_NODE_ANNOTATION
        ),
        format!("--server-address=127.0.0.1:{}", p.kwok),
        "--node-lease-duration-seconds=40".into(),
        // kwok nodes' InternalIP (kwok's default is a public address): loopback, so
        // whatever dials a kwok "kubelet" (the API server, with real nodes) stays on
        // this machine.
        "--node-ip=127.0.0.1".into(),
        // Pod IPs are only data in pod status here; a /16 holds thousands of pods.
        "--cidr=10.244.0.0/16".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Ports {
        Ports {
            etcd: 1,
            etcd_peer: 2,
            apiserver: 3,
            kcm: 4,
            scheduler: 5,
            kwok: 6,
        }
    }

    fn pki() -> Pki {
        let p = |f: &str| Path::new("/p").join(f);
        Pki {
            ca_cert: p("ca.crt"),
            ca_key: p("ca.key"),
            serving_cert: p("s.crt"),
            serving_key: p("s.key"),
            admin_cert: p("a.crt"),
            admin_key: p("a.key"),
            sa_key: p("sa.key"),
            sa_pub: p("sa.pub"),
        }
    }

    #[test]
    fn api_server_with_and_without_real_nodes() {
        let plain = apiserver_args(Path::new("/d"), &ports(), &pki(), None);
        assert!(plain.contains(&"--bind-address=127.0.0.1".to_string()));
        assert!(plain.contains(&"--service-cluster-ip-range=10.96.0.0/16".to_string()));
        // Webhooks at an endpoint without real nodes; through the ClusterIP with them.
        assert!(plain.contains(&"--enable-aggregator-routing=true".to_string()));
        assert!(
            !plain
                .iter()
                .any(|a| a.starts_with("--kubelet-preferred-address-types"))
        );
        let real = apiserver_args(Path::new("/d"), &ports(), &pki(), Some(Net(203)));
        for want in [
            "--bind-address=10.203.0.1",
            "--advertise-address=10.203.0.1",
            "--service-cluster-ip-range=10.203.64.0/20",
            "--kubelet-preferred-address-types=InternalIP",
            "--feature-gates=MutatingAdmissionPolicy=true",
        ] {
            assert!(real.contains(&want.to_string()), "{want}: {real:?}");
        }
        assert!(
            !real
                .iter()
                .any(|a| a.starts_with("--enable-aggregator-routing"))
        );
        assert_eq!(extra_sans(Some(Net(203))), ["10.203.0.1", "10.203.64.1"]);
    }

    #[test]
    fn kwok_nodes_sit_on_loopback() {
        let a = kwok_args("/kc", &ports(), Path::new("/s"));
        assert!(a.contains(&"--node-ip=127.0.0.1".to_string()));
    }
}
