//! The NIS server's request handling: any request bytes get a well-formed
//! reply (packets, then the end marker), never a panic.
#![no_main]

use std::sync::RwLock;

use apccontrol::nis::server::reply_to_request;
use apccontrol::nis::status::UpsStatus;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = RwLock::new(UpsStatus::default());
    let reply = reply_to_request(data, &source, None);
    assert!(reply.ends_with(&[0, 0]), "reply without the end marker");
    // The reply is a sequence of length-prefixed packets ending in 0 0.
    let mut rest = &reply[..];
    loop {
        assert!(rest.len() >= 2, "truncated reply");
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if len == 0 {
            assert_eq!(rest.len(), 2, "bytes after the end marker");
            break;
        }
        assert!(rest.len() >= 2 + len, "packet longer than the reply");
        rest = &rest[2 + len..];
    }
});
