//! Steady HTTP load from inside a real node's network namespace, as a client pod
//! on that node would send it: every request opens a new TCP connection to the
//! address given (a Service's cluster IP, so kube-proxy's rules pick the pod), so
//! a pod that stopped serving while kube-proxy still routes to it costs failed
//! requests, and every request is counted, nothing skipped.
//!
//! Each worker is an OS thread that first moves itself into the node's network
//! namespace (`setns(2)` changes only the calling thread), so the test process
//! needs no helper binary inside the node. The HTTP/1.1 exchange is written here
//! because the point is exact control of one connection per request and of what
//! counts as a failure (anything but a complete `200` response); no client crate
//! offers "never reuse, never retry" as plainly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

/// How long one request may take (connect, send, answer) before it is a failure.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const SAMPLES: usize = 20;

/// What the client saw, every request counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests answered `200` with their whole body.
    pub ok: u64,
    /// Requests that failed in any way (refused, reset, timed out, other status).
    pub failed: u64,
    /// The first failures and the last one, each with its time.
    pub errors: Vec<String>,
}

/// A running load; [`finish`](Self::finish) stops it and returns the tally.
#[allow(missing_debug_implementations)]
pub struct NodeLoad {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    workers: Vec<JoinHandle<Result<()>>>,
}

impl NodeLoad {
    /// `workers` threads in network namespace `netns` (a name under /run/netns)
    /// sending `GET path` to `target` back to back until [`finish`](Self::finish).
    pub fn start(netns: &str, target: SocketAddr, path: &str, workers: usize) -> Result<Self> {
        let mut load = Self {
            stop: Arc::default(),
            ok: Arc::default(),
            failed: Arc::default(),
            errors: Arc::default(),
            workers: Vec::new(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        for i in 0..workers {
            let (stop, ok, failed, errors) = (
                load.stop.clone(),
                load.ok.clone(),
                load.failed.clone(),
                load.errors.clone(),
            );
            let (netns, path, ready) = (netns.to_string(), path.to_string(), ready_tx.clone());
            let worker = std::thread::Builder::new()
                .name(format!("node-load-{i}"))
                .spawn(move || {
                    if let Err(e) = enter_netns(&netns) {
                        let msg = format!("{e:#}");
                        let _ = ready.send(Err(anyhow!("{msg}")));
                        bail!("{msg}");
                    }
                    let _ = ready.send(Ok(()));
                    while !stop.load(Ordering::SeqCst) {
                        match request(target, &path) {
                            Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                            Err(e) => {
                                let mut errs = errors.lock().unwrap_or_else(|p| p.into_inner());
                                // When, so that a failure can be put beside the
                                // controller's log and the Events.
                                let line = format!("{} {e:#}", k8s_openapi::jiff::Timestamp::now());
                                if errs.len() < SAMPLES {
                                    errs.push(line);
                                } else {
                                    errs[SAMPLES - 1] = line;
                                }
                                failed.fetch_add(1, Ordering::SeqCst)
                            }
                        };
                    }
                    Ok(())
                })
                .context("spawning a load thread")?;
            load.workers.push(worker);
        }
        drop(ready_tx);
        for _ in 0..workers {
            let started = ready_rx
                .recv()
                .context("a load thread ended before it started")
                .and_then(|r| r);
            if let Err(e) = started {
                load.stop.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(load)
    }

    /// Requests answered so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Stops the load (requests in flight complete and count); the tally, or the
    /// error of a worker that could not run (the load then proves nothing).
    pub fn finish(self) -> Result<Tally> {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            w.join().map_err(|_| anyhow!("a load thread panicked"))??;
        }
        let errors = std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Tally {
            ok: self.ok.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            errors,
        })
    }
}

/// Moves the calling thread into network namespace `/run/netns/<name>`.
fn enter_netns(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    #[allow(unsafe_code)]
    // SAFETY: setns(2) on a file descriptor that stays open for the call; it
    // changes only this thread's network namespace and touches no memory of ours.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// One request on a new connection: `Ok` only for a complete `200` answer.
fn request(target: SocketAddr, path: &str) -> Result<()> {
    let mut s = TcpStream::connect_timeout(&target, REQUEST_TIMEOUT)
        .with_context(|| format!("connect {target}"))?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )
    .context("send")?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).context("read status line")?;
    if status.is_empty() {
        bail!("connection closed before an answer");
    }
    let mut length = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).context("read headers")? == 0 {
            bail!("connection closed in the headers");
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = Some(v.trim().parse::<usize>().context("Content-Length")?);
        }
    }
    let length = length.ok_or_else(|| anyhow!("no Content-Length"))?;
    let mut body = vec![0; length];
    r.read_exact(&mut body).context("read body")?;
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => bail!("answer {}", status.trim_end()),
    }
}
