//! The legacy /proc/acpi files: `state`, `info`, the adapter's `state`, and
//! the battery built from an info and a state (the input split at the first
//! NUL).
#![no_main]

use apccontrol::power::procfs::{
    battery_from, parse_ac_state, parse_amount, parse_info, parse_state,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_amount(&text);
    let _ = parse_ac_state(&text);
    let (info, state) = text.split_once('\0').unwrap_or((&text, &text));
    let info = parse_info(info);
    let state = parse_state(state);
    let _ = battery_from(&info, &state);
});
