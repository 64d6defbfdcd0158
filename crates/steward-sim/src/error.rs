//! Errors of the simulated cluster; each names the program or file involved.

use std::path::PathBuf;

/// Why the simulated cluster could not be started, reached or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A control-plane program is missing from the binary directory.
    #[error(
        "{program} not found in {dir}; build the control plane with hack/controlplane/build.sh and pass its output as --bin-dir (or STEWARD_CONTROLPLANE_BIN)"
    )]
    MissingBinary {
        /// Program name, such as `kube-apiserver`.
        program: &'static str,
        /// Directory that was searched.
        dir: PathBuf,
    },
    /// Reading or writing a file of the cluster failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Generating the cluster's certificates failed.
    #[error("generating certificates: {0}")]
    Certs(#[source] rcgen::Error),
    /// A program exited while the cluster was starting.
    #[error("{program} exited during start-up ({status}); see {log}\n{tail}")]
    Exited {
        /// Program name.
        program: &'static str,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A start-up step did not finish before its deadline.
    #[error("timed out after {seconds}s waiting for {what}; logs are in {logs}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline in seconds.
        seconds: u64,
        /// The log directory.
        logs: PathBuf,
    },
    /// The kubeconfig written for the cluster could not be loaded.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A call to the cluster's API server failed.
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// No simulated cluster is recorded in the state directory.
    #[error("no simulated cluster in {0}; start one with `steward sim up`")]
    NotRunning(PathBuf),
    /// An option of the cluster is not valid.
    #[error("{field}: {reason}")]
    BadOption {
        /// The option, as the `steward sim up` flag (`--image` is `Options::images`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A command that sets up or removes real nodes failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// How it exited.
        status: String,
        /// Its standard error.
        stderr: String,
    },
    /// Real nodes cannot run on this machine as it is.
    #[error("{0}")]
    RealNodes(String),
    /// Every 10.N.0.0/16 the real nodes may use is taken.
    #[error(
        "no free 10.N.0.0/16 (N in 200..=250) for real nodes: each is used by an address, a route or another simulated cluster"
    )]
    NoFreeNet,
    /// A real node stopped while the cluster was starting.
    #[error("real node {node} stopped during start-up ({status}); logs in {logs}\n{tail}")]
    NodeExited {
        /// Node name.
        node: String,
        /// How its supervisor exited.
        status: String,
        /// The node's log directory.
        logs: PathBuf,
        /// The last lines of its supervisor and kubelet logs.
        tail: String,
    },
    /// An embedded manifest could not be read (a bug).
    #[error("embedded manifest: {0}")]
    Asset(#[source] serde_saphyr::Error),
    /// An object could not be built from JSON (a bug).
    #[error("building an object: {0}")]
    Json(#[source] serde_json::Error),
    /// The state file of a detached cluster is not valid.
    #[error("state file {path} is not valid: {source}")]
    State {
        /// The state file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: serde_json::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { what, path, source }
}
