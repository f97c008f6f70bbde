//! Asking an apcupsd NIS server for `status` or `events`, within a deadline.
//!
//! apccontrol puts a status into its mail bodies, and Debian bug #409734
//! shows what happens when that can block: the event handler hangs. Every
//! step here (name lookup, connect, send, each read) is bounded by one
//! caller-given [`Instant`], so a server that accepts and never answers, or
//! answers a byte at a time, costs at most the time the caller allowed. The
//! reply is capped in size too.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use super::deadline_stream::DeadlineStream;
use super::frame::{self, FrameError, Packet};

/// apcupsd's default NISPORT.
pub const DEFAULT_PORT: u16 = 3551;

/// Largest packet we accept from a server (apcupsd's lines are under 256 bytes).
pub const MAX_REPLY_PACKET: usize = 4096;

/// Largest whole reply we accept.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The host name could not be resolved.
    #[error("cannot resolve NIS host `{host}`: {source}")]
    Resolve {
        /// The host as given.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// The name resolved to no IPv4 address (apcupsd's NIS is IPv4 only).
    #[error("NIS host `{host}` has no IPv4 address; apcupsd's NIS listens on IPv4 only")]
    NoAddress {
        /// The host as given.
        host: String,
    },
    /// Connecting failed (refused, unreachable, ...).
    #[error("cannot connect to apcupsd NIS at {addr}: {source}; is apcupsd (or laptop-upsd) running with NETSERVER on?")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
    /// The deadline passed before the reply was complete.
    #[error("apcupsd NIS at {host}:{port} did not answer in time ({stage})")]
    TimedOut {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
        /// What we were doing: resolving, connecting, sending or reading.
        stage: &'static str,
    },
    /// The reply was malformed or the connection broke.
    #[error("bad reply from apcupsd NIS at {host}:{port}: {source}")]
    Frame {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
        /// The framing error.
        source: FrameError,
    },
    /// The reply went over [`MAX_REPLY_BYTES`].
    #[error("reply from apcupsd NIS at {host}:{port} is over the {limit}-byte limit")]
    ReplyTooLarge {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
        /// The limit.
        limit: usize,
    },
}

fn timed_out(host: &str, port: u16, stage: &'static str) -> ClientError {
    ClientError::TimedOut {
        host: host.to_owned(),
        port,
        stage,
    }
}

/// Resolves `host` to IPv4 addresses by the deadline. A literal address is
/// used as is; a name is looked up on a helper thread, because the system
/// resolver has no timeout of its own (the thread is left to finish alone if
/// the deadline passes).
fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, ClientError> {
    let host = if host.is_empty() || host == "0.0.0.0" {
        "localhost" // as apcaccess does
    } else {
        host
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(_) => Ok(vec![SocketAddr::new(ip, port)]),
            IpAddr::V6(_) => Err(ClientError::NoAddress {
                host: host.to_owned(),
            }),
        };
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_owned();
    let spawned = thread::Builder::new()
        .name("nis-resolve".into())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.filter(SocketAddr::is_ipv4).collect::<Vec<_>>());
            let _ = tx.send(result);
        });
    if let Err(source) = spawned {
        return Err(ClientError::Resolve {
            host: host.to_owned(),
            source,
        });
    }
    match rx.recv_timeout(crate::deadline::left(deadline)) {
        Ok(Ok(addrs)) if addrs.is_empty() => Err(ClientError::NoAddress {
            host: host.to_owned(),
        }),
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(source)) => Err(ClientError::Resolve {
            host: host.to_owned(),
            source,
        }),
        Err(_) => Err(timed_out(host, port, "resolving")),
    }
}

/// Connects to the first address that accepts, by the deadline.
fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, ClientError> {
    let addrs = resolve(host, port, deadline)?;
    let mut last = None;
    for addr in addrs {
        let left = crate::deadline::left(deadline);
        if left.is_zero() {
            return Err(timed_out(host, port, "connecting"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                return Err(timed_out(host, port, "connecting"))
            }
            Err(source) => last = Some(ClientError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::NoAddress {
        host: host.to_owned(),
    }))
}

/// Sends one request and collects the reply's packets, concatenated.
pub fn request(
    host: &str,
    port: u16,
    command: &str,
    deadline: Instant,
) -> Result<Vec<u8>, ClientError> {
    let stream = connect(host, port, deadline)?;
    exchange(&stream, host, port, command, deadline)
}

/// [`request`] on a connection already made to `host`:`port` (named in
/// the errors), which is shut down afterwards.
pub(crate) fn exchange(
    stream: &TcpStream,
    host: &str,
    port: u16,
    command: &str,
    deadline: Instant,
) -> Result<Vec<u8>, ClientError> {
    let mut io = DeadlineStream::new(stream, deadline);
    let frame_error = |source: FrameError, stage| {
        if source.is_timeout() {
            timed_out(host, port, stage)
        } else {
            ClientError::Frame {
                host: host.to_owned(),
                port,
                source,
            }
        }
    };
    frame::write_packet(&mut io, command.as_bytes()).map_err(|e| frame_error(e, "sending"))?;
    let mut reply = Vec::new();
    loop {
        match frame::read_packet(&mut io, MAX_REPLY_PACKET)
            .map_err(|e| frame_error(e, "reading"))?
        {
            Packet::End => break,
            Packet::Data(payload) => {
                if reply.len() + payload.len() > MAX_REPLY_BYTES {
                    return Err(ClientError::ReplyTooLarge {
                        host: host.to_owned(),
                        port,
                        limit: MAX_REPLY_BYTES,
                    });
                }
                reply.extend_from_slice(&payload);
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(reply)
}

/// The `status` reply as `apcaccess status` prints it (header line first).
///
/// Parse it with [`StatusReport::parse`](super::report::StatusReport::parse).
pub fn fetch_status(host: &str, port: u16, deadline: Instant) -> Result<String, ClientError> {
    fetch_status_on(&connect(host, port, deadline)?, host, port, deadline)
}

/// [`fetch_status`] on a connection already made to `host`:`port`.
pub(crate) fn fetch_status_on(
    stream: &TcpStream,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<String, ClientError> {
    exchange(stream, host, port, "status", deadline)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// The `events` reply: the last 50 lines of the server's events file, or
/// `Not available\n` plus a NUL when it has none.
pub fn fetch_events(host: &str, port: u16, deadline: Instant) -> Result<String, ClientError> {
    request(host, port, "events", deadline)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}
