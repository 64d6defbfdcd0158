//! `spec.helm`, which becomes helm's argument list: nothing in it may read as a
//! flag, the version must be a semver, the release a helm release name, and the
//! chart one the controller's operator allowed (`--helm-chart`). Whoever may
//! create a MonitoringStack must not be able to run another chart (or a
//! `--post-renderer`) with the controller's rights. Pure.

use super::settings::{FieldError, InstallMode};
use super::{Errors, prom_duration};
use crate::crd::MonitoringStackSpec;

/// Charts the controller installs when its flags name none: kube-prometheus-stack
/// from its Helm repository (added as `prometheus-community`) and its OCI home.
pub const DEFAULT_CHARTS: [&str; 2] = [
    "prometheus-community/kube-prometheus-stack",
    "oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack",
];

/// The syntactic checks of `spec.helm`, with the rest of the spec's.
pub(super) fn check(spec: &MonitoringStackSpec, mode: InstallMode, e: &mut Errors) {
    let helm = spec.helm.as_ref();
    match helm.map(|h| h.chart.as_str()) {
        None | Some("") if mode == InstallMode::Helm => {
            e.add("spec.helm.chart", "required when installMode is helm");
        }
        Some(c) if c.starts_with('-') || c.chars().any(char::is_whitespace) => {
            e.add(
                "spec.helm.chart",
                format!("\"{c}\" is not a chart reference"),
            );
        }
        _ => {}
    }
    if let Some(v) = helm.and_then(|h| h.version.as_ref())
        && semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).is_err()
    {
        e.add(
            "spec.helm.version",
            format!("\"{v}\" is not a version such as 65.1.0 (a pinned semver, no range)"),
        );
    }
    if let Some(r) = helm.and_then(|h| h.release.as_ref())
        && !release_name(r)
    {
        e.add(
            "spec.helm.release",
            format!("\"{r}\" is not a release name (lower-case letters, digits and '-', at most 53, starting and ending with a letter or digit)"),
        );
    }
    if let Some(t) = helm.and_then(|h| h.timeout.as_ref())
        && prom_duration(t).is_none_or(|d| d.is_zero())
    {
        e.add(
            "spec.helm.timeout",
            format!("\"{t}\" is not a duration such as 5m"),
        );
    }
    if let Some(v) = helm.and_then(|h| h.values.as_ref())
        && !v.is_object()
    {
        e.add("spec.helm.values", "must be a map of chart values");
    }
}

/// helm's own rule for a release name: a DNS label of at most 53 characters.
fn release_name(r: &str) -> bool {
    super::dns_label(r, 53)
}

/// Whether the controller's operator allowed the stack's chart: the chart
/// reference exactly as listed in `allowed`. `None` when it is (or helm mode is
/// not used), else the field error.
pub fn admit(
    helm: Option<&crate::crd::HelmSpec>,
    mode: InstallMode,
    allowed: &[String],
) -> Option<FieldError> {
    let chart = helm.filter(|_| mode == InstallMode::Helm)?.chart.as_str();
    if allowed.iter().any(|a| a == chart) {
        return None;
    }
    Some(FieldError {
        field: "spec.helm.chart".into(),
        reason: format!(
            "\"{chart}\" is not a chart this controller installs (its --helm-chart flags allow: {})",
            allowed.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::HelmSpec;

    fn spec(chart: &str, version: Option<&str>, release: Option<&str>) -> MonitoringStackSpec {
        MonitoringStackSpec {
            install_mode: Some("helm".into()),
            helm: Some(HelmSpec {
                chart: chart.into(),
                version: version.map(Into::into),
                release: release.map(Into::into),
                ..HelmSpec::default()
            }),
            ..MonitoringStackSpec::default()
        }
    }

    #[test]
    fn nothing_in_spec_helm_reads_as_a_flag() {
        let kps = DEFAULT_CHARTS[0];
        for (s, wrong) in [
            (spec(kps, Some("65.1.0"), Some("mon")), vec![]),
            (spec(kps, Some("v65.1.0"), None), vec![]),
            (
                spec("--post-renderer=/bin/sh", None, None),
                vec!["spec.helm.chart"],
            ),
            (spec("a b", None, None), vec!["spec.helm.chart"]),
            (spec(kps, Some("--devel"), None), vec!["spec.helm.version"]),
            (spec(kps, Some("~65.1"), None), vec!["spec.helm.version"]),
            (
                spec(kps, None, Some("--dry-run")),
                vec!["spec.helm.release"],
            ),
            (spec(kps, None, Some("Mon")), vec!["spec.helm.release"]),
            (
                spec(kps, None, Some(&"a".repeat(54))),
                vec!["spec.helm.release"],
            ),
            (spec("", None, None), vec!["spec.helm.chart"]),
        ] {
            let mut e = Errors::default();
            check(&s, InstallMode::Helm, &mut e);
            let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(fields, wrong, "{:?}", s.helm);
        }
    }

    #[test]
    fn only_charts_the_operator_allowed() {
        let allowed: Vec<String> = DEFAULT_CHARTS.map(String::from).into();
        let s = spec(DEFAULT_CHARTS[1], None, None);
        assert!(admit(s.helm.as_ref(), InstallMode::Helm, &allowed).is_none());
        let other = spec("evil/chart", None, None);
        let err = admit(other.helm.as_ref(), InstallMode::Helm, &allowed).unwrap();
        assert_eq!(err.field, "spec.helm.chart");
        assert!(err.reason.contains("evil/chart") && err.reason.contains(DEFAULT_CHARTS[0]));
        // Embedded mode runs no chart, whatever spec.helm says.
        assert!(admit(other.helm.as_ref(), InstallMode::Embedded, &allowed).is_none());
        assert!(admit(None, InstallMode::Helm, &allowed).is_none());
    }
}
