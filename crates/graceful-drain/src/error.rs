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
    /// Another replica took the Lease (or it could not be renewed): the process
    /// exits (status 1) and its Deployment restarts it as a follower.
    #[error(
        "leadership lost (Lease {0}); exiting so the Deployment restarts this replica as a follower"
    )]
    LostLeadership(String),
    /// The pod cache stopped before it was filled.
    #[error("the pod cache stopped before its first list")]
    CacheStopped,
    /// `--webhook-config ca-bundle`: the configuration steward should only keep the
    /// caBundle of is missing or lacks steward's webhook.
    #[error(
        "ValidatingWebhookConfiguration {name} {reason}: with --webhook-config ca-bundle steward only writes its caBundle; whoever installed steward (the Helm chart) creates it"
    )]
    WebhookConfig {
        /// Its name (`--webhook-name`).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The report could not be written as JSON or YAML.
    #[error("writing the report: {0}")]
    Output(String),
    /// An HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
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
            Self::WebhookConfig { .. } => "webhook_config",
            Self::Output(_) => "output",
            Self::Http(_) => "http",
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
            Self::Certs(_)
            | Self::Tls(_)
            | Self::LostLeadership(_)
            | Self::CacheStopped
            | Self::Output(_)
            | Self::Http(_) => Exit::Failed,
            // What the installer should have created is missing: a set-up error.
            Self::WebhookConfig { .. } => Exit::Usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use steward_runtime::{Exit, ExitStatus};

    use super::*;

    #[test]
    fn exit_statuses() {
        let api = |code: u16| {
            let mut s = kube::core::Status::failure("m", "r");
            s.code = code;
            kube::Error::Api(s.boxed())
        };
        let table = [
            (
                Error::InvalidConfig {
                    field: "defaults.maxWait".into(),
                    reason: "r".into(),
                },
                Exit::Usage,
            ),
            (
                Error::Bind {
                    addr: ([127, 0, 0, 1], 8443).into(),
                    source: std::io::Error::other("in use"),
                },
                Exit::Usage,
            ),
            (kube("reading Secret x")(api(403)), Exit::Failed),
            (Error::LostLeadership("steward/gd".into()), Exit::Failed),
            (Error::Tls("no ca.crt".into()), Exit::Failed),
            (Error::CacheStopped, Exit::Failed),
            (
                Error::WebhookConfig {
                    name: "rel-steward-graceful-drain".into(),
                    reason: "not found".into(),
                },
                Exit::Usage,
            ),
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
