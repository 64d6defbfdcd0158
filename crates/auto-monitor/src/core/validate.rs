//! Turns a `MonitoringStack` spec into resolved [`Settings`], or the list of fields
//! that are wrong. Pure: the controller writes the errors into a `SpecValid=False`
//! condition and applies or removes nothing while any remain. Each part of the
//! spec has its own check below; every wrong field is reported, in spec order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::crd::{COMPONENTS, ComponentResources, MonitoringStackSpec};

mod alerting;
mod helm;
mod settings;
mod storage;
#[cfg(test)]
mod tests;

pub use helm::{DEFAULT_CHARTS, admit};
pub use settings::{DEFAULT_IMAGES, FieldError, InstallMode, Profile, Settings, Thresholds};
pub use storage::Volumes;

/// The wrong fields found so far.
#[derive(Debug, Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// A Prometheus duration above zero, `default` when not given.
    fn duration(&mut self, field: &str, v: Option<&String>, default: &str) -> String {
        let v = v.map_or(default, String::as_str);
        match prom_duration(v) {
            Some(d) if !d.is_zero() => {}
            _ => self.add(
                field,
                format!("\"{v}\" is not a Prometheus duration such as 30s, 5m, 1h or 15d"),
            ),
        }
        v.to_string()
    }
}

/// Validates `spec`; every wrong field is reported, not just the first.
pub fn validate(spec: &MonitoringStackSpec) -> Result<Settings, Vec<FieldError>> {
    let mut e = Errors::default();
    let mut components = components(spec, &mut e);
    let mode = install_mode(spec, &mut e);
    let external_prometheus = prometheus_source(spec, mode, &mut e);
    if external_prometheus {
        components.remove("prometheus");
    }
    helm::check(spec, mode, &mut e);
    let profile = profile(spec, &mut e);
    let retention = e.duration("spec.retention", spec.retention.as_ref(), "7d");
    let retention_size = storage::retention_size(spec, &mut e);
    let scrape_interval = e.duration("spec.scrapeInterval", spec.scrape_interval.as_ref(), "15s");
    let deadline = e.duration(
        "spec.onboardingDeadline",
        spec.onboarding_deadline.as_ref(),
        "2m",
    );
    let thresholds = thresholds(spec, &mut e);
    let resources = resources(spec, &mut e);
    let images = images(spec, &mut e);
    let storage = storage::check(spec, &mut e);
    prometheus_url(spec, &mut e);
    let alerting = alerting::check(spec, &mut e);
    if !e.0.is_empty() {
        return Err(e.0);
    }
    Ok(Settings {
        components,
        mode,
        profile,
        retention,
        retention_size,
        scrape_interval,
        onboarding_deadline: prom_duration(&deadline).unwrap_or_default(),
        thresholds,
        resources,
        images,
        placement: spec.placement.clone().unwrap_or_default(),
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        storage,
        prometheus_url: spec.prometheus_url.clone(),
        external_prometheus,
        helm: spec.helm.clone(),
        alerting,
    })
}

/// `spec.components`: every one known; all of them when not given.
fn components(spec: &MonitoringStackSpec, e: &mut Errors) -> BTreeSet<String> {
    let Some(list) = &spec.components else {
        return COMPONENTS.map(String::from).into();
    };
    for (i, c) in list.iter().enumerate() {
        if !COMPONENTS.contains(&c.as_str()) {
            e.add(
                format!("spec.components[{i}]"),
                format!(
                    "unknown component \"{c}\" (known: {})",
                    COMPONENTS.join(", ")
                ),
            );
        }
    }
    list.iter().cloned().collect()
}

/// `spec.installMode`: embedded (the default) or helm.
fn install_mode(spec: &MonitoringStackSpec, e: &mut Errors) -> InstallMode {
    match spec.install_mode.as_deref() {
        None | Some("embedded") => InstallMode::Embedded,
        Some("helm") => InstallMode::Helm,
        Some(other) => {
            e.add(
                "spec.installMode",
                format!("unknown install mode \"{other}\" (embedded or helm)"),
            );
            InstallMode::Embedded
        }
    }
}

/// `spec.prometheus`: steward (the default) or external. External is for the
/// embedded install (helm mode's chart brings its own Prometheus: its values switch
/// it off) and excludes steward's Prometheus from `spec.components`.
fn prometheus_source(spec: &MonitoringStackSpec, mode: InstallMode, e: &mut Errors) -> bool {
    match spec.prometheus.as_deref() {
        None | Some("steward") => false,
        Some("external") => {
            if mode == InstallMode::Helm {
                e.add(
                    "spec.prometheus",
                    "external works with installMode embedded; in helm mode switch the chart's Prometheus off in spec.helm.values",
                );
            }
            let listed = spec.components.iter().flatten().any(|c| c == "prometheus");
            if listed {
                e.add(
                    "spec.prometheus",
                    "external and spec.components lists prometheus: steward runs no Prometheus of its own with external",
                );
            }
            true
        }
        Some(other) => {
            e.add(
                "spec.prometheus",
                format!("unknown value \"{other}\" (steward or external)"),
            );
            false
        }
    }
}

/// `spec.profile`: auto (detect; the default) or one of the known flavours.
fn profile(spec: &MonitoringStackSpec, e: &mut Errors) -> Option<Profile> {
    match spec.profile.as_deref() {
        None | Some("auto") => None,
        Some(p) if parse_profile(p).is_some() => parse_profile(p),
        Some(other) => {
            e.add(
                "spec.profile",
                format!(
                    "unknown profile \"{other}\" (auto, {})",
                    Profile::ALL.map(Profile::as_str).join(", ")
                ),
            );
            None
        }
    }
}

/// `spec.thresholds`: durations, then percentages strictly between 0 and 100.
fn thresholds(spec: &MonitoringStackSpec, e: &mut Errors) -> Thresholds {
    let t = spec.thresholds.clone().unwrap_or_default();
    let thresholds = Thresholds {
        node_down_for: e.duration(
            "spec.thresholds.nodeDownFor",
            t.node_down_for.as_ref(),
            "1m",
        ),
        usage_for: e.duration("spec.thresholds.usageFor", t.usage_for.as_ref(), "5m"),
        disk_for: e.duration("spec.thresholds.diskFor", t.disk_for.as_ref(), "5m"),
        not_monitored_for: e.duration(
            "spec.thresholds.notMonitoredFor",
            t.not_monitored_for.as_ref(),
            "2m",
        ),
        cpu_percent: t.cpu_percent.unwrap_or(80.0),
        memory_percent: t.memory_percent.unwrap_or(80.0),
        disk_free_percent: t.disk_free_percent.unwrap_or(20.0),
    };
    for (field, v) in [
        ("spec.thresholds.cpuPercent", thresholds.cpu_percent),
        ("spec.thresholds.memoryPercent", thresholds.memory_percent),
        (
            "spec.thresholds.diskFreePercent",
            thresholds.disk_free_percent,
        ),
    ] {
        if !(v > 0.0 && v < 100.0) {
            e.add(
                field,
                format!("{v} is out of range: use a percentage above 0 and below 100"),
            );
        }
    }
    thresholds
}

/// `spec.resources`: known components, cpu and memory quantities.
fn resources(spec: &MonitoringStackSpec, e: &mut Errors) -> BTreeMap<String, ComponentResources> {
    let resources = spec.resources.clone().unwrap_or_default();
    for (component, r) in &resources {
        if !COMPONENTS.contains(&component.as_str()) {
            e.add(
                format!("spec.resources.{component}"),
                format!("unknown component \"{component}\""),
            );
        }
        for (kind, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (res, q) in map.iter().flatten() {
                if !matches!(res.as_str(), "cpu" | "memory") || !is_quantity(q) {
                    e.add(
                        format!("spec.resources.{component}.{kind}.{res}"),
                        format!("\"{q}\" is not a cpu or memory quantity such as 100m or 256Mi"),
                    );
                }
            }
        }
    }
    resources
}

/// `spec.images` over [`DEFAULT_IMAGES`]: known components, no empty image.
fn images(spec: &MonitoringStackSpec, e: &mut Errors) -> BTreeMap<String, String> {
    let mut images: BTreeMap<String, String> = DEFAULT_IMAGES
        .iter()
        .map(|(c, i)| (c.to_string(), i.to_string()))
        .collect();
    for (component, image) in spec.images.iter().flatten() {
        if !COMPONENTS.contains(&component.as_str()) {
            e.add(
                format!("spec.images.{component}"),
                format!("unknown component \"{component}\""),
            );
        } else if image.trim().is_empty() {
            e.add(format!("spec.images.{component}"), "empty image");
        }
        images.insert(component.clone(), image.clone());
    }
    images
}

/// `spec.prometheusUrl` is an http(s) URL.
fn prometheus_url(spec: &MonitoringStackSpec, e: &mut Errors) {
    if let Some(u) = &spec.prometheus_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        e.add(
            "spec.prometheusUrl",
            format!("\"{u}\" is not an http(s) URL"),
        );
    }
}

/// A DNS label of at most `max` characters: lowercase letters, digits and '-',
/// neither first nor last.
fn dns_label(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A profile by its lowercase name.
pub fn parse_profile(s: &str) -> Option<Profile> {
    Profile::ALL.into_iter().find(|p| p.as_str() == s)
}

/// Parses a Prometheus duration (`1h30m`, `15d`, `500ms`): units y, w, d, h, m, s,
/// ms, each at most once and in that order, as Prometheus' `model.ParseDuration`.
///
/// Not `steward_runtime::duration::parse`: these values go into Prometheus's own
/// configuration, so they must be what Prometheus accepts (`1m1h` is not, `15d` is,
/// no fractions), not what steward's flags accept.
pub fn prom_duration(s: &str) -> Option<Duration> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let idx = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        ms = ms.checked_add(n.checked_mul(UNITS[idx].1)?)?;
        next_unit = idx + 1;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_millis(ms))
}

/// Whether `q` is a Kubernetes quantity (number with an optional suffix).
fn is_quantity(q: &str) -> bool {
    steward_kube::quantity::parse(q).is_some()
}
