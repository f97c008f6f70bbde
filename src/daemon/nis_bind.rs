//! Keeping the NIS port: laptop-upsd serves apcupsd's NIS protocol on
//! NISIP:NISPORT; if the port cannot be bound at start (apcupsd still
//! running, another laptop-upsd, NISIP not up yet), running on silently
//! without NIS would leave apcaccess, Home Assistant and slaves blind. So
//! the NIS thread retries with backoff (1 s, doubling, at most
//! [`MAX_BACKOFF`]) and logs every failure with its likely cause, and the
//! success after failures; once bound, the same thread serves every client.
//!
//! The server starts only once the first status is published, so no client
//! ever sees an empty record.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::log::{Level, Log};
use crate::nis::server::{NisServer, ServerConfig, StatusSource, StopSignal};

/// The first retry comes after this long.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Retries are at most this far apart.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The most likely reason a bind failed, in words a user can act on.
pub(crate) fn likely_cause(error: &io::Error, ip: Ipv4Addr, port: u16) -> String {
    match error.kind() {
        io::ErrorKind::AddrInUse => format!(
            "port {port} is already in use on {ip}: is apcupsd still running (`systemctl stop \
             apcupsd`; laptop-upsd replaces it), or a second laptop-upsd? Otherwise set another \
             NISPORT (and point clients at it)"
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "{ip} is not an address of this machine (yet): set NISIP to 127.0.0.1, 0.0.0.0 or \
             an address of this machine; retrying in case the network brings it up"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "port {port} needs privileges (ports below 1024 need root): run laptop-upsd as root \
             or use NISPORT 3551"
        ),
        _ => "check NISIP and NISPORT".to_string(),
    }
}

/// The next wait: double, at most [`MAX_BACKOFF`].
pub(crate) fn next_backoff(current: Duration) -> Duration {
    current.saturating_mul(2).min(MAX_BACKOFF)
}

/// Owns the NIS thread; dropping it stops the server.
#[derive(Debug)]
pub(crate) struct NisKeeper {
    signal: StopSignal,
}

impl Drop for NisKeeper {
    fn drop(&mut self) {
        self.signal.stop();
    }
}

/// Start binding and serving in the background, on one thread: it retries
/// the bind with backoff, then serves every client itself. `config` is the
/// server's configuration; `log` gets the bind failures (the server's own
/// problems go to `config.log`).
pub(crate) fn keep(
    ip: Ipv4Addr,
    port: u16,
    published: Arc<dyn StatusSource>,
    config: ServerConfig,
    mut log: Log,
) -> io::Result<NisKeeper> {
    let (signal, stop) = StopSignal::pair()?;
    std::thread::Builder::new()
        .name("nis".into())
        // The loop and a reply need a few KiB; rendering happens at the reading.
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut backoff = FIRST_BACKOFF;
            let mut failures = 0u32;
            let server = loop {
                match NisServer::bind(ip, port) {
                    Ok(server) => break server,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        log.line(
                            Level::Error,
                            &format!(
                                "cannot serve NIS on {ip}:{port} (attempt {failures}): {e}; {}; \
                                 apcaccess and slaves cannot see this UPS until it works; \
                                 retrying in {} s",
                                likely_cause(&e, ip, port),
                                backoff.as_secs()
                            ),
                        );
                    }
                }
                if stopped_within(&stop, backoff) {
                    return;
                }
                backoff = next_backoff(backoff);
            };
            let how = if failures == 0 {
                String::new()
            } else {
                format!(" after {failures} failed attempts")
            };
            log.info(&format!(
                "NIS server listening on {}{how}",
                server.local_addr()
            ));
            if failures > 0 {
                log.notice(&format!("NIS server listening on {ip}:{port}{how}"));
            }
            // Serve until the daemon drops the keeper (or exits).
            server.run(published.as_ref(), &config, &stop, &AtomicUsize::new(0));
        })?;
    Ok(NisKeeper { signal })
}

/// Wait up to `wait` for the stop signal (a byte, or its other end closed).
fn stopped_within(stop: &UnixStream, wait: Duration) -> bool {
    let mut fds = [PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(wait.as_millis()).unwrap_or(PollTimeout::MAX);
    matches!(poll(&mut fds, ms), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_name_what_to_do() {
        let ip = Ipv4Addr::LOCALHOST;
        let in_use = io::Error::from(io::ErrorKind::AddrInUse);
        let text = likely_cause(&in_use, ip, 3551);
        assert!(
            text.contains("apcupsd") && text.contains("NISPORT"),
            "{text}"
        );
        let text = likely_cause(&io::Error::from(io::ErrorKind::AddrNotAvailable), ip, 3551);
        assert!(text.contains("NISIP"), "{text}");
        let text = likely_cause(&io::Error::from(io::ErrorKind::PermissionDenied), ip, 80);
        assert!(text.contains("root"), "{text}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut d = FIRST_BACKOFF;
        let mut seen = vec![d.as_secs()];
        for _ in 0..12 {
            d = next_backoff(d);
            seen.push(d.as_secs());
        }
        assert_eq!(&seen[..6], &[1, 2, 4, 8, 16, 32]);
        assert_eq!(*seen.last().unwrap_or(&0), 300);
    }
}
