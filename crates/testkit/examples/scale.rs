//! How much the simulated cluster holds on this machine: starts a fresh cluster,
//! adds N kwok nodes and a Deployment of P pods, and reports the time each step took
//! and the peak memory of every component.
//!
//! `cargo run --release -p testkit --example scale -- 100 2000`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use steward_sim::{Cluster, Lifetime, NodeSpec, Options};
use testkit::wait;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let pods: i32 = args.next().map_or(Ok(2000), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("steward-scale-{}", std::process::id()));
    let opts = Options {
        dir: dir.clone(),
        bin_dir: testkit::bin_dir()?,
        lifetime: Lifetime::WithParent,
        audit: false,
        real_nodes: 0,
        images: Vec::new(),
    };
    let cluster = Cluster::start(&opts).await?;
    println!(
        "cluster start (warm binaries): {:.2}s",
        cluster.started_in().as_secs_f64()
    );
    let client = cluster.client().await?;

    let t = Instant::now();
    let specs: Vec<NodeSpec> = (0..nodes)
        .map(|i| {
            NodeSpec::new(format!("scale-{i}"))
                .capacity("32", "128Gi")
                .max_pods(110)
        })
        .collect();
    steward_sim::add_nodes(&client, &specs, Duration::from_secs(300)).await?;
    println!("{nodes} nodes Ready: {:.2}s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let deploy: Deployment = wait::from_json(json!({
        "metadata": { "name": "load" },
        "spec": {
            "replicas": pods,
            "selector": { "matchLabels": { "app": "load" } },
            "template": { "metadata": { "labels": { "app": "load" } },
                "spec": { "containers": [{ "name": "c", "image": "registry.invalid/c:1",
                          "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } } }] } }
        }
    }));
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &deploy)
        .await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let want = usize::try_from(pods)?;
    wait::list(
        &api,
        &ListParams::default().labels("app=load"),
        Duration::from_secs(900),
        "all pods Ready",
        |ps| ps.iter().filter(|p| wait::pod_ready(p)).count() == want,
    )
    .await?;
    println!(
        "{pods} pods Running and Ready: {:.2}s",
        t.elapsed().as_secs_f64()
    );

    for (name, pid) in cluster.pids() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap_or("VmHWM: ?")
            .trim_start_matches("VmHWM:")
            .trim()
            .to_string();
        println!("peak RSS {name}: {hwm}");
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
