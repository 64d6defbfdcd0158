//! Errors of the NodePool drain.

/// Why a drain or allocation query stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Prometheus query failed or returned nothing usable.
    #[error(
        "Prometheus at {address}: query {query}: {reason}; check --prometheus-address and --prometheus-org-id"
    )]
    Prometheus {
        /// The address.
        address: String,
        /// The query.
        query: String,
        /// Why.
        reason: String,
    },
    /// Neither generation of Karpenter metrics exists for the NodePool.
    #[error(
        "Prometheus at {address} has no karpenter_nodepools_usage (Karpenter v1) or karpenter_nodepool_usage (before 1.0) series for nodepool \"{nodepool}\"; check --nodepool-name and that Karpenter's metrics are scraped"
    )]
    NoKarpenterMetrics {
        /// The address.
        address: String,
        /// The NodePool.
        nodepool: String,
    },
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A node named with --nodes is not in the NodePool.
    #[error("--nodes: {0} is not a node of NodePool {1} (label karpenter.sh/nodepool={1})")]
    UnknownNode(String, String),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] steward_runtime::Error),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Prometheus { .. } | Self::NoKarpenterMetrics { .. } => "prometheus",
            Self::Kube { .. } => "kubernetes",
            Self::UnknownNode(..) => "input",
            Self::Runtime(e) => e.metric_label(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

impl steward_runtime::ExitStatus for Error {
    fn exit(&self) -> steward_runtime::Exit {
        use steward_runtime::Exit;
        match self {
            Self::Prometheus { .. } => Exit::Unreachable,
            Self::NoKarpenterMetrics { .. } => Exit::Failed,
            Self::Kube { source, .. } => steward_runtime::exit::of_kube(source),
            Self::UnknownNode(..) => Exit::Usage,
            Self::Runtime(e) => e.exit(),
        }
    }
}
