//! A real Prometheus (Debian's `prometheus`) for tests: scrapes the given targets
//! every second, listens on a free loopback port ([`crate::free_port`]), dies with the
//! test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    url: String,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) under `job`.
    pub async fn start(job: &str, targets: &[String]) -> Result<Self> {
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let scrape = format!("- job_name: {job}\n  static_configs:\n  - targets: [{list}]\n");
        Self::start_with(&scrape, None).await
    }

    /// Starts Prometheus with `scrape_configs` (a YAML list) and, when given, a
    /// `--web.config.file` (basic auth, TLS); with one, [`Self::url`] is still
    /// `http://` and callers who set TLS use `https://` with [`Self::port`].
    pub async fn start_with(scrape_configs: &str, web_config: Option<&str>) -> Result<Self> {
        let port = steward_sim::free_port()?;
        let dir = std::env::temp_dir().join(format!("steward-prom-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_configs}"
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let mut cmd = Command::new("prometheus");
        if let Some(web) = web_config {
            std::fs::write(dir.join("web.yml"), web)?;
            cmd.arg(format!(
                "--web.config.file={}",
                dir.join("web.yml").display()
            ));
        }
        let child = cmd
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context(
                "starting prometheus (installed by hack/setup.sh from Debian's prometheus package)",
            )?;
        let mut p = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir,
        };
        let http = crate::http();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let log = p.dir.join("prometheus.log");
        loop {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "prometheus exited: {status}; see {}",
                    p.dir.join("prometheus.log").display()
                );
            }
            // Behind basic auth or TLS /-/ready cannot be asked: its log says it.
            let ready = if web_config.is_some() {
                std::fs::read_to_string(&log)?.contains("Server is ready to receive web requests")
            } else {
                http.get(format!("{}/-/ready", p.url))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            };
            if ready {
                return Ok(p);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("Prometheus not ready after 30s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port it listens on (loopback).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until `query` returns at least one sample.
    pub async fn wait_for_series(&self, query: &str, timeout: Duration) -> Result<()> {
        let http = crate::http();
        crate::wait::until(
            timeout,
            &format!("Prometheus series for {query}"),
            || async {
                let v: serde_json::Value = http
                    .get(format!("{}/api/v1/query", self.url))
                    .query(&[("query", query)])
                    .send()
                    .await?
                    .json()
                    .await?;
                Ok(v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty()))
            },
        )
        .await
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
