//! `/proc/net/{tcp,tcp6,udp,udp6}` and `/proc/<pid>/cgroup`: any bytes give a
//! result or an error, never a panic; what parses is consistent.
#![no_main]

// The parsers' own source files, not the crate: they need only std and
// thiserror, so the instrumented build skips kube and the rest of the crate.
#[path = "../../src/agent/cgroup.rs"]
#[allow(dead_code)]
mod cgroup;
#[path = "../../src/agent/procnet.rs"]
#[allow(dead_code)]
mod procnet;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sockets) = procnet::parse(text) {
        let rows = text
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .count();
        assert_eq!(sockets.len(), rows);
        let ports: Vec<u16> = sockets.iter().map(|s| s.local.port()).collect();
        assert!(procnet::established_on(&sockets, &ports) <= sockets.len());
    }
    if let Some(uid) = cgroup::pod_uid(text) {
        assert_eq!(cgroup::normalize(&uid), Some(uid.clone()));
    }
});
