//! A pipeline as the scaler runs it, built from a `PipelineRequest` by [`validate`].
//!
//! Validation is pure and happens before anything is created: duplicate or malformed
//! names, unknown dependencies, dependency cycles (the cycle is named), impossible
//! retry policies. Every error names the request field it is about, in the form
//! `stages[2].depends_on[0]`, so a handler can show it to the person who wrote the
//! pipeline.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::core::retry::{RetryOn, RetryPolicy};
use crate::proto;

/// A request field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// The field, e.g. `stages[1].depends_on[0]`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

pub(crate) fn bad(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// When a stage runs, judged on its dependencies' outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Every dependency succeeded.
    OnSuccess,
    /// At least one dependency failed.
    OnFailure,
    /// Whatever happened upstream.
    Always,
}

/// What one worker runs, before the worker class fills in resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerTemplate {
    /// Container image.
    pub image: String,
    /// Command (argv).
    pub command: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Worker class name; empty = default.
    pub class: String,
    /// Overrides of the class's requests and limits.
    pub resources: proto::Resources,
    /// Extra pod annotations.
    pub annotations: BTreeMap<String, String>,
}

/// One stage of a validated pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Name, a DNS label.
    pub name: String,
    /// Indices of the stages this one waits for.
    pub depends_on: Vec<usize>,
    /// What its worker runs.
    pub worker: WorkerTemplate,
    /// Per-attempt timeout, from the worker's creation.
    pub timeout: Option<Duration>,
    /// Retries.
    pub retry: RetryPolicy,
    /// Condition on upstream outcomes.
    pub when: When,
    /// Runs after every other stage has ended.
    pub finally: bool,
}

/// A validated pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Name for people.
    pub name: String,
    /// Stages; indices are stable and used by the scheduler.
    pub stages: Vec<Stage>,
    /// Whole-run timeout.
    pub timeout: Option<Duration>,
}

/// Longest stage name: worker pod names are `<run>-<stage>-<attempt>` and must stay
/// under the 63-character label limit.
pub const MAX_STAGE_NAME: usize = 30;
/// Longest run or task id.
pub const MAX_ID: usize = 24;
/// Most attempts a retry policy may ask for.
pub const MAX_ATTEMPTS: i32 = 10;

/// Checks a DNS-label-like name (lowercase alphanumerics and '-', not at the ends).
pub fn check_name(field: &str, name: &str, max: usize) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(bad(field, "required"));
    }
    if name.len() > max {
        return Err(bad(
            field,
            format!("\"{name}\" is longer than {max} characters"),
        ));
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        return Err(bad(
            field,
            format!(
                "\"{name}\" must be lowercase letters, digits and '-', starting and ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

impl From<proto::WorkerTemplate> for WorkerTemplate {
    fn from(w: proto::WorkerTemplate) -> Self {
        Self {
            image: w.image,
            command: w.command,
            env: w.env.into_iter().collect(),
            class: w.worker_class,
            resources: w.resources.unwrap_or_default(),
            annotations: w.annotations.into_iter().collect(),
        }
    }
}

/// Builds a [`Pipeline`] from the request, or names the first field that is wrong.
pub fn validate(req: &proto::PipelineRequest) -> Result<Pipeline, SpecError> {
    if !req.run_id.is_empty() {
        check_name("run_id", &req.run_id, MAX_ID)?;
    }
    if req.stages.is_empty() {
        return Err(bad("stages", "a pipeline needs at least one stage"));
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, s) in req.stages.iter().enumerate() {
        check_name(&format!("stages[{i}].name"), &s.name, MAX_STAGE_NAME)?;
        if let Some(first) = index.insert(&s.name, i) {
            return Err(bad(
                format!("stages[{i}].name"),
                format!("duplicate stage name \"{}\" (also stages[{first}])", s.name),
            ));
        }
    }
    let mut stages = Vec::with_capacity(req.stages.len());
    for (i, s) in req.stages.iter().enumerate() {
        stages.push(stage(i, s, &index, req)?);
    }
    if let Some(cycle) = find_cycle(&stages) {
        let names: Vec<&str> = cycle.iter().map(|&i| stages[i].name.as_str()).collect();
        return Err(bad(
            "stages",
            format!("dependency cycle: {}", names.join(" -> ")),
        ));
    }
    Ok(Pipeline {
        name: req.pipeline_name.clone(),
        stages,
        timeout: secs(req.timeout_seconds),
    })
}

fn secs(s: u32) -> Option<Duration> {
    (s > 0).then(|| Duration::from_secs(u64::from(s)))
}

fn stage(
    i: usize,
    s: &proto::Stage,
    index: &HashMap<&str, usize>,
    req: &proto::PipelineRequest,
) -> Result<Stage, SpecError> {
    let f = |rest: &str| format!("stages[{i}].{rest}");
    let mut depends_on = Vec::with_capacity(s.depends_on.len());
    for (k, d) in s.depends_on.iter().enumerate() {
        let Some(&j) = index.get(d.as_str()) else {
            return Err(bad(
                f(&format!("depends_on[{k}]")),
                format!("unknown stage \"{d}\""),
            ));
        };
        if req.stages[j].finally && !s.finally {
            return Err(bad(
                f(&format!("depends_on[{k}]")),
                format!("\"{d}\" is a finally stage; only finally stages may depend on it"),
            ));
        }
        if depends_on.contains(&j) {
            return Err(bad(
                f(&format!("depends_on[{k}]")),
                format!("\"{d}\" is listed twice"),
            ));
        }
        depends_on.push(j);
    }
    let w = s.worker.clone().unwrap_or_default();
    if w.command.is_empty() && w.image.is_empty() {
        return Err(bad(f("worker"), "needs an image or a command"));
    }
    let when = match proto::When::try_from(s.when) {
        Ok(proto::When::OnSuccess) => When::OnSuccess,
        Ok(proto::When::OnFailure) => When::OnFailure,
        Ok(proto::When::Always) => When::Always,
        Err(_) => return Err(bad(f("when"), format!("unknown value {}", s.when))),
    };
    Ok(Stage {
        name: s.name.clone(),
        depends_on,
        worker: WorkerTemplate::from(w),
        timeout: secs(s.timeout_seconds),
        retry: retry(&f("retry"), s.retry.as_ref())?,
        when,
        finally: s.finally,
    })
}

fn retry(field: &str, r: Option<&proto::RetryPolicy>) -> Result<RetryPolicy, SpecError> {
    let Some(r) = r else {
        return Ok(RetryPolicy::none());
    };
    if !(0..=MAX_ATTEMPTS).contains(&r.max_attempts) {
        return Err(bad(
            format!("{field}.max_attempts"),
            format!("{} is outside 0..={MAX_ATTEMPTS}", r.max_attempts),
        ));
    }
    let mut on = Vec::new();
    for (k, c) in r.retry_on.iter().enumerate() {
        on.push(RetryOn::parse(c).map_err(|reason| bad(format!("{field}.retry_on[{k}]"), reason))?);
    }
    if on.is_empty() {
        on.push(RetryOn::AnyExitCode);
    }
    let initial = Duration::from_millis(u64::from(r.initial_backoff_ms.max(1)));
    let max = if r.max_backoff_ms == 0 {
        Duration::from_secs(60).max(initial)
    } else {
        Duration::from_millis(u64::from(r.max_backoff_ms))
    };
    if max < initial {
        return Err(bad(
            format!("{field}.max_backoff_ms"),
            "is smaller than initial_backoff_ms",
        ));
    }
    Ok(RetryPolicy {
        max_attempts: u32::try_from(r.max_attempts.max(1)).unwrap_or(1),
        initial,
        max,
        on,
    })
}

/// A dependency cycle as stage indices, first stage repeated at the end; `None` if the
/// graph is acyclic. Depth-first search with colours, iterative so a long chain
/// cannot overflow the stack.
pub fn find_cycle(stages: &[Stage]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; stages.len()];
    for root in 0..stages.len() {
        if colour[root] != Colour::White {
            continue;
        }
        // (stage, next dependency to look at)
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = Colour::Grey;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&dep) = stages[node].depends_on.get(*next) {
                *next += 1;
                match colour[dep] {
                    Colour::White => {
                        colour[dep] = Colour::Grey;
                        path.push((dep, 0));
                    }
                    Colour::Grey => {
                        let start = path.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        // path runs from dependant to dependency; show it as "a depends on b".
                        let mut cycle: Vec<usize> = path[start..].iter().map(|&(n, _)| n).collect();
                        cycle.push(dep);
                        return Some(cycle);
                    }
                    Colour::Black => {}
                }
            } else {
                colour[node] = Colour::Black;
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(name: &str, deps: &[&str]) -> proto::Stage {
        proto::Stage {
            name: name.into(),
            depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
            worker: Some(proto::WorkerTemplate {
                command: vec!["true".into()],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn req(stages: Vec<proto::Stage>) -> proto::PipelineRequest {
        proto::PipelineRequest {
            stages,
            ..Default::default()
        }
    }

    #[test]
    fn validation_table() {
        let mut retry_bad = st("a", &[]);
        retry_bad.retry = Some(proto::RetryPolicy {
            max_attempts: 3,
            retry_on: vec!["exit-code".into(), "sometimes".into()],
            ..Default::default()
        });
        let mut fin = st("cleanup", &[]);
        fin.finally = true;
        let mut no_worker = st("a", &[]);
        no_worker.worker = None;
        let cases: Vec<(&str, proto::PipelineRequest, Result<(), &str>)> = vec![
            (
                "ok diamond",
                req(vec![
                    st("a", &[]),
                    st("b", &["a"]),
                    st("c", &["a"]),
                    st("d", &["b", "c"]),
                ]),
                Ok(()),
            ),
            (
                "empty",
                req(vec![]),
                Err("stages: a pipeline needs at least one stage"),
            ),
            (
                "duplicate",
                req(vec![st("a", &[]), st("b", &[]), st("a", &[])]),
                Err("stages[2].name: duplicate stage name \"a\" (also stages[0])"),
            ),
            (
                "unknown dep",
                req(vec![st("a", &[]), st("b", &["a", "buidl"])]),
                Err("stages[1].depends_on[1]: unknown stage \"buidl\""),
            ),
            (
                "self cycle",
                req(vec![st("a", &["a"])]),
                Err("stages: dependency cycle: a -> a"),
            ),
            (
                "cycle",
                req(vec![
                    st("a", &["c"]),
                    st("b", &["a"]),
                    st("c", &["b"]),
                    st("d", &[]),
                ]),
                Err("stages: dependency cycle: a -> c -> b -> a"),
            ),
            (
                "bad name",
                req(vec![st("Build", &[])]),
                Err(
                    "stages[0].name: \"Build\" must be lowercase letters, digits and '-', starting and ending with a letter or digit",
                ),
            ),
            (
                "bad retry class",
                req(vec![retry_bad]),
                Err(
                    "stages[0].retry.retry_on[1]: unknown class \"sometimes\" (expected exit-code, exit-code:<n>, oom-killed, evicted, node-lost, image-pull or timeout)",
                ),
            ),
            (
                "depends on finally",
                req(vec![fin.clone(), st("b", &["cleanup"])]),
                Err(
                    "stages[1].depends_on[0]: \"cleanup\" is a finally stage; only finally stages may depend on it",
                ),
            ),
            (
                "no worker",
                req(vec![no_worker]),
                Err("stages[0].worker: needs an image or a command"),
            ),
            (
                "dup dep",
                req(vec![st("a", &[]), st("b", &["a", "a"])]),
                Err("stages[1].depends_on[1]: \"a\" is listed twice"),
            ),
        ];
        for (name, r, want) in cases {
            let got = validate(&r).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{name}");
        }
    }

    #[test]
    fn bad_run_id_is_named() {
        let mut r = req(vec![st("a", &[])]);
        r.run_id = "Run_1".into();
        assert!(
            validate(&r)
                .unwrap_err()
                .to_string()
                .starts_with("run_id: ")
        );
    }
}
