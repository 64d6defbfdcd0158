//! `--prometheus-selector`: label matchers added to every query, so a Mimir tenant
//! or a Thanos holding several clusters' series is not summed across them.
//!
//! Parsed here rather than passed through: a typo (`cluster=prod`, unquoted) would
//! otherwise become a PromQL parse error naming a query the user never wrote.

use std::fmt;

/// One or more PromQL label matchers, e.g. `cluster="prod-eks",region=~"eu-.*"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    matchers: Vec<Matcher>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Matcher {
    name: String,
    op: &'static str,
    /// The value as written, still quoted and escaped.
    quoted: String,
}

impl Selector {
    /// Parses matchers separated by commas, optionally inside `{}`; empty: none.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let s = match s.strip_prefix('{') {
            Some(inner) => inner
                .strip_suffix('}')
                .ok_or("a selector opened with { must end with }")?,
            None => s,
        };
        let mut matchers = Vec::new();
        let mut rest = s.trim_start();
        while !rest.is_empty() {
            let (m, after) = matcher(rest)?;
            matchers.push(m);
            rest = after.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected , between matchers at {rest:?}")),
            }
        }
        Ok(Self { matchers })
    }

    /// Whether no matcher was given.
    pub fn is_empty(&self) -> bool {
        self.matchers.is_empty()
    }

    /// The matchers joined with commas, to go inside a `{}` with others.
    pub fn join_after(&self, first: &str) -> String {
        if self.is_empty() {
            first.to_string()
        } else {
            format!("{first},{self}")
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}{}{}", m.name, m.op, m.quoted)?;
        }
        Ok(())
    }
}

/// One `name op "value"` at the start of `s`, and what follows it.
fn matcher(s: &str) -> Result<(Matcher, &str), String> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let name = &s[..end];
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid {
        return Err(format!("expected a label name at {s:?}"));
    }
    let rest = s[end..].trim_start();
    let op = ["=~", "!~", "!=", "="]
        .into_iter()
        .find(|op| rest.starts_with(op))
        .ok_or_else(|| format!("expected =, !=, =~ or !~ after {name}"))?;
    let rest = rest[op.len()..].trim_start();
    let (quoted, after) =
        quoted(rest).ok_or_else(|| format!("the value of {name} must be in double quotes"))?;
    let m = Matcher {
        name: name.to_string(),
        op,
        quoted: quoted.to_string(),
    };
    Ok((m, after))
}

/// A double-quoted string with backslash escapes at the start of `s`.
fn quoted(s: &str) -> Option<(&str, &str)> {
    if !s.starts_with('"') {
        return None;
    }
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some((&s[..=i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_matchers_and_prints_them_back() {
        let cases = [
            ("", ""),
            ("  ", ""),
            ("{}", ""),
            (r#"cluster="prod-eks""#, r#"cluster="prod-eks""#),
            (r#"{cluster="prod-eks"}"#, r#"cluster="prod-eks""#),
            (
                r#" cluster = "a" , region=~"eu-.*",env!="dev" "#,
                r#"cluster="a",region=~"eu-.*",env!="dev""#,
            ),
            (r#"x!~"a\"b,c""#, r#"x!~"a\"b,c""#),
            (r#"_x="1","#, r#"_x="1""#),
        ];
        for (input, want) in cases {
            let got = Selector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "{input}");
        }
    }

    #[test]
    fn rejects_what_promql_would_not_parse_naming_why() {
        let cases = [
            ("cluster=prod", "double quotes"),
            ("cluster", "expected =, !=, =~ or !~ after cluster"),
            ("1x=\"a\"", "label name"),
            (r#"a="1" b="2""#, "expected , between"),
            (r#"a="1"#, "double quotes"),
            (r#"{a="1""#, "must end with }"),
            (r#"a=="1""#, "double quotes"),
        ];
        for (input, want) in cases {
            let err = Selector::parse(input).expect_err(input);
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn joins_after_the_queries_own_matchers() {
        let s = Selector::parse(r#"cluster="a""#).unwrap();
        assert_eq!(
            s.join_after(r#"nodepool="p""#),
            r#"nodepool="p",cluster="a""#
        );
        let none = Selector::default();
        assert_eq!(none.join_after(r#"nodepool="p""#), r#"nodepool="p""#);
    }
}
