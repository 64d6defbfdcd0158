//! Deterministic tar streams: the image's one layer and the archive that holds the
//! layout. Every header is written by hand from the entry alone (mode, size, the
//! one fixed mtime, uid and gid 0, no user or group names, ustar format) and entries
//! go in path order, so the same entries always give the same bytes whatever the
//! files on the build machine look like. gzip has no name and mtime 0 in its header.

use std::io::Write;

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, invalid};

/// What a path in the tar is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file with these bytes.
    File(Vec<u8>),
}

/// One tar entry: a relative path (`etc/passwd`, no leading `/`, no trailing `/`),
/// its permission bits and what it is. Owned by root (uid 0, gid 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path without a trailing slash.
    pub path: String,
    /// Permission bits, e.g. `0o755` or `0o1777`.
    pub mode: u32,
    /// Directory or file contents.
    pub kind: Kind,
}

impl Entry {
    /// A directory.
    pub fn dir(path: &str, mode: u32) -> Self {
        Self {
            path: path.into(),
            mode,
            kind: Kind::Dir,
        }
    }

    /// A regular file.
    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            mode,
            kind: Kind::File(data.into()),
        }
    }
}

/// Checks that every path is relative and plain, appears once, and that its parent
/// directory is an entry too (so no directory gets the runtime's default mode).
pub fn check(entries: &[Entry]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for e in entries {
        let p = e.path.as_str();
        if p.is_empty()
            || p.starts_with('/')
            || p.ends_with('/')
            || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(invalid(
                "entry",
                format!("{p:?} is not a plain relative path"),
            ));
        }
        if p.len() > 99 {
            return Err(invalid(
                "entry",
                format!("{p:?} is longer than ustar allows"),
            ));
        }
        if e.mode & !0o7777 != 0 {
            return Err(invalid("entry", format!("{p:?} has mode {:o}", e.mode)));
        }
        if !seen.insert(p) {
            return Err(invalid("entry", format!("{p:?} appears twice")));
        }
    }
    for e in entries {
        if let Some((parent, _)) = e.path.rsplit_once('/') {
            let is_dir = entries
                .iter()
                .any(|d| d.path == parent && d.kind == Kind::Dir);
            if !is_dir {
                return Err(invalid(
                    "entry",
                    format!("{:?} has no directory entry {parent:?}", e.path),
                ));
            }
        }
    }
    Ok(())
}

/// The tar stream of these entries, sorted by path, every entry stamped `mtime`.
pub fn tar(entries: &[Entry], mtime: u64, what: &'static str) -> Result<Vec<u8>> {
    check(entries)?;
    let pack = |source| Error::Pack { what, source };
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = tar::Builder::new(Vec::new());
    for e in sorted {
        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        let data: &[u8] = match &e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_path(format!("{}/", e.path)).map_err(pack)?;
                &[]
            }
            Kind::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_path(&e.path).map_err(pack)?;
                data
            }
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append(&h, data).map_err(pack)?;
    }
    out.into_inner().map_err(pack)
}

/// gzip at the best level, with no file name and mtime 0 in the header.
pub fn gzip(data: &[u8], what: &'static str) -> Result<Vec<u8>> {
    let pack = |source| Error::Pack { what, source };
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gz.write_all(data).map_err(pack)?;
    gz.finish().map_err(pack)
}

/// `sha256:<hex>` of the bytes.
pub fn sha256(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar_bytes: &[u8]) -> Vec<(String, u32, u64, u64, u64)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn check_refuses_bad_paths() {
        let ok = Entry::dir("etc", 0o755);
        let cases: &[(Vec<Entry>, Option<&str>)] = &[
            (vec![ok.clone(), Entry::file("etc/x", 0o644, "x")], None),
            (vec![Entry::file("/etc", 0o644, "")], Some("plain relative")),
            (vec![Entry::file("etc/", 0o644, "")], Some("plain relative")),
            (
                vec![ok.clone(), Entry::file("etc/../x", 0o644, "")],
                Some("plain relative"),
            ),
            (
                vec![ok.clone(), Entry::file("etc//x", 0o644, "")],
                Some("plain relative"),
            ),
            (vec![Entry::file("", 0o644, "")], Some("plain relative")),
            (vec![ok.clone(), ok.clone()], Some("twice")),
            (
                vec![Entry::file("usr/x", 0o644, "")],
                Some("no directory entry \"usr\""),
            ),
            (
                vec![Entry::file("f", 0o644, ""), Entry::file("f/x", 0o644, "")],
                Some("no directory entry"),
            ),
            (vec![Entry::file("x", 0o100644, "")], Some("mode")),
            (
                vec![Entry::file(&"a".repeat(100), 0o644, "")],
                Some("longer"),
            ),
        ];
        for (entries, want) in cases {
            let got = check(entries);
            match (want, got) {
                (None, Ok(())) => {}
                (Some(w), Err(e)) => assert!(e.to_string().contains(w), "{entries:?}: {e}"),
                (w, g) => panic!("{entries:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn tar_is_sorted_and_stamped_whatever_the_input_order() {
        let a = vec![
            Entry::file("usr/bin/x", 0o755, "bin"),
            Entry::dir("usr", 0o755),
            Entry::dir("tmp", 0o1777),
            Entry::dir("usr/bin", 0o755),
        ];
        let mut b = a.clone();
        b.reverse();
        let ta = tar(&a, 1_700_000_000, "test").unwrap();
        assert_eq!(ta, tar(&b, 1_700_000_000, "test").unwrap());
        assert_ne!(ta, tar(&a, 1_700_000_001, "test").unwrap());
        assert_eq!(
            names(&ta),
            vec![
                ("tmp/".into(), 0o1777, 1_700_000_000, 0, 0),
                ("usr/".into(), 0o755, 1_700_000_000, 0, 0),
                ("usr/bin/".into(), 0o755, 1_700_000_000, 0, 0),
                ("usr/bin/x".into(), 0o755, 1_700_000_000, 0, 0),
            ]
        );
    }

    #[test]
    fn gzip_is_deterministic_and_round_trips() {
        let data = b"steward ".repeat(1000);
        let z = gzip(&data, "test").unwrap();
        assert_eq!(z, gzip(&data, "test").unwrap());
        // gzip header: magic, deflate, no flags (no name), mtime 0.
        assert_eq!(&z[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn sha256_is_the_known_digest() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
