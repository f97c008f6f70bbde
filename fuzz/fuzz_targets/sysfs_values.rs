//! /sys/class/power_supply values: every per-file parser, and a whole
//! battery built from fuzzed files (the input is split on NUL into
//! `name=value` records; names are drawn from the real file list).
#![no_main]

use apccontrol::power::reading::combine_online;
use apccontrol::power::sysfs::{
    parse_battery, parse_int, parse_micro, parse_online, parse_type, SupplyFiles, BATTERY_FILES,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_type(&text);
    let _ = parse_online(&text);
    let _ = parse_micro(&text);
    let _ = parse_int(&text);
    let mut files = SupplyFiles::new();
    let mut onlines = Vec::new();
    for (i, record) in text.split('\0').enumerate() {
        let name = BATTERY_FILES[i % BATTERY_FILES.len()];
        files.insert(name.to_string(), record.to_string());
        onlines.push(parse_online(record));
    }
    let _ = parse_battery(&files);
    let _ = combine_online(onlines);
});
