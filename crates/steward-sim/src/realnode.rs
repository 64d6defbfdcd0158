//! Real nodes beside the kwok ones: the real kubelet, containerd + runc, the CNI
//! bridge plugin and kube-proxy, each node in network, mount and PID namespaces of
//! its own (recipe and machine facts: `hack/realnode/README.md`).
//!
//! [`RealNodes::reserve`] runs before the API server starts (it binds the bridge's
//! address); [`RealNodes::start`] once it is ready. A node's processes all live in
//! one PID namespace whose first process is `assets/node-run.sh`; its parent,
//! `unshare --kill-child`, carries `PR_SET_PDEATHSIG` like the control plane, so a
//! crashed owner takes kubelet, containerd, shims and containers with it. What the
//! kernel does not remove by itself (the netns file, veth, routes, bridge, cgroup
//! directories) is removed on drop, by `steward sim down`, and otherwise by the
//! sweep of the next start ([`sweep`]).

mod config;
mod host;
pub(crate) mod plan;
mod policy;
pub(crate) mod sweep;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::certs::{self, Ca};
use crate::error::{Error, Result, io};
use crate::process::{Lifetime, Proc, tail};
pub(crate) use plan::{Net, NodePlan};
pub(crate) use policy::never_pull;

const NODE_RUN: &str = include_str!("../assets/node-run.sh");

/// What starting the nodes needs from the cluster.
#[derive(Debug)]
pub(crate) struct Start<'a> {
    /// The cluster's directory; nodes live in `realnodes/<name>` under it.
    pub dir: &'a Path,
    /// kubelet and kube-proxy are here.
    pub bin_dir: &'a Path,
    pub images: &'a [PathBuf],
    /// The API server as nodes reach it.
    pub server: &'a str,
    pub ca_cert: &'a Path,
    pub lifetime: Lifetime,
}

/// The real nodes of one cluster and the host network they hang off.
#[derive(Debug)]
pub(crate) struct RealNodes {
    net: Net,
    plans: Vec<NodePlan>,
    procs: Vec<Proc>,
    /// Whether dropping this removes the nodes (false once detached).
    owned: bool,
}

impl RealNodes {
    /// Picks a free 10.N.0.0/16, records this process as its owner and creates the
    /// bridge; first removes what dead clusters left.
    pub fn reserve(count: usize) -> Result<Self> {
        preflight()?;
        let _lock = sweep::lock()?;
        sweep::sweep()?;
        let used = host::used_addresses()?;
        let mut taken = sweep::recorded();
        taken.extend(host::links()?.iter().filter_map(|l| plan::parse_bridge(l)));
        let net = plan::pick(&used, &taken).ok_or(Error::NoFreeNet)?;
        sweep::record(net, &[std::process::id()])?;
        let nodes = Self {
            net,
            plans: (1..=count).map(|i| net.node(i as u8)).collect(),
            procs: Vec::new(),
            owned: true,
        };
        host::net_up(net)?;
        Ok(nodes)
    }

    pub fn net(&self) -> Net {
        self.net
    }

    /// Names of the nodes.
    pub fn names(&self) -> Vec<String> {
        self.plans.iter().map(|p| p.name.clone()).collect()
    }

    /// Writes each node's certificates and configuration, sets up its netns and
    /// cgroups, and starts it.
    pub fn start(&mut self, ca: &Ca, s: &Start<'_>) -> Result<()> {
        let script = s.dir.join("realnodes/node-run.sh");
        std::fs::create_dir_all(s.dir.join("realnodes")).map_err(io("creating", s.dir))?;
        std::fs::write(&script, NODE_RUN).map_err(io("writing", &script))?;
        let runc = std::env::var("STEWARD_RUNC").unwrap_or_else(|_| "/usr/sbin/runc".into());
        // nftables: one atomic transaction per sync. In iptables mode a SYN now and
        // then went un-NATed while kube-proxy rewrote its chains (2 connect timeouts
        // in about 62 000 requests of the real-node graceful-drain test; 0 in 27 577
        // under nftables), which no product behaviour can be measured against.
        let mode = std::env::var("STEWARD_PROXY_MODE").unwrap_or_else(|_| "nftables".into());
        for node in self.plans.clone() {
            let dir = s.dir.join("realnodes").join(&node.name);
            let cfg = config::NodeConfig {
                dir: &dir,
                net: self.net,
                node: &node,
                server: s.server,
                ca_cert: s.ca_cert,
                runc: &runc,
                proxy_mode: &mode,
            };
            write_node_files(&cfg, ca)?;
            host::node_net_up(self.net, &node, &self.plans)?;
            host::cgroups_up(&node.cgroup)?;
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &node.netns])
                .args(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"])
                .arg("bash")
                .arg(&script)
                .arg(&dir)
                .arg(s.bin_dir)
                .args(s.images);
            let log = dir.join("logs/supervisor.log");
            self.procs
                .push(Proc::spawn_command("real-node", cmd, &log, s.lifetime)?);
        }
        Ok(())
    }

    /// Waits until every node is Ready and schedulable; fails early with the log of
    /// a node whose supervisor ended.
    pub async fn wait_ready(&mut self, client: &kube::Client, timeout: Duration) -> Result<()> {
        let api: Api<Node> = Api::all(client.clone());
        let deadline = Instant::now() + timeout;
        loop {
            for (p, plan) in self.procs.iter_mut().zip(&self.plans) {
                p.check_alive().map_err(|e| node_failed(e, &plan.name))?;
            }
            let ready: Vec<String> = match api.list(&ListParams::default()).await {
                Ok(l) => l
                    .items
                    .into_iter()
                    .filter(crate::nodes::schedulable)
                    .filter_map(|n| n.metadata.name)
                    .collect(),
                Err(e) => {
                    tracing::debug!(error = %e, "listing nodes");
                    Vec::new()
                }
            };
            if self.plans.iter().all(|p| ready.contains(&p.name)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let logs = self
                    .procs
                    .first()
                    .map(|p| p.log.clone())
                    .unwrap_or_default();
                return Err(Error::Timeout {
                    what: format!("{} real nodes to become Ready", self.plans.len()),
                    seconds: timeout.as_secs(),
                    logs: logs.parent().map(Path::to_path_buf).unwrap_or_default(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Node names and supervisor pids; the nodes are left running.
    pub fn detach(&mut self) -> Vec<(String, u32)> {
        self.owned = false;
        let pids = self
            .plans
            .iter()
            .zip(&self.procs)
            .map(|(n, p)| (n.name.clone(), p.child.id()))
            .collect();
        self.procs.clear();
        pids
    }

    /// Stops every node and removes what it set up on the machine.
    fn teardown(&mut self) {
        for p in &mut self.procs {
            p.kill();
        }
        stop_nodes(self.net, &self.plans);
    }
}

impl Drop for RealNodes {
    fn drop(&mut self) {
        if self.owned {
            self.teardown();
        }
    }
}

/// Kills what is left of the nodes (after their supervisors) and removes their
/// cgroups, netns, veths, routes, the bridge and the record. Used on drop and by
/// `steward sim down`.
pub(crate) fn stop_nodes(net: Net, plans: &[NodePlan]) {
    let _lock = sweep::lock();
    for node in plans {
        let left = host::cgroups_down(&node.cgroup, Duration::from_secs(10));
        if !left.is_empty() {
            tracing::warn!(node = %node.name, pids = ?left, "processes of a real node would not die");
        }
        host::node_net_down(node);
    }
    host::net_down(net);
    sweep::forget(net);
}

/// Re-records the owners of `net` (after `steward sim up` detached).
pub(crate) fn record_owners(net: Net, pids: &[u32]) -> Result<()> {
    let _lock = sweep::lock()?;
    sweep::record(net, pids)
}

/// Removes what dead clusters' real nodes left on the machine: processes in their
/// cgroups, netns files, veths, routes, bridges, cgroups. Returns the 10.N ranges
/// freed. Needs root; every start of a cluster with real nodes does it first.
pub fn sweep_stale() -> Result<Vec<u8>> {
    let _lock = sweep::lock()?;
    sweep::sweep()
}

fn write_node_files(cfg: &config::NodeConfig<'_>, ca: &Ca) -> Result<()> {
    let d = cfg.dir;
    for sub in [
        "logs",
        "cni/net.d",
        "cni/ipam",
        "kubelet",
        "pod-logs",
        "containerd/certs.d/_default",
    ] {
        std::fs::create_dir_all(d.join(sub)).map_err(io("creating", d.join(sub)))?;
    }
    certs::node(ca, &d.join("pki"), &cfg.node.name, &cfg.node.ip)?;
    let files = [
        ("name", format!("{}\n", cfg.node.name)),
        ("ip", format!("{}\n", cfg.node.ip)),
        ("cgroup", format!("{}\n", cfg.node.cgroup)),
        ("cgroup-mounts", host::cgroup_mount_lines()),
        ("kubelet.kubeconfig", cfg.kubeconfig("kubelet-client")),
        ("kube-proxy.kubeconfig", cfg.kubeconfig("kube-proxy")),
        ("containerd.toml", cfg.containerd()),
        (
            "containerd/certs.d/_default/hosts.toml",
            config::NodeConfig::registry_hosts().to_string(),
        ),
        ("cni/net.d/10-steward.conflist", cfg.cni()),
        ("kubelet.yaml", cfg.kubelet()),
        ("kube-proxy.yaml", cfg.kube_proxy()),
    ];
    for (rel, text) in files {
        std::fs::write(d.join(rel), text).map_err(io("writing", d.join(rel)))?;
    }
    Ok(())
}

fn node_failed(e: Error, node: &str) -> Error {
    match e {
        Error::Exited { status, log, .. } => {
            let logs = log.parent().map(Path::to_path_buf).unwrap_or_default();
            let kubelet = tail(&logs.join("kubelet.log"), 5);
            Error::NodeExited {
                node: node.to_string(),
                status,
                tail: format!("{}\n{kubelet}", tail(&log, 10)),
                logs,
            }
        }
        other => other,
    }
}

/// Real nodes need root (namespaces, cgroups, routes) and the node programs.
fn preflight() -> Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: geteuid(2) has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        return Err(Error::RealNodes(
            "real nodes need root (network namespaces, cgroups, routes)".into(),
        ));
    }
    for p in [
        "ip",
        "unshare",
        "containerd",
        "ctr",
        "runc",
        "iptables",
        "sysctl",
        "/usr/lib/cni/bridge",
    ] {
        if !on_path(p) {
            return Err(Error::RealNodes(format!(
                "{p} not found; hack/setup.sh installs the real nodes' Debian packages"
            )));
        }
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    if program.starts_with('/') {
        return Path::new(program).is_file();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| d.join(program).is_file())
}
