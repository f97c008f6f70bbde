//! The NIS client's status parser: any bytes a server sends parse to a
//! report whose lookups never panic.
#![no_main]

use apccontrol::nis::report::StatusReport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = StatusReport::parse_bytes(data);
    let _ = report.header();
    let _ = report.status_flags();
    for key in ["STATUS", "BCHARGE", "TIMELEFT", "LINEV", "DATE"] {
        let _ = report.get(key);
        let _ = report.number(key);
    }
    let _ = report.fields().len();
});
