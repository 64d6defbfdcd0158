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
        /// Whether Prometheus could not be reached (a connection failure, a
        /// timeout, a 5xx from it or its proxy) rather than answering badly.
        unreachable: bool,
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
    /// Another run of the NodePool holds its Lease.
    #[error(
        "another steward drain of this NodePool is running: Lease {lease} is held by {holder} since {since} (last renewed {renewed}); wait for it to finish, or pass --wait-for-lock"
    )]
    Locked {
        /// `namespace/name` of the Lease.
        lease: String,
        /// Its holder.
        holder: String,
        /// When the holder took it.
        since: String,
        /// When the holder last renewed it.
        renewed: String,
    },
    /// The Lease could not be taken in time although nobody seemed to hold it.
    #[error("could not take Lease {0} in time; try again, or pass --wait-for-lock")]
    LockTimeout(String),
    /// Pods no controller owns are on the nodes to drain.
    #[error(
        "{} on the nodes to drain: no controller recreates them once evicted; pass --force to evict them anyway (as kubectl drain --force)",
        unmanaged_list(.0)
    )]
    Unmanaged(Vec<String>),
    /// The NodePool's disruption budgets cannot be read; as Karpenter, steward
    /// fails closed and changes nothing.
    #[error("NodePool {nodepool}: {source}; fix the NodePool (kubectl edit nodepool {nodepool})")]
    Budget {
        /// The NodePool.
        nodepool: String,
        /// Which budget, and why.
        #[source]
        source: crate::core::budget::Invalid,
    },
    /// More nodes were named with --nodes than the NodePool's budget allows now.
    #[error(
        "--nodes names {named} nodes but NodePool {nodepool}'s disruption budget allows {allowed} now ({why}); name fewer, or wait for the budget"
    )]
    OverBudget {
        /// The NodePool.
        nodepool: String,
        /// How many were named.
        named: usize,
        /// How many the budget allows.
        allowed: usize,
        /// Which budget, and the nodes already being disrupted.
        why: String,
    },
    /// A flag's value (or a file it names) is unusable; nothing was changed.
    #[error("{flag}: {reason}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Why, naming the file when there is one (never its content).
        reason: String,
    },
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] steward_runtime::Error),
}

fn unmanaged_list(pods: &[String]) -> String {
    let s = if pods.len() == 1 { "" } else { "s" };
    format!(
        "{} pod{s} without a controller ({})",
        pods.len(),
        pods.join(", ")
    )
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Prometheus { .. } | Self::NoKarpenterMetrics { .. } => "prometheus",
            Self::Kube { .. } => "kubernetes",
            Self::UnknownNode(..) | Self::Unmanaged(_) | Self::Flag { .. } => "input",
            Self::Budget { .. } | Self::OverBudget { .. } => "budget",
            Self::Locked { .. } | Self::LockTimeout(_) => "lock",
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
            Self::Prometheus { unreachable, .. } => {
                if *unreachable {
                    Exit::Unreachable
                } else {
                    Exit::Failed
                }
            }
            Self::NoKarpenterMetrics { .. } => Exit::Failed,
            Self::Kube { source, .. } => steward_runtime::exit::of_kube(source),
            Self::UnknownNode(..) | Self::Flag { .. } | Self::OverBudget { .. } => Exit::Usage,
            Self::Budget { .. } => Exit::Failed,
            Self::Locked { .. } | Self::LockTimeout(_) | Self::Unmanaged(_) => Exit::Failed,
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
        let prom = |unreachable| Error::Prometheus {
            address: "http://p".into(),
            query: "q".into(),
            reason: "r".into(),
            unreachable,
        };
        let cases = [
            (prom(true), Exit::Unreachable),
            (prom(false), Exit::Failed),
            (
                Error::NoKarpenterMetrics {
                    address: "http://p".into(),
                    nodepool: "np".into(),
                },
                Exit::Failed,
            ),
            (Error::UnknownNode("n".into(), "np".into()), Exit::Usage),
            (
                Error::Flag {
                    flag: "--prometheus-ca-file",
                    reason: "/x: No such file".into(),
                },
                Exit::Usage,
            ),
            (Error::Unmanaged(vec!["ns/bare".into()]), Exit::Failed),
            (
                Error::LockTimeout("kube-system/steward-drain-np".into()),
                Exit::Failed,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.exit(), want, "{e}");
        }
        assert_eq!(
            prom(true).to_string(),
            "Prometheus at http://p: query q: r; check --prometheus-address and --prometheus-org-id"
        );
    }
}
