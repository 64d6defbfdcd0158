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
//!   # or probe: { connections: { ports: [8080] } } (node agent), or probe: { istio: {} }
//!   # (see `probe_spec`)
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

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::probe_spec::{self, RawProbe};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    version: Option<u32>,
    #[serde(default)]
    selector: RawSelector,
    #[serde(default)]
    namespaces: RawNamespaces,
    #[serde(default)]
    evicters: RawNamespaces,
    #[serde(default)]
    defaults: RawSettings,
    #[serde(default)]
    overrides: Vec<RawOverride>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSelector {
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    vpa_objects: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawNamespaces {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSettings {
    min_wait: Option<String>,
    max_wait: Option<String>,
    delay: Option<String>,
    job_max_wait: Option<String>,
    probe: Option<RawProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOverride {
    namespace: String,
    workload: Option<String>,
    #[serde(default)]
    disabled: bool,
    #[serde(flatten)]
    settings: RawSettings,
}

/// How to ask a pod over HTTP whether it has drained.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    /// Port on the pod IP.
    pub port: u16,
    /// HTTP path.
    #[serde(default = "default_probe_path")]
    pub path: String,
    /// A Prometheus gauge in the response; drained when it reads 0. Without it, a 2xx answer means drained.
    pub gauge: Option<String>,
}

fn default_probe_path() -> String {
    "/metrics".into()
}

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

/// Where the probe goes: a port/path on the pod IP, or a full URL from the pod's annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// `http://<pod IP>:<port><path>`.
    PodPort(Probe),
    /// A URL given by `steward.io/drain-probe-url`, with the gauge of the config if any.
    Url {
        /// The URL.
        url: String,
        /// Gauge to read.
        gauge: Option<String>,
    },
    /// ESTABLISHED connections on these local ports, counted by the node agent
    /// the pod's Node advertises (`steward graceful-drain agent`).
    Connections {
        /// Serving ports, sorted.
        ports: Vec<u16>,
    },
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

fn duration(field: &str, v: &Option<String>) -> Result<Option<Duration>> {
    v.as_deref()
        .map(|s| steward_runtime::duration::parse(s).map_err(|e| invalid(field, e)))
        .transpose()
}

impl Config {
    /// Parses and validates a YAML document. The error names the field.
    pub fn parse(yaml: &str) -> Result<Self> {
        let raw: RawConfig = serde_yaml::from_str(yaml).map_err(|e| {
            // serde_yaml prefixes the path of a nested error (`defaults.maxWait: ...`).
            let field = e
                .to_string()
                .split_once(": ")
                .map(|(f, _)| f.to_string())
                .filter(|f| !f.contains(' '))
                .unwrap_or_else(|| "config".to_string());
            invalid(field, e.to_string())
        })?;
        match raw.version {
            Some(VERSION) => {}
            Some(v) => {
                return Err(invalid(
                    "version",
                    format!("unsupported version {v} (this steward reads version {VERSION})"),
                ));
            }
            None => return Err(invalid("version", "missing (write `version: 1`)")),
        }
        let base = Settings::default();
        let defaults = Settings {
            min_wait: duration("defaults.minWait", &raw.defaults.min_wait)?
                .unwrap_or(base.min_wait),
            max_wait: duration("defaults.maxWait", &raw.defaults.max_wait)?
                .unwrap_or(base.max_wait),
            delay: duration("defaults.delay", &raw.defaults.delay)?.unwrap_or(base.delay),
            job_max_wait: duration("defaults.jobMaxWait", &raw.defaults.job_max_wait)?
                .unwrap_or(base.job_max_wait),
            probe: raw
                .defaults
                .probe
                .as_ref()
                .map(|p| p.target("defaults.probe"))
                .transpose()?,
        };
        check_order("defaults", &defaults)?;
        let mut overrides = Vec::new();
        for (i, o) in raw.overrides.iter().enumerate() {
            let at = format!("overrides[{i}]");
            if o.namespace.is_empty() {
                return Err(invalid(format!("{at}.namespace"), "must not be empty"));
            }
            if let Some(w) = &o.workload
                && !w.contains('/')
            {
                return Err(invalid(
                    format!("{at}.workload"),
                    format!("\"{w}\" is not Kind/name (for example Deployment/web)"),
                ));
            }
            overrides.push(Override {
                namespace: o.namespace.clone(),
                workload: o.workload.clone(),
                disabled: o.disabled,
                min_wait: duration(&format!("{at}.minWait"), &o.settings.min_wait)?,
                max_wait: duration(&format!("{at}.maxWait"), &o.settings.max_wait)?,
                delay: duration(&format!("{at}.delay"), &o.settings.delay)?,
                job_max_wait: duration(&format!("{at}.jobMaxWait"), &o.settings.job_max_wait)?,
                probe: o
                    .settings
                    .probe
                    .as_ref()
                    .map(|p| p.target(&format!("{at}.probe")))
                    .transpose()?,
            });
        }
        for (list, at) in [
            (&raw.evicters.include, "evicters.include"),
            (&raw.evicters.exclude, "evicters.exclude"),
        ] {
            for (i, p) in list.iter().enumerate() {
                let body = p.strip_suffix('*').unwrap_or(p);
                if p.is_empty() || body.contains('*') {
                    return Err(invalid(
                        format!("{at}[{i}]"),
                        format!("\"{p}\" is not a user name or a prefix ending in a single `*`"),
                    ));
                }
            }
        }
        let config = Self {
            evicters_include: raw.evicters.include,
            evicters_exclude: raw.evicters.exclude,
            vpa_objects: raw.selector.vpa_objects,
            selector: raw
                .selector
                .annotations
                .unwrap_or_else(|| Config::default().selector),
            include: raw.namespaces.include,
            exclude: raw.namespaces.exclude,
            defaults,
            overrides,
        };
        // Every override, applied to the defaults, must still be coherent.
        for (i, o) in config.overrides.iter().enumerate() {
            check_order(&format!("overrides[{i}]"), &apply(&config.defaults, o))?;
        }
        Ok(config)
    }

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
                .and_then(|p| probe_spec::connection_ports(&p, ANN_PORTS))
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

fn check_order(at: &str, s: &Settings) -> Result<()> {
    if s.max_wait < s.min_wait {
        return Err(invalid(
            format!("{at}.maxWait"),
            format!(
                "{:?} is below minWait {:?}; maxWait must be at least minWait",
                s.max_wait, s.min_wait
            ),
        ));
    }
    if s.max_wait.is_zero() {
        return Err(invalid(format!("{at}.maxWait"), "must be above 0"));
    }
    if s.job_max_wait.is_zero() {
        return Err(invalid(format!("{at}.jobMaxWait"), "must be above 0"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
