//! The stack's workloads: Prometheus, Alertmanager, Grafana, kube-state-metrics
//! Deployments and the node-exporter DaemonSet.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SecretKeySelector, SecretVolumeSource, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{dashboard_config_map, dashboard_files, meta, security};
use crate::core::stack::{CONFIG_HASH_ANNOTATION, Stack};

/// Keys of Grafana's admin Secret ([`grafana_admin_secret`]).
pub const GRAFANA_USER_KEY: &str = "admin-user";
/// See [`GRAFANA_USER_KEY`].
pub const GRAFANA_PASSWORD_KEY: &str = "admin-password";

/// The Secret holding Grafana's admin user and password (made by
/// `crate::grafana_admin`, never by the render).
pub fn grafana_admin_secret(stack: &Stack) -> String {
    grafana_admin_secret_of(&stack.name)
}

/// [`grafana_admin_secret`] of the stack named `stack`.
pub fn grafana_admin_secret_of(stack: &str) -> String {
    format!("{stack}-grafana-admin")
}

/// An environment variable from a key of a Secret.
fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Where Grafana reads dashboards from.
pub const DASHBOARD_DIR: &str = "/var/lib/grafana/dashboards";
/// The node-exporter port (host network).
pub const NODE_EXPORTER_PORT: i32 = 9100;

/// Default requests per component (cpu, memory); limits default to none.
pub fn default_requests(component: &str) -> (&'static str, &'static str) {
    match component {
        "prometheus" => ("200m", "512Mi"),
        "grafana" => ("100m", "128Mi"),
        "node-exporter" => ("20m", "32Mi"),
        _ => ("50m", "64Mi"),
    }
}

/// Requests and limits of a component: defaults, then the spec's values.
pub fn resources(stack: &Stack, component: &str) -> ResourceRequirements {
    let (cpu, mem) = default_requests(component);
    let mut requests: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(mem.into())),
    ]
    .into();
    let mut limits = BTreeMap::new();
    if let Some(r) = stack.settings.resources.get(component) {
        for (k, v) in r.requests.iter().flatten() {
            requests.insert(k.clone(), Quantity(v.clone()));
        }
        for (k, v) in r.limits.iter().flatten() {
            limits.insert(k.clone(), Quantity(v.clone()));
        }
    }
    ResourceRequirements {
        requests: Some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    }
}

pub(super) fn image(stack: &Stack, component: &str) -> String {
    stack
        .settings
        .images
        .get(component)
        .cloned()
        .unwrap_or_default()
}

pub(super) fn http_probe(path: &str, port: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        ..Probe::default()
    }
}

pub(super) fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        ..ContainerPort::default()
    }
}

pub(super) fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

fn cm_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// A one-replica Deployment of a component with the stack's placement; `hash` goes
/// on the pod template so a configuration change rolls the pod.
fn deployment(stack: &Stack, component: &str, hash: Option<&str>, pod: PodSpec) -> Deployment {
    let placement = &stack.settings.placement;
    let mut template_meta = ObjectMeta {
        labels: Some(stack.labels(component)),
        ..ObjectMeta::default()
    };
    if let Some(h) = hash {
        template_meta.annotations =
            Some([(CONFIG_HASH_ANNOTATION.to_string(), h.to_string())].into());
    }
    Deployment {
        metadata: meta(stack, component, &stack.object_name(component), true),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(stack.selector(component)),
                ..LabelSelector::default()
            },
            // One TSDB / one data directory: never two pods at once.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(template_meta),
                spec: Some(PodSpec {
                    node_selector: placement.node_selector.clone(),
                    tolerations: placement.tolerations.clone(),
                    security_context: Some(security::pod(component)),
                    containers: pod
                        .containers
                        .into_iter()
                        .map(|c| Container {
                            security_context: Some(security::container()),
                            ..c
                        })
                        .collect(),
                    ..pod
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The PersistentVolumeClaim of `component` (prometheus or grafana), when its
/// storage is asked for; named as the component's Deployment.
pub fn pvc(stack: &Stack, component: &str) -> Option<PersistentVolumeClaim> {
    let s = volume_of(stack, component)?;
    Some(PersistentVolumeClaim {
        metadata: meta(stack, component, &stack.object_name(component), true),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: s.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), Quantity(s.size.clone()))].into()),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

fn volume_of<'a>(stack: &'a Stack, component: &str) -> Option<&'a crate::crd::Volume> {
    match component {
        "prometheus" => stack.settings.storage.prometheus.as_ref(),
        "grafana" => stack.settings.storage.grafana.as_ref(),
        _ => None,
    }
}

/// The `data` volume of `component`: its claim when storage is asked for, else an
/// emptyDir.
fn data_volume(stack: &Stack, component: &str) -> Volume {
    match volume_of(stack, component) {
        Some(_) => Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: stack.object_name(component),
                ..PersistentVolumeClaimVolumeSource::default()
            }),
            ..Volume::default()
        },
        None => Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    }
}

/// Prometheus, reading its configuration and rules from the ConfigMap.
pub fn prometheus(stack: &Stack, hash: &str) -> Deployment {
    let name = stack.object_name("prometheus");
    let data = data_volume(stack, "prometheus");
    let container = Container {
        name: "prometheus".into(),
        image: Some(image(stack, "prometheus")),
        args: Some(
            vec![
                "--config.file=/etc/prometheus/prometheus.yml".into(),
                "--storage.tsdb.path=/prometheus".into(),
                format!("--storage.tsdb.retention.time={}", stack.settings.retention),
                "--web.enable-lifecycle".into(),
            ]
            .into_iter()
            .chain(
                stack
                    .settings
                    .retention_size
                    .iter()
                    .map(|s| format!("--storage.tsdb.retention.size={s}")),
            )
            .collect(),
        ),
        ports: Some(vec![port("http", 9090)]),
        readiness_probe: Some(http_probe("/-/ready", 9090)),
        resources: Some(resources(stack, "prometheus")),
        volume_mounts: Some(vec![
            mount("config", "/etc/prometheus"),
            mount("data", "/prometheus"),
        ]),
        ..Container::default()
    };
    deployment(
        stack,
        "prometheus",
        Some(hash),
        PodSpec {
            service_account_name: Some(name.clone()),
            containers: vec![container],
            volumes: Some(vec![cm_volume("config", &name), data]),
            ..PodSpec::default()
        },
    )
}

/// Alertmanager.
pub fn alertmanager(stack: &Stack, hash: &str) -> Deployment {
    use crate::core::alerting::{CONFIG_DIR, SECRETS_DIR, secrets};
    let name = stack.object_name("alertmanager");
    let mut mounts = vec![mount("config", CONFIG_DIR), mount("data", "/alertmanager")];
    let mut volumes = vec![
        cm_volume("config", &name),
        Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    // Each Secret a receiver reads, at the Prometheus Operator's path for it.
    for (i, secret) in secrets(&stack.settings.alerting).into_iter().enumerate() {
        let volume = format!("secret-{i}");
        mounts.push(VolumeMount {
            read_only: Some(true),
            ..mount(&volume, &format!("{SECRETS_DIR}/{secret}"))
        });
        volumes.push(Volume {
            name: volume,
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let container = Container {
        name: "alertmanager".into(),
        image: Some(image(stack, "alertmanager")),
        args: Some(vec![
            format!("--config.file={CONFIG_DIR}/alertmanager.yml"),
            "--storage.path=/alertmanager".into(),
        ]),
        ports: Some(vec![port("http", 9093)]),
        readiness_probe: Some(http_probe("/-/ready", 9093)),
        resources: Some(resources(stack, "alertmanager")),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    deployment(
        stack,
        "alertmanager",
        Some(hash),
        PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        },
    )
}

/// Grafana with the provisioned data source and dashboards.
pub fn grafana(stack: &Stack, hash: &str) -> Deployment {
    let provisioning = format!("{}-provisioning", stack.object_name("grafana"));
    // The root filesystem is read-only: Grafana's database, plugins and sessions
    // go to /var/lib/grafana, its temporary files to /tmp.
    let scratch = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    let mut volumes = vec![
        cm_volume("provisioning", &provisioning),
        data_volume(stack, "grafana"),
        scratch("tmp"),
    ];
    let mut mounts = vec![
        mount("data", "/var/lib/grafana"),
        mount("tmp", "/tmp"),
        VolumeMount {
            sub_path: Some("datasources.yaml".into()),
            ..mount(
                "provisioning",
                "/etc/grafana/provisioning/datasources/steward.yaml",
            )
        },
        VolumeMount {
            sub_path: Some("dashboards.yaml".into()),
            ..mount(
                "provisioning",
                "/etc/grafana/provisioning/dashboards/steward.yaml",
            )
        },
    ];
    for (uid, _) in dashboard_files() {
        let vol = format!("dashboard-{uid}");
        volumes.push(cm_volume(&vol, &dashboard_config_map(stack, uid)));
        mounts.push(mount(&vol, &format!("{DASHBOARD_DIR}/{uid}")));
    }
    let container = Container {
        name: "grafana".into(),
        image: Some(image(stack, "grafana")),
        env: Some({
            let secret = grafana_admin_secret(stack);
            vec![
                env_from_secret("GF_SECURITY_ADMIN_USER", &secret, GRAFANA_USER_KEY),
                env_from_secret("GF_SECURITY_ADMIN_PASSWORD", &secret, GRAFANA_PASSWORD_KEY),
            ]
        }),
        ports: Some(vec![port("http", 3000)]),
        readiness_probe: Some(http_probe("/api/health", 3000)),
        resources: Some(resources(stack, "grafana")),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    deployment(
        stack,
        "grafana",
        Some(hash),
        PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        },
    )
}

/// kube-state-metrics.
pub fn kube_state_metrics(stack: &Stack) -> Deployment {
    let container = Container {
        name: "kube-state-metrics".into(),
        image: Some(image(stack, "kube-state-metrics")),
        ports: Some(vec![port("http", 8080)]),
        readiness_probe: Some(http_probe("/healthz", 8080)),
        resources: Some(resources(stack, "kube-state-metrics")),
        ..Container::default()
    };
    deployment(
        stack,
        "kube-state-metrics",
        None,
        PodSpec {
            service_account_name: Some(stack.object_name("kube-state-metrics")),
            containers: vec![container],
            ..PodSpec::default()
        },
    )
}
