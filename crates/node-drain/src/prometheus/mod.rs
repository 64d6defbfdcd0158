//! A small Prometheus/Mimir instant-query client. Every error names the query and
//! the address, because the usual fix is a port-forward, an org id or a credential.
//! [`access`] holds how it authenticates.

mod access;
mod args;
mod sigv4;

use std::time::Duration;

pub use access::Access;
pub use args::PrometheusArgs;

use crate::core::alloc::{Allocation, Capacity, Generation, Resource, ResourceAllocation};
use crate::core::selector::Selector;
use crate::error::{Error, Result};

/// Where Prometheus is and which tenant to ask for.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    base: String,
    org_id: String,
    selector: Selector,
    access: Access,
    capacity: Capacity,
}

impl Prometheus {
    /// A client for `address` (for Mimir, including its `/prometheus` prefix) whose
    /// queries all carry `selector`. Fails naming the flag when a file of `access`
    /// cannot be read.
    pub fn new(
        address: &str,
        org_id: &str,
        selector: Selector,
        access: Access,
        timeout: Duration,
    ) -> Result<Self> {
        let http = access.client(timeout)?;
        Ok(Self {
            http,
            base: address.trim_end_matches('/').to_string(),
            org_id: org_id.to_string(),
            selector,
            access,
            capacity: Capacity::default(),
        })
    }

    /// The same client, reading the NodePool's capacity from `capacity`.
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// The label matchers every query carries.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// The address queried.
    pub fn address(&self) -> &str {
        &self.base
    }

    /// Sum of an instant vector's samples, or `None` when it has none.
    pub async fn query_sum(&self, query: &str) -> Result<Option<f64>> {
        tracing::info!(%query, "query");
        let err = |reason: String, unreachable: bool| Error::Prometheus {
            address: self.base.clone(),
            query: query.to_string(),
            reason,
            unreachable,
        };
        // RFC 3986 encoding (%20, not form encoding's +): what a SigV4 verifier
        // canonicalizes to, and Prometheus reads it alike.
        let encoded = percent_encoding::utf8_percent_encode(query, QUERY);
        let req = self
            .http
            .get(format!("{}/api/v1/query?query={encoded}", self.base))
            .header("X-Scope-OrgID", &self.org_id);
        let mut req = self
            .access
            .credentials()?
            .apply(req)
            .build()
            .map_err(|e| err(root(&e), false))?;
        if let Some(signer) = &self.access.sigv4 {
            signer.sign(&mut req).await?;
        }
        let resp = self
            .http
            .execute(req)
            .await
            .map_err(|e| err(root(&e), true))?;
        let status = resp.status();
        if matches!(status.as_u16(), 401 | 403) {
            let why = format!(
                "HTTP {status}: Prometheus refused the credentials; check --prometheus-token-file, --prometheus-username/--prometheus-password-file, --prometheus-cert-file or the AWS credentials of --prometheus-sigv4"
            );
            return Err(err(why, false));
        }
        // A 5xx is Prometheus (or the proxy before it) not answering the query.
        let down = status.is_server_error();
        let body: serde_json::Value = resp.json().await.map_err(|e| {
            err(
                format!("HTTP {status}, body is not Prometheus JSON ({})", root(&e)),
                down,
            )
        })?;
        if body["status"] != "success" {
            let why = body["error"].as_str().unwrap_or("query failed");
            return Err(err(format!("HTTP {status}: {why}"), down));
        }
        let results = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if results.is_empty() {
            return Ok(None);
        }
        let mut sum = 0.0;
        for r in &results {
            let v = r["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| err(format!("unexpected sample {r}"), false))?;
            sum += v;
        }
        Ok(Some(sum))
    }

    /// Finds which Karpenter metric generation exists for the NodePool.
    pub async fn detect_generation(&self, nodepool: &str) -> Result<Generation> {
        for generation in [Generation::V1, Generation::Legacy] {
            if self
                .query_sum(&generation.probe_query(nodepool, &self.selector))
                .await?
                .is_some_and(|n| n > 0.0)
            {
                return Ok(generation);
            }
        }
        Err(Error::NoKarpenterMetrics {
            address: self.base.clone(),
            nodepool: nodepool.to_string(),
        })
    }

    /// Reads the NodePool's allocation; an empty answer is an error naming the query.
    pub async fn allocation(&self, nodepool: &str) -> Result<Allocation> {
        let generation = self.detect_generation(nodepool).await?;
        let read = |resource: Resource| async move {
            let usage_q =
                generation.capacity_query(self.capacity, nodepool, resource, &self.selector);
            let requests_q = generation.requests_query(nodepool, resource, &self.selector);
            let usage = self
                .query_sum(&usage_q)
                .await?
                .ok_or_else(|| self.empty(&usage_q))?;
            let requests = self
                .query_sum(&requests_q)
                .await?
                .ok_or_else(|| self.empty(&requests_q))?;
            Ok::<_, Error>(ResourceAllocation { usage, requests })
        };
        Ok(Allocation {
            generation,
            capacity: self.capacity,
            memory: read(Resource::Memory).await?,
            cpu: read(Resource::Cpu).await?,
        })
    }

    fn empty(&self, query: &str) -> Error {
        Error::Prometheus {
            address: self.base.clone(),
            query: query.to_string(),
            reason: "no samples".into(),
            unreachable: false,
        }
    }
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) fn root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
