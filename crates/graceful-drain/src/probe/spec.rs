//! The `probe:` block of the configuration, validated into a [`ProbeTarget`].
//! Pure. Exactly one kind per block:
//!
//! ```yaml
//! probe: { port: 9090, path: /metrics, gauge: http_requests_in_flight }  # HTTP on the pod IP
//! probe: { connections: { ports: [8080, 8443] } }                        # node agent
//! probe: { istio: {} }                                                    # Envoy sidecar stats
//! probe: { linkerd: {} }                                                  # Linkerd proxy metrics
//! ```
//!
//! `istio` is a preset of the HTTP probe: the sidecar's Prometheus stats
//! (`:15090/stats/prometheus`) and the active downstream connections of its inbound
//! listener, `envoy_listener_downstream_cx_active{listener_address="0.0.0.0_15006"}`
//! (`virtualInbound`, which every inbound connection goes through). Istio records
//! only `cluster_manager`, `listener_manager`, `server` and `cluster.xds-grpc`
//! stats by default (istio.io, "Envoy Statistics"), so the mesh (or the pod's
//! `proxy.istio.io/config`) must include it: `proxyStatsMatcher: { inclusionRegexps:
//! ["listener\\.0\\.0\\.0\\.0_15006\\.downstream_cx_active"] }`. Without it the probe
//! finds no sample and the drain waits until `maxWait`.
//!
//! `linkerd` is the same for Linkerd's proxy: its admin port (`:4191/metrics`) and
//! the connections it has accepted from clients and holds open,
//! `tcp_open_connections{direction="inbound",peer="src"}` (linkerd.io, "Proxy
//! Metrics"; on by default). The proxy's connections to the application
//! (`peer="dst"`) and outbound ones do not hold a drain, nor do scrapes of the admin
//! port, which are not proxied.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::probe::gauge::Selector;
use crate::probe::{Probe, ProbeTarget};

/// Envoy's Prometheus stats port in an Istio sidecar.
pub const ISTIO_STATS_PORT: u16 = 15090;
/// The stats tag of Istio's inbound listener (`virtualInbound`, port 15006).
pub const ISTIO_INBOUND_LISTENER: &str = "0.0.0.0_15006";

/// The Linkerd proxy's admin (metrics) port.
pub const LINKERD_ADMIN_PORT: u16 = 4191;
/// The gauge of the client connections a Linkerd proxy holds open.
pub const LINKERD_INBOUND: &str = "tcp_open_connections{direction=\"inbound\",peer=\"src\"}";

/// The block as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProbe {
    port: Option<u16>,
    path: Option<String>,
    gauge: Option<String>,
    connections: Option<RawConnections>,
    istio: Option<RawIstio>,
    linkerd: Option<RawLinkerd>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLinkerd {
    port: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConnections {
    #[serde(default)]
    ports: Vec<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawIstio {
    port: Option<u16>,
    listener: Option<String>,
}

fn invalid(field: String, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

impl RawProbe {
    /// Validates the block found at `at` (for example `defaults.probe`).
    pub fn target(&self, at: &str) -> Result<ProbeTarget> {
        let kinds = [
            self.port.is_some(),
            self.connections.is_some(),
            self.istio.is_some(),
            self.linkerd.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            1 => {}
            0 => {
                return Err(invalid(
                    at.into(),
                    "give one of port (HTTP), connections, istio or linkerd",
                ));
            }
            _ => {
                return Err(invalid(
                    at.into(),
                    "port (HTTP), connections, istio and linkerd exclude each other",
                ));
            }
        }
        if let Some(c) = &self.connections {
            if self.path.is_some() || self.gauge.is_some() {
                return Err(invalid(at.into(), "path and gauge belong to an HTTP probe"));
            }
            return connection_ports(&c.ports, &format!("{at}.connections.ports"))
                .map(|ports| ProbeTarget::Connections { ports });
        }
        if let Some(i) = &self.istio {
            if self.path.is_some() || self.gauge.is_some() {
                return Err(invalid(at.into(), "path and gauge belong to an HTTP probe"));
            }
            let listener = i.listener.as_deref().unwrap_or(ISTIO_INBOUND_LISTENER);
            let gauge = format!(
                "envoy_listener_downstream_cx_active{{listener_address=\"{}\"}}",
                listener.replace('\\', "\\\\").replace('"', "\\\"")
            );
            return Ok(ProbeTarget::PodPort(Probe {
                port: nonzero(
                    i.port.unwrap_or(ISTIO_STATS_PORT),
                    &format!("{at}.istio.port"),
                )?,
                path: "/stats/prometheus".into(),
                gauge: Some(gauge),
            }));
        }
        if let Some(l) = &self.linkerd {
            if self.path.is_some() || self.gauge.is_some() {
                return Err(invalid(at.into(), "path and gauge belong to an HTTP probe"));
            }
            return Ok(ProbeTarget::PodPort(Probe {
                port: nonzero(
                    l.port.unwrap_or(LINKERD_ADMIN_PORT),
                    &format!("{at}.linkerd.port"),
                )?,
                path: "/metrics".into(),
                gauge: Some(LINKERD_INBOUND.into()),
            }));
        }
        if let Some(g) = &self.gauge {
            Selector::parse(g).map_err(|e| invalid(format!("{at}.gauge"), e))?;
        }
        Ok(ProbeTarget::PodPort(Probe {
            port: nonzero(self.port.unwrap_or_default(), &format!("{at}.port"))?,
            path: self.path.clone().unwrap_or_else(|| "/metrics".into()),
            gauge: self.gauge.clone(),
        }))
    }
}

fn nonzero(port: u16, field: &str) -> Result<u16> {
    if port == 0 {
        return Err(invalid(field.into(), "0 is not a port"));
    }
    Ok(port)
}

/// Sorted, deduplicated, non-empty, no 0. `field` names the source in errors.
pub fn connection_ports(ports: &[u16], field: &str) -> Result<Vec<u16>> {
    if ports.is_empty() {
        return Err(invalid(field.into(), "give at least one port"));
    }
    if ports.contains(&0) {
        return Err(invalid(field.into(), "0 is not a port"));
    }
    let mut p = ports.to_vec();
    p.sort_unstable();
    p.dedup();
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(yaml: &str) -> Result<ProbeTarget> {
        steward_runtime::yaml::from_str::<RawProbe>(yaml)
            .unwrap()
            .target("defaults.probe")
    }

    #[test]
    fn kinds() {
        assert_eq!(
            target("{ connections: { ports: [8443, 8080, 8080] } }").unwrap(),
            ProbeTarget::Connections {
                ports: vec![8080, 8443]
            }
        );
        assert_eq!(
            target("{ istio: {} }").unwrap(),
            ProbeTarget::PodPort(Probe {
                port: 15090,
                path: "/stats/prometheus".into(),
                gauge: Some(
                    "envoy_listener_downstream_cx_active{listener_address=\"0.0.0.0_15006\"}"
                        .into()
                ),
            })
        );
        let ProbeTarget::PodPort(p) =
            target("{ istio: { port: 15020, listener: \"[__]_15006\" } }").unwrap()
        else {
            panic!()
        };
        assert_eq!(p.port, 15020);
        let sel = Selector::parse(p.gauge.as_deref().unwrap()).unwrap();
        assert_eq!(sel.matchers[0].2, "[__]_15006");
        assert_eq!(
            target("{ linkerd: {} }").unwrap(),
            ProbeTarget::PodPort(Probe {
                port: 4191,
                path: "/metrics".into(),
                gauge: Some(LINKERD_INBOUND.into()),
            })
        );
        let ProbeTarget::PodPort(p) = target("{ linkerd: { port: 14191 } }").unwrap() else {
            panic!()
        };
        assert_eq!(p.port, 14191);
        assert_eq!(
            target("{ port: 9090, gauge: 'inflight{handler=\"a\"}' }").unwrap(),
            ProbeTarget::PodPort(Probe {
                port: 9090,
                path: "/metrics".into(),
                gauge: Some("inflight{handler=\"a\"}".into()),
            })
        );
    }

    #[test]
    fn invalid_blocks_name_the_field() {
        let table = [
            ("{}", "defaults.probe", "one of"),
            ("{ port: 1, istio: {} }", "defaults.probe", "exclude"),
            (
                "{ connections: { ports: [] } }",
                "defaults.probe.connections.ports",
                "at least one",
            ),
            (
                "{ connections: {} }",
                "defaults.probe.connections.ports",
                "at least one",
            ),
            (
                "{ connections: { ports: [0] } }",
                "defaults.probe.connections.ports",
                "0 is not",
            ),
            (
                "{ connections: { ports: [80] }, gauge: x }",
                "defaults.probe",
                "HTTP probe",
            ),
            ("{ istio: {}, path: /x }", "defaults.probe", "HTTP probe"),
            ("{ linkerd: {}, gauge: x }", "defaults.probe", "HTTP probe"),
            ("{ linkerd: {}, istio: {} }", "defaults.probe", "exclude"),
            (
                "{ linkerd: { port: 0 } }",
                "defaults.probe.linkerd.port",
                "0 is not",
            ),
            ("{ port: 0 }", "defaults.probe.port", "0 is not"),
            (
                "{ port: 1, gauge: 'x{a=1}' }",
                "defaults.probe.gauge",
                "not quoted",
            ),
        ];
        assert!(
            steward_runtime::yaml::from_str::<RawProbe>("{ linkerd: { admin: 1 } }").is_err(),
            "unknown keys of a preset are refused"
        );
        for (yaml, field, reason) in table {
            match target(yaml) {
                Err(Error::InvalidConfig {
                    field: f,
                    reason: r,
                }) => {
                    assert_eq!(f, field, "{yaml}");
                    assert!(r.contains(reason), "{yaml}: {r}");
                }
                other => panic!("{yaml}: {other:?}"),
            }
        }
    }
}
