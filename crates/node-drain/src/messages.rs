//! People-facing text of the NodePool drain (CLI and Slack), in English and Korean.

use steward_runtime::{Lang, Localized};

use crate::core::alloc::{Allocation, Resource};
use crate::core::batch::{Batch, Limit};
use crate::core::events::NodeEvent;
use crate::core::handoff::{HandOff, HandOffReport, Kept, Replacement};
use crate::core::report::NodeOutcome;

/// A message for people.
#[derive(Debug, Clone)]
pub enum Msg<'a> {
    /// The allocation report (`karpenter allocate-rate`).
    Allocation {
        nodepool: &'a str,
        a: &'a Allocation,
        /// The PromQL read, selector in place.
        queries: &'a [String],
    },
    /// The batch computation, every number.
    Plan { nodes: usize, b: &'a Batch },
    /// Nothing to drain; whether the NodePool's budget is why.
    NothingToDrain { budget: bool },
    /// Slack: the drain starts.
    SlackStart {
        cluster: &'a str,
        nodepool: &'a str,
        nodes: usize,
        a: &'a Allocation,
        batch: &'a [String],
    },
    /// Slack and CLI: one node finished.
    NodeResult {
        node: &'a str,
        outcome: &'a NodeOutcome,
    },
    /// Slack and CLI: the summary.
    Summary {
        cluster: &'a str,
        nodepool: &'a str,
        drained: usize,
        total: usize,
        rolled_back: &'a [String],
        handoff: &'a [HandOffReport],
        replacements: &'a [Replacement],
    },
    /// CLI: one drained node's hand-off ended.
    HandOff { node: &'a str, outcome: &'a HandOff },
    /// Dry run: nothing was changed.
    DryRun,
    /// Dry run: pods without a controller that only `--force` would evict.
    NeedsForce { pods: &'a [String] },
    /// The note of a Kubernetes Event on a node ([`crate::core::events`]).
    NodeEvent(NodeEvent<'a>),
}

fn gen_name(a: &Allocation) -> String {
    use crate::core::alloc::Generation;
    let generation = match a.generation {
        Generation::V1 => "Karpenter v1",
        Generation::Legacy => "Karpenter < 1.0",
    };
    format!(
        "{generation}, capacity {}",
        a.generation.capacity_metric(a.capacity)
    )
}

impl Localized for Msg<'_> {
    fn en(&self) -> String {
        match self {
            Self::Allocation { nodepool, a, queries } => format!(
                "NodePool {nodepool} (metrics: {})\n  memory: capacity {}, pod requests {}, allocate rate {:.0} %\n  cpu:    capacity {}, pod requests {}, allocate rate {:.0} %\n  queries:{}",
                gen_name(a),
                Resource::Memory.human(a.memory.usage), Resource::Memory.human(a.memory.requests), a.memory.rate_percent(),
                Resource::Cpu.human(a.cpu.usage), Resource::Cpu.human(a.cpu.requests), a.cpu.rate_percent(),
                query_lines(queries),
            ),
            Self::Plan { nodes, b } => format!(
                "nodes in NodePool: {nodes} ({} drainable)\nmax allocate rate: {:.0} %\ndrain rate = (99 - {:.0}) / 100 = {:.2}\ndrain count = floor({} x {:.2}) = {} -> {}{}{}\nnodes to drain (oldest first): {}{}{}{}",
                b.candidates, b.max_allocate_rate, b.max_allocate_rate, b.drain_rate, b.candidates, b.drain_rate, b.formula_count, b.count,
                if b.by_hand { " (chosen with --nodes)".to_string() } else { format!(" after clamping to [0, {}], --min-batch and --max-batch", b.candidates) },
                budget_line(b, Lang::En),
                if b.nodes.is_empty() { "none".to_string() } else { b.nodes.join(", ") },
                if b.resumed.is_empty() { String::new() } else { format!("\nresuming an earlier run on: {}", b.resumed.join(", ")) },
                b.skipped.iter().map(|(n, why)| format!("\nskipped {n}: {why}")).collect::<String>(),
                if b.left_drained.is_empty() { String::new() } else { format!("\nleft drained by an earlier run, handed off now: {}", b.left_drained.join(", ")) },
            ),
            Self::NothingToDrain { budget: true } => "nothing to drain: the NodePool's disruption budget allows no more nodes now (see the budget line above); run again when the window opens or nodes in disruption are done".into(),
            Self::NothingToDrain { budget: false } => "nothing to drain: the computed count is 0 (the NodePool is too busy or too small); see --min-batch".into(),
            Self::SlackStart { cluster, nodepool, nodes, a, batch } => format!(
                ":construction: Node drain started on *{cluster}* NodePool *{nodepool}*: {nodes} nodes, memory {:.0} %, cpu {:.0} %, draining {}: {}",
                a.memory.rate_percent(), a.cpu.rate_percent(), batch.len(), batch.join(", ")
            ),
            Self::NodeResult { node, outcome } => match outcome {
                NodeOutcome::Drained { seconds } => format!(":white_check_mark: {node} drained in {seconds}s"),
                NodeOutcome::TimedOut { remaining } => format!(":x: {node} timed out with {} pods left: {}", remaining.len(), remaining.join(", ")),
                NodeOutcome::Interrupted { remaining } => format!(":double_vertical_bar: {node} interrupted with {} pods left; it stays cordoned and the next run resumes it", remaining.len()),
                NodeOutcome::Failed { reason } => format!(":x: {node} failed: {reason}"),
            },
            Self::Summary { cluster, nodepool, drained, total, rolled_back, handoff, replacements } => format!(
                "Node drain on {cluster} NodePool {nodepool} finished: {drained}/{total} nodes drained{}{}",
                if rolled_back.is_empty() { String::new() } else { format!("; uncordoned (never started): {}", rolled_back.join(", ")) },
                rotation(handoff, replacements, Lang::En),
            ),
            Self::HandOff { node, outcome } => format!("{node}: {}", handoff_text(outcome, Lang::En)),
            Self::DryRun => "dry run: nothing was cordoned or evicted".into(),
            Self::NeedsForce { pods } => format!("without --force this drain refuses: no controller recreates {} once evicted; with --force they are evicted", pods.join(", ")),
            Self::NodeEvent(e) => match e {
                NodeEvent::Started { nodepool, batch, pods } => format!(
                    "Cordoned; steward drain of NodePool {nodepool} started on this node with {pods} pods to move (batch of {} nodes: {})",
                    batch.len(), batch.join(", ")
                ),
                NodeEvent::Ended { outcome, evicted, deleted } => match outcome {
                    NodeOutcome::Drained { seconds } => format!("Drained in {seconds}s: {evicted} evicted, {deleted} deleted (problem pods)"),
                    NodeOutcome::TimedOut { remaining } => format!("Drain timed out with {} pods left: {}", remaining.len(), remaining.join(", ")),
                    NodeOutcome::Interrupted { remaining } => format!("Drain interrupted with {} pods left: {}; the node stays cordoned and the next run resumes it", remaining.len(), remaining.join(", ")),
                    NodeOutcome::Failed { reason } => format!("Drain failed: {reason}"),
                },
                NodeEvent::Surged { pod, deployment } => format!("Restarted Deployment {deployment} so that a replacement of {pod} is Ready before {pod} leaves (make-before-break; --no-surge evicts at once)"),
                NodeEvent::Evicted { pod } => format!("Evicted {pod} through the Eviction API"),
                NodeEvent::HandedOff { outcome } => handoff_text(outcome, Lang::En),
                NodeEvent::Uncordoned { nodepool } => format!("Uncordoned: the steward drain of NodePool {nodepool} ended before this node's drain started"),
                NodeEvent::Blocked { pod, pdb, message } => format!(
                    "Evicting {pod} is blocked by {}: {message}; the drain waits until the budget allows it",
                    pdb.map_or("a PodDisruptionBudget".to_string(), |p| format!("PodDisruptionBudget {p}"))
                ),
            },
        }
    }

    fn ko(&self) -> String {
        match self {
            Self::Allocation { nodepool, a, queries } => format!(
                "NodePool {nodepool} (메트릭: {})\n  메모리: 용량 {}, 파드 요청 {}, 할당률 {:.0} %\n  CPU:    용량 {}, 파드 요청 {}, 할당률 {:.0} %\n  쿼리:{}",
                gen_name(a),
                Resource::Memory.human(a.memory.usage), Resource::Memory.human(a.memory.requests), a.memory.rate_percent(),
                Resource::Cpu.human(a.cpu.usage), Resource::Cpu.human(a.cpu.requests), a.cpu.rate_percent(),
                query_lines(queries),
            ),
            Self::Plan { nodes, b } => format!(
                "NodePool 노드 수: {nodes} (드레인 가능 {})\n최대 사용률: {:.0} %\n드레인 비율 = (99 - {:.0}) / 100 = {:.2}\n드레인 할 노드 개수 = floor({} x {:.2}) = {} -> {}{}{}\n드레인 대상 (오래된 순): {}{}{}{}",
                b.candidates, b.max_allocate_rate, b.max_allocate_rate, b.drain_rate, b.candidates, b.drain_rate, b.formula_count, b.count,
                if b.by_hand { " (--nodes로 직접 지정)".to_string() } else { format!(" ([0, {}], --min-batch, --max-batch 적용 후)", b.candidates) },
                budget_line(b, Lang::Ko),
                if b.nodes.is_empty() { "없음".to_string() } else { b.nodes.join(", ") },
                if b.resumed.is_empty() { String::new() } else { format!("\n이전 실행을 이어서 진행: {}", b.resumed.join(", ")) },
                b.skipped.iter().map(|(n, why)| format!("\n제외 {n}: {why}")).collect::<String>(),
                if b.left_drained.is_empty() { String::new() } else { format!("\n이전 실행이 드레인만 하고 넘기지 않은 노드, 이번에 넘김: {}", b.left_drained.join(", ")) },
            ),
            Self::NothingToDrain { budget: true } => "드레인할 노드가 없습니다: NodePool의 disruption budget이 지금은 노드를 더 허용하지 않습니다 (위 budget 줄 참고); 시간대가 열리거나 진행 중인 disruption이 끝난 뒤 다시 실행하세요".into(),
            Self::NothingToDrain { budget: false } => "드레인할 노드가 없습니다: 계산된 개수가 0입니다 (사용률이 높거나 노드가 적음); --min-batch 참고".into(),
            Self::SlackStart { cluster, nodepool, nodes, a, batch } => format!(
                ":construction: *{cluster}* 클러스터 NodePool *{nodepool}* 노드 드레인 시작: 노드 {nodes}대, 메모리 {:.0} %, CPU {:.0} %, 드레인 {}대: {}",
                a.memory.rate_percent(), a.cpu.rate_percent(), batch.len(), batch.join(", ")
            ),
            Self::NodeResult { node, outcome } => match outcome {
                NodeOutcome::Drained { seconds } => format!(":white_check_mark: {node} 드레인 완료 ({seconds}초)"),
                NodeOutcome::TimedOut { remaining } => format!(":x: {node} 시간 초과, 남은 파드 {}개: {}", remaining.len(), remaining.join(", ")),
                NodeOutcome::Interrupted { remaining } => format!(":double_vertical_bar: {node} 중단됨, 남은 파드 {}개; cordon 상태로 두며 다음 실행에서 이어서 진행합니다", remaining.len()),
                NodeOutcome::Failed { reason } => format!(":x: {node} 실패: {reason}"),
            },
            Self::Summary { cluster, nodepool, drained, total, rolled_back, handoff, replacements } => format!(
                "{cluster} 클러스터 NodePool {nodepool} 노드 드레인 종료: {drained}/{total}대 드레인 완료{}{}",
                if rolled_back.is_empty() { String::new() } else { format!("; 시작하지 않은 노드 uncordon: {}", rolled_back.join(", ")) },
                rotation(handoff, replacements, Lang::Ko),
            ),
            Self::HandOff { node, outcome } => format!("{node}: {}", handoff_text(outcome, Lang::Ko)),
            Self::DryRun => "드라이런: 아무 노드도 cordon하거나 파드를 evict하지 않았습니다".into(),
            Self::NeedsForce { pods } => format!("--force 없이는 이 드레인을 거부합니다: {}는 evict되면 다시 만들어 줄 컨트롤러가 없습니다; --force를 주면 evict합니다", pods.join(", ")),
            Self::NodeEvent(e) => match e {
                NodeEvent::Started { nodepool, batch, pods } => format!(
                    "cordon 완료; NodePool {nodepool}의 steward 드레인이 이 노드에서 시작되었습니다, 옮길 파드 {pods}개 (배치 {}대: {})",
                    batch.len(), batch.join(", ")
                ),
                NodeEvent::Ended { outcome, evicted, deleted } => match outcome {
                    NodeOutcome::Drained { seconds } => format!("드레인 완료 ({seconds}초): evict {evicted}개, 삭제 {deleted}개 (문제 파드)"),
                    NodeOutcome::TimedOut { remaining } => format!("드레인 시간 초과, 남은 파드 {}개: {}", remaining.len(), remaining.join(", ")),
                    NodeOutcome::Interrupted { remaining } => format!("드레인 중단됨, 남은 파드 {}개: {}; cordon 상태로 두며 다음 실행에서 이어서 진행합니다", remaining.len(), remaining.join(", ")),
                    NodeOutcome::Failed { reason } => format!("드레인 실패: {reason}"),
                },
                NodeEvent::Surged { pod, deployment } => format!("{pod}이(가) 떠나기 전에 대체 파드가 Ready가 되도록 Deployment {deployment}를 재시작했습니다 (make-before-break; --no-surge는 바로 evict)"),
                NodeEvent::Evicted { pod } => format!("{pod}를 Eviction API로 evict했습니다"),
                NodeEvent::HandedOff { outcome } => handoff_text(outcome, Lang::Ko),
                NodeEvent::Uncordoned { nodepool } => format!("uncordon 완료: 이 노드의 드레인이 시작되기 전에 NodePool {nodepool}의 steward 드레인이 끝났습니다"),
                NodeEvent::Blocked { pod, pdb, message } => format!(
                    "{pod} evict가 {}에 막혔습니다: {message}; 버짓이 허용할 때까지 기다립니다",
                    pdb.map_or("PodDisruptionBudget".to_string(), |p| format!("PodDisruptionBudget {p}"))
                ),
            },
        }
    }
}

/// The queries, one per indented line.
fn query_lines(queries: &[String]) -> String {
    queries.iter().map(|q| format!("\n    {q}")).collect()
}

/// The NodePool budget's line of the plan: `batch = min(formula, budget)`, and which won.
fn budget_line(b: &Batch, lang: Lang) -> String {
    let ko = lang == Lang::Ko;
    let Some(a) = &b.budget else {
        return if ko {
            "\nNodePool budget: NodePool 오브젝트 없음, 적용되는 budget 없음".into()
        } else {
            "\nNodePool budget: no NodePool object, so none applies".into()
        };
    };
    let (Some(i), Some(allowed)) = (a.from, a.allowed) else {
        return if ko {
            "\nNodePool budget: Drifted에 적용되는 budget 없음".into()
        } else {
            "\nNodePool budget: none in force for Drifted".into()
        };
    };
    let nodes = &a.budgets[i].nodes;
    let (total, busy, budget) = (a.pool_nodes, a.disrupting, a.budget.unwrap_or(allowed));
    let won = match (b.limited_by, ko) {
        (Limit::Budget, false) => "the budget won",
        (Limit::Budget, true) => "budget 적용",
        (Limit::Formula, false) => "the formula won",
        (Limit::Formula, true) => "계산값 적용",
        (Limit::MinBatch, _) => "--min-batch",
        (Limit::MaxBatch, _) => "--max-batch",
        (Limit::Nodes, _) => "--nodes",
    };
    let paced = b.wave < b.nodes.len();
    if ko {
        let batch = if paced {
            format!(
                "batch = {} ({won}), 한 번에 {}대씩: 각 노드를 넘겨 사라진 뒤 다음 노드 시작",
                b.count, b.wave
            )
        } else {
            format!("batch = min(계산값, budget) = {} ({won})", b.count)
        };
        format!(
            "\nNodePool budget: budgets[{i}] nodes {nodes:?} / 노드 {total}대 = {budget}, 이미 disruption 중 {busy} -> 허용 {allowed}\n{batch}"
        )
    } else {
        let batch = if paced {
            format!(
                "batch = {} ({won}), {} at a time: each node is handed off and gone before the next starts",
                b.count, b.wave
            )
        } else {
            format!("batch = min(formula, budget) = {} ({won})", b.count)
        };
        format!(
            "\nNodePool budget: budgets[{i}] nodes {nodes:?} of {total} nodes = {budget}, {busy} already disrupting -> allows {allowed}\n{batch}"
        )
    }
}

/// How a node's hand-off ended, for its Event and the CLI.
fn handoff_text(h: &HandOff, lang: Lang) -> String {
    let ko = lang == Lang::Ko;
    match h {
        HandOff::Replaced { nodeclaim, seconds } if ko => format!("Karpenter에 넘김: NodeClaim {nodeclaim} 삭제, 노드가 {seconds}초 만에 제거됨"),
        HandOff::Replaced { nodeclaim, seconds } => format!("Handed to Karpenter: NodeClaim {nodeclaim} deleted, the node was gone in {seconds}s"),
        HandOff::Deleted { seconds } if ko => format!("노드 오브젝트 삭제 (--delete-nodes), {seconds}초 만에 제거됨; 머신 자체는 직접 정리하세요"),
        HandOff::Deleted { seconds } => format!("Node object deleted (--delete-nodes), gone in {seconds}s; the machine itself is yours to stop"),
        HandOff::Kept { why: Kept::KeepNodes } if ko => "--keep-nodes: cordon 상태로 둡니다".into(),
        HandOff::Kept { why: Kept::KeepNodes } => "kept cordoned (--keep-nodes)".into(),
        HandOff::Kept { why: Kept::NoNodeClaim } if ko => "이 노드를 가진 NodeClaim이 없어 (Karpenter 노드가 아님) cordon 상태로 둡니다; --delete-nodes를 주면 노드 오브젝트를 삭제합니다".into(),
        HandOff::Kept { why: Kept::NoNodeClaim } => "kept cordoned: no NodeClaim backs it (not a Karpenter node); --delete-nodes deletes the Node object".into(),
        HandOff::TimedOut { nodeclaim } if ko => format!("--handoff-timeout까지 노드가 남아 있습니다 (NodeClaim {}); Karpenter가 계속 진행합니다", nodeclaim.as_deref().unwrap_or("-")),
        HandOff::TimedOut { nodeclaim } => format!("the node was still there at --handoff-timeout (NodeClaim {}); Karpenter goes on with it", nodeclaim.as_deref().unwrap_or("-")),
        HandOff::Failed { reason } if ko => format!("넘기기 실패: {reason}; 드레인된 채 cordon 상태로 두며 다음 실행이 다시 넘깁니다"),
        HandOff::Failed { reason } => format!("hand-off failed: {reason}; the node stays drained and cordoned and the next run hands it off"),
    }
}

/// The rotation's part of the summary: which nodes went to Karpenter, which stay,
/// and the NodeClaims that came up meanwhile.
fn rotation(handoff: &[HandOffReport], replacements: &[Replacement], lang: Lang) -> String {
    let ko = lang == Lang::Ko;
    let names = |keep: fn(&HandOff) -> bool| {
        let v: Vec<&str> = handoff
            .iter()
            .filter(|h| keep(&h.outcome))
            .map(|h| h.node.as_str())
            .collect();
        v.join(", ")
    };
    let mut out = String::new();
    let gone = names(|h| matches!(h, HandOff::Replaced { .. } | HandOff::Deleted { .. }));
    if !gone.is_empty() {
        out += &if ko {
            format!("; 교체됨: {gone}")
        } else {
            format!("; replaced: {gone}")
        };
    }
    let kept = names(|h| matches!(h, HandOff::Kept { .. }));
    if !kept.is_empty() {
        out += &if ko {
            format!("; cordon 유지: {kept}")
        } else {
            format!("; kept cordoned: {kept}")
        };
    }
    let stuck = names(|h| !h.is_done());
    if !stuck.is_empty() {
        out += &if ko {
            format!("; 넘기기 미완료: {stuck}")
        } else {
            format!("; hand-off not finished: {stuck}")
        };
    }
    if !replacements.is_empty() {
        let new: Vec<String> = replacements
            .iter()
            .map(|r| match &r.node {
                Some(n) => format!("{n} (NodeClaim {})", r.nodeclaim),
                None => format!("NodeClaim {} (launching)", r.nodeclaim),
            })
            .collect();
        out += &if ko {
            format!("; 새 노드: {}", new.join(", "))
        } else {
            format!("; new: {}", new.join(", "))
        };
    }
    out
}

#[cfg(test)]
mod tests;
