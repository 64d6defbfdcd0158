//! One shutdown signal for every task. The first SIGINT or SIGTERM asks every task
//! to stop at its next safe point (a drain finishes or rolls back the node it is
//! on); a second one exits at once with status 130.

use tokio_util::sync::CancellationToken;

/// A cloneable handle on the process-wide shutdown signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// A signal that nothing has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers on SIGINT or SIGTERM; a second signal exits the process.
    pub fn on_signals(&self) -> &Self {
        let token = self.0.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested; press Ctrl-C again to exit at once");
            token.cancel();
            wait_for_signal().await;
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        });
        self
    }

    /// Asks every task to stop.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    /// Whether shutdown has been asked for.
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Completes when shutdown is asked for.
    pub async fn signaled(&self) {
        self.0.cancelled().await;
    }

    /// The underlying token, for APIs that take one.
    pub fn token(&self) -> CancellationToken {
        self.0.clone()
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on the default action.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_reaches_every_clone() {
        let s = Shutdown::new();
        let c = s.clone();
        let waiter = tokio::spawn(async move { c.signaled().await });
        assert!(!s.is_triggered());
        s.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(s.is_triggered());
    }
}
