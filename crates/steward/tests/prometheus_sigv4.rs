//! `steward karpenter allocate-rate --prometheus-sigv4` against a real Prometheus
//! behind a SigV4-checking gateway (`prometheus_support/sigv4_proxy.py`), which
//! computes every signature again with botocore, AWS's own implementation, as
//! Amazon Managed Service for Prometheus would. Credentials and region reach steward
//! only through the AWS environment, as on EKS; the gateway refuses a wrong secret,
//! another region and a missing session token.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

#[path = "prometheus_support/mod.rs"]
#[allow(dead_code)] // the other gateways are prometheus_access.rs's
mod prometheus_support;

use std::process::Stdio;
use std::time::Duration;

use prometheus_support::{POOL, exporter};
use serde_json::Value;
use testkit::prometheus::Prometheus;
use tokio::io::AsyncBufReadExt;

const T: Duration = Duration::from_secs(60);
const KEY: &str = "AKIDSTEWARDTEST";
const SECRET: &str = "s3cr3t/K7MDENG+bPxRfiCYSTEWARD";
const TOKEN: &str = "session-token-for-the-test";

/// The gateway in front of `upstream` for `region`, checking with `secret`; its URL
/// and the process (killed on drop).
async fn gateway(
    upstream: &str,
    region: &str,
    token: Option<&str>,
) -> (String, tokio::process::Child) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/prometheus_support/sigv4_proxy.py"
    );
    // Debian's python3, where hack/setup.sh installs python3-botocore (a python3
    // earlier on PATH, pyenv's say, may lack it).
    let mut child = tokio::process::Command::new("/usr/bin/python3")
        .args([script, region, "aps", upstream])
        .env("SIGV4_ACCESS_KEY", KEY)
        .env("SIGV4_SECRET_KEY", SECRET)
        .env("SIGV4_TOKEN", token.unwrap_or(""))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(T, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("the gateway printed its port");
    (format!("http://127.0.0.1:{port}"), child)
}

/// `allocate-rate -o json` with `args` and only the AWS environment `env` (no
/// profile files, no instance metadata): (exit status, report or Null, stderr).
async fn allocate(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Value, String) {
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "karpenter",
            "allocate-rate",
            "-o",
            "json",
            "--nodepool-name",
            POOL,
        ])
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn queries_signed_with_sigv4_from_the_aws_environment() {
    let target = exporter(32.0, 8.0).await;
    let prom = Prometheus::start("karpenter", &[target]).await.unwrap();
    prom.wait_for_series("karpenter_nodepools_usage", T)
        .await
        .unwrap();
    let (url, _gw) = gateway(prom.url(), "eu-west-1", Some(TOKEN)).await;
    let creds = [
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", TOKEN),
    ];
    let signed = ["--prometheus-address", url.as_str(), "--prometheus-sigv4"];

    // The region from the flag, then from AWS_REGION alone.
    let region_flag = [&signed[..], &["--prometheus-sigv4-region", "eu-west-1"]].concat();
    let (code, r, err) = allocate(&region_flag, &creds).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r["cpu"]["usage_cores"].as_f64(), Some(32.0), "{r}");
    assert_eq!(
        r["cpu"]["allocate_rate_percent"].as_f64(),
        Some(25.0),
        "{r}"
    );
    let with_region = [&creds[..], &[("AWS_REGION", "eu-west-1")]].concat();
    let (code, _, err) = allocate(&signed, &with_region).await;
    assert_eq!(code, Some(0), "{err}");

    // A wrong secret: the gateway's 403, exit 1, the flag named, no secret printed.
    let wrong = [
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ("AWS_SESSION_TOKEN", TOKEN),
        ("AWS_REGION", "eu-west-1"),
    ];
    let (code, _, err) = allocate(&signed, &wrong).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("403") && err.contains("--prometheus-sigv4"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-secret") && !err.contains(SECRET),
        "{err}"
    );
    // Signed for another region, or without the session token: refused too.
    let other = [&creds[..], &[("AWS_REGION", "us-east-1")]].concat();
    let (code, _, err) = allocate(&signed, &other).await;
    assert_eq!(code, Some(1), "{err}");
    let (code, _, err) = allocate(&signed, &with_region[1..]).await;
    assert_eq!(code, Some(2), "no access key id is a usage error: {err}");
    let no_token = [&creds[..2], &[("AWS_REGION", "eu-west-1")]].concat();
    let (code, _, err) = allocate(&signed, &no_token).await;
    assert_eq!(code, Some(1), "{err}");
    // Unsigned, the gateway refuses; no region anywhere is a usage error.
    let (code, _, err) = allocate(&["--prometheus-address", url.as_str()], &[]).await;
    assert_eq!(code, Some(1), "{err}");
    let (code, _, err) = allocate(&signed, &creds).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--prometheus-sigv4-region"), "{err}");
    // SigV4 and a bearer token at once is a usage error.
    let (code, _, err) = allocate(
        &[&signed[..], &["--prometheus-token-file", "/x"]].concat(),
        &creds,
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
}
