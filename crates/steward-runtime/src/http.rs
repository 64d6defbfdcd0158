//! Outbound HTTP (Prometheus, Slack) through reqwest with rustls on the same `ring`
//! crypto provider kube uses, so the binary carries one TLS stack.

use std::time::Duration;

/// An HTTP client with this timeout for every request.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    builder(timeout).build()
}

/// A client builder with this timeout, for callers adding certificates or headers.
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Err only when another provider was installed first; that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder().timeout(timeout)
}
