//! Grafana's admin credentials, instead of its admin/admin default: the Secret
//! `<stack>-grafana-admin` (keys `admin-user`, `admin-password`), generated once
//! with a random password and never rewritten, so a re-apply, a resync or a new
//! controller keeps it. One that already exists (made by hand or by a secret
//! manager before the stack) is used as it is. Created by the controller rather
//! than applied with the stack's objects: applying a freshly generated value would
//! change the password on every apply. Owned by the MonitoringStack, so deleting
//! the stack deletes it; switching Grafana off keeps it.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};

use crate::core::manifests::workloads::{
    GRAFANA_PASSWORD_KEY, GRAFANA_USER_KEY, grafana_admin_secret,
};
use crate::core::stack::Stack;
use crate::crd::MonitoringStack;
use crate::error::{Result, kube as kerr};

/// Creates the Secret when the stack runs Grafana and it does not exist yet.
pub async fn ensure(client: &Client, ms: &MonitoringStack, stack: &Stack) -> Result<()> {
    if !stack.settings.components.contains("grafana") {
        return Ok(());
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), &stack.namespace);
    let name = grafana_admin_secret(stack);
    let what = || format!("creating Secret {}/{name}", stack.namespace);
    if api.get_opt(&name).await.map_err(kerr(what()))?.is_some() {
        return Ok(());
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(stack.labels("grafana")),
            owner_references: ms.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        string_data: Some(
            [
                (GRAFANA_USER_KEY.to_string(), "admin".to_string()),
                (GRAFANA_PASSWORD_KEY.to_string(), password()),
            ]
            .into(),
        ),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => tracing::info!(secret = %name, "generated Grafana's admin password"),
        // Another replica (or a person) made it first: theirs stands.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(kerr(what())(e)),
    }
    Ok(())
}

/// 32 characters from 62: about 190 bits.
fn password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..32)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// The user and password of the stack's Grafana, for `steward monitor status
/// --show-grafana-password`; `None` when the Secret does not exist.
pub async fn read(
    client: &Client,
    stack_ns: &str,
    secret: &str,
) -> Result<Option<(String, String)>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), stack_ns);
    let Some(s) = api
        .get_opt(secret)
        .await
        .map_err(kerr(format!("reading Secret {stack_ns}/{secret}")))?
    else {
        return Ok(None);
    };
    let field = |k: &str| {
        s.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    };
    Ok(Some((field(GRAFANA_USER_KEY), field(GRAFANA_PASSWORD_KEY))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_long_and_differ() {
        let (a, b) = (super::password(), super::password());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
