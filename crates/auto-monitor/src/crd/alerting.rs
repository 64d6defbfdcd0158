//! `spec.alerting`: where the stack's alerts go. The shapes follow Alertmanager's
//! own receivers (`slack_configs`, `webhook_configs`, `email_configs`); secrets are
//! named by reference and mounted into Alertmanager, never copied into its
//! configuration.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Routing of the stack's alerts to people.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alerting {
    /// Language of the Slack and email messages: en (the default) or ko.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// How long Alertmanager waits to group a new alert with others before the
    /// first notification, a Prometheus duration. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<String>,
    /// How often a still-firing alert is notified again. Default `4h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<String>,
    /// Receivers, each getting the alerts of its severities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<Receiver>,
}

/// One receiver: exactly one of `slack`, `webhook`, `email`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receiver {
    /// Name, a DNS label, unique in the stack.
    pub name: String,
    /// Severities routed here: critical, warning, info. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severities: Option<Vec<String>>,
    /// A Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackReceiver>,
    /// A generic webhook (Alertmanager's JSON payload, POSTed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookReceiver>,
    /// Email through an SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailReceiver>,
}

/// A key of a Secret in the stack's namespace.
#[derive(
    Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct SecretKey {
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
}

/// Slack: the webhook URL comes from a Secret (it is the credential).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackReceiver {
    /// The Secret key holding the incoming webhook URL.
    pub webhook_url_secret: SecretKey,
    /// Channel, when the webhook may post to more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// Generic webhook.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceiver {
    /// http or https URL (not a secret: it is kept in Alertmanager's ConfigMap).
    pub url: String,
}

/// Email.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailReceiver {
    /// Recipient address.
    pub to: String,
    /// Sender address.
    pub from: String,
    /// SMTP server, `host:port`.
    pub smarthost: String,
    /// SMTP user, when the server wants a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_username: Option<String>,
    /// The Secret key holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password_secret: Option<SecretKey>,
    /// Require STARTTLS. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_tls: Option<bool>,
}
