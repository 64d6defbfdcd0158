//! Webhooks: when a run ends, and when a stage fails for good, every `--notify-url`
//! receives a JSON event, signed with HMAC-SHA256 of the body under the key in
//! `--notify-secret-file` (`X-Steward-Signature-256: sha256=<hex>`, GitHub's
//! scheme, so existing verifiers work). A receiver that is down or answers 5xx,
//! 408 or 429 gets the same delivery again after 1 s, 2 s, 4 s … (at most 60 s
//! apart, 8 tries); `X-Steward-Delivery` is the same on every try, so a handler
//! that saw it once can drop repeats. Deliveries live in memory: a restart while one
//! is being retried loses it.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tracing::{debug, info, warn};

use crate::core::clock::now_ms;

/// Tries per delivery.
pub const MAX_TRIES: u32 = 8;

/// One event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Event {
    /// `run.ended` or `stage.failed`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Unique per event, the same on every try.
    pub delivery: String,
    /// The run.
    pub run_id: String,
    /// Its pipeline's name.
    pub pipeline: String,
    /// `succeeded`, `failed` or `cancelled` (the run's, or `failed` for a stage).
    pub state: String,
    /// Why, for people.
    pub message: String,
    /// The failed stage (`stage.failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Its last attempt (`stage.failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// When (ms since the epoch).
    pub timestamp_unix_ms: i64,
}

/// `sha256=<hex HMAC-SHA256 of body under key>`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a try's result means: `None` done (delivered, or refused for good), else
/// the pause before the next try. `status` is `None` when no answer came.
pub fn next_try(tries: u32, status: Option<u16>) -> Option<Duration> {
    let again = match status {
        None => true,
        Some(s) => (500..600).contains(&s) || s == 408 || s == 429,
    };
    (again && tries < MAX_TRIES).then(|| Duration::from_secs((1u64 << (tries - 1).min(6)).min(60)))
}

/// Sends events to the webhooks; disabled when built without URLs.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    client: reqwest::Client,
    urls: Vec<reqwest::Url>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may carry a token and the key is secret: neither is printed.
        f.debug_struct("Inner")
            .field("urls", &self.urls.len())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Sends to `urls`, signing with `key`.
    pub fn new(urls: Vec<reqwest::Url>, key: Vec<u8>) -> Result<Self, reqwest::Error> {
        if urls.is_empty() {
            return Ok(Self::default());
        }
        let client = steward_runtime::http::builder(Duration::from_secs(10))
            .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            inner: Some(Arc::new(Inner { client, urls, key })),
        })
    }

    /// A run ended in `state` (`succeeded`, `failed`, `cancelled`) for `message`.
    pub fn run_ended(&self, run: &str, pipeline: &str, state: &str, message: &str) {
        self.send(Event {
            kind: "run.ended",
            delivery: format!("{run}.end"),
            run_id: run.into(),
            pipeline: pipeline.into(),
            state: state.into(),
            message: message.into(),
            stage: None,
            attempt: None,
            timestamp_unix_ms: now_ms(),
        });
    }

    /// Stage `stage` of `run` failed for good at `attempt`.
    pub fn stage_failed(
        &self,
        run: &str,
        pipeline: &str,
        stage: &str,
        attempt: u32,
        message: &str,
    ) {
        self.send(Event {
            kind: "stage.failed",
            delivery: format!("{run}.{stage}.{attempt}"),
            run_id: run.into(),
            pipeline: pipeline.into(),
            state: "failed".into(),
            message: message.into(),
            stage: Some(stage.into()),
            attempt: Some(attempt),
            timestamp_unix_ms: now_ms(),
        });
    }

    fn send(&self, e: Event) {
        let Some(inner) = &self.inner else { return };
        let body = serde_json::to_vec(&e).expect("an event serializes");
        let signature = sign(&inner.key, &body);
        for (i, url) in inner.urls.iter().enumerate() {
            let (client, url, body, signature, e) = (
                inner.client.clone(),
                url.clone(),
                body.clone(),
                signature.clone(),
                e.clone(),
            );
            tokio::spawn(async move {
                deliver(&client, &url, i, &body, &signature, &e).await;
            });
        }
    }
}

async fn deliver(
    client: &reqwest::Client,
    url: &reqwest::Url,
    receiver: usize,
    body: &[u8],
    signature: &str,
    e: &Event,
) {
    let host = url.host_str().unwrap_or("?").to_string();
    for tries in 1.. {
        let sent = client
            .post(url.clone())
            .header("content-type", "application/json")
            .header("x-steward-event", e.kind)
            .header("x-steward-delivery", &e.delivery)
            .header("x-steward-signature-256", signature)
            .body(body.to_vec())
            .send()
            .await;
        let status = match sent {
            Ok(r) => Some(r.status().as_u16()),
            Err(err) => {
                debug!(receiver, %host, error = %err.without_url(), "webhook not reached");
                None
            }
        };
        match next_try(tries, status) {
            None if status.is_some_and(|s| (200..300).contains(&s)) => {
                info!(receiver, %host, delivery = %e.delivery, tries, "webhook delivered");
                return;
            }
            None => {
                warn!(receiver, %host, delivery = %e.delivery, tries, status, "webhook not delivered; giving up");
                return;
            }
            Some(pause) => tokio::time::sleep(pause).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn what_a_try_means() {
        let s = Duration::from_secs;
        let cases = [
            (1, Some(200), None),
            (1, Some(204), None),
            (1, Some(400), None),
            (1, Some(404), None),
            (1, Some(500), Some(s(1))),
            (2, Some(503), Some(s(2))),
            (3, None, Some(s(4))),
            (1, Some(429), Some(s(1))),
            (1, Some(408), Some(s(1))),
            (7, None, Some(s(60))),
            (MAX_TRIES, None, None),
            (MAX_TRIES, Some(500), None),
        ];
        for (tries, status, want) in cases {
            assert_eq!(
                next_try(tries, status),
                want,
                "try {tries}, status {status:?}"
            );
        }
    }
}
