//! Which 10.N belong to a live cluster, and the clean-up of those that do not.
//!
//! Each cluster with real nodes keeps a record `/run/steward-sim/net-N` naming the
//! processes that keep it alive (pid and start time, so a reused pid does not
//! count): the test binary that owns it, or, once `steward sim up` has detached, the
//! control plane and the node supervisors. Records are written, and bridges picked,
//! under one lock, so a cluster being set up always has its record first.
//!
//! A cluster whose owners are all gone and whose network namespaces hold no process
//! is stale, whatever is left of it: bridge, `unreachable` route, netns files (the
//! only mounts a dead node leaves on the host; everything else it mounted lived in
//! its own mount namespace), veths, cgroups. Each start sweeps the stale ones, as
//! testkit removes the temp directories of dead test binaries.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use super::host;
use super::plan::{self, Net};
use crate::error::{Result, io};

const DIR: &str = "/run/steward-sim";

/// The lock that orders picking, recording and sweeping between processes.
pub(crate) fn lock() -> Result<File> {
    std::fs::create_dir_all(DIR).map_err(io("creating", DIR))?;
    let path = PathBuf::from(DIR).join("realnode.lock");
    let f = File::create(&path).map_err(io("creating", &path))?;
    f.lock().map_err(io("locking", &path))?;
    Ok(f)
}

fn record_path(net: Net) -> PathBuf {
    PathBuf::from(DIR).join(format!("net-{}", net.0))
}

/// Records the processes that keep `net` alive (replacing the record).
pub(crate) fn record(net: Net, pids: &[u32]) -> Result<()> {
    let text: String = pids
        .iter()
        .filter_map(|p| start_time(*p).map(|t| format!("{p} {t}\n")))
        .collect();
    let path = record_path(net);
    std::fs::write(&path, text).map_err(io("writing", &path))
}

/// Removes the record of `net`.
pub(crate) fn forget(net: Net) {
    let _ = std::fs::remove_file(record_path(net));
}

/// The N of every record.
pub(crate) fn recorded() -> Vec<u8> {
    let Ok(entries) = std::fs::read_dir(DIR) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("net-")?.parse().ok())
        .collect()
}

/// Whether a recorded owner of `net` still runs.
fn owner_alive(net: Net) -> bool {
    let text = std::fs::read_to_string(record_path(net)).unwrap_or_default();
    text.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (Some(pid), Some(t)) = (f.next(), f.next()) else {
            return false;
        };
        pid.parse()
            .ok()
            .and_then(start_time)
            .is_some_and(|now| now.to_string() == t)
    })
}

/// Start time of a process (field 22 of `/proc/PID/stat`), `None` if it is gone or a
/// zombie.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    (fields.first() != Some(&"Z")).then_some(())?;
    fields.get(19)?.parse().ok()
}

/// What is on the machine of clusters with real nodes, by N.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub nets: BTreeSet<u8>,
    /// (N, I) of netns files, veths and cgroups.
    pub nodes: BTreeSet<(u8, u8)>,
}

/// Everything of ours on the machine: records, bridges, netns, veths, cgroups.
pub(crate) fn find() -> Result<Found> {
    let mut found = Found::default();
    found.nets.extend(recorded());
    for link in host::links()? {
        if let Some(n) = plan::parse_bridge(&link) {
            found.nets.insert(n);
        }
        if let Some(ni) = plan::parse_netns(&link) {
            found.nodes.insert(ni);
        }
    }
    found.nodes.extend(
        host::netns_list()
            .iter()
            .filter_map(|n| plan::parse_netns(n)),
    );
    for h in host::cgroup_hierarchies() {
        if let Ok(d) = std::fs::read_dir(h) {
            let names = d
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned());
            found
                .nodes
                .extend(names.filter_map(|n| plan::parse_cgroup(&n)));
        }
    }
    let routes = host::run("ip", &["-4", "route", "show", "type", "unreachable"])?;
    found
        .nets
        .extend(routes.lines().filter_map(unreachable_net));
    found.nets.extend(found.nodes.iter().map(|(n, _)| *n));
    Ok(found)
}

/// `unreachable 10.N.0.0/16 metric 4000` → N.
fn unreachable_net(line: &str) -> Option<u8> {
    let mut f = line.split_whitespace();
    (f.next()? == "unreachable").then_some(())?;
    let n = f.next()?.strip_prefix("10.")?.strip_suffix(".0.0/16")?;
    let metric = format!("metric {}", plan::UNREACHABLE_METRIC);
    line.contains(&metric).then_some(())?;
    n.parse()
        .ok()
        .filter(|n| plan::parse_bridge(&format!("stwb{n}")).is_some())
}

/// Which of `found`'s nets are stale: no live owner and no process in any of their
/// nodes' netns. Pure but for the two probes.
pub(crate) fn stale(
    found: &Found,
    owner_alive: impl Fn(u8) -> bool,
    netns_busy: impl Fn(u8, u8) -> bool,
) -> Vec<u8> {
    found
        .nets
        .iter()
        .copied()
        .filter(|n| !owner_alive(*n))
        .filter(|n| {
            !found
                .nodes
                .iter()
                .any(|(m, i)| m == n && netns_busy(*m, *i))
        })
        .collect()
}

/// Removes everything of clusters that no longer run. Called with [`lock`] held.
pub(crate) fn sweep() -> Result<Vec<u8>> {
    let found = find()?;
    let busy = |n: u8, i: u8| {
        let ns = Net(n).node(i).netns;
        host::run("ip", &["netns", "pids", &ns]).is_ok_and(|p| !p.trim().is_empty())
    };
    let stale = stale(&found, |n| owner_alive(Net(n)), busy);
    for n in &stale {
        let net = Net(*n);
        for (_, i) in found.nodes.iter().filter(|(m, _)| m == n) {
            let node = net.node(*i);
            let left = host::cgroups_down(&node.cgroup, Duration::from_secs(5));
            if !left.is_empty() {
                tracing::warn!(cgroup = %node.cgroup, pids = ?left, "processes of a stale real node would not die");
            }
            host::node_net_down(&node);
        }
        host::net_down(net);
        forget(net);
        tracing::info!(net = %net.range(), "removed what a dead simulated cluster's real nodes left");
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_needs_no_owner_and_idle_namespaces() {
        let found = Found {
            nets: [200, 201, 202, 203].into(),
            nodes: [(201, 1), (202, 1), (202, 2), (203, 1)].into(),
        };
        // 200: owner alive; 201: dead, idle; 202: dead, node 2 busy; 203: dead, idle.
        let got = stale(&found, |n| n == 200, |n, i| (n, i) == (202, 2));
        assert_eq!(got, vec![201, 203]);
    }

    #[test]
    fn unreachable_routes_of_ours_only() {
        assert_eq!(
            unreachable_net("unreachable 10.201.0.0/16 metric 4000 "),
            Some(201)
        );
        assert_eq!(unreachable_net("unreachable 10.201.0.0/16"), None);
        assert_eq!(
            unreachable_net("unreachable 10.20.0.0/16 metric 4000"),
            None
        );
        assert_eq!(
            unreachable_net("10.201.0.0/16 via 1.2.3.4 metric 4000"),
            None
        );
    }

    #[test]
    fn start_time_of_this_process_and_of_none() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
