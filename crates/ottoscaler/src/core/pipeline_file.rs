//! The pipeline file people write (YAML), turned into a `PipelineRequest`.
//!
//! ```yaml
//! name: build
//! timeout: 30m
//! stages:
//!   - name: compile
//!     image: golang:1.22
//!     command: [go, build, ./...]
//!     requests: { cpu: 500m, memory: 512Mi }
//!     timeout: 10m
//!     retry: { attempts: 3, backoff: 1s, max_backoff: 30s, on: [exit-code, oom-killed] }
//!   - name: test
//!     depends_on: [compile]
//!     image: golang:1.22
//!     command: [go, test, ./...]
//!   - name: notify-failure
//!     depends_on: [test]
//!     when: on-failure
//!     image: curlimages/curl
//!   - name: cleanup
//!     finally: true
//!     image: alpine
//!     command: [sh, -c, "echo done"]
//! ```
//!
//! Unknown keys are errors (a typo like `depend_on` must not silently drop a
//! dependency). The DAG itself is validated by the server, which names the field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::proto;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    name: String,
    #[serde(default)]
    timeout: Option<String>,
    stages: Vec<StageFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Amounts {
    cpu: Option<String>,
    memory: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFile {
    #[serde(default)]
    attempts: i32,
    #[serde(default)]
    backoff: Option<String>,
    #[serde(default)]
    max_backoff: Option<String>,
    #[serde(default)]
    on: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
enum WhenFile {
    OnSuccess,
    OnFailure,
    Always,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    name: String,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    image: String,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    class: String,
    #[serde(default)]
    requests: Amounts,
    #[serde(default)]
    limits: Amounts,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retry: Option<RetryFile>,
    #[serde(default)]
    when: Option<WhenFile>,
    #[serde(default)]
    finally: bool,
}

fn dur(field: &str, s: Option<&str>) -> Result<Duration, String> {
    s.map_or(Ok(Duration::ZERO), |s| {
        steward_runtime::duration::parse(s).map_err(|e| format!("{field}: {e}"))
    })
}

fn secs(field: &str, s: Option<&str>) -> Result<u32, String> {
    Ok(u32::try_from(dur(field, s)?.as_secs()).unwrap_or(u32::MAX))
}

fn millis(field: &str, s: Option<&str>) -> Result<u32, String> {
    Ok(u32::try_from(dur(field, s)?.as_millis()).unwrap_or(u32::MAX))
}

/// Parses a pipeline file into a request.
pub fn parse(text: &str) -> Result<proto::PipelineRequest, String> {
    let f: File = steward_runtime::yaml::from_str(text)?;
    let mut stages = Vec::with_capacity(f.stages.len());
    for (i, s) in f.stages.into_iter().enumerate() {
        let at = |k: &str| format!("stages[{i}].{k}");
        let retry = match s.retry {
            None => None,
            Some(r) => Some(proto::RetryPolicy {
                max_attempts: r.attempts,
                initial_backoff_ms: millis(&at("retry.backoff"), r.backoff.as_deref())?,
                max_backoff_ms: millis(&at("retry.max_backoff"), r.max_backoff.as_deref())?,
                retry_on: r.on,
            }),
        };
        stages.push(proto::Stage {
            timeout_seconds: secs(&at("timeout"), s.timeout.as_deref())?,
            name: s.name,
            depends_on: s.depends_on,
            worker: Some(proto::WorkerTemplate {
                image: s.image,
                command: s.command,
                env: s.env.into_iter().collect(),
                worker_class: s.class,
                resources: Some(proto::Resources {
                    cpu_request: s.requests.cpu.unwrap_or_default(),
                    memory_request: s.requests.memory.unwrap_or_default(),
                    cpu_limit: s.limits.cpu.unwrap_or_default(),
                    memory_limit: s.limits.memory.unwrap_or_default(),
                }),
                annotations: s.annotations.into_iter().collect(),
            }),
            retry,
            when: match s.when {
                None | Some(WhenFile::OnSuccess) => proto::When::OnSuccess,
                Some(WhenFile::OnFailure) => proto::When::OnFailure,
                Some(WhenFile::Always) => proto::When::Always,
            } as i32,
            finally: s.finally,
        });
    }
    Ok(proto::PipelineRequest {
        pipeline_name: f.name,
        run_id: String::new(),
        stages,
        timeout_seconds: secs("timeout", f.timeout.as_deref())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let doc = include_str!("pipeline_file.rs");
        let yaml: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.strip_prefix("//! ").unwrap_or("")))
            .collect();
        let r = parse(&yaml).unwrap();
        assert_eq!(r.timeout_seconds, 1800);
        assert_eq!(r.stages.len(), 4);
        assert_eq!(r.stages[0].retry.as_ref().unwrap().initial_backoff_ms, 1000);
        assert_eq!(r.stages[2].when, proto::When::OnFailure as i32);
        assert!(r.stages[3].finally);
        assert!(crate::core::spec::validate(&r).is_ok());
    }

    #[test]
    fn typos_and_bad_durations_are_named() {
        let e = parse("stages:\n  - name: a\n    depend_on: [b]\n").unwrap_err();
        assert!(e.contains("unknown field `depend_on`"), "{e}");
        let e = parse("stages:\n  - name: a\n    timeout: soon\n").unwrap_err();
        assert!(e.starts_with("stages[0].timeout: "), "{e}");
        let e = parse("stages:\n  - name: a\n    retry: { attempts: many }\n").unwrap_err();
        assert!(e.starts_with("stages[0].retry.attempts: "), "{e}");
        let e = parse("stages:\n  - name: a\n    when: sometimes\n").unwrap_err();
        assert!(e.starts_with("stages[0].when: "), "{e}");
    }
}
