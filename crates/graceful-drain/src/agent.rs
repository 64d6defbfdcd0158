//! `steward graceful-drain agent`: the optional node agent (a DaemonSet with
//! `hostPID: true`) that counts a pod's ESTABLISHED connections on its serving
//! ports, for the `connections` drain probe.
//!
//! It serves `GET /v1/connections?uid=<pod UID>&ports=8080,8443` (JSON, see
//! `agent::query`), `/healthz` and `/metrics`, and advertises itself on its Node
//! with the annotation `steward.io/drain-agent: http://<host:port>`, where the
//! controller finds it, and writes it again if it disappears. On SIGTERM it
//! removes that annotation (only while it still names this agent: a newer agent
//! on the same node may have replaced it).
//!
//! The agent never talks to the API about pods: the controller sends the UID.

pub mod cgroup;
pub mod procnet;
pub mod query;
pub mod scan;
mod server;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use steward_kube::patch::{Step, read_decide_patch};
use steward_runtime::kube_client::KubeArgs;
use steward_runtime::{Context, Shutdown};

use crate::error::{Error, Result, kube as kerr};

/// Node annotation: the agent's base URL.
pub const ANN_AGENT: &str = "steward.io/drain-agent";
/// Node annotation: which agent process wrote [`ANN_AGENT`].
pub const ANN_AGENT_ID: &str = "steward.io/drain-agent-id";
/// Field manager of the agent's Node writes.
pub const FIELD_MANAGER: &str = "steward-graceful-drain-agent";

/// `steward graceful-drain agent`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  # In the DaemonSet (deploy/graceful-drain-agent.yaml): node, pod IP and name from the downward API
  steward graceful-drain agent --kube-config cluster --listen 0.0.0.0:9811
  # By hand on one node, reachable at a fixed address
  steward graceful-drain agent --node worker-1 --advertise 10.0.0.7:9811")]
pub struct AgentArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The Node this agent runs on; it writes the annotation steward.io/drain-agent there.
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node: String,
    /// Address the agent serves /v1/connections, /healthz and /metrics on.
    #[arg(long, default_value = "0.0.0.0:9811", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// host:port the controller reaches this agent at (default: $POD_IP and the --listen port).
    #[arg(long, env = "STEWARD_AGENT_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// This pod's IP (downward API), used when --advertise is not given.
    #[arg(long, env = "POD_IP", value_name = "IP")]
    pub pod_ip: Option<IpAddr>,
    /// The node's /proc (run with hostPID so it shows every pod's processes).
    #[arg(long, default_value = "/proc", value_name = "DIR")]
    pub proc: PathBuf,
    /// Identity of this agent in steward.io/drain-agent-id (defaults to hostname-pid).
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    pub identity: Option<String>,
    /// How often the agent checks that its Node still advertises a drain agent (and writes itself back if not).
    #[arg(long, default_value = "30s", value_parser = steward_runtime::duration::parse, value_name = "DURATION")]
    pub recheck_interval: Duration,
}

impl AgentArgs {
    /// The URL written to the Node. Errors name the flag.
    pub fn url(&self) -> Result<String> {
        let hostport = match (&self.advertise, self.pod_ip) {
            (Some(a), _) => a.clone(),
            (None, Some(ip)) => SocketAddr::new(ip, self.listen.port()).to_string(),
            (None, None) => {
                return Err(Error::InvalidConfig {
                    field: "--advertise".into(),
                    reason: "missing: give --advertise HOST:PORT or set POD_IP".into(),
                });
            }
        };
        advertise_url(&hostport).map_err(|reason| Error::InvalidConfig {
            field: "--advertise".into(),
            reason,
        })
    }
}

/// `host:port` (IPv6 in brackets) → `http://host:port`. Pure.
pub fn advertise_url(hostport: &str) -> Result<String, String> {
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("\"{hostport}\" is not HOST:PORT"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("\"{port}\" in \"{hostport}\" is not a port")),
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || (bare.contains(':') && !host.starts_with('[')) || host.contains('/') {
        return Err(format!(
            "\"{hostport}\" is not HOST:PORT (write an IPv6 address in brackets)"
        ));
    }
    Ok(format!("http://{hostport}"))
}

/// Runs the agent until shutdown, then withdraws its advertisement.
pub async fn run(args: AgentArgs, ctx: Context) -> Result<()> {
    let shutdown = ctx.shutdown;
    let url = args.url()?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let client = args.kube.connect().await?.client;
    let mut registry = steward_runtime::admin::registry(env!("CARGO_PKG_VERSION"));
    let metrics = crate::metrics::AgentMetrics::new(&mut registry);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: args.listen,
            source,
        })?;
    let nodes: Api<Node> = Api::all(client);
    advertise(&nodes, &args.node, &url, &identity).await?;
    metrics.advertised.set(1);
    tracing::info!(node = %args.node, %url, listen = %args.listen, proc = %args.proc.display(), "drain agent serving; advertised on the Node");
    let keep = tokio::spawn(keep_advertising(
        nodes.clone(),
        args.node.clone(),
        url.clone(),
        identity.clone(),
        args.recheck_interval.max(Duration::from_secs(1)),
        shutdown.clone(),
    ));
    let served = server::serve(
        listener,
        args.proc.clone(),
        registry,
        metrics.clone(),
        shutdown.clone(),
    )
    .await;
    shutdown.trigger();
    let _ = keep.await;
    let withdrawn = withdraw(&nodes, &args.node, &identity).await;
    metrics.advertised.set(0);
    served.map_err(|source| Error::Bind {
        addr: args.listen,
        source,
    })?;
    withdrawn
}

/// Writes the annotations (server-side apply, this agent's field manager).
async fn advertise(nodes: &Api<Node>, node: &str, url: &str, identity: &str) -> Result<()> {
    let patch = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": node, "annotations": { ANN_AGENT: url, ANN_AGENT_ID: identity } }
    });
    nodes
        .patch(
            node,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kerr(format!("advertising the drain agent on Node {node}")))?;
    Ok(())
}

/// Puts the annotation back if it is gone (removed by a person, or by a newer
/// agent on this node that stopped first). One that names another agent is left
/// alone: that agent is newer (it wrote at start), and two agents re-writing
/// each other's would flap.
async fn keep_advertising(
    nodes: Api<Node>,
    node: String,
    url: String,
    identity: String,
    every: Duration,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.signaled() => return,
        }
        let current = match nodes.get_metadata(&node).await {
            Ok(n) => n.annotations().get(ANN_AGENT).cloned(),
            Err(error) => {
                tracing::warn!(%node, %error, "reading the Node failed; checking again later");
                continue;
            }
        };
        if current.is_none() {
            tracing::info!(%node, "the Node no longer advertises a drain agent; writing it again");
            if let Err(error) = advertise(&nodes, &node, &url, &identity).await {
                tracing::warn!(%node, %error, "advertising the drain agent failed; retrying later");
            }
        }
    }
}

/// What withdrawing finds on the Node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Withdrawn {
    /// The Node is gone.
    NoNode,
    /// It advertises no agent (any more).
    Nothing,
    /// It advertises another agent, newer on this node: left alone.
    Other,
}

/// The patch removing this agent's advertisement, while the Node still names it. Pure.
pub fn withdrawal(
    annotations: &std::collections::BTreeMap<String, String>,
    identity: &str,
) -> Option<serde_json::Value> {
    (annotations.get(ANN_AGENT_ID).map(String::as_str) == Some(identity))
        .then(|| json!({ "metadata": { "annotations": { ANN_AGENT: null, ANN_AGENT_ID: null } } }))
}

/// Removes the annotations if they still name this agent: read, decide, patch
/// conditional on the Node's resourceVersion, again on a conflict.
async fn withdraw(nodes: &Api<Node>, node: &str, identity: &str) -> Result<()> {
    let mut patched = false;
    let found = read_decide_patch(nodes, node, None, &PatchParams::default(), |n| {
        let Some(n) = n else {
            return Step::Done(Withdrawn::NoNode);
        };
        if let Some(patch) = withdrawal(n.annotations(), identity) {
            patched = true;
            return Step::Patch(patch);
        }
        Step::Done(match n.annotations().get(ANN_AGENT_ID) {
            Some(_) => Withdrawn::Other,
            None => Withdrawn::Nothing,
        })
    })
    .await
    .map_err(kerr(format!("removing the drain agent from Node {node}")))?;
    match found {
        Withdrawn::Nothing if patched => {
            tracing::info!(%node, "drain agent stopped; advertisement removed from the Node");
        }
        Withdrawn::Other => {
            tracing::info!(%node, "the Node advertises another agent now; leaving it");
        }
        Withdrawn::Nothing | Withdrawn::NoNode => {}
    }
    Ok(())
}

/// The agent URL a Node advertises.
pub fn node_agent_url(node: &kube::api::ObjectMeta) -> Option<&str> {
    node.annotations
        .as_ref()?
        .get(ANN_AGENT)
        .map(String::as_str)
}

/// The agent URL the pod's Node advertises, if any.
pub(crate) async fn lookup(client: &Client, node: &str) -> Result<Option<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let meta = nodes
        .get_metadata_opt(node)
        .await
        .map_err(kerr(format!("reading Node {node}")))?;
    Ok(meta.and_then(|m| node_agent_url(&m.metadata).map(str::to_string)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withdraws_only_its_own_advertisement() {
        let ann = |id: Option<&str>| -> std::collections::BTreeMap<String, String> {
            id.map(|i| {
                [
                    (ANN_AGENT.to_string(), "http://10.0.0.5:9811".to_string()),
                    (ANN_AGENT_ID.to_string(), i.to_string()),
                ]
                .into()
            })
            .unwrap_or_default()
        };
        let table = [
            (Some("agent-a"), true),
            (Some("agent-b"), false),
            (None, false),
        ];
        for (id, removes) in table {
            let patch = withdrawal(&ann(id), "agent-a");
            assert_eq!(patch.is_some(), removes, "{id:?}");
            if let Some(p) = patch {
                assert!(p["metadata"]["annotations"][ANN_AGENT].is_null());
                assert!(p["metadata"]["annotations"][ANN_AGENT_ID].is_null());
            }
        }
    }

    #[test]
    fn advertise_urls() {
        let ok = [
            ("10.0.0.5:9811", "http://10.0.0.5:9811"),
            ("[fd00::5]:9811", "http://[fd00::5]:9811"),
            ("node-a.internal:9811", "http://node-a.internal:9811"),
        ];
        for (a, want) in ok {
            assert_eq!(advertise_url(a).as_deref(), Ok(want));
        }
        for bad in [
            "10.0.0.5",
            "10.0.0.5:0",
            "10.0.0.5:http",
            ":9811",
            "fd00::5:9811",
            "a/b:1",
        ] {
            assert!(advertise_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn advertise_falls_back_to_the_pod_ip() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: AgentArgs,
        }
        let a = |argv: &[&str]| Cli::try_parse_from(argv).map(|c| c.a.url());
        let url = a(&[
            "x",
            "--node",
            "n",
            "--pod-ip",
            "10.1.2.3",
            "--listen",
            "0.0.0.0:9000",
        ])
        .unwrap();
        assert_eq!(url.unwrap(), "http://10.1.2.3:9000");
        let url = a(&[
            "x",
            "--node",
            "n",
            "--pod-ip",
            "10.1.2.3",
            "--advertise",
            "127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(url.unwrap(), "http://127.0.0.1:1");
        match a(&["x", "--node", "n"]).unwrap() {
            Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "--advertise"),
            other => panic!("{other:?}"),
        }
    }
}
