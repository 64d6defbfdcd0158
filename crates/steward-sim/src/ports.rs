//! Free TCP ports for programs that take their port as a flag (etcd, the API server,
//! Prometheus, Karpenter, steward itself in tests).
//!
//! A port found by binding port 0 and letting go comes from the kernel's ephemeral
//! range, the range every outgoing connection also takes its local port from: between
//! the pick and the program's own bind, a connection or another process's pick can
//! take it, and the program fails with "address already in use" (full test runs lost
//! tests to it). So a port is picked *outside* that range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), where the kernel never hands out a
//! port by itself, and each pick is held by a lock file under
//! `$TMPDIR/steward-ports/` for the life of the picking process, so processes picking
//! this way (test binaries of several checkouts at once) never get the same port. A
//! port some program already listens on fails a test bind and is skipped.
//!
//! Hand-written: the crates that find free ports (`portpicker`, `port_check`) bind
//! port 0 or probe the ephemeral range, which is the race this avoids.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Result, io};

/// Lock files of the ports this process picked; held until it exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Lowest port picked below the ephemeral range (well-known and registered
/// services below it are left alone).
const FLOOR: u16 = 10_000;
/// Fewest ports a range outside the ephemeral one must hold to be used.
const MIN_SPAN: u16 = 1_000;

/// The ports outside the kernel's ephemeral range `lo..=hi` to pick from: below it
/// when there is room, else above it; `None` when neither holds `MIN_SPAN` ports.
/// Pure.
pub(crate) fn pick_range(lo: u16, hi: u16) -> Option<(u16, u16)> {
    if lo > FLOOR && lo - FLOOR >= MIN_SPAN {
        Some((FLOOR, lo - 1))
    } else if hi < u16::MAX && u16::MAX - hi >= MIN_SPAN {
        Some((hi + 1, u16::MAX))
    } else {
        None
    }
}

fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(str::parse::<u16>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999))
}

/// A free TCP port on loopback that no other process picking this way holds, outside
/// the ephemeral range (see the module documentation). Falls back to an ephemeral
/// port when the kernel's range leaves no room outside it.
pub fn free_port() -> Result<u16> {
    let (lo, hi) = ephemeral_range();
    let Some((first, last)) = pick_range(lo, hi) else {
        return ephemeral();
    };
    let dir = std::env::temp_dir().join("steward-ports");
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let span = u64::from(last - first) + 1;
    // A random start (RandomState is seeded per process), so that processes rarely
    // contend for the same lock files.
    let start = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % span;
    for i in 0..span {
        let port = first + u16::try_from((start + i) % span).unwrap_or(0);
        if let Some(lock) = hold(&dir, port) {
            HELD.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(lock);
            return Ok(port);
        }
    }
    ephemeral()
}

/// The lock file of `port`, locked, if no one holds it and nothing listens there.
fn hold(dir: &Path, port: u16) -> Option<File> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(port.to_string()))
        .ok()?;
    f.try_lock().ok()?;
    // Dropping `f` on failure releases the lock.
    std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
    Some(f)
}

/// A port from the ephemeral range (bound, then released): racy, the fallback only.
fn ephemeral() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(io("binding", "127.0.0.1:0"))?;
    Ok(listener
        .local_addr()
        .map_err(io("binding", "127.0.0.1:0"))?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_range_table() {
        let cases = [
            ((32_768, 60_999), Some((10_000, 32_767))),
            ((1_024, 60_999), Some((61_000, 65_535))),
            ((10_500, 64_999), None),
            ((11_000, 65_535), Some((10_000, 10_999))),
            ((1_024, 65_535), None),
        ];
        for ((lo, hi), want) in cases {
            assert_eq!(pick_range(lo, hi), want, "{lo}..={hi}");
        }
    }

    #[test]
    fn picks_are_distinct_and_outside_the_ephemeral_range() {
        let (lo, hi) = ephemeral_range();
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        if pick_range(lo, hi).is_some() {
            assert!(ports.iter().all(|p| *p < lo || *p > hi), "{ports:?}");
        }
        // Each one is free to bind for the program it is for.
        for p in ports {
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
