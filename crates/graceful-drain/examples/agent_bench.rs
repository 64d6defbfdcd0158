//! Numbers for `steward graceful-drain agent`: how long one connection count takes.
//!
//! 1. A synthetic node (`/proc` tree in a temp dir): 3000 processes in 300 pods,
//!    the target pod's network namespace holding 5000 sockets (tcp + tcp6).
//! 2. This machine's real `/proc`: a full scan for a pod that is not here (every
//!    process's cgroup read), the worst case of a 404.
//!
//! cargo run --release -p graceful-drain --example agent_bench

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use graceful_drain::agent::query::Query;
use graceful_drain::agent::scan;

const PODS: usize = 300;
const PER_POD: usize = 10;
const SOCKETS: usize = 5000;
const RUNS: usize = 200;

fn uid(i: usize) -> String {
    format!("6f1c0a3e-2b7d-4c41-9a55-{i:012x}")
}

fn table(rows: usize, v6: bool) -> String {
    let mut t = String::from(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
    );
    for i in 0..rows {
        let (local, remote) = if v6 {
            (
                "0000000000000000FFFF00000501000A",
                "0000000000000000FFFF00000902000A",
            )
        } else {
            ("0501000A", "0902000A")
        };
        let (port, st) = if i % 3 == 0 {
            (8080, 1)
        } else {
            (9000 + i % 100, 6)
        };
        t.push_str(&format!(
            "{i:5}: {local}:{port:04X} {remote}:{:04X} {st:02X} 00000000:00000000 00:00000000 00000000  1000        0 {i} 1 0000000000000000 20 4 30 10 -1\n",
            10000 + i % 50000
        ));
    }
    t
}

fn synthetic(root: &Path) {
    let small = table(20, false);
    let (big4, big6) = (table(SOCKETS / 2, false), table(SOCKETS / 2, true));
    for p in 0..PODS {
        for k in 0..PER_POD {
            let pid = 1000 + p * PER_POD + k;
            let dir = root.join(pid.to_string());
            std::fs::create_dir_all(dir.join("net")).unwrap();
            std::fs::create_dir_all(dir.join("ns")).unwrap();
            std::fs::write(
                dir.join("cgroup"),
                format!(
                    "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{k}.scope\n",
                    uid(p).replace('-', "_")
                ),
            )
            .unwrap();
            let (t4, t6) = if p == 0 {
                (&big4, &big6)
            } else {
                (&small, &small)
            };
            std::fs::write(dir.join("net/tcp"), t4).unwrap();
            std::fs::write(dir.join("net/tcp6"), t6).unwrap();
            std::os::unix::fs::symlink(format!("net:[{}]", 4_026_532_000 + p), dir.join("ns/net"))
                .unwrap();
        }
    }
}

fn measure(what: &str, proc: &Path, q: &Query) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let _ = std::hint::black_box(scan::connections(proc, q).unwrap());
            t.elapsed()
        })
        .collect();
    times.sort();
    let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms ({RUNS} runs)",
        pct(50).as_secs_f64() * 1e3,
        pct(99).as_secs_f64() * 1e3
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let q = Query {
        uid: uid(0),
        ports: vec![8080],
    };
    let found = scan::connections(dir.path(), &q).unwrap().unwrap();
    println!(
        "synthetic node: {} processes, {PODS} pods; target pod: {} ESTABLISHED on 8080 of {SOCKETS} sockets",
        PODS * PER_POD,
        found.established
    );
    measure("count, synthetic node (5000 sockets)", dir.path(), &q);
    let absent = Query {
        uid: uid(999_999),
        ports: vec![8080],
    };
    measure("404, synthetic node (full scan)", dir.path(), &absent);
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
        })
        .count();
    measure(
        &format!("404, this machine's /proc ({procs} processes)"),
        Path::new("/proc"),
        &absent,
    );
}
