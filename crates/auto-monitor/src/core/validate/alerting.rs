//! `spec.alerting`: receivers Alertmanager can load, each refusal naming its field.

use std::collections::BTreeSet;

use steward_runtime::Lang;

use super::{Errors, dns_label};
use crate::core::alerting::{DEFAULT_RECEIVER, Routing};
use crate::crd::{MonitoringStackSpec, Receiver, SecretKey};

/// Severities the stack's rules use.
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

pub(super) fn check(spec: &MonitoringStackSpec, e: &mut Errors) -> Routing {
    let Some(a) = &spec.alerting else {
        return Routing::default();
    };
    let lang = match a.lang.as_deref() {
        None | Some("en") => Lang::En,
        Some("ko") => Lang::Ko,
        Some(other) => {
            e.add(
                "spec.alerting.lang",
                format!("unknown language \"{other}\" (en or ko)"),
            );
            Lang::En
        }
    };
    let group_wait = e.duration("spec.alerting.groupWait", a.group_wait.as_ref(), "30s");
    let repeat_interval = e.duration(
        "spec.alerting.repeatInterval",
        a.repeat_interval.as_ref(),
        "4h",
    );
    let mut names = BTreeSet::new();
    for (i, r) in a.receivers.iter().enumerate() {
        let f = format!("spec.alerting.receivers[{i}]");
        if !dns_label(&r.name, 63) || r.name == DEFAULT_RECEIVER {
            e.add(
                format!("{f}.name"),
                format!(
                    "\"{}\" is not a DNS label (lowercase letters, digits, '-') or is the reserved \"{DEFAULT_RECEIVER}\"",
                    r.name
                ),
            );
        } else if !names.insert(r.name.as_str()) {
            e.add(format!("{f}.name"), format!("\"{}\" is used twice", r.name));
        }
        receiver(r, &f, e);
    }
    Routing {
        lang,
        group_wait,
        repeat_interval,
        receivers: a.receivers.clone(),
    }
}

fn receiver(r: &Receiver, f: &str, e: &mut Errors) {
    let kinds = [r.slack.is_some(), r.webhook.is_some(), r.email.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        e.add(f, "needs exactly one of slack, webhook, email");
    }
    for (j, s) in r.severities.iter().flatten().enumerate() {
        if !SEVERITIES.contains(&s.as_str()) {
            e.add(
                format!("{f}.severities[{j}]"),
                format!("unknown severity \"{s}\" ({})", SEVERITIES.join(", ")),
            );
        }
    }
    if r.severities.as_ref().is_some_and(Vec::is_empty) {
        e.add(
            format!("{f}.severities"),
            "is empty: leave it out for every severity",
        );
    }
    if let Some(s) = &r.slack {
        secret(
            &s.webhook_url_secret,
            &format!("{f}.slack.webhookUrlSecret"),
            e,
        );
    }
    if let Some(w) = &r.webhook
        && !http_url(&w.url)
    {
        e.add(
            format!("{f}.webhook.url"),
            format!("\"{}\" is not an http(s) URL", w.url),
        );
    }
    if let Some(m) = &r.email {
        for (field, v) in [("to", &m.to), ("from", &m.from)] {
            if !address(v) {
                e.add(
                    format!("{f}.email.{field}"),
                    format!("\"{v}\" is not an email address"),
                );
            }
        }
        if !host_port(&m.smarthost) {
            e.add(
                format!("{f}.email.smarthost"),
                format!("\"{}\" is not host:port", m.smarthost),
            );
        }
        if let Some(p) = &m.auth_password_secret {
            secret(p, &format!("{f}.email.authPasswordSecret"), e);
        }
    }
}

/// A Secret name (DNS subdomain) and a key (the Secret data key rule).
fn secret(s: &SecretKey, f: &str, e: &mut Errors) {
    let subdomain = !s.name.is_empty()
        && s.name.len() <= 253
        && s.name.split('.').all(|part| dns_label(part, 63));
    if !subdomain {
        e.add(
            format!("{f}.name"),
            format!("\"{}\" is not a Secret name", s.name),
        );
    }
    let key_ok = !s.key.is_empty()
        && s.key.len() <= 253
        && s.key != "."
        && s.key != ".."
        && s.key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !key_ok {
        e.add(
            format!("{f}.key"),
            format!("\"{}\" is not a Secret key", s.key),
        );
    }
}

fn http_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !r.chars().any(char::is_whitespace)
    })
}

fn address(a: &str) -> bool {
    let mut parts = a.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !a.chars().any(char::is_whitespace)
}

fn host_port(h: &str) -> bool {
    h.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::core::validate::validate;
    use crate::crd::MonitoringStackSpec;

    fn fields(alerting: serde_json::Value) -> Vec<String> {
        let spec: MonitoringStackSpec =
            serde_json::from_value(json!({ "alerting": alerting })).unwrap_or_default();
        match validate(&spec) {
            Ok(_) => vec![],
            Err(errs) => errs.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn every_wrong_receiver_field_is_named() {
        let slack = json!({ "webhookUrlSecret": { "name": "slack", "key": "url" } });
        let table: [(serde_json::Value, &[&str]); 9] = [
            (
                json!({ "receivers": [{ "name": "oncall", "slack": slack }] }),
                &[],
            ),
            (json!({ "lang": "fr" }), &["spec.alerting.lang"]),
            (json!({ "groupWait": "soon" }), &["spec.alerting.groupWait"]),
            (
                json!({ "receivers": [{ "name": "Oncall", "slack": slack }, { "name": "default", "slack": slack }] }),
                &[
                    "spec.alerting.receivers[0].name",
                    "spec.alerting.receivers[1].name",
                ],
            ),
            (
                json!({ "receivers": [{ "name": "a", "slack": slack }, { "name": "a", "slack": slack }] }),
                &["spec.alerting.receivers[1].name"],
            ),
            (
                json!({ "receivers": [{ "name": "a" }, { "name": "b", "slack": slack, "webhook": { "url": "http://x" } }] }),
                &["spec.alerting.receivers[0]", "spec.alerting.receivers[1]"],
            ),
            (
                json!({ "receivers": [{ "name": "a", "severities": ["page"], "webhook": { "url": "ftp://x" } }] }),
                &[
                    "spec.alerting.receivers[0].severities[0]",
                    "spec.alerting.receivers[0].webhook.url",
                ],
            ),
            (
                json!({ "receivers": [{ "name": "a", "slack": { "webhookUrlSecret": { "name": "Bad_Name", "key": "a/b" } } }] }),
                &[
                    "spec.alerting.receivers[0].slack.webhookUrlSecret.name",
                    "spec.alerting.receivers[0].slack.webhookUrlSecret.key",
                ],
            ),
            (
                json!({ "receivers": [{ "name": "a", "email": { "to": "ops", "from": "am@example.com", "smarthost": "smtp.example.com" } }] }),
                &[
                    "spec.alerting.receivers[0].email.to",
                    "spec.alerting.receivers[0].email.smarthost",
                ],
            ),
        ];
        for (alerting, want) in table {
            assert_eq!(fields(alerting.clone()), want, "{alerting}");
        }
    }
}
