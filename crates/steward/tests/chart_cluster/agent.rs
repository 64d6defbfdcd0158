//! The node agent as the chart's agent ServiceAccount (with the DaemonSet's command
//! line): it advertises itself on its Node, serves its metrics, and on SIGTERM
//! takes its annotations back.

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::Api;
use testkit::wait;

use crate::chart_support::{args, replace_flag};
use crate::{Release, T};

/// Node annotation the agent writes (graceful_drain::agent::ANN_AGENT).
const ANN_AGENT: &str = "steward.io/drain-agent";

/// Runs the agent on a node of the cluster; its `/metrics` text.
pub async fn agent(rel: &Release) -> String {
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    let nodes: Api<Node> = Api::all(rel.client.clone());
    let node = nodes.list(&Default::default()).await.unwrap().items[0].name_any();
    let mut a = replace_flag(
        &args(rel.obj("DaemonSet", "-graceful-drain-agent")),
        "--listen",
        &listen,
    );
    // The DaemonSet gives these from the downward API (NODE_NAME, POD_IP).
    a.extend([
        "--node".into(),
        node.clone(),
        "--advertise".into(),
        listen.clone(),
    ]);
    let (mut child, log) = crate::scenarios::start(rel, "-graceful-drain-agent", &a).await;
    let url = format!("http://{listen}");
    let advertised = wait::object(
        &nodes,
        &node,
        T,
        "the Node advertises the agent",
        |n: &Node| n.annotations().get(ANN_AGENT) == Some(&url),
    )
    .await;
    if let Err(e) = advertised {
        panic!(
            "{e}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let metrics = testkit::http()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let pid = child.id().unwrap().to_string();
    let term = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(T, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "agent exit: {status}");
    let n = nodes.get(&node).await.unwrap();
    assert_eq!(
        n.annotations().get(ANN_AGENT),
        None,
        "the agent left its annotation"
    );
    metrics
}
