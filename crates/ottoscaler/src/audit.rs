//! The audit log: one JSON line per mutating call (`ScaleUp`, `ScaleDown`,
//! `ExecutePipeline`, `CancelPipeline`), allowed or refused: when, which team,
//! what, the gRPC code and message. Written to `--audit-log` (a file opened for
//! append, or `-` for standard output, where a cluster's log pipeline picks it up).
//!
//! Lines are written whole and flushed one by one under a lock, so lines of
//! concurrent calls never interleave and a crash loses at most the call in flight.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tracing::warn;

use crate::core::teams::Caller;
use crate::error::{Error, Result};

/// One audited call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339 time the call was answered.
    pub time: String,
    /// The caller's team.
    pub team: &'a str,
    /// Whether the team is an admin.
    pub admin: bool,
    /// The gRPC method.
    pub method: &'a str,
    /// What it was about: `run/<id>` or `task/<id>`.
    pub target: &'a str,
    /// The gRPC code of the answer (`OK`, `PERMISSION_DENIED`, ...).
    pub code: &'static str,
    /// The answer's message, for people.
    pub message: &'a str,
    /// The client's address, when known.
    pub peer: Option<String>,
}

type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// Where audit lines go; `Default` writes none.
#[derive(Clone, Default)]
pub struct Audit {
    out: Option<Sink>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.out.is_some() {
            "Audit(on)"
        } else {
            "Audit(off)"
        })
    }
}

/// The canonical name of a gRPC code, as grpc-go and the gRPC docs spell it.
pub fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code;
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl Audit {
    /// Opens `path` for append (`-`: standard output); `None`: no audit log.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        let Some(p) = path else {
            return Ok(Self::default());
        };
        let out: Box<dyn Write + Send> = if p == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| Error::Io {
                        what: format!("--audit-log {}", p.display()),
                        source,
                    })?,
            )
        };
        Ok(Self {
            out: Some(Arc::new(Mutex::new(out))),
        })
    }

    /// Writes one line for a call of `caller` to `method` about `target` that was
    /// answered with `code` and `message`.
    pub fn record(
        &self,
        caller: &Caller,
        method: &str,
        target: &str,
        answer: (tonic::Code, &str),
        peer: Option<std::net::SocketAddr>,
    ) {
        let Some(out) = &self.out else { return };
        let e = Entry {
            time: jiff::Timestamp::now().to_string(),
            team: &caller.team,
            admin: caller.admin,
            method,
            target,
            code: code_name(answer.0),
            message: answer.1,
            peer: peer.map(|p| p.to_string()),
        };
        let Ok(mut line) = serde_json::to_vec(&e) else {
            return;
        };
        line.push(b'\n');
        let mut w = out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = w.write_all(&line).and_then(|()| w.flush()) {
            warn!(error = %e, method, target, "writing the audit log failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        std::fs::write(&p, "earlier\n").unwrap();
        let a = Audit::open(Some(&p)).unwrap();
        let web = Caller {
            team: "web".into(),
            admin: false,
        };
        a.record(
            &web,
            "CancelPipeline",
            "run/r-1",
            (tonic::Code::PermissionDenied, "no"),
            None,
        );
        a.record(
            &web,
            "ScaleUp",
            "task/t",
            (tonic::Code::Ok, "created 1"),
            None,
        );
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "earlier", "opened for append");
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["team"], "web");
        assert_eq!(v["method"], "CancelPipeline");
        assert_eq!(v["target"], "run/r-1");
        assert_eq!(v["code"], "PERMISSION_DENIED");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        let v: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(v["code"], "OK");
        Audit::default().record(&web, "ScaleUp", "task/t", (tonic::Code::Ok, ""), None);
    }

    #[test]
    fn an_unwritable_path_names_the_flag() {
        let e = Audit::open(Some(Path::new("/nonexistent/dir/audit.jsonl"))).unwrap_err();
        assert!(e.to_string().starts_with("--audit-log /nonexistent"), "{e}");
    }
}
