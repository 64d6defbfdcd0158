//! Reads an image archive back and checks it against the OCI image-layout rules,
//! independently of the crate's own types: plain tar reading, serde_json values and
//! digests recomputed from the bytes.

#![allow(dead_code)]

pub mod containerd;
pub mod dns;
pub mod https;
pub mod real_image;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn sha256(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// One entry of a tar stream: path, mode, uid, gid, mtime, type, contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub path: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dir: bool,
    pub data: Vec<u8>,
}

pub fn tar_entries(data: &[u8]) -> Vec<TarEntry> {
    let mut a = tar::Archive::new(data);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            TarEntry {
                path: e.path().unwrap().display().to_string(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                dir: h.entry_type().is_dir(),
                data,
            }
        })
        .collect()
}

/// What a checked archive holds.
#[derive(Debug)]
pub struct Layout {
    pub index: Value,
    pub manifest_digest: String,
    pub manifest: Value,
    pub config: Value,
    /// The layer's entries, uncompressed.
    pub layer: Vec<TarEntry>,
    pub layer_gz: Vec<u8>,
    pub archive_entries: Vec<TarEntry>,
}

fn blob<'a>(blobs: &'a BTreeMap<String, Vec<u8>>, desc: &Value, media_type: &str) -> &'a [u8] {
    assert_eq!(desc["mediaType"], media_type, "{desc}");
    let digest = desc["digest"].as_str().unwrap();
    let data = blobs
        .get(digest)
        .unwrap_or_else(|| panic!("no blob {digest}"));
    assert_eq!(sha256(data), digest, "blob file name is not its digest");
    assert_eq!(desc["size"].as_u64(), Some(data.len() as u64), "{desc}");
    data
}

/// Checks the layout and returns its parts.
pub fn read_layout(archive: &[u8]) -> Layout {
    let entries = tar_entries(archive);
    let mut blobs = BTreeMap::new();
    let mut files = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.dir) {
        if let Some(hex) = e.path.strip_prefix("blobs/sha256/") {
            blobs.insert(format!("sha256:{hex}"), e.data.clone());
        } else {
            files.insert(e.path.clone(), e.data.clone());
        }
    }
    let layout: Value = serde_json::from_slice(&files["oci-layout"]).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(files.len(), 2, "files besides blobs: {:?}", files.keys());
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let m_desc = &manifests[0];
    let m_bytes = blob(&blobs, m_desc, "application/vnd.oci.image.manifest.v1+json");
    let manifest: Value = serde_json::from_slice(m_bytes).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let c_bytes = blob(
        &blobs,
        &manifest["config"],
        "application/vnd.oci.image.config.v1+json",
    );
    let config: Value = serde_json::from_slice(c_bytes).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let layer_gz = blob(
        &blobs,
        &layers[0],
        "application/vnd.oci.image.layer.v1.tar+gzip",
    )
    .to_vec();
    let mut layer_tar = Vec::new();
    flate2::read::GzDecoder::new(&layer_gz[..])
        .read_to_end(&mut layer_tar)
        .unwrap();
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([sha256(&layer_tar)]),
        "diff_id is not the digest of the uncompressed layer"
    );
    assert_eq!(blobs.len(), 3, "unreferenced blobs: {:?}", blobs.keys());
    Layout {
        manifest_digest: m_desc["digest"].as_str().unwrap().to_string(),
        index,
        manifest,
        config,
        layer: tar_entries(&layer_tar),
        layer_gz,
        archive_entries: entries,
    }
}

/// Unpacks the layer into `dir` as a container runtime would, with owners and modes.
pub fn unpack_layer(layer_gz: &[u8], dir: &Path) {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(layer_gz));
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(true);
    a.unpack(dir).unwrap();
}

/// A 64-bit x86-64 ELF header with no program headers: static as far as the
/// image tool can tell, and distinct per `tag`.
pub fn fake_static_elf(tag: &[u8]) -> Vec<u8> {
    let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    h.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes()); // entry
    h.extend_from_slice(&0u64.to_le_bytes()); // phoff
    h.extend_from_slice(&0u64.to_le_bytes()); // shoff
    h.extend_from_slice(&0u32.to_le_bytes()); // flags
    h.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    h.extend_from_slice(&56u16.to_le_bytes()); // phentsize
    h.extend_from_slice(&0u16.to_le_bytes()); // phnum
    h.extend_from_slice(&64u16.to_le_bytes()); // shentsize
    h.extend_from_slice(&0u16.to_le_bytes()); // shnum
    h.extend_from_slice(&0u16.to_le_bytes()); // shstrndx
    h.extend_from_slice(tag);
    h
}
