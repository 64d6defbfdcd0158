//! A real Kubernetes control plane on this machine, as local processes.
//!
//! There is no container runtime here, so the cluster is etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler (all real upstream programs built by
//! `hack/controlplane/build.sh`), plus kwok, which plays every kubelet: it makes the
//! nodes Ready, moves scheduled pods to Running/Ready, ends Job pods, and removes
//! deleted pods once their grace period has passed (see `assets/stages.yaml`).
//!
//! The same [`Cluster`] serves the integration tests (children die with the test
//! binary) and `steward sim up` (children outlive the command; [`SimState`] finds
//! them again for `status` and `down`).

mod certs;
mod cluster;
mod error;
mod nodes;
mod ports;
mod process;
mod state;

pub use cluster::{Cluster, Lifetime, Options};
pub use error::{Error, Result};
pub use nodes::{NodeSpec, add_nodes, is_ready, schedulable};
pub use ports::free_port;
pub use state::SimState;

/// Annotation kwok uses to pick the nodes it manages.
pub const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";
