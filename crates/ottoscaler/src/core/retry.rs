//! Retry policy of a stage: which failures are retried and how long to wait.
//!
//! Back-off is exponential (`initial * 2^(n-1)`), capped, with "equal jitter": half
//! the delay is fixed and half is random, so retries of many runs that failed at
//! the same moment spread out while a retry still never comes sooner than half the
//! nominal delay. The random number is passed in, so the maths is tested exactly.
//!
//! Why not backon (the workspace's back-off, used by node-drain and steward-kube):
//! backon's `ExponentialBuilder` is a stateful iterator that draws its jitter from
//! its own generator, while this policy is a pure function of (attempt, random
//! number): the driver keeps no back-off state across a stage's attempts (an
//! attempt number survives in a worker's labels, an iterator would not), and the
//! table test below pins exact delays, which backon's internal randomness cannot
//! give. The delay is two lines of arithmetic; backon would add state, not remove code.

use std::time::Duration;

/// Why an attempt failed, as observed on the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The container exited with a non-zero code.
    ExitCode(i32),
    /// The container was killed for exceeding its memory limit.
    OomKilled,
    /// The pod was evicted (node pressure, preemption, API eviction).
    Evicted,
    /// The pod or its node went away before the container ended.
    NodeLost,
    /// The image could not be pulled.
    ImagePull,
    /// The stage's timeout passed.
    Timeout,
    /// The run was cancelled or timed out; never retried.
    Cancelled,
    /// The worker could not be created (API refused it); never retried.
    CreateFailed,
}

impl FailureClass {
    /// The name used in progress messages and `retry_on`.
    pub fn label(self) -> &'static str {
        match self {
            Self::ExitCode(_) => "exit-code",
            Self::OomKilled => "oom-killed",
            Self::Evicted => "evicted",
            Self::NodeLost => "node-lost",
            Self::ImagePull => "image-pull",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::CreateFailed => "create-failed",
        }
    }
}

/// One entry of `retry_on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// Any non-zero exit code.
    AnyExitCode,
    /// This exit code only.
    ExitCode(i32),
    /// OOMKilled.
    OomKilled,
    /// Evicted.
    Evicted,
    /// Node or pod lost.
    NodeLost,
    /// Image pull failure.
    ImagePull,
    /// Stage timeout.
    Timeout,
}

impl RetryOn {
    /// Parses `exit-code`, `exit-code:<n>`, `oom-killed`, `evicted`, `node-lost`,
    /// `image-pull`, `timeout`.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "exit-code" => Self::AnyExitCode,
            "oom-killed" => Self::OomKilled,
            "evicted" => Self::Evicted,
            "node-lost" => Self::NodeLost,
            "image-pull" => Self::ImagePull,
            "timeout" => Self::Timeout,
            _ => match s.strip_prefix("exit-code:").map(str::parse::<i32>) {
                Some(Ok(n)) if n != 0 => Self::ExitCode(n),
                _ => {
                    return Err(format!(
                        "unknown class \"{s}\" (expected exit-code, exit-code:<n>, oom-killed, evicted, node-lost, image-pull or timeout)"
                    ));
                }
            },
        })
    }

    fn matches(self, f: FailureClass) -> bool {
        match (self, f) {
            (Self::AnyExitCode, FailureClass::ExitCode(_)) => true,
            (Self::ExitCode(want), FailureClass::ExitCode(got)) => want == got,
            (Self::OomKilled, FailureClass::OomKilled)
            | (Self::Evicted, FailureClass::Evicted)
            | (Self::NodeLost, FailureClass::NodeLost)
            | (Self::ImagePull, FailureClass::ImagePull)
            | (Self::Timeout, FailureClass::Timeout) => true,
            _ => false,
        }
    }
}

/// A stage's retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (>= 1).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Failure classes that are retried.
    pub on: Vec<RetryOn>,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Start attempt `next` after `delay`.
    Retry {
        /// The next attempt's number.
        next: u32,
        /// Back-off before it.
        delay: Duration,
    },
    /// The stage fails.
    GiveUp,
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            on: vec![RetryOn::AnyExitCode],
        }
    }

    /// Decides after attempt `attempt` (1-based) failed with `class`; `rand` in [0, 1).
    pub fn after_failure(&self, attempt: u32, class: FailureClass, rand: f64) -> AfterFailure {
        if attempt >= self.max_attempts || !self.on.iter().any(|o| o.matches(class)) {
            return AfterFailure::GiveUp;
        }
        AfterFailure::Retry {
            next: attempt + 1,
            delay: self.delay(attempt, rand),
        }
    }

    /// Back-off after attempt `attempt` failed: half of the capped exponential delay
    /// plus a random share of the other half.
    pub fn delay(&self, attempt: u32, rand: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let nominal = self.initial.saturating_mul(1u32 << exp).min(self.max);
        let half = nominal / 2;
        half + half.mul_f64(rand.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32, on: &[&str]) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            on: on.iter().map(|s| RetryOn::parse(s).unwrap()).collect(),
        }
    }

    #[test]
    fn back_off_table() {
        let p = policy(10, &["exit-code"]);
        // (attempt, rand, expected ms)
        let cases = [
            (1, 0.0, 50),
            (1, 0.999_999, 100),
            (2, 0.0, 100),
            (3, 0.5, 300),
            (4, 0.0, 400),
            (5, 0.0, 500), // 1600 capped at 1000
            (9, 1.0, 1000),
            (40, 0.0, 500), // no overflow
        ];
        for (attempt, rand, ms) in cases {
            let got = p.delay(attempt, rand).as_millis();
            assert!(
                got.abs_diff(ms) <= 1,
                "attempt {attempt} rand {rand}: {got} ms, want {ms}"
            );
        }
    }

    #[test]
    fn retry_on_table() {
        use FailureClass::*;
        let cases: Vec<(RetryPolicy, u32, FailureClass, bool)> = vec![
            (policy(3, &["exit-code"]), 1, ExitCode(1), true),
            (policy(3, &["exit-code"]), 3, ExitCode(1), false), // out of attempts
            (policy(3, &["exit-code"]), 1, OomKilled, false),
            (policy(3, &["exit-code:137"]), 1, ExitCode(137), true),
            (policy(3, &["exit-code:137"]), 1, ExitCode(1), false),
            (policy(3, &["oom-killed", "evicted"]), 1, Evicted, true),
            (policy(3, &["node-lost"]), 2, NodeLost, true),
            (policy(3, &["image-pull"]), 1, ImagePull, true),
            (policy(3, &["timeout"]), 1, Timeout, true),
            (policy(3, &["exit-code", "timeout"]), 1, Cancelled, false),
            (policy(3, &["exit-code"]), 1, CreateFailed, false),
            (RetryPolicy::none(), 1, ExitCode(1), false),
        ];
        for (p, attempt, class, retry) in cases {
            let got = p.after_failure(attempt, class, 0.0);
            assert_eq!(
                matches!(got, AfterFailure::Retry { next, .. } if next == attempt + 1),
                retry,
                "{p:?} {attempt} {class:?}"
            );
        }
    }

    #[test]
    fn parse_rejects_nonsense() {
        assert!(RetryOn::parse("exit-code:0").is_err());
        assert!(RetryOn::parse("exit-code:x").is_err());
        assert_eq!(RetryOn::parse("exit-code:2"), Ok(RetryOn::ExitCode(2)));
    }
}
