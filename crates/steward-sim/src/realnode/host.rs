//! What a real node changes on the machine, and how it is undone: the bridge, routes,
//! network namespaces and veths (through iproute2's `ip`, whose `ip netns` naming,
//! bind-mounting the namespace at `/run/netns/NAME`, every other tool follows), and
//! the node's cgroups (plain files under `/sys/fs/cgroup`).
//!
//! Undoing never stops at the first failure: whatever is already gone is fine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::plan::{Net, NodePlan, UNREACHABLE_METRIC};
use crate::error::{Error, Result, io};

/// Runs a command; fails with its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(io("running", program))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(Error::Command {
        command: format!("{program} {}", args.join(" ")),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Runs a command whose failure only matters to the log (undoing what may be gone).
fn undo(program: &str, args: &[&str]) {
    if let Err(e) = run(program, args) {
        tracing::debug!(error = %e, "clean-up step found nothing to undo");
    }
}

/// `ip -4 addr` and `ip -4 route show table all`: which 10.N are in use.
pub(crate) fn used_addresses() -> Result<String> {
    Ok(run("ip", &["-o", "-4", "addr", "show"])?
        + &run("ip", &["-4", "route", "show", "table", "all"])?)
}

/// Names of the host's links.
pub(crate) fn links() -> Result<Vec<String>> {
    let text = run("ip", &["-o", "link", "show"])?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect())
}

/// Names of the network namespaces under `/run/netns`.
pub(crate) fn netns_list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The bridge with the API server's address, and the rest of the range unreachable.
pub(crate) fn net_up(net: Net) -> Result<()> {
    let bridge = net.bridge();
    run("ip", &["link", "add", &bridge, "type", "bridge"])?;
    run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{}/24", net.api_address()),
            "dev",
            &bridge,
        ],
    )?;
    run("ip", &["link", "set", &bridge, "up"])?;
    let metric = UNREACHABLE_METRIC.to_string();
    run(
        "ip",
        &[
            "route",
            "add",
            "unreachable",
            &net.range(),
            "metric",
            &metric,
        ],
    )?;
    Ok(())
}

/// Removes the routes and the bridge of `net` (the veths on it go with their netns).
pub(crate) fn net_down(net: Net) {
    undo("ip", &["route", "del", &net.service_cidr()]);
    let metric = UNREACHABLE_METRIC.to_string();
    undo(
        "ip",
        &[
            "route",
            "del",
            "unreachable",
            &net.range(),
            "metric",
            &metric,
        ],
    );
    undo("ip", &["link", "del", &net.bridge()]);
}

/// The node's netns, its veth to the bridge and the routes: host → the node's pods,
/// host → Services via the first node (its kube-proxy), the node → every other node's
/// pods (`all`: every node of the cluster).
pub(crate) fn node_net_up(net: Net, node: &NodePlan, all: &[NodePlan]) -> Result<()> {
    let ns = node.netns.as_str();
    let nsx = |args: &[&str]| {
        let mut full = vec!["netns", "exec", ns];
        full.extend_from_slice(args);
        run("ip", &full)
    };
    run("ip", &["netns", "add", ns])?;
    run(
        "ip",
        &[
            "link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
    )?;
    run("ip", &["link", "set", ns, "master", &net.bridge(), "up"])?;
    nsx(&["ip", "link", "set", "lo", "up"])?;
    nsx(&[
        "ip",
        "addr",
        "add",
        &format!("{}/24", node.ip),
        "dev",
        "eth0",
    ])?;
    nsx(&["ip", "link", "set", "eth0", "up"])?;
    nsx(&["ip", "route", "add", "default", "via", &net.api_address()])?;
    // Per network namespace: routing between the pods' bridge and eth0, and Service
    // DNAT for traffic between two pods on the node's bridge.
    nsx(&[
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
        "net.bridge.bridge-nf-call-iptables=1",
    ])?;
    for other in all.iter().filter(|o| o.index != node.index) {
        nsx(&["ip", "route", "add", &other.pods, "via", &other.ip])?;
    }
    run("ip", &["route", "add", &node.pods, "via", &node.ip])?;
    if node.index == all.first().map_or(node.index, |f| f.index) {
        run(
            "ip",
            &["route", "add", &net.service_cidr(), "via", &node.ip],
        )?;
    }
    Ok(())
}

/// Removes the node's host route, netns and veth.
pub(crate) fn node_net_down(node: &NodePlan) {
    undo("ip", &["route", "del", &node.pods]);
    undo("ip", &["netns", "del", &node.netns]);
    undo("ip", &["link", "del", &node.netns]);
}

/// The machine's cgroup v1 hierarchies (mount points), from `/proc/self/mounts`.
pub(crate) fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 2 && f[2] == "cgroup").then(|| PathBuf::from(f[1]))
        })
        .collect()
}

/// The cgroup mount lines (v1 and v2) for the node to mount again inside its netns,
/// whose `/sys` hides the host's.
pub(crate) fn cgroup_mount_lines() -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter(|l| matches!(l.split(' ').nth(2), Some("cgroup" | "cgroup2")))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `<root>/node` in every v1 hierarchy (cpuset's cpus and mems copied down, which
/// cpuset requires before a process may join).
pub(crate) fn cgroups_up(root: &str) -> Result<()> {
    for h in cgroup_hierarchies() {
        let node = join(&h, root).join("node");
        std::fs::create_dir_all(&node).map_err(io("creating cgroup", &node))?;
        if h.ends_with("cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let value = std::fs::read_to_string(h.join(f)).map_err(io("reading", h.join(f)))?;
                for d in [join(&h, root), node.clone()] {
                    std::fs::write(d.join(f), value.trim()).map_err(io("writing", d.join(f)))?;
                }
            }
        }
    }
    Ok(())
}

/// Kills every process in `root`'s cgroups (daemons, shims, containers) until none is
/// left or `within` passes, then removes the cgroup directories. Returns the pids
/// still found at the end (empty when all is gone).
pub(crate) fn cgroups_down(root: &str, within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    let mut left;
    loop {
        left = cgroup_pids(root);
        if left.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in &left {
            crate::process::signal(*pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for h in cgroup_hierarchies() {
        remove_tree(&join(&h, root));
    }
    left
}

/// Every pid in the cgroup tree `root` of any v1 hierarchy.
pub(crate) fn cgroup_pids(root: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for h in cgroup_hierarchies() {
        collect_pids(&join(&h, root), &mut pids);
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn collect_pids(dir: &Path, pids: &mut Vec<u32>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&e.path(), pids);
        }
    }
}

/// Removes a cgroup directory tree, deepest first (cgroup directories hold only
/// kernel files, which `rmdir` takes with them).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(cgroup = %dir.display(), error = %e, "could not remove a real node's cgroup");
    }
}

fn join(hierarchy: &Path, root: &str) -> PathBuf {
    hierarchy.join(root.trim_start_matches('/'))
}
