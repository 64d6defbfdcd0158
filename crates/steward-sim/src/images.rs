//! The images real nodes run. Nothing is pulled: every image comes from an OCI
//! archive built on this machine (`hack/realnode/images.sh`) and imported into each
//! node's containerd at start.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The pod sandbox image (`hack/realnode/pause.c`); every real node needs it.
pub const PAUSE_IMAGE: &str = "steward.local/pause:1";
/// The test HTTP server (`crates/test-images`, `test-http`).
pub const HTTP_IMAGE: &str = "steward.local/test-http:1";
/// The test CI worker (`crates/test-images`, `test-worker`).
pub const WORKER_IMAGE: &str = "steward.local/test-worker:1";

/// Checks that each archive is a file, naming the flag.
pub(crate) fn check(images: &[PathBuf]) -> Result<()> {
    if images.is_empty() {
        return Err(Error::BadOption {
            field: "--image",
            reason: format!(
                "real nodes need image archives, at least the pause image {PAUSE_IMAGE}; hack/realnode/images.sh builds them and prints their paths"
            ),
        });
    }
    for i in images {
        if !i.is_file() {
            return Err(Error::BadOption {
                field: "--image",
                reason: format!("{} is not a file", i.display()),
            });
        }
    }
    Ok(())
}
