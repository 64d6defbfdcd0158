//! Writes steward's container image without a container engine: an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) in one tar archive, which
//! `ctr images import`, `skopeo copy oci-archive:` and (unpacked) `crane push` load.
//! `hack/image.sh` builds the static binary and calls this crate's `image-tool`.
//!
//! Why a small crate here and not a Go tool: the OCI JSON types come from
//! `oci-spec` (youki's, the Rust implementation of the image spec), tar and gzip from
//! `tar` and `flate2`; what is left is choosing bytes for reproducibility, which is
//! the point: every tar header is written from the entry alone, entries are sorted,
//! JSON keys are sorted, timestamps are the commit time. Building from the same
//! binary and meta data gives the same bytes, so the same manifest digest.
//! `ocidir` (bootc) writes layout directories but links OpenSSL and stamps history
//! with the wall clock; go-containerregistry's `crane` appends layers but writes
//! docker-style tarballs or needs a registry to produce a layout, and `umoci` packs
//! a rootfs directory whose mtimes and owners would have to be faked first. All of
//! them would also need their own build step and pin; this crate is tested by
//! `cargo test` with the rest of the workspace.

pub mod elf;
pub mod error;
pub mod image;
pub mod layer;
pub mod rootfs;

pub use error::{Error, Result};

use layer::Entry;
use oci_spec::image::MediaType;

/// The image, ready to write: the archive bytes and what names it.
#[derive(Debug)]
pub struct Built {
    /// The tar archive of the OCI layout.
    pub archive: Vec<u8>,
    /// `sha256:…` of the image manifest: the digest a registry reports.
    pub manifest_digest: String,
    /// The full reference recorded for containerd, e.g. `localhost/steward:0.1.0`.
    pub reference: String,
    /// Size of the compressed layer in bytes.
    pub layer_size: usize,
    /// Size of the uncompressed layer in bytes.
    pub layer_uncompressed: usize,
}

/// Builds the image of this binary.
pub fn build(meta: &image::Meta, binary: Vec<u8>) -> Result<Built> {
    let reference = image::check(meta)?;
    elf::check_static(&binary, &meta.arch)?;
    let mtime =
        u64::try_from(meta.created).map_err(|_| error::invalid("--created", "is before 1970"))?;
    let layer_tar = layer::tar(&rootfs::entries(binary), mtime, "image layer")?;
    let layer = image::Blob {
        media_type: MediaType::ImageLayerGzip,
        bytes: layer::gzip(&layer_tar, "image layer")?,
    };
    let config = image::config(meta, &layer::sha256(&layer_tar))?;
    let manifest = image::manifest(&config, &layer)?;
    let index = image::index(meta, &manifest)?;
    let archive = layout(&index, &[&config, &layer, &manifest], mtime)?;
    Ok(Built {
        archive,
        manifest_digest: manifest.digest(),
        reference,
        layer_size: layer.bytes.len(),
        layer_uncompressed: layer_tar.len(),
    })
}

/// The OCI image layout of these blobs as a tar archive.
pub fn layout(index: &[u8], blobs: &[&image::Blob], mtime: u64) -> Result<Vec<u8>> {
    let oci_layout = image::canonical(
        &serde_json::json!({ "imageLayoutVersion": "1.0.0" }),
        "oci-layout",
    )?;
    let mut entries = vec![
        Entry::file("oci-layout", 0o644, oci_layout),
        Entry::file("index.json", 0o644, index),
        Entry::dir("blobs", 0o755),
        Entry::dir("blobs/sha256", 0o755),
    ];
    for b in blobs {
        let digest = b.digest();
        let hex = digest.trim_start_matches("sha256:");
        entries.push(Entry::file(
            &format!("blobs/sha256/{hex}"),
            0o644,
            b.bytes.clone(),
        ));
    }
    layer::tar(&entries, mtime, "image archive")
}
