//! Tests of the webhook's pure parts: the eviction's facts and the slim cache.

use serde_json::json;

use super::*;

#[test]
fn evictions_in_admission_requests() {
    let review =
        |resource: &str, sub: Option<&str>, ns: Option<&str>, object: serde_json::Value| {
            let mut request = json!({
                "uid": "u", "kind": { "group": "policy", "version": "v1", "kind": "Eviction" },
                "resource": { "group": "", "version": "v1", "resource": resource },
                "name": "web-1", "operation": "CREATE",
                "userInfo": { "username": "system:serviceaccount:kube-system:vpa-updater" },
                "object": object, "dryRun": false
            });
            if let Some(s) = sub {
                request["subResource"] = json!(s);
            }
            if let Some(n) = ns {
                request["namespace"] = json!(n);
            }
            let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request
            }))
            .unwrap();
            let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
            req
        };
    let eviction = json!({ "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": { "name": "web-1", "namespace": "shop" },
        "deleteOptions": { "gracePeriodSeconds": 7 } });
    let bare =
        json!({ "apiVersion": "policy/v1", "kind": "Eviction", "metadata": { "name": "web-1" } });
    let want = |grace| Eviction {
        namespace: "shop".into(),
        name: "web-1".into(),
        dry_run: false,
        requester: "system:serviceaccount:kube-system:vpa-updater".into(),
        grace,
    };
    let table = [
        (
            review("pods", Some("eviction"), Some("shop"), eviction.clone()),
            Some(want(Some(7))),
        ),
        (
            review("pods", Some("eviction"), Some("shop"), bare),
            Some(want(None)),
        ),
        (review("pods", None, Some("shop"), eviction.clone()), None),
        (
            review("pods", Some("status"), Some("shop"), eviction.clone()),
            None,
        ),
        (
            review("services", Some("eviction"), Some("shop"), eviction.clone()),
            None,
        ),
        (review("pods", Some("eviction"), None, eviction), None),
    ];
    for (req, expected) in table {
        assert_eq!(Eviction::of(&req), expected, "{:?}", req.resource);
    }
}

#[test]
fn slim_keeps_every_fact_and_the_resource_version() {
    let meta: PartialObjectMeta<Pod> = serde_json::from_value(json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {
            "name": "web-7d9f8-abcde", "namespace": "shop", "generateName": "web-7d9f8-",
            "uid": "u1", "resourceVersion": "42", "deletionTimestamp": "2026-01-01T00:00:00Z",
            "labels": { "app": "web", "pod-template-hash": "7d9f8" },
            "annotations": { "vpa-managed": "true", "steward.io/drain-requested-at": "t" },
            "ownerReferences": [
                { "apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u2" },
                { "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8", "uid": "u3", "controller": true }
            ],
            "managedFields": [{ "manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": { "f:metadata": {} } }]
        }
    }))
    .unwrap();
    let mut slimmed = meta.clone();
    slim(&mut slimmed);
    assert_eq!(
        format!("{:?}", facts(&slimmed.metadata)),
        format!("{:?}", facts(&meta.metadata))
    );
    assert_eq!(
        facts(&slimmed.metadata).workload.as_deref(),
        Some("Deployment/web")
    );
    assert_eq!(slimmed.resource_version(), meta.resource_version());
    assert_eq!(
        ObjectRef::from_obj(&slimmed).within("shop").name,
        "web-7d9f8-abcde"
    );
    assert!(slimmed.metadata.managed_fields.is_none());
    assert_eq!(slimmed.owner_references().len(), 1);

    // No controller owner: none kept, and the facts agree.
    let mut bare = meta.clone();
    bare.metadata.owner_references = Some(vec![meta.owner_references()[0].clone()]);
    let mut slim_bare = bare.clone();
    slim(&mut slim_bare);
    assert_eq!(
        format!("{:?}", facts(&slim_bare.metadata)),
        format!("{:?}", facts(&bare.metadata))
    );
    assert!(slim_bare.metadata.owner_references.is_none());
}
