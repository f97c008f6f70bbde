//! Reaping the apccontrol children the daemon starts without waiting, on
//! SIGCHLD, so none stays a zombie; an unexpected `waitpid` error is logged,
//! never a panic (style rule 10).

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::log::Log;

/// Reap every finished child without blocking.
pub(crate) fn reap_children(log: &mut Log) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return,
            Ok(WaitStatus::Exited(pid, code)) => {
                if code != 0 {
                    log.info(&format!("apccontrol (pid {pid}) exited with status {code}"));
                }
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                log.warning(&format!("apccontrol (pid {pid}) was killed by {signal}"));
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECHILD) => return,
            Err(e) => {
                log.error(&format!("waitpid failed: {e}"));
                return;
            }
        }
    }
}
