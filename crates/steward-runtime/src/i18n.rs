//! People-facing text in English and Korean.
//!
//! Each system declares its messages as an enum and implements [`Localized`] with
//! one `match` per language, so a message without a translation does not compile.
//! A translation framework (fluent and the like) would move that check to run time
//! and add a resource-loading path for a few dozen short lines; a `match` is enough.
//! Log fields stay English; only text for people goes through here.

/// Language of people-facing messages (`--lang`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Korean.
    Ko,
}

/// A message that can be rendered in every [`Lang`].
pub trait Localized {
    /// The English text.
    fn en(&self) -> String;
    /// The Korean text.
    fn ko(&self) -> String;
    /// The text in `lang`.
    fn render(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.en(),
            Lang::Ko => self.ko(),
        }
    }
}

/// Messages of the shared runtime and the top-level command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Prefix of a fatal error line.
    ErrorPrefix,
    /// The client version line.
    ClientVersion(String),
    /// The server version line.
    ServerVersion(String),
    /// Leadership acquired.
    BecameLeader { lease: String },
    /// Leadership lost; the process stops.
    LostLeadership { lease: String },
    /// Shutdown requested by a signal.
    ShuttingDown,
}

impl Localized for Msg {
    fn en(&self) -> String {
        match self {
            Self::ErrorPrefix => "error".into(),
            Self::ClientVersion(v) => format!("Client Version: {v}"),
            Self::ServerVersion(v) => format!("Server Version: {v}"),
            Self::BecameLeader { lease } => format!("became leader (Lease {lease})"),
            Self::LostLeadership { lease } => format!("lost leadership (Lease {lease}); stopping"),
            Self::ShuttingDown => "shutting down: waiting for running work to stop".into(),
        }
    }

    fn ko(&self) -> String {
        match self {
            Self::ErrorPrefix => "오류".into(),
            Self::ClientVersion(v) => format!("클라이언트 버전: {v}"),
            Self::ServerVersion(v) => format!("서버 버전: {v}"),
            Self::BecameLeader { lease } => format!("리더가 되었습니다 (Lease {lease})"),
            Self::LostLeadership { lease } => {
                format!("리더 자격을 잃었습니다 (Lease {lease}); 종료합니다")
            }
            Self::ShuttingDown => "종료 중: 진행 중인 작업이 멈추기를 기다립니다".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_distinct_text_per_language() {
        let all = [
            Msg::ErrorPrefix,
            Msg::ClientVersion("v1".into()),
            Msg::ServerVersion("v1".into()),
            Msg::BecameLeader {
                lease: "ns/l".into(),
            },
            Msg::LostLeadership {
                lease: "ns/l".into(),
            },
            Msg::ShuttingDown,
        ];
        for m in all {
            let (en, ko) = (m.render(Lang::En), m.render(Lang::Ko));
            assert!(!en.is_empty() && !ko.is_empty(), "{m:?}");
            assert_ne!(en, ko, "{m:?} is not translated");
            assert!(
                ko.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c)),
                "{m:?} has no Hangul: {ko}"
            );
        }
    }
}
