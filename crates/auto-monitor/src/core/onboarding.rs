//! Node onboarding as a pure state machine: from what the node, its exporter pod and
//! Prometheus say now, and the record kept in the MonitoringStack's status, compute
//! the new record, whether the node just finished onboarding, and whether it is late
//! with a likely cause.
//!
//! Each step's time is recorded once, the first time steward sees it, so a restart
//! (the record comes back from the status) never moves a time.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::crd::NodeOnboarding;

/// The node as the API server says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    /// Name.
    pub name: String,
    /// Since when the node is Ready (the condition's transition time); `None` when not Ready.
    pub ready_since: Option<Timestamp>,
    /// Taints as `key=value:Effect`, with whether the exporter tolerates each.
    pub untolerated_taints: Vec<String>,
    /// Pods not of this stack on the node holding host port 9100.
    pub port_9100_holders: Vec<String>,
}

/// The node's exporter pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExporterView {
    /// Pod name.
    pub pod: String,
    /// When it was bound to the node; `None` while unscheduled.
    pub scheduled_at: Option<Timestamp>,
    /// Why it is not scheduled (the PodScheduled condition's message).
    pub unschedulable: Option<String>,
    /// When it turned Ready; `None` while not Ready.
    pub ready_at: Option<Timestamp>,
    /// A container's waiting reason (ErrImagePull, CrashLoopBackOff, ...).
    pub waiting_reason: Option<String>,
    /// The image.
    pub image: String,
}

/// What Prometheus says about the node's target.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScrapeView {
    /// `up` of the node's target; `None` when Prometheus has no target for the node.
    pub up: Option<bool>,
    /// Timestamp of the newest successful scrape.
    pub last_sample: Option<Timestamp>,
    /// Mean of `up` over the last hour.
    pub availability: Option<f64>,
}

/// Why a node is not monitored yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Not Ready; nothing to expect yet.
    NodeNotReady,
    /// A taint the exporter does not tolerate.
    TaintNotTolerated(String),
    /// Another pod holds host port 9100.
    HostPortConflict(String),
    /// No exporter pod exists for the node.
    NoExporterPod,
    /// The exporter pod cannot be scheduled.
    Unschedulable(String),
    /// The image cannot be pulled.
    ImagePull(String),
    /// The exporter is not Ready (crash, probe).
    ExporterNotReady(String),
    /// Prometheus has no target for the node.
    TargetNotDiscovered,
    /// Prometheus scrapes the target and fails.
    ScrapeFailing,
}

impl Cause {
    /// Reason for Events and the status (CamelCase).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NodeNotReady => "NodeNotReady",
            Self::TaintNotTolerated(_) => "TaintNotTolerated",
            Self::HostPortConflict(_) => "HostPortConflict",
            Self::NoExporterPod => "NoExporterPod",
            Self::Unschedulable(_) => "ExporterUnschedulable",
            Self::ImagePull(_) => "ImagePull",
            Self::ExporterNotReady(_) => "ExporterNotReady",
            Self::TargetNotDiscovered => "TargetNotDiscovered",
            Self::ScrapeFailing => "ScrapeFailing",
        }
    }
}

/// Result of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The new record.
    pub record: NodeOnboarding,
    /// Seconds from Ready (or from when monitoring was installed, if later) to the
    /// first sample, when the node finished onboarding in this step.
    pub onboarded: Option<f64>,
    /// The node is past its deadline with this cause, not reported before.
    pub late: Option<Cause>,
}

fn rfc(t: Timestamp) -> String {
    t.to_string()
}

fn parse(s: Option<&String>) -> Option<Timestamp> {
    s.and_then(|s| s.parse().ok())
}

/// One step for one node. `installed_at` is when the stack was installed: a node
/// Ready before that is measured from then.
pub fn step(
    prev: Option<&NodeOnboarding>,
    node: &NodeView,
    exporter: Option<&ExporterView>,
    scrape: &ScrapeView,
    installed_at: Timestamp,
    deadline: std::time::Duration,
    now: Timestamp,
) -> Outcome {
    let mut r = prev.cloned().unwrap_or_else(|| NodeOnboarding {
        node: node.name.clone(),
        ..NodeOnboarding::default()
    });
    if r.ready_at.is_none() {
        r.ready_at = node.ready_since.map(rfc);
    }
    if let Some(e) = exporter {
        r.exporter_pod = Some(e.pod.clone());
        if r.exporter_scheduled_at.is_none() {
            r.exporter_scheduled_at = e.scheduled_at.map(rfc);
        }
        if r.exporter_ready_at.is_none() {
            r.exporter_ready_at = e.ready_at.map(rfc);
        }
    } else {
        r.exporter_pod = None;
    }
    r.target_up = scrape.up == Some(true);
    // Rounded to 0.1 %: finer changes would rewrite the status on every poll.
    r.availability = scrape.availability.map(|a| (a * 1000.0).round() / 1000.0);
    if r.target_up && r.target_up_at.is_none() {
        r.target_up_at = Some(rfc(now));
    }
    let mut onboarded = None;
    if r.first_sample_at.is_none()
        && r.target_up
        && let Some(sample) = scrape.last_sample
    {
        r.first_sample_at = Some(rfc(sample));
        if let Some(ready) = parse(r.ready_at.as_ref()) {
            let from = ready.max(installed_at);
            let secs = sample.duration_since(from).as_secs_f64().max(0.0);
            r.onboarding_seconds = Some((secs * 1000.0).round() / 1000.0);
            onboarded = Some(secs);
        }
    }
    let cause = cause(node, exporter, scrape);
    r.step = match (&cause, r.first_sample_at.is_some()) {
        (None, true) => "Monitored",
        (Some(Cause::NodeNotReady), _) => "NotReady",
        (
            Some(Cause::TaintNotTolerated(_) | Cause::HostPortConflict(_) | Cause::NoExporterPod),
            _,
        ) => "WaitingForExporter",
        (Some(Cause::Unschedulable(_) | Cause::ImagePull(_) | Cause::ExporterNotReady(_)), _) => {
            "ExporterStarting"
        }
        _ => "WaitingForScrape",
    }
    .to_string();
    let mut late = None;
    match (&cause, parse(r.ready_at.as_ref())) {
        (Some(c), Some(ready)) if *c != Cause::NodeNotReady => {
            let waited = now.duration_since(ready.max(installed_at));
            let overdue =
                waited >= SignedDuration::try_from(deadline).unwrap_or(SignedDuration::MAX);
            if overdue && r.late_cause.as_deref() != Some(c.reason()) {
                r.late_cause = Some(c.reason().to_string());
                late = Some(c.clone());
            }
        }
        (None, _) => r.late_cause = None,
        _ => {}
    }
    Outcome {
        record: r,
        onboarded,
        late,
    }
}

/// The most specific reason the node is not monitored now; `None` when it is.
pub fn cause(
    node: &NodeView,
    exporter: Option<&ExporterView>,
    scrape: &ScrapeView,
) -> Option<Cause> {
    if node.ready_since.is_none() {
        return Some(Cause::NodeNotReady);
    }
    let Some(e) = exporter else {
        return Some(if let Some(t) = node.untolerated_taints.first() {
            Cause::TaintNotTolerated(t.clone())
        } else if let Some(p) = node.port_9100_holders.first() {
            Cause::HostPortConflict(p.clone())
        } else {
            Cause::NoExporterPod
        });
    };
    if let Some(why) = &e.unschedulable {
        return Some(
            if why.contains("free ports") || !node.port_9100_holders.is_empty() {
                Cause::HostPortConflict(
                    node.port_9100_holders
                        .first()
                        .cloned()
                        .unwrap_or_else(|| why.clone()),
                )
            } else {
                Cause::Unschedulable(why.clone())
            },
        );
    }
    if let Some(w) = &e.waiting_reason
        && matches!(
            w.as_str(),
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName"
        )
    {
        return Some(Cause::ImagePull(format!("{w}: {}", e.image)));
    }
    if e.ready_at.is_none() {
        return Some(Cause::ExporterNotReady(
            e.waiting_reason
                .clone()
                .unwrap_or_else(|| "not Ready".into()),
        ));
    }
    match scrape.up {
        None => Some(Cause::TargetNotDiscovered),
        Some(false) => Some(Cause::ScrapeFailing),
        Some(true) if scrape.last_sample.is_none() => Some(Cause::ScrapeFailing),
        Some(true) => None,
    }
}

pub mod views;

#[cfg(test)]
mod tests;
