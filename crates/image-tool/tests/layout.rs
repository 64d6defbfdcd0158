//! The archive image-tool writes, read back by an independent reader: the layout
//! rules (digests, sizes, media types, diff_ids), the config a runtime applies, the
//! layer's files, byte-for-byte reproducibility across processes and input paths,
//! skopeo's view of it, and refused input. A fixed fake static binary stands in for
//! steward here; tests/image_script.rs does the same with the real one.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::path::Path;
use std::process::Command;

use common::{fake_static_elf, read_layout};

const TOOL: &str = env!("CARGO_BIN_EXE_image-tool");

/// Runs image-tool with the usual flags; `extra` pairs replace flags of the same name.
fn run_tool(binary: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut flags = vec![
        ("--name", "registry.example.com/ops/steward"),
        ("--tag", "1.2.3"),
        ("--revision", "0123abcd"),
        ("--source", "https://example.invalid/steward"),
        ("--created", "1700000000"),
    ];
    for pair in extra.chunks(2) {
        flags.retain(|(f, _)| *f != pair[0]);
        flags.push((pair[0], pair[1]));
    }
    Command::new(TOOL)
        .args(flags.iter().flat_map(|(f, v)| [*f, *v]))
        .arg("--binary")
        .arg(binary)
        .arg("--out")
        .arg(out)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn build(dir: &Path, binary_bytes: &[u8]) -> Vec<u8> {
    let bin = dir.join("steward");
    std::fs::write(&bin, binary_bytes).unwrap();
    let out = dir.join("image.tar");
    let o = run_tool(&bin, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).unwrap()
}

#[test]
fn two_builds_from_different_places_give_the_same_bytes() {
    let bin = fake_static_elf(b"steward");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = build(a.path(), &bin);
    // A different path, a different file mtime and mode of the input binary.
    let nested = b.path().join("x/y");
    std::fs::create_dir_all(&nested).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = build(&nested, &bin);
    assert!(first == second, "archives differ");
    let other = build(a.path(), &fake_static_elf(b"other"));
    assert_ne!(
        read_layout(&first).manifest_digest,
        read_layout(&other).manifest_digest,
        "a different binary must give a different image"
    );
}

#[test]
fn layout_config_and_layer_are_what_a_runtime_needs() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_static_elf(b"steward");
    let l = read_layout(&build(dir.path(), &bin));
    let ann = &l.index["manifests"][0]["annotations"];
    assert_eq!(ann["org.opencontainers.image.ref.name"], "1.2.3");
    assert_eq!(
        ann["io.containerd.image.name"],
        "registry.example.com/ops/steward:1.2.3"
    );
    assert_eq!(
        l.index["manifests"][0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    let c = &l.config;
    assert_eq!(
        (c["os"].as_str(), c["architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    assert_eq!(c["created"], "2023-11-14T22:13:20Z");
    assert_eq!(c["config"]["User"], "65532:65532");
    assert_eq!(
        c["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/steward"])
    );
    assert!(c["config"].get("Cmd").is_none());
    assert_eq!(
        c["config"]["Labels"],
        serde_json::json!({
            "org.opencontainers.image.source": "https://example.invalid/steward",
            "org.opencontainers.image.version": "1.2.3",
            "org.opencontainers.image.revision": "0123abcd",
        })
    );
    assert_eq!(c["history"].as_array().map(Vec::len), Some(1));

    let files: Vec<(&str, u32, bool)> = l
        .layer
        .iter()
        .map(|e| (e.path.as_str(), e.mode, e.dir))
        .collect();
    assert_eq!(
        files,
        vec![
            ("etc/", 0o755, true),
            ("etc/group", 0o644, false),
            ("etc/passwd", 0o644, false),
            ("etc/ssl/", 0o755, true),
            ("etc/ssl/certs/", 0o755, true),
            ("etc/ssl/certs/ca-certificates.crt", 0o644, false),
            ("tmp/", 0o1777, true),
            ("usr/", 0o755, true),
            ("usr/local/", 0o755, true),
            ("usr/local/bin/", 0o755, true),
            ("usr/local/bin/steward", 0o755, false),
        ],
        "no shell, no package manager, nothing but these"
    );
    for e in l.layer.iter().chain(&l.archive_entries) {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 1_700_000_000), "{}", e.path);
    }
    let steward = l
        .layer
        .iter()
        .find(|e| e.path == "usr/local/bin/steward")
        .unwrap();
    assert_eq!(steward.data, bin);
    let bundle = &l
        .layer
        .iter()
        .find(|e| e.path.ends_with("ca-certificates.crt"))
        .unwrap()
        .data;
    let roots = String::from_utf8_lossy(bundle)
        .matches("-----BEGIN CERTIFICATE-----")
        .count();
    assert!(roots > 100, "{roots} CA roots in the bundle");
}

#[test]
fn skopeo_reads_the_archive_as_we_do() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    std::fs::write(&archive, build(dir.path(), &fake_static_elf(b"steward"))).unwrap();
    let l = read_layout(&std::fs::read(&archive).unwrap());
    let skopeo = |args: &[&str]| {
        let o = Command::new("skopeo")
            .args(args)
            .arg(format!("oci-archive:{}", archive.display()))
            .output()
            .expect("skopeo (hack/setup.sh installs it)");
        assert!(
            o.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let inspect = skopeo(&["inspect"]);
    assert_eq!(inspect["Digest"], l.manifest_digest.as_str());
    assert_eq!(inspect["Labels"], l.config["config"]["Labels"]);
    assert_eq!(
        inspect["Layers"],
        serde_json::json!([l.manifest["layers"][0]["digest"]])
    );
    assert_eq!(skopeo(&["inspect", "--raw"]), l.manifest);
    assert_eq!(skopeo(&["inspect", "--config", "--raw"]), l.config);
    // Copying it elsewhere keeps the manifest byte for byte, so the digest a registry
    // reports after `skopeo copy` is the one built here.
    let copied = dir.path().join("copied");
    let o = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("dir:{}", copied.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest = std::fs::read(copied.join("manifest.json")).unwrap();
    assert_eq!(common::sha256(&manifest), l.manifest_digest);
    // Selecting by the tag recorded as the ref name works too.
    let o = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}:1.2.3", archive.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn bad_input_is_refused_by_name_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("steward");
    std::fs::write(&fake, fake_static_elf(b"x")).unwrap();
    // This test's own executable is dynamically linked against glibc.
    let dynamic = std::env::current_exe().unwrap();
    let cases: Vec<(&Path, Vec<&str>, &str)> = vec![
        (&dynamic, vec![], "--binary: is dynamically linked"),
        (
            Path::new("/nonexistent/steward"),
            vec![],
            "reading /nonexistent/steward",
        ),
        (
            &fake,
            vec!["--tag", "1.0+build"],
            "--tag: \"1.0+build\" is not a valid tag",
        ),
        (
            &fake,
            vec!["--name", "Steward"],
            "--name: \"Steward\" is not a repository name",
        ),
        (
            &fake,
            vec!["--arch", "s390x"],
            "--arch: \"s390x\" is not amd64 or arm64",
        ),
    ];
    for (binary, extra, want) in cases {
        let out = dir.path().join("image.tar");
        let o = run_tool(binary, &out, &extra);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{want}: succeeded");
        assert!(err.contains(want), "want {want:?} in {err}");
        assert!(!out.exists(), "{want}: wrote {}", out.display());
        assert!(!out.with_extension("tmp").exists());
    }
}
