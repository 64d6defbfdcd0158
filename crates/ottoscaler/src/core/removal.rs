//! Pure choices about workers: which ones ScaleDown removes, which ones are orphans.

use std::collections::HashSet;

use crate::core::worker::{Group, Phase, WorkerObs};

/// Workers ScaleDown removes, most disposable first: ended, then not yet running,
/// then running and idle (newest first), then — only with `force` — busy ones.
/// Workers already terminating are not counted. `count` 0 means all that qualify.
pub fn pick_scale_down(workers: &[WorkerObs], count: usize, force: bool) -> Vec<String> {
    let rank = |w: &WorkerObs| match (w.phase, w.busy) {
        (Phase::Succeeded | Phase::Failed, _) => Some(0),
        (Phase::Pending, false) => Some(1),
        (Phase::Running, false) => Some(2),
        (Phase::Pending | Phase::Running, true) if force => Some(3),
        _ => None,
    };
    let mut c: Vec<(u8, i64, &str)> = workers
        .iter()
        .filter_map(|w| rank(w).map(|r| (r, -w.created_ms, w.name.as_str())))
        .collect();
    c.sort_unstable();
    let take = if count == 0 { c.len() } else { count };
    c.into_iter()
        .take(take)
        .map(|(_, _, n)| n.to_string())
        .collect()
}

/// Workers whose run or task is not live: left behind by a crash, a restart, or a
/// delete that failed. They are deleted.
pub fn orphans(live: &HashSet<Group>, workers: &[WorkerObs]) -> Vec<String> {
    workers
        .iter()
        .filter(|w| !live.contains(&w.labels.group) && w.phase != Phase::Terminating)
        .map(|w| w.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(name: &str, phase: Phase, busy: bool, created: i64, group: Group) -> WorkerObs {
        WorkerObs {
            busy,
            created_ms: created,
            ..WorkerObs::fixture(name, group, phase)
        }
    }

    #[test]
    fn scale_down_table() {
        let t = || Group::Task("t".into());
        let ws = vec![
            w("busy", Phase::Running, true, 1, t()),
            w("idle-old", Phase::Running, false, 1, t()),
            w("idle-new", Phase::Running, false, 2, t()),
            w("pending", Phase::Pending, false, 3, t()),
            w("done", Phase::Succeeded, false, 0, t()),
            w("going", Phase::Terminating, false, 0, t()),
        ];
        let cases: Vec<(usize, bool, Vec<&str>)> = vec![
            (1, false, vec!["done"]),
            (3, false, vec!["done", "pending", "idle-new"]),
            (0, false, vec!["done", "pending", "idle-new", "idle-old"]),
            (10, false, vec!["done", "pending", "idle-new", "idle-old"]),
            (
                0,
                true,
                vec!["done", "pending", "idle-new", "idle-old", "busy"],
            ),
        ];
        for (count, force, want) in cases {
            assert_eq!(
                pick_scale_down(&ws, count, force),
                want,
                "count {count} force {force}"
            );
        }
    }

    #[test]
    fn orphan_table() {
        let live: HashSet<Group> = [Group::Run("r1".into()), Group::Task("t1".into())].into();
        let ws = vec![
            w("r1-a-1", Phase::Running, false, 0, Group::Run("r1".into())),
            w("r2-a-1", Phase::Running, false, 0, Group::Run("r2".into())),
            w("t1-x", Phase::Pending, false, 0, Group::Task("t1".into())),
            w("t2-x", Phase::Succeeded, false, 0, Group::Task("t2".into())),
            w(
                "r3-a-1",
                Phase::Terminating,
                false,
                0,
                Group::Run("r3".into()),
            ),
        ];
        assert_eq!(orphans(&live, &ws), vec!["r2-a-1", "t2-x"]);
    }
}
