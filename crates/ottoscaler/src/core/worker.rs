//! Workers and who owns them: the vocabulary every layer shares. A worker belongs
//! to a pipeline run or a scale-up task ([`Group`]), carried in its labels
//! ([`WorkerLabels`]); a backend creates it from a [`WorkerPlan`] and reports it
//! as a [`WorkerObs`]; a group's durable record is a [`GroupRecord`]. The
//! backends write and read the labels, the log hub keys its buffers by group, the
//! scaler routes observations by it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::core::retry::FailureClass;
use crate::core::teams::{Cost, DEFAULT_TEAM};

/// Label on every worker pod (value `worker`); the watch selects on it.
pub const LABEL_WORKER: &str = "steward.io/ottoscaler";
/// Scale-up task id.
pub const LABEL_TASK: &str = "steward.io/task";
/// Pipeline run id.
pub const LABEL_RUN: &str = "steward.io/pipeline-run";
/// Stage name.
pub const LABEL_STAGE: &str = "steward.io/stage";
/// Attempt number, from 1.
pub const LABEL_ATTEMPT: &str = "steward.io/attempt";
/// The team that owns the worker (see [`crate::core::teams`]).
pub const LABEL_TEAM: &str = "steward.io/ottoscaler-team";
/// The worker class the worker was made from.
pub const LABEL_CLASS: &str = "steward.io/worker-class";
/// Annotation a worker (or the handler) sets to `true` while it is doing work, so
/// ScaleDown does not pick it.
pub const ANNOTATION_BUSY: &str = "steward.io/busy";

/// A run or a task: what owns workers and a log buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// A pipeline run.
    Run(String),
    /// A scale-up task.
    Task(String),
}

impl Group {
    /// The id.
    pub fn id(&self) -> &str {
        match self {
            Self::Run(id) | Self::Task(id) => id,
        }
    }

    /// `run` or `task`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Run(_) => "run",
            Self::Task(_) => "task",
        }
    }
}

/// Who a worker belongs to, as carried in its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLabels {
    /// The owning run or task.
    pub group: Group,
    /// Stage (runs only).
    pub stage: String,
    /// Attempt (runs only; 1 for task workers).
    pub attempt: u32,
    /// The owning team; workers of older versions, which carry no team label,
    /// belong to [`DEFAULT_TEAM`].
    pub team: String,
    /// The worker class (empty for workers of older versions).
    pub class: String,
}

impl WorkerLabels {
    /// The labels as a map for a pod.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([
            (LABEL_WORKER.to_string(), "worker".to_string()),
            (LABEL_TEAM.to_string(), self.team.clone()),
        ]);
        if !self.class.is_empty() {
            m.insert(LABEL_CLASS.into(), self.class.clone());
        }
        match &self.group {
            Group::Run(id) => {
                m.insert(LABEL_RUN.into(), id.clone());
                m.insert(LABEL_STAGE.into(), self.stage.clone());
                m.insert(LABEL_ATTEMPT.into(), self.attempt.to_string());
            }
            Group::Task(id) => {
                m.insert(LABEL_TASK.into(), id.clone());
            }
        }
        m
    }

    /// Reads the labels of a worker; `None` if they are not a worker's.
    pub fn from_map(m: &BTreeMap<String, String>) -> Option<Self> {
        if m.get(LABEL_WORKER).map(String::as_str) != Some("worker") {
            return None;
        }
        let team = m
            .get(LABEL_TEAM)
            .cloned()
            .unwrap_or_else(|| DEFAULT_TEAM.to_string());
        let class = m.get(LABEL_CLASS).cloned().unwrap_or_default();
        if let Some(run) = m.get(LABEL_RUN) {
            return Some(Self {
                group: Group::Run(run.clone()),
                stage: m.get(LABEL_STAGE).cloned().unwrap_or_default(),
                attempt: m
                    .get(LABEL_ATTEMPT)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(1),
                team,
                class,
            });
        }
        m.get(LABEL_TASK).map(|t| Self {
            group: Group::Task(t.clone()),
            stage: String::new(),
            attempt: 1,
            team,
            class,
        })
    }
}

/// Where a worker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Created, not running yet.
    Pending,
    /// Running.
    Running,
    /// Ended with exit code 0.
    Succeeded,
    /// Ended otherwise; see [`WorkerObs::failure`].
    Failed,
    /// Being deleted.
    Terminating,
}

impl Phase {
    /// The name shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Terminating => "Terminating",
        }
    }
}

/// A worker as last observed.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerObs {
    /// Worker (pod) name.
    pub name: String,
    /// Owner labels.
    pub labels: WorkerLabels,
    /// Phase.
    pub phase: Phase,
    /// Why it failed, when `phase` is `Failed` (or a Pending pod that cannot start).
    pub failure: Option<FailureClass>,
    /// Why a Pending worker has no node yet: the scheduler's PodScheduled=False
    /// message (it waits for capacity).
    pub unschedulable: Option<String>,
    /// Exit code, when it ended.
    pub exit_code: Option<i32>,
    /// The busy annotation.
    pub busy: bool,
    /// Node or host.
    pub node: String,
    /// Creation, ms since the epoch.
    pub created_ms: i64,
    /// Its requests, as counted against its team's quota.
    pub cost: Cost,
}

/// A worker to create, resources already resolved from its class.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerPlan {
    /// Pod or process name.
    pub name: String,
    /// Owner labels.
    pub labels: WorkerLabels,
    /// Image.
    pub image: String,
    /// Command.
    pub command: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Requests (`cpu`, `memory`).
    pub requests: BTreeMap<String, String>,
    /// Limits.
    pub limits: BTreeMap<String, String>,
    /// Pod annotations.
    pub annotations: BTreeMap<String, String>,
    /// Node selector of the worker class.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the worker class.
    pub tolerations: Vec<k8s_openapi::api::core::v1::Toleration>,
    /// Termination grace period.
    pub grace: Duration,
}

/// The durable record of a run or task, also the owner of its workers (so deleting
/// it garbage-collects them).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    /// Run or task.
    pub group: Group,
    /// The owning team.
    pub team: String,
    /// `running`, `succeeded`, `failed`, `cancelled` for runs; `active` for tasks.
    pub state: String,
    /// Why it ended, for people.
    pub reason: String,
    /// When it ended (ms since the epoch), for retention.
    pub finished_ms: Option<i64>,
    /// A running run's request (protobuf), so a new process can continue it; empty
    /// for tasks and ended runs.
    pub request: Vec<u8>,
    /// A run's progress history as last written by `Backend::put_history` (read at
    /// start-up; `put_group` leaves it alone).
    pub history: Vec<crate::proto::PipelineProgress>,
}

#[cfg(test)]
impl WorkerObs {
    /// A worker of `group` in `phase` for tests: stage `s`, attempt 1, node `n1`,
    /// idle, no failure, no exit code.
    pub fn fixture(name: &str, group: Group, phase: Phase) -> Self {
        Self {
            name: name.into(),
            labels: WorkerLabels {
                group,
                stage: "s".into(),
                attempt: 1,
                team: DEFAULT_TEAM.into(),
                class: String::new(),
            },
            phase,
            failure: None,
            unschedulable: None,
            exit_code: None,
            busy: false,
            node: "n1".into(),
            created_ms: 0,
            cost: Cost::default(),
        }
    }
}
