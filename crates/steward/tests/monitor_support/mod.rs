//! Real peers for `steward monitor` tests: node-exporter processes standing in for
//! the simulated nodes, a real Prometheus scraping them through file-based service
//! discovery with the `node` label the generated configuration sets (kwok pod IPs
//! are not reachable, so Kubernetes service discovery cannot be used here), and the
//! controller as a child process.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Result, bail};

pub mod operator;

/// A free loopback port for a child to bind ([`testkit::free_port`]).
pub fn free_port() -> u16 {
    testkit::free_port()
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `cmd` with no stdin or stdout and its stderr in `log`.
    pub fn spawn(cmd: &mut Command, log: PathBuf) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Prometheus scraping one node-exporter per simulated node, `job="node-exporter"`,
/// each target labelled with its node's name.
pub struct Fleet {
    dir: tempfile::TempDir,
    prometheus: Proc,
    pub url: String,
    exporters: Mutex<BTreeMap<String, (u16, Option<Proc>)>>,
}

impl Fleet {
    pub async fn start() -> Result<Self> {
        Self::start_with(|_| String::new()).await
    }

    /// The same Prometheus with `extra` appended to its configuration (rule files,
    /// Alertmanagers); `extra` gets the Fleet's own directory.
    pub async fn start_with(extra: impl FnOnce(&std::path::Path) -> String) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        std::fs::write(dir.path().join("targets.json"), "[]")?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: node-exporter\n  file_sd_configs:\n  - files: ['{}']\n    refresh_interval: 1s\n{}",
            dir.path().join("targets.json").display(),
            extra(dir.path()),
        );
        std::fs::write(dir.path().join("prometheus.yml"), config)?;
        let log = dir.path().join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(dir.path().join("prometheus.err"))?)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let http = testkit::http();
        testkit::wait::until(Duration::from_secs(30), "Prometheus ready", || async {
            Ok(http
                .get(format!("{url}/-/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()))
        })
        .await?;
        Ok(Self {
            dir,
            prometheus: Proc { child, log },
            url,
            exporters: Mutex::new(BTreeMap::new()),
        })
    }

    /// Starts a node-exporter for `node` and adds it as a target.
    pub fn start_exporter(&self, node: &str) -> Result<()> {
        let port = free_port();
        let log = self.dir.path().join(format!("exporter-{node}.log"));
        let mut exporter = Command::new("prometheus-node-exporter");
        exporter
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Fewer collectors: the tests need up, cpu, memory and filesystem only.
            .args([
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.filesystem",
                "--collector.uname",
                "--collector.loadavg",
            ]);
        let proc = Proc::spawn(&mut exporter, log);
        self.exporters
            .lock()
            .unwrap()
            .insert(node.into(), (port, Some(proc)));
        self.write_targets()
    }

    /// Adds a target for `node` where nothing listens: its scrapes fail.
    pub fn add_dead_target(&self, node: &str) -> Result<()> {
        self.exporters
            .lock()
            .unwrap()
            .insert(node.into(), (free_port(), None));
        self.write_targets()
    }

    /// Stops `node`'s exporter and keeps its target: the node is down.
    pub fn stop_exporter(&self, node: &str) {
        if let Some((_, proc)) = self.exporters.lock().unwrap().get_mut(node) {
            proc.take();
        }
    }

    /// Stops `node`'s exporter and removes its target.
    pub fn remove(&self, node: &str) -> Result<()> {
        self.exporters.lock().unwrap().remove(node);
        self.write_targets()
    }

    fn write_targets(&self) -> Result<()> {
        let list: Vec<serde_json::Value> = self
            .exporters
            .lock()
            .unwrap()
            .iter()
            .map(|(node, (port, _))| serde_json::json!({ "targets": [format!("127.0.0.1:{port}")], "labels": { "node": node } }))
            .collect();
        // Write then rename: Prometheus must never read half a file.
        let tmp = self.dir.path().join("targets.json.tmp");
        std::fs::write(&tmp, serde_json::to_string(&list)?)?;
        std::fs::rename(tmp, self.dir.path().join("targets.json"))?;
        Ok(())
    }
}

/// `steward monitor run` for one namespace, reading onboarding from `prometheus_url`.
pub fn controller(ns: &str, prometheus_url: &str, admin_port: u16, extra: &[&str]) -> Result<Proc> {
    start(&["monitor", "run"], ns, prometheus_url, admin_port, extra)
}

/// The same controller through the deprecated bare `steward monitor`.
pub fn controller_bare(
    ns: &str,
    prometheus_url: &str,
    admin_port: u16,
    extra: &[&str],
) -> Result<Proc> {
    start(&["monitor"], ns, prometheus_url, admin_port, extra)
}

fn start(
    command: &[&str],
    ns: &str,
    prometheus_url: &str,
    admin_port: u16,
    extra: &[&str],
) -> Result<Proc> {
    let log = std::env::temp_dir().join(format!("steward-monitor-{ns}-{}.log", free_port()));
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(command)
        .args(["--namespace", ns, "--poll-interval", "500ms"])
        // "" leaves the flag out: onboarding reads each stack's own URL.
        .args(match prometheus_url {
            "" => vec![],
            url => vec!["--prometheus-url", url],
        })
        .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    Ok(Proc { child, log })
}

/// kubectl against the test cluster; fails the test unless it succeeds (`what`
/// names the step in the failure).
pub fn kubectl(what: &str, args: &[&str]) -> std::process::Output {
    run(&testkit::bin_dir().unwrap().join("kubectl"), what, args)
}

/// `program` against the test cluster; fails the test unless it succeeds.
pub fn run(program: &std::path::Path, what: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .env("KUBECONFIG", testkit::cluster().kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The controller's /metrics text.
pub async fn metrics(admin_port: u16) -> Result<String> {
    let r = testkit::http()
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("metrics: {}", r.status());
    }
    Ok(r.text().await?)
}

/// Creates MonitoringStack `mon` in the test's namespace: monitoring the test's
/// nodes, its Deployments placed on them, 1 s scrapes, a 5 s onboarding deadline,
/// and `extra` merged over that.
pub async fn create_stack(
    env: &testkit::TestEnv,
    extra: serde_json::Value,
) -> kube::Api<auto_monitor::crd::MonitoringStack> {
    let mut spec = serde_json::json!({
        "nodeSelector": env.node_selector(),
        "placement": { "nodeSelector": env.node_selector(), "tolerations": [env.toleration()] },
        "scrapeInterval": "1s",
        "onboardingDeadline": "5s",
    });
    auto_monitor::helm::merge(&mut spec, &extra);
    let stack: auto_monitor::crd::MonitoringStack = testkit::wait::from_json(serde_json::json!({
        "apiVersion": "steward.io/v1alpha1", "kind": "MonitoringStack",
        "metadata": { "name": "mon" }, "spec": spec }));
    // The CRD is applied by the controller at start; create it here too so the test
    // does not race the controller.
    auto_monitor::apply_crd(&env.client).await.unwrap();
    let api = kube::Api::namespaced(env.client.clone(), &env.ns);
    api.create(&kube::api::PostParams::default(), &stack)
        .await
        .unwrap();
    api
}

/// A ConfigMap's data key, once the controller has written it.
pub async fn config_map_data(
    cms: &kube::Api<k8s_openapi::api::core::v1::ConfigMap>,
    name: &str,
    key: &str,
) -> String {
    let cm = testkit::wait::object(cms, name, Duration::from_secs(90), "the ConfigMap", |cm| {
        cm.data.as_ref().is_some_and(|d| d.contains_key(key))
    })
    .await
    .unwrap();
    cm.data.unwrap().remove(key).unwrap()
}
