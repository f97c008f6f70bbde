//! Reading SCRIPTDIR/config without running it (`--check`, `--flush-outbox`):
//! whatever the text, the declarations scanner never panics, and every
//! piece it keeps lies inside the text. Also the `export -p` parser.
#![no_main]

use apccontrol::config::shell::{declarations, parse_export_p};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let found = declarations(data);
    for piece in &found.pieces {
        assert!(piece.len() <= data.len());
    }
    let _ = parse_export_p(data);
});
