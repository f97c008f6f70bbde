//! The status laptop-upsd serves, rendered once per reading rather than
//! once per request.
//!
//! A reading happens every POLLTIME (or every second on battery); a busy
//! client (an apcupsd slave, Home Assistant, a monitoring exporter) may ask
//! many times in between. apcupsd's status text changes only at a reading,
//! except for its last line, `END APC`, which is the time of the request
//! (facts §5.2). So the first request after a reading renders and frames
//! every line but that one ([`RenderedStatus`]), later requests reuse it,
//! and each adds only `END APC`, its header and the end marker: byte for
//! byte what [`super::status::render`] gives. A reading nobody asks about
//! is never rendered.

use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use chrono::{DateTime, FixedOffset};

use super::frame;
use super::server::StatusSource;
use super::status::{self, UpsStatus};

/// A status rendered once: every line but `END APC`, framed as packets.
#[derive(Debug, Clone)]
pub struct RenderedStatus {
    /// The packets of every line but the last (`END APC`).
    framed: Vec<u8>,
    /// How many lines the reply has with `END APC`.
    lines: usize,
    /// The bytes of the lines but `END APC`.
    body_bytes: usize,
}

impl RenderedStatus {
    /// Render `record`; `at` stands for the request time wherever the text
    /// depends on it other than `END APC` (its time zone, for XONBATT).
    pub fn new(record: &UpsStatus, at: &DateTime<FixedOffset>) -> RenderedStatus {
        let text = status::render(record, at);
        let all = text.lines();
        let body = all.split_last().map_or(&[][..], |(_, body)| body);
        let mut framed = Vec::with_capacity(2048);
        for line in body {
            push(&mut framed, line.as_bytes());
        }
        RenderedStatus {
            framed,
            lines: body.len() + 1,
            body_bytes: body.iter().map(String::len).sum(),
        }
    }

    /// The whole `status` reply at `now`: header, lines, `END APC`, end marker.
    pub fn reply(&self, now: &DateTime<FixedOffset>) -> Vec<u8> {
        let end = status::end_apc_line(now);
        let bytes = self.body_bytes + end.len();
        let mut out = Vec::with_capacity(self.framed.len() + 64);
        push(&mut out, status::header_line(self.lines, bytes).as_bytes());
        out.extend_from_slice(&self.framed);
        push(&mut out, end.as_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }
}

fn push(out: &mut Vec<u8>, payload: &[u8]) {
    // Every line is under 256 bytes (status.rs caps them): never fails.
    let _ = frame::encode_packet(out, payload);
}

/// One reading's status, rendered when first asked for.
#[derive(Debug)]
struct Reading {
    record: UpsStatus,
    at: DateTime<FixedOffset>,
    rendered: OnceLock<RenderedStatus>,
}

/// Where laptop-upsd publishes each reading's status for its NIS server.
#[derive(Debug)]
pub struct Published {
    current: RwLock<Arc<Reading>>,
}

impl Published {
    /// Start with `record` (the first reading's, taken at `at`).
    pub fn new(record: UpsStatus, at: &DateTime<FixedOffset>) -> Published {
        Published {
            current: RwLock::new(Arc::new(Reading {
                record,
                at: *at,
                rendered: OnceLock::new(),
            })),
        }
    }

    /// Replace the status with a new reading's, taken at `at`.
    pub fn publish(&self, record: UpsStatus, at: &DateTime<FixedOffset>) {
        let reading = Arc::new(Reading {
            record,
            at: *at,
            rendered: OnceLock::new(),
        });
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = reading;
    }

    fn current(&self) -> Arc<Reading> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl StatusSource for Published {
    fn status(&self) -> UpsStatus {
        self.current().record.clone()
    }

    /// Local time, its offset looked up once a minute (see
    /// `crate::local_time`): a request a second does not stat
    /// `/etc/localtime` each time.
    fn now(&self) -> DateTime<FixedOffset> {
        crate::local_time::now()
    }

    fn status_reply(&self) -> Vec<u8> {
        let reading = self.current();
        reading
            .rendered
            .get_or_init(|| RenderedStatus::new(&reading.record, &reading.at))
            .reply(&self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::super::server::reply_to_request;
    use super::super::status::tests::{at, captured_slave};
    use super::*;

    #[test]
    fn a_rendered_reply_is_the_full_render_byte_for_byte() {
        let record = captured_slave();
        let reading = at("2026-11-22 01:40:22 +0000");
        let rendered = RenderedStatus::new(&record, &reading);
        for now in ["2026-11-22 01:40:24 +0000", "2027-01-01 00:00:00 +0100"] {
            let now = at(now);
            let text = status::render(&record, &now);
            let mut wire = Vec::new();
            push(&mut wire, text.header().as_bytes());
            for line in text.lines() {
                push(&mut wire, line.as_bytes());
            }
            wire.extend_from_slice(&[0, 0]);
            assert_eq!(rendered.reply(&now), wire);
        }
    }

    #[test]
    fn the_published_source_answers_as_a_plain_one() {
        let published = Published::new(UpsStatus::default(), &at("2026-11-22 01:00:00 +0000"));
        published.publish(captured_slave(), &at("2026-11-22 01:40:22 +0000"));
        assert_eq!(published.status(), captured_slave());
        let reply = reply_to_request(b"status", &published, None);
        assert!(reply.windows(9).any(|w| w == b"laptopbat"));
        assert!(reply.ends_with(&[0, 0]));
    }
}
