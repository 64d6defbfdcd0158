//! Auto-monitoring: `steward monitor` installs and keeps a Prometheus, Alertmanager
//! and Grafana stack declared by a `MonitoringStack` resource, onboards every node
//! into monitoring and shows, per node, that it worked.
//!
//! Layout: `core/` holds every decision, pure (no `kube::Client`): `validate`
//! (spec -> settings or named field errors), `stack`, `profile`, `promconfig`,
//! `rules`, `dashboards` and `manifests` (what to apply), `preflight` (findings from
//! a snapshot), `onboarding` (per-node state machine), `conditions` and `status`
//! (the status after each step), `report` (the status table). Around it the I/O
//! edge: `controller` (the loop; `controller::nodes` is the onboarding pass),
//! `install` (server-side apply, prune, availability), `helm`, `promapi`
//! (Prometheus HTTP API), `run` (flags and commands). `crd` is the API type.
//!
//! A newcomer starts at `controller` (its module doc names the way a
//! MonitoringStack takes through the code), then `core::validate` and
//! `core::onboarding`.

pub mod controller;
pub mod core;
pub mod crd;
pub mod error;
pub mod events;
pub mod grafana_admin;
pub mod helm;
pub mod install;
pub mod messages;
pub mod metrics;
pub mod promapi;
mod run;
pub mod uninstall;

pub use error::{Error, Result};
pub use run::{
    CrdArgs, MonitorArgs, MonitorCommand, RunArgs, StatusArgs, UninstallArgs, apply_crd, run,
};
