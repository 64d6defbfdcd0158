//! The record of a detached cluster (`steward sim up`), so that later commands can
//! report on it and stop it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io};
use crate::process::signal;
use crate::realnode::{self, Net};

const FILE: &str = "state.json";

/// Processes and files of a detached simulated cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimState {
    /// Working directory.
    pub dir: PathBuf,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// API server URL.
    pub server: String,
    /// Program name to process id.
    pub pids: BTreeMap<String, u32>,
    /// The real nodes, if the cluster has any.
    #[serde(default)]
    pub real_nodes: Option<RealNodesState>,
}

/// The real nodes of a detached cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealNodesState {
    /// N of the cluster's 10.N.0.0/16.
    pub net: u8,
    /// Node name to the pid of its supervisor (`unshare`, parent of the node's PID
    /// namespace).
    pub nodes: BTreeMap<String, u32>,
}

/// The program a real node's supervisor runs as.
const SUPERVISOR: &str = "unshare";

impl SimState {
    /// Loads the state of the cluster in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotRunning(dir.to_path_buf()));
            }
            Err(e) => return Err(io("reading", &path)(e)),
        };
        serde_json::from_str(&text).map_err(|source| Error::State { path, source })
    }

    pub(crate) fn save(&self) -> Result<()> {
        let path = self.dir.join(FILE);
        let text = serde_json::to_string_pretty(self).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, text).map_err(io("writing", &path))
    }

    /// Which recorded programs are still running. A pid counts only if its command
    /// line still names the program, so a reused pid is not mistaken for it.
    /// Real nodes are listed by node name.
    pub fn running(&self) -> BTreeMap<String, bool> {
        let mut running: BTreeMap<String, bool> = self
            .pids
            .iter()
            .map(|(name, pid)| (name.clone(), is_program(*pid, name)))
            .collect();
        for (node, pid) in self.real_node_pids() {
            running.insert(node, is_program(pid, SUPERVISOR));
        }
        running
    }

    /// Node name and supervisor pid of each real node.
    pub fn real_node_pids(&self) -> Vec<(String, u32)> {
        self.real_nodes
            .iter()
            .flat_map(|r| r.nodes.iter().map(|(n, p)| (n.clone(), *p)))
            .collect()
    }

    /// A client for the recorded cluster.
    pub async fn client(&self) -> Result<kube::Client> {
        crate::client::client_for(&self.kubeconfig).await
    }

    /// Stops every recorded program (SIGTERM, then SIGKILL after `grace`), removes
    /// what the real nodes set up on the machine, and removes the working directory.
    pub fn stop(self, grace: Duration) -> Result<()> {
        // A real node is thrown away whole: SIGKILL to its supervisor (which ignores
        // SIGTERM) ends its PID namespace, and with it every process of the node.
        for (_, pid) in self.real_node_pids() {
            if is_program(pid, SUPERVISOR) {
                signal(pid, libc::SIGKILL);
            }
        }
        let alive: Vec<(String, u32)> = self
            .pids
            .iter()
            .filter(|(n, p)| is_program(**p, n))
            .map(|(n, p)| (n.clone(), *p))
            .collect();
        for (_, pid) in &alive {
            signal(*pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while alive.iter().any(|(n, p)| is_program(*p, n)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for (name, pid) in &alive {
            if is_program(*pid, name) {
                signal(*pid, libc::SIGKILL);
            }
        }
        if let Some(r) = &self.real_nodes {
            let net = Net(r.net);
            let plans: Vec<_> = r
                .nodes
                .keys()
                .filter_map(|n| node_index(n))
                .map(|i| net.node(i))
                .collect();
            realnode::stop_nodes(net, &plans);
        }
        std::fs::remove_dir_all(&self.dir).map_err(io("removing", &self.dir))
    }
}

fn is_program(pid: u32, name: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    // A zombie has an empty cmdline and counts as gone.
    Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(argv0))
        .file_name()
        .is_some_and(|f| f == name)
}

fn node_index(name: &str) -> Option<u8> {
    name.strip_prefix("real-node-")?.parse().ok()
}
