//! The image's JSON objects (config, manifest, index) as oci-spec types, and the
//! checks on the name and tag they carry. Pure: bytes and descriptors in, bytes out.
//!
//! The index names the image twice, as BuildKit's OCI exporter and containerd's own
//! exporter do: `org.opencontainers.image.ref.name` is the tag alone (the OCI
//! convention; `skopeo copy oci-archive:steward.tar:<tag>` selects by it) and
//! `io.containerd.image.name` is the full, normalized reference. `ctr images import`
//! names an image by `io.containerd.image.name` when present and otherwise by the
//! ref name as given (containerd `client/import.go`, `imageName`), and the kubelet
//! asks the CRI for the normalized name (`steward:1` means
//! `docker.io/library/steward:1`), so the full name is what makes an imported
//! image usable by a pod without a registry.

use std::collections::HashMap;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
    SCHEMA_VERSION,
};
use serde::Serialize;

use crate::error::{Error, Result, invalid};
use crate::rootfs;

/// The annotation containerd's importer names images by.
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// What the image says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Repository without tag, e.g. `localhost/steward` or `registry.example.com/ops/steward`.
    pub name: String,
    /// Tag, usually the crate version.
    pub tag: String,
    /// `org.opencontainers.image.version`.
    pub version: String,
    /// `org.opencontainers.image.revision`: the git commit.
    pub revision: String,
    /// `org.opencontainers.image.source`: the repository URL.
    pub source: String,
    /// Seconds since the epoch for `created` (SOURCE_DATE_EPOCH, the commit time).
    pub created: i64,
    /// GOARCH-style architecture: `amd64` or `arm64`.
    pub arch: String,
}

/// A blob and its descriptor fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The media type it is referenced with.
    pub media_type: MediaType,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Blob {
    /// `sha256:<hex>` of the bytes.
    pub fn digest(&self) -> String {
        crate::layer::sha256(&self.bytes)
    }

    fn descriptor(&self, what: &'static str) -> Result<Descriptor> {
        let digest: oci_spec::image::Digest = self
            .digest()
            .parse()
            .map_err(|source| Error::Spec { what, source })?;
        Ok(Descriptor::new(
            self.media_type.clone(),
            self.bytes.len() as u64,
            digest,
        ))
    }
}

/// Checks the meta data and returns the full reference `name:tag`, normalized the
/// way containerd and the kubelet normalize it.
pub fn check(meta: &Meta) -> Result<String> {
    check_tag(&meta.tag)?;
    if meta.revision.is_empty() {
        return Err(invalid("--revision", "is empty"));
    }
    arch(&meta.arch)?;
    jiff::Timestamp::from_second(meta.created).map_err(|e| invalid("--created", e.to_string()))?;
    Ok(format!("{}:{}", normalize(&meta.name)?, meta.tag))
}

/// A tag as the distribution spec allows: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !first_ok || !rest_ok || tag.len() > 128 {
        return Err(invalid(
            "--tag",
            format!("{tag:?} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})"),
        ));
    }
    Ok(())
}

/// A repository name without tag or digest, with the Docker defaults filled in:
/// `steward` -> `docker.io/library/steward`, `team/steward` -> `docker.io/team/steward`;
/// a first component with a `.` or `:`, or `localhost`, is a registry and stays.
pub fn normalize(name: &str) -> Result<String> {
    let bad = |why: &str| invalid("--name", format!("{name:?} {why}"));
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    let (first, rest) = match name.split_once('/') {
        Some((f, r)) if f.contains(['.', ':']) || f == "localhost" => (Some(f), r),
        _ => (None, name),
    };
    for c in rest.split('/') {
        let ok = !c.is_empty()
            && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch));
        if !ok {
            return Err(bad(
                "is not a repository name (lowercase path components, no tag or digest)",
            ));
        }
    }
    Ok(match first {
        Some(registry) => format!("{registry}/{rest}"),
        None if rest.contains('/') => format!("docker.io/{rest}"),
        None => format!("docker.io/library/{rest}"),
    })
}

fn arch(arch: &str) -> Result<Arch> {
    match arch {
        "amd64" => Ok(Arch::Amd64),
        "arm64" => Ok(Arch::ARM64),
        other => Err(invalid(
            "--arch",
            format!("{other:?} is not amd64 or arm64"),
        )),
    }
}

/// JSON with object keys sorted at every level, compact: the same object always
/// gives the same bytes (oci-spec keeps labels and annotations in HashMaps).
pub fn canonical(value: &impl Serialize, what: &'static str) -> Result<Vec<u8>> {
    let mut v = serde_json::to_value(value).map_err(|source| Error::Json { what, source })?;
    v.sort_all_objects();
    serde_json::to_vec(&v).map_err(|source| Error::Json { what, source })
}

fn labels(meta: &Meta) -> HashMap<String, String> {
    use oci_spec::image::{ANNOTATION_REVISION, ANNOTATION_SOURCE, ANNOTATION_VERSION};
    HashMap::from([
        (ANNOTATION_SOURCE.to_string(), meta.source.clone()),
        (ANNOTATION_VERSION.to_string(), meta.version.clone()),
        (ANNOTATION_REVISION.to_string(), meta.revision.clone()),
    ])
}

/// The image configuration for one layer with this uncompressed digest.
pub fn config(meta: &Meta, diff_id: &str) -> Result<Blob> {
    let what = "config";
    let spec = |source| Error::Spec { what, source };
    let created = jiff::Timestamp::from_second(meta.created)
        .map_err(|e| invalid("--created", e.to_string()))?
        .to_string();
    let user = format!("{0}:{0}", rootfs::UID);
    let entrypoint = format!("/{}", rootfs::BINARY);
    let run = ConfigBuilder::default()
        .user(user)
        .entrypoint(vec![entrypoint])
        .env(vec!["PATH=/usr/local/bin".to_string()])
        .working_dir("/")
        .labels(labels(meta))
        .build()
        .map_err(spec)?;
    let history = HistoryBuilder::default()
        .created(created.clone())
        .created_by("hack/image.sh (crates/image-tool)")
        .build()
        .map_err(spec)?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![diff_id.to_string()])
        .build()
        .map_err(spec)?;
    let c = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(arch(&meta.arch)?)
        .os(Os::Linux)
        .config(run)
        .rootfs(rootfs)
        .history(vec![history])
        .build()
        .map_err(spec)?;
    Ok(Blob {
        media_type: MediaType::ImageConfig,
        bytes: canonical(&c, what)?,
    })
}

/// The image manifest of this config and layer.
pub fn manifest(config: &Blob, layer: &Blob) -> Result<Blob> {
    let what = "manifest";
    let m = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(config.descriptor(what)?)
        .layers(vec![layer.descriptor(what)?])
        .build()
        .map_err(|source| Error::Spec { what, source })?;
    Ok(Blob {
        media_type: MediaType::ImageManifest,
        bytes: canonical(&m, what)?,
    })
}

/// `index.json`: the one manifest, its platform and both names.
pub fn index(meta: &Meta, manifest: &Blob) -> Result<Vec<u8>> {
    let what = "index";
    let spec = |source| Error::Spec { what, source };
    let full = check(meta)?;
    let platform = PlatformBuilder::default()
        .architecture(arch(&meta.arch)?)
        .os(Os::Linux)
        .build()
        .map_err(spec)?;
    let d = manifest.descriptor(what)?;
    let d = DescriptorBuilder::default()
        .media_type(d.media_type().clone())
        .digest(d.digest().clone())
        .size(d.size())
        .platform(platform)
        .annotations(HashMap::from([
            (
                oci_spec::image::ANNOTATION_REF_NAME.to_string(),
                meta.tag.clone(),
            ),
            (CONTAINERD_IMAGE_NAME.to_string(), full),
        ]))
        .build()
        .map_err(spec)?;
    let i = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![d])
        .build()
        .map_err(spec)?;
    canonical(&i, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_fills_in_docker_defaults_and_keeps_registries() {
        let cases = [
            ("steward", Some("docker.io/library/steward")),
            ("team/steward", Some("docker.io/team/steward")),
            ("localhost/steward", Some("localhost/steward")),
            ("localhost:5000/steward", Some("localhost:5000/steward")),
            (
                "registry.example.com/ops/steward",
                Some("registry.example.com/ops/steward"),
            ),
            ("ghcr.io/o/steward-x_y.z", Some("ghcr.io/o/steward-x_y.z")),
            ("", None),
            ("Steward", None),
            ("steward:1", None),
            ("steward@sha256:00", None),
            ("team//steward", None),
            ("registry.example.com/", None),
            ("-steward", None),
        ];
        for (name, want) in cases {
            match (normalize(name), want) {
                (Ok(got), Some(w)) => assert_eq!(got, w, "{name}"),
                (Err(e), None) => assert!(e.to_string().starts_with("--name: "), "{e}"),
                (got, w) => panic!("{name}: want {w:?}, got {got:?}"),
            }
        }
    }

    fn meta() -> Meta {
        Meta {
            name: "localhost/steward".into(),
            tag: "0.1.0".into(),
            version: "0.1.0".into(),
            revision: "abc123".into(),
            source: "https://example.invalid/steward".into(),
            created: 1_700_000_000,
            arch: "amd64".into(),
        }
    }

    #[test]
    fn check_names_the_bad_field() {
        type Break = fn(&mut Meta);
        let cases: [(Break, &str); 6] = [
            (|m| m.tag = "0.1.0+build".into(), "--tag"),
            (|m| m.tag = ".x".into(), "--tag"),
            (|m| m.tag = "a".repeat(129), "--tag"),
            (|m| m.revision = String::new(), "--revision"),
            (|m| m.arch = "x86_64".into(), "--arch"),
            (|m| m.created = i64::MAX, "--created"),
        ];
        assert_eq!(check(&meta()).unwrap(), "localhost/steward:0.1.0");
        for (break_it, field) in cases {
            let mut m = meta();
            break_it(&mut m);
            let e = check(&m).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{field}: ")), "{e}");
        }
    }

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": {"z": 1, "a": [{"y": 1, "x": 2}]}, "a": 0});
        assert_eq!(
            String::from_utf8(canonical(&v, "test").unwrap()).unwrap(),
            r#"{"a":0,"b":{"a":[{"x":2,"y":1}],"z":1}}"#
        );
    }

    #[test]
    fn config_is_the_same_bytes_every_time() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let a = config(&meta(), d).unwrap();
        for _ in 0..20 {
            assert_eq!(config(&meta(), d).unwrap(), a);
        }
        let v: serde_json::Value = serde_json::from_slice(&a.bytes).unwrap();
        assert_eq!(v["created"], "2023-11-14T22:13:20Z");
        assert_eq!(v["config"]["User"], "65532:65532");
    }
}
