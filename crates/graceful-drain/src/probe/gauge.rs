//! Reading one gauge out of a Prometheus text exposition, with label matchers:
//! `http_requests_in_flight`, or
//! `envoy_listener_downstream_cx_active{listener_address="0.0.0.0_15006"}`.
//! Every sample whose labels match is summed (in-flight requests per handler add
//! up). Pure.
//!
//! Hand-written: the exposition parsers on crates.io are either unmaintained or
//! pull a whole client; one metric's samples need a line scan, with label values
//! unescaped as the format says (`\\`, `\"`, `\n`).

/// `(label, equal, value)`: equal is `=`, otherwise `!=`.
pub type Matcher = (String, bool, String);

/// A metric name and label matchers (`=` and `!=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The metric name.
    pub name: String,
    /// `(label, equal, value)`: equal is `=`, otherwise `!=`. A missing label reads as "".
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// Parses `name` or `name{label="value",other!="x"}`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let end = s.find('{').unwrap_or(s.len());
        let name = &s[..end];
        if !is_name(name, true) {
            return Err(format!("\"{name}\" is not a metric name"));
        }
        let mut matchers = Vec::new();
        if end < s.len() {
            let body = s[end + 1..]
                .strip_suffix('}')
                .ok_or_else(|| format!("\"{s}\" has no closing '}}'"))?;
            let mut rest = body;
            while !rest.trim().is_empty() {
                let (m, tail) = pair(rest, true).map_err(|e| format!("in \"{s}\": {e}"))?;
                matchers.push(m);
                rest = tail;
            }
        }
        Ok(Self {
            name: name.to_string(),
            matchers,
        })
    }

    fn matches(&self, labels: &[Matcher]) -> bool {
        self.matchers.iter().all(|(k, eq, v)| {
            let have = labels
                .iter()
                .find(|(l, ..)| l == k)
                .map_or("", |(.., v)| v.as_str());
            (have == v) == *eq
        })
    }
}

fn is_name(s: &str, metric: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (metric && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':'))
}

/// One `label="value"` (or `!=` when `allow_ne`), then an optional comma; returns
/// the rest.
fn pair(s: &str, allow_ne: bool) -> Result<(Matcher, &str), String> {
    let s = s.trim_start();
    let op = s.find(['=', '!']).ok_or("a label without '='")?;
    let label = s[..op].trim();
    if !is_name(label, false) {
        return Err(format!("\"{label}\" is not a label name"));
    }
    let (eq, after) = if let Some(a) = s[op..].strip_prefix("!=") {
        if !allow_ne {
            return Err("'!=' in a sample".into());
        }
        (false, a)
    } else if let Some(a) = s[op..].strip_prefix('=') {
        (true, a)
    } else {
        return Err(format!("label \"{label}\" has no '=' or '!='"));
    };
    let after = after
        .trim_start()
        .strip_prefix('"')
        .ok_or_else(|| format!("the value of \"{label}\" is not quoted"))?;
    let mut value = String::new();
    let mut chars = after.char_indices();
    let close = loop {
        match chars.next() {
            None => return Err(format!("the value of \"{label}\" is not closed")),
            Some((i, '"')) => break i,
            Some((_, '\\')) => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, c)) => value.push(c),
                None => return Err(format!("the value of \"{label}\" is not closed")),
            },
            Some((_, c)) => value.push(c),
        }
    };
    let tail = after[close + 1..].trim_start();
    let tail = tail.strip_prefix(',').unwrap_or(tail);
    Ok(((label.to_string(), eq, value), tail))
}

/// The sum of every sample of `sel` in `body`; `None` when no sample matches.
pub fn sum(body: &str, sel: &Selector) -> Option<f64> {
    let mut total = None;
    for line in body.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix(sel.name.as_str()) else {
            continue;
        };
        let (labels, rest) = match rest.chars().next() {
            Some('{') => match sample_labels(&rest[1..]) {
                Some(parsed) => parsed,
                None => continue,
            },
            Some(' ' | '\t') => (Vec::new(), rest),
            _ => continue, // a longer name with this prefix
        };
        if !sel.matches(&labels) {
            continue;
        }
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| !v.is_nan())
        {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

/// The labels of a sample after its `{`, and the text after the `}`.
fn sample_labels(mut s: &str) -> Option<(Vec<Matcher>, &str)> {
    let mut labels = Vec::new();
    loop {
        let t = s.trim_start();
        if let Some(rest) = t.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (m, tail) = pair(t, false).ok()?;
        labels.push(m);
        s = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of an istio-proxy's `/stats/prometheus` (Envoy 1.3x, Istio 1.2x,
    /// with `listener` stats included through proxyStatsMatcher).
    const ENVOY: &str = r#"# TYPE envoy_listener_downstream_cx_active gauge
envoy_listener_downstream_cx_active{listener_address="0.0.0.0_15006"} 3
envoy_listener_downstream_cx_active{listener_address="0.0.0.0_15090"} 1
envoy_listener_downstream_cx_active{listener_address="0.0.0.0_15021"} 0
envoy_listener_downstream_cx_active{listener_address="10.96.0.10_53"} 2
# TYPE envoy_listener_downstream_cx_total counter
envoy_listener_downstream_cx_total{listener_address="0.0.0.0_15006"} 812
# TYPE envoy_http_downstream_cx_active gauge
envoy_http_downstream_cx_active{http_conn_manager_prefix="inbound_0.0.0.0_8080"} 3
envoy_http_downstream_cx_active{http_conn_manager_prefix="admin"} 1
# TYPE envoy_server_total_connections gauge
envoy_server_total_connections{} 7
"#;

    #[test]
    fn selectors() {
        let table = [
            (
                r#"envoy_listener_downstream_cx_active{listener_address="0.0.0.0_15006"}"#,
                Some(3.0),
            ),
            ("envoy_listener_downstream_cx_active", Some(6.0)),
            (
                r#"envoy_listener_downstream_cx_active{listener_address!="0.0.0.0_15006"}"#,
                Some(3.0),
            ),
            (
                r#"envoy_http_downstream_cx_active{http_conn_manager_prefix="inbound_0.0.0.0_8080"}"#,
                Some(3.0),
            ),
            ("envoy_server_total_connections", Some(7.0)),
            (
                r#"envoy_listener_downstream_cx_active{listener_address="[__]_15006"}"#,
                None,
            ),
            (
                r#"envoy_listener_downstream_cx_active{absent=""}"#,
                Some(6.0),
            ),
            ("envoy_listener_downstream_cx", None),
        ];
        for (sel, want) in table {
            assert_eq!(sum(ENVOY, &Selector::parse(sel).unwrap()), want, "{sel}");
        }
    }

    /// Lines of a Linkerd proxy's `:4191/metrics` (the format of linkerd.io's "Proxy
    /// Metrics": labels `direction`, `peer`, the target and server labels).
    const LINKERD: &str = r#"# HELP tcp_open_connections Number of currently-open connections.
# TYPE tcp_open_connections gauge
tcp_open_connections{direction="inbound",peer="src",target_addr="10.42.0.25:8080",target_ip="10.42.0.25",target_port="8080",tls="true",client_id="web.emojivoto.serviceaccount.identity.linkerd.cluster.local",srv_group="",srv_kind="default",srv_name="all-unauthenticated",srv_port="8080"} 2
tcp_open_connections{direction="inbound",peer="src",target_addr="10.42.0.25:8080",target_ip="10.42.0.25",target_port="8080",tls="no_identity",no_tls_reason="no_tls_from_remote",srv_group="",srv_kind="default",srv_name="all-unauthenticated",srv_port="8080"} 1
tcp_open_connections{direction="inbound",peer="dst",target_addr="10.42.0.25:8080",tls="no_identity",no_tls_reason="loopback"} 3
tcp_open_connections{direction="outbound",peer="dst",dst_namespace="emojivoto",dst_service="emoji-svc",tls="true"} 4
# HELP tcp_open_total Total count of opened connections.
# TYPE tcp_open_total counter
tcp_open_total{direction="inbound",peer="src",target_addr="10.42.0.25:8080",tls="true"} 91
"#;

    #[test]
    fn linkerd_inbound_connections() {
        let sel = Selector::parse(crate::probe::spec::LINKERD_INBOUND).unwrap();
        assert_eq!(
            sum(LINKERD, &sel),
            Some(3.0),
            "client connections, TLS or not"
        );
        let closed = LINKERD.replace("} 2\n", "} 0\n").replace("} 1\n", "} 0\n");
        assert_eq!(
            sum(&closed, &sel),
            Some(0.0),
            "proxy-to-app and outbound do not count"
        );
    }

    #[test]
    fn samples() {
        let body = "# HELP inflight requests in flight\n# TYPE inflight gauge\ninflight{handler=\"a\"} 2\ninflight{handler=\"b\",} 1 1700000000\ninflight{path=\"/x}\\\"y\"} 4\ninflight_total 9\nother 4\nbroken{a=\"1\" 5\nnan NaN\n";
        let table = [
            ("inflight", Some(7.0)),
            (r#"inflight{path="/x}\"y"}"#, Some(4.0)),
            (r#"inflight{handler="b"}"#, Some(1.0)),
            ("other", Some(4.0)),
            ("broken", None),
            ("nan", None),
            ("missing", None),
        ];
        for (sel, want) in table {
            assert_eq!(sum(body, &Selector::parse(sel).unwrap()), want, "{sel}");
        }
    }

    #[test]
    fn bad_selectors_say_why() {
        let table = [
            ("", "metric name"),
            ("9x", "metric name"),
            ("x{a=\"1\"", "closing"),
            ("x{a=1}", "not quoted"),
            ("x{a=\"1}", "not closed"),
            ("x{=\"1\"}", "label name"),
            ("x{a~\"1\"}", "without '='"),
        ];
        for (sel, want) in table {
            let err = Selector::parse(sel).unwrap_err();
            assert!(err.contains(want), "{sel}: {err}");
        }
        assert_eq!(
            Selector::parse(r#"x{a="1", b!="2"}"#).unwrap().matchers,
            vec![
                ("a".into(), true, "1".into()),
                ("b".into(), false, "2".into())
            ]
        );
    }
}
