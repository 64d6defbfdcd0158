//! Child processes of the simulated cluster, each logging to its own file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{Error, Result, io};

/// What happens to the cluster's processes when the process that started them ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// They are killed with the thread that spawned them (tests).
    WithParent,
    /// They keep running until `steward sim down` (people).
    Detached,
}

/// A running control-plane program.
#[derive(Debug)]
pub(crate) struct Proc {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(
        name: &'static str,
        bin: &Path,
        args: &[String],
        logs: &Path,
        lifetime: Lifetime,
    ) -> Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        Self::spawn_command(name, cmd, &logs.join(format!("{name}.log")), lifetime)
    }

    /// Starts a prepared command, its output to `log`.
    pub fn spawn_command(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        lifetime: Lifetime,
    ) -> Result<Self> {
        let log = log.to_path_buf();
        let out = File::create(&log).map_err(io("creating log", &log))?;
        let err = out.try_clone().map_err(io("creating log", &log))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        match lifetime {
            Lifetime::WithParent => die_with_parent(&mut cmd),
            Lifetime::Detached => {
                // Own process group: a Ctrl-C in the shell that ran `steward sim up`
                // must not reach the cluster.
                std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            }
        }
        let program = PathBuf::from(cmd.get_program());
        let child = cmd.spawn().map_err(io("starting", program))?;
        tracing::debug!(program = name, pid = child.id(), "started");
        Ok(Self { name, child, log })
    }

    /// Fails with the log's tail if the program has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                program: self.name,
                status: status.to_string(),
                log: self.log.clone(),
                tail: tail(&self.log, 20),
            }),
            Err(e) => Err(io("waiting for", &self.log)(e)),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ask the kernel to SIGKILL the child when the thread that spawned it ends, so a
/// crashed or killed test binary leaves no control plane behind. (`PR_SET_PDEATHSIG`
/// follows the spawning *thread*; the testkit spawns from a thread that never ends.)
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `sig` to `pid`.
#[allow(unsafe_code)]
pub(crate) fn signal(pid: u32, sig: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The last `n` lines of a log file, for error messages.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
