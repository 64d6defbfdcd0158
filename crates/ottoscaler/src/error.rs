//! Errors of the ottoscaler.

use crate::core::spec::SpecError;

/// Why an ottoscaler call or the server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request or pipeline file field is wrong; nothing was changed.
    #[error(transparent)]
    Invalid(#[from] SpecError),
    /// A run, task or worker that does not exist.
    #[error("{kind} \"{id}\" not found")]
    NotFound {
        /// run, task or worker.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A run, task or worker of another team.
    #[error("{kind} \"{id}\" belongs to another team than {team}")]
    PermissionDenied {
        /// run, task or worker.
        kind: &'static str,
        /// Its id.
        id: String,
        /// The caller's team.
        team: String,
    },
    /// More workers than the team's quota allows.
    #[error("{field}: {requested} more would take team {team} over its quota of {quota}")]
    OverQuota {
        /// The request field.
        field: String,
        /// Asked for.
        requested: u32,
        /// The team.
        team: String,
        /// Which bound, and what is held.
        quota: String,
    },
    /// A run id that is already used.
    #[error("run_id: \"{0}\" is already used")]
    AlreadyExists(String),
    /// More workers than the concurrency cap allows right now.
    #[error(
        "worker_count: {requested} workers do not fit: {in_use} of the cap of {cap} are in use"
    )]
    OverCapacity {
        /// Asked for.
        requested: u32,
        /// In use.
        in_use: u32,
        /// The cap.
        cap: u32,
    },
    /// No node the workers may run on has room for them.
    #[error("{field}: {reason}")]
    NoRoom {
        /// The request field.
        field: String,
        /// Which room is missing.
        reason: String,
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
    /// A local process could not be started or stopped.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is wrong.
    #[error("config {path}: {reason}")]
    Config {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The gRPC server or client transport failed.
    #[error("gRPC {what}: {source}")]
    Transport {
        /// What was being done.
        what: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server answered a client call with an error (or the call broke): the
    /// gRPC code is kept, so callers decide by it and the exit status follows it.
    #[error("{}: {message}", code_name(*code))]
    Rpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// The gRPC reflection service could not be built from the descriptors.
    #[error("building the reflection service: {0}")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] steward_runtime::Error),
    /// This replica lost its Lease; it exits so that its Deployment restarts it as
    /// a follower (there is never a second writer).
    #[error("lost leadership of Lease {0}")]
    LostLeadership(String),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Invalid(_) | Self::Config { .. } => "input",
            Self::NotFound { .. } | Self::AlreadyExists(_) => "not_found",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::OverCapacity { .. } | Self::NoRoom { .. } | Self::OverQuota { .. } => "capacity",
            Self::Kube { .. } => "kubernetes",
            Self::Io { .. } => "io",
            Self::Transport { .. } | Self::Rpc { .. } | Self::Reflection(_) => "grpc",
            Self::Runtime(e) => e.metric_label(),
            Self::LostLeadership(_) => "lost_leadership",
        }
    }

    /// Whether the object the call was about does not exist (any backend).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::NotFound { .. } => true,
            Self::Kube { source, .. } => steward_kube::error::is_not_found(source),
            _ => false,
        }
    }

    /// The gRPC status for a client.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            Self::Invalid(_) | Self::Config { .. } => {
                tonic::Status::invalid_argument(self.to_string())
            }
            Self::NotFound { .. } => tonic::Status::not_found(self.to_string()),
            Self::AlreadyExists(_) => tonic::Status::already_exists(self.to_string()),
            Self::PermissionDenied { .. } => tonic::Status::permission_denied(self.to_string()),
            Self::OverCapacity { .. } | Self::NoRoom { .. } | Self::OverQuota { .. } => {
                tonic::Status::resource_exhausted(self.to_string())
            }
            _ => tonic::Status::unavailable(self.to_string()),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

impl Error {
    /// A server's answer (a [`tonic::Status`]) as this crate's error.
    pub fn rpc(s: &tonic::Status) -> Self {
        Self::Rpc {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

/// How a gRPC code reads for people, in front of the server's message.
fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code;
    match c {
        Code::InvalidArgument => "invalid request",
        Code::Unauthenticated => "not authenticated",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::ResourceExhausted => "over capacity",
        Code::PermissionDenied => "permission denied",
        Code::Unavailable => "unavailable",
        _ => "error",
    }
}

/// The exit status of a client call that ended with gRPC code `c`: the server
/// cannot be reached (or stopped answering) is 4, a request the server found
/// wrong is 2 (nothing was changed), anything else it refused is 1.
pub fn exit_of(c: tonic::Code) -> steward_runtime::Exit {
    use steward_runtime::Exit;
    use tonic::Code;
    match c {
        Code::Unavailable | Code::DeadlineExceeded => Exit::Unreachable,
        Code::InvalidArgument => Exit::Usage,
        _ => Exit::Failed,
    }
}

impl steward_runtime::ExitStatus for Error {
    fn exit(&self) -> steward_runtime::Exit {
        use steward_runtime::Exit;
        match self {
            Self::Invalid(_) | Self::Config { .. } => Exit::Usage,
            Self::Transport { .. } => Exit::Unreachable,
            Self::Rpc { code, .. } => exit_of(*code),
            Self::Kube { source, .. } => steward_runtime::exit::of_kube(source),
            Self::Runtime(e) => e.exit(),
            Self::NotFound { .. }
            | Self::AlreadyExists(_)
            | Self::PermissionDenied { .. }
            | Self::OverQuota { .. }
            | Self::OverCapacity { .. }
            | Self::NoRoom { .. }
            | Self::Io { .. }
            | Self::Reflection(_)
            | Self::LostLeadership(_) => Exit::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use steward_runtime::{Exit, ExitStatus};
    use tonic::Code;

    use super::*;

    #[test]
    fn a_status_keeps_its_code_and_reads_as_before() {
        let e = Error::rpc(&tonic::Status::not_found("run \"x\" not found"));
        assert!(matches!(
            e,
            Error::Rpc {
                code: Code::NotFound,
                ..
            }
        ));
        assert_eq!(e.to_string(), "not found: run \"x\" not found");
        let e = Error::rpc(&tonic::Status::internal("boom"));
        assert_eq!(e.to_string(), "error: boom");
    }

    #[test]
    fn exit_statuses() {
        let rpc = |code| Error::Rpc {
            code,
            message: String::new(),
        };
        let cases = [
            (rpc(Code::Unavailable), Exit::Unreachable),
            (rpc(Code::DeadlineExceeded), Exit::Unreachable),
            (rpc(Code::InvalidArgument), Exit::Usage),
            (rpc(Code::NotFound), Exit::Failed),
            (rpc(Code::Unauthenticated), Exit::Failed),
            (rpc(Code::ResourceExhausted), Exit::Failed),
            (
                Error::Invalid(crate::core::spec::bad("f", "x")),
                Exit::Usage,
            ),
            (
                Error::NotFound {
                    kind: "run",
                    id: "x".into(),
                },
                Exit::Failed,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.exit(), want, "{e:?}");
        }
    }
}
