//! Auto-monitoring: `steward monitor` installs and keeps a Prometheus, Alertmanager
//! and Grafana stack declared by a `MonitoringStack` resource, onboards every node
//! into monitoring and shows, per node, that it worked.
//!
//! Pure modules (no `kube::Client`): `validate` (spec -> settings or named field
//! errors), `profile` (kind/minikube/k3s/generic from the nodes), `promconfig`,
//! `rules`, `dashboards` and `manifests` (what to apply), `preflight` (findings from a
//! snapshot), `onboarding` (per-node state machine), `conditions`, `report` (the
//! status table). I/O: `install` (server-side apply, prune, availability), `helm`,
//! `promapi` (Prometheus HTTP API), `controller` (the loop), `run` (flags).

pub mod conditions;
pub mod controller;
pub mod crd;
pub mod dashboards;
pub mod error;
pub mod events;
pub mod helm;
pub mod install;
pub mod manifests;
pub mod messages;
pub mod metrics;
pub mod onboarding;
pub mod preflight;
pub mod profile;
pub mod promapi;
pub mod promconfig;
pub mod report;
pub mod rules;
mod run;
pub mod stack;
pub mod validate;

pub use error::{Error, Result};
pub use run::{CrdArgs, MonitorArgs, MonitorCommand, Output, RunArgs, StatusArgs, apply_crd, run};
