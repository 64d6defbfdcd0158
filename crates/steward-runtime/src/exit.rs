//! The exit status of every steward command, documented once (`steward --help`
//! and docs/operations.md say the same):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the command ran and failed: nodes left undrained, a pipeline run failed, a bad configuration found at run time, leadership lost |
//! | 2 | usage: a flag, argument or input file is wrong; nothing was changed |
//! | 3 | cancelled or interrupted: Ctrl-C or SIGTERM stopped it, or the run it followed was cancelled |
//! | 4 | a dependency cannot be reached: the Kubernetes API server, Prometheus, the ottoscaler server |
//! | 130 | a second Ctrl-C or SIGTERM: stopped at once, without the clean-up the first one does |

/// The exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0.
    Ok,
    /// 1.
    Failed,
    /// 2.
    Usage,
    /// 3.
    Cancelled,
    /// 4.
    Unreachable,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failed => 1,
            Self::Usage => 2,
            Self::Cancelled => 3,
            Self::Unreachable => 4,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        Self::from(e.code())
    }
}

/// An error that knows which exit status it stands for. Every crate's `Error`
/// implements it; the binary looks through an error's chain for the first one.
pub trait ExitStatus {
    /// The status a command ending with this error exits with.
    fn exit(&self) -> Exit;
}

/// The exit status of a kube client error: unreachable (4) for a transport
/// failure, failed (1) for an answer.
pub fn of_kube(e: &kube::Error) -> Exit {
    match e {
        kube::Error::HyperError(_) | kube::Error::Service(_) => Exit::Unreachable,
        _ => Exit::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let table = [
            (Exit::Ok, 0),
            (Exit::Failed, 1),
            (Exit::Usage, 2),
            (Exit::Cancelled, 3),
            (Exit::Unreachable, 4),
        ];
        for (e, code) in table {
            assert_eq!(e.code(), code, "{e:?}");
        }
    }
}
