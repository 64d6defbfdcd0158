//! Benchmark of `steward monitor` on the simulated cluster with a real Prometheus:
//! - embedded install time: MonitoringStack created -> every component applied and
//!   Available (phase Installed);
//! - node Ready -> first successful scrape as seen by steward, p50/p99, at the given
//!   scrape interval (default 15s, as in the goal);
//! - peak RSS (VmHWM) of the `steward monitor run` process (the release binary, as
//!   shipped) with `--total` nodes (default 100).
//!
//! Run: `cargo build --release -p steward && cargo run --release -p auto-monitor --example monitor_bench -- [--nodes 20] [--total 100] [--scrape-interval 15s]`
//!
//! kwok nodes have no reachable pod IPs, so each node's target is added to the
//! Prometheus file-based discovery when the node turns Ready, labelled with the node
//! name, and points at one of a few real node-exporter processes (a target per node,
//! shared exporters: 100 exporter processes would measure the machine, not steward).
//! Node Ready times come from the API server and have one-second precision.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use auto_monitor::crd::MonitoringStack;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use serde_json::json;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn port() -> u16 {
    testkit::free_port()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn vm_hwm_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// A `/proc/<pid>/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let nodes_n: usize = arg("--nodes", "20").parse()?;
    let total: usize = arg("--total", "100").parse()?;
    let scrape = arg("--scrape-interval", "15s");
    let env = testkit::env("bench").await?;
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();

    // A few real exporters and a real Prometheus discovering one target per node.
    let dir = tempfile::tempdir()?;
    let exporters: Vec<(u16, Kill)> = (0..4)
        .map(|_| {
            let p = port();
            let c = Command::new("prometheus-node-exporter")
                .arg(format!("--web.listen-address=127.0.0.1:{p}"))
                .args([
                    "--collector.disable-defaults",
                    "--collector.cpu",
                    "--collector.meminfo",
                    "--collector.uname",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("prometheus-node-exporter (Debian package)")?;
            Ok((p, Kill(c)))
        })
        .collect::<Result<_>>()?;
    let targets = dir.path().join("targets.json");
    std::fs::write(&targets, "[]")?;
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: {scrape}\nscrape_configs:\n- job_name: node-exporter\n  file_sd_configs:\n  - files: ['{}']\n",
            targets.display()
        ),
    )?;
    let pport = port();
    let _prom = Kill(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let prom_url = format!("http://127.0.0.1:{pport}");
    let mut assigned: BTreeMap<String, u16> = BTreeMap::new();
    let write_targets = |assigned: &BTreeMap<String, u16>| -> Result<()> {
        let list: Vec<_> = assigned
            .iter()
            .map(|(n, p)| json!({ "targets": [format!("127.0.0.1:{p}")], "labels": { "node": n } }))
            .collect();
        let tmp = dir.path().join("t.tmp");
        std::fs::write(&tmp, serde_json::to_string(&list)?)?;
        std::fs::rename(tmp, &targets)?;
        Ok(())
    };

    let first = env.add_nodes("base", 1, |s| s).await?;
    assigned.insert(first[0].clone(), exporters[0].0);
    write_targets(&assigned)?;

    let ctl = Kill(
        // The shipped binary, so the RSS is what `steward monitor run` uses.
        Command::new(testkit::release_steward()?)
            .args([
                "monitor",
                "run",
                "-n",
                &env.ns,
                "--prometheus-url",
                &prom_url,
            ])
            .args(["--poll-interval", "1s"])
            .arg(format!("--admin-addr=127.0.0.1:{}", port()))
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    auto_monitor::apply_crd(&env.client).await?;
    let api: Api<MonitoringStack> = Api::namespaced(env.client.clone(), &env.ns);
    let stack: MonitoringStack = serde_json::from_value(json!({
        "apiVersion": "steward.io/v1alpha1", "kind": "MonitoringStack", "metadata": { "name": "mon" },
        "spec": {
            "nodeSelector": env.node_selector(),
            "placement": { "nodeSelector": env.node_selector(), "tolerations": [env.toleration()] },
            "scrapeInterval": scrape,
        }
    }))?;
    let started = Instant::now();
    api.create(&PostParams::default(), &stack).await?;
    let wait = |what: &'static str, cond: Box<dyn Fn(&MonitoringStack) -> bool + Send>| {
        let api = api.clone();
        async move { testkit::wait::object(&api, "mon", Duration::from_secs(600), what, cond).await }
    };
    wait(
        "Installed",
        Box::new(|m| m.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Installed")),
    )
    .await?;
    let install = started.elapsed();
    println!(
        "embedded install (CR created -> all components applied and Available): {:.2}s",
        install.as_secs_f64()
    );

    // Onboarding: nodes added one after another; each target appears once the node is Ready.
    let mut new_nodes = Vec::new();
    for i in 0..nodes_n {
        let n = env.add_nodes(&format!("on{i}"), 1, |s| s).await?;
        assigned.insert(n[0].clone(), exporters[i % exporters.len()].0);
        write_targets(&assigned)?;
        new_nodes.push(n[0].clone());
    }
    let names = new_nodes.clone();
    let all = wait(
        "all new nodes monitored",
        Box::new(move |m| {
            let st = m.status.clone().unwrap_or_default();
            names.iter().all(|n| {
                st.nodes
                    .iter()
                    .any(|r| &r.node == n && r.step == "Monitored")
            })
        }),
    )
    .await?;
    let st = all.status.unwrap_or_default();
    let secs = |a: &Option<String>, b: &Option<String>| -> Option<f64> {
        let a: Timestamp = a.as_deref()?.parse().ok()?;
        let b: Timestamp = b.as_deref()?.parse().ok()?;
        Some(b.duration_since(a).as_secs_f64())
    };
    let mut seen: Vec<f64> = st
        .nodes
        .iter()
        .filter(|r| new_nodes.contains(&r.node))
        .filter_map(|r| secs(&r.ready_at, &r.target_up_at))
        .collect();
    let mut sample: Vec<f64> = st
        .nodes
        .iter()
        .filter(|r| new_nodes.contains(&r.node))
        .filter_map(|r| r.onboarding_seconds)
        .collect();
    seen.sort_by(f64::total_cmp);
    sample.sort_by(f64::total_cmp);
    println!(
        "node Ready -> first successful scrape seen by steward ({} nodes, scrape interval {scrape}): p50 {:.1}s p99 {:.1}s max {:.1}s",
        seen.len(),
        percentile(&seen, 50.0),
        percentile(&seen, 99.0),
        seen.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "node Ready -> first sample timestamp in Prometheus: p50 {:.1}s p99 {:.1}s",
        percentile(&sample, 50.0),
        percentile(&sample, 99.0)
    );

    // Memory with `total` nodes.
    let have = 1 + nodes_n;
    if total > have {
        let more = env.add_nodes("bulk", total - have, |s| s).await?;
        for (i, n) in more.iter().enumerate() {
            assigned.insert(n.clone(), exporters[i % exporters.len()].0);
        }
        write_targets(&assigned)?;
    }
    let want = total.max(have);
    let t0 = Instant::now();
    wait(
        "every node monitored",
        Box::new(move |m| {
            m.status.as_ref().is_some_and(|s| {
                s.nodes.len() == want && s.nodes.iter().all(|r| r.step == "Monitored")
            })
        }),
    )
    .await?;
    println!(
        "{want} nodes monitored {:.1}s after the last batch was added",
        t0.elapsed().as_secs_f64()
    );
    println!(
        "`steward monitor run` peak RSS (VmHWM) with {want} nodes: {:.1} MiB",
        vm_hwm_kib(ctl.0.id()) as f64 / 1024.0
    );
    // Peak RSS counts the binary's pages read from disk (shared, reclaimable) with
    // the heap; now, apart.
    let mib = |f: &str| status_kib(ctl.0.id(), f) as f64 / 1024.0;
    println!(
        "  now: RssAnon {:.1} MiB (heap, stacks), RssFile {:.1} MiB (binary and libraries, shared)",
        mib("RssAnon:"),
        mib("RssFile:")
    );
    drop(ctl);
    Ok(())
}
