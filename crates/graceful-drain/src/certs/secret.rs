//! steward's own certificate in its Secret: the format (`ca.crt`, `tls.crt`,
//! `tls.key`, `not-after`, `ca-previous.crt`), whether it can stay or is rotated
//! (pure), and writing it (read, decide, patch with the resourceVersion; create or
//! adopt when missing).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PatchParams, PostParams};
use steward_kube::error::is_already_exists;
use steward_kube::patch::{Step, read_decide_patch};

use super::{
    Bundle, CA_CRT, NOT_AFTER, PREVIOUS_CA_CRT, TLS_CRT, TLS_KEY, generate, needs_rotation,
};
use crate::error::{Error, Result, kube as kerr};

pub(super) fn to_secret(b: &Bundle, meta: ObjectMeta) -> Secret {
    let mut data = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
    };
    put(CA_CRT, &b.ca);
    put(TLS_CRT, &b.cert);
    put(TLS_KEY, &b.key);
    put(NOT_AFTER, &b.not_after.to_string());
    if let Some(p) = &b.previous_ca {
        put(PREVIOUS_CA_CRT, p);
    }
    Secret {
        metadata: meta,
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}

pub(super) fn from_secret(s: &Secret) -> Option<Bundle> {
    let data = s.data.as_ref()?;
    let get = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    Some(Bundle {
        ca: get(CA_CRT)?,
        previous_ca: get(PREVIOUS_CA_CRT),
        cert: get(TLS_CRT)?,
        key: get(TLS_KEY)?,
        not_after: get(NOT_AFTER)?.parse().ok()?,
    })
}

/// What to do with the Secret as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// It holds a bundle with more than a third of its validity left: serve it.
    Keep(Bundle),
    /// Unreadable or due: a new bundle, this CA (the current one, if readable)
    /// still trusted beside it.
    Rotate {
        /// The CA to keep in `caBundle` until every replica serves the new one.
        previous_ca: Option<String>,
    },
}

/// Whether the Secret's bundle can stay. Pure.
pub fn want(secret: &Secret, validity: Duration, now: Timestamp) -> Want {
    match from_secret(secret) {
        Some(b) if !needs_rotation(b.not_after, validity, now) => Want::Keep(b),
        b => Want::Rotate {
            previous_ca: b.map(|b| b.ca),
        },
    }
}

/// The merge patch that writes `b` into the Secret (and drops a previous CA
/// the new bundle no longer keeps). Only `data`: labels, annotations and the type
/// stay (the type is immutable, and the Helm chart creates the Secret Opaque and
/// empty so that an upgrade never resets what steward wrote).
fn secret_patch(b: &Bundle) -> serde_json::Value {
    let s = to_secret(b, ObjectMeta::default());
    let mut data = serde_json::to_value(&s.data).unwrap_or_default();
    if b.previous_ca.is_none() {
        data[PREVIOUS_CA_CRT] = serde_json::Value::Null;
    }
    serde_json::json!({ "data": data })
}

/// Reads the Secret; creates or rotates it when missing or due. Safe with several
/// replicas: a rotation is conditional on the Secret's resourceVersion (read,
/// decide, patch, again on a conflict), and a creation that finds the Secret
/// created by another replica reads that one instead.
pub async fn ensure(
    api: &Api<Secret>,
    name: &str,
    sans: &[String],
    validity: Duration,
) -> Result<Bundle> {
    // Create-or-adopt, not a conflict loop: the second round reads what the
    // replica that won the creation wrote.
    for _ in 0..2 {
        if let Some(b) = keep_or_rotate(api, name, sans, validity).await? {
            return Ok(b);
        }
        let fresh = generate(sans, validity, None)?;
        let meta = ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        };
        match api
            .create(&PostParams::default(), &to_secret(&fresh, meta))
            .await
        {
            Ok(_) => {
                tracing::info!(secret = name, not_after = %fresh.not_after, "wrote a new webhook certificate");
                return Ok(fresh);
            }
            Err(e) if is_already_exists(&e) => {}
            Err(e) => return Err(kerr(format!("writing Secret {name}"))(e)),
        }
    }
    Err(Error::Tls(format!("Secret {name} kept changing under us")))
}

/// The Secret's bundle, rotated first when due; `None` when the Secret does not exist.
async fn keep_or_rotate(
    api: &Api<Secret>,
    name: &str,
    sans: &[String],
    validity: Duration,
) -> Result<Option<Bundle>> {
    let mut failed = None;
    let mut written = None;
    let kept = read_decide_patch(api, name, None, &PatchParams::default(), |s| {
        let Some(s) = s else {
            return Step::Done(None);
        };
        match want(s, validity, Timestamp::now()) {
            Want::Keep(b) => Step::Done(Some(b)),
            Want::Rotate { previous_ca } => match generate(sans, validity, previous_ca) {
                Ok(fresh) => {
                    let patch = secret_patch(&fresh);
                    written = Some(fresh);
                    Step::Patch(patch)
                }
                Err(e) => {
                    failed = Some(e);
                    Step::Done(None)
                }
            },
        }
    })
    .await
    .map_err(kerr(format!("reading or rotating Secret {name}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(b) = kept.as_ref().filter(|b| written.as_ref() == Some(b)) {
        tracing::info!(secret = name, not_after = %b.not_after, "wrote a new webhook certificate");
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_or_rotate_the_secret() {
        let validity = Duration::from_secs(90 * 86_400);
        let b = generate(&["127.0.0.1".into()], validity, None).unwrap();
        let now = b.not_after - Duration::from_secs(60 * 86_400);
        let due = b.not_after - Duration::from_secs(20 * 86_400);
        let good = to_secret(&b, ObjectMeta::default());
        let mut unreadable = good.clone();
        unreadable.data.as_mut().unwrap().remove(TLS_KEY);
        let table = [
            (&good, now, Want::Keep(b.clone())),
            (
                &good,
                due,
                Want::Rotate {
                    previous_ca: Some(b.ca.clone()),
                },
            ),
            (&unreadable, now, Want::Rotate { previous_ca: None }),
        ];
        for (secret, at, expected) in table {
            assert_eq!(want(secret, validity, at), expected, "at {at}");
        }
    }

    #[test]
    fn rotation_patch_writes_the_bundle_and_drops_an_old_previous_ca() {
        let b = generate(&["127.0.0.1".into()], Duration::from_secs(3600), None).unwrap();
        let patch = secret_patch(&b);
        // The type is immutable and the chart's Secret is Opaque: never patched.
        assert_eq!(patch.get("type"), None);
        assert!(patch["data"][PREVIOUS_CA_CRT].is_null());
        // Applied to a Secret (the API server's merge), it reads back as the bundle.
        let mut secret = serde_json::to_value(to_secret(
            &Bundle {
                previous_ca: Some("OLDER\n".into()),
                ..b.clone()
            },
            ObjectMeta::default(),
        ))
        .unwrap();
        json_merge(&mut secret, &patch);
        let secret: Secret = serde_json::from_value(secret).unwrap();
        assert_eq!(from_secret(&secret), Some(b.clone()));
        let kept = Bundle {
            previous_ca: Some("OLD\n".into()),
            ..b
        };
        let patch = secret_patch(&kept);
        assert!(patch["data"][PREVIOUS_CA_CRT].is_string());
    }

    /// RFC 7386 merge, the API server's for `Patch::Merge`.
    fn json_merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
        match (target, patch) {
            (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        json_merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
            (t, p) => *t = p.clone(),
        }
    }

    #[test]
    fn bundle_survives_the_secret() {
        let b = generate(
            &["127.0.0.1".into()],
            Duration::from_secs(3600),
            Some("OLD\n".into()),
        )
        .unwrap();
        let back = from_secret(&to_secret(&b, ObjectMeta::default())).unwrap();
        assert_eq!(back, b);
    }
}
