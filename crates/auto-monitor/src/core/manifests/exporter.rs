//! The node-exporter DaemonSet: one per selected node, on the host's network
//! and PID namespace, tolerating every taint.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HostPathVolumeSource, PodSpec, PodTemplateSpec, SecurityContext,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::meta;
use super::workloads::{NODE_EXPORTER_PORT, http_probe, image, mount, port, resources};
use crate::core::stack::Stack;
use crate::core::validate::Profile;

/// node-exporter on every node: host network and PID namespace, port 9100 named
/// `metrics` (the scrape job keeps that port), and a toleration of every taint so a
/// tainted node is monitored too.
///
/// On kind and minikube the host root is not mounted: those nodes are containers
/// whose root mount cannot propagate (`HostToContainer` fails on Docker Desktop), and
/// the container's own root filesystem is the node's disk anyway.
pub fn node_exporter(stack: &Stack) -> DaemonSet {
    let mut args = vec![
        "--path.procfs=/host/proc".to_string(),
        "--path.sysfs=/host/sys".to_string(),
        format!("--web.listen-address=:{NODE_EXPORTER_PORT}"),
    ];
    let mut mounts = vec![mount("proc", "/host/proc"), mount("sys", "/host/sys")];
    let mut volumes = vec![host_path("proc", "/proc"), host_path("sys", "/sys")];
    if !matches!(stack.profile, Profile::Kind | Profile::Minikube) {
        args.push("--path.rootfs=/host/root".into());
        mounts.push(VolumeMount {
            read_only: Some(true),
            mount_propagation: Some("HostToContainer".into()),
            ..mount("root", "/host/root")
        });
        volumes.push(host_path("root", "/"));
    }
    let container = Container {
        name: "node-exporter".into(),
        image: Some(image(stack, "node-exporter")),
        args: Some(args),
        ports: Some(vec![ContainerPort {
            host_port: Some(NODE_EXPORTER_PORT),
            ..port("metrics", NODE_EXPORTER_PORT)
        }]),
        readiness_probe: Some(http_probe("/", NODE_EXPORTER_PORT)),
        resources: Some(resources(stack, "node-exporter")),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    DaemonSet {
        metadata: meta(
            stack,
            "node-exporter",
            &stack.object_name("node-exporter"),
            true,
        ),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(stack.selector("node-exporter")),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(stack.labels("node-exporter")),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    node_selector: (!stack.settings.node_selector.is_empty())
                        .then(|| stack.settings.node_selector.clone()),
                    host_network: Some(true),
                    host_pid: Some(true),
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Toleration::default()
                    }]),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DaemonSetSpec::default()
        }),
        ..DaemonSet::default()
    }
}

fn host_path(name: &str, path: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.into(),
            ..HostPathVolumeSource::default()
        }),
        ..Volume::default()
    }
}
