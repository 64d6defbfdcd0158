//! Cleaning up after MonitoringStacks that are gone.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::Controller;
use crate::error::Error;
use crate::install;

impl Controller {
    /// A stack went away (or this is the first pass): sweep its cluster-scoped
    /// objects and uninstall its helm release (`crate::uninstall`).
    pub(super) async fn sweep(&mut self) {
        let live: BTreeSet<String> = self
            .stacks
            .state()
            .iter()
            .map(|m| format!("{}.{}", m.namespace().unwrap_or_default(), m.name_any()))
            .collect();
        if self.known.as_ref() == Some(&live) {
            return;
        }
        let ns = self.cfg.namespace.as_deref();
        let swept = async {
            let objects = install::delete_orphans(&self.client, &live, ns).await?;
            let releases =
                crate::uninstall::sweep_releases(&self.client, &self.cfg.helm, &live, ns).await?;
            Ok::<_, Error>((objects, releases))
        };
        match swept.await {
            Ok((objects, releases)) => {
                for d in objects {
                    tracing::info!(object = %d, "deleted a cluster-scoped object of a removed MonitoringStack");
                }
                for r in releases {
                    tracing::info!(release = %r, "uninstalled the helm release of a removed MonitoringStack");
                }
                self.known = Some(live);
            }
            Err(e) => {
                tracing::warn!(error = %e, "sweeping what removed MonitoringStacks left failed; retrying")
            }
        }
    }
}
