use serde_json::json;

use super::*;
use crate::core::fixtures::node;

fn b(nodes: &str, reasons: Option<&[&str]>) -> Budget {
    Budget {
        nodes: nodes.into(),
        reasons: reasons.map(|r| r.iter().map(|s| s.to_string()).collect()),
        ..Budget::default()
    }
}

fn window(nodes: &str, schedule: &str, duration: &str) -> Budget {
    Budget {
        schedule: Some(schedule.into()),
        duration: Some(duration.into()),
        ..b(nodes, None)
    }
}

fn at(t: &str) -> Timestamp {
    t.parse().unwrap()
}

#[test]
fn scaling_rounds_percentages_up() {
    for (nodes, total, want) in [
        ("0", 10, Ok(0)),
        ("3", 10, Ok(3)),
        ("10%", 10, Ok(1)),
        ("5%", 10, Ok(1)),
        ("10%", 0, Ok(0)),
        ("34%", 3, Ok(2)),
        ("100%", 7, Ok(7)),
        ("101%", 7, Err(())),
        ("x%", 7, Err(())),
        ("-1", 7, Err(())),
    ] {
        assert_eq!(
            scaled(nodes, total).map_err(|_| ()),
            want,
            "{nodes} of {total}"
        );
    }
}

#[test]
fn a_window_is_open_from_its_schedule_for_its_duration_in_utc() {
    // Weekdays 09:00 UTC for 8 hours; 2026-12-01 is a Tuesday.
    let office = window("0", "0 9 * * mon-fri", "8h");
    for (now, open) in [
        ("2026-12-01T08:59:59Z", false),
        ("2026-12-01T09:00:00Z", true),
        ("2026-12-01T16:59:59Z", true),
        ("2026-12-01T17:00:01Z", false),
        ("2026-12-05T10:00:00Z", false), // a Saturday
    ] {
        assert_eq!(active(&office, at(now)), Ok(open), "{now}");
    }
    let daily = window("0", "@daily", "1h30m");
    assert_eq!(active(&daily, at("2026-12-01T01:29:00Z")), Ok(true));
    assert_eq!(active(&daily, at("2026-12-01T01:31:00Z")), Ok(false));
    assert_eq!(active(&b("0", None), at("2026-12-01T00:00:00Z")), Ok(true));
    for bad in [
        Budget {
            schedule: Some("@daily".into()),
            ..b("0", None)
        },
        window("0", "0 9 * *", "8h"),
        window("0", "0 0 9 * * *", "8h"),
        window("0", "@daily", "eight hours"),
        window("0", "@daily", "-1h"),
    ] {
        assert!(active(&bad, at("2026-12-01T00:00:00Z")).is_err(), "{bad:?}");
    }
}

#[test]
fn the_smallest_budget_in_force_for_drift_wins() {
    let now = at("2026-12-01T12:00:00Z");
    let night = window("0", "0 22 * * *", "4h"); // closed at noon
    // (budgets, pool nodes, disrupting, allowed, from)
    type Case = (Vec<Budget>, usize, usize, Option<usize>, Option<usize>);
    let cases: Vec<Case> = vec![
        (vec![], 20, 0, None, None),
        (vec![b("5", None), b("2", None)], 20, 0, Some(2), Some(1)),
        (vec![night.clone(), b("4", None)], 20, 0, Some(4), Some(1)),
        (
            vec![window("0", "0 11 * * *", "2h"), b("4", None)],
            20,
            0,
            Some(0),
            Some(0),
        ),
        (
            vec![b("0", Some(&["Empty", "Underutilized"])), b("3", None)],
            20,
            0,
            Some(3),
            Some(1),
        ),
        (
            vec![b("0", Some(&["Drifted"])), b("3", None)],
            20,
            0,
            Some(0),
            Some(0),
        ),
        (vec![b("0", Some(&["Empty"]))], 20, 0, None, None),
        (vec![b("50%", None)], 10, 2, Some(3), Some(0)),
        (vec![b("1", None)], 10, 4, Some(0), Some(0)),
    ];
    for (budgets, total, disrupting, allowed, from) in cases {
        let a = allowance(budgets.clone(), now, total, disrupting).unwrap();
        assert_eq!((a.allowed, a.from), (allowed, from), "{budgets:?}");
    }
}

#[test]
fn a_bad_budget_fails_closed_naming_its_index() {
    let now = at("2026-12-01T12:00:00Z");
    let e = allowance(vec![b("2", None), b("lots", None)], now, 5, 0).unwrap_err();
    assert_eq!(e.index, 1);
    assert!(e.to_string().contains("budgets[1]"), "{e}");
    let e = allowance(vec![window("1", "every day", "1h")], now, 5, 0).unwrap_err();
    assert_eq!(e.index, 0);
}

#[test]
fn budgets_are_read_from_either_api_version() {
    let v1 = json!({ "disruption": { "budgets": [
        { "nodes": "10%", "reasons": ["Drifted"] },
        { "nodes": "0", "schedule": "@daily", "duration": "10m" },
    ] } });
    let got = read(&v1).unwrap();
    assert_eq!(
        got[0].reasons.as_deref(),
        Some(&["Drifted".to_string()][..])
    );
    assert_eq!(got[1].duration.as_deref(), Some("10m"));
    let v1beta1 = json!({ "disruption": { "consolidationPolicy": "WhenUnderutilized", "budgets": [{ "nodes": "3" }] } });
    assert_eq!(read(&v1beta1).unwrap(), vec![b("3", None)]);
    assert_eq!(read(&json!({})).unwrap(), vec![]);
    assert!(read(&json!({ "disruption": { "budgets": [{ "nodes": 3 }] } })).is_err());
}

#[test]
fn the_census_counts_nodes_disrupted_by_others_only() {
    let mut not_ready = node("a", "2026-01-01T00:00:00Z", None);
    not_ready
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()[0]
        .status = "False".into();
    let mut tainted = node("b", "2026-01-01T00:00:00Z", None);
    tainted.spec.get_or_insert_default().taints = Some(vec![k8s_openapi::api::core::v1::Taint {
        key: DISRUPTED_TAINT.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }]);
    let mut ours = node("c", "2026-01-01T00:00:00Z", Some("draining"));
    ours.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
    let healthy = node("d", "2026-01-01T00:00:00Z", None);
    assert_eq!(census(&[not_ready, tainted, ours, healthy]), (4, 2));
}
