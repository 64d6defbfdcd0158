//! What a person watching a drain sees: on a terminal, one live bar per node (pods
//! moved of pods at start, and which budget blocks it now); elsewhere, log lines.

use std::collections::BTreeMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::core::report::Progress;

/// Renders progress events.
#[derive(Debug)]
pub struct Display {
    live: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
}

impl Display {
    /// A live display when `live`, else log lines.
    pub fn new(live: bool) -> Self {
        Self {
            live: live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: BTreeMap::new(),
        }
    }

    /// Shows one event.
    pub fn show(&mut self, p: &Progress) {
        let Some(multi) = &self.live else {
            return log(p);
        };
        match p {
            Progress::NodeStarted { node, pods } => {
                let bar = multi.add(ProgressBar::new(u64::try_from(*pods).unwrap_or(0)));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:<40} [{bar:30}] {pos:>3}/{len:3} pods {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(node.clone());
                self.bars.insert(node.clone(), bar);
            }
            Progress::PodEvicted { node, .. } | Progress::PodDeleted { node, .. } => {
                if let Some(b) = self.bars.get(node) {
                    b.inc(1);
                    b.set_message("");
                }
            }
            Progress::PodBlocked { node, pdb, .. } => {
                if let Some(b) = self.bars.get(node) {
                    b.set_message(format!("blocked by PDB {}", pdb.as_deref().unwrap_or("?")));
                }
            }
            Progress::PodFailed { node, pod, reason } => {
                if let Some(b) = self.bars.get(node) {
                    b.set_message(format!("{pod}: {reason}"));
                }
            }
            Progress::Remaining { node, pods } => {
                if let (Some(b), 0) = (self.bars.get(node), pods) {
                    b.finish_with_message("drained");
                }
            }
        }
    }

    /// Leaves the bars as they are.
    pub fn finish(&mut self) {
        for b in self.bars.values() {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

fn log(p: &Progress) {
    match p {
        Progress::NodeStarted { node, pods } => tracing::info!(%node, pods, "draining node"),
        Progress::Remaining { node, pods } => tracing::info!(%node, pods, "pods left on node"),
        Progress::PodBlocked { .. }
        | Progress::PodEvicted { .. }
        | Progress::PodDeleted { .. }
        | Progress::PodFailed { .. } => {}
    }
}

/// Prints `report` as JSON or YAML, or `line` for people (`-o text`).
pub fn print_report(output: steward_runtime::Output, report: &impl serde::Serialize, line: &str) {
    match output.render(report) {
        None => println!("{line}"),
        Some(doc) => println!("{}", doc.unwrap_or_default().trim_end()),
    }
}
