//! The `steward` binary as people run it: help, version, the kubectl plugin name,
//! and one clear line for every way of pointing it at a cluster wrongly.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::Path;
use std::process::{Command, Output};

fn steward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBE_CONFIG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A failure is exactly one line on stderr, names `needle`, and shows no panic.
fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(
        !out.status.success(),
        "expected failure, got {:?}",
        out.status
    );
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        lines[0].contains(needle),
        "error does not name {needle}: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn help_lists_only_real_subcommands() {
    let out = steward(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in ["version", "sim"] {
        assert!(help.contains(cmd), "--help lacks {cmd}:\n{help}");
    }
    assert!(
        help.contains("--lang") && help.contains("--log-format"),
        "{help}"
    );
}

#[test]
fn version_client_in_english_and_korean() {
    let out = steward(&["version", "--client"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))
    );
    let out = steward(&["--lang", "ko", "version", "--client"]);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("클라이언트 버전: v{}", env!("CARGO_PKG_VERSION"))
    );
    let out = steward(&["version", "--client", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["clientVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn version_reports_the_real_api_server() {
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let out = steward(&["version", "--kubeconfig", &kubeconfig, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["serverVersion"].as_str().unwrap().starts_with("v1."),
        "{v}"
    );
    // KUBECONFIG and --context work too.
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["version", "--context", "steward-sim"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Server Version: v1."));
}

#[test]
fn missing_kubeconfig_is_one_line_naming_the_path() {
    assert_one_line_error(
        &steward(&["version", "--kubeconfig", "/nonexistent/kubeconfig"]),
        "/nonexistent/kubeconfig",
    );
}

#[test]
fn unreadable_kubeconfig_is_one_line_naming_the_path() {
    let dir = tempdir("garbage");
    let path = dir.join("config");
    std::fs::write(&path, "this: [is not: a kubeconfig").unwrap();
    assert_one_line_error(
        &steward(&["version", "--kubeconfig", path.to_str().unwrap()]),
        path.to_str().unwrap(),
    );
}

#[test]
fn unknown_context_is_one_line_naming_it() {
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let out = steward(&[
        "version",
        "--kubeconfig",
        &kubeconfig,
        "--context",
        "prod-eu",
    ]);
    assert_one_line_error(&out, "\"prod-eu\"");
    assert!(
        text(&out.stderr).contains("steward-sim"),
        "does not list the available contexts"
    );
}

#[test]
fn unreachable_api_server_is_one_line_naming_the_address() {
    // Held for this test binary: nothing else can start listening there.
    let port = testkit::free_port();
    let dir = tempdir("unreachable");
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let out = steward(&[
        "version",
        "--kubeconfig",
        path.to_str().unwrap(),
        "--connect-timeout",
        "3s",
    ]);
    assert_one_line_error(&out, &format!("127.0.0.1:{port}"));
}

#[test]
fn wrong_flag_value_names_the_flag() {
    let out = steward(&["version", "--kube-config", "laptop"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--kube-config") && err.contains("local") && err.contains("github_action"),
        "{err}"
    );
}

#[test]
fn works_as_a_kubectl_plugin() {
    let dir = tempdir("plugin");
    let plugin = dir.join("kubectl-steward");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_steward"), &plugin).unwrap();
    let out = Command::new(&plugin).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("Usage: kubectl steward"),
        "{}",
        text(&out.stdout)
    );
    // And through kubectl itself, which finds plugins on PATH.
    let kubectl = testkit::bin_dir().unwrap().join("kubectl");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(kubectl)
        .args(["steward", "version", "--client"])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Client Version: v"));
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("steward-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Path::new(&dir).is_dir());
    dir
}

/// The documented exit statuses (`steward --help`, docs/operations.md): 2 for
/// input that is wrong, 4 for a dependency that cannot be reached.
#[test]
fn exit_codes_say_what_kind_of_failure() {
    let usage = steward(&["version", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(usage.status.code(), Some(2), "missing kubeconfig");
    let flag = steward(&["version", "--kube-config", "laptop"]);
    assert_eq!(flag.status.code(), Some(2), "wrong flag value");
    let port = testkit::free_port();
    let dir = tempdir("unreachable-exit");
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let unreachable = steward(&[
        "version",
        "--kubeconfig",
        path.to_str().unwrap(),
        "--connect-timeout",
        "2s",
    ]);
    assert_eq!(
        unreachable.status.code(),
        Some(4),
        "{}",
        text(&unreachable.stderr)
    );
    let help = text(&steward(&["--help"]).stdout);
    assert!(help.contains("Exit status"), "{help}");
}

#[test]
fn completion_scripts_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_steward()"),
        ("zsh", "#compdef steward"),
        ("fish", "complete -c steward"),
    ] {
        let out = steward(&["completion", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
        assert!(
            script.contains("graceful-drain"),
            "{shell} completion lacks subcommands"
        );
    }
    assert_eq!(steward(&["completion", "tcsh"]).status.code(), Some(2));
}

#[test]
fn ottoscaler_leader_election_flags_are_checked_before_anything_starts() {
    let port = format!("127.0.0.1:{}", testkit::free_port());
    let admin = format!("127.0.0.1:{}", testkit::free_port());
    let base = [
        "ottoscaler",
        "serve",
        "--token",
        "t",
        "--listen",
        &port,
        "--admin-addr",
        &admin,
    ];
    let local = [&base[..], &["--backend", "local", "--leader-elect"]].concat();
    let out = steward(&local);
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out, "--leader-elect: needs --backend kubernetes");
    // Nowhere to advertise: a wildcard listen address and no POD_IP.
    let wild = [
        "ottoscaler",
        "serve",
        "--token",
        "t",
        "--listen",
        "0.0.0.0:0",
        "--admin-addr",
        &admin,
        "--leader-elect",
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(wild)
        .env_remove("POD_IP")
        .env_remove("OTTOSCALER_ADVERTISE_ADDR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out, "--advertise-addr");
    // Webhooks: signed or not at all, and only to http(s) URLs.
    let local = [&base[..], &["--backend", "local"]].concat();
    let unsigned = [&local[..], &["--notify-url", "http://127.0.0.1:9/hook"]].concat();
    let out = steward(&unsigned);
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out, "--notify-secret-file: required with --notify-url");
    let out = steward(&[&local[..], &["--notify-url", "ftp://example.com/x"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--notify-url"),
        "{}",
        text(&out.stderr)
    );
    // Teams: a wrong file is refused naming the field, and so is an audit log that
    // cannot be opened; nothing is served either way.
    let dir = tempfile::tempdir().unwrap();
    let teams = dir.path().join("teams.yaml");
    std::fs::write(&teams, "teams:\n  web:\n    token_sha256: nothex\n").unwrap();
    let t = teams.to_str().unwrap();
    let out = steward(&[&local[..], &["--teams-file", t]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("teams.web.token_sha256: 64 hex digits are needed"),
        "{}",
        text(&out.stderr)
    );
    let hash = "a".repeat(64);
    std::fs::write(
        &teams,
        format!("teams:\n  web:\n    token_sha256: {hash}\n"),
    )
    .unwrap();
    let audit = [
        "--teams-file",
        t,
        "--audit-log",
        "/nonexistent/dir/audit.jsonl",
    ];
    let out = steward(&[&local[..], &audit[..]].concat());
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("--audit-log /nonexistent/dir/audit.jsonl"),
        "{}",
        text(&out.stderr)
    );
}
