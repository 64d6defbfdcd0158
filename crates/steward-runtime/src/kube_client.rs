//! The Kubernetes client, from the same inputs kubectl reads.
//!
//! `--kube-config local|cluster|github_action` keeps the node-manager tool's modes:
//! `local` and `github_action` read a kubeconfig (`--kubeconfig`, else `KUBECONFIG`,
//! else `~/.kube/config`; `github_action` is the same lookup, kept so existing
//! workflows run unchanged), `cluster` uses the pod's service account.
//! [`KubeArgs::connect`] also asks the API server for its version, so an
//! unreachable server is reported once, at start, naming the address and where it
//! came from, instead of as a retry loop later.
//!
//! kube's default retry layer is switched off: it retries 429 up to 15 times with
//! back-off growing to minutes, which would hide a PodDisruptionBudget refusing an
//! eviction. steward classifies API errors and retries by class (see steward-kube).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// How the node-manager tool found its cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KubeConfigMode {
    /// A kubeconfig on this machine.
    #[default]
    Local,
    /// The service account of the pod this runs in.
    Cluster,
    /// A kubeconfig provided by a CI runner (same lookup as `local`).
    #[value(name = "github_action")]
    GithubAction,
}

/// Flags that choose the cluster.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeArgs {
    /// Where credentials come from: local (kubeconfig), cluster (in-cluster service account), github_action (kubeconfig from the runner).
    #[arg(
        long = "kube-config",
        env = "KUBE_CONFIG",
        value_enum,
        default_value = "local",
        global = true
    )]
    pub mode: KubeConfigMode,
    /// Path to the kubeconfig file (a colon-separated list is merged, as kubectl does).
    #[arg(long, env = "KUBECONFIG", global = true, value_name = "PATH")]
    pub kubeconfig: Option<String>,
    /// Kubeconfig context to use instead of the current one.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// How long to wait for the API server to answer at start.
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse, global = true, value_name = "DURATION")]
    pub connect_timeout: Duration,
}

/// A connected client and where its configuration came from.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // kube::Client has no Debug
pub struct Connected {
    /// The client.
    pub client: kube::Client,
    /// The API server URL.
    pub server: String,
    /// The server's version (`gitVersion`).
    pub server_version: String,
}

impl KubeArgs {
    /// Builds the client configuration without contacting the server.
    pub async fn config(&self) -> Result<(kube::Config, String)> {
        if self.mode == KubeConfigMode::Cluster {
            let mut config = kube::Config::incluster().map_err(Error::InCluster)?;
            config.default_retry = false;
            identify(&mut config);
            return Ok((config, "in-cluster service account".into()));
        }
        let paths = self.kubeconfig_paths()?;
        let shown = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let kc = read_merged(&paths)?;
        if let Some(ctx) = &self.context
            && !kc.contexts.iter().any(|c| &c.name == ctx)
        {
            let available = kc
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::UnknownContext {
                context: ctx.clone(),
                path: shown.into(),
                available,
            });
        }
        let context = self
            .context
            .clone()
            .or_else(|| kc.current_context.clone())
            .unwrap_or_default();
        let opts = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|source| Error::KubeconfigInvalid {
                path: shown.clone().into(),
                source,
            })?;
        config.default_retry = false;
        identify(&mut config);
        Ok((config, format!("kubeconfig {shown}, context {context}")))
    }

    /// Builds the client and checks that the API server answers.
    pub async fn connect(&self) -> Result<Connected> {
        let (config, origin) = self.config().await?;
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|source| Error::Client {
            server: server.clone(),
            source,
        })?;
        let unreachable = |reason: String| Error::Unreachable {
            server: server.clone(),
            origin: origin.clone(),
            reason,
        };
        let info =
            match tokio::time::timeout(self.connect_timeout, client.apiserver_version()).await {
                Ok(Ok(info)) => info,
                Ok(Err(e)) => return Err(unreachable(root_cause(&e))),
                Err(_) => {
                    return Err(unreachable(format!(
                        "no answer within {:?}",
                        self.connect_timeout
                    )));
                }
            };
        Ok(Connected {
            client,
            server,
            server_version: info.git_version,
        })
    }

    fn kubeconfig_paths(&self) -> Result<Vec<PathBuf>> {
        if let Some(list) = &self.kubeconfig {
            let paths: Vec<PathBuf> = std::env::split_paths(list)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            if !paths.is_empty() {
                return Ok(paths);
            }
        }
        let home = std::env::home_dir().ok_or(Error::NoKubeconfig)?;
        Ok(vec![home.join(".kube").join("config")])
    }
}

/// `User-Agent: steward/<version>`, so audit logs and API priority rules can tell
/// steward's requests from everyone else's.
fn identify(config: &mut kube::Config) {
    if let Ok(v) = http::HeaderValue::from_str(&format!("steward/{}", env!("CARGO_PKG_VERSION"))) {
        config.headers.push((http::header::USER_AGENT, v));
    }
}

fn read_merged(paths: &[PathBuf]) -> Result<Kubeconfig> {
    let mut merged: Option<Kubeconfig> = None;
    for path in paths {
        let kc = read_one(path)?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc).map_err(|source| Error::KubeconfigUnreadable {
                path: path.clone(),
                source,
            })?,
        });
    }
    merged.ok_or(Error::NoKubeconfig)
}

fn read_one(path: &Path) -> Result<Kubeconfig> {
    if !path.exists() {
        return Err(Error::KubeconfigMissing {
            path: path.to_path_buf(),
        });
    }
    Kubeconfig::read_from(path).map_err(|source| Error::KubeconfigUnreadable {
        path: path.to_path_buf(),
        source,
    })
}

/// The innermost error message: "connection refused" rather than a chain of
/// "client error (Connect)" wrappers.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_kubeconfig_names_the_path() {
        let args = KubeArgs {
            kubeconfig: Some("/nonexistent/steward/config".into()),
            ..KubeArgs::default()
        };
        let err = args.config().await.expect_err("must fail");
        assert!(matches!(err, Error::KubeconfigMissing { .. }));
        assert!(
            err.to_string().contains("/nonexistent/steward/config"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unknown_context_lists_the_available_ones() {
        let dir = std::env::temp_dir().join(format!("steward-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
             users:\n- name: u\n  user: {}\ncontexts:\n- name: alpha\n  context:\n    cluster: c\n    user: u\ncurrent-context: alpha\n",
        )
        .unwrap();
        let args = KubeArgs {
            kubeconfig: Some(path.display().to_string()),
            context: Some("beta".into()),
            ..KubeArgs::default()
        };
        let err = args.config().await.expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.contains("\"beta\"")
                && text.contains("alpha")
                && text.contains(&path.display().to_string()),
            "{text}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
