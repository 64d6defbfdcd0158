//! The webhook's TLS: a self-signed CA and a serving certificate that steward
//! manages itself, kept in a Secret so every replica serves the same one, written
//! into the webhook configuration's `caBundle`, and rotated when a third of its
//! validity is left.
//!
//! Rotation never breaks the API server's calls: a rotation makes a new CA and
//! serving certificate and keeps the old CA beside it in the Secret; the
//! `caBundle` carries both, so a replica still serving the old certificate is
//! trusted until it reloads.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::{Error, Result};

mod secret;

pub use secret::{Want, ensure, want};

const CA_CRT: &str = "ca.crt";
const PREVIOUS_CA_CRT: &str = "ca-previous.crt";
const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
const NOT_AFTER: &str = "not-after";

/// CA, serving certificate and key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The current CA.
    pub ca: String,
    /// The CA before the last rotation, still trusted.
    pub previous_ca: Option<String>,
    /// Serving certificate.
    pub cert: String,
    /// Its key.
    pub key: String,
    /// When the serving certificate expires.
    pub not_after: Timestamp,
}

impl Bundle {
    /// What goes into the webhook configuration's `caBundle`.
    pub fn ca_bundle(&self) -> String {
        match &self.previous_ca {
            Some(p) => format!("{}{}", self.ca, p),
            None => self.ca.clone(),
        }
    }
}

/// Generates a CA and a serving certificate for `sans` valid for `validity`.
pub fn generate(
    sans: &[String],
    validity: Duration,
    previous_ca: Option<String>,
) -> Result<Bundle> {
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::minutes(5);
    let not_after = now + validity;
    let ca_key = KeyPair::generate().map_err(Error::Certs)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(Error::Certs)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "steward-graceful-drain-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key).map_err(Error::Certs)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(sans.to_vec()).map_err(Error::Certs)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "steward-graceful-drain");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let key = KeyPair::generate().map_err(Error::Certs)?;
    let cert = leaf.signed_by(&key, &issuer).map_err(Error::Certs)?;
    Ok(Bundle {
        ca: ca_cert.pem(),
        previous_ca,
        cert: cert.pem(),
        key: key.serialize_pem(),
        not_after: Timestamp::from_second(not_after.unix_timestamp())
            .map_err(|e| Error::Tls(e.to_string()))?,
    })
}

/// Whether less than a third of `validity` is left at `now`. Pure.
pub fn needs_rotation(not_after: Timestamp, validity: Duration, now: Timestamp) -> bool {
    let left = Duration::try_from(not_after.duration_since(now)).unwrap_or_default();
    left < validity / 3
}

/// A certificate issued by someone else (cert-manager, Vault, a person), read from a
/// `kubernetes.io/tls` Secret with `tls.crt`, `tls.key` and `ca.crt` (what a
/// cert-manager `Certificate` writes). steward never writes that Secret; it serves
/// the certificate and puts `ca.crt` into the webhook's `caBundle` itself, so no
/// CA injector is needed.
pub fn from_external(s: &Secret) -> Result<Bundle> {
    let name = s.metadata.name.as_deref().unwrap_or_default();
    let data = s.data.as_ref();
    let get = |k: &str| -> Result<String> {
        let v = data.and_then(|d| d.get(k)).ok_or_else(|| {
            Error::Tls(format!(
                "Secret {name} has no {k} (a cert-manager Certificate writes tls.crt, tls.key and, with a CA or self-signed issuer, ca.crt)"
            ))
        })?;
        String::from_utf8(v.0.clone())
            .map_err(|_| Error::Tls(format!("Secret {name}: {k} is not PEM text")))
    };
    let (cert, key, ca) = (get(TLS_CRT)?, get(TLS_KEY)?, get(CA_CRT)?);
    let not_after = x509_parser::pem::parse_x509_pem(cert.as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|(_, pem)| {
            pem.parse_x509()
                .map(|c| c.validity().not_after.timestamp())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| Error::Tls(format!("Secret {name}: {TLS_CRT}: {e}")))?;
    let b = Bundle {
        ca,
        previous_ca: None,
        cert,
        key,
        not_after: Timestamp::from_second(not_after).map_err(|e| Error::Tls(e.to_string()))?,
    };
    // Fail here, naming the Secret, rather than at the first handshake.
    certified(&b).map_err(|e| match e {
        Error::Tls(m) => Error::Tls(format!("Secret {name}: {m}")),
        other => other,
    })?;
    Ok(b)
}

/// The serving certificate, swappable while the server runs.
#[derive(Debug)]
pub struct Resolver(RwLock<Arc<CertifiedKey>>);

impl Resolver {
    /// A resolver serving `b`.
    pub fn new(b: &Bundle) -> Result<Arc<Self>> {
        Ok(Arc::new(Self(RwLock::new(certified(b)?))))
    }

    /// Serves `b` from the next handshake on.
    pub fn set(&self, b: &Bundle) -> Result<()> {
        let key = certified(b)?;
        *self
            .0
            .write()
            .map_err(|_| Error::Tls("lock poisoned".into()))? = key;
        Ok(())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

fn certified(b: &Bundle) -> Result<Arc<CertifiedKey>> {
    let certs = CertificateDer::pem_slice_iter(b.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("serving certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(b.key.as_bytes())
        .map_err(|e| Error::Tls(format!("serving key: {e}")))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| Error::Tls(format!("serving key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(certs, signer)))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;

    use super::*;

    #[test]
    fn rotation_when_a_third_is_left() {
        let day = Duration::from_secs(86_400);
        let validity = 90 * day;
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let table = [(89, false), (31, false), (29, true), (0, true)];
        for (days_left, want) in table {
            let not_after = now + days_left * day;
            assert_eq!(
                needs_rotation(not_after, validity, now),
                want,
                "{days_left} days left"
            );
        }
        assert!(needs_rotation(now - day, validity, now), "expired");
    }

    #[test]
    fn external_secrets_name_what_is_wrong() {
        let b = generate(&["127.0.0.1".into()], Duration::from_secs(3600), None).unwrap();
        let secret = |keys: &[(&str, &str)]| Secret {
            metadata: ObjectMeta {
                name: Some("webhook-tls".into()),
                ..ObjectMeta::default()
            },
            data: Some(
                keys.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        let ok = from_external(&secret(&[
            (TLS_CRT, &b.cert),
            (TLS_KEY, &b.key),
            (CA_CRT, &b.ca),
        ]))
        .unwrap();
        assert_eq!(
            (&ok.cert, &ok.ca, ok.not_after),
            (&b.cert, &b.ca, b.not_after)
        );
        let table = [
            (
                secret(&[(TLS_CRT, &b.cert), (TLS_KEY, &b.key)]),
                "has no ca.crt",
            ),
            (
                secret(&[(TLS_KEY, &b.key), (CA_CRT, &b.ca)]),
                "has no tls.crt",
            ),
            (
                secret(&[(TLS_CRT, "garbage"), (TLS_KEY, &b.key), (CA_CRT, &b.ca)]),
                "webhook-tls: tls.crt",
            ),
            (
                secret(&[(TLS_CRT, &b.cert), (TLS_KEY, "nope"), (CA_CRT, &b.ca)]),
                "webhook-tls: serving key",
            ),
        ];
        for (s, want) in table {
            let e = from_external(&s).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn generated_bundle_loads_and_survives_the_secret() {
        let b = generate(
            &["127.0.0.1".into(), "svc.ns.svc".into()],
            Duration::from_secs(3600),
            Some("OLD\n".into()),
        )
        .unwrap();
        assert!(b.ca_bundle().starts_with(&b.ca) && b.ca_bundle().ends_with("OLD\n"));
        Resolver::new(&b).unwrap();
    }
}
