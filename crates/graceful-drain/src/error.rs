//! The crate's one error type. Each variant names what failed and where.

/// Errors of graceful drain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration (ConfigMap or a pod annotation) is invalid.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The offending field (`defaults.maxWait`, `overrides[2].workload`, an annotation key).
        field: String,
        /// Why.
        reason: String,
    },
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Generating a certificate failed.
    #[error("generating the webhook certificate: {0}")]
    Certs(#[source] rcgen::Error),
    /// The TLS material could not be loaded.
    #[error("loading the webhook certificate: {0}")]
    Tls(String),
    /// Binding the webhook port failed.
    #[error("binding the webhook server to {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another replica took the Lease; this process stops.
    #[error("lost leadership (Lease {0}); stopping")]
    LostLeadership(String),
    /// The pod cache stopped before it was filled.
    #[error("the pod cache stopped before its first list")]
    CacheStopped,
    /// The node agent could not finish a step.
    #[error("drain agent: {0}")]
    Agent(String),
    /// The shared runtime failed (client, admin server, lease).
    #[error(transparent)]
    Runtime(#[from] steward_runtime::Error),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidConfig { .. } => "invalid_config",
            Self::Kube { .. } => "kube",
            Self::Certs(_) | Self::Tls(_) => "tls",
            Self::Bind { .. } => "bind",
            Self::Runtime(_) => "runtime",
            Self::LostLeadership(_) => "lost_leadership",
            Self::CacheStopped => "cache",
            Self::Agent(_) => "agent",
        }
    }
}

/// Wraps a kube error with what was being done.
pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl steward_runtime::ExitStatus for Error {
    fn exit(&self) -> steward_runtime::Exit {
        use steward_runtime::Exit;
        match self {
            Self::InvalidConfig { .. } | Self::Bind { .. } => Exit::Usage,
            Self::Kube { source, .. } => steward_runtime::exit::of_kube(source),
            Self::Runtime(e) => e.exit(),
            _ => Exit::Failed,
        }
    }
}
