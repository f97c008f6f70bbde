//! The NIS wire frame: every message, in both directions, is one packet.
//!
//! ```text
//!   0       1       2                               2 + len
//!   +-------+-------+-------------------------------+
//!   | len (u16, big-endian) | payload: len bytes    |
//!   +-------+-------+-------------------------------+
//!
//!   len = 0  (the bytes 00 00, no payload) ends a reply.
//! ```
//!
//! A request is one packet (`status` or `events`, no newline). A reply is any
//! number of packets followed by the zero-length end marker (facts §5.1).
//!
//! This module exists so that nobody else in the crate reads a length off the
//! wire: the length is checked against a caller-given maximum *before* any
//! buffer is allocated, so a peer cannot make us allocate 64 KiB per request,
//! let alone more. Pure codec over `impl Read` / `impl Write`: no sockets, no
//! clock, no timeouts (those belong to the stream the caller passes in).

use std::io::{self, Read, Write};

/// The largest payload the 2-byte length can describe.
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// One packet read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// A packet with a payload (never empty).
    Data(Vec<u8>),
    /// The zero-length packet that ends a reply.
    End,
}

/// Why a packet could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced (or the caller tried to send) a payload larger than allowed.
    #[error("NIS packet of {len} bytes is longer than the {max}-byte limit; the peer is not speaking the apcupsd NIS protocol or is misbehaving")]
    TooLong {
        /// The announced or attempted length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The stream ended in the middle of a packet.
    #[error("NIS packet truncated: expected {expected} bytes, the connection ended after {got}")]
    Truncated {
        /// Bytes the packet should have had (length prefix included).
        expected: usize,
        /// Bytes actually received.
        got: usize,
    },
    /// The stream ended cleanly between packets.
    #[error("the NIS peer closed the connection")]
    Closed,
    /// Reading or writing failed (a timeout shows up here as `TimedOut`/`WouldBlock`).
    #[error("NIS connection I/O failed: {source}")]
    Io {
        /// The underlying error.
        #[from]
        source: io::Error,
    },
}

impl FrameError {
    /// True when the error is a read or write timeout rather than a protocol fault.
    pub fn is_timeout(&self) -> bool {
        matches!(self, FrameError::Io { source }
            if matches!(source.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock))
    }
}

/// Reads into `buf` until it is full or the stream ends; returns the byte count.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads one packet whose payload may be at most `max_len` bytes.
///
/// The announced length is compared with `max_len` before anything is
/// allocated; a longer packet is [`FrameError::TooLong`] and its payload is
/// left unread (the caller should drop the connection).
pub fn read_packet(reader: &mut impl Read, max_len: usize) -> Result<Packet, FrameError> {
    let mut prefix = [0u8; 2];
    match read_full(reader, &mut prefix)? {
        0 => return Err(FrameError::Closed),
        1 => {
            return Err(FrameError::Truncated {
                expected: 2,
                got: 1,
            })
        }
        _ => {}
    }
    let len = usize::from(u16::from_be_bytes(prefix));
    if len == 0 {
        return Ok(Packet::End);
    }
    if len > max_len {
        return Err(FrameError::TooLong { len, max: max_len });
    }
    let mut payload = vec![0u8; len];
    let got = read_full(reader, &mut payload)?;
    if got < len {
        return Err(FrameError::Truncated {
            expected: len + 2,
            got: got + 2,
        });
    }
    Ok(Packet::Data(payload))
}

/// Appends one packet (length prefix and payload) to `out`.
///
/// An empty payload would be the end marker, so it is encoded as such.
pub fn encode_packet(out: &mut Vec<u8>, payload: &[u8]) -> Result<(), FrameError> {
    let len = u16::try_from(payload.len()).map_err(|_| FrameError::TooLong {
        len: payload.len(),
        max: MAX_PACKET_LEN,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Writes one packet in a single `write_all` (prefix and payload together).
pub fn write_packet(writer: &mut impl Write, payload: &[u8]) -> Result<(), FrameError> {
    let mut buf = Vec::with_capacity(payload.len().min(MAX_PACKET_LEN) + 2);
    encode_packet(&mut buf, payload)?;
    writer.write_all(&buf)?;
    Ok(())
}

/// Writes the zero-length packet that ends a reply.
pub fn write_end(writer: &mut impl Write) -> Result<(), FrameError> {
    writer.write_all(&[0, 0])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that fails the test if more than the prefix is ever requested,
    /// proving the length is checked before the payload is touched.
    struct PrefixOnly {
        prefix: [u8; 2],
        pos: usize,
    }

    impl Read for PrefixOnly {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(
                self.pos < 2,
                "payload must not be read after an oversize length"
            );
            assert!(
                buf.len() <= 2,
                "no payload buffer may be offered for an oversize length"
            );
            let n = buf.len().min(2 - self.pos);
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn round_trip_of_several_packets_and_the_end_marker() {
        let mut wire = Vec::new();
        write_packet(&mut wire, b"status").unwrap();
        write_packet(&mut wire, &[7u8; 300]).unwrap();
        write_end(&mut wire).unwrap();
        assert_eq!(&wire[..8], b"\x00\x06status");
        let mut r = &wire[..];
        assert_eq!(
            read_packet(&mut r, 256).unwrap(),
            Packet::Data(b"status".to_vec())
        );
        assert_eq!(
            read_packet(&mut r, 300).unwrap(),
            Packet::Data(vec![7u8; 300])
        );
        assert_eq!(read_packet(&mut r, 0).unwrap(), Packet::End);
        assert!(matches!(read_packet(&mut r, 10), Err(FrameError::Closed)));
    }

    #[test]
    fn largest_payload_round_trips_and_one_more_is_refused() {
        let big = vec![1u8; MAX_PACKET_LEN];
        let mut wire = Vec::new();
        write_packet(&mut wire, &big).unwrap();
        assert_eq!(&wire[..2], &[0xff, 0xff]);
        let mut r = &wire[..];
        assert_eq!(
            read_packet(&mut r, MAX_PACKET_LEN).unwrap(),
            Packet::Data(big)
        );
        let mut sink = Vec::new();
        let err = write_packet(&mut sink, &vec![0u8; MAX_PACKET_LEN + 1]).unwrap_err();
        assert!(matches!(
            err,
            FrameError::TooLong {
                len: 65536,
                max: 65535
            }
        ));
        assert!(sink.is_empty());
    }

    #[test]
    fn oversize_length_is_refused_before_reading_or_allocating() {
        let mut r = PrefixOnly {
            prefix: [0x01, 0x2c],
            pos: 0,
        };
        let err = read_packet(&mut r, 256).unwrap_err();
        assert!(matches!(err, FrameError::TooLong { len: 300, max: 256 }));
        assert!(err.to_string().contains("300 bytes"));
        let mut r = PrefixOnly {
            prefix: [0xff, 0xff],
            pos: 0,
        };
        assert!(matches!(
            read_packet(&mut r, 4096),
            Err(FrameError::TooLong { .. })
        ));
    }

    #[test]
    fn truncated_input_is_reported() {
        let mut r: &[u8] = &[0x00];
        assert!(matches!(
            read_packet(&mut r, 10),
            Err(FrameError::Truncated {
                expected: 2,
                got: 1
            })
        ));
        let mut r: &[u8] = b"\x00\x06sta";
        let err = read_packet(&mut r, 10).unwrap_err();
        assert!(matches!(
            err,
            FrameError::Truncated {
                expected: 8,
                got: 5
            }
        ));
        assert!(err.to_string().contains("truncated"));
    }

    #[test]
    fn timeouts_are_recognised() {
        let err = FrameError::from(io::Error::from(io::ErrorKind::WouldBlock));
        assert!(err.is_timeout());
        assert!(!FrameError::Closed.is_timeout());
    }
}
