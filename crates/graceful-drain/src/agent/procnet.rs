//! Parser for the kernel's socket tables, `/proc/<pid>/net/{tcp,tcp6,udp,udp6}`
//! (format: `net/ipv4/tcp_ipv4.c` `get_tcp4_sock`, `net/ipv6/tcp_ipv6.c`), and the
//! count a drain cares about: ESTABLISHED sockets on the pod's serving ports.
//!
//! Hand-written because no maintained crate parses these tables without also
//! reading `/proc` itself (procfs reads the live file; the node agent needs the
//! table of another network namespace, read through `/proc/<pid>/net/...`).
//! Pure and total: any input gives `Ok` or a line-numbered error, never a panic
//! (table tests below, property tests in `tests/procnet_prop.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// TCP state `01` in the `st` column.
pub const TCP_ESTABLISHED: u8 = 0x01;
/// TCP state `0A`.
pub const TCP_LISTEN: u8 = 0x0A;
/// UDP `st` of a connected socket (the kernel reuses TCP_ESTABLISHED).
pub const UDP_CONNECTED: u8 = 0x01;
/// UDP `st` of an unconnected (bound only) socket (TCP_CLOSE).
pub const UDP_UNCONNECTED: u8 = 0x07;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The `st` column (for UDP, 07 is "unconnected", 01 "connected").
    pub state: u8,
    /// Socket inode (links the socket to a process's fd).
    pub inode: u64,
}

/// A malformed line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number (the header is line 1).
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

/// Parses a whole table; the first line is the header and is skipped.
pub fn parse(table: &str) -> Result<Vec<Socket>, ParseError> {
    table
        .lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_line(l).map_err(|reason| ParseError {
                line: i + 1,
                reason,
            })
        })
        .collect()
}

/// ESTABLISHED sockets whose local port is one of `ports`.
pub fn established_on(sockets: &[Socket], ports: &[u16]) -> usize {
    sockets
        .iter()
        .filter(|s| s.state == TCP_ESTABLISHED && ports.contains(&s.local.port()))
        .count()
}

fn parse_line(line: &str) -> Result<Socket, String> {
    let mut f = line.split_whitespace();
    let sl = f.next().ok_or("empty line")?;
    if !sl.ends_with(':') {
        return Err(format!("slot \"{sl}\" does not end with ':'"));
    }
    let local = addr(f.next().ok_or("no local address")?)?;
    let remote = addr(f.next().ok_or("no remote address")?)?;
    let st = f.next().ok_or("no state")?;
    let state = u8::from_str_radix(st, 16).map_err(|_| format!("state \"{st}\" is not hex"))?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, then the inode.
    let inode = f.nth(5).ok_or("no inode")?;
    let inode = inode
        .parse()
        .map_err(|_| format!("inode \"{inode}\" is not a number"))?;
    Ok(Socket {
        local,
        remote,
        state,
        inode,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits then `:port` (IPv6). The kernel prints
/// each 32-bit word of the address in host byte order; this parser assumes a
/// little-endian host, as every Kubernetes node architecture steward targets
/// (amd64, arm64) is.
fn addr(s: &str) -> Result<SocketAddr, String> {
    let (ip, port) = s
        .split_once(':')
        .ok_or_else(|| format!("address \"{s}\" has no ':'"))?;
    if port.len() != 4 {
        return Err(format!("port \"{port}\" is not 4 hex digits"));
    }
    let port = u16::from_str_radix(port, 16).map_err(|_| format!("port \"{port}\" is not hex"))?;
    let word = |h: &str| {
        u32::from_str_radix(h, 16)
            .map(u32::swap_bytes)
            .map_err(|_| format!("address \"{ip}\" is not hex"))
    };
    let ip = match ip.len() {
        8 if ip.is_ascii() => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 if ip.is_ascii() => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let w = word(&ip[i * 8..i * 8 + 8])?;
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return Err(format!("address \"{ip}\" is neither 8 nor 32 hex digits")),
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20510 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 33012 1 0000000000000000 20 4 30 10 -1
   2: 0501000A:1F90 0902000A:A1B2 01 00000000:00000000 02:000A7D8F 00000000  1000        0 33013 2 0000000000000000 20 4 30 10 -1
   3: 0501000A:D2F0 0A02000A:0050 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:B0C4 01 00000000:00000000 00:00000000 00000000  1000        0 44001 1 0000000000000000 20 4 0 10 -1
   1: 0000000000000000FFFF00000501000A:1F90 0000000000000000FFFF00000902000A:B0C5 01 00000000:00000000 00:00000000 00000000  1000        0 44002 1 0000000000000000 20 4 0 10 -1
";

    #[test]
    fn parses_ipv4_rows() {
        let s = parse(TCP).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].local, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s[0].state, TCP_LISTEN);
        assert_eq!(s[1].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s[1].remote, "127.0.0.1:50000".parse().unwrap());
        assert_eq!(s[2].local, "10.0.1.5:8080".parse().unwrap());
        assert_eq!(s[2].inode, 33013);
        assert_eq!(s[3].state, 0x06, "TIME_WAIT");
        assert_eq!(established_on(&s, &[8080]), 2);
        assert_eq!(established_on(&s, &[80]), 0, "remote port 80 is not ours");
    }

    #[test]
    fn parses_ipv6_rows() {
        let s = parse(TCP6).unwrap();
        assert_eq!(s[0].local, "[::1]:8080".parse().unwrap());
        assert_eq!(s[1].local, "[::ffff:10.0.1.5]:8080".parse().unwrap());
        assert_eq!(s[1].remote.port(), 0xB0C5);
        assert_eq!(established_on(&s, &[8080]), 2);
    }

    /// `/proc/net/udp` and `udp6` as a 6.x kernel prints them (trailing `ref pointer
    /// drops` columns, slots above 9999).
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
  737: 0100007F:E6D3 0100007F:14E9 01 00000000:00000000 00:00000000 00000000     0        0 578982 2 000000004fc39a0a 0        
12535: 0100007F:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 578981 2 00000000d8187df8 0        
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
12535: 00000000000000000000000001000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 578983 2 000000006a20be39 0
";

    #[test]
    fn parses_udp_tables() {
        let s = parse(UDP).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].local, "127.0.0.1:59091".parse().unwrap());
        assert_eq!(s[0].remote, "127.0.0.1:5353".parse().unwrap());
        assert_eq!((s[0].state, s[0].inode), (UDP_CONNECTED, 578982));
        assert_eq!(s[1].local, "127.0.0.1:5353".parse().unwrap());
        assert_eq!(s[1].state, UDP_UNCONNECTED);
        let s6 = parse(UDP6).unwrap();
        assert_eq!(s6[0].local, "[::1]:5353".parse().unwrap());
        assert_eq!((s6[0].state, s6[0].inode), (UDP_UNCONNECTED, 578983));
        // A UDP table has no ESTABLISHED sockets to drain; the connected one is on
        // an ephemeral port, so a serving port counts nothing.
        assert_eq!(established_on(&s, &[5353]), 0);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let head = "  sl  local_address rem_address   st\n";
        let table = [
            (
                "   0 00000000:1F90 00000000:0000 0A 0 0 0 0 0 1",
                "does not end",
            ),
            (
                "   0: 0000000:1F90 00000000:0000 0A 0 0 0 0 0 1",
                "neither 8 nor 32",
            ),
            (
                "   0: 00000000:1F9 00000000:0000 0A 0 0 0 0 0 1",
                "4 hex digits",
            ),
            (
                "   0: 0000000G:1F90 00000000:0000 0A 0 0 0 0 0 1",
                "not hex",
            ),
            ("   0: 00000000:1F90 00000000:0000 ZZ 0 0 0 0 0 1", "state"),
            ("   0: 00000000:1F90 00000000:0000 0A 0 0 0", "no inode"),
            ("   0: 00000000:1F90 00000000:0000 0A 0 0 0 0 0 x", "inode"),
            ("   0: 00000000", "no ':'"),
            (
                "   0: 0000000é:1F90 00000000:0000 0A 0 0 0 0 0 1",
                "neither",
            ),
        ];
        for (line, want) in table {
            let err = parse(&format!("{head}{line}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{line}");
            assert!(err.reason.contains(want), "{line}: {}", err.reason);
        }
        assert_eq!(parse("header only\n").unwrap(), vec![]);
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
