//! The agent's HTTP API, as data: the query of `GET /v1/connections` and its
//! answer. Pure: parsing is tested here, the server lives in `agent::server`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::cgroup;

/// Path of the connection-count endpoint.
pub const PATH: &str = "/v1/connections";

/// A valid `GET /v1/connections?uid=<pod UID>&ports=8080,8443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The pod's UID, normalised (lower case).
    pub uid: String,
    /// Local ports whose ESTABLISHED sockets count; sorted, no duplicates.
    pub ports: Vec<u16>,
}

/// Parses the query string's parameters; the error names the parameter.
pub fn parse(params: &HashMap<String, String>) -> Result<Query, String> {
    let uid = params
        .get("uid")
        .ok_or("uid: missing (the pod's metadata.uid)")?;
    let uid = cgroup::normalize(uid).ok_or_else(|| format!("uid: \"{uid}\" is not a pod UID"))?;
    let ports = params
        .get("ports")
        .ok_or("ports: missing (comma-separated, for example 8080,8443)")?;
    Ok(Query {
        uid,
        ports: parse_ports(ports).map_err(|e| format!("ports: {e}"))?,
    })
}

/// `8080,8443` → sorted, deduplicated ports in 1..=65535; at least one.
pub fn parse_ports(s: &str) -> Result<Vec<u16>, String> {
    let mut ports = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("\"{p}\" is not a port (1-65535)")),
            Ok(n) => Ok(n),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ports.is_empty() {
        return Err("no port given".into());
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// The answer for a pod with at least one process on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connections {
    /// The pod UID asked about.
    pub uid: String,
    /// The ports counted.
    pub ports: Vec<u16>,
    /// ESTABLISHED TCP sockets (IPv4 and IPv6) whose local port is one of `ports`,
    /// summed over the pod's network namespaces (one, unless a container runs
    /// outside the pod's sandbox).
    pub established: usize,
    /// One process read per network namespace.
    pub pids: Vec<u32>,
    /// Inodes of those network namespaces (`/proc/<pid>/ns/net`); empty when the
    /// agent may not read them (it lacks CAP_SYS_PTRACE).
    pub netns: Vec<u64>,
    /// The pod shares the node's network namespace (`hostNetwork: true`): the
    /// count is every ESTABLISHED socket on those ports on the node.
    pub host_network: bool,
}

/// The body of a 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What went wrong, naming the parameter or the file.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<Query, String> {
        parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn queries() {
        let uid = "6F1C0A3E-2B7D-4C41-9A55-0E8B1D2C3F40";
        assert_eq!(
            q(&[("uid", uid), ("ports", "8443, 8080,8080,")]),
            Ok(Query {
                uid: uid.to_ascii_lowercase(),
                ports: vec![8080, 8443]
            })
        );
        let table = [
            (vec![("ports", "80")], "uid: missing"),
            (vec![("uid", "x"), ("ports", "80")], "uid: \"x\""),
            (vec![("uid", uid)], "ports: missing"),
            (vec![("uid", uid), ("ports", "")], "ports: no port"),
            (vec![("uid", uid), ("ports", "0")], "ports: \"0\""),
            (
                vec![("uid", uid), ("ports", "80,65536")],
                "ports: \"65536\"",
            ),
            (vec![("uid", uid), ("ports", "http")], "ports: \"http\""),
        ];
        for (params, want) in table {
            let err = q(&params).unwrap_err();
            assert!(err.starts_with(want), "{params:?}: {err}");
        }
    }
}
