//! Process scaffolding shared by every steward system: the Kubernetes client
//! (kubeconfig, context, in-cluster, and the node-manager `--kube-config` modes),
//! logging, the admin HTTP server (`/metrics`, `/healthz`, `/readyz`), Lease-based
//! leader election, one shutdown signal, and the English/Korean message catalogue.
//!
//! Each system's `run()` receives what it needs from here; nothing below reads the
//! environment on its own (clap does, once, in the binary).

pub mod admin;
pub mod duration;
pub mod error;
pub mod exit;
pub mod http;
pub mod i18n;
pub mod kube_client;
pub mod leader;
pub mod logging;
pub mod output;
pub mod shutdown;
pub mod slack;
pub mod yaml;

pub use error::{Error, Result};
pub use exit::{Exit, ExitStatus};
pub use i18n::{Lang, Localized};
pub use output::Output;
pub use shutdown::Shutdown;

/// What the binary hands every system's `run(args, ctx)`: the language of
/// messages for people and the one shutdown signal (already listening for
/// SIGINT/SIGTERM). Everything else a system needs comes from its own `Args`.
#[derive(Debug, Clone)]
pub struct Context {
    /// Language of messages for people.
    pub lang: Lang,
    /// The process-wide shutdown signal.
    pub shutdown: Shutdown,
}
