//! Errors of auto-monitoring.

/// Why a reconcile, an install or a status query failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The Prometheus API failed or answered something unusable.
    #[error("Prometheus at {url}: {reason}")]
    Prometheus {
        /// Base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The MonitoringStack does not exist.
    #[error(
        "MonitoringStack {namespace}/{name} not found; create one (see docs/monitor.md) or pass --name"
    )]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// helm failed.
    #[error("helm {what}: {reason}")]
    Helm {
        /// The helm command.
        what: String,
        /// Its error output or why it could not run.
        reason: String,
    },
    /// Another replica took the Lease (or it could not be renewed): the process
    /// exits (status 1) and its Deployment restarts it as a follower.
    #[error(
        "leadership lost (Lease {0}); exiting so the Deployment restarts this replica as a follower"
    )]
    LostLeadership(String),
    /// Something did not happen in time.
    #[error("{what} not done after {after:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: std::time::Duration,
    },
    /// The status could not be written as JSON or YAML.
    #[error("writing the status: {0}")]
    Output(String),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] steward_runtime::Error),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kubernetes",
            Self::Prometheus { .. } => "prometheus",
            Self::NotFound { .. } => "input",
            Self::Helm { .. } => "helm",
            Self::Timeout { .. } => "timeout",
            Self::LostLeadership(_) => "lost_leadership",
            Self::Output(_) => "output",
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
            Self::Kube { source, .. } => steward_runtime::exit::of_kube(source),
            Self::Prometheus { .. } => Exit::Unreachable,
            Self::NotFound { .. } => Exit::Usage,
            Self::Helm { .. }
            | Self::Timeout { .. }
            | Self::LostLeadership(_)
            | Self::Output(_) => Exit::Failed,
            Self::Runtime(e) => e.exit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use steward_runtime::{Exit, ExitStatus};

    use super::*;

    #[test]
    fn exit_statuses() {
        let table = [
            (
                Error::Prometheus {
                    url: "http://p:9090".into(),
                    reason: "connection refused".into(),
                },
                Exit::Unreachable,
            ),
            (
                Error::NotFound {
                    namespace: "monitoring".into(),
                    name: "mon".into(),
                },
                Exit::Usage,
            ),
            (
                Error::Helm {
                    what: "upgrade --install".into(),
                    reason: "timed out".into(),
                },
                Exit::Failed,
            ),
            (
                Error::LostLeadership("default/steward-monitor".into()),
                Exit::Failed,
            ),
            (Error::Output("yaml".into()), Exit::Failed),
            (
                Error::Runtime(steward_runtime::Error::NoKubeconfig),
                Exit::Usage,
            ),
        ];
        for (e, want) in table {
            assert_eq!(e.exit(), want, "{e}");
        }
    }
}
