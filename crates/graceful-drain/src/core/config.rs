//! The graceful-drain configuration (a ConfigMap, YAML) and how it resolves for one
//! pod. Pure: parsing, validation and resolution never touch the API.
//!
//! ```yaml
//! version: 1
//! selector:
//!   annotations: { vpa-managed: "true" }   # a pod is targeted when it has all of these
//!   vpaObjects: false                      # or when a VerticalPodAutoscaler (mode not Off) targets its workload
//! namespaces:
//!   include: []                            # empty: every namespace
//!   exclude: [batch]
//! evicters:                                # who is drained (the eviction's user); `*` ends a prefix
//!   include: []                            # empty: every evicter
//!   exclude: ["system:serviceaccount:kube-system:karpenter"]
//! defaults:
//!   minWait: 3s      # never evict sooner after isolation (endpoint propagation)
//!   maxWait: 60s     # evict at the latest this long after isolation
//!   delay: 10s       # without a probe: wait exactly this long (after minWait)
//!   jobMaxWait: 30m  # Job/CronJob pods: evicted when their job ends, at the latest this long after the request
//!   probe:           # optional: drained when the gauge reads 0 (or, without gauge, on HTTP 2xx)
//!     port: 9090
//!     path: /metrics
//!     gauge: http_requests_in_flight
//!   # or probe: { connections: { ports: [8080] } } (node agent), or probe: { istio: {} }, or probe: { linkerd: {} }
//!   # (see `crate::probe::spec`)
//! overrides:
//!   - namespace: shop
//!     workload: Deployment/web   # optional: one workload of that namespace
//!     maxWait: 120s
//!   - namespace: legacy
//!     disabled: true             # opt this namespace (or workload) out
//! ```
//!
//! Per-pod annotations override the resolved values: `steward.io/drain-min-wait`,
//! `steward.io/drain-max-wait`, `steward.io/drain-delay`, `steward.io/drain-job-max-wait`,
//! `steward.io/drain-probe-url`, `steward.io/drain-ports` (the connections probe on
//! these ports; wins over the URL).
//! An invalid document is rejected whole with the field named; the caller keeps the
//! last good configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::Error;
use crate::probe::ProbeTarget;
use crate::probe::spec;

mod parse;
#[cfg(test)]
mod tests;

/// Annotation overriding the minimum wait of one pod.
pub const ANN_MIN_WAIT: &str = "steward.io/drain-min-wait";
/// Annotation overriding the maximum wait of one pod.
pub const ANN_MAX_WAIT: &str = "steward.io/drain-max-wait";
/// Annotation overriding the fixed delay of one pod.
pub const ANN_DELAY: &str = "steward.io/drain-delay";
/// Annotation overriding how long a Job pod's eviction may wait for its job.
pub const ANN_JOB_MAX_WAIT: &str = "steward.io/drain-job-max-wait";
/// Annotation giving the full URL of the drain probe of one pod.
pub const ANN_PROBE_URL: &str = "steward.io/drain-probe-url";
/// Annotation turning on the connections probe (node agent) on these ports: `8080,8443`.
pub const ANN_PORTS: &str = "steward.io/drain-ports";

/// The only configuration version this build reads.
pub const VERSION: u32 = 1;

/// Wait settings for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Never evict sooner than this after isolation.
    pub min_wait: Duration,
    /// Evict at the latest this long after isolation.
    pub max_wait: Duration,
    /// Without a probe: evict this long after isolation (at least `min_wait`).
    pub delay: Duration,
    /// Job and CronJob pods: evict when the pod has finished, at the latest this
    /// long after the eviction was asked for.
    pub job_max_wait: Duration,
    /// The probe, if any.
    pub probe: Option<ProbeTarget>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_wait: Duration::from_secs(3),
            max_wait: Duration::from_secs(60),
            delay: Duration::from_secs(10),
            job_max_wait: Duration::from_secs(30 * 60),
            probe: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Override {
    namespace: String,
    workload: Option<String>,
    disabled: bool,
    min_wait: Option<Duration>,
    max_wait: Option<Duration>,
    delay: Option<Duration>,
    job_max_wait: Option<Duration>,
    probe: Option<ProbeTarget>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    selector: BTreeMap<String, String>,
    vpa_objects: bool,
    include: Vec<String>,
    exclude: Vec<String>,
    evicters_include: Vec<String>,
    evicters_exclude: Vec<String>,
    defaults: Settings,
    overrides: Vec<Override>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            selector: [("vpa-managed".to_string(), "true".to_string())].into(),
            vpa_objects: false,
            include: Vec::new(),
            exclude: Vec::new(),
            evicters_include: Vec::new(),
            evicters_exclude: Vec::new(),
            defaults: Settings::default(),
            overrides: Vec::new(),
        }
    }
}

/// What a pod is, as far as targeting goes.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// `Kind/name` of the workload (for example `Deployment/web`), if known.
    pub workload: Option<&'a str>,
    /// The pod's annotations.
    pub annotations: &'a BTreeMap<String, String>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// Whether evictions by `user` (the API request's user name, for example
    /// `system:serviceaccount:kube-system:vpa-updater`) are drained.
    pub fn drains_evicter(&self, user: &str) -> bool {
        let hit = |p: &String| match p.strip_suffix('*') {
            Some(prefix) => user.starts_with(prefix),
            None => user == p,
        };
        (self.evicters_include.is_empty() || self.evicters_include.iter().any(hit))
            && !self.evicters_exclude.iter().any(hit)
    }

    /// Whether pods are also targeted through VerticalPodAutoscaler objects.
    pub fn vpa_objects(&self) -> bool {
        self.vpa_objects
    }

    /// Whether the pod is targeted: selector annotations (or, with `vpaObjects`, a
    /// VPA on its workload: `vpa_targeted`), namespace policy, overrides.
    pub fn targets(&self, pod: PodRef<'_>, vpa_targeted: bool) -> bool {
        let selected = self
            .selector
            .iter()
            .all(|(k, v)| pod.annotations.get(k) == Some(v))
            || (self.vpa_objects && vpa_targeted);
        let ns_ok = (self.include.is_empty() || self.include.iter().any(|n| n == pod.namespace))
            && !self.exclude.iter().any(|n| n == pod.namespace);
        selected && ns_ok && !self.matching(pod).any(|o| o.disabled)
    }

    /// The settings for this pod: defaults, then namespace overrides, then workload
    /// overrides, then the pod's annotations. An unparseable annotation is ignored
    /// with the error returned beside the settings, so one bad pod cannot stop a drain.
    pub fn settings(&self, pod: PodRef<'_>) -> (Settings, Vec<Error>) {
        let mut s = self.defaults.clone();
        let mut ns_level: Vec<&Override> = self.matching(pod).collect();
        ns_level.sort_by_key(|o| o.workload.is_some());
        for o in ns_level {
            s = apply(&s, o);
        }
        let mut errors = Vec::new();
        let mut ann = |key: &str, target: &mut Duration| {
            if let Some(v) = pod.annotations.get(key) {
                match steward_runtime::duration::parse(v) {
                    Ok(d) => *target = d,
                    Err(e) => errors.push(invalid(key, e)),
                }
            }
        };
        ann(ANN_MIN_WAIT, &mut s.min_wait);
        ann(ANN_MAX_WAIT, &mut s.max_wait);
        ann(ANN_DELAY, &mut s.delay);
        ann(ANN_JOB_MAX_WAIT, &mut s.job_max_wait);
        if let Some(url) = pod.annotations.get(ANN_PROBE_URL) {
            let gauge = match &s.probe {
                Some(ProbeTarget::PodPort(p)) => p.gauge.clone(),
                Some(ProbeTarget::Url { gauge, .. }) => gauge.clone(),
                Some(ProbeTarget::Connections { .. }) | None => None,
            };
            s.probe = Some(ProbeTarget::Url {
                url: url.clone(),
                gauge,
            });
        }
        if let Some(ports) = pod.annotations.get(ANN_PORTS) {
            match crate::agent::query::parse_ports(ports)
                .map_err(|e| invalid(ANN_PORTS, e))
                .and_then(|p| spec::connection_ports(&p, ANN_PORTS))
            {
                Ok(ports) => s.probe = Some(ProbeTarget::Connections { ports }),
                Err(e) => errors.push(e),
            }
        }
        if s.max_wait < s.min_wait {
            errors.push(invalid(
                ANN_MAX_WAIT,
                "maximum wait is below the minimum; using the minimum",
            ));
            s.max_wait = s.min_wait;
        }
        (s, errors)
    }

    fn matching<'a>(&'a self, pod: PodRef<'a>) -> impl Iterator<Item = &'a Override> + 'a {
        self.overrides.iter().filter(move |o| {
            o.namespace == pod.namespace
                && o.workload
                    .as_deref()
                    .is_none_or(|w| Some(w) == pod.workload)
        })
    }
}

fn apply(s: &Settings, o: &Override) -> Settings {
    Settings {
        min_wait: o.min_wait.unwrap_or(s.min_wait),
        max_wait: o.max_wait.unwrap_or(s.max_wait),
        delay: o.delay.unwrap_or(s.delay),
        job_max_wait: o.job_max_wait.unwrap_or(s.job_max_wait),
        probe: o.probe.clone().or_else(|| s.probe.clone()),
    }
}
