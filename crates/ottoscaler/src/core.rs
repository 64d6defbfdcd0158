//! The pure core: types and decisions without I/O, each table-tested. Nothing
//! here talks to Kubernetes, a process or the network.
//!
//! - [`spec`]: a `PipelineRequest` validated into a [`spec::Pipeline`] (names,
//!   DAG, retries, timeouts), every error naming its field.
//! - [`schedule`]: which stages start or are skipped next, and how a run ends.
//! - [`retry`]: which failures are retried, and the back-off before the next attempt.
//! - [`config`]: worker classes and a request's resources resolved against them.
//! - [`room`]: whether workers fit on the nodes they may run on, and what a
//!   request does when they do not.
//! - [`removal`]: which workers a scale-down removes, which are orphans.
//! - [`pipeline_file`]: the YAML people write, turned into a request.
//! - [`worker`]: workers and who owns them (plan, observation, labels, record).
//! - [`history`]: a run's request and progress history as the bytes of its record.
//! - [`resume`]: where each stage of a run stands after a restart.
//! - [`teams`]: which team a token is, what it may see, its quota.
//! - [`fair`]: which waiting worker the cap and the teams' quotas admit next.
//! - [`clock`]: milliseconds since the epoch, random name suffixes.

pub mod clock;
pub mod config;
pub mod fair;
pub mod history;
pub mod pipeline_file;
pub mod removal;
pub mod resume;
pub mod retry;
pub mod room;
pub mod schedule;
pub mod spec;
pub mod teams;
pub mod worker;
