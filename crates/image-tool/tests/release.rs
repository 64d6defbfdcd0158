//! `hack/release.sh`: the static binary, the kubectl-steward archive, sha256 files
//! that `sha256sum -c` accepts, and a krew manifest that krew itself (built from its
//! Go module by hack/controlplane/build.sh) installs from the archive; the installed
//! plugin runs. Two runs give the same files. Reuses the musl build of
//! tests/image_script.rs (same target dir), so only the first of them compiles.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{sha256, tar_entries};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn release(dir: &Path) -> PathBuf {
    let o = Command::new(repo().join("hack/release.sh"))
        .env("STEWARD_RELEASE_DIR", dir)
        .env(
            "STEWARD_RELEASE_URL",
            "https://downloads.example.invalid/steward",
        )
        .env_remove("STEWARD_RELEASE_TARGETS")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "hack/release.sh failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).lines().last().unwrap())
}

/// `STEWARD_CONTROLPLANE_BIN` (hack/test.sh sets it), else what
/// hack/controlplane/build.sh prints (it builds only what is missing).
fn controlplane_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("STEWARD_CONTROLPLANE_BIN") {
        return PathBuf::from(dir);
    }
    let o = Command::new("bash")
        .arg(repo().join("hack/controlplane/build.sh"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "hack/controlplane/build.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

#[test]
fn release_files_check_and_krew_installs_the_plugin() {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = release(&work.path().join("a"));
    let again = release(&work.path().join("b"));
    let tag = format!("v{VERSION}");
    let plain = format!("steward-{tag}-linux-amd64");
    let archive = format!("kubectl-steward-{tag}-linux-amd64.tar.gz");
    for f in [
        plain.as_str(),
        archive.as_str(),
        "steward.yaml",
        "SHA256SUMS",
    ] {
        let (a, b) = (
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs between two runs");
    }
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let listed = String::from_utf8_lossy(&check.stdout);
    for f in [&plain, &archive, "steward.yaml"] {
        assert!(listed.contains(&format!("{f}: OK")), "{listed}");
        let one = Command::new("sha256sum")
            .args(["-c", &format!("{f}.sha256")])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(one.status.success(), "{f}.sha256");
    }

    // The archive: the binary under the plugin name, nothing else but a license.
    let gz = std::fs::read(dir.join(&archive)).unwrap();
    let mut tar_bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut tar_bytes).unwrap();
    let entries = tar_entries(&tar_bytes);
    let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let want: &[&str] = if repo().join("LICENSE").exists() {
        &["LICENSE", "kubectl-steward"]
    } else {
        &["kubectl-steward"]
    };
    assert_eq!(names, want);
    let bin = entries
        .iter()
        .find(|e| e.path == "kubectl-steward")
        .unwrap();
    assert_eq!((bin.mode, bin.uid, bin.gid), (0o755, 0, 0));
    assert_eq!(bin.data, std::fs::read(dir.join(&plain)).unwrap());

    // The manifest, as krew's schema has it.
    let m: serde_json::Value =
        serde_saphyr::from_slice(&std::fs::read(dir.join("steward.yaml")).unwrap()).unwrap();
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(m["metadata"]["name"], "steward");
    assert_eq!(m["spec"]["version"], tag.as_str());
    let platforms = m["spec"]["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 1);
    let p = &platforms[0];
    assert_eq!(p["selector"]["matchLabels"]["os"], "linux");
    assert_eq!(p["selector"]["matchLabels"]["arch"], "amd64");
    assert_eq!(p["bin"], "kubectl-steward");
    assert_eq!(
        p["uri"],
        format!("https://downloads.example.invalid/steward/{archive}").as_str()
    );
    assert_eq!(
        format!("sha256:{}", p["sha256"].as_str().unwrap()),
        sha256(&gz)
    );

    // krew installs it from the local archive (checking the sha256 against the
    // manifest) and the installed plugin runs.
    let krew = controlplane_bin().join("kubectl-krew");
    let root = work.path().join("krew");
    let o = Command::new(&krew)
        .arg("install")
        .arg(format!("--manifest={}", dir.join("steward.yaml").display()))
        .arg(format!("--archive={}", dir.join(&archive).display()))
        .env("KREW_ROOT", &root)
        .env("HOME", work.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "krew install: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let plugin = root.join("bin/kubectl-steward");
    let o = Command::new(&plugin)
        .args(["version", "--client"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains(&tag), "{o:?}");
    let help = Command::new(&plugin).arg("--help").output().unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("kubectl steward"),
        "{help:?}"
    );

    // A manifest whose checksum does not match the archive is refused by krew.
    let bad = work.path().join("steward.yaml");
    let text = std::fs::read_to_string(dir.join("steward.yaml")).unwrap();
    std::fs::write(
        &bad,
        text.replace(p["sha256"].as_str().unwrap(), &"0".repeat(64)),
    )
    .unwrap();
    let o = Command::new(&krew)
        .arg("install")
        .arg(format!("--manifest={}", bad.display()))
        .arg(format!("--archive={}", dir.join(&archive).display()))
        .env("KREW_ROOT", work.path().join("krew-bad"))
        .env("HOME", work.path())
        .output()
        .unwrap();
    assert!(!o.status.success(), "krew accepted a wrong sha256");
}
