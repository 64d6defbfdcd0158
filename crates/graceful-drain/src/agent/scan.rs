//! Reads a pod's connection count from a `/proc` tree: finds the pod's processes
//! by the UID in their cgroup (`agent::cgroup`), takes one process per network
//! namespace (deduplicated by the inode of `/proc/<pid>/ns/net`), and counts the
//! ESTABLISHED sockets of `/proc/<pid>/net/tcp` and `tcp6` (`procnet`): those
//! files show the table of the process's own network namespace, so the agent
//! never has to enter it.
//!
//! The root is a parameter, so the tests below build a fake tree; the agent reads
//! the node's `/proc` (a DaemonSet with `hostPID: true`).

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::cgroup;
use super::query::{Connections, Query};
use crate::agent::procnet;

/// Reading `/proc` failed for a reason other than a process that exited.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// `/proc` itself (or a table) could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A socket table did not parse.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The table.
        path: PathBuf,
        /// The line and why.
        #[source]
        source: procnet::ParseError,
    },
}

/// The pod's count, or `None` when no process of the pod runs under `proc`.
pub fn connections(proc: &Path, q: &Query) -> Result<Option<Connections>, ScanError> {
    let pids = pod_pids(proc, &q.uid)?;
    if pids.is_empty() {
        return Ok(None);
    }
    let host = netns(proc, "1");
    let mut seen = BTreeSet::new();
    let mut out = Connections {
        uid: q.uid.clone(),
        ports: q.ports.clone(),
        established: 0,
        pids: Vec::new(),
        netns: Vec::new(),
        host_network: false,
    };
    for pid in pids {
        let ns = netns(proc, &pid.to_string());
        // Without the inode (no CAP_SYS_PTRACE), the first readable process stands
        // for the pod: every container of a pod shares the sandbox's namespace.
        let key = ns.unwrap_or(0);
        if seen.contains(&key) {
            continue;
        }
        let Some(n) = established(proc, pid, &q.ports)? else {
            continue; // exited meanwhile
        };
        seen.insert(key);
        out.established += n;
        out.pids.push(pid);
        if let Some(ns) = ns {
            out.netns.push(ns);
            out.host_network |= host == Some(ns);
        }
    }
    Ok((!out.pids.is_empty()).then_some(out))
}

/// Pids (ascending) whose cgroup names the pod. One buffer for every cgroup file
/// (`fs::read_to_string` would also stat each file, for a size procfs reports as 0).
fn pod_pids(proc: &Path, uid: &str) -> Result<Vec<u32>, ScanError> {
    use std::io::Read;
    let entries = std::fs::read_dir(proc).map_err(|source| ScanError::Read {
        path: proc.to_path_buf(),
        source,
    })?;
    let mut buf = String::with_capacity(1024);
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        buf.clear();
        let read = std::fs::File::open(entry.path().join("cgroup"))
            .and_then(|mut f| f.read_to_string(&mut buf));
        if read.is_ok() && cgroup::pod_uid(&buf).is_some_and(|u| u == uid) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// The inode of a process's network namespace (`net:[4026531840]`).
fn netns(proc: &Path, pid: &str) -> Option<u64> {
    let link = std::fs::read_link(proc.join(pid).join("ns/net")).ok()?;
    link.to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// ESTABLISHED sockets on `ports` in the process's namespace; `None` when the
/// process is gone. A missing `tcp6` (IPv6 disabled) counts as empty.
fn established(proc: &Path, pid: u32, ports: &[u16]) -> Result<Option<usize>, ScanError> {
    let dir = proc.join(pid.to_string()).join("net");
    let mut n = 0;
    for (table, required) in [("tcp", true), ("tcp6", false)] {
        let path = dir.join(table);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound && !required => continue,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => {
                return Ok(None);
            }
            Err(source) => return Err(ScanError::Read { path, source }),
        };
        let sockets = procnet::parse(&text).map_err(|source| ScanError::Parse {
            path: path.clone(),
            source,
        })?;
        n += procnet::established_on(&sockets, ports);
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c0a3e-2b7d-4c41-9a55-0e8b1d2c3f40";
    const HEAD: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    /// A row: local 10.0.1.5:`port`, state `st`.
    fn row(port: u16, st: u8) -> String {
        format!(
            "   0: 0501000A:{port:04X} 0902000A:A1B2 {st:02X} 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 20 4 30 10 -1\n"
        )
    }

    fn process(root: &Path, pid: u32, cgroup: &str, ns: Option<u64>, tcp: &str) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(dir.join("net")).unwrap();
        std::fs::create_dir_all(dir.join("ns")).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        std::fs::write(dir.join("net/tcp"), format!("{HEAD}{tcp}")).unwrap();
        if let Some(ns) = ns {
            std::os::unix::fs::symlink(format!("net:[{ns}]"), dir.join("ns/net")).unwrap();
        }
    }

    fn q(ports: &[u16]) -> Query {
        Query {
            uid: UID.into(),
            ports: ports.to_vec(),
        }
    }

    #[test]
    fn counts_one_table_per_namespace() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let pod = format!("12:pids:/kubepods/besteffort/pod{UID}/c1\n");
        let busy = format!(
            "{}{}{}{}",
            row(8080, 1),
            row(8080, 1),
            row(8080, 0x0A),
            row(9090, 1)
        );
        process(r, 1, "0::/init.scope\n", Some(100), &row(8080, 1));
        // pause and app share the pod's namespace: counted once.
        process(r, 40, &pod, Some(200), &busy);
        process(r, 41, &pod, Some(200), &busy);
        process(r, 50, "0::/system.slice/x.service\n", Some(100), &busy);
        std::fs::create_dir_all(r.join("self")).unwrap();
        let c = connections(r, &q(&[8080])).unwrap().unwrap();
        assert_eq!((c.established, c.pids, c.netns), (2, vec![40], vec![200]));
        assert!(!c.host_network);
        assert_eq!(
            connections(r, &q(&[8080, 9090]))
                .unwrap()
                .unwrap()
                .established,
            3
        );
        assert_eq!(connections(r, &q(&[443])).unwrap().unwrap().established, 0);
        // IPv6 sockets count too.
        std::fs::write(
            r.join("40/net/tcp6"),
            format!("{HEAD}   0: 0000000000000000FFFF00000501000A:1F90 0000000000000000FFFF00000902000A:B0C5 01 00000000:00000000 00:00000000 00000000  1000        0 44002 1 0000000000000000 20 4 0 10 -1\n"),
        )
        .unwrap();
        assert_eq!(connections(r, &q(&[8080])).unwrap().unwrap().established, 3);
    }

    #[test]
    fn host_network_unreadable_namespaces_and_absent_pods() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let pod = format!(
            "0::/kubepods.slice/kubepods-pod{}.slice/cri-containerd-1.scope\n",
            UID.replace('-', "_")
        );
        process(r, 1, "0::/init.scope\n", Some(100), "");
        process(r, 7, &pod, Some(100), &row(8080, 1));
        let c = connections(r, &q(&[8080])).unwrap().unwrap();
        assert!(c.host_network, "{c:?}");
        // No CAP_SYS_PTRACE: no inode, the first process stands for the pod.
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        process(r, 7, &pod, None, &row(8080, 1));
        process(r, 8, &pod, None, &row(8080, 1));
        let c = connections(r, &q(&[8080])).unwrap().unwrap();
        assert_eq!((c.established, c.pids, c.netns.len()), (1, vec![7], 0));
        let other = Query {
            uid: "00000000-0000-0000-0000-000000000000".into(),
            ports: vec![8080],
        };
        assert_eq!(connections(r, &other).unwrap(), None);
        // A table that does not parse names the file and the line.
        std::fs::write(r.join("7/net/tcp"), format!("{HEAD}garbage\n")).unwrap();
        let err = connections(r, &q(&[8080])).unwrap_err().to_string();
        assert!(err.contains("7/net/tcp") && err.contains("line 2"), "{err}");
        assert!(connections(&r.join("missing"), &q(&[1])).is_err());
    }
}
