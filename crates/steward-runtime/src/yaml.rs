//! Reading YAML a person wrote (config files, pipeline files) into a typed value,
//! with errors that name the field: `stages[0].timeout: invalid type ...`. The
//! path comes from `serde_path_to_error`, so it does not depend on how the YAML
//! library words its messages; the library is serde-saphyr (maintained, pure
//! Rust; serde_yaml is deprecated).

use serde::de::DeserializeOwned;

/// Parses one YAML document into `T`. The error is `path: what is wrong` (the path
/// omitted when the document itself is wrong), on one line.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut path = None;
    let options = serde_saphyr::options! { with_snippet: false };
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = Some(e.path().to_string());
            e.into_inner()
        })
    });
    parsed.map_err(|e| {
        let what = first_line(&e.to_string());
        match path.as_deref() {
            None | Some(".") => what,
            Some(p) => format!("{p}: {what}"),
        }
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
}
