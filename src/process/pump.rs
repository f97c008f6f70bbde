//! Driving a started child from the caller's own thread: one `poll(2)` over
//! its stdout and stderr, its stdin when we feed it bytes, and a pidfd that
//! becomes readable when it exits.
//!
//! Why not helper threads: an apccontrol event runs a hook and `wall`, and
//! each child used to cost three thread creations (exit watcher, output
//! reader, stdin writer) and a wake-up chain between them on every exit.
//! On a loaded two-CPU machine that chain was most of our overhead over the
//! stock script. One thread that sleeps in `poll` wakes once per event.
//!
//! The pidfd (`pidfd_open(2)`, Linux 5.3) tells us the child exited without
//! reaping it, so its process group can still be signalled safely. On an
//! older kernel (ENOSYS) the loop instead checks `waitid(WNOWAIT|WNOHANG)`
//! every [`FALLBACK_TICK`]: slower to notice an exit, never wrong.
//!
//! Owns no policy: [`super::run`] and [`super::Session`] decide what to wait
//! for; this module only moves bytes and notices the exit.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::Child;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

/// Without a pidfd, how often the loop asks whether the child exited.
pub(super) const FALLBACK_TICK: Duration = Duration::from_millis(5);

/// Which output of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

/// Capped output of one stream.
#[derive(Debug, Default)]
pub(super) struct Captured {
    pub(super) bytes: Vec<u8>,
    pub(super) truncated: bool,
    pub(super) eof: bool,
}

impl Captured {
    fn push(&mut self, chunk: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            self.truncated = true;
        }
    }
}

/// What a child wrote, stream by stream.
#[derive(Debug, Default)]
pub(super) struct Outputs {
    pub(super) stdout: Captured,
    pub(super) stderr: Captured,
}

impl Outputs {
    fn of(&mut self, stream: Stream) -> &mut Captured {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }
}

/// Bytes still to be written to the child's stdin.
#[derive(Debug)]
struct Feed {
    pipe: File,
    bytes: Vec<u8>,
    written: usize,
}

/// A `pidfd_open(2)` descriptor, or `None` where the kernel has none.
#[allow(unsafe_code)]
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new
    // descriptor or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor to us and nothing
    // else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_nonblocking(fd: &impl AsFd) -> bool {
    set_blocking_mode(fd, false)
}

/// Set or clear `O_NONBLOCK` (it belongs to the open file description,
/// which a process we hand the pipe to shares).
fn set_blocking_mode(fd: &impl AsFd, blocking: bool) -> bool {
    let raw = fd.as_fd().as_raw_fd();
    match fcntl(raw, FcntlArg::F_GETFL) {
        Ok(flags) => {
            let mut flags = OFlag::from_bits_truncate(flags);
            flags.set(OFlag::O_NONBLOCK, !blocking);
            fcntl(raw, FcntlArg::F_SETFL(flags)).is_ok()
        }
        Err(_) => false,
    }
}

/// A started child, its pipes, and whether it has exited (not yet reaped).
#[derive(Debug)]
pub(super) struct Running {
    pub(super) child: Child,
    pidfd: Option<OwnedFd>,
    feed: Option<Feed>,
    /// Read ends still open: non-blocking.
    open: Vec<(Stream, File)>,
    pub(super) outputs: Outputs,
    cap: usize,
    exited: bool,
}

impl Running {
    /// Take over a just-spawned child: its stdout and stderr (if piped) are
    /// read from now on, `input` is written to its stdin (if piped).
    pub(super) fn new(mut child: Child, input: Option<Vec<u8>>, cap: usize) -> Running {
        let pidfd = pidfd_open(child.id());
        let mut outputs = Outputs::default();
        let mut open = Vec::new();
        for (stream, pipe) in [
            (Stream::Stdout, child.stdout.take()),
            (Stream::Stderr, child.stderr.take()),
        ] {
            match pipe {
                Some(pipe) => {
                    // A blocking read end would stall the loop; such a pipe
                    // is left unread (the deadline still bounds the child).
                    if set_nonblocking(&pipe) {
                        open.push((stream, pipe));
                    } else {
                        outputs.of(stream).eof = true;
                    }
                }
                None => outputs.of(stream).eof = true,
            }
        }
        // Only a stdin we feed is ours; a caller that writes it itself
        // (a [`super::Session`]) took it already.
        let feed = match input {
            Some(bytes) => child.stdin.take().filter(set_nonblocking).map(|pipe| Feed {
                pipe,
                bytes,
                written: 0,
            }),
            None => None,
        };
        Running {
            child,
            pidfd,
            feed,
            open,
            outputs,
            cap,
            exited: false,
        }
    }

    pub(super) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The child has exited (it is a zombie until reaped).
    pub(super) fn exited(&self) -> bool {
        self.exited
    }

    /// Every output pipe has reached its end.
    pub(super) fn all_eof(&self) -> bool {
        self.open.is_empty()
    }

    /// Poll and move bytes until `done(self)` holds or `until` passes
    /// (`None`: no limit). True when `done` held.
    pub(super) fn pump_until(
        &mut self,
        until: Option<Instant>,
        mut done: impl FnMut(&Running) -> bool,
    ) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let left = until.map(|u| u.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return false;
            }
            self.step(left);
        }
    }

    /// One `poll` of at most `left` (`None`: until something happens), then
    /// handle what it reported.
    fn step(&mut self, left: Option<Duration>) {
        let watch_exit = !self.exited;
        let fallback = watch_exit && self.pidfd.is_none();
        let mut left = left;
        if fallback {
            left = Some(left.map_or(FALLBACK_TICK, |l| l.min(FALLBACK_TICK)));
        }
        let nothing_to_watch =
            self.open.is_empty() && self.feed.is_none() && (!watch_exit || fallback);
        if nothing_to_watch {
            // Only the clock: sleep rather than poll an empty set forever.
            match left {
                Some(l) => std::thread::sleep(l),
                None => return,
            }
            self.check_exit_without_pidfd();
            return;
        }
        let timeout = match left {
            // Round up: a 0.4 ms wait must not become a busy 0 ms poll.
            Some(l) => PollTimeout::try_from(
                u32::try_from(l.as_micros().div_ceil(1000)).unwrap_or(u32::MAX),
            )
            .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let (ready, feed_ready, exit_ready) = {
            let mut fds: Vec<PollFd> = self
                .open
                .iter()
                .map(|(_, f)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            let feed_at = self.feed.as_ref().map(|feed| {
                fds.push(PollFd::new(feed.pipe.as_fd(), PollFlags::POLLOUT));
                fds.len() - 1
            });
            let exit_at = match (&self.pidfd, watch_exit) {
                (Some(pidfd), true) => {
                    fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
                    Some(fds.len() - 1)
                }
                _ => None,
            };
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    // Cannot happen with valid descriptors; do not spin.
                    std::thread::sleep(FALLBACK_TICK);
                }
            }
            let fired = |i: usize| {
                fds.get(i)
                    .and_then(|p| p.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let ready: Vec<bool> = (0..self.open.len()).map(fired).collect();
            (
                ready,
                feed_at.is_some_and(fired),
                exit_at.is_some_and(fired),
            )
        };
        self.read_ready(&ready);
        if feed_ready {
            self.write_feed();
        }
        if exit_ready {
            self.exited = true;
            // Nobody reads what we did not write yet.
            self.feed = None;
        }
        if fallback {
            self.check_exit_without_pidfd();
        }
    }

    fn check_exit_without_pidfd(&mut self) {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        if self.exited {
            return;
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
        match waitid(Id::Pid(self.pid()), flags) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            // Exited, or gone (ECHILD: someone else reaped it): reaping tells.
            _ => {
                self.exited = true;
                self.feed = None;
            }
        }
    }

    /// Read once from each pipe marked ready; a pipe at its end is closed.
    fn read_ready(&mut self, ready: &[bool]) {
        let mut chunk = [0u8; 8192];
        let cap = self.cap;
        let outputs = &mut self.outputs;
        let mut index = 0;
        self.open.retain_mut(|(stream, file)| {
            let this = index;
            index += 1;
            if !ready.get(this).copied().unwrap_or(false) {
                return true;
            }
            match file.read(&mut chunk) {
                Ok(0) => {
                    outputs.of(*stream).eof = true;
                    false
                }
                Ok(n) => {
                    outputs.of(*stream).push(&chunk[..n], cap);
                    true
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::Interrupted
                        || e.kind() == std::io::ErrorKind::WouldBlock =>
                {
                    true
                }
                Err(_) => {
                    outputs.of(*stream).eof = true;
                    false
                }
            }
        });
    }

    /// Read whatever the pipes hold right now, without waiting (a bounded
    /// number of rounds: a writer that never stops cannot keep us here).
    pub(super) fn read_available(&mut self) {
        for _ in 0..16 {
            if self.open.is_empty() {
                return;
            }
            let before: usize = self.outputs.stdout.bytes.len() + self.outputs.stderr.bytes.len();
            let open_before = self.open.len();
            let all = vec![true; self.open.len()];
            self.read_ready(&all);
            let after: usize = self.outputs.stdout.bytes.len() + self.outputs.stderr.bytes.len();
            if after == before && self.open.len() == open_before {
                return;
            }
        }
    }

    fn write_feed(&mut self) {
        let Some(feed) = self.feed.as_mut() else {
            return;
        };
        match feed.pipe.write(&feed.bytes[feed.written..]) {
            Ok(n) => {
                feed.written += n;
                if feed.written >= feed.bytes.len() {
                    // All of it: close, so the child sees end of file.
                    self.feed = None;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::Interrupted
                    || e.kind() == std::io::ErrorKind::WouldBlock => {}
            // EPIPE and the like: the child will not read any more.
            Err(_) => self.feed = None,
        }
    }

    /// Stop writing to the child's stdin (it exited, or we gave up on it).
    pub(super) fn close_feed(&mut self) {
        self.feed = None;
    }

    /// The pipes still open (a background process holds them), to hand
    /// off: blocking again, as the process that reads them next expects.
    pub(super) fn take_open(&mut self) -> Vec<(Stream, File)> {
        let open = std::mem::take(&mut self.open);
        for (_, file) in &open {
            set_blocking_mode(file, true);
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_pidfd_is_available_here() {
        // Linux 5.3 and later; the fallback is tested below regardless.
        let child = Command::new("/bin/true").spawn().unwrap().into();
        let mut running = Running::new(child, None, 1024);
        assert!(running.pidfd.is_some(), "no pidfd_open on this kernel?");
        assert!(
            running.pump_until(Some(crate::deadline::after(Duration::from_secs(5))), |r| r
                .exited())
        );
        let _ = running.child.wait();
    }

    #[test]
    fn without_a_pidfd_the_exit_is_still_noticed() {
        let child = Command::new("/bin/sh")
            .args(["-c", "echo hi; sleep 0.05"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
            .into();
        let mut running = Running::new(child, None, 1024);
        running.pidfd = None;
        let end = crate::deadline::after(Duration::from_secs(5));
        assert!(running.pump_until(Some(end), |r| r.exited() && r.all_eof()));
        assert_eq!(running.outputs.stdout.bytes, b"hi\n");
        assert!(running.child.wait().unwrap().success());
    }
}
