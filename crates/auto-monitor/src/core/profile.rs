//! Which cluster flavour the nodes and the API server say this is. Pure.
//!
//! kind sets `providerID: kind://...`, minikube labels its nodes
//! `minikube.k8s.io/name`, k3s reports a kubelet version with `+k3s` and the
//! instance type `k3s`. The managed control planes label their nodes
//! (`eks.amazonaws.com/nodegroup` or `eks.amazonaws.com/compute-type`,
//! `cloud.google.com/gke-nodepool`, `kubernetes.azure.com/cluster`) and EKS and GKE
//! build their kubelets and API servers with `-eks-` and `-gke.` versions, which
//! also covers nodes Karpenter launched without a node group label. (A cloud
//! `providerID` alone says nothing: kops on AWS runs its own control plane.)
//! Anything else is generic. The first node that says something decides, then the
//! API server; the profile can also be set in the spec.

use k8s_openapi::api::core::v1::Node;

use crate::core::validate::Profile;

/// The profile the nodes, then the API server's `gitVersion`, point to.
pub fn detect(nodes: &[Node], server_version: Option<&str>) -> Profile {
    nodes
        .iter()
        .find_map(node_profile)
        .or_else(|| server_version.and_then(managed_version))
        .unwrap_or(Profile::Generic)
}

/// EKS or GKE from a kubelet or API server version.
fn managed_version(v: &str) -> Option<Profile> {
    if v.contains("-eks-") {
        Some(Profile::Eks)
    } else if v.contains("-gke.") {
        Some(Profile::Gke)
    } else {
        None
    }
}

fn node_profile(n: &Node) -> Option<Profile> {
    let labels = n.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let provider = n.spec.as_ref().and_then(|s| s.provider_id.as_deref());
    let kubelet = n
        .status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.as_str());
    if provider.is_some_and(|p| p.starts_with("kind://")) {
        Some(Profile::Kind)
    } else if label("minikube.k8s.io/name").is_some() {
        Some(Profile::Minikube)
    } else if kubelet.is_some_and(|v| v.contains("+k3s"))
        || label("node.kubernetes.io/instance-type") == Some("k3s")
    {
        Some(Profile::K3s)
    } else if label("eks.amazonaws.com/nodegroup").is_some()
        || label("eks.amazonaws.com/compute-type").is_some()
    {
        Some(Profile::Eks)
    } else if label("cloud.google.com/gke-nodepool").is_some() {
        Some(Profile::Gke)
    } else if label("kubernetes.azure.com/cluster").is_some() {
        Some(Profile::Aks)
    } else {
        kubelet.and_then(managed_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, NodeSystemInfo};

    fn node(provider: Option<&str>, label: Option<(&str, &str)>, kubelet: &str) -> Node {
        Node {
            metadata: kube::api::ObjectMeta {
                labels: label.map(|(k, v)| [(k.to_string(), v.to_string())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                provider_id: provider.map(String::from),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                node_info: Some(NodeSystemInfo {
                    kubelet_version: kubelet.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn flavours() {
        let generic = node(Some("aws:///us-east-1a/i-1"), None, "v1.34.1");
        for (nodes, want) in [
            (
                vec![node(
                    Some("kind://docker/kind/kind-control-plane"),
                    None,
                    "v1.34.0",
                )],
                Profile::Kind,
            ),
            (
                vec![node(
                    None,
                    Some(("minikube.k8s.io/name", "minikube")),
                    "v1.34.0",
                )],
                Profile::Minikube,
            ),
            (vec![node(None, None, "v1.33.4+k3s1")], Profile::K3s),
            (
                vec![node(
                    None,
                    Some(("node.kubernetes.io/instance-type", "k3s")),
                    "v1.33.4",
                )],
                Profile::K3s,
            ),
            (
                vec![generic.clone(), node(None, None, "v1.33.4+k3s1")],
                Profile::K3s,
            ),
            (
                vec![node(
                    Some("aws:///us-east-1a/i-1"),
                    Some(("eks.amazonaws.com/nodegroup", "workers")),
                    "v1.33.0",
                )],
                Profile::Eks,
            ),
            // A Karpenter node on EKS: no node group label, an EKS kubelet.
            (
                vec![node(
                    Some("aws:///us-east-1a/i-2"),
                    Some(("karpenter.sh/nodepool", "default")),
                    "v1.33.1-eks-1a2b3c4",
                )],
                Profile::Eks,
            ),
            (
                vec![node(
                    Some("gce://p/us-central1-a/n"),
                    Some(("cloud.google.com/gke-nodepool", "default-pool")),
                    "v1.33.2-gke.1000",
                )],
                Profile::Gke,
            ),
            (
                vec![node(
                    Some("azure:///subscriptions/s/vm"),
                    Some(("kubernetes.azure.com/cluster", "MC_rg_aks_eastus")),
                    "v1.33.0",
                )],
                Profile::Aks,
            ),
            (vec![generic], Profile::Generic),
            (vec![], Profile::Generic),
        ] {
            assert_eq!(detect(&nodes, None), want, "{nodes:?}");
        }
    }

    #[test]
    fn the_api_server_speaks_when_the_nodes_do_not() {
        let plain = || vec![node(Some("aws:///us-east-1a/i-1"), None, "v1.33.0")];
        for (server, want) in [
            (Some("v1.33.4-eks-a737599"), Profile::Eks),
            (Some("v1.33.2-gke.1240000"), Profile::Gke),
            (Some("v1.33.4"), Profile::Generic),
            (None, Profile::Generic),
        ] {
            assert_eq!(detect(&plain(), server), want, "{server:?}");
        }
        // The nodes come first: a kind cluster whatever the server says.
        let kind = vec![node(Some("kind://docker/kind/x"), None, "v1.33.0")];
        assert_eq!(detect(&kind, Some("v1.33.4-eks-a737599")), Profile::Kind);
    }
}
