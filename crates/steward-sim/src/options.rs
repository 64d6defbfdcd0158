//! How to start a cluster, and the checks that refuse bad options before anything
//! starts.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::process::Lifetime;
use crate::realnode::plan::MAX_REAL_NODES;

/// Programs the cluster needs, in start order.
pub(crate) const PROGRAMS: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];
/// What real nodes need besides the control plane.
const NODE_PROGRAMS: [&str; 2] = ["kubelet", "kube-proxy"];

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Working directory: certificates, etcd data, kubeconfig, logs.
    pub dir: PathBuf,
    /// Directory holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler
    /// and kwok (and kubelet and kube-proxy for real nodes).
    pub bin_dir: PathBuf,
    /// Whether the processes outlive the caller.
    pub lifetime: Lifetime,
    /// Write an API audit log (`<dir>/audit.log`, JSON, one line per request), for
    /// counting requests by user agent in benchmarks.
    pub audit: bool,
    /// Real nodes (kubelet, containerd, runc, CNI, kube-proxy) to start beside the
    /// kwok nodes, named `real-node-1`..; needs root. 0: none.
    pub real_nodes: usize,
    /// OCI image archives imported into every real node (at least the pause image,
    /// [`PAUSE_IMAGE`](crate::PAUSE_IMAGE)); see `hack/realnode/images.sh`.
    pub images: Vec<PathBuf>,
}

impl Options {
    /// Options for a cluster in `dir` from the programs in `bin_dir`, killed with the
    /// caller, without audit log or real nodes.
    pub fn new(dir: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            bin_dir: bin_dir.into(),
            lifetime: Lifetime::WithParent,
            audit: false,
            real_nodes: 0,
            images: Vec::new(),
        }
    }
}

/// Bad options are refused before anything starts, naming the option.
pub(crate) fn check(opts: &Options) -> Result<()> {
    for program in PROGRAMS {
        if !opts.bin_dir.join(program).is_file() {
            return Err(Error::MissingBinary {
                program,
                dir: opts.bin_dir.clone(),
            });
        }
    }
    if opts.real_nodes == 0 {
        if !opts.images.is_empty() {
            return Err(Error::BadOption {
                field: "--image",
                reason: "image archives are for real nodes; none were asked for".into(),
            });
        }
        return Ok(());
    }
    if opts.real_nodes > MAX_REAL_NODES {
        return Err(Error::BadOption {
            field: "--real-nodes",
            reason: format!("{} is more than {}", opts.real_nodes, MAX_REAL_NODES),
        });
    }
    for program in NODE_PROGRAMS {
        if !opts.bin_dir.join(program).is_file() {
            return Err(Error::MissingBinary {
                program,
                dir: opts.bin_dir.clone(),
            });
        }
    }
    crate::images::check(&opts.images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_options_name_the_flag_and_start_nothing() {
        let dir = std::env::temp_dir().join(format!("steward-sim-check-{}", std::process::id()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for p in PROGRAMS.iter().chain(&NODE_PROGRAMS) {
            std::fs::write(bin.join(p), "").unwrap();
        }
        let archive = dir.join("pause.tar");
        std::fs::write(&archive, "").unwrap();
        let opts = |real_nodes, images: Vec<PathBuf>| Options {
            real_nodes,
            images,
            ..Options::new(dir.join("c"), &bin)
        };
        let field = |o: &Options| match check(o) {
            Err(Error::BadOption { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&opts(0, vec![archive.clone()])), "--image");
        assert_eq!(field(&opts(1, vec![])), "--image");
        assert_eq!(field(&opts(1, vec![dir.join("missing.tar")])), "--image");
        assert_eq!(
            field(&opts(MAX_REAL_NODES + 1, vec![archive.clone()])),
            "--real-nodes"
        );
        check(&opts(0, vec![])).unwrap();
        check(&opts(2, vec![archive])).unwrap();
        std::fs::remove_file(bin.join("kubelet")).unwrap();
        assert!(matches!(
            check(&opts(1, vec![dir.join("pause.tar")])),
            Err(Error::MissingBinary {
                program: "kubelet",
                ..
            })
        ));
        assert!(
            !dir.join("c").exists(),
            "check created the cluster directory"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
