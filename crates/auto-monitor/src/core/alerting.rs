//! Alertmanager's configuration from `spec.alerting`: one route per receiver,
//! matched by severity (`continue: true`, so a critical alert reaches every
//! receiver that takes critical), the stack's own message templates in the
//! stack's language, and secrets read from files Alertmanager mounts, never
//! written into the configuration. Pure.
//!
//! The paths are kube-prometheus-stack's (the Prometheus Operator mounts a listed
//! Secret at `/etc/alertmanager/secrets/<name>/` and template files beside the
//! configuration), so one configuration serves both install modes.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use steward_runtime::Lang;

use crate::crd::{Receiver, SecretKey};

/// Where the configuration and the templates are mounted.
pub const CONFIG_DIR: &str = "/etc/alertmanager/config";
/// Where each referenced Secret is mounted, one directory per Secret.
pub const SECRETS_DIR: &str = "/etc/alertmanager/secrets";
/// The message templates' file name.
pub const TEMPLATE_FILE: &str = "steward.tmpl";
/// The receiver of alerts no route takes (Alertmanager's null receiver).
pub const DEFAULT_RECEIVER: &str = "default";

/// Resolved `spec.alerting`.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// Language of the messages.
    pub lang: Lang,
    /// `group_wait` (Prometheus duration).
    pub group_wait: String,
    /// `repeat_interval` (Prometheus duration).
    pub repeat_interval: String,
    /// Receivers, in spec order.
    pub receivers: Vec<Receiver>,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            lang: Lang::En,
            group_wait: "30s".into(),
            repeat_interval: "4h".into(),
            receivers: Vec::new(),
        }
    }
}

/// The file Alertmanager reads a secret from.
pub fn secret_file(s: &SecretKey) -> String {
    format!("{SECRETS_DIR}/{}/{}", s.name, s.key)
}

/// The Secrets the receivers read, each mounted once.
pub fn secrets(r: &Routing) -> BTreeSet<String> {
    r.receivers
        .iter()
        .flat_map(|rc| {
            let slack = rc.slack.as_ref().map(|s| s.webhook_url_secret.name.clone());
            let email = rc
                .email
                .as_ref()
                .and_then(|e| e.auth_password_secret.as_ref())
                .map(|s| s.name.clone());
            slack.into_iter().chain(email)
        })
        .collect()
}

/// Alerts that say the pipeline works and must never page anyone:
/// kube-prometheus-stack's always-firing Watchdog and InfoInhibitor (helm mode).
const HEARTBEATS: &str = r#"alertname=~"Watchdog|InfoInhibitor""#;

/// `alertmanager.yml` as a JSON value.
pub fn config(r: &Routing) -> Value {
    let heartbeats = json!({ "receiver": DEFAULT_RECEIVER, "matchers": [HEARTBEATS] });
    let routes: Vec<Value> = std::iter::once(heartbeats)
        .chain(r.receivers.iter().map(|rc| {
            let mut route = json!({ "receiver": rc.name, "continue": true });
            if let Some(sev) = &rc.severities {
                route["matchers"] = json!([format!("severity=~\"{}\"", sev.join("|"))]);
            }
            route
        }))
        .collect();
    let mut receivers = vec![json!({ "name": DEFAULT_RECEIVER })];
    receivers.extend(r.receivers.iter().map(receiver));
    json!({
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": ["alertname", "node"],
            "group_wait": r.group_wait,
            "repeat_interval": r.repeat_interval,
            "routes": routes,
        },
        "receivers": receivers,
        "templates": [format!("{CONFIG_DIR}/{TEMPLATE_FILE}")],
    })
}

const TITLE: &str = r#"{{ template "steward.title" . }}"#;
const TEXT: &str = r#"{{ template "steward.text" . }}"#;

fn receiver(rc: &Receiver) -> Value {
    let mut v = json!({ "name": rc.name });
    if let Some(s) = &rc.slack {
        let mut c = json!({
            "api_url_file": secret_file(&s.webhook_url_secret),
            "send_resolved": true,
            "title": TITLE,
            "text": TEXT,
        });
        if let Some(ch) = &s.channel {
            c["channel"] = json!(ch);
        }
        v["slack_configs"] = json!([c]);
    }
    if let Some(w) = &rc.webhook {
        v["webhook_configs"] = json!([{ "url": w.url, "send_resolved": true }]);
    }
    if let Some(e) = &rc.email {
        let mut c = json!({
            "to": e.to,
            "from": e.from,
            "smarthost": e.smarthost,
            "require_tls": e.require_tls.unwrap_or(true),
            "send_resolved": true,
            "headers": { "Subject": TITLE },
            "text": TEXT,
            "html": r#"<pre>{{ template "steward.text" . }}</pre>"#,
        });
        if let Some(u) = &e.auth_username {
            c["auth_username"] = json!(u);
        }
        if let Some(p) = &e.auth_password_secret {
            c["auth_password_file"] = json!(secret_file(p));
        }
        v["email_configs"] = json!([c]);
    }
    v
}

/// The message templates (`steward.title`, `steward.text`) in `lang`. Korean
/// messages use the rules' `summary_ko` annotation, English ones `summary`.
pub fn templates(lang: Lang) -> String {
    let (firing, resolved, on_node, summary) = match lang {
        Lang::En => ("FIRING", "RESOLVED", " on node ", ".Annotations.summary"),
        Lang::Ko => (
            "발생",
            "해결",
            " 노드 ",
            "(or .Annotations.summary_ko .Annotations.summary)",
        ),
    };
    format!(
        concat!(
            "{{{{ define \"steward.title\" }}}}[{{{{ if eq .Status \"firing\" }}}}{f}:{{{{ .Alerts.Firing | len }}}}",
            "{{{{ else }}}}{r}{{{{ end }}}}] {{{{ .CommonLabels.alertname }}}}{{{{ end }}}}\n",
            "{{{{ define \"steward.text\" }}}}{{{{ range .Alerts }}}}",
            "{{{{ if eq .Status \"firing\" }}}}{f}{{{{ else }}}}{r}{{{{ end }}}}: {{{{ .Labels.alertname }}}} ({{{{ .Labels.severity }}}})",
            "{{{{ if .Labels.node }}}}{n}{{{{ .Labels.node }}}}{{{{ end }}}}: {{{{ {s} }}}}\n",
            "{{{{ end }}}}{{{{ end }}}}\n",
        ),
        f = firing,
        r = resolved,
        n = on_node,
        s = summary,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EmailReceiver, SlackReceiver, WebhookReceiver};

    fn key(name: &str, key: &str) -> SecretKey {
        SecretKey {
            name: name.into(),
            key: key.into(),
        }
    }

    fn routing() -> Routing {
        Routing {
            receivers: vec![
                Receiver {
                    name: "oncall".into(),
                    severities: Some(vec!["critical".into()]),
                    slack: Some(SlackReceiver {
                        webhook_url_secret: key("slack", "url"),
                        channel: Some("#ops".into()),
                    }),
                    ..Default::default()
                },
                Receiver {
                    name: "hooks".into(),
                    webhook: Some(WebhookReceiver {
                        url: "https://hooks.example/alerts".into(),
                    }),
                    ..Default::default()
                },
                Receiver {
                    name: "mail".into(),
                    severities: Some(vec!["critical".into(), "warning".into()]),
                    email: Some(EmailReceiver {
                        to: "ops@example.com".into(),
                        from: "am@example.com".into(),
                        smarthost: "smtp.example.com:587".into(),
                        auth_username: Some("am".into()),
                        auth_password_secret: Some(key("smtp", "password")),
                        require_tls: None,
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn each_receiver_gets_a_route_by_severity_and_the_rest_go_nowhere() {
        let c = config(&routing());
        let routes = c["route"]["routes"].as_array().cloned().unwrap_or_default();
        let table = [
            // First, without `continue`: heartbeats stop at the null receiver.
            (DEFAULT_RECEIVER, Some(HEARTBEATS)),
            ("oncall", Some(r#"severity=~"critical""#)),
            ("hooks", None),
            ("mail", Some(r#"severity=~"critical|warning""#)),
        ];
        assert_eq!(routes.len(), table.len());
        for ((name, matcher), route) in table.iter().zip(&routes) {
            assert_eq!(route["receiver"], *name);
            let continues = *name != DEFAULT_RECEIVER;
            assert_eq!(
                route["continue"].as_bool().unwrap_or(false),
                continues,
                "{name}"
            );
            assert_eq!(route["matchers"][0].as_str(), *matcher, "{name}");
        }
        assert_eq!(c["route"]["receiver"], DEFAULT_RECEIVER);
        assert_eq!(c["receivers"][0], json!({ "name": DEFAULT_RECEIVER }));
    }

    #[test]
    fn secrets_are_files_never_values() {
        let c = config(&routing());
        let slack = &c["receivers"][1]["slack_configs"][0];
        assert_eq!(slack["api_url_file"], "/etc/alertmanager/secrets/slack/url");
        assert!(slack.get("api_url").is_none());
        assert_eq!(slack["channel"], "#ops");
        let mail = &c["receivers"][3]["email_configs"][0];
        assert_eq!(
            mail["auth_password_file"],
            "/etc/alertmanager/secrets/smtp/password"
        );
        assert_eq!(mail["require_tls"], true);
        assert_eq!(
            secrets(&routing()),
            ["slack", "smtp"].map(String::from).into()
        );
    }

    #[test]
    fn no_receivers_is_the_null_receiver_alone() {
        let c = config(&Routing::default());
        assert_eq!(c["route"]["routes"].as_array().map(Vec::len), Some(1));
        assert_eq!(c["receivers"], json!([{ "name": DEFAULT_RECEIVER }]));
        assert_eq!(c["route"]["group_wait"], "30s");
    }

    #[test]
    fn templates_speak_the_stacks_language() {
        let table = [
            (Lang::En, "FIRING", " on node ", ".Annotations.summary }}"),
            (Lang::Ko, "발생", " 노드 ", ".Annotations.summary_ko"),
        ];
        for (lang, firing, node, summary) in table {
            let t = templates(lang);
            assert!(t.contains(r#"{{ define "steward.title" }}"#), "{t}");
            assert!(
                t.contains(&format!("{firing}:{{{{ .Alerts.Firing | len }}}}")),
                "{t}"
            );
            assert!(t.contains(node), "{t}");
            assert!(t.contains(summary), "{t}");
            assert_eq!(t.matches("{{ define").count(), 2, "{t}");
        }
    }
}
