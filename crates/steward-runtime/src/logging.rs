//! Logging to stderr, as text for people or JSON for log pipelines. `RUST_LOG`
//! sets levels (default `info`); stdout stays free for command output.

use tracing_subscriber::EnvFilter;

/// Log line format (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, fields flattened.
    Json,
}

/// Installs the global subscriber with `default_level` (`info`, `warn`, ...) unless
/// `RUST_LOG` says otherwise. Calling it twice keeps the first.
pub fn init(format: LogFormat, default_level: &str) {
    // kube-client logs every 5xx at ERROR from its trace layer, including the 500s of
    // an API server still starting; callers get the same failure as a Result and
    // report it with context, so that layer is quiet unless RUST_LOG asks for it.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default_level},kube_client::client::builder=off"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
