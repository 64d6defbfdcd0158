//! `test-image-pack`: one static program as an OCI image archive that the real
//! nodes' containerd imports (`hack/realnode/images.sh` runs it for the pause
//! sandbox and the test images of `crates/test-images`).
//!
//! The archive writer is image-tool's (`hack/image.sh`): its deterministic layer and
//! layout tar, gzip, manifest, index with both names containerd and the kubelet
//! look up. Only what differs from steward's own image is here: the rootfs (the
//! program at `/<name>`, `/etc/passwd` and `/etc/group` naming root and the
//! runtime user, `/tmp`) and the config's entrypoint and user.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use image_tool::image::{self, Blob, Meta};
use image_tool::layer::{self, Entry};
use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder, MediaType, Os, RootFsBuilder};

/// Packs a static program into an OCI image layout archive.
#[derive(Debug, Parser)]
#[command(name = "test-image-pack")]
struct Args {
    /// The static program; it lands at /<its file name> (or `--dir`) and is the entrypoint.
    #[arg(long)]
    binary: PathBuf,
    /// Directory of the program inside the image, e.g. `bin` (its path must not be
    /// one a pod mounts a volume at: Prometheus keeps its data in /prometheus).
    #[arg(long)]
    dir: Option<String>,
    /// The `source` label (where the program comes from).
    #[arg(long, default_value = "crates/test-images")]
    source: String,
    /// Repository without tag, e.g. steward.local/test-http.
    #[arg(long)]
    name: String,
    /// Tag.
    #[arg(long, default_value = "1")]
    tag: String,
    /// uid:gid the container runs as.
    #[arg(long, default_value = "65534:65534")]
    user: String,
    /// The archive to write.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let program =
        std::fs::read(&a.binary).with_context(|| format!("reading {}", a.binary.display()))?;
    image_tool::elf::check_static(&program, "amd64")?;
    let file = a
        .binary
        .file_name()
        .and_then(|f| f.to_str())
        .context("--binary: no file name")?;
    let file = match &a.dir {
        Some(d) => format!("{}/{file}", d.trim_matches('/')),
        None => file.to_string(),
    };
    let meta = Meta {
        name: a.name.clone(),
        tag: a.tag.clone(),
        version: a.tag.clone(),
        revision: "test".into(),
        source: a.source.clone(),
        created: 0,
        arch: "amd64".into(),
    };
    let reference = image::check(&meta)?;
    let uid = a.user.split(':').next().unwrap_or_default();
    let mut entries = vec![Entry::dir("etc", 0o755)];
    if let Some(d) = &a.dir {
        entries.push(Entry::dir(d.trim_matches('/'), 0o755));
    }
    entries.extend([
        Entry::file(
            "etc/passwd",
            0o644,
            format!("root:x:0:0:root:/:/sbin/nologin\nuser:x:{uid}:{uid}:user:/:/sbin/nologin\n"),
        ),
        Entry::file("etc/group", 0o644, format!("root:x:0:\nuser:x:{uid}:\n")),
        Entry::file(&file, 0o755, program),
        Entry::dir("tmp", 0o1777),
    ]);
    let layer_tar = layer::tar(&entries, 0, "image layer")?;
    let layer = Blob {
        media_type: MediaType::ImageLayerGzip,
        bytes: layer::gzip(&layer_tar, "image layer")?,
    };
    let config = config(&a.user, &format!("/{file}"), &layer::sha256(&layer_tar))?;
    let manifest = image::manifest(&config, &layer)?;
    let index = image::index(&meta, &manifest)?;
    let archive = image_tool::layout(&index, &[&config, &layer, &manifest], 0)?;
    let tmp = a.out.with_extension("tmp");
    std::fs::write(&tmp, archive)
        .and_then(|()| std::fs::rename(&tmp, &a.out))
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "test-image-pack: {reference} manifest {}",
        manifest.digest()
    );
    Ok(())
}

/// The image configuration: entrypoint, user, one layer.
fn config(user: &str, entrypoint: &str, diff_id: &str) -> anyhow::Result<Blob> {
    let run = ConfigBuilder::default()
        .user(user.to_string())
        .entrypoint(vec![entrypoint.to_string()])
        .env(vec!["PATH=/".to_string()])
        .working_dir("/")
        .build()?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![diff_id.to_string()])
        .build()?;
    let c = ImageConfigurationBuilder::default()
        .created("1970-01-01T00:00:00Z".to_string())
        .architecture(oci_spec::image::Arch::Amd64)
        .os(Os::Linux)
        .config(run)
        .rootfs(rootfs)
        .build()?;
    Ok(Blob {
        media_type: MediaType::ImageConfig,
        bytes: image::canonical(&c, "config")?,
    })
}
