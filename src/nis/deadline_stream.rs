//! A TCP stream whose every read and write must finish by one fixed instant.
//!
//! `SO_RCVTIMEO`/`SO_SNDTIMEO` bound one system call, not a whole exchange: a
//! peer that trickles a byte just before each timeout would hold us forever.
//! Before each call this wrapper sets the socket timeout to the time left
//! until the deadline, and fails with `TimedOut` once it has passed. Used by
//! the client (the caller's deadline) and the server (per request and reply).
//! Only the socket handling is NIS's: the time left is [`crate::deadline::left`].

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A borrowed stream plus the instant by which all I/O on it must be done.
pub(crate) struct DeadlineStream<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl<'a> DeadlineStream<'a> {
    /// Wraps `stream`; all I/O through the wrapper ends by `deadline`.
    pub(crate) fn new(stream: &'a TcpStream, deadline: Instant) -> Self {
        DeadlineStream { stream, deadline }
    }

    /// Time left, or a `TimedOut` error once none is.
    fn remaining(&self) -> io::Result<Duration> {
        let left = crate::deadline::left(self.deadline);
        if left.is_zero() {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "NIS deadline passed",
            ))
        } else {
            Ok(left)
        }
    }
}

/// Socket timeouts report expiry as `WouldBlock` on Linux; call it what it is.
fn as_timeout(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "NIS deadline passed")
    } else {
        e
    }
}

impl Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.stream.set_read_timeout(Some(left))?;
        let mut stream = self.stream;
        stream.read(buf).map_err(as_timeout)
    }
}

impl Write for DeadlineStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.stream.set_write_timeout(Some(left))?;
        let mut stream = self.stream;
        stream.write(buf).map_err(as_timeout)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
