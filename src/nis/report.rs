//! Reading a status reply back: the text any apcupsd NIS server sends, as
//! `KEY : value` pairs in their order.
//!
//! Used on what came over the network (our client, a mail body, tests), so it
//! accepts anything: with or without the `APC` header, 3.14.12+ and older
//! forms (`STATFLAG : 0x07000000 Status Flag`), stray bytes. It never panics,
//! and it keeps at most [`MAX_FIELDS`] fields of at most [`MAX_FIELD_LEN`]
//! bytes each whatever the input. Pure: no I/O.

use super::flags::StatusFlags;

/// At most this many fields are kept; the rest of the input is ignored.
pub const MAX_FIELDS: usize = 256;

/// Keys and values are cut to this many bytes (at a character boundary).
pub const MAX_FIELD_LEN: usize = 1024;

/// The `APC      : 001,NNN,BBBB` header of a status reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusHeader {
    /// Record-format revision (1 for every apcupsd 3.x).
    pub revision: u32,
    /// Number of lines after the header.
    pub lines: u32,
    /// Bytes in those lines, newlines included.
    pub bytes: u32,
}

/// A parsed status reply: ordered `(key, value)` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    header: Option<StatusHeader>,
    fields: Vec<(String, String)>,
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn bounded(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Parses `001,027,0694`.
fn parse_header(value: &str) -> Option<StatusHeader> {
    let mut parts = value.split(',').map(|p| p.trim().parse::<u32>().ok());
    let header = StatusHeader {
        revision: parts.next()??,
        lines: parts.next()??,
        bytes: parts.next()??,
    };
    parts.next().is_none().then_some(header)
}

impl StatusReport {
    /// Parses status text. Lines without a `:` are skipped; keys and values
    /// are trimmed of surrounding whitespace (dates lose their two trailing
    /// spaces), keys of control bytes too. A first `APC` line is taken as the header, not a field.
    pub fn parse(text: &str) -> StatusReport {
        let mut report = StatusReport::default();
        for (index, raw) in text.split('\n').enumerate() {
            if report.fields.len() >= MAX_FIELDS {
                break;
            }
            let Some((key, value)) = raw.split_once(':') else {
                continue;
            };
            // Control bytes around a key are stray framing (e.g. a length byte).
            let key = key.trim_matches(|c: char| c.is_whitespace() || c.is_control());
            let value = value.trim();
            if index == 0 && key == "APC" {
                report.header = parse_header(value);
                continue;
            }
            if key.is_empty() {
                continue;
            }
            report.fields.push((
                bounded(key, MAX_FIELD_LEN).to_owned(),
                bounded(value, MAX_FIELD_LEN).to_owned(),
            ));
        }
        report
    }

    /// Parses raw bytes (invalid UTF-8 is replaced, NUL bytes end a line).
    pub fn parse_bytes(bytes: &[u8]) -> StatusReport {
        let text = String::from_utf8_lossy(bytes).replace('\0', "\n");
        StatusReport::parse(&text)
    }

    /// The header, when the text began with a well-formed one.
    pub fn header(&self) -> Option<StatusHeader> {
        self.header
    }

    /// All fields in the order received.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The value of the first field named `key` (exact, case-sensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value's first word as a number (`100.0 Percent` → 100.0); `N/A` is `None`.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key)?.split_whitespace().next()?.parse().ok()
    }

    /// STATFLAG as flags, old `0x07000000 Status Flag` form included.
    pub fn status_flags(&self) -> Option<StatusFlags> {
        let word = self.get("STATFLAG")?.split_whitespace().next()?;
        let hex = word
            .strip_prefix("0x")
            .or_else(|| word.strip_prefix("0X"))?;
        u32::from_str_radix(hex, 16).ok().map(StatusFlags)
    }
}

#[cfg(test)]
mod tests {
    use super::super::status::{render, tests as status_tests};
    use super::*;

    #[test]
    fn round_trip_of_rendered_text() {
        let s = status_tests::captured_slave();
        let text = render(&s, &status_tests::at("2026-11-22 01:40:24 +0000"));
        let report = StatusReport::parse(&text.to_text());
        assert_eq!(
            report.header(),
            Some(StatusHeader {
                revision: 1,
                lines: 27,
                bytes: 694
            })
        );
        assert_eq!(report.fields().len(), text.lines().len());
        for (line, (key, value)) in text.lines().iter().zip(report.fields()) {
            assert_eq!(line[..9].trim_end(), key);
            assert_eq!(line[11..].trim(), value);
        }
        assert_eq!(report.get("DATE"), Some("2026-11-22 01:40:22 +0000"));
        assert_eq!(report.get("STATUS"), Some("ONLINE SLAVE"));
        assert_eq!(report.get("XOFFBATT"), Some("N/A"));
        assert_eq!(report.number("BCHARGE"), Some(100.0));
        assert_eq!(report.number("XOFFBATT"), None);
        assert_eq!(report.status_flags(), Some(StatusFlags(0x0500_0408)));
        assert_eq!(report.get("NOPE"), None);
        // without the header
        let bare: String = text.lines().concat();
        let report = StatusReport::parse(&bare);
        assert_eq!(report.header(), None);
        assert_eq!(report.get("HOSTNAME"), Some("vm"));
    }

    #[test]
    fn old_pre_3_14_12_forms() {
        let old = "APC      : 001,003,0110\nSTATFLAG : 0x07000000 Status Flag\n\
                   LOADPCT  :  13.0 Percent Load Capacity\nITEMP    : 29.2 C Internal\n";
        let report = StatusReport::parse(old);
        assert_eq!(report.status_flags(), Some(StatusFlags(0x0700_0000)));
        assert_eq!(report.number("LOADPCT"), Some(13.0));
        assert_eq!(report.get("ITEMP"), Some("29.2 C Internal"));
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        for input in [
            "",
            ":",
            "\n\n\n",
            "APC",
            "APC : x,y",
            "APC      : 001,027",
            ": value\nKEY:\n:::\n",
            "STATFLAG : 0xZZ\nSTATFLAG: 12",
            "é:ü\r\n\u{0}",
        ] {
            let report = StatusReport::parse(input);
            let _ = report.status_flags();
            let _ = report.number("KEY");
        }
        assert_eq!(StatusReport::parse("STATFLAG : 0xZZ").status_flags(), None);
        assert_eq!(StatusReport::parse("KEY:\n").get("KEY"), Some(""));
        let huge = format!("{}: {}\n", "K".repeat(5000), "é".repeat(5000)).repeat(1000);
        let report = StatusReport::parse(&huge);
        assert_eq!(report.fields().len(), MAX_FIELDS);
        assert!(report
            .fields()
            .iter()
            .all(|(k, v)| k.len() <= MAX_FIELD_LEN && v.len() <= MAX_FIELD_LEN));
        let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let _ = StatusReport::parse_bytes(&bytes);
        let report = StatusReport::parse_bytes(b"\x00\x0eHOSTNAME : vm\n\x00\x00");
        assert_eq!(report.get("HOSTNAME"), Some("vm"));
    }
}
