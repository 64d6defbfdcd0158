//! The webhook certificate after start: steward's own rotated when due, or an
//! externally issued one (cert-manager) followed as its Secret changes; either
//! way the webhook configuration's `caBundle` trusts the new CA before it is served.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use steward_runtime::Shutdown;

use super::RunArgs;
use crate::certs::{self, Resolver};
use crate::webhook;

/// Re-reads the Secret every tenth of the validity (at most hourly); rotates when
/// due, re-registers the webhook with both CAs, and serves the new certificate.
pub(super) async fn keep_certificate(
    client: Client,
    args: RunArgs,
    mut current: certs::Bundle,
    resolver: Arc<Resolver>,
    shutdown: Shutdown,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), args.namespace());
    let every = (args.cert_validity / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let registration = args.registration();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.signaled() => return,
        }
        match certs::ensure(&secrets, &args.tls_secret, &args.sans(), args.cert_validity).await {
            Ok(b) if b != current => {
                if let Err(error) = webhook::register(&client, &registration, &b.ca_bundle()).await
                {
                    tracing::warn!(%error, "updating the webhook caBundle failed; retrying");
                    continue;
                }
                if let Err(error) = resolver.set(&b) {
                    tracing::warn!(%error, "loading the rotated certificate failed");
                    continue;
                }
                tracing::info!(not_after = %b.not_after, "serving a rotated webhook certificate");
                current = b;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "checking the webhook certificate failed; retrying")
            }
        }
    }
}

/// Waits until the externally issued Secret exists and holds a usable certificate
/// (cert-manager may issue it after steward starts); `None` on shutdown.
pub(super) async fn first_external(
    secrets: &Api<Secret>,
    name: &str,
    shutdown: &Shutdown,
) -> Option<certs::Bundle> {
    let mut said = String::new();
    loop {
        let why = match secrets.get_opt(name).await {
            Ok(Some(s)) => match certs::from_external(&s) {
                Ok(b) => return Some(b),
                Err(e) => e.to_string(),
            },
            Ok(None) => format!(
                "Secret {name} does not exist yet (is its cert-manager Certificate issued?)"
            ),
            Err(e) => e.to_string(),
        };
        if why != said {
            tracing::warn!(secret = name, error = %why, "waiting for the webhook certificate; not serving yet");
            said = why;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = shutdown.signaled() => return None,
        }
    }
}

/// Follows an externally issued Secret: a renewed certificate is served from the
/// next handshake; a new CA goes into `caBundle` beside the previous one first, so
/// the API server trusts whichever certificate a replica still serves. A Secret
/// that becomes unusable keeps the last good certificate in service.
pub(super) async fn follow_external(
    client: Client,
    args: RunArgs,
    mut current: certs::Bundle,
    resolver: Arc<Resolver>,
    shutdown: Shutdown,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), args.namespace());
    let stream = super::watches::watch_named(secrets, &args.tls_secret);
    let mut stream = std::pin::pin!(stream);
    let registration = args.registration();
    while let Some(secret) =
        super::watches::next_change(&mut stream, &shutdown, "the certificate Secret").await
    {
        let mut b = match certs::from_external(&secret) {
            Ok(b) => b,
            Err(error) => {
                tracing::warn!(secret = %args.tls_secret, %error, "the certificate Secret is not usable; the last good certificate stays in service");
                continue;
            }
        };
        if b.cert == current.cert && b.ca == current.ca && b.key == current.key {
            continue;
        }
        if b.ca != current.ca {
            b.previous_ca = Some(current.ca.clone());
        } else {
            b.previous_ca.clone_from(&current.previous_ca);
        }
        if let Err(error) = webhook::register(&client, &registration, &b.ca_bundle()).await {
            tracing::warn!(%error, "updating the webhook caBundle failed; still serving the previous certificate");
            continue;
        }
        if let Err(error) = resolver.set(&b) {
            tracing::warn!(%error, "loading the renewed certificate failed");
            continue;
        }
        tracing::info!(secret = %args.tls_secret, not_after = %b.not_after, "serving a renewed webhook certificate from the Secret");
        current = b;
    }
}
