//! The one way steward changes an object it does not own whole: read it, let a
//! pure function decide on what is there, write that decision as a merge patch
//! conditioned on the resourceVersion it was decided on, and when someone else
//! wrote in between (409 Conflict), read again and decide again. Transient errors
//! are retried with back-off. The shape of pod-graceful-drain's
//! `patch/resource_patch_util.rs`: the decision is pure and sees every retry.
//!
//! The decision gets `None` when the object does not exist (or is gone by the
//! time the patch lands), so "already gone" is the caller's to interpret.

use std::fmt::Debug;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{is_conflict, is_not_found, is_transient};

/// What the decision wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T> {
    /// The object is as wanted (or the caller gives up): return this.
    Done(T),
    /// Apply this JSON merge patch (without a resourceVersion; one is added).
    Patch(Value),
}

/// How many decisions one call may make before it reports the object as
/// contended (each conflict or successful patch is one more).
const MAX_ROUNDS: usize = 10;

/// Back-off between tries after a transient error: 100 ms doubling to 2 s, with
/// jitter, at most 5 tries.
fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .with_max_times(5)
        .build()
}

/// Adds `metadata.resourceVersion` to a merge patch, so the API server refuses it
/// (409) if the object changed since `rv`. Pure.
pub fn conditional(mut patch: Value, rv: &str) -> Value {
    if !patch.is_object() {
        patch = Value::Object(serde_json::Map::new());
    }
    let meta = patch.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()))
    });
    if let Some(Value::Object(m)) = meta {
        m.insert("resourceVersion".into(), Value::String(rv.into()));
    }
    patch
}

/// Reads `name` (or starts from `known`, a recent copy, sparing the first read),
/// and applies what `decide` wants until it says [`Step::Done`].
pub async fn read_decide_patch<K, T>(
    api: &Api<K>,
    name: &str,
    known: Option<K>,
    params: &PatchParams,
    mut decide: impl FnMut(Option<&K>) -> Step<T>,
) -> kube::Result<T>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut current = match known {
        Some(k) => Some(k),
        None => read(api, name).await?,
    };
    for _ in 0..MAX_ROUNDS {
        let patch = match decide(current.as_ref()) {
            Step::Done(t) => return Ok(t),
            Step::Patch(p) => p,
        };
        let Some(obj) = &current else {
            // Nothing to patch: the decision wants a patch of nothing; read again.
            current = read(api, name).await?;
            continue;
        };
        let body = Patch::Merge(conditional(
            patch,
            &obj.resource_version().unwrap_or_default(),
        ));
        current = match retrying(|| api.patch(name, params, &body)).await {
            Ok(updated) => Some(updated),
            Err(e) if is_not_found(&e) => None,
            Err(e) if is_conflict(&e) => read(api, name).await?,
            Err(e) => return Err(e),
        };
    }
    Err(kube::Error::Api(
        kube::core::Status::failure(
            &format!("{name} kept changing while steward tried to update it ({MAX_ROUNDS} tries)"),
            "Conflict",
        )
        .with_code(409)
        .boxed(),
    ))
}

async fn read<K>(api: &Api<K>, name: &str) -> kube::Result<Option<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    retrying(|| api.get_opt(name)).await
}

/// Runs `call`, retrying transient errors with back-off.
pub async fn retrying<T, F, Fut>(mut call: F) -> kube::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
{
    let mut delays = backoff();
    loop {
        match call().await {
            Err(e) if is_transient(&e) => match delays.next() {
                Some(d) => {
                    tracing::debug!(error = %e, delay_ms = d.as_millis(), "transient API error; retrying");
                    tokio::time::sleep(d).await;
                }
                None => return Err(e),
            },
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn conditional_adds_the_resource_version() {
        let table = [
            (
                json!({ "metadata": { "labels": { "a": "1" } } }),
                json!({ "metadata": { "labels": { "a": "1" }, "resourceVersion": "7" } }),
            ),
            (
                json!({ "spec": { "unschedulable": true } }),
                json!({ "spec": { "unschedulable": true }, "metadata": { "resourceVersion": "7" } }),
            ),
            (
                json!(null),
                json!({ "metadata": { "resourceVersion": "7" } }),
            ),
        ];
        for (patch, want) in table {
            assert_eq!(conditional(patch, "7"), want);
        }
    }
}
