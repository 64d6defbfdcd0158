//! AWS Signature Version 4 for Amazon Managed Service for Prometheus (service
//! `aps`), as Prometheus's own `sigv4` config and Grafana do. Credentials and the
//! region come from the usual AWS chain (aws-config): the environment
//! (`AWS_ACCESS_KEY_ID`, ...), profile files, IRSA's web identity token, EKS Pod
//! Identity or ECS container credentials, EC2 instance metadata; they are cached
//! and refreshed by that chain, never read from a flag, never logged. Each query is
//! signed just before it is sent, over the headers it carries then.

use std::time::SystemTime;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::header::{HeaderName, HeaderValue};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// `--prometheus-sigv4`: what to sign as; the AWS chain is loaded at the first query.
#[derive(Debug)]
pub struct SigV4 {
    /// `--prometheus-sigv4-region`; `None`: the chain's (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// The signing name: `aps` for Amazon Managed Service for Prometheus.
    pub service: String,
    loaded: OnceCell<(SharedCredentialsProvider, Region)>,
}

fn flag(reason: String) -> Error {
    Error::Flag {
        flag: "--prometheus-sigv4",
        reason,
    }
}

impl SigV4 {
    /// Signs as `service` in `region` (or the chain's region).
    pub fn new(region: Option<String>, service: String) -> Self {
        Self {
            region,
            service,
            loaded: OnceCell::new(),
        }
    }

    async fn loaded(&self) -> Result<&(SharedCredentialsProvider, Region)> {
        self.loaded
            .get_or_try_init(|| async {
                // rustls with ring, as the rest of steward (no aws-lc build).
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
                if let Some(r) = &self.region {
                    loader = loader.region(Region::new(r.clone()));
                }
                let conf = loader.load().await;
                let region = conf.region().cloned().ok_or_else(|| {
                    flag("no AWS region: pass --prometheus-sigv4-region or set AWS_REGION".into())
                })?;
                let creds = conf
                    .credentials_provider()
                    .ok_or_else(|| flag("no AWS credentials provider".into()))?;
                Ok((creds, region))
            })
            .await
    }

    /// Adds the signature headers (`Authorization`, `X-Amz-Date`, and
    /// `X-Amz-Security-Token` for temporary credentials) to `req`.
    pub async fn sign(&self, req: &mut reqwest::Request) -> Result<()> {
        let (provider, region) = self.loaded().await?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| flag(format!("AWS credentials: {}", super::root(&e))))?;
        let identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region.as_ref())
            .name(&self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| flag(format!("signing: {e}")))?
            .into();
        let headers: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            req.method().as_str(),
            req.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(&[]),
        )
        .map_err(|e| flag(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| flag(format!("signing: {e}")))?
            .into_parts();
        let (headers, _) = instructions.into_parts();
        for h in headers {
            let name = HeaderName::from_bytes(h.name().as_bytes())
                .map_err(|e| flag(format!("signing: {e}")))?;
            let value =
                HeaderValue::from_str(h.value()).map_err(|e| flag(format!("signing: {e}")))?;
            req.headers_mut().insert(name, value);
        }
        Ok(())
    }
}
