//! A DNS server stand-in for a cluster's DNS: answers A queries for the names it is
//! given, NOERROR without answers for their other types, NXDOMAIN for everything
//! else, and records every question so a test can see the resolver's search-domain
//! walk. UDP only (answers are small, never truncated). Hand-written because the
//! test needs nothing of a real DNS server but these three answers.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Dns {
    pub addr: SocketAddr,
    questions: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dns {
    /// Serves on `ip`:53 (musl's resolver only talks to port 53).
    pub fn start(ip: Ipv4Addr, names: HashMap<String, Ipv4Addr>) -> Self {
        let socket = UdpSocket::bind((ip, 53)).expect("bind the DNS stand-in on port 53 (root)");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let questions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (questions.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some((name, qtype, reply)) = answer(&buf[..n], &names) {
                    q.lock().unwrap().push((name, qtype));
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        Self {
            addr,
            questions,
            stop,
            thread: Some(thread),
        }
    }

    /// Every (name, type) asked so far, in order.
    pub fn questions(&self) -> Vec<(String, u16)> {
        self.questions.lock().unwrap().clone()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply to one query: (queried name, type, reply bytes); None if unparsable.
fn answer(q: &[u8], names: &HashMap<String, Ipv4Addr>) -> Option<(String, u16, Vec<u8>)> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    let name = labels.join(".");
    let known = names.get(&name);
    let a = known.filter(|_| qtype == 1);
    let rcode: u8 = if known.is_some() { 0 } else { 3 };
    let mut r = Vec::with_capacity(64);
    r.extend_from_slice(&q[0..2]); // id
    r.push(0x80 | (q[2] & 0x01)); // QR, copy RD
    r.push(0x80 | rcode); // RA, rcode
    r.extend_from_slice(&1u16.to_be_bytes()); // one question
    r.extend_from_slice(&u16::from(a.is_some()).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..question_end]);
    if let Some(ip) = a {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // name pointer, A, IN
        r.extend_from_slice(&30u32.to_be_bytes());
        r.extend_from_slice(&4u16.to_be_bytes());
        r.extend_from_slice(&ip.octets());
    }
    Some((name, qtype, r))
}
