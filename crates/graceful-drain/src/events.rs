//! Every Event graceful drain publishes, declared once: reason, type and note.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use steward_runtime::{Lang, Localized};

use crate::messages::Msg;

/// Name of the reporting controller and the field manager.
pub const CONTROLLER: &str = "steward-graceful-drain";

/// The Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The pod left load balancing.
    DrainStarted,
    /// A StatefulSet pod waits its turn.
    DrainQueued,
    /// The drain probe fails; the drain waits until its maximum.
    ProbeFailing,
    /// The pod drained and was evicted.
    Drained,
    /// The maximum wait passed; evicted anyway.
    DrainTimedOut,
    /// A PodDisruptionBudget refuses the eviction.
    EvictionBlocked,
    /// The pod was put back in service.
    Restored,
    /// The ConfigMap was rejected.
    InvalidConfig,
    /// A VPA in Recreate mode could resize in place instead of evicting.
    InPlaceResizeAvailable,
}

impl Reason {
    fn parts(self) -> (&'static str, EventType, &'static str) {
        match self {
            Self::DrainStarted => ("DrainStarted", EventType::Normal, "Isolate"),
            Self::DrainQueued => ("DrainQueued", EventType::Normal, "Queue"),
            Self::ProbeFailing => ("DrainProbeFailing", EventType::Warning, "Probe"),
            Self::Drained => ("Drained", EventType::Normal, "Evict"),
            Self::DrainTimedOut => ("DrainTimedOut", EventType::Warning, "Evict"),
            Self::EvictionBlocked => ("EvictionBlocked", EventType::Warning, "Evict"),
            Self::Restored => ("Restored", EventType::Normal, "Restore"),
            Self::InvalidConfig => ("InvalidConfig", EventType::Warning, "Reload"),
            // Advice, not a failure: Normal, so warning-event alerts stay quiet.
            Self::InPlaceResizeAvailable => ("InPlaceResizeAvailable", EventType::Normal, "Advise"),
        }
    }
}

/// Publishes Events; failures are logged, never fatal.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // Recorder has no Debug
pub struct Events {
    recorder: Recorder,
    lang: Lang,
}

impl Events {
    /// A publisher reporting as `steward-graceful-drain` from `instance`.
    pub fn new(client: kube::Client, instance: String, lang: Lang) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER.into(),
            instance: Some(instance),
        };
        Self {
            recorder: Recorder::new(client, reporter),
            lang,
        }
    }

    /// Publishes `reason` on `obj` with the message's text.
    pub async fn publish<K>(&self, obj: &K, reason: Reason, msg: &Msg<'_>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish_ref(&obj.object_ref(&()), reason, msg).await;
    }

    /// [`Self::publish`] on an object known by reference (a custom resource).
    pub async fn publish_ref(&self, obj: &ObjectReference, reason: Reason, msg: &Msg<'_>) {
        let (r, type_, action) = reason.parts();
        let ev = Event {
            type_,
            reason: r.into(),
            note: Some(msg.render(self.lang)),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&ev, obj).await {
            let name = obj.name.as_deref().unwrap_or_default();
            tracing::warn!(object = %name, reason = r, %error, "publishing an Event failed");
        }
    }
}
