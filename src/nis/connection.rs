//! One NIS client connection as the server's poll loop drives it: a small
//! state machine over a non-blocking socket, so one thread serves every
//! client (no thread per connection).
//!
//! A connection is either waiting for a request (reading, with a deadline
//! for the whole packet) or delivering a reply (writing, with a deadline for
//! the whole reply). Nothing more is read while a reply is pending, so a
//! client that sends many requests and reads nothing holds at most one
//! reply and a few KiB of requests, and is dropped at the write deadline.
//! What a request means is the caller's business ([`Connection::on_readable`]
//! takes the answering function); this module owns no policy but the frame.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::frame::FrameError;

/// Read at most this much per wake-up: requests are at most
/// [`super::server::MAX_REQUEST_LEN`] bytes, so this bounds what a client
/// that pipelines requests can make us hold.
const READ_CHUNK: usize = 4096;

/// What the loop should do with a connection after handling an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Keep it; poll for reading.
    Read,
    /// Keep it; poll for writing.
    Write,
    /// Close it; the reason, if it is worth a log line.
    Close(Option<String>),
}

/// A client connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    /// Request bytes received and not yet answered.
    inbox: Vec<u8>,
    /// The reply being sent, and how much of it went out.
    outbox: Vec<u8>,
    sent: usize,
    /// When the current wait (for a request or for the client to take the
    /// reply) must end.
    pub(crate) deadline: Instant,
    /// When the current wait began: the longest waiter is evicted first.
    pub(crate) waiting_since: Instant,
}

impl Connection {
    /// A new connection, waiting for its first request until `read_timeout`.
    pub(crate) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
        read_timeout: Duration,
    ) -> io::Result<Connection> {
        stream.set_nonblocking(true)?;
        Ok(Connection {
            stream,
            peer,
            inbox: Vec::new(),
            outbox: Vec::new(),
            sent: 0,
            deadline: crate::deadline::after_from(now, read_timeout),
            waiting_since: now,
        })
    }

    /// Whether a reply is being sent.
    pub(crate) fn writing(&self) -> bool {
        self.sent < self.outbox.len()
    }

    /// The socket is readable: read, and answer the complete requests with
    /// `answer` (one at a time: the next only once the reply went out).
    pub(crate) fn on_readable(
        &mut self,
        now: Instant,
        rules: &Rules,
        answer: &mut Answer<'_>,
    ) -> Next {
        if self.writing() {
            return Next::Write;
        }
        let mut chunk = [0u8; READ_CHUNK];
        match (&self.stream).read(&mut chunk) {
            // EOF: the client is done (a half packet is dropped, as apcupsd does).
            Ok(0) => return Next::Close(None),
            Ok(n) => self.inbox.extend_from_slice(&chunk[..n]),
            Err(e) if is_retry(&e) => return Next::Read,
            Err(_) => return Next::Close(None),
        }
        self.pump(now, rules, answer)
    }

    /// The socket is writable: send what is left of the reply, then go on
    /// with any request the client sent ahead.
    pub(crate) fn on_writable(
        &mut self,
        now: Instant,
        rules: &Rules,
        answer: &mut Answer<'_>,
    ) -> Next {
        self.pump(now, rules, answer)
    }

    /// Send the pending reply, then answer the next complete request in the
    /// inbox, until the socket is full or the inbox holds no whole request.
    fn pump(&mut self, now: Instant, rules: &Rules, answer: &mut Answer<'_>) -> Next {
        loop {
            if self.writing() {
                while self.writing() {
                    match (&self.stream).write(&self.outbox[self.sent..]) {
                        Ok(0) => return Next::Close(None),
                        Ok(n) => self.sent += n,
                        Err(e) if is_retry(&e) => return Next::Write,
                        Err(_) => return Next::Close(None),
                    }
                }
                self.outbox = Vec::new();
                self.sent = 0;
                self.deadline = crate::deadline::after_from(now, rules.read_timeout);
                self.waiting_since = now;
            }
            let Some(prefix) = self.inbox.get(..2) else {
                return Next::Read;
            };
            let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
            if len == 0 {
                // The end marker from a client: apcupsd hangs up too.
                return Next::Close(None);
            }
            if len > rules.max_request {
                let e = FrameError::TooLong {
                    len,
                    max: rules.max_request,
                };
                return Next::Close(Some(format!("dropping {}: {e}", self.peer)));
            }
            if self.inbox.len() < 2 + len {
                return Next::Read;
            }
            let request: Vec<u8> = self.inbox.drain(..2 + len).skip(2).collect();
            let Some(reply) = answer(&request) else {
                return Next::Close(None);
            };
            self.outbox = reply;
            self.sent = 0;
            self.deadline = crate::deadline::after_from(now, rules.write_timeout);
            self.waiting_since = now;
        }
    }
}

/// Answers one request with the whole reply; `None` closes the connection.
pub(crate) type Answer<'a> = dyn FnMut(&[u8]) -> Option<Vec<u8>> + 'a;

/// The limits a connection keeps to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// Longest request packet.
    pub(crate) max_request: usize,
    /// Longest wait for a whole request.
    pub(crate) read_timeout: Duration,
    /// Longest time to deliver a whole reply.
    pub(crate) write_timeout: Duration,
}

fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
