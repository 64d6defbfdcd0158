//! How steward reaches a Prometheus that is not open to anyone: a bearer token,
//! basic auth, a private CA, a client certificate, extra headers — the same knobs
//! as Prometheus's own `http_config` (`authorization.credentials_file`,
//! `basic_auth.password_file`, `tls_config`, `http_headers`).
//!
//! Secrets only come from files (a mounted Secret), never from a flag's value, and
//! the token and password files are read again for every query, as Prometheus
//! does, so a rotated token (a projected ServiceAccount token, Vault agent) is used
//! without a restart. Nothing here prints a secret: errors name the file and flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};

/// Who steward is to Prometheus. Holds paths, never secrets.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `--prometheus-token-file`: `Authorization: Bearer <file's content>`.
    pub token_file: Option<PathBuf>,
    /// `--prometheus-username`, with the password from `--prometheus-password-file`.
    pub basic: Option<(String, PathBuf)>,
    /// `--prometheus-ca-file`: the CA bundle (PEM) Prometheus's certificate is checked against.
    pub ca_file: Option<PathBuf>,
    /// `--prometheus-cert-file` and `--prometheus-key-file`: a client certificate (PEM).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `--prometheus-header`: `Name: value` sent with every query.
    pub headers: Vec<String>,
    /// `--prometheus-sigv4`: every query signed with AWS SigV4.
    pub sigv4: Option<std::sync::Arc<super::sigv4::SigV4>>,
}

/// The credentials of one query.
#[derive(Debug)]
pub(super) enum Credentials {
    None,
    Bearer(String),
    Basic(String, String),
}

impl Access {
    /// The HTTP client these settings need; every file is read now so that a
    /// missing one stops the run before anything changes.
    pub(super) fn client(&self, timeout: Duration) -> Result<reqwest::Client> {
        let mut b = steward_runtime::http::builder(timeout).default_headers(self.header_map()?);
        if let Some(path) = &self.ca_file {
            let pem = read(path, "--prometheus-ca-file")?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| flag("--prometheus-ca-file", path, &e))?;
            if certs.is_empty() {
                return Err(flag(
                    "--prometheus-ca-file",
                    path,
                    &"no PEM certificate in it",
                ));
            }
            b = b.tls_certs_only(certs);
        }
        if let Some((cert, key)) = &self.client_cert {
            let mut pem = read(cert, "--prometheus-cert-file")?;
            pem.push(b'\n');
            pem.extend(read(key, "--prometheus-key-file")?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| flag("--prometheus-cert-file/--prometheus-key-file", cert, &e))?;
            b = b.identity(id);
        }
        self.credentials()?;
        // The innermost cause: reqwest says only "builder error", its source says why
        // (in an image without CA certificates: "No CA certificates were loaded").
        b.build().map_err(|e| Error::Flag {
            flag: "--prometheus-address",
            reason: format!("HTTP client: {}", super::root(&e)),
        })
    }

    /// The credentials of the next query, read from their files now.
    pub(super) fn credentials(&self) -> Result<Credentials> {
        if let Some(path) = &self.token_file {
            let token = secret(path, "--prometheus-token-file")?;
            return Ok(Credentials::Bearer(token));
        }
        if let Some((user, path)) = &self.basic {
            let password = secret(path, "--prometheus-password-file")?;
            return Ok(Credentials::Basic(user.clone(), password));
        }
        Ok(Credentials::None)
    }

    fn header_map(&self) -> Result<HeaderMap> {
        let mut map = HeaderMap::new();
        for h in &self.headers {
            let (name, value) = parse_header(h).map_err(|reason| Error::Flag {
                flag: "--prometheus-header",
                reason: format!("{h:?}: {reason}"),
            })?;
            map.append(name, value);
        }
        Ok(map)
    }
}

impl Credentials {
    pub(super) fn apply(self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Self::None => req,
            Self::Bearer(token) => req.bearer_auth(token),
            Self::Basic(user, password) => req.basic_auth(user, Some(password)),
        }
    }
}

/// `Name: value` (or `Name=value`); the credentials have their own flags.
fn parse_header(h: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = h
        .split_once(':')
        .or_else(|| h.split_once('='))
        .ok_or("expected Name: value")?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
    if name == reqwest::header::AUTHORIZATION {
        return Err(
            "Authorization comes from --prometheus-token-file or --prometheus-username, \
             which keep it off the command line"
                .into(),
        );
    }
    let value = HeaderValue::from_str(value.trim()).map_err(|_| "invalid header value")?;
    Ok((name, value))
}

fn read(path: &Path, flag_name: &'static str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| flag(flag_name, path, &e))
}

/// A file's content without its trailing newline; empty is an error.
fn secret(path: &Path, flag_name: &'static str) -> Result<String> {
    let raw = read(path, flag_name)?;
    let s = String::from_utf8(raw).map_err(|_| flag(flag_name, path, &"not UTF-8 text"))?;
    let s = s.trim_end_matches(['\n', '\r']).to_string();
    if s.is_empty() {
        return Err(flag(flag_name, path, &"the file is empty"));
    }
    Ok(s)
}

fn flag(flag: &'static str, path: &Path, why: &dyn std::fmt::Display) -> Error {
    Error::Flag {
        flag,
        reason: format!("{}: {why}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_authorization_is_refused() {
        let ok = [
            ("X-Scope-OrgID: team-a", "x-scope-orgid", "team-a"),
            ("X-Cluster=prod", "x-cluster", "prod"),
            ("A:  b c ", "a", "b c"),
        ];
        for (h, name, value) in ok {
            let (n, v) = parse_header(h).unwrap();
            assert_eq!((n.as_str(), v.to_str().unwrap()), (name, value), "{h}");
        }
        let bad = [
            ("novalue", "expected Name: value"),
            ("bad name: x", "not a header name"),
            ("Authorization: Bearer x", "--prometheus-token-file"),
            ("X: a\nb", "invalid header value"),
        ];
        for (h, want) in bad {
            let err = parse_header(h).unwrap_err();
            assert!(err.contains(want), "{h}: {err}");
        }
    }

    #[test]
    fn secrets_come_from_files_without_their_newline_and_errors_name_the_flag() {
        let dir = std::env::temp_dir().join(format!("steward-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let a = Access {
            token_file: Some(token.clone()),
            ..Access::default()
        };
        assert!(matches!(a.credentials().unwrap(), Credentials::Bearer(t) if t == "s3cret"));
        for (access, want) in [
            (
                Access {
                    token_file: Some(empty),
                    ..Access::default()
                },
                "--prometheus-token-file",
            ),
            (
                Access {
                    basic: Some(("u".into(), dir.join("missing"))),
                    ..Access::default()
                },
                "--prometheus-password-file",
            ),
        ] {
            let err = access.credentials().unwrap_err().to_string();
            assert!(err.contains(want) && !err.contains("s3cret"), "{err}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
