//! The Prometheus flags shared by `drain` and `karpenter allocate-rate`.

use std::path::PathBuf;
use std::time::Duration;

use super::{Access, Prometheus};
use crate::core::alloc::Capacity;
use crate::core::selector::Selector;
use crate::error::{Error, Result};

/// Where Prometheus (or Mimir, Thanos, Amazon Managed Prometheus behind a proxy)
/// is, which series are this cluster's, and how to authenticate. Secrets come
/// from files only.
#[derive(Debug, Clone, clap::Args)]
pub struct PrometheusArgs {
    /// Prometheus or Mimir address (for Mimir include the /prometheus prefix).
    #[arg(
        long,
        env = "PROMETHEUS_ADDRESS",
        default_value = "http://localhost:8080/prometheus"
    )]
    pub prometheus_address: String,
    /// Tenant sent as X-Scope-OrgID (Mimir multi-tenancy).
    #[arg(
        long,
        env = "PROMETHEUS_SCOPE_ORG_ID",
        default_value = "organization-dev"
    )]
    pub prometheus_org_id: String,
    /// Label matchers added to every query, for a tenant holding several clusters'
    /// series (e.g. 'cluster="prod-eks"'); empty: none.
    #[arg(
        long,
        env = "PROMETHEUS_SELECTOR",
        default_value = "",
        value_name = "MATCHERS"
    )]
    pub prometheus_selector: String,
    /// File holding a bearer token (read again for every query, so a rotated
    /// token is picked up).
    #[arg(
        long,
        env = "PROMETHEUS_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with_all = ["prometheus_username", "prometheus_sigv4"]
    )]
    pub prometheus_token_file: Option<PathBuf>,
    /// User for basic auth; the password comes from --prometheus-password-file.
    #[arg(
        long,
        env = "PROMETHEUS_USERNAME",
        requires = "prometheus_password_file"
    )]
    pub prometheus_username: Option<String>,
    /// File holding the basic-auth password.
    #[arg(
        long,
        env = "PROMETHEUS_PASSWORD_FILE",
        value_name = "PATH",
        requires = "prometheus_username"
    )]
    pub prometheus_password_file: Option<PathBuf>,
    /// CA bundle (PEM) to verify Prometheus's certificate with, instead of the
    /// system's.
    #[arg(long, env = "PROMETHEUS_CA_FILE", value_name = "PATH")]
    pub prometheus_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; with --prometheus-key-file.
    #[arg(
        long,
        env = "PROMETHEUS_CERT_FILE",
        value_name = "PATH",
        requires = "prometheus_key_file"
    )]
    pub prometheus_cert_file: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(
        long,
        env = "PROMETHEUS_KEY_FILE",
        value_name = "PATH",
        requires = "prometheus_cert_file"
    )]
    pub prometheus_key_file: Option<PathBuf>,
    /// Extra header sent with every query, 'Name: value' (repeatable; env: one per
    /// line). Not for credentials: Authorization is refused here.
    #[arg(
        long,
        env = "PROMETHEUS_HEADERS",
        value_delimiter = '\n',
        value_name = "HEADER"
    )]
    pub prometheus_header: Vec<String>,
    /// Sign every query with AWS SigV4 (Amazon Managed Service for Prometheus);
    /// credentials and region from the usual AWS chain (environment, profile, IRSA,
    /// EKS Pod Identity, instance metadata), never from a flag.
    #[arg(long, env = "PROMETHEUS_SIGV4", conflicts_with = "prometheus_username")]
    pub prometheus_sigv4: bool,
    /// Region to sign for; default: the AWS chain's (AWS_REGION, the profile).
    #[arg(long, env = "PROMETHEUS_SIGV4_REGION", requires = "prometheus_sigv4")]
    pub prometheus_sigv4_region: Option<String>,
    /// Service name to sign for.
    #[arg(long, env = "PROMETHEUS_SIGV4_SERVICE", default_value = "aps")]
    pub prometheus_sigv4_service: String,
    /// The NodePool's capacity, the allocate rate's denominator: `allocatable` is
    /// karpenter_nodes_allocatable summed over its nodes (what pods can be placed
    /// in); `usage` is the node-manager tool's karpenter_nodepools_usage
    /// (karpenter_nodepool_usage before 1.0), the nodes' raw capacity without the
    /// nodes being deleted, which can read above 100 % mid-rotation.
    #[arg(long, env = "CAPACITY_METRIC", value_enum, default_value_t)]
    pub capacity_metric: Capacity,
}

impl PrometheusArgs {
    /// A client for these flags; an unusable value is an error naming its flag.
    pub fn connect(&self) -> Result<Prometheus> {
        let selector =
            Selector::parse(&self.prometheus_selector).map_err(|reason| Error::Flag {
                flag: "--prometheus-selector",
                reason,
            })?;
        let access = Access {
            token_file: self.prometheus_token_file.clone(),
            basic: self
                .prometheus_username
                .clone()
                .zip(self.prometheus_password_file.clone()),
            ca_file: self.prometheus_ca_file.clone(),
            client_cert: self
                .prometheus_cert_file
                .clone()
                .zip(self.prometheus_key_file.clone()),
            headers: self
                .prometheus_header
                .iter()
                .filter(|h| !h.trim().is_empty())
                .cloned()
                .collect(),
            sigv4: self.prometheus_sigv4.then(|| {
                std::sync::Arc::new(super::sigv4::SigV4::new(
                    self.prometheus_sigv4_region.clone(),
                    self.prometheus_sigv4_service.clone(),
                ))
            }),
        };
        Prometheus::new(
            &self.prometheus_address,
            &self.prometheus_org_id,
            selector,
            access,
            Duration::from_secs(15),
        )
        .map(|p| p.with_capacity(self.capacity_metric))
    }
}
