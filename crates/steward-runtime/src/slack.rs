//! Slack incoming-webhook notifications. A notification is never worth a failed or
//! stuck operation: every post has a short timeout, and a failure is a warning.

use std::time::Duration;

/// Posts text to a Slack webhook, or does nothing when none is configured. The URL is
/// the credential: it is never printed (`Debug` redacts it, errors drop it).
#[derive(Clone)]
pub struct Slack {
    http: Option<reqwest::Client>,
    url: Option<String>,
}

impl Slack {
    /// A notifier; `None` or an empty URL disables it.
    pub fn new(url: Option<String>) -> Self {
        let url = url.filter(|u| !u.trim().is_empty());
        let http = url.as_ref().and_then(|_| {
            crate::http::client(Duration::from_secs(5))
                .inspect_err(|e| tracing::warn!(error = %e, "no HTTP client for Slack; notifications are skipped"))
                .ok()
        });
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
                tracing::warn!(error = %without_url(e), "Slack webhook unreachable; continuing");
                false
            }
        }
    }
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// reqwest's errors carry the request URL, which for a webhook is the secret.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_url_is_in_no_error_and_no_debug_output() {
        // A closed loopback port: the connection is refused, as for a Slack outage.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let url = format!("http://127.0.0.1:{port}/services/T0/B0/s3cr3t-token");
        let http = crate::http::client(Duration::from_secs(2)).unwrap_or_default();
        let err = http.post(&url).send().await.err();
        let raw = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(raw.contains("s3cr3t-token"), "reqwest names the URL: {raw}");
        let shown = err.map(without_url).unwrap_or_default();
        assert!(
            !shown.is_empty() && !shown.contains("s3cr3t-token"),
            "{shown}"
        );
        let slack = Slack::new(Some(url));
        assert!(!format!("{slack:?}").contains("s3cr3t"), "{slack:?}");
        assert!(
            !slack.post("hello").await,
            "a refused post is not delivered"
        );
    }
}
