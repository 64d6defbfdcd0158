//! Eviction through `policy/v1` with a UID precondition, and what each answer means.
//!
//! The classes follow the API server's eviction handler
//! (`pkg/registry/core/pod/storage/eviction.go`) and Karpenter's terminator:
//! - 201: evicted; the pod now terminates within its grace period.
//! - 404: the pod is gone. 409 on a UID precondition: a different pod of that name
//!   (a StatefulSet replacement) exists; ours is gone. Both are done.
//! - 429: a PodDisruptionBudget refuses the eviction now; back off, honouring the
//!   server's `retryAfterSeconds`.
//! - 500 "more than one PodDisruptionBudget": the API server will never evict this
//!   pod; retrying cannot help, a person must fix the budgets.
//! - 403 with cause `NamespaceTerminating`: the namespace is being deleted and the
//!   namespace controller removes the pod anyway; delete it directly.
//! - 5xx, timeouts and connection errors: transient.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, EvictParams, Preconditions};
use kube::core::Status;

/// What an eviction (or the deletion standing in for one) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: the pod is terminating.
    Evicted,
    /// The pod (with this UID) no longer exists.
    Gone,
    /// A PodDisruptionBudget refuses it now.
    Blocked {
        /// The server's hint, if any.
        retry_after: Option<Duration>,
        /// The server's message (names the budget).
        message: String,
    },
    /// The pod matches more than one PodDisruptionBudget; the API server refuses it for good.
    MultiplePdbs(String),
    /// The namespace is terminating; evictions are refused but deletion works.
    NamespaceTerminating,
    /// A failure worth retrying.
    Transient(String),
    /// A failure retrying cannot fix (for example RBAC).
    Fatal(String),
}

impl Outcome {
    /// A short label for metrics and reports.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::Gone => "gone",
            Self::Blocked { .. } => "blocked_by_pdb",
            Self::MultiplePdbs(_) => "multiple_pdbs",
            Self::NamespaceTerminating => "namespace_terminating",
            Self::Transient(_) => "transient",
            Self::Fatal(_) => "fatal",
        }
    }
}

/// Classifies the result of an eviction call. Pure.
pub fn classify(result: &Result<Status, kube::Error>) -> Outcome {
    let err = match result {
        Ok(_) => return Outcome::Evicted,
        Err(e) => e,
    };
    let kube::Error::Api(s) = err else {
        return Outcome::Transient(err.to_string());
    };
    let causes = s
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    match s.code {
        404 => Outcome::Gone,
        409 => Outcome::Gone,
        429 => {
            let secs = s.details.as_ref().map_or(0, |d| d.retry_after_seconds);
            Outcome::Blocked {
                retry_after: (secs > 0).then(|| Duration::from_secs(secs.into())),
                message: s.message.clone(),
            }
        }
        500 if s.message.contains("more than one PodDisruptionBudget") => {
            Outcome::MultiplePdbs(s.message.clone())
        }
        403 if causes.iter().any(|c| c.reason == "NamespaceTerminating")
            || s.message.contains("is being terminated") =>
        {
            Outcome::NamespaceTerminating
        }
        c if c >= 500 => Outcome::Transient(s.message.clone()),
        _ => Outcome::Fatal(format!("{} {}: {}", s.code, s.reason, s.message)),
    }
}

/// Evicts the pod with this UID, keeping the caller's grace period if any.
pub async fn evict(api: &Api<Pod>, name: &str, uid: &str, grace: Option<u32>) -> Outcome {
    let params = EvictParams {
        delete_options: Some(delete_params(uid, grace)),
        ..EvictParams::default()
    };
    classify(&api.evict(name, &params).await)
}

/// Asks whether the pod with this UID could be evicted now, changing nothing: a
/// server-side dry run (`dryRun=All` on the eviction and its delete options).
/// Admission webhooks see it as a dry run; a dry run does not consume a
/// PodDisruptionBudget, so it answers for this one eviction only.
pub async fn dry_run(api: &Api<Pod>, name: &str, uid: &str, grace: Option<u32>) -> Outcome {
    let params = EvictParams {
        delete_options: Some(DeleteParams {
            dry_run: true,
            ..delete_params(uid, grace)
        }),
        post_options: kube::api::PostParams {
            dry_run: true,
            field_manager: None,
        },
    };
    classify(&api.evict(name, &params).await)
}

/// Deletes the pod with this UID with a grace period of at least one second.
///
/// Grace 0 is a force deletion: the object goes before the kubelet has stopped the
/// containers, which for a StatefulSet can run two pods of one identity. Never used.
pub async fn delete(api: &Api<Pod>, name: &str, uid: &str, grace: u32) -> Outcome {
    let result = api
        .delete(name, &delete_params(uid, Some(grace.max(1))))
        .await;
    match result {
        Ok(_) => Outcome::Evicted,
        Err(e) => match classify(&Err(e)) {
            Outcome::NamespaceTerminating => Outcome::Evicted,
            other => other,
        },
    }
}

fn delete_params(uid: &str, grace: Option<u32>) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: grace,
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

#[cfg(test)]
mod tests {
    use kube::core::response::StatusDetails;

    use super::*;

    fn api_err(
        code: u16,
        message: &str,
        details: Option<StatusDetails>,
    ) -> Result<Status, kube::Error> {
        let mut s = Status::failure(message, "");
        s.code = code;
        s.details = details;
        Err(kube::Error::Api(s.boxed()))
    }

    #[test]
    fn classes() {
        let retry: StatusDetails =
            serde_json::from_value(serde_json::json!({ "retryAfterSeconds": 7 })).unwrap();
        let terminating: StatusDetails = serde_json::from_value(
            serde_json::json!({ "causes": [{ "reason": "NamespaceTerminating" }] }),
        )
        .unwrap();
        let table: Vec<(Result<Status, kube::Error>, Outcome)> = vec![
            (Ok(Status::success()), Outcome::Evicted),
            (api_err(404, "not found", None), Outcome::Gone),
            (api_err(409, "Precondition failed: UID in precondition", None), Outcome::Gone),
            (
                api_err(429, "Cannot evict pod as it would violate the pod's disruption budget.", Some(retry)),
                Outcome::Blocked { retry_after: Some(Duration::from_secs(7)), message: "Cannot evict pod as it would violate the pod's disruption budget.".into() },
            ),
            (api_err(429, "budget", None), Outcome::Blocked { retry_after: None, message: "budget".into() }),
            (
                api_err(500, "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.", None),
                Outcome::MultiplePdbs("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into()),
            ),
            (api_err(500, "etcdserver: request timed out", None), Outcome::Transient("etcdserver: request timed out".into())),
            (api_err(403, "unable to create new content in namespace x because it is being terminated", Some(terminating)), Outcome::NamespaceTerminating),
            (api_err(403, "pods \"p\" is forbidden: User cannot create", None), Outcome::Fatal("403 : pods \"p\" is forbidden: User cannot create".into())),
        ];
        for (input, want) in table {
            assert_eq!(classify(&input), want, "{input:?}");
        }
    }
}
