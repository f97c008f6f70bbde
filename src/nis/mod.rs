//! apcupsd's NIS (Network Information Server) protocol, byte-compatible with
//! apcupsd 3.14.14 (facts §5).
//!
//! laptop-upsd serves its battery through [`server`] so that `apcaccess`,
//! apcupsd slaves, Home Assistant and the like see a UPS; `apccontrol` reads
//! a status for its mail bodies through [`client`]. Both speak the same wire
//! format ([`frame`]): TCP, IPv4, every message a packet of a 2-byte
//! big-endian length and that many bytes, a zero-length packet ending each
//! reply.
//!
//! ```text
//!   client                                server
//!   00 06 "status"            ──────▶
//!                             ◀──────     00 18 "APC      : 001,027,0694\n"
//!                             ◀──────     00 27 "DATE     : 2026-11-22 01:40:22 +0000  \n"
//!                             ◀──────     ...  one packet per line
//!                             ◀──────     00 00   (end of reply)
//!   00 06 "events"            ──────▶     (same connection, next request)
//! ```
//!
//! - [`frame`]: packets on any `Read`/`Write`, lengths checked before allocating.
//! - [`flags`]: the STATFLAG word and its STATUS words.
//! - [`status`]: the typed snapshot and its exact text.
//! - [`report`]: parsing a status text back into fields.
//! - [`events`]: the tail of the events file as apcupsd serves it.
//! - [`client`]: fetching `status`/`events` within a deadline.
//! - [`listener`]: who owns the socket listening on a local port.
//! - [`published`]: the status rendered once per reading, for the server.
//! - [`server`]: the bounded server, one thread for every client.

mod connection;
mod deadline_stream;

pub mod client;
pub mod events;
pub mod flags;
pub mod frame;
pub mod listener;
pub mod published;
pub mod report;
pub mod server;
pub mod status;

pub use client::{fetch_events, fetch_status, ClientError, DEFAULT_PORT};
pub use flags::StatusFlags;
pub use frame::{FrameError, Packet};
pub use published::Published;
pub use report::{StatusHeader, StatusReport};
pub use server::{NisServer, ServerConfig, ServerHandle, StatusSource};
pub use status::{render, StatusText, UpsStatus};
