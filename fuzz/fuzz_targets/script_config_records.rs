//! The import of SCRIPTDIR/config: whatever the shell wrapper prints (a
//! config can make it print anything), the records parser never panics and
//! the settings derived from them never panic either.
#![no_main]

use std::path::Path;

use apccontrol::config::script_config::{parse_records, Settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(records) = parse_records(data) {
        let (settings, _problems) = Settings::from_vars(&records.known, Path::new("/etc/apcupsd"));
        let _ = settings.powerfail_path();
    }
});
