//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while building the image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or input is not acceptable; `field` names it.
    #[error("{field}: {reason}")]
    Invalid {
        /// The flag or field, e.g. `--tag`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading an input file failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the archive failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a tar stream or gzip stream in memory failed.
    #[error("packing the {what}: {source}")]
    Pack {
        /// Which tar or gzip stream.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An OCI object could not be built from the inputs.
    #[error("building the image {what}: {source}")]
    Spec {
        /// config, manifest or index.
        what: &'static str,
        /// Why oci-spec refused it.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// An OCI object could not be serialized.
    #[error("serializing the image {what}: {source}")]
    Json {
        /// config, manifest or index.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}
