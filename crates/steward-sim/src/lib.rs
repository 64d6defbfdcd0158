//! A real Kubernetes control plane on this machine, as local processes.
//!
//! The cluster is etcd, kube-apiserver, kube-controller-manager and kube-scheduler
//! (all real upstream programs built by `hack/controlplane/build.sh`), plus kwok,
//! which plays the kubelet of cheap simulated nodes: it makes them Ready, moves
//! scheduled pods to Running/Ready, ends Job pods, and removes deleted pods once
//! their grace period has passed (see `assets/stages.yaml`). Beside them, a cluster
//! may have a few real nodes ([`Options::real_nodes`], module `realnode`): the real
//! kubelet with containerd, runc, CNI and kube-proxy, each in network namespaces of
//! its own, running images imported from archives built on this machine.
//!
//! The same [`Cluster`] serves the integration tests (children die with the test
//! binary) and `steward sim up` (children outlive the command; [`SimState`] finds
//! them again for `status` and `down`).

mod certs;
mod client;
mod cluster;
mod error;
mod flags;
mod images;
mod nodes;
mod options;
mod ports;
mod process;
mod realnode;
mod state;

pub use cluster::Cluster;
pub use error::{Error, Result};
pub use images::{HTTP_IMAGE, PAUSE_IMAGE, WORKER_IMAGE};
pub use nodes::{NodeSpec, add_nodes, is_ready, schedulable};
pub use options::Options;
pub use ports::free_port;
pub use process::Lifetime;
pub use realnode::plan::{MAX_REAL_NODES, REAL_NODE_LABEL};
pub use realnode::sweep_stale;
pub use state::{RealNodesState, SimState};

/// Annotation kwok uses to pick the nodes it manages.
pub const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";
