//! Process scaffolding shared by every steward system: the Kubernetes client
//! (kubeconfig, context, in-cluster, and the node-manager `--kube-config` modes),
//! logging, the admin HTTP server (`/metrics`, `/healthz`, `/readyz`), Lease-based
//! leader election, one shutdown signal, and the English/Korean message catalogue.
//!
//! Each system's `run()` receives what it needs from here; nothing below reads the
//! environment on its own (clap does, once, in the binary).

pub mod admin;
pub mod error;
pub mod http;
pub mod i18n;
pub mod kube_client;
pub mod leader;
pub mod logging;
pub mod shutdown;
pub mod slack;

pub use error::{Error, Result};
pub use i18n::{Lang, Localized};
pub use shutdown::Shutdown;
