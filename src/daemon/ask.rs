//! `laptop-upsd --status`: what `apcaccess status` would print, for users
//! without apcupsd installed. It asks the running daemon over NIS first
//! (NISIP:NISPORT, 0.0.0.0 asked as 127.0.0.1), which knows the outage,
//! the learnt drain and the transfers; when no daemon answers (or
//! NETSERVER is off), it takes one fresh reading itself and says so on
//! stderr, so scripts that parse stdout get the same format either way.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::config::apcupsd_conf::{self, ApcupsdConf};
use crate::hostname::hostname;
use crate::log::{Level, Log};
use crate::nis::client;
use crate::power::{Monitor, Mono, Source, Thresholds};

use super::startup::{load_config_or_default, ups_name};
use super::{status, DaemonError, Options};

/// How long the daemon may take to answer.
pub(crate) const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// The status text, and a note for stderr when it is not the daemon's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// apcaccess's format.
    pub text: String,
    /// Why this is a fresh reading rather than the daemon's view.
    pub note: Option<String>,
}

/// Where to ask: NISIP, with the wildcard asked on loopback.
pub(crate) fn nis_host(conf: &ApcupsdConf) -> Ipv4Addr {
    if conf.nis_ip.is_unspecified() {
        Ipv4Addr::LOCALHOST
    } else {
        conf.nis_ip
    }
}

/// Ask the daemon, else read once.
pub fn status(options: &Options) -> Result<Answer, DaemonError> {
    let mut log = Log::silent("laptop-upsd");
    log.echo_to_stderr(Level::Warning);
    let conf = apcupsd_conf::load_or_default(&options.config)?.conf;
    let note = if conf.net_server {
        let host = nis_host(&conf);
        match client::fetch_status(
            &host.to_string(),
            conf.nis_port,
            crate::deadline::after(ASK_TIMEOUT),
        ) {
            Ok(text) => return Ok(Answer { text, note: None }),
            Err(e) => format!(
                "no daemon answered on {host}:{} ({e}); this is one fresh reading, without \
                 the outage history a running laptop-upsd keeps",
                conf.nis_port
            ),
        }
    } else {
        format!(
            "NETSERVER is off in {}, so no daemon can be asked; this is one fresh reading",
            options.config.display()
        )
    };
    let text = status_text(options)?;
    Ok(Answer {
        text,
        note: Some(note),
    })
}

/// One fresh reading, printed as apcaccess prints a status (no daemon answered).
fn status_text(options: &Options) -> Result<String, DaemonError> {
    let mut log = Log::silent("laptop-upsd");
    log.echo_to_stderr(Level::Warning);
    let conf = load_config_or_default(&options.config, &mut log)?;
    let mut monitor = Monitor::new(Thresholds::from_conf(&conf), Mono::ZERO);
    let reading = Source::new(&options.root).read()?;
    // One step to take the reading in; its effects are not carried out.
    let _ = monitor.step(Ok(reading), Mono::ZERO);
    let snapshot = monitor.snapshot(Mono::ZERO);
    let now = chrono::Local::now().fixed_offset();
    let upsname = ups_name(&conf);
    let host = hostname().unwrap_or_default();
    let ctx = status::Context {
        conf: &conf,
        upsname: &upsname,
        hostname: &host,
        start_time: now,
        last_poll: now,
        last_poll_mono: Mono::ZERO,
    };
    let record = status::ups_status(&snapshot, &ctx);
    Ok(crate::nis::status::render(&record, &now).to_text())
}
