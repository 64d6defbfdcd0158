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
    let filter = EnvFilter::new(directives(
        std::env::var("RUST_LOG").ok().as_deref(),
        default_level,
    ));
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

/// The filter directives: `RUST_LOG` (or `default_level`), with kube-client's
/// trace layer switched off unless `RUST_LOG` names kube_client itself.
fn directives(rust_log: Option<&str>, default_level: &str) -> String {
    const QUIET: &str = "kube_client::client::builder=off";
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if s.contains("kube_client") => s.to_string(),
        Some(s) => format!("{s},{QUIET}"),
        None => format!("{default_level},{QUIET}"),
    }
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn kube_client_trace_layer_is_quiet_unless_asked_for() {
        let q = "kube_client::client::builder=off";
        let table = [
            (None, format!("info,{q}")),
            (Some(""), format!("info,{q}")),
            (Some("debug"), format!("debug,{q}")),
            (
                Some("warn,steward=debug"),
                format!("warn,steward=debug,{q}"),
            ),
            (Some("kube_client=trace"), "kube_client=trace".to_string()),
        ];
        for (env, want) in table {
            assert_eq!(directives(env, "info"), want, "{env:?}");
        }
    }
}
