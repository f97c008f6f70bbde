//! The NIS server laptop-upsd runs, answering exactly as apcupsd 3.14.14 does
//! (facts §5.1, §5.4) while staying bounded whatever its clients do.
//!
//! One thread serves every client: a `poll(2)` loop over the listening
//! socket and each connection, non-blocking, each connection a small state
//! machine (`super::connection`). No thread per connection: an idle
//! server sleeps without a timeout, and 64 clients at once cost 64 sockets,
//! not 64 thread starts. Requests are `status` and `events` (a 6-byte
//! packet each, several per connection); anything else gets `Invalid
//! command\n\0`, a missing events file `Not available\n\0`, each followed by
//! the end marker. A request packet over 256 bytes, a zero-length packet,
//! EOF or a request that takes longer than the read timeout (15 s) ends the
//! connection, as in apcupsd.
//!
//! What apcupsd lacks and we add, so one bad client cannot hurt the others:
//! a cap on live connections; at the cap, the connection that has been
//! waiting longest (for a request, or for its client to take a reply) is
//! closed to make room if it has waited at least `evict_after`, otherwise the
//! new connection is closed at once, never queued. Also a deadline on
//! delivering each reply (a client that never reads is dropped), a bounded
//! read of the events file, and panic containment per request. Problems go
//! to a caller-given log sink.
//!
//! This module owns the sockets and the loop; the text comes from
//! [`status`] (rendered once per reading by [`super::published`]) and
//! [`events`], the data from the caller's [`StatusSource`].

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::connection::{Connection, Next, Rules};
use super::events;
use super::frame;
use super::status::{self, UpsStatus};

/// Longest request packet apcupsd accepts (its `MAXSTRING`); longer drops the connection.
pub const MAX_REQUEST_LEN: usize = 256;

/// Payload answering an unknown request: the text and its NUL, as apcupsd sends it.
pub const INVALID_COMMAND: &[u8] = b"Invalid command\n\0";

/// Payload answering `events` when the events file cannot be read.
pub const NOT_AVAILABLE: &[u8] = b"Not available\n\0";

/// Where the server gets the status it serves.
///
/// `RwLock<UpsStatus>` and `Mutex<UpsStatus>` implement this (rendering per
/// request); laptop-upsd publishes through [`super::published::Published`],
/// which renders once per reading.
pub trait StatusSource: Send + Sync {
    /// The current snapshot.
    fn status(&self) -> UpsStatus;

    /// The time for the `END APC` line; local time by default.
    fn now(&self) -> DateTime<FixedOffset> {
        chrono::Local::now().fixed_offset()
    }

    /// The whole `status` reply (packets and end marker), rendered from
    /// [`StatusSource::status`] at [`StatusSource::now`].
    fn status_reply(&self) -> Vec<u8> {
        let text = status::render(&self.status(), &self.now());
        let mut out = Vec::with_capacity(2048);
        push(&mut out, text.header().as_bytes());
        for line in text.lines() {
            push(&mut out, line.as_bytes());
        }
        out.extend_from_slice(&[0, 0]);
        out
    }
}

impl StatusSource for std::sync::RwLock<UpsStatus> {
    fn status(&self) -> UpsStatus {
        self.read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl StatusSource for std::sync::Mutex<UpsStatus> {
    fn status(&self) -> UpsStatus {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Where the server reports problems (over-cap refusals, bad packets, panics).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How the server behaves; [`Default`] is apcupsd's behaviour plus our bounds.
#[derive(Clone)]
pub struct ServerConfig {
    /// The events file served by `events` (EVENTSFILE); `None` answers `Not available`.
    pub events_file: Option<PathBuf>,
    /// Most connections served at once; more are closed as soon as accepted
    /// unless one can be evicted (see `evict_after`).
    pub max_connections: usize,
    /// At the cap, a connection stuck this long waiting for its client may be
    /// closed to let a new one in, so a few clients that hold connections
    /// open cannot lock everyone else out.
    pub evict_after: Duration,
    /// Longest wait for a request packet before the connection is dropped.
    pub read_timeout: Duration,
    /// Longest time to deliver one reply before the connection is dropped.
    pub write_timeout: Duration,
    /// Receives one line per problem.
    pub log: LogSink,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            events_file: None,
            max_connections: 32,
            evict_after: Duration::from_secs(2),
            read_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(15),
            log: Arc::new(|_: &str| {}),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("events_file", &self.events_file)
            .field("max_connections", &self.max_connections)
            .field("evict_after", &self.evict_after)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .finish_non_exhaustive()
    }
}

/// A bound, listening NIS socket, not yet serving.
#[derive(Debug)]
pub struct NisServer {
    listener: TcpListener,
    local_addr: SocketAddrV4,
}

/// How a caller stops a server that runs on its own thread: write a byte
/// to the other end of `stop`, or drop it.
#[derive(Debug)]
pub struct StopSignal {
    stop: UnixStream,
}

impl StopSignal {
    /// A stop signal and the end to hand to [`NisServer::run`].
    pub fn pair() -> io::Result<(StopSignal, UnixStream)> {
        let (ours, theirs) = UnixStream::pair()?;
        Ok((StopSignal { stop: ours }, theirs))
    }

    /// Tell the server to stop.
    pub fn stop(&self) {
        let _ = (&self.stop).write_all(b"x");
    }
}

impl NisServer {
    /// Binds `ip:port` like apcupsd: IPv4 only, with SO_REUSEADDR (std sets
    /// it on Unix; a test checks it). Port 0 picks a free port;
    /// [`NisServer::local_addr`] tells which. The listen backlog is std's,
    /// not apcupsd's 5; over-cap connections are closed, not queued, anyway.
    pub fn bind(ip: Ipv4Addr, port: u16) -> io::Result<NisServer> {
        let addr = SocketAddrV4::new(ip, port);
        let listener = TcpListener::bind(addr).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen for NIS on {addr}: {e}"))
        })?;
        let local_addr = match listener.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => addr,
        };
        Ok(NisServer {
            listener,
            local_addr,
        })
    }

    /// The address actually bound (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local_addr
    }

    /// Starts serving on a thread of its own; stop it with the returned handle.
    pub fn spawn(
        self,
        source: Arc<dyn StatusSource>,
        config: ServerConfig,
    ) -> io::Result<ServerHandle> {
        let (signal, stop) = StopSignal::pair()?;
        let live = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&live);
        let local_addr = self.local_addr;
        let thread = thread::Builder::new()
            .name("nis".into())
            .spawn(move || self.run(source.as_ref(), &config, &stop, &counter))?;
        Ok(ServerHandle {
            local_addr,
            live,
            signal,
            thread: Some(thread),
        })
    }

    /// Serves on the calling thread until `stop` becomes readable (a byte
    /// or its other end closed); then closes every connection. `live` is
    /// kept at the number of connections being served.
    pub fn run(
        self,
        source: &dyn StatusSource,
        config: &ServerConfig,
        stop: &UnixStream,
        live: &AtomicUsize,
    ) {
        if let Err(e) = self.listener.set_nonblocking(true) {
            (config.log)(&format!("NIS server: cannot serve: {e}"));
            return;
        }
        let mut server = Loop {
            source,
            config,
            rules: Rules {
                max_request: MAX_REQUEST_LEN,
                read_timeout: config.read_timeout,
                write_timeout: config.write_timeout,
            },
            conns: Vec::new(),
        };
        loop {
            let now = Instant::now();
            server.expire(now);
            live.store(server.conns.len(), Ordering::Relaxed);
            let timeout = server
                .conns
                .iter()
                .map(|c| c.deadline.saturating_duration_since(now))
                .min()
                .map_or(PollTimeout::NONE, |left| {
                    let ms = left.as_millis().saturating_add(1);
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                });
            let (stop_now, accept_now, ready) = {
                let mut fds = Vec::with_capacity(server.conns.len() + 2);
                fds.push(PollFd::new(stop.as_fd(), PollFlags::POLLIN));
                fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
                for c in &server.conns {
                    let want = if c.writing() {
                        PollFlags::POLLOUT
                    } else {
                        PollFlags::POLLIN
                    };
                    fds.push(PollFd::new(c.stream.as_fd(), want));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => {
                        server.log(&format!("NIS server: poll failed: {e}"));
                        thread::sleep(Duration::from_millis(250));
                        continue;
                    }
                }
                let fired = |p: &PollFd| p.revents().is_some_and(|r| !r.is_empty());
                let ready: Vec<bool> = fds[2..].iter().map(fired).collect();
                (fired(&fds[0]), fired(&fds[1]), ready)
            };
            if stop_now {
                break;
            }
            let now = Instant::now();
            server.serve_ready(&ready, now);
            if accept_now {
                server.accept_all(&self.listener, now);
            }
        }
        let _ = (&*stop).read(&mut [0u8; 16]);
        for c in server.conns.drain(..) {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        live.store(0, Ordering::Relaxed);
    }
}

/// A running server. [`ServerHandle::stop`] (or dropping it) stops
/// accepting, closes every live connection and waits for its thread.
pub struct ServerHandle {
    local_addr: SocketAddrV4,
    live: Arc<AtomicUsize>,
    signal: StopSignal,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local_addr
    }

    /// Connections being served right now.
    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Stops the server: no new connections, live ones shut down.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.signal.stop();
        let _ = thread.join();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The loop's state: every live connection.
struct Loop<'a> {
    source: &'a dyn StatusSource,
    config: &'a ServerConfig,
    rules: Rules,
    conns: Vec<Connection>,
}

impl Loop<'_> {
    fn log(&self, message: &str) {
        // A panicking sink must not take the server with it.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| (self.config.log)(message)));
    }

    /// Close the connections whose wait ran out.
    fn expire(&mut self, now: Instant) {
        self.conns.retain(|c| {
            let keep = c.deadline > now;
            if !keep {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
            keep
        });
    }

    /// Handle the connections `poll` marked; `ready[i]` is `conns[i]`'s.
    fn serve_ready(&mut self, ready: &[bool], now: Instant) {
        let mut index = 0;
        let mut conns = std::mem::take(&mut self.conns);
        let mut problems = Vec::new();
        conns.retain_mut(|c| {
            let this = index;
            index += 1;
            if !ready.get(this).copied().unwrap_or(false) {
                return true;
            }
            let peer = c.peer;
            let mut answer = |request: &[u8]| -> Option<Vec<u8>> {
                let source = self.source;
                let events = self.config.events_file.as_deref();
                match panic::catch_unwind(AssertUnwindSafe(|| {
                    reply_to_request(request, source, events)
                })) {
                    Ok(reply) => Some(reply),
                    Err(_) => {
                        problems.push(format!(
                            "NIS server: the handler for {peer} panicked; connection closed"
                        ));
                        None
                    }
                }
            };
            let next = if c.writing() {
                c.on_writable(now, &self.rules, &mut answer)
            } else {
                c.on_readable(now, &self.rules, &mut answer)
            };
            match next {
                Next::Read | Next::Write => true,
                // Dropping the socket closes it: the client hung up, or
                // sees us hang up.
                Next::Close(why) => {
                    if let Some(why) = why {
                        problems.push(format!("NIS server: {why}"));
                    }
                    false
                }
            }
        });
        self.conns = conns;
        for problem in problems {
            self.log(&problem);
        }
    }

    /// Handle every connection that is ready right now (a poll that does
    /// not wait).
    fn serve_pending(&mut self, now: Instant) {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = self
                .conns
                .iter()
                .map(|c| {
                    let want = if c.writing() {
                        PollFlags::POLLOUT
                    } else {
                        PollFlags::POLLIN
                    };
                    PollFd::new(c.stream.as_fd(), want)
                })
                .collect();
            if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
                return;
            }
            fds.iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        self.serve_ready(&ready, now);
    }

    /// Take every pending connection (the listener is non-blocking).
    fn accept_all(&mut self, listener: &TcpListener, now: Instant) {
        loop {
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    self.log(&format!("NIS server: accept failed: {e}"));
                    thread::sleep(Duration::from_millis(250));
                    break;
                }
            }
        }
    }

    /// Serve a new connection, or close it at once when over the cap and
    /// nobody can be evicted.
    fn admit(&mut self, stream: std::net::TcpStream, peer: SocketAddr, now: Instant) {
        let max = self.config.max_connections;
        if self.conns.len() >= max {
            // Clients that hung up since the last poll still count until
            // their end is read: read them now, before closing anyone.
            self.serve_pending(now);
        }
        if self.conns.len() >= max {
            let victim = self
                .conns
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| c.waiting_since)
                .filter(|(_, c)| {
                    now.saturating_duration_since(c.waiting_since) >= self.config.evict_after
                })
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    let old = self.conns.swap_remove(i);
                    let _ = old.stream.shutdown(Shutdown::Both);
                    self.log(&format!(
                        "NIS server: {max} connections open; closing the longest-waiting one ({}) to serve {peer}",
                        old.peer
                    ));
                }
                None => {
                    self.log(&format!(
                        "NIS server: {max} connections already open, refusing {peer}"
                    ));
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
        match Connection::new(stream, peer, now, self.config.read_timeout) {
            Ok(c) => {
                self.conns.push(c);
                // A client sends its request right after connecting: it is
                // usually there already, so read it now rather than after
                // another round of poll.
                let last = self.conns.len() - 1;
                let mut ready = vec![false; self.conns.len()];
                ready[last] = true;
                self.serve_ready(&ready, now);
            }
            Err(e) => self.log(&format!("NIS server: cannot serve {peer}: {e}")),
        }
    }
}

/// Appends a packet; every payload we build is far below the frame limit.
fn push(out: &mut Vec<u8>, payload: &[u8]) {
    // Cannot fail for our payloads (lines under 256 bytes, records under 256);
    // an oversize one would be left out rather than sent cut.
    let _ = frame::encode_packet(out, payload);
}

/// The whole reply to one request, end marker included.
pub fn reply_to_request(
    request: &[u8],
    source: &dyn StatusSource,
    events_file: Option<&std::path::Path>,
) -> Vec<u8> {
    match request {
        b"status" => source.status_reply(),
        b"events" => {
            let mut out = Vec::with_capacity(2048);
            match events_file.map(events::tail_records) {
                Some(Ok(records)) => {
                    for record in &records {
                        push(&mut out, record);
                    }
                }
                Some(Err(_)) | None => push(&mut out, NOT_AVAILABLE),
            }
            out.extend_from_slice(&[0, 0]);
            out
        }
        _ => {
            let mut out = Vec::with_capacity(32);
            push(&mut out, INVALID_COMMAND);
            out.extend_from_slice(&[0, 0]);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::status::tests::{at, captured_slave, CAPTURED_STATUS};
    use super::*;
    use std::sync::{Mutex, RwLock};

    struct Capture;

    impl StatusSource for Capture {
        fn status(&self) -> UpsStatus {
            captured_slave()
        }
        fn now(&self) -> DateTime<FixedOffset> {
            at("2026-11-22 01:40:24 +0000")
        }
    }

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut wire = Vec::new();
        for p in payloads {
            frame::encode_packet(&mut wire, p).unwrap();
        }
        wire.extend_from_slice(&[0, 0]);
        wire
    }

    #[test]
    fn status_reply_is_the_captured_wire_bytes() {
        let payloads: Vec<&[u8]> = CAPTURED_STATUS.iter().map(|l| l.as_bytes()).collect();
        let wire = reply_to_request(b"status", &Capture, None);
        assert_eq!(wire, framed(&payloads));
        assert_eq!(&wire[..4], b"\x00\x18AP"); // len=24, as captured
    }

    #[test]
    fn captured_error_replies() {
        assert_eq!(
            reply_to_request(b"bogus", &Capture, None),
            b"\x00\x11Invalid command\n\x00\x00\x00"
        );
        assert_eq!(
            reply_to_request(b"events", &Capture, None),
            b"\x00\x0fNot available\n\x00\x00\x00"
        );
        assert_eq!(
            reply_to_request(b"", &Capture, None),
            framed(&[INVALID_COMMAND])
        );
    }

    #[test]
    fn locks_are_sources_even_when_poisoned() {
        let lock = Arc::new(Mutex::new(captured_slave()));
        let poisoner = Arc::clone(&lock);
        let _ = thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(lock.is_poisoned());
        assert_eq!(lock.status().hostname, "vm");
        let rw = RwLock::new(captured_slave());
        assert_eq!(rw.status().upsname, "laptopbat");
    }
}
