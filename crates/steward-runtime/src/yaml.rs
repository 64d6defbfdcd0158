//! Reading YAML a person wrote (config files, pipeline files) into a typed value,
//! with errors that name the field: `stages[0].timeout: invalid type ...`. The
//! path comes from `serde_path_to_error`, so it does not depend on how the YAML
//! library words its messages; the library is serde-saphyr (maintained, pure
//! Rust; serde_yaml is deprecated).

use serde::de::DeserializeOwned;

/// A YAML document that does not fit the type: where (the field's path, `None`
/// when the document itself is wrong) and what, on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// The path of the wrong field (`stages[0].timeout`), if the error is in one.
    pub path: Option<String>,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{p}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

/// Parses one YAML document into `T`. The error is `path: what is wrong` (the path
/// omitted when the document itself is wrong), on one line.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    parse(text).map_err(|e| e.to_string())
}

/// [`from_str`] with the path and the reason apart, for an error type that names
/// the field in a field of its own.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let mut path = None;
    let options = serde_saphyr::options! { with_snippet: false };
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = Some(e.path().to_string());
            e.into_inner()
        })
    });
    parsed.map_err(|e| YamlError {
        path: path.filter(|p| !p.is_empty() && p != "."),
        what: first_line(&e.to_string()),
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        name: String,
        #[serde(default)]
        stages: Vec<Stage>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Stage {
        name: String,
        #[serde(default)]
        attempts: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let ok: Doc = from_str("name: a\nstages:\n  - name: b\n    attempts: 2\n").unwrap();
        assert_eq!(ok.stages[0].attempts, 2);
        // (document, the error starts with)
        let cases = [
            (
                "name: a\nstages:\n  - name: b\n    depend_on: [c]\n",
                "stages[0]",
            ),
            (
                "name: a\nstages:\n  - name: b\n    attempts: lots\n",
                "stages[0].attempts: ",
            ),
            ("name: a\nlabels: [x]\n", "labels: "),
            ("stages: []\n", "missing field `name`"),
            ("name: [unclosed\n", ""),
        ];
        for (doc, prefix) in cases {
            let e = from_str::<Doc>(doc).unwrap_err();
            assert!(e.starts_with(prefix), "{doc:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let e = from_str::<Doc>("name: a\nstages:\n  - name: b\n    depend_on: [c]\n").unwrap_err();
        assert!(e.contains("unknown field `depend_on`"), "{e}");
    }

    #[test]
    fn path_and_reason_apart() {
        // (document, path, the reason contains)
        let cases = [
            (
                "name: a\nstages:\n  - name: b\n    attempts: lots\n",
                Some("stages[0].attempts"),
                "u32",
            ),
            ("- a\n- b\n", None, "mapping"),
            ("stages: []\n", None, "missing field `name`"),
        ];
        for (doc, path, what) in cases {
            let e = parse::<Doc>(doc).unwrap_err();
            assert_eq!(e.path.as_deref(), path, "{doc:?}: {e}");
            assert!(e.what.contains(what), "{doc:?}: {e}");
            assert_eq!(from_str::<Doc>(doc).unwrap_err(), e.to_string());
        }
    }
}
