//! Errors of the ottoscaler.

use crate::spec::SpecError;

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
    /// The server answered a client call with an error.
    #[error("{0}")]
    Rpc(String),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] steward_runtime::Error),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Invalid(_) | Self::Config { .. } => "input",
            Self::NotFound { .. } | Self::AlreadyExists(_) => "not_found",
            Self::OverCapacity { .. } | Self::NoRoom { .. } => "capacity",
            Self::Kube { .. } => "kubernetes",
            Self::Io { .. } => "io",
            Self::Transport { .. } | Self::Rpc(_) => "grpc",
            Self::Runtime(e) => e.metric_label(),
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
            Self::OverCapacity { .. } | Self::NoRoom { .. } => {
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

impl steward_runtime::ExitStatus for Error {
    fn exit(&self) -> steward_runtime::Exit {
        use steward_runtime::Exit;
        match self {
            Self::Invalid(_) | Self::Config { .. } => Exit::Usage,
            Self::Transport { .. } => Exit::Unreachable,
            Self::Kube { source, .. } => steward_runtime::exit::of_kube(source),
            Self::Runtime(e) => e.exit(),
            _ => Exit::Failed,
        }
    }
}
