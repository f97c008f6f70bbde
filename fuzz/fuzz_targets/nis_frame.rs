//! The NIS frame reader: any byte stream yields packets, the end marker or
//! an error, never a panic and never a packet over the limit.
#![no_main]

use apccontrol::nis::frame::{read_packet, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, stream)) = data.split_first() else {
        return;
    };
    let max_len = usize::from(limit) * 4;
    let mut reader = stream;
    for _ in 0..64 {
        match read_packet(&mut reader, max_len) {
            Ok(Packet::Data(payload)) => assert!(payload.len() <= max_len),
            Ok(Packet::End) | Err(_) => break,
        }
    }
});
