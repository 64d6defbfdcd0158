//! What the image holds: the static steward binary and the few files it reads, and
//! nothing else (no shell, no package manager, no libraries).
//!
//! - `usr/local/bin/steward`, owned by root, mode 0755.
//! - `etc/passwd` and `etc/group` with the non-root user 65532 (`nonroot`), so a
//!   runtime or a lookup by uid finds a name and HOME; the container runs as
//!   65532:65532 whatever they say.
//! - `etc/ssl/certs/ca-certificates.crt`: outbound TLS (Slack, Prometheus over
//!   HTTPS) verifies servers with rustls-platform-verifier, which on Linux reads the
//!   system store through rustls-native-certs/openssl-probe: `SSL_CERT_FILE` if set,
//!   else the first of the usual bundle paths, Debian's first. Without any bundle,
//!   building an HTTP client fails ("No CA certificates were loaded from the
//!   system"). The bundle is Mozilla's root program as the `webpki-root-certs`
//!   crate carries it, pinned by Cargo.lock, so the image depends on the commit
//!   alone and not on the build machine's ca-certificates package.
//! - `tmp/` (1777): `steward monitor` in helm mode writes its values file to the
//!   temp dir. With a read-only root filesystem a pod mounts an emptyDir there.
//!
//! Name resolution needs no file of the image: the binary is static musl, whose
//! resolver reads `/etc/hosts` and `/etc/resolv.conf` (which the kubelet mounts)
//! itself, without NSS modules.

use crate::layer::Entry;

/// The user and group the image runs as.
pub const UID: u32 = 65532;
/// Where the binary lives; the entrypoint.
pub const BINARY: &str = "usr/local/bin/steward";
/// The CA bundle path, the first one openssl-probe looks for.
pub const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

/// `/etc/passwd`: root (owner of every file) and the user the image runs as.
pub fn passwd() -> String {
    format!(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{UID}:{UID}:nonroot:/nonexistent:/sbin/nologin\n"
    )
}

/// `/etc/group`.
pub fn group() -> String {
    format!("root:x:0:\nnonroot:x:{UID}:\n")
}

/// Mozilla's TLS server roots as one PEM bundle.
pub fn ca_bundle() -> String {
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| pem::encode_config(&pem::Pem::new("CERTIFICATE", c.as_ref()), lf))
        .collect()
}

/// Every entry of the image's one layer.
pub fn entries(binary: Vec<u8>) -> Vec<Entry> {
    vec![
        Entry::dir("etc", 0o755),
        Entry::file("etc/passwd", 0o644, passwd()),
        Entry::file("etc/group", 0o644, group()),
        Entry::dir("etc/ssl", 0o755),
        Entry::dir("etc/ssl/certs", 0o755),
        Entry::file(CA_BUNDLE, 0o644, ca_bundle()),
        Entry::dir("tmp", 0o1777),
        Entry::dir("usr", 0o755),
        Entry::dir("usr/local", 0o755),
        Entry::dir("usr/local/bin", 0o755),
        Entry::file(BINARY, 0o755, binary),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pass_the_layer_checks() {
        crate::layer::check(&entries(b"\x7fELF".to_vec())).unwrap();
    }

    #[test]
    fn passwd_and_group_name_the_runtime_user() {
        assert!(
            passwd()
                .lines()
                .any(|l| l.starts_with("nonroot:x:65532:65532:"))
        );
        assert!(group().lines().any(|l| l == "nonroot:x:65532:"));
    }

    #[test]
    fn ca_bundle_holds_every_root_as_pem() {
        let bundle = ca_bundle();
        let parsed = pem::parse_many(&bundle).unwrap();
        assert_eq!(parsed.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(parsed.len() > 100, "{} roots", parsed.len());
        assert!(parsed.iter().all(|p| p.tag() == "CERTIFICATE"));
        assert!(!bundle.contains('\r'));
    }
}
