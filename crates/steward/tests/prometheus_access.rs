//! `steward karpenter allocate-rate` against a Prometheus that is not open: a real
//! Prometheus with basic auth and mutual TLS from its own `--web.config.file`, the
//! same Prometheus behind a bearer-token proxy (as Mimir's gateway or an
//! oauth2-proxy put it), and one Prometheus holding two clusters' series that
//! `--prometheus-selector` keeps apart. Every figure the test expects is written
//! into the exporters here, never computed with steward's code.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

#[path = "chart_support/mod.rs"]
mod chart_support;
#[path = "prometheus_support/mod.rs"]
mod prometheus_support;

use std::path::Path;
use std::time::Duration;

use prometheus_support::{Gate, POOL, certificates, exporter, proxy};
use serde_json::Value;
use testkit::prometheus::Prometheus;

const T: Duration = Duration::from_secs(60);

/// `allocate-rate -o json` of [`POOL`] with `args`; (exit status, the report or
/// Null, stderr).
async fn allocate(args: &[&str]) -> (Option<i32>, Value, String) {
    let no_env: [(&str, &str); 0] = [];
    allocate_with(&[&["--nodepool-name", POOL], args].concat(), no_env).await
}

/// `allocate-rate -o json` with `args` and only the environment `env` (so
/// nothing of the test's own environment reaches it).
async fn allocate_with<K, V>(
    args: &[&str],
    env: impl IntoIterator<Item = (K, V)>,
) -> (Option<i32>, Value, String)
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["karpenter", "allocate-rate", "-o", "json"])
        .args(args)
        .env_clear()
        .envs(env)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code(), report, stderr.into_owned())
}

fn cpu_usage(report: &Value) -> f64 {
    report["cpu"]["usage_cores"].as_f64().unwrap()
}

#[tokio::test]
async fn the_selector_keeps_two_clusters_of_one_tenant_apart() {
    let a = exporter(48.0, 12.0).await;
    let b = exporter(16.0, 12.0).await;
    let scrape = format!(
        "- job_name: karpenter\n  static_configs:\n  - targets: ['{a}']\n    labels: {{cluster: prod-a}}\n  - targets: ['{b}']\n    labels: {{cluster: prod-b}}\n"
    );
    let prom = Prometheus::start_with(&scrape, None).await.unwrap();
    prom.wait_for_series("count(karpenter_nodepools_usage) >= 4", T)
        .await
        .unwrap();
    let addr = ["--prometheus-address", prom.url()];

    // Without a selector both clusters are summed: 64 cores, 24 requested.
    let (code, all, err) = allocate(&addr).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(cpu_usage(&all), 64.0);
    for (cluster, cores, rate) in [("prod-a", 48.0, 25.0), ("prod-b", 16.0, 75.0)] {
        let sel = format!("cluster=\"{cluster}\"");
        let (code, r, err) =
            allocate(&[&addr[..], &["--prometheus-selector", &sel]].concat()).await;
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(cpu_usage(&r), cores, "{r}");
        assert_eq!(
            r["cpu"]["allocate_rate_percent"].as_f64(),
            Some(rate),
            "{r}"
        );
        assert_eq!(r["selector"], sel.as_str());
        let queries = r["queries"].as_array().unwrap();
        assert_eq!(queries.len(), 5, "{r}");
        assert!(
            queries.iter().all(|q| q.as_str().unwrap().contains(&sel)),
            "every query carries the selector: {r}"
        );
    }
    // The node-manager tool's denominator, behind its flag: the NodePool usage
    // metric (the exporter's says twice the allocatable), selector and all.
    let (code, r, err) = allocate(
        &[
            &addr[..],
            &[
                "--prometheus-selector",
                "cluster=\"prod-b\"",
                "--capacity-metric",
                "usage",
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(cpu_usage(&r), 32.0, "{r}");
    assert_eq!(r["capacity_metric"], "usage", "{r}");
    assert!(
        r["queries"][1]
            .as_str()
            .unwrap()
            .starts_with("sum(karpenter_nodepools_usage{"),
        "{r}"
    );
    let (code, _, err) = allocate(&[&addr[..], &["--capacity-metric", "requests"]].concat()).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--capacity-metric"), "{err}");
    // A selector PromQL would not parse stops before any query, naming the flag.
    let (code, _, err) =
        allocate(&[&addr[..], &["--prometheus-selector", "cluster=prod-a"]].concat()).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--prometheus-selector") && err.contains("double quotes"),
        "{err}"
    );
}

#[tokio::test]
async fn basic_auth_and_mutual_tls_from_prometheus_web_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let [ca, srv, srv_key, cli, cli_key] = certificates(dir);
    let password = "correct horse battery staple";
    let hash = bcrypt::hash(password, 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\nbasic_auth_users:\n  steward: '{hash}'\n",
        srv.display(),
        srv_key.display(),
        ca.display()
    );
    let target = exporter(40.0, 10.0).await;
    let scrape = format!("- job_name: karpenter\n  static_configs:\n  - targets: ['{target}']\n");
    let prom = Prometheus::start_with(&scrape, Some(&web)).await.unwrap();
    let url = format!("https://127.0.0.1:{}", prom.port());
    let good_pw = dir.join("password");
    std::fs::write(&good_pw, format!("{password}\n")).unwrap();
    let bad_pw = dir.join("wrong");
    std::fs::write(&bad_pw, "hunter2\n").unwrap();
    let (ca, cli, cli_key) = (
        ca.display().to_string(),
        cli.display().to_string(),
        cli_key.display().to_string(),
    );
    let tls = [
        "--prometheus-address",
        url.as_str(),
        "--prometheus-ca-file",
        &ca,
        "--prometheus-cert-file",
        &cli,
        "--prometheus-key-file",
        &cli_key,
    ];
    let user = |pw: &Path| {
        vec![
            "--prometheus-username".to_string(),
            "steward".to_string(),
            "--prometheus-password-file".to_string(),
            pw.display().to_string(),
        ]
    };
    let (good, bad, missing_file) = (user(&good_pw), user(&bad_pw), user(&dir.join("missing")));
    let (good, bad, missing_file) = (strs(&good), strs(&bad), strs(&missing_file));
    // Everything right: the series are read (Prometheus scrapes within a second or two).
    let ok = [&tls[..], &good[..]].concat();
    testkit::wait::until(T, "allocate-rate through basic auth and mTLS", || async {
        let (code, r, err) = allocate(&ok).await;
        anyhow::ensure!(
            code == Some(0) || err.contains("no karpenter"),
            "{code:?} {err}"
        );
        Ok(code == Some(0) && cpu_usage(&r) == 40.0)
    })
    .await
    .unwrap();
    // A wrong password: Prometheus answers 401; the error names the flag, never the password.
    let (code, _, err) = allocate(&[&tls[..], &bad[..]].concat()).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("401") && err.contains("--prometheus-password-file"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    // No client certificate: the handshake is refused.
    let (code, _, err) = allocate(&[&tls[..4], &good[..]].concat()).await;
    assert_ne!(code, Some(0), "{err}");
    // The system's roots do not know this CA.
    let no_ca = [&tls[..2], &tls[4..], &good[..]].concat();
    let (code, _, err) = allocate(&no_ca).await;
    assert_ne!(code, Some(0), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // A missing file is a flag error before any query.
    let (code, _, err) = allocate(&[&tls[..], &missing_file[..]].concat()).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--prometheus-password-file") && err.contains("missing"),
        "{err}"
    );

    // The chart's settings, as its CronJob passes them, reach the same Prometheus.
    let chart_env = chart_env(&url, dir);
    std::fs::write(dir.join("auth/password"), password).unwrap();
    for (from, to) in [
        ("ca.pem", "ca.crt"),
        ("client.pem", "tls.crt"),
        ("client-key.pem", "tls.key"),
    ] {
        std::fs::copy(dir.join(from), dir.join("tls").join(to)).unwrap();
    }
    let (code, r, err) = allocate_with(&[], chart_env).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(cpu_usage(&r), 40.0, "{r}");
    assert_eq!(r["selector"], r#"job="karpenter""#, "{r}");
}

/// The drain CronJob's environment as `helm template` renders it with basic auth,
/// mutual TLS, a selector and a header, its Secret mounts moved under `dir`
/// (`auth/`, `tls/`, created empty here).
fn chart_env(url: &str, dir: &Path) -> Vec<(String, String)> {
    let objs = chart_support::render(
        &[
            "drain.enabled=true",
            &format!("drain.nodepoolName={POOL}"),
            &format!("drain.prometheus.address={url}"),
            r#"drain.prometheus.selector=job="karpenter""#,
            "drain.prometheus.headers.X-Team=platform",
            "drain.prometheus.auth.existingSecret=prom-auth",
            "drain.prometheus.auth.username=steward",
            "drain.prometheus.tls.existingSecret=prom-tls",
            "drain.prometheus.tls.clientCert=true",
        ],
        false,
    );
    let spec = chart_support::pod_spec(chart_support::find(&objs, "CronJob", "-drain"));
    let secrets: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["secret"]["secretName"].as_str().unwrap())
        .collect();
    assert_eq!(secrets, ["prom-auth", "prom-tls"], "{spec}");
    let mut moved = Vec::new();
    for m in spec["containers"][0]["volumeMounts"].as_array().unwrap() {
        assert_eq!(m["readOnly"], true, "{m}");
        let to = dir.join(if m["name"] == "prometheus-auth" {
            "auth"
        } else {
            "tls"
        });
        std::fs::create_dir_all(&to).unwrap();
        moved.push((
            format!("{}/", m["mountPath"].as_str().unwrap()),
            format!("{}/", to.display()),
        ));
    }
    let mut env = Vec::new();
    for e in spec["containers"][0]["env"].as_array().unwrap() {
        // Plain values only: a credential is a file in a mount.
        let Some(value) = e["value"].as_str() else {
            continue;
        };
        let value = moved
            .iter()
            .fold(value.to_string(), |v, (from, to)| v.replace(from, to));
        env.push((e["name"].as_str().unwrap().to_string(), value));
    }
    env
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn a_bearer_token_file_and_extra_headers_through_a_gateway() {
    let target = exporter(32.0, 8.0).await;
    let prom = Prometheus::start("karpenter", &[target]).await.unwrap();
    prom.wait_for_series("karpenter_nodepools_usage", T)
        .await
        .unwrap();
    let token = "tok-3f9a";
    let url = proxy(Gate {
        upstream: prom.url().to_string(),
        token: token.into(),
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let file = file.display().to_string();
    let base = [
        "--prometheus-address",
        url.as_str(),
        "--prometheus-token-file",
        file.as_str(),
    ];

    let (code, r, err) =
        allocate(&[&base[..], &["--prometheus-header", "X-Team: platform"]].concat()).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(cpu_usage(&r), 32.0);
    assert_eq!(
        r["cpu"]["allocate_rate_percent"].as_f64(),
        Some(25.0),
        "{r}"
    );
    // The same, the header from the environment (one per line).
    let headers = [("PROMETHEUS_HEADERS", "X-Other: 1\nX-Team: platform")];
    let with_pool = [&["--nodepool-name", POOL], &base[..]].concat();
    let (code, r, err) = allocate_with(&with_pool, headers).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(cpu_usage(&r), 32.0);
    // Without the header the gateway refuses: exit 1, naming the credentials.
    let (code, _, err) = allocate(&base).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("401") && err.contains("--prometheus-token-file"),
        "{err}"
    );
    assert!(!err.contains(token), "the token is never printed: {err}");
    // Authorization as a header would put the token on the command line: refused.
    let (code, _, err) = allocate(&[
        "--prometheus-address",
        url.as_str(),
        "--prometheus-header",
        "Authorization: Bearer x",
    ])
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--prometheus-header"), "{err}");
    // A token and basic auth at once is a usage error.
    let (code, _, err) = allocate(
        &[
            &base[..],
            &[
                "--prometheus-username",
                "u",
                "--prometheus-password-file",
                "/x",
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
}
