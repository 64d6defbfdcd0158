//! The client side of the CLI (`scale-up`, `scale-down`, `status`, `run`, `logs`,
//! `cancel`): what the otto handler does, for people and scripts.

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use steward_runtime::{Lang, Localized};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use steward_runtime::Exit;

use crate::core::spec::bad;
use crate::error::{Error, Result};
use crate::messages::Msg;
use crate::proto::log_streaming_service_client::LogStreamingServiceClient;
use crate::proto::ottoscaler_service_client::OttoscalerServiceClient;
use crate::proto::{self, RunState};

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

impl Bearer {
    /// A token (empty = send none).
    pub fn new(token: &str) -> Result<Self> {
        if token.is_empty() {
            return Ok(Self(None));
        }
        format!("Bearer {token}")
            .parse()
            .map(|v| Self(Some(v)))
            .map_err(|_| Error::Invalid(bad("--token", "not a valid header value")))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A client of the scaler.
pub type Otto = OttoscalerServiceClient<InterceptedService<Channel, Bearer>>;
/// A log client of the scaler.
pub type Logs = LogStreamingServiceClient<InterceptedService<Channel, Bearer>>;

/// Where the scaler is and how to talk to it.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Address of the scaler (https:// for TLS).
    #[arg(
        long,
        env = "OTTOSCALER_SERVER",
        default_value = "http://127.0.0.1:9090",
        value_name = "URL"
    )]
    pub server: String,
    /// Bearer token.
    #[arg(
        long,
        env = "OTTOSCALER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// File holding the bearer token (instead of --token).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    /// CA certificate (PEM) to verify the server with.
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mTLS.
    #[arg(long, value_name = "PATH", requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,
    /// Client key (PEM) for mTLS.
    #[arg(long, value_name = "PATH", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,
}

fn read(flag: &str, p: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|source| Error::Io {
        what: format!("{flag} {}", p.display()),
        source,
    })
}

impl ClientArgs {
    /// Connects both clients.
    pub async fn connect(&self) -> Result<(Otto, Logs)> {
        let token = match (&self.token, &self.token_file) {
            (_, Some(f)) => String::from_utf8_lossy(&read("--token-file", f)?)
                .trim()
                .to_string(),
            (Some(t), None) => t.clone(),
            (None, None) => String::new(),
        };
        let bearer = Bearer::new(&token)?;
        let transport = |source| Error::Transport {
            what: format!("connecting to {}", self.server),
            source,
        };
        let mut ep = Endpoint::from_shared(self.server.clone())
            .map_err(transport)?
            .connect_timeout(Duration::from_secs(10))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if self.server.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.ca_cert {
                tls = tls.ca_certificate(Certificate::from_pem(read("--ca-cert", ca)?));
            }
            if let (Some(c), Some(k)) = (&self.client_cert, &self.client_key) {
                tls = tls.identity(Identity::from_pem(
                    read("--client-cert", c)?,
                    read("--client-key", k)?,
                ));
            }
            ep = ep.tls_config(tls).map_err(transport)?;
        }
        let channel = ep.connect().await.map_err(transport)?;
        Ok((
            OttoscalerServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            LogStreamingServiceClient::with_interceptor(channel, bearer),
        ))
    }
}

/// A server answer as this crate's error, its gRPC code kept.
pub fn rpc(s: Status) -> Error {
    Error::rpc(&s)
}

/// Exit status for a run's final state: 0 succeeded, 3 cancelled, 1 otherwise.
pub fn exit_for(state: RunState) -> Exit {
    match state {
        RunState::Succeeded => Exit::Ok,
        RunState::Cancelled => Exit::Cancelled,
        _ => Exit::Failed,
    }
}

/// How [`follow_run`] follows a run.
#[derive(Debug, Clone, Copy)]
pub struct Follow {
    /// Language of the printed progress.
    pub lang: Lang,
    /// Print the run's logs too.
    pub with_logs: bool,
    /// How long re-attaching after a break is tried before giving up.
    pub reattach_timeout: Duration,
}

/// Prints progress (and, with `with_logs`, the run's logs) until the run ends,
/// re-attaching with `WatchPipeline` from the next seq while the stream is broken,
/// for up to `reattach_timeout` in a row. Returns the final state.
pub async fn follow_run(
    otto: &mut Otto,
    logs: &mut Logs,
    first: tonic::Streaming<proto::PipelineProgress>,
    f: Follow,
) -> Result<RunState> {
    let Follow {
        lang, with_logs, ..
    } = f;
    let mut stream = first;
    let mut next_seq = 1;
    let mut run_id = String::new();
    let mut log_task: Option<tokio::task::JoinHandle<()>> = None;
    let mut breaks: u32 = 0;
    let mut broken_since: Option<tokio::time::Instant> = None;
    loop {
        match stream.next().await {
            Some(Ok(p)) => {
                breaks = 0;
                broken_since = None;
                next_seq = p.seq + 1;
                if run_id.is_empty() {
                    run_id.clone_from(&p.run_id);
                    if with_logs {
                        let mut l = logs.clone();
                        let id = run_id.clone();
                        log_task = Some(tokio::spawn(async move {
                            let _ = print_build_logs(&mut l, &id, 0, true).await;
                        }));
                    }
                }
                println!("{}", Msg::Progress(&p).render(lang));
                if p.r#final {
                    if let Some(t) = log_task.take() {
                        // The log stream ends by itself once the run's buffer closes.
                        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
                    }
                    return Ok(p.run_state());
                }
            }
            Some(Err(s)) if run_id.is_empty() => return Err(rpc(s)),
            other => {
                breaks += 1;
                let since = *broken_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= f.reattach_timeout {
                    // Re-attaching failed: the server went away (or keeps dropping
                    // the stream), whatever code the broken stream last carried.
                    let message = other.and_then(Result::err).map_or_else(
                        || "progress stream ended early".into(),
                        |s| s.message().to_string(),
                    );
                    return Err(Error::Rpc {
                        code: Code::Unavailable,
                        message,
                    });
                }
                if breaks == 1 {
                    eprintln!(
                        "{}",
                        Msg::Reattach {
                            run: &run_id,
                            from: next_seq
                        }
                        .render(lang)
                    );
                }
                let pause = Duration::from_millis(250 * u64::from(breaks.min(8)));
                tokio::time::sleep(pause).await;
                if let Ok(r) = otto
                    .watch_pipeline(proto::WatchPipelineRequest {
                        run_id: run_id.clone(),
                        from_seq: next_seq,
                    })
                    .await
                {
                    stream = r.into_inner();
                }
            }
        }
    }
}

/// Prints a run's log lines (`[stage#attempt worker] text`).
pub async fn print_build_logs(
    logs: &mut Logs,
    run_id: &str,
    from: u64,
    follow: bool,
) -> Result<()> {
    let s = logs
        .stream_build_logs(proto::BuildIdentifier {
            run_id: run_id.into(),
            from_seq: from,
            snapshot: !follow,
            stage: String::new(),
        })
        .await
        .map_err(rpc)?
        .into_inner();
    print_lines(s, |e| {
        format!("[{}#{} {}] {}", e.stage, e.attempt, e.stream, e.message)
    })
    .await
}

/// Prints each entry of a log stream as `line` renders it, until the stream ends.
async fn print_lines<T>(mut s: tonic::Streaming<T>, line: impl Fn(&T) -> String) -> Result<()> {
    let mut out = std::io::stdout();
    while let Some(e) = s.next().await {
        // A reader that stopped (`| head`) is not an error of ours.
        let _ = writeln!(out, "{}", line(&e.map_err(rpc)?));
    }
    Ok(())
}

/// Prints one worker's log lines.
pub async fn print_worker_logs(
    logs: &mut Logs,
    worker: &str,
    from: u64,
    follow: bool,
) -> Result<()> {
    let s = logs
        .stream_worker_logs(proto::WorkerIdentifier {
            worker_id: worker.into(),
            from_seq: from,
            snapshot: !follow,
        })
        .await
        .map_err(rpc)?
        .into_inner();
    print_lines(s, |e| {
        format!("[{} {}] {}", e.worker_id, e.stream, e.message)
    })
    .await
}

/// Prints the worker table.
pub fn print_status(r: &proto::WorkerStatusResponse, lang: Lang) {
    println!(
        "{}",
        Msg::StatusHeader {
            cap: r.capacity,
            in_use: r.in_use,
            queued: r.queued,
            team: &r.team,
            team_in_use: r.team_in_use,
        }
        .render(lang)
    );
    println!(
        "WORKER                                   PHASE        BUSY  TASK/RUN                 NODE"
    );
    for w in &r.workers {
        let owner = if w.run_id.is_empty() {
            w.task_id.clone()
        } else {
            format!("{}/{}#{}", w.run_id, w.stage, w.attempt)
        };
        let waiting = if w.capacity_wait.is_empty() {
            String::new()
        } else {
            format!("  {}", Msg::CapacityWait(&w.capacity_wait).render(lang))
        };
        println!(
            "{:<40} {:<12} {:<5} {:<24} {}{waiting}",
            w.name, w.phase, w.busy, owner, w.node
        );
    }
}
