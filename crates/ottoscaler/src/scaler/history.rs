//! The writer of a run's progress history: whenever the history grows, all of it is
//! written into the run's record, and only then shown to clients
//! ([`Progress::show`]). So what a client has seen survives a crash with the same
//! sequence numbers, and a new process continues the numbering. Writes coalesce:
//! messages emitted during a write go out together in the next one.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use crate::backend::Backend;
use crate::core::history;
use crate::progress::Progress;

/// How long a failing write is retried before the messages are shown unwritten
/// (clients are not held up longer; a crash then would lose them).
const PATIENCE: Duration = Duration::from_secs(30);

/// Writes `run`'s history as it grows, until its final message is written.
pub(super) async fn keep_history(backend: Arc<dyn Backend>, run: String, progress: Arc<Progress>) {
    let mut appended = progress.appended();
    loop {
        appended.borrow_and_update();
        let Some(all) = progress.unwritten() else {
            if appended.changed().await.is_err() {
                return;
            }
            continue;
        };
        let ended = all.last().is_some_and(|p| p.r#final);
        write(&*backend, &run, &history::encode(&all)).await;
        progress.show(all.len() as u64);
        if ended {
            return;
        }
    }
}

async fn write(backend: &dyn Backend, run: &str, bytes: &[u8]) {
    let give_up = Instant::now() + PATIENCE;
    let mut delay = Duration::from_millis(100);
    loop {
        match backend.put_history(run, bytes).await {
            Ok(()) => return,
            Err(e) if e.is_not_found() => {
                debug!(
                    run,
                    "the run's record is gone; its history is no longer written"
                );
                return;
            }
            Err(e) if Instant::now() >= give_up => {
                warn!(run, error = %e, "the progress history could not be written; showing it unwritten (a restart now would lose it)");
                return;
            }
            Err(e) => {
                debug!(run, error = %e, "writing the progress history failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
