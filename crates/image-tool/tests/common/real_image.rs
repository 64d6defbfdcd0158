//! The real image, built once per test binary by `hack/image.sh` (twice, to compare),
//! and the ways a test uses it: its unpacked rootfs and the binary run in it under
//! `chroot` as 65532:65532.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use super::{Layout, read_layout, unpack_layer};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct Image {
    pub first: Vec<u8>,
    pub second: Vec<u8>,
    pub path: PathBuf,
    pub layout: Layout,
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn work() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-script")
}

pub fn require_root() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the image tests need root: chroot, a DNS stand-in on port 53, containerd"
    );
}

/// `hack/image.sh` into `out_dir`; returns the path it printed last.
pub fn run_script(out_dir: &Path) -> PathBuf {
    let start = Instant::now();
    let o = Command::new(repo().join("hack/image.sh"))
        .env("IMAGE_TOOL", env!("CARGO_BIN_EXE_image-tool"))
        .env("STEWARD_IMAGE_DIR", out_dir)
        .env_remove("STEWARD_IMAGE")
        .env_remove("STEWARD_IMAGE_TAG")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "hack/image.sh failed:\n{stderr}");
    eprintln!(
        "hack/image.sh took {:.1}s: {}",
        start.elapsed().as_secs_f64(),
        stderr.lines().last().unwrap_or("")
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("hack/image.sh printed no path"),
    )
}

pub fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        require_root();
        let _ = fs::remove_dir_all(work());
        fs::create_dir_all(work()).unwrap();
        let a = run_script(&work().join("a"));
        let b = run_script(&work().join("b"));
        let (first, second) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
        let layout = read_layout(&first);
        Image {
            first,
            second,
            path: a,
            layout,
        }
    })
}

/// The image's layer unpacked into a fresh directory, as a runtime would.
pub fn rootfs() -> tempfile::TempDir {
    let layer = &image().layout.layer_gz;
    let dir = tempfile::tempdir_in(work()).unwrap();
    unpack_layer(layer, dir.path());
    // tempdir makes 0700 directories; the image's / is 0755 like any root.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `chroot --userspec=65532:65532 ROOT /usr/local/bin/steward ARGS` with only `env`.
pub fn steward_in(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    // Resolved here: the child's environment is cleared, PATH included.
    static CHROOT: OnceLock<PathBuf> = OnceLock::new();
    let chroot = CHROOT.get_or_init(|| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("chroot"))
            .find(|p| p.is_file())
            .expect("chroot (coreutils) on PATH")
    });
    Command::new(chroot)
        .arg("--userspec=65532:65532")
        .arg(root)
        .arg("/usr/local/bin/steward")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
