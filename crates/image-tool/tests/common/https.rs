//! An HTTPS server stand-in on 127.0.0.1 with a certificate from a test CA, for the
//! names a test gives. It answers the two requests the image tests make (the API
//! server's `GET /version`, a Prometheus instant query with an error the test can
//! recognise) and records each request's path and Host header, and each failed TLS
//! handshake, so a test can tell "resolved, verified and asked" from "refused".

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The error text the Prometheus stand-in answers with.
pub const PROMETHEUS_MARKER: &str = "answered-by-the-image-test-prometheus";
/// The gitVersion the API server stand-in reports.
pub const SERVER_VERSION: &str = "v1.34.4-image-test";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Request {
        path: String,
        host: String,
        bearer: Option<String>,
    },
    TlsError(String),
}

pub struct Https {
    pub addr: SocketAddr,
    pub ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Https {
    pub fn start(names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "steward image test CA");
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let chain = vec![CertificateDer::from_pem_slice(leaf.pem().as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let seen = serve(conn, config.clone(), &s);
                if let Some(failed) = seen {
                    s.lock().unwrap().push(failed);
                }
            }
        });
        Self {
            addr,
            ca_pem,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Https {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one connection. A request is recorded before it is answered, so a test
/// that saw the answer sees the request too; a failed handshake is returned.
fn serve(
    conn: TcpStream,
    config: Arc<rustls::ServerConfig>,
    seen: &Mutex<Vec<Seen>>,
) -> Option<Seen> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let tls = rustls::ServerConnection::new(config).unwrap();
    let mut s = rustls::StreamOwned::new(tls, conn);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Some(Seen::TlsError("closed before a request".into())),
            Err(e) => return Some(Seen::TlsError(e.to_string())),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.trim().to_string())
    };
    seen.lock().unwrap().push(Seen::Request {
        path: path.clone(),
        host: header("host").unwrap_or_default(),
        bearer: header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string)),
    });
    let (status, body) = if path.starts_with("/version") {
        let v = serde_json::json!({
            "major": "1", "minor": "34", "gitVersion": SERVER_VERSION,
            "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go", "compiler": "gc", "platform": "linux/amd64",
        });
        ("200 OK", v.to_string())
    } else {
        let v = serde_json::json!({"status": "error", "errorType": "bad_data", "error": PROMETHEUS_MARKER});
        ("400 Bad Request", v.to_string())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(reply.as_bytes());
    let _ = s.flush();
    s.conn.send_close_notify();
    let _ = s.flush();
    None
}
