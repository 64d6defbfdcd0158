use std::time::Duration;

use super::*;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn node(ready: Option<i64>) -> NodeView {
    NodeView {
        name: "n1".into(),
        ready_since: ready.map(t),
        ..NodeView::default()
    }
}

fn exporter(scheduled: i64, ready: Option<i64>) -> ExporterView {
    ExporterView {
        pod: "mon-node-exporter-abc".into(),
        scheduled_at: Some(t(scheduled)),
        ready_at: ready.map(t),
        image: "quay.io/prometheus/node-exporter:v1.9.1".into(),
        ..ExporterView::default()
    }
}

const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn a_node_walks_every_step_and_keeps_its_times() {
    let n = node(Some(0));
    let none = ScrapeView::default();
    let o = step(None, &node(None), None, &none, t(-100), DEADLINE, t(-1));
    assert_eq!(o.record.step, "NotReady");
    let o = step(Some(&o.record), &n, None, &none, t(-100), DEADLINE, t(1));
    assert_eq!(o.record.step, "WaitingForExporter");
    let o = step(
        Some(&o.record),
        &n,
        Some(&exporter(1, None)),
        &none,
        t(-100),
        DEADLINE,
        t(2),
    );
    assert_eq!(o.record.step, "ExporterStarting");
    let e = exporter(1, Some(3));
    let o = step(
        Some(&o.record),
        &n,
        Some(&e),
        &none,
        t(-100),
        DEADLINE,
        t(4),
    );
    assert_eq!(o.record.step, "WaitingForScrape");
    let up = ScrapeView {
        up: Some(true),
        last_sample: Some(t(5)),
        availability: Some(1.0),
    };
    let o = step(Some(&o.record), &n, Some(&e), &up, t(-100), DEADLINE, t(6));
    assert_eq!(o.record.step, "Monitored");
    assert_eq!(o.onboarded, Some(5.0));
    assert_eq!(o.record.onboarding_seconds, Some(5.0));
    assert_eq!(o.record.first_sample_at, Some(t(5).to_string()));
    assert_eq!(o.record.exporter_ready_at, Some(t(3).to_string()));
    assert_eq!(o.record.target_up_at, Some(t(6).to_string()));
    // Later steps never move the recorded times nor count the node again.
    let later = ScrapeView {
        last_sample: Some(t(50)),
        ..up
    };
    let o2 = step(
        Some(&o.record),
        &n,
        Some(&e),
        &later,
        t(-100),
        DEADLINE,
        t(51),
    );
    assert_eq!(o2.onboarded, None);
    assert_eq!(o2.record.first_sample_at, o.record.first_sample_at);
    assert_eq!(o2.record.target_up_at, o.record.target_up_at);
}

#[test]
fn a_node_ready_before_install_is_measured_from_the_install() {
    let up = ScrapeView {
        up: Some(true),
        last_sample: Some(t(1010)),
        availability: None,
    };
    let o = step(
        None,
        &node(Some(0)),
        Some(&exporter(1000, Some(1005))),
        &up,
        t(1000),
        DEADLINE,
        t(1011),
    );
    assert_eq!(o.onboarded, Some(10.0));
}

#[test]
fn late_nodes_are_reported_once_per_cause() {
    let n = node(Some(0));
    let none = ScrapeView::default();
    let e = exporter(1, Some(3));
    let o = step(None, &n, Some(&e), &none, t(-1), DEADLINE, t(60));
    assert_eq!(o.late, None, "not late before the deadline");
    let o = step(
        Some(&o.record),
        &n,
        Some(&e),
        &none,
        t(-1),
        DEADLINE,
        t(121),
    );
    assert_eq!(o.late, Some(Cause::TargetNotDiscovered));
    let o = step(
        Some(&o.record),
        &n,
        Some(&e),
        &none,
        t(-1),
        DEADLINE,
        t(130),
    );
    assert_eq!(o.late, None, "same cause reported once");
    let down = ScrapeView {
        up: Some(false),
        ..none
    };
    let o = step(
        Some(&o.record),
        &n,
        Some(&e),
        &down,
        t(-1),
        DEADLINE,
        t(140),
    );
    assert_eq!(
        o.late,
        Some(Cause::ScrapeFailing),
        "a new cause is reported"
    );
    assert_eq!(o.record.late_cause.as_deref(), Some("ScrapeFailing"));
}

#[test]
fn causes() {
    let ready = node(Some(0));
    let none = ScrapeView::default();
    let tainted = NodeView {
        untolerated_taints: vec!["gpu=true:NoSchedule".into()],
        ..ready.clone()
    };
    let port = NodeView {
        port_9100_holders: vec!["kube-system/other-exporter".into()],
        ..ready.clone()
    };
    let pull = ExporterView {
        ready_at: None,
        waiting_reason: Some("ImagePullBackOff".into()),
        ..exporter(1, None)
    };
    let pending = ExporterView {
        scheduled_at: None,
        unschedulable: Some(
            "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports"
                .into(),
        ),
        ..exporter(1, None)
    };
    let up = ScrapeView {
        up: Some(true),
        last_sample: Some(t(1)),
        availability: None,
    };
    let not_ready = node(None);
    let starting = exporter(1, None);
    let running = exporter(1, Some(2));
    let down = ScrapeView {
        up: Some(false),
        ..none
    };
    let cases: Vec<(&NodeView, Option<&ExporterView>, &ScrapeView, Option<&str>)> = vec![
        (&not_ready, None, &none, Some("NodeNotReady")),
        (&tainted, None, &none, Some("TaintNotTolerated")),
        (&port, None, &none, Some("HostPortConflict")),
        (&ready, Some(&pending), &none, Some("HostPortConflict")),
        (&ready, None, &none, Some("NoExporterPod")),
        (&ready, Some(&pull), &none, Some("ImagePull")),
        (&ready, Some(&starting), &none, Some("ExporterNotReady")),
        (&ready, Some(&running), &none, Some("TargetNotDiscovered")),
        (&ready, Some(&running), &down, Some("ScrapeFailing")),
        (&ready, Some(&running), &up, None),
    ];
    for (n, e, s, want) in cases {
        assert_eq!(
            cause(n, e, s).map(|c| c.reason()),
            want,
            "{n:?} {e:?} {s:?}"
        );
    }
}
