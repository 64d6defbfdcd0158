//! Pre-flight checks, reported before anything is applied. Pure: the installer
//! gathers a [`Cluster`] snapshot and [`check`] returns the findings. A `blocking`
//! finding stops the install (nothing is applied); warnings are reported and the
//! install goes on. `snapshot` makes the snapshot from what was listed.

use crate::core::manifests::workloads::default_requests;
use crate::core::stack::Stack;
use crate::crd::PreflightFinding;

mod external;
pub mod snapshot;

/// Free capacity of one schedulable node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeRoom {
    /// Node name.
    pub name: String,
    /// Allocatable minus the requests of the pods on it, in cores.
    pub free_cpu: f64,
    /// Same for memory, in bytes.
    pub free_memory: f64,
    /// Whether the stack's Deployments may run there (selector and taints).
    pub eligible: bool,
}

/// What the checks look at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// Nodes.
    pub nodes: Vec<NodeRoom>,
    /// Name of the default StorageClass, if any.
    pub default_storage_class: Option<String>,
    /// Pods not of this stack holding host port 9100, as `namespace/name on node`.
    pub port_9100: Vec<String>,
    /// DaemonSets not of this stack that look like node-exporter, as `namespace/name`.
    pub other_node_exporters: Vec<String>,
    /// Prometheus Operator CRDs present, as `name (versions)`.
    pub operator_crds: Vec<String>,
    /// Names of those CRDs (`servicemonitors.monitoring.coreos.com`, ...).
    pub operator_crd_names: Vec<String>,
    /// Served versions of our own CRD, if installed.
    pub own_crd_versions: Vec<String>,
    /// With `spec.prometheus: external`: which operator Prometheus selects the stack.
    pub external: Option<crate::core::external::Choice>,
}

/// Severities.
pub const OK: &str = "ok";
/// Reported; the install goes on.
pub const WARNING: &str = "warning";
/// The install stops.
pub const BLOCKING: &str = "blocking";

fn finding(check: &str, severity: &str, message: String) -> PreflightFinding {
    PreflightFinding {
        check: check.into(),
        severity: severity.into(),
        message,
    }
}

/// Runs every check.
pub fn check(stack: &Stack, c: &Cluster) -> Vec<PreflightFinding> {
    let mut out = vec![storage(stack, c), capacity(stack, c)];
    out.push(match (c.port_9100.is_empty(), c.other_node_exporters.is_empty()) {
        (true, true) => finding("node-exporter", OK, "no other node-exporter and port 9100 free".into()),
        _ => finding(
            "node-exporter",
            WARNING,
            format!(
                "port 9100 is taken on some nodes, steward's node-exporter cannot start there: {}",
                c.other_node_exporters.iter().chain(&c.port_9100).cloned().collect::<Vec<_>>().join(", ")
            ),
        ),
    });
    out.push(if c.operator_crds.is_empty() {
        finding(
            "crds",
            OK,
            format!(
                "no Prometheus Operator CRDs; MonitoringStack CRD versions: {}",
                if c.own_crd_versions.is_empty() {
                    "not installed".into()
                } else {
                    c.own_crd_versions.join(", ")
                }
            ),
        )
    } else {
        finding(
            "crds",
            OK,
            format!(
                "Prometheus Operator CRDs present: {}{}",
                c.operator_crds.join(", "),
                if crate::core::manifests::operator::crds_present(
                    c.operator_crd_names.iter().map(String::as_str)
                ) {
                    "; steward also writes a ServiceMonitor and a PrometheusRule"
                } else {
                    ""
                }
            ),
        )
    });
    if stack.settings.external_prometheus {
        out.push(external::finding_for(stack, c));
    }
    out
}

fn storage(stack: &Stack, c: &Cluster) -> PreflightFinding {
    let v = &stack.settings.storage;
    let asked: Vec<(&str, &crate::crd::Volume)> =
        [("Prometheus", &v.prometheus), ("Grafana", &v.grafana)]
            .into_iter()
            .filter_map(|(who, v)| v.as_ref().map(|v| (who, v)))
            .collect();
    if asked.is_empty() {
        return finding(
            "storage",
            OK,
            "Prometheus and Grafana keep data in emptyDirs (spec.storage not set)".into(),
        );
    }
    let defaulted: Vec<&str> = asked
        .iter()
        .filter(|(_, v)| v.storage_class_name.is_none())
        .map(|(who, _)| *who)
        .collect();
    match (defaulted.is_empty(), &c.default_storage_class) {
        (true, _) => finding(
            "storage",
            OK,
            format!(
                "volumes use StorageClass {}",
                asked
                    .iter()
                    .filter_map(|(_, v)| v.storage_class_name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (false, Some(sc)) => finding("storage", OK, format!("default StorageClass {sc}")),
        (false, None) => finding(
            "storage",
            BLOCKING,
            format!(
                "spec.storage asks for a volume for {} but the cluster has no default StorageClass: set its storageClassName or mark one default",
                defaulted.join(" and ")
            ),
        ),
    }
}

/// Each Deployment needs one eligible node with room for its requests.
fn capacity(stack: &Stack, c: &Cluster) -> PreflightFinding {
    let q = |component: &str| {
        let r = crate::core::manifests::workloads::resources(stack, component);
        let req = r.requests.unwrap_or_default();
        let (cpu, mem) = default_requests(component);
        (
            steward_kube::quantity::parse_cpu(req.get("cpu").unwrap_or(
                &k8s_openapi::apimachinery::pkg::api::resource::Quantity(cpu.into()),
            )),
            steward_kube::quantity::parse_bytes(req.get("memory").unwrap_or(
                &k8s_openapi::apimachinery::pkg::api::resource::Quantity(mem.into()),
            )),
        )
    };
    let mut missing = Vec::new();
    for component in [
        "prometheus",
        "alertmanager",
        "grafana",
        "kube-state-metrics",
    ] {
        if !stack.settings.has(component) {
            continue;
        }
        let (cpu, mem) = q(component);
        if !c
            .nodes
            .iter()
            .any(|n| n.eligible && n.free_cpu >= cpu && n.free_memory >= mem)
        {
            missing.push(format!(
                "{component} (requests {cpu} cpu, {:.0} MiB)",
                mem / 1048576.0
            ));
        }
    }
    if missing.is_empty() {
        let (cpu, mem) = q("node-exporter");
        let short: Vec<_> = c
            .nodes
            .iter()
            .filter(|n| n.free_cpu < cpu || n.free_memory < mem)
            .map(|n| n.name.clone())
            .collect();
        if short.is_empty() || !stack.settings.has("node-exporter") {
            finding(
                "capacity",
                OK,
                format!(
                    "{} nodes have room for the stack's requests",
                    c.nodes.iter().filter(|n| n.eligible).count()
                ),
            )
        } else {
            finding(
                "capacity",
                WARNING,
                format!(
                    "no room for node-exporter's requests on: {}",
                    short.join(", ")
                ),
            )
        }
    } else {
        finding(
            "capacity",
            BLOCKING,
            format!(
                "no eligible node has room for: {} (see spec.resources and spec.placement)",
                missing.join(", ")
            ),
        )
    }
}

/// Whether any finding blocks the install.
pub fn blocked(findings: &[PreflightFinding]) -> bool {
    findings.iter().any(|f| f.severity == BLOCKING)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::validate::{Profile, validate};
    use crate::crd::{MonitoringStackSpec, Storage, Volume};

    fn stack(storage: bool) -> Stack {
        stack_with(storage.then(|| Storage {
            size: Some("5Gi".into()),
            ..Storage::default()
        }))
    }

    fn stack_with(storage: Option<Storage>) -> Stack {
        let spec = MonitoringStackSpec {
            storage,
            ..Default::default()
        };
        Stack::new(
            "mon",
            "m",
            validate(&spec).unwrap_or_else(|e| panic!("{e:?}")),
            Profile::Kind,
        )
    }

    fn room(name: &str, cpu: f64, gib: f64) -> NodeRoom {
        NodeRoom {
            name: name.into(),
            free_cpu: cpu,
            free_memory: gib * 1073741824.0,
            eligible: true,
        }
    }

    fn severities(f: &[PreflightFinding]) -> Vec<(String, String)> {
        f.iter()
            .map(|f| (f.check.clone(), f.severity.clone()))
            .collect()
    }

    #[test]
    fn table() {
        let roomy = Cluster {
            nodes: vec![room("a", 4.0, 8.0)],
            ..Default::default()
        };
        let all_ok = |f: &[PreflightFinding]| f.iter().all(|f| f.severity == OK);
        assert!(all_ok(&check(&stack(false), &roomy)));
        // storage without a default class blocks; with one it passes
        let f = check(&stack(true), &roomy);
        assert!(blocked(&f), "{:?}", severities(&f));
        let with_sc = Cluster {
            default_storage_class: Some("standard".into()),
            ..roomy.clone()
        };
        assert!(all_ok(&check(&stack(true), &with_sc)));
        // Grafana's volume with no class blocks too and is named; a named class passes
        let vol = |class: Option<&str>| Volume {
            size: "1Gi".into(),
            storage_class_name: class.map(String::from),
        };
        let grafana_only = stack_with(Some(Storage {
            prometheus: Some(vol(Some("fast"))),
            grafana: Some(vol(None)),
            ..Storage::default()
        }));
        let f = check(&grafana_only, &roomy);
        assert!(
            blocked(&f)
                && f.iter()
                    .any(|f| f.check == "storage" && f.message.contains("for Grafana but")),
            "{f:?}"
        );
        let named = stack_with(Some(Storage {
            prometheus: Some(vol(Some("fast"))),
            grafana: Some(vol(Some("slow"))),
            ..Storage::default()
        }));
        assert!(all_ok(&check(&named, &roomy)));
        // no node fits Prometheus' 512Mi
        let small = Cluster {
            nodes: vec![room("a", 4.0, 0.25)],
            ..Default::default()
        };
        let f = check(&stack(false), &small);
        assert!(blocked(&f));
        assert!(
            f.iter()
                .any(|f| f.check == "capacity" && f.message.contains("prometheus"))
        );
        // a foreign exporter on 9100 warns without blocking
        let taken = Cluster {
            port_9100: vec!["kube-system/ne-x on a".into()],
            ..roomy
        };
        let f = check(&stack(false), &taken);
        assert!(!blocked(&f));
        assert!(f.iter().any(|f| f.check == "node-exporter"
            && f.severity == WARNING
            && f.message.contains("ne-x")));
    }
}
