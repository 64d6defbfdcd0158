//! Reading the YAML document into a [`Config`]: its shape first
//! (`steward_runtime::yaml`: a wrong field is named by its path, which does not
//! depend on the YAML library's messages), then what serde cannot check: the
//! version, durations, probes, the order of waits and the evicter patterns. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{Config, Override, Settings, VERSION, apply, invalid};
use crate::error::Result;
use crate::probe::spec::RawProbe;

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

impl Config {
    /// Parses and validates a YAML document. The error names the field.
    pub fn parse(yaml: &str) -> Result<Self> {
        let raw = read(yaml)?;
        version(raw.version)?;
        let defaults = defaults(&raw.defaults)?;
        check_order("defaults", &defaults)?;
        let overrides = raw
            .overrides
            .iter()
            .enumerate()
            .map(|(i, o)| override_of(&format!("overrides[{i}]"), o))
            .collect::<Result<Vec<_>>>()?;
        evicters(&raw.evicters)?;
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
}

/// The document's shape; a misfit names its path (`defaults.maxWait`,
/// `overrides[0]`), the whole document (`config`) when the root is wrong.
fn read(yaml: &str) -> Result<RawConfig> {
    steward_runtime::yaml::parse(yaml)
        .map_err(|e| invalid(e.path.unwrap_or_else(|| "config".into()), e.what))
}

fn version(v: Option<u32>) -> Result<()> {
    match v {
        Some(VERSION) => Ok(()),
        Some(v) => Err(invalid(
            "version",
            format!("unsupported version {v} (this steward reads version {VERSION})"),
        )),
        None => Err(invalid("version", "missing (write `version: 1`)")),
    }
}

fn duration(field: &str, v: &Option<String>) -> Result<Option<Duration>> {
    v.as_deref()
        .map(|s| steward_runtime::duration::parse(s).map_err(|e| invalid(field, e)))
        .transpose()
}

fn defaults(raw: &RawSettings) -> Result<Settings> {
    let base = Settings::default();
    Ok(Settings {
        min_wait: duration("defaults.minWait", &raw.min_wait)?.unwrap_or(base.min_wait),
        max_wait: duration("defaults.maxWait", &raw.max_wait)?.unwrap_or(base.max_wait),
        delay: duration("defaults.delay", &raw.delay)?.unwrap_or(base.delay),
        job_max_wait: duration("defaults.jobMaxWait", &raw.job_max_wait)?
            .unwrap_or(base.job_max_wait),
        probe: raw
            .probe
            .as_ref()
            .map(|p| p.target("defaults.probe"))
            .transpose()?,
    })
}

/// One entry of `overrides`, found at `at` (`overrides[2]`).
fn override_of(at: &str, o: &RawOverride) -> Result<Override> {
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
    let s = &o.settings;
    Ok(Override {
        namespace: o.namespace.clone(),
        workload: o.workload.clone(),
        disabled: o.disabled,
        min_wait: duration(&format!("{at}.minWait"), &s.min_wait)?,
        max_wait: duration(&format!("{at}.maxWait"), &s.max_wait)?,
        delay: duration(&format!("{at}.delay"), &s.delay)?,
        job_max_wait: duration(&format!("{at}.jobMaxWait"), &s.job_max_wait)?,
        probe: s
            .probe
            .as_ref()
            .map(|p| p.target(&format!("{at}.probe")))
            .transpose()?,
    })
}

/// A user name, or a prefix ending in one `*`.
fn evicters(raw: &RawNamespaces) -> Result<()> {
    for (list, at) in [
        (&raw.include, "evicters.include"),
        (&raw.exclude, "evicters.exclude"),
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
    Ok(())
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
