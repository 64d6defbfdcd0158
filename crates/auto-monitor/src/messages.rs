//! People-facing text of auto-monitoring (Events, conditions, the status table), in
//! English and Korean.

use steward_runtime::Localized;

use crate::core::onboarding::Cause;

/// A message for people.
#[derive(Debug, Clone)]
pub enum Msg<'a> {
    /// A node is still not monitored after the deadline.
    NodeLate {
        /// Node.
        node: &'a str,
        /// Likely cause.
        cause: &'a Cause,
        /// Deadline in seconds.
        deadline: u64,
    },
    /// A node finished onboarding.
    NodeMonitored {
        /// Node.
        node: &'a str,
        /// Seconds from Ready to first sample.
        seconds: f64,
    },
    /// The spec is invalid.
    SpecInvalid {
        /// `field: reason` lines.
        errors: &'a [String],
    },
    /// Pre-flight blocked the install.
    PreflightBlocked {
        /// Blocking findings.
        findings: &'a [String],
    },
    /// The stack was applied.
    Applied {
        /// Objects applied.
        applied: usize,
        /// Objects pruned.
        pruned: usize,
        /// Profile.
        profile: &'a str,
    },
    /// Header of the node table.
    TableHeader,
    /// Stack line above the table.
    StackLine {
        /// namespace/name.
        stack: &'a str,
        /// Phase.
        phase: &'a str,
        /// Profile.
        profile: &'a str,
        /// monitored/total.
        summary: &'a str,
    },
    /// `steward monitor` was run without a subcommand.
    BareDeprecated,
}

fn cause_en(c: &Cause) -> String {
    match c {
        Cause::NodeNotReady => "the node is not Ready".into(),
        Cause::TaintNotTolerated(t) => format!("the node-exporter DaemonSet does not tolerate the taint {t}"),
        Cause::HostPortConflict(p) => format!("host port 9100 is taken ({p})"),
        Cause::NoExporterPod => "the node-exporter DaemonSet created no pod for the node (check spec.nodeSelector and the DaemonSet's events)".into(),
        Cause::Unschedulable(m) => format!("the node-exporter pod cannot be scheduled: {m}"),
        Cause::ImagePull(m) => format!("the node-exporter image cannot be pulled ({m})"),
        Cause::ExporterNotReady(m) => format!("the node-exporter pod is not Ready ({m})"),
        Cause::TargetNotDiscovered => "Prometheus has no target for the node (check the node-exporter scrape job and RBAC for pod discovery)".into(),
        Cause::ScrapeFailing => "Prometheus cannot scrape the node's exporter (check network policies and firewalls on port 9100)".into(),
    }
}

fn cause_ko(c: &Cause) -> String {
    match c {
        Cause::NodeNotReady => "노드가 Ready 상태가 아닙니다".into(),
        Cause::TaintNotTolerated(t) => format!("node-exporter DaemonSet이 taint {t}를 허용하지 않습니다"),
        Cause::HostPortConflict(p) => format!("호스트 포트 9100이 이미 사용 중입니다 ({p})"),
        Cause::NoExporterPod => "node-exporter DaemonSet이 이 노드에 파드를 만들지 않았습니다 (spec.nodeSelector와 DaemonSet 이벤트를 확인하세요)".into(),
        Cause::Unschedulable(m) => format!("node-exporter 파드를 스케줄할 수 없습니다: {m}"),
        Cause::ImagePull(m) => format!("node-exporter 이미지를 받을 수 없습니다 ({m})"),
        Cause::ExporterNotReady(m) => format!("node-exporter 파드가 Ready가 아닙니다 ({m})"),
        Cause::TargetNotDiscovered => "Prometheus에 이 노드의 수집 대상이 없습니다 (node-exporter 수집 job과 파드 탐색 RBAC를 확인하세요)".into(),
        Cause::ScrapeFailing => "Prometheus가 이 노드의 exporter를 수집하지 못합니다 (포트 9100의 네트워크 정책과 방화벽을 확인하세요)".into(),
    }
}

impl Localized for Msg<'_> {
    fn en(&self) -> String {
        match self {
            Self::NodeLate {
                node,
                cause,
                deadline,
            } => format!(
                "node {node} is Ready but still not monitored after {deadline}s: {}",
                cause_en(cause)
            ),
            Self::NodeMonitored { node, seconds } => {
                format!(
                    "node {node} is monitored: first sample {seconds:.1}s after it turned Ready"
                )
            }
            Self::SpecInvalid { errors } => format!(
                "invalid spec, nothing was applied or removed: {}",
                errors.join("; ")
            ),
            Self::PreflightBlocked { findings } => format!(
                "pre-flight blocked the install, nothing was applied: {}",
                findings.join("; ")
            ),
            Self::Applied {
                applied,
                pruned,
                profile,
            } => format!("applied {applied} objects (profile {profile}), pruned {pruned}"),
            Self::TableHeader => {
                "NODE\tSTEP\tEXPORTER POD\tTARGET UP\tFIRST SAMPLE\tONBOARDING\tAVAILABILITY (1h)"
                    .into()
            }
            Self::StackLine {
                stack,
                phase,
                profile,
                summary,
            } => format!(
                "MonitoringStack {stack}: phase {phase}, profile {profile}, monitored nodes {summary}"
            ),
            Self::BareDeprecated => "warning: `steward monitor` without a subcommand is deprecated and goes away in the next release; run `steward monitor run`".into(),
        }
    }

    fn ko(&self) -> String {
        match self {
            Self::NodeLate {
                node,
                cause,
                deadline,
            } => format!(
                "노드 {node}가 Ready인데 {deadline}초가 지나도 모니터링되지 않습니다: {}",
                cause_ko(cause)
            ),
            Self::NodeMonitored { node, seconds } => {
                format!("노드 {node} 모니터링 시작: Ready 후 {seconds:.1}초 만에 첫 샘플 수집")
            }
            Self::SpecInvalid { errors } => format!(
                "spec이 잘못되어 아무것도 적용하거나 삭제하지 않았습니다: {}",
                errors.join("; ")
            ),
            Self::PreflightBlocked { findings } => format!(
                "사전 점검에서 설치가 막혀 아무것도 적용하지 않았습니다: {}",
                findings.join("; ")
            ),
            Self::Applied {
                applied,
                pruned,
                profile,
            } => format!("오브젝트 {applied}개 적용 (프로필 {profile}), {pruned}개 정리"),
            Self::TableHeader => {
                "노드\t단계\tEXPORTER 파드\t수집 대상 UP\t첫 샘플\t온보딩\t가용성 (1시간)".into()
            }
            Self::StackLine {
                stack,
                phase,
                profile,
                summary,
            } => format!(
                "MonitoringStack {stack}: 단계 {phase}, 프로필 {profile}, 모니터링 노드 {summary}"
            ),
            Self::BareDeprecated => "경고: 하위 명령 없는 `steward monitor`는 더 이상 권장되지 않으며 다음 릴리스에서 없어집니다. `steward monitor run`을 쓰세요".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_runtime::Lang;

    #[test]
    fn every_message_is_translated() {
        let causes = [
            Cause::NodeNotReady,
            Cause::TaintNotTolerated("a=b:NoSchedule".into()),
            Cause::HostPortConflict("ns/p".into()),
            Cause::NoExporterPod,
            Cause::Unschedulable("x".into()),
            Cause::ImagePull("x".into()),
            Cause::ExporterNotReady("x".into()),
            Cause::TargetNotDiscovered,
            Cause::ScrapeFailing,
        ];
        let errors = ["spec.retention: bad".to_string()];
        let mut all: Vec<Msg> = causes
            .iter()
            .map(|cause| Msg::NodeLate {
                node: "n",
                cause,
                deadline: 120,
            })
            .collect();
        all.extend([
            Msg::NodeMonitored {
                node: "n",
                seconds: 1.0,
            },
            Msg::SpecInvalid { errors: &errors },
            Msg::PreflightBlocked { findings: &errors },
            Msg::Applied {
                applied: 1,
                pruned: 0,
                profile: "kind",
            },
            Msg::TableHeader,
            Msg::StackLine {
                stack: "a/b",
                phase: "Installed",
                profile: "kind",
                summary: "1/1",
            },
            Msg::BareDeprecated,
        ]);
        for m in all {
            let (en, ko) = (m.render(Lang::En), m.render(Lang::Ko));
            assert_ne!(en, ko, "{m:?}");
            assert!(
                ko.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c)),
                "{m:?}: {ko}"
            );
        }
    }
}
