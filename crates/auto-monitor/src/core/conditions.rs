//! Status conditions (the `metav1.Condition` rules). Pure.

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

#[cfg(test)]
mod tests {
    use super::*;

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
