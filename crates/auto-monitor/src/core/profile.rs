//! Which local cluster flavour the nodes say this is. Pure.
//!
//! kind sets `providerID: kind://...`, minikube labels its nodes
//! `minikube.k8s.io/name`, k3s reports a kubelet version with `+k3s` and the
//! instance type `k3s`. Anything else is generic. The first node that says
//! something decides; the profile can also be set in the spec.

use k8s_openapi::api::core::v1::Node;

use crate::core::validate::Profile;

/// The profile the nodes point to.
pub fn detect(nodes: &[Node]) -> Profile {
    nodes
        .iter()
        .find_map(node_profile)
        .unwrap_or(Profile::Generic)
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
    } else {
        None
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
            (vec![generic], Profile::Generic),
            (vec![], Profile::Generic),
        ] {
            assert_eq!(detect(&nodes), want);
        }
    }
}
