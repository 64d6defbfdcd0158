//! People-facing text of graceful drain (Event notes, webhook refusals, doctor
//! output), in English and Korean. Log fields stay English.

use std::time::Duration;

use steward_runtime::Localized;

use crate::core::budget::{Hold, Source};

fn source_ko(source: &Source) -> String {
    match source {
        Source::Pdb(n) => format!("PodDisruptionBudget {n}"),
        Source::StatefulSet(n) => format!("StatefulSet {n} (한 번에 하나씩, 높은 순번부터)"),
        Source::Rollout(n) => format!("{n}의 롤아웃 한도 (PodDisruptionBudget 없음)"),
    }
}

fn hold_ko(hold: &Hold) -> String {
    match hold {
        Hold::Exhausted {
            source,
            healthy,
            desired,
            draining,
        } => format!(
            "{}: 지금은 더 중단할 수 없습니다 (정상 {healthy}개, 필요 {desired}개, 드레인 중 {draining}개)",
            source_ko(source)
        ),
        Hold::After { source, pod } => format!("{pod}부터 드레인합니다 ({})", source_ko(source)),
        Hold::Unknown { source, why } => {
            format!("{}: 아직 알 수 없습니다 ({why})", source_ko(source))
        }
        Hold::Refused { source, message } => {
            format!(
                "{}: API 서버가 아직 거부합니다 ({message})",
                source_ko(source)
            )
        }
    }
}

/// A message for people.
#[derive(Debug, Clone)]
pub enum Msg<'a> {
    /// Webhook: the drain starts; retry later.
    Draining,
    /// Webhook: a drain is already under way.
    StillDraining { phase: &'a str },
    /// Webhook: the last eviction was refused; back-off until.
    BackingOff { until: String },
    /// Event: the pod left load balancing.
    DrainStarted { labels: String },
    /// Event: the pod waits for its disruption budget (or its StatefulSet's turn).
    Queued { hold: &'a Hold },
    /// Event: a Job pod's eviction waits for the pod to finish.
    AwaitingJob { max_wait: Duration },
    /// Event: no Service label can be removed without breaking the owner.
    NotIsolated { kind: &'a str },
    /// Event: the drain probe fails.
    ProbeFailing { why: &'a str, max_wait: Duration },
    /// Event: the pod drained and was evicted.
    Drained { reason: &'a str, after: Duration },
    /// Event: a PodDisruptionBudget refuses the eviction.
    BlockedByPdb { message: &'a str },
    /// Event: the pod was put back in service.
    Restored { why: &'a str },
    /// Event: the configuration was rejected.
    ConfigRejected { error: String },
    /// Doctor: a VPA that could resize in place.
    InPlaceCandidate { vpa: String, target: String },
    /// Doctor: nothing to report.
    NoCandidates,
    /// Doctor: whether the API server resizes pods in place.
    InPlaceResize { served: bool },
    /// Doctor: the VPA API is not installed.
    NoVpaApi,
}

impl Localized for Msg<'_> {
    fn en(&self) -> String {
        match self {
            Self::Draining => "steward is draining this pod (out of load balancing first); it evicts the pod itself when drained. Retry later.".into(),
            Self::StillDraining { phase } => format!("steward is draining this pod ({phase}); it evicts the pod itself when drained. Retry later."),
            Self::BackingOff { until } => format!("the last eviction of this pod was refused; steward drains it again after {until}. Retry later."),
            Self::DrainStarted { labels } => format!("Taken out of load balancing (removed labels {labels}); waiting until drained"),
            Self::Queued { hold } => format!("Eviction queued, not yet out of load balancing: {hold}"),
            Self::AwaitingJob { max_wait } => format!("Job pod: evicted when it has finished, at the latest {}s after the request", max_wait.as_secs()),
            Self::NotIsolated { kind } => format!("Stays in load balancing until deleted: every Service label of this pod is also in its {kind}'s selector (add a Service selector label the {kind} does not select on to get isolation); waiting before evicting"),
            Self::ProbeFailing { why, max_wait } => format!("Drain probe failing ({why}); waiting until the maximum wait ({}s) unless it recovers", max_wait.as_secs()),
            Self::Drained { reason, after } => format!("Drained ({reason}) after {:.1}s; evicted through the Eviction API", after.as_secs_f64()),
            Self::BlockedByPdb { message } => format!("Eviction blocked by a PodDisruptionBudget: {message}"),
            Self::Restored { why } => format!("Put back in service: {why}"),
            Self::ConfigRejected { error } => format!("Configuration rejected, the last good one stays in force: {error}"),
            Self::InPlaceCandidate { vpa, target } => format!("VPA {vpa} (target {target}) uses updateMode Recreate; this cluster resizes pods in place, so InPlaceOrRecreate would avoid the eviction"),
            Self::NoCandidates => "no VerticalPodAutoscaler in Recreate mode that could use InPlaceOrRecreate".into(),
            Self::InPlaceResize { served } => format!("in-place pod resize (pods/resize): {}", if *served { "yes" } else { "no" }),
            Self::NoVpaApi => "VerticalPodAutoscaler API: not installed".into(),
        }
    }

    fn ko(&self) -> String {
        match self {
            Self::Draining => "steward가 이 파드를 드레인하고 있습니다 (먼저 로드밸런싱에서 제외). 드레인이 끝나면 steward가 직접 축출합니다. 나중에 다시 시도하세요.".into(),
            Self::StillDraining { phase } => format!("steward가 이 파드를 드레인하고 있습니다 ({phase}). 드레인이 끝나면 steward가 직접 축출합니다. 나중에 다시 시도하세요."),
            Self::BackingOff { until } => format!("이 파드의 마지막 축출이 거부되었습니다. {until} 이후에 다시 드레인합니다. 나중에 다시 시도하세요."),
            Self::DrainStarted { labels } => format!("로드밸런싱에서 제외했습니다 (제거한 레이블 {labels}); 드레인을 기다립니다"),
            Self::Queued { hold } => format!("축출 대기 중, 아직 로드밸런싱에 남아 있습니다: {}", hold_ko(hold)),
            Self::AwaitingJob { max_wait } => format!("Job 파드: 작업이 끝나면 축출합니다 (요청 후 최대 {}초)", max_wait.as_secs()),
            Self::NotIsolated { kind } => format!("삭제될 때까지 로드밸런싱에 남습니다: 이 파드의 Service 레이블이 모두 {kind} 셀렉터에도 쓰입니다 ({kind}가 쓰지 않는 레이블을 Service 셀렉터에 추가하면 격리됩니다). 축출 전에 기다립니다"),
            Self::ProbeFailing { why, max_wait } => format!("드레인 프로브 실패 ({why}); 복구되지 않으면 최대 대기 시간({}초)까지 기다립니다", max_wait.as_secs()),
            Self::Drained { reason, after } => format!("드레인 완료 ({reason}, {:.1}초); Eviction API로 축출했습니다", after.as_secs_f64()),
            Self::BlockedByPdb { message } => format!("PodDisruptionBudget이 축출을 막았습니다: {message}"),
            Self::Restored { why } => format!("다시 서비스에 넣었습니다: {why}"),
            Self::ConfigRejected { error } => format!("설정을 거부했습니다. 마지막 정상 설정을 계속 사용합니다: {error}"),
            Self::InPlaceCandidate { vpa, target } => format!("VPA {vpa} (대상 {target})는 updateMode Recreate입니다. 이 클러스터는 파드 크기를 제자리에서 바꿀 수 있으므로 InPlaceOrRecreate를 쓰면 축출을 피할 수 있습니다"),
            Self::NoCandidates => "InPlaceOrRecreate로 바꿀 수 있는 Recreate 모드 VerticalPodAutoscaler가 없습니다".into(),
            Self::InPlaceResize { served } => format!("제자리 파드 크기 조정 (pods/resize): {}", if *served { "지원" } else { "미지원" }),
            Self::NoVpaApi => "VerticalPodAutoscaler API: 설치되지 않음".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use steward_runtime::Lang;

    use super::*;

    #[test]
    fn every_message_is_translated() {
        let all = [
            Msg::Draining,
            Msg::StillDraining { phase: "isolated" },
            Msg::BackingOff { until: "t".into() },
            Msg::DrainStarted {
                labels: "app".into(),
            },
            Msg::Drained {
                reason: "drained",
                after: Duration::from_secs(1),
            },
            Msg::BlockedByPdb { message: "m" },
            Msg::Queued {
                hold: &Hold::After {
                    source: Source::StatefulSet("db".into()),
                    pod: "db-2".into(),
                },
            },
            Msg::ProbeFailing {
                why: "w",
                max_wait: Duration::from_secs(1),
            },
            Msg::AwaitingJob {
                max_wait: Duration::from_secs(1),
            },
            Msg::NotIsolated {
                kind: "StatefulSet",
            },
            Msg::Restored { why: "w" },
            Msg::ConfigRejected { error: "e".into() },
            Msg::InPlaceCandidate {
                vpa: "v".into(),
                target: "t".into(),
            },
            Msg::NoCandidates,
            Msg::InPlaceResize { served: true },
            Msg::InPlaceResize { served: false },
            Msg::NoVpaApi,
        ];
        for m in all {
            let (en, ko) = (m.render(Lang::En), m.render(Lang::Ko));
            assert_ne!(en, ko, "{m:?}");
            assert!(
                ko.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c)),
                "{m:?}"
            );
        }
    }
}
