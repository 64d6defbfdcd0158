//! The drain probes: ask whether a pod still has work in flight.
//!
//! - HTTP (`PodPort`, `Url`): a Prometheus gauge in the pod's metrics (for example
//!   `http_requests_in_flight`, or an Istio sidecar's active inbound connections)
//!   reaching 0, or, without a gauge, the status of a "drained" endpoint (2xx);
//! - `Connections`: the node agent the pod's Node advertises counts the pod's
//!   ESTABLISHED sockets on its serving ports (`steward graceful-drain agent`).
//!   An agent that finds no process of the pod answers 404; that reads as a
//!   failed probe, not as idle, so a node whose agent cannot see pods (wrong
//!   `/proc`, an unknown cgroup layout) never shortens a drain: it waits until
//!   `maxWait`, as every failing probe does.
//!
//! Probes have one home: the types here, what the configuration's `probe:` block
//! means (`spec`, pure), the exposition format of a gauge (`gauge`, pure), and
//! asking a pod (`read`, HTTP).

pub mod gauge;
pub mod read;
pub mod spec;

use serde::Deserialize;

/// How to ask a pod over HTTP whether it has drained.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    /// Port on the pod IP.
    pub port: u16,
    /// HTTP path.
    #[serde(default = "default_probe_path")]
    pub path: String,
    /// A Prometheus gauge in the response; drained when it reads 0. Without it, a 2xx answer means drained.
    pub gauge: Option<String>,
}

fn default_probe_path() -> String {
    "/metrics".into()
}

/// Where the probe goes: a port/path on the pod IP, or a full URL from the pod's annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// `http://<pod IP>:<port><path>`.
    PodPort(Probe),
    /// A URL given by `steward.io/drain-probe-url`, with the gauge of the config if any.
    Url {
        /// The URL.
        url: String,
        /// Gauge to read.
        gauge: Option<String>,
    },
    /// ESTABLISHED connections on these local ports, counted by the node agent
    /// the pod's Node advertises (`steward graceful-drain agent`).
    Connections {
        /// Serving ports, sorted.
        ports: Vec<u16>,
    },
}

/// What a drain probe said.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// Nothing in flight.
    Idle,
    /// This much still in flight.
    Busy(f64),
    /// The probe failed; waiting goes on until the maximum wait.
    Failed(String),
}
