//! The configuration: documents that must be refused (naming the field),
//! targeting, and how settings layer for one pod.

use super::*;

fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn invalid_documents_name_the_field() {
    let table = [
        ("version: 2\n", "version"),
        ("selector: {}\n", "version"),
        (
            "version: 1\ndefaults:\n  maxWait: ten\n",
            "defaults.maxWait",
        ),
        (
            "version: 1\ndefaults:\n  minWait: 30s\n  maxWait: 10s\n",
            "defaults.maxWait",
        ),
        ("version: 1\ndefaults:\n  maxWiat: 10s\n", "defaults"),
        (
            "version: 1\noverrides:\n- namespace: a\n  workload: web\n",
            "overrides[0].workload",
        ),
        (
            "version: 1\noverrides:\n- namespace: a\n  minWait: 2m\n",
            "overrides[0].maxWait",
        ),
        (
            "version: 1\noverrides:\n- namespace: ''\n",
            "overrides[0].namespace",
        ),
        ("version: [1]\n", "version"),
        (
            "version: 1\nevicters:\n  exclude: [\"system:*:karpenter\"]\n",
            "evicters.exclude[0]",
        ),
        (
            "version: 1\nevicters:\n  include: [\"\"]\n",
            "evicters.include[0]",
        ),
        ("- a\n- b\n", "config"),
    ];
    for (yaml, field) in table {
        match Config::parse(yaml) {
            Err(Error::InvalidConfig { field: f, reason }) => {
                assert!(
                    f.starts_with(field),
                    "{yaml:?}: field {f} ({reason}), want {field}"
                )
            }
            other => panic!("{yaml:?}: {other:?}"),
        }
    }
}

#[test]
fn targeting_by_annotation_namespace_and_override() {
    let c = Config::parse(
        "version: 1\nnamespaces:\n  exclude: [batch]\noverrides:\n- namespace: shop\n  workload: Deployment/legacy\n  disabled: true\n",
    )
    .unwrap();
    let vpa = ann(&[("vpa-managed", "true")]);
    let none = ann(&[]);
    let table = [
        ("shop", Some("Deployment/web"), &vpa, true),
        ("shop", Some("Deployment/legacy"), &vpa, false),
        ("shop", Some("Deployment/web"), &none, false),
        ("batch", Some("Deployment/web"), &vpa, false),
        ("other", None, &vpa, true),
    ];
    for (ns, w, a, want) in table {
        let pod = PodRef {
            namespace: ns,
            workload: w,
            annotations: a,
        };
        assert_eq!(c.targets(pod, false), want, "{ns} {w:?} {a:?}");
    }
}

#[test]
fn settings_layer_defaults_namespace_workload_and_annotations() {
    let c = Config::parse(
        "version: 1\ndefaults:\n  minWait: 1s\n  maxWait: 30s\n  delay: 5s\n  probe: { port: 9090, gauge: inflight }\noverrides:\n- namespace: shop\n  workload: Deployment/web\n  delay: 7s\n- namespace: shop\n  maxWait: 40s\n  delay: 6s\n",
    )
    .unwrap();
    let a = ann(&[
        (ANN_MIN_WAIT, "2s"),
        (ANN_PROBE_URL, "http://127.0.0.1:1/m"),
    ]);
    let (s, errs) = c.settings(PodRef {
        namespace: "shop",
        workload: Some("Deployment/web"),
        annotations: &a,
    });
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(s.min_wait, Duration::from_secs(2));
    assert_eq!(s.max_wait, Duration::from_secs(40));
    assert_eq!(s.delay, Duration::from_secs(7), "workload beats namespace");
    assert_eq!(
        s.probe,
        Some(ProbeTarget::Url {
            url: "http://127.0.0.1:1/m".into(),
            gauge: Some("inflight".into())
        })
    );
    let bad = ann(&[(ANN_MAX_WAIT, "soon")]);
    let (s, errs) = c.settings(PodRef {
        namespace: "x",
        workload: None,
        annotations: &bad,
    });
    assert_eq!(
        s.max_wait,
        Duration::from_secs(30),
        "bad annotation ignored"
    );
    assert!(matches!(&errs[..], [Error::InvalidConfig { field, .. }] if field == ANN_MAX_WAIT));
}

#[test]
fn empty_document_with_version_is_the_default() {
    assert_eq!(Config::parse("version: 1\n").unwrap(), Config::default());
}

#[test]
fn config_and_annotations_choose_the_probe() {
    let c = Config::parse(
        "version: 1\ndefaults:\n  probe: { connections: { ports: [8080] } }\noverrides:\n- namespace: mesh\n  probe: { istio: {} }\n- namespace: bad\n  probe: { port: 1, connections: { ports: [1] } }\n",
    );
    match c {
        Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "overrides[1].probe"),
        other => panic!("{other:?}"),
    }
    let c = Config::parse(
        "version: 1\ndefaults:\n  probe: { connections: { ports: [8080] } }\noverrides:\n- namespace: mesh\n  probe: { istio: {} }\n",
    )
    .unwrap();
    let probe = |ns: &str, ann: &[(&str, &str)]| {
        let a: BTreeMap<String, String> = ann
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (s, errs) = c.settings(PodRef {
            namespace: ns,
            workload: None,
            annotations: &a,
        });
        (s.probe, errs.len())
    };
    let conn = |ports: Vec<u16>| Some(ProbeTarget::Connections { ports });
    assert_eq!(probe("web", &[]), (conn(vec![8080]), 0));
    assert!(matches!(probe("mesh", &[]).0, Some(ProbeTarget::PodPort(p)) if p.port == 15090));
    assert_eq!(
        probe("mesh", &[(ANN_PORTS, "9000, 9001")]),
        (conn(vec![9000, 9001]), 0)
    );
    // The ports annotation wins over the URL; a bad one is reported and ignored.
    assert_eq!(
        probe("web", &[(ANN_PORTS, "9000"), (ANN_PROBE_URL, "http://x/m")]),
        (conn(vec![9000]), 0)
    );
    assert_eq!(probe("web", &[(ANN_PORTS, "http")]), (conn(vec![8080]), 1));
    assert_eq!(probe("web", &[(ANN_PORTS, "")]), (conn(vec![8080]), 1));
    // An istio preset keeps its gauge behind a probe URL.
    assert!(matches!(
        probe("mesh", &[(ANN_PROBE_URL, "http://127.0.0.1:1/stats/prometheus")]).0,
        Some(ProbeTarget::Url { gauge: Some(g), .. }) if g.contains("0.0.0.0_15006")
    ));
}
