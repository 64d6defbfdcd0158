//! Property tests of the `/proc/net/tcp` parser: arbitrary input never panics, and
//! every row the kernel could print parses back to what was printed.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use graceful_drain::agent::procnet::{self, TCP_ESTABLISHED};
use proptest::prelude::*;

/// Prints an address as the kernel does (each 32-bit word in little-endian order).
fn kernel_addr(a: &SocketAddr) -> String {
    let hex = match a.ip() {
        IpAddr::V4(v4) => format!("{:08X}", u32::from_be_bytes(v4.octets()).swap_bytes()),
        IpAddr::V6(v6) => v6
            .octets()
            .chunks(4)
            .map(|w| {
                format!(
                    "{:08X}",
                    u32::from_be_bytes([w[0], w[1], w[2], w[3]]).swap_bytes()
                )
            })
            .collect(),
    };
    format!("{hex}:{:04X}", a.port())
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(s in "\\PC*") {
        let _ = procnet::parse(&s);
    }

    #[test]
    fn arbitrary_rows_never_panic(rows in proptest::collection::vec("[ 0-9A-Fa-f:x.\\-]{0,120}", 0..8)) {
        let table = format!("  sl  local_address rem_address   st\n{}", rows.join("\n"));
        let _ = procnet::parse(&table);
    }

    #[test]
    fn printed_rows_parse_back(rows in proptest::collection::vec((addr(), addr(), 1u8..=12, any::<u64>()), 0..20)) {
        let mut table = String::from("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
        for (i, (l, r, st, inode)) in rows.iter().enumerate() {
            table.push_str(&format!("{i:4}: {} {} {st:02X} 00000000:00000000 00:00000000 00000000  1000        0 {inode} 1 0000000000000000 20 4 30 10 -1\n", kernel_addr(l), kernel_addr(r)));
        }
        let parsed = procnet::parse(&table).unwrap();
        prop_assert_eq!(parsed.len(), rows.len());
        for (p, (l, r, st, inode)) in parsed.iter().zip(&rows) {
            prop_assert_eq!(&p.local, l);
            prop_assert_eq!(&p.remote, r);
            prop_assert_eq!(p.state, *st);
            prop_assert_eq!(p.inode, *inode);
        }
        let port = rows.first().map_or(0, |(l, ..)| l.port());
        let want = rows.iter().filter(|(l, _, st, _)| *st == TCP_ESTABLISHED && l.port() == port).count();
        prop_assert_eq!(procnet::established_on(&parsed, &[port]), want);
    }
}
