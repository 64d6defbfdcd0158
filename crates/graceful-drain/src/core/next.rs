//! What the controller does after each answer of the Eviction API. Pure: the
//! answer is classified once (`steward_kube::eviction::Outcome`), and this maps it
//! to the next step of the drain.
//!
//! Two evictions are asked for: the server-side dry run before isolating (does a
//! PodDisruptionBudget allow it now?) and the final one after the wait.

use std::time::Duration;

use steward_kube::eviction::Outcome;

/// How long before a transient failure is tried again.
pub const RETRY: Duration = Duration::from_secs(2);
/// How long before a final eviction refused by a lagging webhook replica is tried again.
pub const LAGGING_RETRY: Duration = Duration::from_millis(200);

/// The next step of a drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The dry run allowed it: take the pod out of load balancing.
    Isolate,
    /// The final eviction went through, or the pod is gone: the drain is over.
    Drained,
    /// The pod is gone before the drain began: nothing to do.
    Gone,
    /// A failure worth retrying (`why`), after [`RETRY`].
    Retry(String),
    /// steward's own webhook refused the final eviction: a replica that has not
    /// seen the `evicting` mark yet. Retried after [`LAGGING_RETRY`].
    WebhookLagging(String),
    /// A PodDisruptionBudget refuses: Event, the drain counted as `outcome`, the
    /// pod put back in service with a back-off.
    Blocked {
        /// The API server's message (names the budget).
        message: String,
        /// The drain outcome to count.
        outcome: &'static str,
    },
    /// Refused for good (more than one budget, RBAC, ...): the pod is put back in
    /// service, counted as `outcome`, the reason recorded as `label`.
    Refused {
        /// What the API server said, for the log and the Event.
        why: String,
        /// The refusal's label.
        label: &'static str,
        /// The drain outcome to count.
        outcome: &'static str,
    },
}

/// After the dry run that decides whether the drain may begin.
pub fn after_dry_run(outcome: Outcome) -> Next {
    match outcome {
        Outcome::Evicted => Next::Isolate,
        Outcome::Gone => Next::Gone,
        Outcome::Transient(why) => Next::Retry(why),
        Outcome::Blocked { message, .. } => Next::Blocked {
            message,
            outcome: "blocked_by_pdb",
        },
        other => Next::Refused {
            why: format!("{other:?}"),
            label: other.label(),
            outcome: other.label(),
        },
    }
}

/// After the final eviction. `webhook` is the name of steward's webhook, which the
/// API server puts into its refusals.
pub fn after_eviction(outcome: Outcome, webhook: &str) -> Next {
    match outcome {
        Outcome::Evicted | Outcome::Gone => Next::Drained,
        Outcome::Transient(why) => Next::Retry(why),
        Outcome::Blocked { message, .. } if message.contains(webhook) => {
            Next::WebhookLagging(message)
        }
        Outcome::Blocked { message, .. } => Next::Blocked {
            message,
            outcome: "restored",
        },
        other => Next::Refused {
            why: format!("{other:?}"),
            label: other.label(),
            outcome: "restored",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBHOOK: &str = "eviction.graceful-drain.steward.io";

    fn blocked(message: &str) -> Outcome {
        Outcome::Blocked {
            retry_after: Some(Duration::from_secs(5)),
            message: message.into(),
        }
    }

    #[test]
    fn dry_run_answers() {
        let table = [
            (Outcome::Evicted, Next::Isolate),
            (Outcome::Gone, Next::Gone),
            (
                Outcome::Transient("etcd timeout".into()),
                Next::Retry("etcd timeout".into()),
            ),
            (
                blocked("would violate the pod's disruption budget"),
                Next::Blocked {
                    message: "would violate the pod's disruption budget".into(),
                    outcome: "blocked_by_pdb",
                },
            ),
            (
                Outcome::MultiplePdbs("two budgets".into()),
                Next::Refused {
                    why: "MultiplePdbs(\"two budgets\")".into(),
                    label: "multiple_pdbs",
                    outcome: "multiple_pdbs",
                },
            ),
            (
                Outcome::NamespaceTerminating,
                Next::Refused {
                    why: "NamespaceTerminating".into(),
                    label: "namespace_terminating",
                    outcome: "namespace_terminating",
                },
            ),
            (
                Outcome::Fatal("403 Forbidden".into()),
                Next::Refused {
                    why: "Fatal(\"403 Forbidden\")".into(),
                    label: "fatal",
                    outcome: "fatal",
                },
            ),
        ];
        for (outcome, want) in table {
            assert_eq!(after_dry_run(outcome.clone()), want, "{outcome:?}");
        }
    }

    #[test]
    fn final_eviction_answers() {
        let lagging = format!("admission webhook \"{WEBHOOK}\" denied the request: draining");
        let table = [
            (Outcome::Evicted, Next::Drained),
            (Outcome::Gone, Next::Drained),
            (
                Outcome::Transient("conflict; the pod is still there".into()),
                Next::Retry("conflict; the pod is still there".into()),
            ),
            (blocked(&lagging), Next::WebhookLagging(lagging.clone())),
            (
                blocked("would violate the pod's disruption budget"),
                Next::Blocked {
                    message: "would violate the pod's disruption budget".into(),
                    outcome: "restored",
                },
            ),
            (
                Outcome::MultiplePdbs("two budgets".into()),
                Next::Refused {
                    why: "MultiplePdbs(\"two budgets\")".into(),
                    label: "multiple_pdbs",
                    outcome: "restored",
                },
            ),
            (
                Outcome::Fatal("403 Forbidden".into()),
                Next::Refused {
                    why: "Fatal(\"403 Forbidden\")".into(),
                    label: "fatal",
                    outcome: "restored",
                },
            ),
        ];
        for (outcome, want) in table {
            assert_eq!(
                after_eviction(outcome.clone(), WEBHOOK),
                want,
                "{outcome:?}"
            );
        }
    }
}
