//! Slack incoming-webhook notifications. A notification is never worth a failed or
//! stuck operation: every post has a short timeout, and a failure is a warning.

use std::time::Duration;

/// Posts text to a Slack webhook, or does nothing when none is configured.
#[derive(Debug, Clone)]
pub struct Slack {
    http: Option<reqwest::Client>,
    url: Option<String>,
}

impl Slack {
    /// A notifier; `None` or an empty URL disables it.
    pub fn new(url: Option<String>) -> Self {
        let url = url.filter(|u| !u.trim().is_empty());
        let http = url
            .as_ref()
            .and_then(|_| crate::http::client(Duration::from_secs(5)).ok());
        Self { http, url }
    }

    /// Whether a webhook is configured.
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// Posts `text`; returns whether Slack accepted it. Failures are logged, not raised.
    pub async fn post(&self, text: &str) -> bool {
        let (Some(http), Some(url)) = (&self.http, &self.url) else {
            return false;
        };
        match http
            .post(url)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::warn!(status = %r.status(), "Slack webhook refused the notification; continuing");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "Slack webhook unreachable; continuing");
                false
            }
        }
    }
}
