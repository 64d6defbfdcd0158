//! Status conditions and toleration matching. Pure.

use k8s_openapi::api::core::v1::{Taint, Toleration};
use k8s_openapi::jiff::Timestamp;

use crate::crd::Condition;

/// Condition: the spec validated.
pub const SPEC_VALID: &str = "SpecValid";
/// Condition: pre-flight found nothing blocking.
pub const PREFLIGHT_PASSED: &str = "PreflightPassed";
/// Condition: every workload is Available.
pub const AVAILABLE: &str = "Available";
/// Condition: the Prometheus API answered the last onboarding query.
pub const PROMETHEUS_REACHABLE: &str = "PrometheusReachable";

/// Sets a condition; the transition time moves only when the status flips.
pub fn set(
    conds: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let status = if ok { "True" } else { "False" };
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now.to_string();
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
        }
        None => conds.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: now.to_string(),
        }),
    }
}

/// The condition of a type, if set.
pub fn get<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Whether `tol` tolerates `taint` (the scheduler's rule).
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    let effect_ok = tol
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = tol.key.as_deref().is_none_or(|k| k.is_empty())
        && tol.operator.as_deref() == Some("Exists")
        || tol.key.as_deref() == Some(taint.key.as_str());
    let value_ok = match tol.operator.as_deref() {
        Some("Exists") => true,
        _ => tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
    };
    effect_ok && key_ok && value_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>) -> Toleration {
        Toleration {
            key: key.map(String::from),
            operator: Some(op.into()),
            value: value.map(String::from),
            effect: effect.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn toleration_rules() {
        let taint = Taint {
            key: "gpu".into(),
            value: Some("true".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        for (t, want) in [
            (tol(None, "Exists", None, None), true),
            (tol(Some("gpu"), "Exists", None, None), true),
            (
                tol(Some("gpu"), "Equal", Some("true"), Some("NoSchedule")),
                true,
            ),
            (tol(Some("gpu"), "Equal", Some("false"), None), false),
            (tol(Some("gpu"), "Exists", None, Some("NoExecute")), false),
            (tol(Some("other"), "Exists", None, None), false),
        ] {
            assert_eq!(tolerates(&t, &taint), want, "{t:?}");
        }
    }

    #[test]
    fn transition_time_moves_only_on_flip() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(1_800_000_100).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut c = Vec::new();
        set(&mut c, SPEC_VALID, true, "Valid", "ok", t0);
        set(&mut c, SPEC_VALID, true, "Valid", "still ok", t1);
        assert_eq!(c[0].last_transition_time, t0.to_string());
        set(&mut c, SPEC_VALID, false, "InvalidSpec", "bad", t1);
        assert_eq!(c[0].last_transition_time, t1.to_string());
        assert_eq!(c.len(), 1);
    }
}
