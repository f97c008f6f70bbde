//! The NIS server laptop-upsd runs, answering exactly as apcupsd 3.14.14 does
//! (facts §5.1, §5.4) while staying bounded whatever its clients do.
//!
//! One thread per connection, std only. Requests are `status` and `events`
//! (a 6-byte packet each, several per connection); anything else gets
//! `Invalid command\n\0`, a missing events file `Not available\n\0`, each
//! followed by the end marker. A request packet over 256 bytes, a zero-length
//! packet, EOF or a read that waits longer than the read timeout (15 s) ends
//! the connection, as in apcupsd.
//!
//! What apcupsd lacks and we add, so one bad client cannot hurt the others:
//! a cap on live connections; at the cap, the connection that has been
//! waiting longest (for a request, or for its client to take a reply) is
//! closed to make room if it has waited at least `evict_after`, otherwise the
//! new connection is closed at once, never queued. Also a deadline on writing
//! each reply (a client that never reads cannot pin a thread), a bounded read
//! of the events file, and panic containment per connection. Problems go to a
//! caller-given log sink.
//!
//! This module owns sockets and threads; the text comes from [`status`] and
//! [`events`], the data from the caller's [`StatusSource`].

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::deadline::DeadlineStream;
use super::events;
use super::frame::{self, FrameError, Packet};
use super::status::{self, UpsStatus};
use crate::deadline::after as deadline_after;

/// Longest request packet apcupsd accepts (its `MAXSTRING`); longer drops the connection.
pub const MAX_REQUEST_LEN: usize = 256;

/// Payload answering an unknown request: the text and its NUL, as apcupsd sends it.
pub const INVALID_COMMAND: &[u8] = b"Invalid command\n\0";

/// Payload answering `events` when the events file cannot be read.
pub const NOT_AVAILABLE: &[u8] = b"Not available\n\0";

/// Where the server gets the status it serves.
///
/// laptop-upsd keeps its snapshot in a lock; `RwLock<UpsStatus>` and
/// `Mutex<UpsStatus>` implement this already.
pub trait StatusSource: Send + Sync {
    /// The current snapshot.
    fn status(&self) -> UpsStatus;

    /// The time for the `END APC` line; local time by default.
    fn now(&self) -> DateTime<FixedOffset> {
        chrono::Local::now().fixed_offset()
    }
}

impl StatusSource for RwLock<UpsStatus> {
    fn status(&self) -> UpsStatus {
        self.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl StatusSource for Mutex<UpsStatus> {
    fn status(&self) -> UpsStatus {
        self.lock().unwrap_or_else(PoisonError::into_inner).clone()
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
        let (waker_rx, waker_tx) = UnixStream::pair()?;
        self.listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            source,
            config,
            live: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            all_closed: Condvar::new(),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
        });
        let thread_shared = Arc::clone(&shared);
        let listener = self.listener;
        let accept_thread = thread::Builder::new()
            .name("nis-accept".into())
            .spawn(move || accept_loop(&listener, &waker_rx, &thread_shared))?;
        Ok(ServerHandle {
            local_addr: self.local_addr,
            shared,
            waker: waker_tx,
            accept_thread: Some(accept_thread),
        })
    }
}

/// A running server. [`ServerHandle::stop`] (or dropping it) stops accepting,
/// closes every live connection and waits briefly for their threads.
pub struct ServerHandle {
    local_addr: SocketAddrV4,
    shared: Arc<Shared>,
    waker: UnixStream,
    accept_thread: Option<JoinHandle<()>>,
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
        self.shared.live().len()
    }

    /// Stops the server: no new connections, live ones shut down; waits up
    /// to 2 s for their threads to finish.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = (&self.waker).write_all(b"x");
        if accept_thread.join().is_err() {
            (self.shared.config.log)("NIS server: the accept thread panicked");
        }
        let mut live = self.shared.live();
        for conn in live.values() {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        let give_up = crate::deadline::after(Duration::from_secs(2));
        while !live.is_empty() {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            live = match self.shared.all_closed.wait_timeout(live, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// State shared by the accept thread and the connection threads.
struct Shared {
    source: Arc<dyn StatusSource>,
    config: ServerConfig,
    /// Every live connection, so the cap can be enforced and stop can shut them down.
    live: Mutex<HashMap<u64, Live>>,
    /// Origin of the `waiting_since` stamps.
    epoch: Instant,
    all_closed: Condvar,
    stopping: AtomicBool,
    next_id: AtomicU64,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, HashMap<u64, Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Milliseconds since the server started.
    fn clock(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn log(&self, message: &str) {
        // A panicking sink must not take the server with it.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| (self.config.log)(message)));
    }
}

/// One live connection as the accept thread sees it.
struct Live {
    /// A clone of the connection's socket, to shut it down from outside.
    stream: TcpStream,
    /// [`Shared::clock`] when the connection began its current wait.
    waiting_since: Arc<AtomicU64>,
    /// Already shut down to make room; its thread is on its way out.
    evicted: bool,
}

/// Removes a connection from the live set when its thread ends, even by panic.
struct LiveGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut live = self.shared.live();
        live.remove(&self.id);
        if live.is_empty() {
            self.shared.all_closed.notify_all();
        }
    }
}

fn accept_loop(listener: &TcpListener, waker: &UnixStream, shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::SeqCst) {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(waker.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                shared.log(&format!("NIS server: poll failed: {e}"));
                thread::sleep(Duration::from_millis(250));
                continue;
            }
        }
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        // Drain every pending connection; the listener is non-blocking.
        loop {
            match listener.accept() {
                Ok((stream, peer)) => admit(stream, peer, shared),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    shared.log(&format!("NIS server: accept failed: {e}"));
                    thread::sleep(Duration::from_millis(250));
                    break;
                }
            }
        }
    }
}

/// Makes room for one more connection if the cap allows it, evicting the
/// longest waiter when it has waited `evict_after`; false means refuse.
fn make_room(live: &mut HashMap<u64, Live>, shared: &Shared, peer: SocketAddr) -> bool {
    let max = shared.config.max_connections;
    let serving = live.values().filter(|c| !c.evicted).count();
    if serving < max {
        return true;
    }
    // Evicted connections are gone within moments; never hold more than twice the cap.
    if live.len() >= max.saturating_mul(2) {
        return false;
    }
    let now = shared.clock();
    let evict_after = u64::try_from(shared.config.evict_after.as_millis()).unwrap_or(u64::MAX);
    let victim = live
        .values_mut()
        .filter(|c| !c.evicted)
        .min_by_key(|c| c.waiting_since.load(Ordering::Relaxed));
    match victim {
        Some(conn)
            if now.saturating_sub(conn.waiting_since.load(Ordering::Relaxed)) >= evict_after =>
        {
            conn.evicted = true;
            let _ = conn.stream.shutdown(Shutdown::Both);
            let who = conn
                .stream
                .peer_addr()
                .map(|p| p.to_string())
                .unwrap_or_default();
            shared.log(&format!(
                "NIS server: {max} connections open; closing the longest-waiting one ({who}) to serve {peer}"
            ));
            true
        }
        _ => false,
    }
}

/// Starts a thread for a new connection, or closes it at once when over the cap.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let waiting_since = Arc::new(AtomicU64::new(shared.clock()));
    {
        let mut live = shared.live();
        if !make_room(&mut live, shared, peer) {
            drop(live);
            shared.log(&format!(
                "NIS server: {} connections already open, refusing {peer}",
                shared.config.max_connections
            ));
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        match stream.try_clone() {
            Ok(clone) => {
                live.insert(
                    id,
                    Live {
                        stream: clone,
                        waiting_since: Arc::clone(&waiting_since),
                        evicted: false,
                    },
                );
            }
            Err(e) => {
                drop(live);
                shared.log(&format!("NIS server: cannot serve {peer}: {e}"));
                return;
            }
        }
    }
    let guard = LiveGuard {
        shared: Arc::clone(shared),
        id,
    };
    let spawned = thread::Builder::new()
        .name("nis-client".into())
        // A connection needs a few KiB: small stacks keep a full house cheap.
        .stack_size(128 * 1024)
        .spawn(move || {
            let shared = Arc::clone(&guard.shared);
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                serve(&stream, &shared, &waiting_since);
            }));
            if outcome.is_err() {
                shared.log(&format!(
                    "NIS server: the handler for {peer} panicked; connection closed"
                ));
            }
            let _ = stream.shutdown(Shutdown::Both);
            drop(guard);
        });
    if let Err(e) = spawned {
        // The closure, guard and stream included, was dropped: the slot is free again.
        shared.log(&format!(
            "NIS server: cannot start a thread for {peer}: {e}"
        ));
    }
}

/// Answers requests on one connection until it ends.
fn serve(stream: &TcpStream, shared: &Shared, waiting_since: &AtomicU64) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    loop {
        waiting_since.store(shared.clock(), Ordering::Relaxed);
        let mut reader = DeadlineStream::new(stream, deadline_after(shared.config.read_timeout));
        let request = match frame::read_packet(&mut reader, MAX_REQUEST_LEN) {
            Ok(Packet::Data(request)) => request,
            // EOF, a zero-length packet or a silent client: apcupsd hangs up too.
            Ok(Packet::End) | Err(FrameError::Closed) => return,
            Err(e @ FrameError::TooLong { .. }) => {
                let peer = stream
                    .peer_addr()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                shared.log(&format!("NIS server: dropping {peer}: {e}"));
                return;
            }
            Err(_) => return,
        };
        let reply = reply_to(&request, shared);
        waiting_since.store(shared.clock(), Ordering::Relaxed);
        let mut writer = DeadlineStream::new(stream, deadline_after(shared.config.write_timeout));
        if writer.write_all(&reply).is_err() {
            return;
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
    let mut out = Vec::with_capacity(2048);
    match request {
        b"status" => {
            let text = status::render(&source.status(), &source.now());
            push(&mut out, text.header().as_bytes());
            for line in text.lines() {
                push(&mut out, line.as_bytes());
            }
        }
        b"events" => match events_file.map(events::tail_records) {
            Some(Ok(records)) => {
                for record in &records {
                    push(&mut out, record);
                }
            }
            Some(Err(_)) | None => push(&mut out, NOT_AVAILABLE),
        },
        _ => push(&mut out, INVALID_COMMAND),
    }
    out.extend_from_slice(&[0, 0]);
    out
}

fn reply_to(request: &[u8], shared: &Shared) -> Vec<u8> {
    reply_to_request(
        request,
        shared.source.as_ref(),
        shared.config.events_file.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::status::tests::{at, captured_slave, CAPTURED_STATUS};
    use super::*;

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
