//! Worker classes: default requests and limits, the caps a request may not exceed,
//! and where workers of the class may run. Read once from `--config` (YAML).
//!
//! ```yaml
//! default_class: standard
//! classes:
//!   standard:
//!     requests: { cpu: 250m, memory: 256Mi }
//!     limits:   { cpu: "1",  memory: 1Gi }
//!     max:      { cpu: "2",  memory: 4Gi }
//!     node_selector: { node-role/ci: "true" }
//!     tolerations: [{ key: ci, operator: Exists, effect: NoSchedule }]
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use serde::Deserialize;

use crate::core::spec::{SpecError, bad};
use crate::proto;

/// cpu and memory quantities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amounts {
    /// CPU, e.g. `500m`.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory, e.g. `256Mi`.
    #[serde(default)]
    pub memory: Option<String>,
}

/// One worker class.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerClass {
    /// Default requests.
    #[serde(default)]
    pub requests: Amounts,
    /// Default limits.
    #[serde(default)]
    pub limits: Amounts,
    /// Highest request or limit a caller may ask for.
    #[serde(default)]
    pub max: Amounts,
    /// Pod node selector.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Pod tolerations.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
}

/// The scaler's worker configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Class used when a request names none.
    #[serde(default = "default_class_name")]
    pub default_class: String,
    /// Classes by name.
    #[serde(default)]
    pub classes: BTreeMap<String, WorkerClass>,
}

fn default_class_name() -> String {
    "default".into()
}

impl Default for Config {
    fn default() -> Self {
        let amounts = |cpu: &str, memory: &str| Amounts {
            cpu: Some(cpu.into()),
            memory: Some(memory.into()),
        };
        Self {
            default_class: default_class_name(),
            classes: BTreeMap::from([(
                default_class_name(),
                WorkerClass {
                    requests: amounts("100m", "128Mi"),
                    limits: amounts("1", "512Mi"),
                    max: amounts("4", "8Gi"),
                    ..WorkerClass::default()
                },
            )]),
        }
    }
}

/// Requests and limits of one worker after the class and the overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// `cpu`/`memory` requests.
    pub requests: BTreeMap<String, String>,
    /// `cpu`/`memory` limits.
    pub limits: BTreeMap<String, String>,
}

impl Config {
    /// Parses and checks a config file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Self = steward_runtime::yaml::from_str(text)?;
        if !c.classes.contains_key(&c.default_class) {
            return Err(format!(
                "default_class: no class named \"{}\"",
                c.default_class
            ));
        }
        for (name, class) in &c.classes {
            for (what, a) in [
                ("requests", &class.requests),
                ("limits", &class.limits),
                ("max", &class.max),
            ] {
                for (res, q) in [("cpu", &a.cpu), ("memory", &a.memory)] {
                    if let Some(q) = q
                        && parse_quantity(q).is_none()
                    {
                        return Err(format!(
                            "classes.{name}.{what}.{res}: \"{q}\" is not a quantity"
                        ));
                    }
                }
            }
        }
        Ok(c)
    }

    /// The class a request names (`field` is the request field, for the error).
    pub fn class(&self, field: &str, name: &str) -> Result<(&str, &WorkerClass), SpecError> {
        let name = if name.is_empty() {
            &self.default_class
        } else {
            name
        };
        self.classes
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| {
                bad(
                    field,
                    format!(
                        "unknown worker class \"{name}\" (known: {})",
                        self.classes.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })
    }
}

/// Applies `ov` on top of the class defaults and checks the caps and that no request
/// exceeds its limit. `field` is the request's `resources` field, for errors.
pub fn resolve(
    class_name: &str,
    class: &WorkerClass,
    ov: &proto::Resources,
    field: &str,
) -> Result<Resolved, SpecError> {
    let mut out = Resolved::default();
    let pick = |o: &str, d: &Option<String>| {
        if o.is_empty() {
            d.clone()
        } else {
            Some(o.to_string())
        }
    };
    let rows = [
        (
            "cpu",
            "cpu_request",
            pick(&ov.cpu_request, &class.requests.cpu),
            "cpu_limit",
            pick(&ov.cpu_limit, &class.limits.cpu),
            &class.max.cpu,
        ),
        (
            "memory",
            "memory_request",
            pick(&ov.memory_request, &class.requests.memory),
            "memory_limit",
            pick(&ov.memory_limit, &class.limits.memory),
            &class.max.memory,
        ),
    ];
    for (res, req_field, req, lim_field, lim, max) in rows {
        let max_v = max.as_deref().and_then(parse_quantity);
        let check = |f: &str, q: &Option<String>| -> Result<Option<f64>, SpecError> {
            let Some(q) = q else { return Ok(None) };
            let v = parse_quantity(q).ok_or_else(|| {
                bad(
                    format!("{field}.{f}"),
                    format!("\"{q}\" is not a Kubernetes quantity"),
                )
            })?;
            if let (Some(m), Some(ms)) = (max_v, max.as_deref())
                && v > m
            {
                return Err(bad(
                    format!("{field}.{f}"),
                    format!("\"{q}\" is above the cap of {ms} of worker class \"{class_name}\""),
                ));
            }
            Ok(Some(v))
        };
        let rv = check(req_field, &req)?;
        let lv = check(lim_field, &lim)?;
        if let (Some(r), Some(l)) = (rv, lv)
            && r > l
        {
            return Err(bad(
                format!("{field}.{req_field}"),
                format!(
                    "request {} is above the limit {}",
                    req.as_deref().unwrap_or_default(),
                    lim.as_deref().unwrap_or_default()
                ),
            ));
        }
        if let Some(r) = req {
            out.requests.insert(res.into(), r);
        }
        if let Some(l) = lim {
            out.limits.insert(res.into(), l);
        }
    }
    Ok(out)
}

/// A Kubernetes quantity as a number (cores or bytes); `None` if malformed.
/// Surrounding white space is ignored; see [`steward_kube::quantity::parse`].
pub fn parse_quantity(s: &str) -> Option<f64> {
    steward_kube::quantity::parse(s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for (s, want) in [
            ("500m", Some(0.5)),
            ("2", Some(2.0)),
            ("1.5", Some(1.5)),
            ("256Mi", Some(268_435_456.0)),
            ("1G", Some(1e9)),
            ("", None),
            ("abc", None),
            ("-1", None),
            ("1Xi", None),
        ] {
            assert_eq!(parse_quantity(s), want, "{s}");
        }
    }

    #[test]
    fn resolve_table() {
        let c = Config::default();
        let (name, class) = c.class("worker.worker_class", "").unwrap();
        let ov = |cr: &str, cl: &str, mr: &str| proto::Resources {
            cpu_request: cr.into(),
            cpu_limit: cl.into(),
            memory_request: mr.into(),
            ..Default::default()
        };
        let cases = [
            (ov("", "", ""), Ok(("100m", "1", "128Mi"))),
            (ov("2", "3", ""), Ok(("2", "3", "128Mi"))),
            (
                ov("", "8", ""),
                Err("r.cpu_limit: \"8\" is above the cap of 4 of worker class \"default\""),
            ),
            (
                ov("2", "", ""),
                Err("r.cpu_request: request 2 is above the limit 1"),
            ),
            (
                ov("lots", "", ""),
                Err("r.cpu_request: \"lots\" is not a Kubernetes quantity"),
            ),
            (
                ov("", "", "16Gi"),
                Err(
                    "r.memory_request: \"16Gi\" is above the cap of 8Gi of worker class \"default\"",
                ),
            ),
        ];
        for (o, want) in cases {
            let got = resolve(name, class, &o, "r")
                .map(|r| {
                    (
                        r.requests["cpu"].clone(),
                        r.limits["cpu"].clone(),
                        r.requests["memory"].clone(),
                    )
                })
                .map_err(|e| e.to_string());
            let want = want
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .map_err(str::to_string);
            assert_eq!(got, want, "{o:?}");
        }
        assert!(
            c.class("worker.worker_class", "gpu")
                .unwrap_err()
                .to_string()
                .contains("unknown worker class \"gpu\"")
        );
    }

    #[test]
    fn parse_checks_default_and_quantities() {
        assert!(
            Config::parse("default_class: x\nclasses: {}\n")
                .unwrap_err()
                .contains("default_class")
        );
        assert!(
            Config::parse("classes:\n  default:\n    max: { cpu: lots }\n")
                .unwrap_err()
                .contains("classes.default.max.cpu")
        );
        assert!(Config::parse("classes:\n  default:\n    requests: { cpu: 1 }\n").is_ok());
        let e =
            Config::parse("classes:\n  default:\n    tolerations: [{ key: ci, operator: [x] }]\n")
                .unwrap_err();
        assert!(
            e.starts_with("classes.default.tolerations[0].operator: "),
            "{e}"
        );
        let e = Config::parse("classes:\n  default:\n    limit: {}\n").unwrap_err();
        assert!(e.contains("unknown field `limit`"), "{e}");
    }
}
