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
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) under `job`.
    pub async fn start(job: &str, targets: &[String]) -> Result<Self> {
        let port = steward_sim::free_port()?;
        let dir = std::env::temp_dir().join(format!("steward-prom-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: {job}\n  static_configs:\n  - targets: [{list}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
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
            dir,
        };
        let http = crate::http();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "prometheus exited: {status}; see {}",
                    p.dir.join("prometheus.log").display()
                );
            }
            if http
                .get(format!("{}/-/ready", p.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
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
