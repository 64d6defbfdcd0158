//! The Events `steward monitor` emits, declared once.

use kube::runtime::events::{Event, EventType};

use crate::core::onboarding::Cause;

/// A Ready node is still not monitored past the deadline (on the Node).
pub fn node_not_monitored(cause: &Cause, message: String) -> Event {
    Event {
        type_: EventType::Warning,
        reason: "NodeNotMonitored".into(),
        note: Some(message),
        action: cause.reason().into(),
        secondary: None,
    }
}

/// A node finished onboarding (on the Node).
pub fn node_monitored(message: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: "NodeMonitored".into(),
        note: Some(message),
        action: "Onboard".into(),
        secondary: None,
    }
}

/// The spec is invalid; nothing was changed (on the MonitoringStack).
pub fn spec_invalid(message: String) -> Event {
    Event {
        type_: EventType::Warning,
        reason: "InvalidSpec".into(),
        note: Some(message),
        action: "Validate".into(),
        secondary: None,
    }
}

/// Pre-flight found a blocking problem; nothing was applied (on the MonitoringStack).
pub fn preflight_blocked(message: String) -> Event {
    Event {
        type_: EventType::Warning,
        reason: "PreflightBlocked".into(),
        note: Some(message),
        action: "Preflight".into(),
        secondary: None,
    }
}

/// The stack was applied (on the MonitoringStack).
pub fn applied(message: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: "Applied".into(),
        note: Some(message),
        action: "Apply".into(),
        secondary: None,
    }
}
