//! `-o text|json|yaml`: one flag and one renderer for every command with
//! structured output. Text is each command's own; JSON and YAML render the same
//! report value, so scripts can rely on either.

use serde::Serialize;

/// The output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people: tables and sentences.
    #[default]
    Text,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

impl Output {
    /// Whether the output is for programs.
    pub fn is_structured(self) -> bool {
        self != Self::Text
    }

    /// Renders `value` as JSON or YAML (pretty JSON, block YAML); `None` for text,
    /// which the command writes itself.
    pub fn render<T: Serialize>(self, value: &T) -> Option<Result<String, String>> {
        match self {
            Self::Text => None,
            Self::Json => Some(serde_json::to_string_pretty(value).map_err(|e| e.to_string())),
            Self::Yaml => Some(serde_saphyr::to_string(value).map_err(|e| e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_same_value() {
        let v = serde_json::json!({ "nodes": ["a", "b"], "drained": 2 });
        assert!(Output::Text.render(&v).is_none());
        let json: serde_json::Value =
            serde_json::from_str(&Output::Json.render(&v).unwrap().unwrap()).unwrap();
        let yaml: serde_json::Value =
            serde_saphyr::from_str(&Output::Yaml.render(&v).unwrap().unwrap()).unwrap();
        assert_eq!(json, v);
        assert_eq!(yaml, v);
        assert!(Output::Json.is_structured() && !Output::Text.is_structured());
    }
}
