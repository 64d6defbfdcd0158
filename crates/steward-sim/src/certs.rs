//! The cluster's PKI: one CA, the API server's serving certificate, an admin client
//! certificate (group `system:masters`) shared by the components and tests, the
//! service-account signing key, and each real node's kubelet and kube-proxy identity.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{Error, Result, io};

/// Paths of the generated PEM files.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub ca_cert: PathBuf,
    /// Kept so that real nodes can be given kubelet and kube-proxy certificates.
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

/// `extra_ips`: more addresses for the serving certificate (the API server's address
/// on the real nodes' bridge and the `kubernetes` Service's ClusterIP).
/// The signing CA, kept in memory while the cluster starts (real nodes' certificates).
pub(crate) type Ca = Issuer<'static, KeyPair>;

pub(crate) fn generate(dir: &Path, extra_ips: &[String]) -> Result<(Pki, Ca)> {
    std::fs::create_dir_all(dir).map_err(io("creating PKI directory", dir))?;
    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
    };

    let ca_key = KeyPair::generate().map_err(Error::Certs)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(Error::Certs)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "steward-sim-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(Error::Certs)?;
    write(&pki.ca_cert, &ca_cert.pem())?;
    write(&pki.ca_key, &ca_key.serialize_pem())?;
    std::fs::set_permissions(
        &pki.ca_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .map_err(io("restricting", &pki.ca_key))?;
    let issuer = Issuer::new(ca, ca_key);

    let sans = [
        "localhost",
        "127.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ];
    let sans: Vec<String> = sans
        .iter()
        .map(|s| s.to_string())
        .chain(extra_ips.iter().cloned())
        .collect();
    let mut serving = CertificateParams::new(sans).map_err(Error::Certs)?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf(&serving, &issuer, &pki.serving_cert, &pki.serving_key)?;

    let mut admin = CertificateParams::new(Vec::<String>::new()).map_err(Error::Certs)?;
    admin
        .distinguished_name
        .push(DnType::CommonName, "steward-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf(&admin, &issuer, &pki.admin_cert, &pki.admin_key)?;

    let sa = KeyPair::generate().map_err(Error::Certs)?;
    write(&pki.sa_key, &sa.serialize_pem())?;
    write(&pki.sa_pub, &sa.public_key_pem())?;
    Ok((pki, issuer))
}

/// A real node's certificates in `dir` (`pki/` of the node): `kubelet-client`
/// (`system:node:NAME` in `system:nodes`, so the Node authorizer applies),
/// `kubelet-serving` (the node's IP; the API server dials it for logs and exec) and
/// `kube-proxy` (`system:kube-proxy`, bound to `system:node-proxier` by default).
pub(crate) fn node(ca: &Ca, dir: &Path, name: &str, ip: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io("creating PKI directory", dir))?;
    let client = |cn: &str, org: &str| -> Result<CertificateParams> {
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(Error::Certs)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, org);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Ok(p)
    };
    let pair = |stem: &str| {
        (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        )
    };
    let user = format!("system:node:{name}");
    let (c, k) = pair("kubelet-client");
    leaf(&client(&user, "system:nodes")?, ca, &c, &k)?;
    let mut serving = CertificateParams::new(vec![ip.to_string()]).map_err(Error::Certs)?;
    serving.distinguished_name.push(DnType::CommonName, &user);
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (c, k) = pair("kubelet-serving");
    leaf(&serving, ca, &c, &k)?;
    let (c, k) = pair("kube-proxy");
    leaf(
        &client("system:kube-proxy", "system:node-proxiers")?,
        ca,
        &c,
        &k,
    )
}

fn leaf(
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
    cert: &Path,
    key: &Path,
) -> Result<()> {
    let key_pair = KeyPair::generate().map_err(Error::Certs)?;
    let signed = params.signed_by(&key_pair, issuer).map_err(Error::Certs)?;
    write(cert, &signed.pem())?;
    write(key, &key_pair.serialize_pem())
}

fn write(path: &Path, pem: &str) -> Result<()> {
    std::fs::write(path, pem).map_err(io("writing", path))
}
