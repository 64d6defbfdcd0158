//! The flags of `steward graceful-drain run`, and what they mean for the webhook
//! registration and the certificate's names.

use std::net::SocketAddr;
use std::time::Duration;

use steward_runtime::admin::AdminArgs;
use steward_runtime::kube_client::KubeArgs;
use steward_runtime::leader::LeaderArgs;

use crate::webhook::{Endpoint, Registration, WebhookConfig};

const RUN_EXAMPLES: &str = "Examples:
  # In the cluster (a Deployment of 2 replicas): namespace and identity from POD_NAMESPACE and POD_NAME
  steward graceful-drain run --kube-config cluster
  # Outside the cluster, one tenant's namespace only, the API server calling this host
  steward graceful-drain run --namespace steward --watch-namespace shop \\
    --webhook-url https://10.0.0.5:8443";

/// `steward graceful-drain run`.
///
/// The shared leader flags (`LeaderArgs`) are flattened; the Lease lives in
/// steward's own namespace, so its `--lease-namespace` is spelled `--namespace`
/// here (default `steward`), as it always was, and `--lease-namespace` and
/// `--identity` stay as aliases.
#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("lease_namespace", |a| a
        .long("namespace")
        .visible_alias("lease-namespace")
        .default_value("steward")
        .help("steward's namespace: its Lease, ConfigMap and certificate Secret live here, and the webhook never sees it")),
    mut_arg("lease_identity", |a| a
        .visible_alias("identity")
        .help("Identity of this replica in the Lease and its Events (defaults to hostname-pid)")),
    after_help = RUN_EXAMPLES,
)]
pub struct RunArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Name of the Lease for leader election.
    #[arg(long, default_value = "steward-graceful-drain", value_name = "NAME")]
    pub lease_name: String,
    /// ConfigMap (key config.yaml) holding the configuration; watched and reloaded live.
    #[arg(long, default_value = "steward-graceful-drain", value_name = "NAME")]
    pub config_map: String,
    /// Address the webhook serves HTTPS on.
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR")]
    pub webhook_addr: SocketAddr,
    /// Name of the ValidatingWebhookConfiguration steward writes.
    #[arg(long, default_value = "steward-graceful-drain", value_name = "NAME")]
    pub webhook_name: String,
    /// Who owns the ValidatingWebhookConfiguration: `full` (steward writes all of it,
    /// creating it if missing) or `ca-bundle` (someone else, e.g. the Helm chart,
    /// owns it; steward only keeps its caBundle current and never creates it).
    #[arg(long, value_enum, default_value_t = WebhookConfig::Full, value_name = "OWNER")]
    pub webhook_config: WebhookConfig,
    /// URL the API server calls instead of the Service (for a webhook outside the cluster).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Service in steward's namespace in front of the webhook (port 443).
    #[arg(long, default_value = "steward-graceful-drain", value_name = "NAME")]
    pub webhook_service: String,
    /// Seconds the API server waits for the webhook before letting the eviction through.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=30))]
    pub webhook_timeout: i32,
    /// Namespace label (key=value) a namespace must carry for its evictions to reach the webhook; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    pub webhook_namespace_label: Vec<(String, String)>,
    /// Only this namespace: its evictions alone reach the webhook and the controller drains only its pods (one steward per tenant). Default: every namespace.
    #[arg(long, value_name = "NS")]
    pub watch_namespace: Option<String>,
    /// Namespaces whose evictions never reach the webhook, beside kube-system and steward's own; repeatable.
    #[arg(long, value_name = "NS")]
    pub exclude_namespace: Vec<String>,
    /// Secret holding the webhook CA and serving certificate.
    #[arg(
        long,
        default_value = "steward-graceful-drain-tls",
        value_name = "NAME"
    )]
    pub tls_secret: String,
    /// Who issues the webhook certificate: `self` (steward makes a CA, writes the Secret, rotates it) or `secret` (cert-manager or anyone writes tls.crt, tls.key and ca.crt into --tls-secret; steward only reads and follows it).
    #[arg(long, value_enum, default_value_t = TlsSource::SelfSigned, value_name = "SOURCE")]
    pub tls_source: TlsSource,
    /// Validity of the webhook certificate; renewed when a third is left.
    #[arg(long, default_value = "2160h", value_parser = steward_runtime::duration::parse, value_name = "DURATION")]
    pub cert_validity: Duration,
    /// Pods per page when listing pod metadata (at start and after a broken watch);
    /// smaller pages lower peak memory, larger ones mean fewer requests.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000), value_name = "N")]
    pub list_page_size: u32,
    /// After a refused final eviction, no new drain of that pod for this long.
    #[arg(long, default_value = "30s", value_parser = steward_runtime::duration::parse, value_name = "DURATION")]
    pub restore_backoff: Duration,
}

/// Who issues the webhook certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsSource {
    /// steward's own CA, in a Secret it writes and rotates.
    #[value(name = "self")]
    SelfSigned,
    /// A Secret someone else writes (a cert-manager Certificate's secretName).
    Secret,
}

fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("\"{s}\" is not KEY=VALUE"))
}

impl RunArgs {
    /// steward's namespace (its Lease, ConfigMap and Secret).
    pub fn namespace(&self) -> &str {
        &self.leader.lease_namespace
    }

    /// This replica's identity: `--identity`, else `hostname-pid`.
    pub(super) fn identity(&self) -> String {
        self.leader
            .lease_identity
            .clone()
            .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()))
    }

    pub(super) fn registration(&self) -> Registration {
        let mut excluded = vec!["kube-system".to_string(), self.namespace().to_string()];
        excluded.extend(self.exclude_namespace.iter().cloned());
        Registration {
            name: self.webhook_name.clone(),
            owner: self.webhook_config,
            endpoint: match &self.webhook_url {
                Some(url) => Endpoint::Url(url.clone()),
                None => Endpoint::Service {
                    namespace: self.namespace().to_string(),
                    name: self.webhook_service.clone(),
                    port: 443,
                },
            },
            timeout_seconds: self.webhook_timeout,
            excluded_namespaces: excluded,
            namespace_labels: self
                .webhook_namespace_label
                .iter()
                .cloned()
                .chain(
                    self.watch_namespace
                        .iter()
                        .map(|ns| ("kubernetes.io/metadata.name".to_string(), ns.clone())),
                )
                .collect(),
        }
    }

    pub(super) fn sans(&self) -> Vec<String> {
        let (svc, ns) = (&self.webhook_service, self.namespace());
        let mut sans = vec![
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
            "localhost".into(),
            "127.0.0.1".into(),
        ];
        if let Some(host) = self
            .webhook_url
            .as_deref()
            .and_then(|u| u.split("://").nth(1))
            .and_then(|rest| rest.split(['/', ':']).next())
            .filter(|h| !h.is_empty() && !sans.iter().any(|s| s == h))
        {
            sans.push(host.to_string());
        }
        sans
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "steward".into(), |h| h.trim().to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(argv: &[&str]) -> RunArgs {
        Cli::try_parse_from(std::iter::once("run").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .run
    }

    /// The Lease lives in steward's namespace; the old spellings and the shared
    /// leader flags mean the same.
    #[test]
    fn namespace_identity_and_lease_flags() {
        // clap reads POD_NAMESPACE and POD_NAME; in a pod they would be the answer.
        if std::env::var_os("POD_NAMESPACE").is_some() || std::env::var_os("POD_NAME").is_some() {
            return;
        }
        let table: [(&[&str], &str, Option<&str>, u64); 5] = [
            (&[], "steward", None, 15),
            (
                &["--namespace", "ops", "--identity", "a"],
                "ops",
                Some("a"),
                15,
            ),
            (
                &["--lease-namespace", "ops", "--lease-identity", "b"],
                "ops",
                Some("b"),
                15,
            ),
            (&["--lease-duration", "30"], "steward", None, 30),
            (
                &["--namespace=x", "--identity=c", "--lease-duration=4"],
                "x",
                Some("c"),
                4,
            ),
        ];
        for (argv, ns, id, secs) in table {
            let a = parse(argv);
            assert_eq!(a.namespace(), ns, "{argv:?}");
            assert_eq!(a.leader.lease_identity.as_deref(), id, "{argv:?}");
            assert_eq!(a.leader.lease_duration, secs, "{argv:?}");
        }
        let a = parse(&["--namespace", "ops", "--webhook-service", "gd"]);
        assert_eq!(a.sans()[0], "gd.ops.svc");
        assert!(
            a.registration()
                .excluded_namespaces
                .contains(&"ops".to_string())
        );
    }
}
