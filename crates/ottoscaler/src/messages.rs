//! People-facing text of the ottoscaler CLI, in English and Korean. The server's
//! progress messages stay English (they are data for the handler); the CLI renders
//! states and outcomes through here.

use steward_runtime::Localized;

use crate::proto::{PipelineProgress, RunState, StageState};

/// A message for people.
#[derive(Debug, Clone)]
pub enum Msg<'a> {
    /// One progress message.
    Progress(&'a PipelineProgress),
    /// ScaleUp created workers (some of which may wait for capacity, `waiting` says why).
    ScaledUp {
        task: &'a str,
        workers: &'a [String],
        waiting: &'a str,
    },
    /// A worker waits for a node with room, for this reason (the scheduler's).
    CapacityWait(&'a str),
    /// ScaleDown removed workers.
    ScaledDown {
        task: &'a str,
        workers: &'a [String],
        left: i32,
    },
    /// The status header.
    StatusHeader {
        cap: i32,
        in_use: i32,
        queued: i32,
        team: &'a str,
        team_in_use: i32,
    },
    /// A cancel answer.
    Cancel { run: &'a str, cancelled: bool },
    /// The progress stream broke; re-attaching.
    Reattach { run: &'a str, from: u64 },
    /// Ctrl-C or SIGTERM stopped a client command.
    Interrupted,
}

fn stage_en(s: StageState) -> &'static str {
    match s {
        StageState::Unspecified => "?",
        StageState::Pending => "pending",
        StageState::Queued => "queued",
        StageState::Starting => "starting",
        StageState::Running => "running",
        StageState::Retrying => "retrying",
        StageState::Succeeded => "succeeded",
        StageState::Failed => "failed",
        StageState::Skipped => "skipped",
        StageState::Cancelled => "cancelled",
    }
}

fn stage_ko(s: StageState) -> &'static str {
    match s {
        StageState::Unspecified => "?",
        StageState::Pending => "대기",
        StageState::Queued => "큐 대기",
        StageState::Starting => "시작 중",
        StageState::Running => "실행 중",
        StageState::Retrying => "재시도 대기",
        StageState::Succeeded => "성공",
        StageState::Failed => "실패",
        StageState::Skipped => "건너뜀",
        StageState::Cancelled => "취소됨",
    }
}

fn run_en(s: RunState) -> &'static str {
    match s {
        RunState::Unspecified | RunState::Running => "running",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Cancelled => "cancelled",
    }
}

fn run_ko(s: RunState) -> &'static str {
    match s {
        RunState::Unspecified | RunState::Running => "실행 중",
        RunState::Succeeded => "성공",
        RunState::Failed => "실패",
        RunState::Cancelled => "취소됨",
    }
}

fn clock(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

impl Localized for Msg<'_> {
    fn en(&self) -> String {
        match self {
            Self::Progress(p) if p.stage.is_empty() => format!(
                "{} #{} run {} {}: {}",
                clock(p.timestamp_unix_ms),
                p.seq,
                p.run_id,
                run_en(p.run_state()),
                p.message
            ),
            Self::Progress(p) => format!(
                "{} #{} stage {} (attempt {}) {}: {}",
                clock(p.timestamp_unix_ms),
                p.seq,
                p.stage,
                p.attempt,
                stage_en(p.stage_state()),
                if p.capacity_wait.is_empty() {
                    p.message.clone()
                } else {
                    Self::CapacityWait(&p.capacity_wait).en()
                }
            ),
            Self::ScaledUp {
                task,
                workers,
                waiting,
            } => {
                let mut s = format!(
                    "task {task}: created {} workers: {}",
                    workers.len(),
                    workers.join(", ")
                );
                if !waiting.is_empty() {
                    s.push_str(&format!("; {}", Self::CapacityWait(waiting).en()));
                }
                s
            }
            Self::CapacityWait(reason) => format!("waiting for capacity: {reason}"),
            Self::ScaledDown {
                task,
                workers,
                left,
            } => format!(
                "task {task}: removed {} workers ({}), {left} left",
                workers.len(),
                workers.join(", ")
            ),
            Self::StatusHeader {
                cap,
                in_use,
                queued,
                team,
                team_in_use,
            } => format!(
                "workers in use {in_use}/{cap}, queued {queued}; team {team} holds {team_in_use}"
            ),
            Self::Cancel {
                run,
                cancelled: true,
            } => format!("run {run}: cancelling (finally stages still run)"),
            Self::Cancel {
                run,
                cancelled: false,
            } => format!("run {run} had already ended"),
            Self::Reattach { run, from } => {
                format!("progress stream of run {run} broke; re-attaching from #{from}")
            }
            Self::Interrupted => "interrupted; a pipeline run goes on on the server (steward ottoscaler cancel RUN stops it)".into(),
        }
    }

    fn ko(&self) -> String {
        match self {
            Self::Progress(p) if p.stage.is_empty() => format!(
                "{} #{} 실행 {} {}: {}",
                clock(p.timestamp_unix_ms),
                p.seq,
                p.run_id,
                run_ko(p.run_state()),
                p.message
            ),
            Self::Progress(p) => format!(
                "{} #{} 스테이지 {} (시도 {}) {}: {}",
                clock(p.timestamp_unix_ms),
                p.seq,
                p.stage,
                p.attempt,
                stage_ko(p.stage_state()),
                if p.capacity_wait.is_empty() {
                    p.message.clone()
                } else {
                    Self::CapacityWait(&p.capacity_wait).ko()
                }
            ),
            Self::ScaledUp {
                task,
                workers,
                waiting,
            } => {
                let mut s = format!(
                    "태스크 {task}: 워커 {}개 생성: {}",
                    workers.len(),
                    workers.join(", ")
                );
                if !waiting.is_empty() {
                    s.push_str(&format!("; {}", Self::CapacityWait(waiting).ko()));
                }
                s
            }
            Self::CapacityWait(reason) => format!("용량 대기 중: {reason}"),
            Self::ScaledDown {
                task,
                workers,
                left,
            } => format!(
                "태스크 {task}: 워커 {}개 삭제 ({}), 남은 워커 {left}개",
                workers.len(),
                workers.join(", ")
            ),
            Self::StatusHeader {
                cap,
                in_use,
                queued,
                team,
                team_in_use,
            } => format!("사용 중인 워커 {in_use}/{cap}, 대기 {queued}; 팀 {team} 사용 {team_in_use}"),
            Self::Cancel {
                run,
                cancelled: true,
            } => format!("실행 {run}: 취소 중 (finally 스테이지는 실행됩니다)"),
            Self::Cancel {
                run,
                cancelled: false,
            } => format!("실행 {run}은(는) 이미 끝났습니다"),
            Self::Reattach { run, from } => {
                format!("실행 {run}의 진행 스트림이 끊겼습니다; #{from}부터 다시 연결합니다")
            }
            Self::Interrupted => "중단됨; 파이프라인 실행은 서버에서 계속됩니다 (steward ottoscaler cancel RUN으로 멈춥니다)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_wait_in_both_languages() {
        let p = PipelineProgress {
            stage: "build".into(),
            stage_state: StageState::Pending as i32,
            attempt: 1,
            message: "waiting for capacity: 0/2 nodes are available".into(),
            capacity_wait: "0/2 nodes are available".into(),
            ..Default::default()
        };
        let en = Msg::Progress(&p).en();
        let ko = Msg::Progress(&p).ko();
        assert!(
            en.ends_with(
                "stage build (attempt 1) pending: waiting for capacity: 0/2 nodes are available"
            ),
            "{en}"
        );
        assert!(
            ko.ends_with("스테이지 build (시도 1) 대기: 용량 대기 중: 0/2 nodes are available"),
            "{ko}"
        );
        let workers = ["t-a".to_string()];
        let up = Msg::ScaledUp {
            task: "t",
            workers: &workers,
            waiting: "only 0 of 1 workers fit",
        };
        assert_eq!(
            up.en(),
            "task t: created 1 workers: t-a; waiting for capacity: only 0 of 1 workers fit"
        );
        assert_eq!(
            up.ko(),
            "태스크 t: 워커 1개 생성: t-a; 용량 대기 중: only 0 of 1 workers fit"
        );
    }
}
