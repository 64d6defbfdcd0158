//! The programs of the real nodes' test images (`hack/realnode/images.sh` builds
//! them static, for musl, and packs each into an OCI archive):
//!
//! - `test-http` (`steward.local/test-http:1`): an HTTP/1.1 server on `--port`
//!   (8080). `GET /` answers `ok <hostname>`, `GET /hold?ms=N` answers after N ms
//!   (a request held open), `GET /healthz` is 200 until SIGTERM and 503 after. On
//!   SIGTERM it goes on serving for `--shutdown-delay-ms` (0), then stops accepting,
//!   lets the requests in flight finish, closes idle connections and exits 0, as
//!   most servers do. It prints one line per signal and at exit.
//! - `test-worker` (`steward.local/test-worker:1`): prints `--lines` lines
//!   (`<--text> <i>`, from 1) to stdout, one every `--interval-ms`, then exits with
//!   `--exit-code`; `--stamp` appends ` t=<ms since the epoch>` to each line.
//!
//! Only the standard library and `signal-hook`: the images hold one static binary.

use std::collections::BTreeMap;

/// `--key value` pairs; a bare `--key` has the value `true`. Unknown keys are the
/// caller's to refuse.
pub fn flags(args: impl IntoIterator<Item = String>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.next() {
        let key = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {a:?}"))?
            .to_string();
        let value = match it.peek() {
            Some(v) if !v.starts_with("--") => it.next().unwrap_or_default(),
            _ => "true".to_string(),
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// The value of `key` parsed, or `default`; a bad value names the flag.
pub fn get<T: std::str::FromStr>(
    flags: &BTreeMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, String> {
    match flags.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{key}: {v:?} is not valid")),
    }
}

/// Refuses flags other than `known`.
pub fn only(flags: &BTreeMap<String, String>, known: &[&str]) -> Result<(), String> {
    match flags.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown flag --{k} (known: --{})",
            known.join(", --")
        )),
        None => Ok(()),
    }
}

/// The query parameter `ms` of a `/hold?ms=N` target.
pub fn hold_ms(target: &str) -> Option<u64> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_table() {
        let f = flags(args("--lines 3 --verbose --text hi")).unwrap();
        assert_eq!(f["lines"], "3");
        assert_eq!(f["verbose"], "true");
        assert_eq!(f["text"], "hi");
        assert!(flags(args("lines 3")).is_err());
        assert_eq!(get(&f, "lines", 0u32).unwrap(), 3);
        assert_eq!(get(&f, "missing", 7u32).unwrap(), 7);
        assert!(get::<u32>(&f, "text", 0).unwrap_err().starts_with("--text"));
        assert!(
            only(&f, &["lines", "text"])
                .unwrap_err()
                .contains("--verbose")
        );
    }

    #[test]
    fn hold_ms_table() {
        assert_eq!(hold_ms("/hold?ms=250"), Some(250));
        assert_eq!(hold_ms("/hold?x=1&ms=5"), Some(5));
        assert_eq!(hold_ms("/hold"), None);
        assert_eq!(hold_ms("/hold?ms=x"), None);
    }
}
