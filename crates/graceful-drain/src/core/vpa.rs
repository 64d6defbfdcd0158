//! VerticalPodAutoscaler objects, read as dynamic objects: the VPA CRD is
//! optional, and steward needs three fields of it, not a typed client.

use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::Store;
use serde::Serialize;

/// `autoscaling.k8s.io/v1` `verticalpodautoscalers`.
pub fn api_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("autoscaling.k8s.io", "v1", "VerticalPodAutoscaler");
    ApiResource::from_gvk_with_plural(&gvk, "verticalpodautoscalers")
}

/// The VPA's update mode; an absent `updatePolicy` means `Auto`.
pub fn update_mode(vpa: &DynamicObject) -> &str {
    vpa.data
        .pointer("/spec/updatePolicy/updateMode")
        .and_then(|m| m.as_str())
        .unwrap_or("Auto")
}

/// `Kind/name` of the workload the VPA targets.
pub fn target(vpa: &DynamicObject) -> Option<String> {
    let kind = vpa.data.pointer("/spec/targetRef/kind")?.as_str()?;
    let name = vpa.data.pointer("/spec/targetRef/name")?.as_str()?;
    Some(format!("{kind}/{name}"))
}

/// Whether `vpa` drives `workload` (`Kind/name`) in `namespace`: it targets it and
/// its mode is not `Off` (an `Off` VPA only recommends). Pure.
pub fn drives(vpa: &DynamicObject, namespace: &str, workload: &str) -> bool {
    vpa.namespace().as_deref() == Some(namespace)
        && update_mode(vpa) != "Off"
        && target(vpa).as_deref() == Some(workload)
}

/// Whether any VPA in the store drives `workload` in `namespace`.
pub fn any_drives(store: &Store<DynamicObject>, namespace: &str, workload: &str) -> bool {
    store.state().iter().any(|v| drives(v, namespace, workload))
}

/// One VPA that could resize in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// `namespace/name` of the VPA.
    pub vpa: String,
    /// `Kind/name` of its target.
    pub target: String,
    /// Its update mode now.
    pub mode: String,
}

/// The candidate, if this VPA object is one. Pure.
pub fn candidate(vpa: &DynamicObject) -> Option<Candidate> {
    vpa.data.get("spec")?;
    // An absent updatePolicy means Auto, which the VPA treats as Recreate.
    let mode = update_mode(vpa);
    if mode != "Recreate" && mode != "Auto" {
        return None;
    }
    Some(Candidate {
        vpa: format!("{}/{}", vpa.namespace().unwrap_or_default(), vpa.name_any()),
        target: target(vpa).unwrap_or_else(|| "?/?".into()),
        mode: mode.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vpa(ns: &str, kind: &str, name: &str, mode: Option<&str>) -> DynamicObject {
        let mut o = DynamicObject::new("v", &api_resource()).within(ns);
        o.data = json!({ "spec": { "targetRef": { "apiVersion": "apps/v1", "kind": kind, "name": name } } });
        if let Some(m) = mode {
            o.data["spec"]["updatePolicy"] = json!({ "updateMode": m });
        }
        o
    }

    #[test]
    fn which_vpas_drive_a_workload() {
        let table = [
            (vpa("shop", "Deployment", "web", None), true),
            (vpa("shop", "Deployment", "web", Some("Recreate")), true),
            (
                vpa("shop", "Deployment", "web", Some("InPlaceOrRecreate")),
                true,
            ),
            (vpa("shop", "Deployment", "web", Some("Initial")), true),
            (vpa("shop", "Deployment", "web", Some("Off")), false),
            (vpa("other", "Deployment", "web", None), false),
            (vpa("shop", "StatefulSet", "web", None), false),
            (vpa("shop", "Deployment", "api", None), false),
        ];
        for (v, want) in table {
            assert_eq!(drives(&v, "shop", "Deployment/web"), want, "{:?}", v.data);
        }
        let mut broken = vpa("shop", "Deployment", "web", None);
        broken.data = json!({ "spec": {} });
        assert!(!drives(&broken, "shop", "Deployment/web"));
        assert_eq!(target(&broken), None);
    }

    #[test]
    fn recreate_and_auto_are_candidates() {
        let vpa = |mode: Option<&str>| -> DynamicObject {
            let mut spec =
                serde_json::json!({ "targetRef": { "kind": "Deployment", "name": "web" } });
            if let Some(m) = mode {
                spec["updatePolicy"] = serde_json::json!({ "updateMode": m });
            }
            serde_json::from_value(serde_json::json!({
                "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
                "metadata": { "name": "v", "namespace": "shop" }, "spec": spec
            }))
            .unwrap()
        };
        let table = [
            (Some("Recreate"), true),
            (Some("Auto"), true),
            (None, true),
            (Some("InPlaceOrRecreate"), false),
            (Some("Initial"), false),
            (Some("Off"), false),
        ];
        for (mode, want) in table {
            assert_eq!(candidate(&vpa(mode)).is_some(), want, "{mode:?}");
        }
        assert_eq!(
            candidate(&vpa(Some("Recreate"))).unwrap().target,
            "Deployment/web"
        );
    }
}
