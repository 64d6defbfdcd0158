//! Every decision `steward monitor` makes, as pure functions: no client, no I/O.
//! The controller and the installers around `core` read the cluster and
//! Prometheus, call these, and write what they decide.
//!
//! - `validate`: a MonitoringStack spec to settings, or every wrong field;
//! - `stack`: one resolved stack, the names and labels of everything it installs;
//! - `profile`: kind, minikube, k3s, eks, gke, aks or generic, from the nodes and the API server;
//! - `manifests`, `promconfig`, `rules`, `dashboards`: what to apply;
//! - `external`: which Prometheus Operator Prometheus serves `spec.prometheus: external`;
//! - `alerting`: Alertmanager's routes, receivers and message templates;
//! - `preflight`: findings from a snapshot of the cluster;
//! - `onboarding`: each node's onboarding as a state machine;
//! - `conditions` and `status`: the MonitoringStack's status after each step;
//! - `report`: the `steward monitor status` table.

pub mod alerting;
pub mod conditions;
pub mod dashboards;
pub mod external;
pub mod manifests;
pub mod onboarding;
pub mod preflight;
pub mod profile;
pub mod promconfig;
pub mod report;
pub mod rules;
pub mod selfmon;
pub mod stack;
pub mod status;
pub mod validate;
