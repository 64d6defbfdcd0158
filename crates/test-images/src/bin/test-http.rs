//! An HTTP/1.1 server that can hold requests open and drains on SIGTERM (see the
//! crate documentation). One thread per connection; keep-alive; `Content-Length`
//! bodies only (requests carry none).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Shared {
    /// Set by SIGTERM.
    term: Arc<AtomicBool>,
    /// Set once the shutdown delay has passed: idle connections close.
    closing: AtomicBool,
    in_flight: AtomicUsize,
    served: AtomicUsize,
    host: String,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("test-http: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let f = test_images::flags(std::env::args().skip(1))?;
    test_images::only(&f, &["port", "shutdown-delay-ms"])?;
    let port: u16 = test_images::get(&f, "port", 8080)?;
    let delay = Duration::from_millis(test_images::get(&f, "shutdown-delay-ms", 0)?);
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, term.clone()).map_err(|e| format!("signal: {e}"))?;
    }
    let listener =
        TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("bind :{port}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let shared = Arc::new(Shared {
        term,
        closing: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        served: AtomicUsize::new(0),
        host,
    });
    println!("test-http: listening on :{port}");
    let mut term_at: Option<Instant> = None;
    loop {
        if shared.term.load(Ordering::SeqCst) && term_at.is_none() {
            println!(
                "test-http: SIGTERM received; serving {} ms more",
                delay.as_millis()
            );
            term_at = Some(Instant::now());
        }
        if term_at.is_some_and(|t| t.elapsed() >= delay) {
            break;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => eprintln!("test-http: accept: {e}"),
        }
    }
    drop(listener);
    shared.closing.store(true, Ordering::SeqCst);
    while shared.in_flight.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "test-http: exiting after {} requests",
        shared.served.load(Ordering::SeqCst)
    );
    Ok(())
}

/// Requests on one connection until the client closes it or the server is closing.
fn serve(stream: TcpStream, s: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if s.closing.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        }
        s.in_flight.fetch_add(1, Ordering::SeqCst);
        let keep = handle(&line, &mut reader, &mut out, s);
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !keep {
            return;
        }
    }
}

/// Answers one request whose request line is `line`; whether to keep the connection.
fn handle(line: &str, reader: &mut BufReader<TcpStream>, out: &mut TcpStream, s: &Shared) -> bool {
    // Headers up to the blank line (a slow client's are waited for).
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) => return false,
            Ok(_) if h.trim().is_empty() => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match target.split('?').next().unwrap_or("/") {
        "/" => ("200 OK", format!("ok {}\n", s.host)),
        "/hold" => match test_images::hold_ms(target) {
            Some(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                ("200 OK", format!("held {ms}ms {}\n", s.host))
            }
            None => ("400 Bad Request", "hold needs ?ms=N\n".to_string()),
        },
        "/healthz" if s.term.load(Ordering::SeqCst) => {
            ("503 Service Unavailable", "terminating\n".to_string())
        }
        "/healthz" => ("200 OK", "ok\n".to_string()),
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    let closing = s.closing.load(Ordering::SeqCst);
    let conn = if closing { "close" } else { "keep-alive" };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n{body}",
        body.len()
    );
    s.served.fetch_add(1, Ordering::SeqCst);
    out.write_all(resp.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
        && !closing
}
