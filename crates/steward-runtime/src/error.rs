//! Errors a person can act on: each names what failed and where.

use std::path::PathBuf;

/// Errors of the shared runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig file does not exist.
    #[error(
        "kubeconfig {path} does not exist; pass --kubeconfig, set KUBECONFIG, or use --kube-config cluster inside a pod"
    )]
    KubeconfigMissing {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The kubeconfig file exists but cannot be read or parsed.
    #[error("kubeconfig {path} cannot be read: {source}")]
    KubeconfigUnreadable {
        /// The path that was tried.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig location is known.
    #[error("no kubeconfig: HOME is not set and neither --kubeconfig nor KUBECONFIG is given")]
    NoKubeconfig,
    /// The requested context is not in the kubeconfig.
    #[error("context \"{context}\" not found in kubeconfig {path} (available: {available})")]
    UnknownContext {
        /// The requested context.
        context: String,
        /// The kubeconfig.
        path: PathBuf,
        /// Contexts the file has.
        available: String,
    },
    /// The kubeconfig has no usable current context or cluster.
    #[error("kubeconfig {path}: {source}")]
    KubeconfigInvalid {
        /// The kubeconfig.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// In-cluster configuration is not available.
    #[error("--kube-config cluster: not running in a pod with a service account ({0})")]
    InCluster(#[source] kube::config::InClusterError),
    /// The client could not be built.
    #[error("Kubernetes client for {server}: {source}")]
    Client {
        /// The API server URL.
        server: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer.
    #[error("cannot reach the Kubernetes API server at {server} ({origin}): {reason}")]
    Unreachable {
        /// The API server URL.
        server: String,
        /// Where the address came from (kubeconfig path and context, or in-cluster).
        origin: String,
        /// Why.
        reason: String,
    },
    /// The admin server could not bind its address.
    #[error("admin server cannot listen on {addr}: {source}")]
    AdminBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election on Lease {namespace}/{name}: {source}")]
    Lease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// Why.
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::KubeconfigMissing { .. }
            | Self::KubeconfigUnreadable { .. }
            | Self::NoKubeconfig => "kubeconfig",
            Self::UnknownContext { .. } | Self::KubeconfigInvalid { .. } => "kubeconfig_invalid",
            Self::InCluster(_) => "in_cluster",
            Self::Client { .. } => "client",
            Self::Unreachable { .. } => "unreachable",
            Self::AdminBind { .. } => "admin_bind",
            Self::Lease { .. } => "lease",
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl crate::exit::ExitStatus for Error {
    fn exit(&self) -> crate::Exit {
        use crate::Exit;
        match self {
            Self::Unreachable { .. } => Exit::Unreachable,
            Self::KubeconfigMissing { .. }
            | Self::KubeconfigUnreadable { .. }
            | Self::NoKubeconfig
            | Self::UnknownContext { .. }
            | Self::KubeconfigInvalid { .. }
            | Self::AdminBind { .. } => Exit::Usage,
            Self::InCluster(_) | Self::Client { .. } | Self::Lease { .. } => Exit::Failed,
        }
    }
}
