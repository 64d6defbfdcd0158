//! Every decision graceful drain makes, as pure functions of what was read: no
//! client, no clock of its own, no I/O. The modules around `core` (the webhook,
//! the controller, certificates, the node agent, `run`) read the cluster, call
//! these, and write what they decide.
//!
//! - `config`: the ConfigMap document and what it resolves to for one pod;
//! - `admission`: the webhook's answer to one eviction, from the pod's `facts`;
//! - `state`: the drain record on the pod, its patches, when to evict;
//! - `budget`: whether a disruption budget lets one more pod go now;
//! - `workload`: how each kind of owner is isolated and waited for;
//! - `next`: what the controller does after each eviction answer;
//! - `vpa`: what a VerticalPodAutoscaler object says;
//! - `advice`: when to advise resizing in place.

pub mod admission;
pub mod advice;
pub mod budget;
pub mod config;
pub mod facts;
pub mod next;
pub mod state;
pub mod vpa;
pub mod workload;
