//! The MonitoringStack's status after each step of a reconcile, and whether a
//! step says something new (an Event is published only then). Pure: the
//! controller reads, calls these, and writes the status once at the end.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use steward_runtime::{Lang, Localized};

use super::conditions::{self, AVAILABLE, PREFLIGHT_PASSED, PROMETHEUS_REACHABLE, SPEC_VALID};
use super::preflight::{self, BLOCKING, WARNING};
use crate::crd::{MonitoringStackStatus, ObjectRef, PreflightFinding};
use crate::messages::Msg;

/// The spec did not validate: `SpecValid=False` naming every wrong field, phase
/// `Invalid`. Returns the message when it is new (to publish as an Event).
pub fn spec_invalid(
    status: &mut MonitoringStackStatus,
    errors: &[String],
    generation: Option<i64>,
    lang: Lang,
    now: Timestamp,
) -> Option<String> {
    let msg = Msg::SpecInvalid { errors }.render(lang);
    let new = says_new(status, SPEC_VALID, &msg);
    conditions::set(
        &mut status.conditions,
        SPEC_VALID,
        false,
        "InvalidSpec",
        &msg,
        now,
    );
    status.phase = Some("Invalid".into());
    status.observed_generation = generation;
    new.then_some(msg)
}

/// The spec validated.
pub fn spec_valid(status: &mut MonitoringStackStatus, now: Timestamp) {
    conditions::set(
        &mut status.conditions,
        SPEC_VALID,
        true,
        "Valid",
        "spec is valid",
        now,
    );
}

/// What pre-flight decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Nothing blocking: install.
    Passed,
    /// Something blocks the install; `Some` message when it is new.
    Blocked(Option<String>),
}

/// Records pre-flight's findings for `generation` and `profile`:
/// `PreflightPassed` (with the warnings, if any), or `False` and phase `Failed`.
pub fn preflight(
    status: &mut MonitoringStackStatus,
    findings: &[PreflightFinding],
    generation: Option<i64>,
    profile: &str,
    lang: Lang,
    now: Timestamp,
) -> Preflight {
    status.preflight = findings.to_vec();
    status.observed_generation = generation;
    status.profile = Some(profile.into());
    let lines = |severity: &str| -> Vec<String> {
        findings
            .iter()
            .filter(|f| f.severity == severity)
            .map(|f| format!("{}: {}", f.check, f.message))
            .collect()
    };
    if preflight::blocked(findings) {
        let msg = Msg::PreflightBlocked {
            findings: &lines(BLOCKING),
        }
        .render(lang);
        let new = says_new(status, PREFLIGHT_PASSED, &msg);
        conditions::set(
            &mut status.conditions,
            PREFLIGHT_PASSED,
            false,
            "Blocked",
            &msg,
            now,
        );
        status.phase = Some("Failed".into());
        return Preflight::Blocked(new.then_some(msg));
    }
    let warnings = lines(WARNING);
    let (reason, msg) = if warnings.is_empty() {
        ("Passed", "all checks passed".to_string())
    } else {
        ("PassedWithWarnings", warnings.join("; "))
    };
    conditions::set(
        &mut status.conditions,
        PREFLIGHT_PASSED,
        true,
        reason,
        &msg,
        now,
    );
    Preflight::Passed
}

/// Records an apply: the inventory, the configuration's hash, the first apply's
/// time. Returns whether anything changed (objects, configuration, or something
/// pruned), which is worth an Event.
pub fn applied(
    status: &mut MonitoringStackStatus,
    inventory: Vec<ObjectRef>,
    config_hash: &str,
    pruned: usize,
    now: Timestamp,
) -> bool {
    let changed = status.inventory != inventory
        || status.config_hash.as_deref() != Some(config_hash)
        || pruned > 0;
    status.inventory = inventory;
    status.config_hash = Some(config_hash.to_string());
    status.applied_at.get_or_insert_with(|| now.to_string());
    changed
}

/// `Available` from the workloads not yet available (`Kind/name (why)`), and the
/// phase: `Installed` when none is waiting, `Installing` otherwise.
pub fn availability(status: &mut MonitoringStackStatus, waiting: &[String], now: Timestamp) {
    if waiting.is_empty() {
        conditions::set(
            &mut status.conditions,
            AVAILABLE,
            true,
            "AllAvailable",
            "every component is Available",
            now,
        );
        status.phase = Some("Installed".into());
    } else {
        conditions::set(
            &mut status.conditions,
            AVAILABLE,
            false,
            "Waiting",
            &format!("waiting for {}", waiting.join(", ")),
            now,
        );
        status.phase = Some("Installing".into());
    }
}

/// `PrometheusReachable` from the last onboarding query: `Ok(url)` answered, or
/// the error.
pub fn prometheus(status: &mut MonitoringStackStatus, answer: Result<&str, &str>, now: Timestamp) {
    match answer {
        Ok(url) => conditions::set(
            &mut status.conditions,
            PROMETHEUS_REACHABLE,
            true,
            "Answered",
            &format!("{url} answered"),
            now,
        ),
        Err(e) => conditions::set(
            &mut status.conditions,
            PROMETHEUS_REACHABLE,
            false,
            "QueryFailed",
            e,
            now,
        ),
    }
}

/// Whether helm mode upgrades on this pass: the values, chart or spec changed,
/// or the last pass did not settle. A failed upgrade was rolled back; it is
/// retried when the spec changes, not in a loop.
pub fn helm_due(status: &MonitoringStackStatus, hash: &str, generation: Option<i64>) -> bool {
    let settled = matches!(status.phase.as_deref(), Some("Installed" | "Failed"));
    !(status.config_hash.as_deref() == Some(hash)
        && status.observed_generation == generation
        && settled)
}

/// The release is deployed: `Available=True, HelmDeployed`, naming the CRDs applied first.
pub fn helm_deployed(
    status: &mut MonitoringStackStatus,
    release: &str,
    crds: &[String],
    hash: String,
    now: Timestamp,
) {
    status.config_hash = Some(hash);
    status.applied_at.get_or_insert_with(|| now.to_string());
    status.phase = Some("Installed".into());
    let crds = if crds.is_empty() {
        "none".to_string()
    } else {
        crds.join(", ")
    };
    conditions::set(
        &mut status.conditions,
        AVAILABLE,
        true,
        "HelmDeployed",
        &format!("release {release} deployed; CRDs applied first: {crds}"),
        now,
    );
}

/// The upgrade failed and `--atomic` rolled it back: phase `Failed`,
/// `Available=False, HelmFailed`.
pub fn helm_failed(status: &mut MonitoringStackStatus, error: &str, hash: String, now: Timestamp) {
    status.config_hash = Some(hash);
    status.phase = Some("Failed".into());
    conditions::set(
        &mut status.conditions,
        AVAILABLE,
        false,
        "HelmFailed",
        &format!("{error}; the release was rolled back"),
        now,
    );
}

/// Whether the embedded stack is applied on this pass: at once on a spec or
/// profile change (`changed`); otherwise when its render changed or the resync
/// period passed (`stale`), but a stack blocked by pre-flight only every
/// `blocked_retry` (pre-flight lists every pod of the cluster).
pub fn apply_due(
    changed: bool,
    stale: bool,
    blocked_for: Option<Duration>,
    blocked_retry: Duration,
) -> bool {
    changed || (stale && blocked_for.is_none_or(|d| d >= blocked_retry))
}

/// Whether the last render is stale: never applied by this process, applied
/// `resync` or longer ago, or its hash differs.
pub fn stale(last: Option<(Duration, &str)>, hash: &str, resync: Duration) -> bool {
    last.is_none_or(|(ago, h)| ago >= resync || h != hash)
}

fn says_new(status: &MonitoringStackStatus, type_: &str, msg: &str) -> bool {
    conditions::get(&status.conditions, type_).map(|c| c.message.as_str()) != Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn finding(severity: &str, check: &str) -> PreflightFinding {
        PreflightFinding {
            check: check.into(),
            severity: severity.into(),
            message: format!("{check} says so"),
        }
    }

    fn cond<'a>(s: &'a MonitoringStackStatus, ty: &str) -> (&'a str, &'a str) {
        let c = conditions::get(&s.conditions, ty).unwrap_or_else(|| panic!("{ty}: {s:?}"));
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn an_invalid_spec_is_said_once() {
        let mut s = MonitoringStackStatus::default();
        let errs = vec!["spec.retention: bad".to_string()];
        let first = spec_invalid(&mut s, &errs, Some(3), Lang::En, t(0));
        assert!(first.is_some_and(|m| m.contains("spec.retention")));
        assert_eq!(
            (s.phase.as_deref(), s.observed_generation),
            (Some("Invalid"), Some(3))
        );
        assert_eq!(cond(&s, SPEC_VALID), ("False", "InvalidSpec"));
        assert_eq!(spec_invalid(&mut s, &errs, Some(3), Lang::En, t(1)), None);
        let other = vec!["spec.profile: bad".to_string()];
        assert!(spec_invalid(&mut s, &other, Some(4), Lang::En, t(2)).is_some());
        spec_valid(&mut s, t(3));
        assert_eq!(cond(&s, SPEC_VALID), ("True", "Valid"));
    }

    #[test]
    fn preflight_outcomes() {
        // (findings, phase, PreflightPassed (status, reason), the check that blocks)
        type Case<'a> = (
            &'a [PreflightFinding],
            Option<&'a str>,
            (&'a str, &'a str),
            Option<&'a str>,
        );
        let table: [Case; 4] = [
            (&[], None, ("True", "Passed"), None),
            (
                &[finding(WARNING, "storage")],
                None,
                ("True", "PassedWithWarnings"),
                None,
            ),
            (
                &[finding(BLOCKING, "room"), finding(WARNING, "storage")],
                Some("Failed"),
                ("False", "Blocked"),
                Some("room"),
            ),
            (&[finding("ok", "crds")], None, ("True", "Passed"), None),
        ];
        for (findings, phase, want, blocked_by) in table {
            let mut s = MonitoringStackStatus::default();
            let out = preflight(&mut s, findings, Some(2), "kind", Lang::En, t(0));
            assert_eq!(s.phase.as_deref(), phase, "{findings:?}");
            assert_eq!(cond(&s, PREFLIGHT_PASSED), want, "{findings:?}");
            assert_eq!(s.preflight, findings.to_vec());
            assert_eq!(
                (s.observed_generation, s.profile.as_deref()),
                (Some(2), Some("kind"))
            );
            match (out, blocked_by) {
                (Preflight::Passed, None) => {}
                (Preflight::Blocked(Some(m)), Some(check)) => {
                    assert!(m.contains(check) && !m.contains("storage"), "{m}");
                    // The same findings again: nothing new to say.
                    let again = preflight(&mut s, findings, Some(2), "kind", Lang::En, t(1));
                    assert_eq!(again, Preflight::Blocked(None));
                }
                (other, _) => panic!("{findings:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn applies_are_worth_an_event_when_something_changed() {
        let obj = |n: &str| ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("mon".into()),
            name: n.into(),
        };
        let mut s = MonitoringStackStatus::default();
        assert!(applied(&mut s, vec![obj("a")], "h1", 0, t(0)));
        assert_eq!(s.applied_at, Some(t(0).to_string()));
        let table = [
            (vec![obj("a")], "h1", 0, false),
            (vec![obj("a")], "h2", 0, true),
            (vec![obj("a"), obj("b")], "h2", 0, true),
            (vec![obj("a"), obj("b")], "h2", 1, true),
            (vec![obj("a"), obj("b")], "h2", 0, false),
        ];
        for (i, (inventory, hash, pruned, want)) in table.into_iter().enumerate() {
            assert_eq!(
                applied(&mut s, inventory, hash, pruned, t(10)),
                want,
                "step {i}"
            );
        }
        assert_eq!(
            s.applied_at,
            Some(t(0).to_string()),
            "first apply's time kept"
        );
    }

    #[test]
    fn availability_sets_the_phase() {
        let mut s = MonitoringStackStatus::default();
        availability(
            &mut s,
            &["Deployment/mon-grafana (0 available)".into()],
            t(0),
        );
        assert_eq!(s.phase.as_deref(), Some("Installing"));
        assert_eq!(cond(&s, AVAILABLE), ("False", "Waiting"));
        availability(&mut s, &[], t(1));
        assert_eq!(s.phase.as_deref(), Some("Installed"));
        assert_eq!(cond(&s, AVAILABLE), ("True", "AllAvailable"));
        prometheus(&mut s, Err("connection refused"), t(2));
        assert_eq!(cond(&s, PROMETHEUS_REACHABLE), ("False", "QueryFailed"));
        prometheus(&mut s, Ok("http://p:9090"), t(3));
        assert_eq!(cond(&s, PROMETHEUS_REACHABLE), ("True", "Answered"));
    }

    #[test]
    fn helm_passes() {
        let mut s = MonitoringStackStatus::default();
        assert!(helm_due(&s, "h", Some(1)), "never deployed");
        helm_deployed(&mut s, "mon", &["a.example.com".into()], "h".into(), t(0));
        assert_eq!(s.phase.as_deref(), Some("Installed"));
        assert_eq!(cond(&s, AVAILABLE), ("True", "HelmDeployed"));
        s.observed_generation = Some(1);
        let table = [
            ("h", Some(1), false),
            ("other", Some(1), true),
            ("h", Some(2), true),
        ];
        for (hash, generation, want) in table {
            assert_eq!(
                helm_due(&s, hash, generation),
                want,
                "{hash} {generation:?}"
            );
        }
        helm_failed(&mut s, "helm upgrade: timed out", "h2".into(), t(1));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(cond(&s, AVAILABLE), ("False", "HelmFailed"));
        assert!(
            !helm_due(&s, "h2", Some(1)),
            "a rolled-back upgrade waits for a change"
        );
        s.phase = Some("Installing".into());
        assert!(helm_due(&s, "h2", Some(1)), "not settled");
        assert_eq!(s.applied_at, Some(t(0).to_string()));
    }

    #[test]
    fn when_to_apply() {
        let (s, retry) = (Duration::from_secs, Duration::from_secs(30));
        let table = [
            (true, false, Some(s(1)), true),
            (false, false, None, false),
            (false, true, None, true),
            (false, true, Some(s(5)), false),
            (false, true, Some(s(30)), true),
        ];
        for (changed, stale, blocked_for, want) in table {
            assert_eq!(
                apply_due(changed, stale, blocked_for, retry),
                want,
                "{changed} {stale} {blocked_for:?}"
            );
        }
        let resync = s(300);
        let table = [
            (None, "h", true),
            (Some((s(10), "h")), "h", false),
            (Some((s(10), "old")), "h", true),
            (Some((s(300), "h")), "h", true),
        ];
        for (last, hash, want) in table {
            assert_eq!(stale(last, hash, resync), want, "{last:?}");
        }
    }
}
