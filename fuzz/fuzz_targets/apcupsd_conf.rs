//! apcupsd.conf: any text parses to settings or a clear error, never a panic;
//! what parses has sane derived values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = apccontrol::config::apcupsd_conf::parse(&text) {
        let conf = &parsed.conf;
        let _ = conf.poll_interval();
        let _ = conf.effective_annoy_delay();
        let _ = conf.powerfail_path();
        let _ = conf.nologin_path();
        let _ = conf.apccontrol_path();
    }
});
