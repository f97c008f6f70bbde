//! What the daemon does once before its main loop: read the config, resume
//! the outage from the state file, clear flags a previous run left, and
//! close the outage the machine went down in (queueing its mail).
//! Every choice is logged; none stops the start.

use std::fs;
use std::path::Path;

use crate::config::apcupsd_conf::{self, ApcupsdConf};
use crate::journal::{Journal, Writer};
use crate::log::Log;
use crate::power::{Monitor, Mono, OutageState, Thresholds};

use super::effects::Effects;
use crate::hostname::hostname;

use super::clock::epoch_secs;
use super::{DaemonError, Effector};

/// Load the config, the way every mode does: warnings go to the log.
pub(crate) fn load_config(path: &Path, log: &mut Log) -> Result<ApcupsdConf, DaemonError> {
    Ok(warnings_logged(path, apcupsd_conf::load(path)?, log))
}

/// [`load_config`], or the defaults when there is no file
/// ([`apcupsd_conf::load_or_default`]).
pub(crate) fn load_config_or_default(
    path: &Path,
    log: &mut Log,
) -> Result<ApcupsdConf, DaemonError> {
    Ok(warnings_logged(
        path,
        apcupsd_conf::load_or_default(path)?,
        log,
    ))
}

fn warnings_logged(path: &Path, parsed: apcupsd_conf::Parsed, log: &mut Log) -> ApcupsdConf {
    for warning in &parsed.warnings {
        log.warning(&format!("{}: {warning}", path.display()));
    }
    parsed.conf
}

/// The UPS name: UPSNAME, else the host name, else `default` (as apcupsd).
pub(crate) fn ups_name(conf: &ApcupsdConf) -> String {
    conf.ups_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| hostname().unwrap_or_else(|| "default".to_string()))
}

/// The monitor to start with: resumed from the state file with the rules
/// of [`crate::power::restore`] (each choice logged), fresh when there is
/// none (a corrupt file is logged and ignored).
pub(super) fn start_monitor(
    conf: &ApcupsdConf,
    now: Mono,
    boot_id: Option<&str>,
    log: &mut Log,
) -> Monitor {
    let thresholds = Thresholds::from_conf(conf);
    // Bytes, not a string: a state file that is not UTF-8 is corrupt, and
    // says so below, rather than silently ignored.
    // Only a file of ours, never through a link (crate::trust): someone
    // else's file planted at its name must not be read, nor quoted below.
    match crate::trust::read_own(&conf.state_file, 64 * 1024) {
        Ok(None) => Monitor::new(thresholds, now),
        Err(e) => {
            log.warning(&format!(
                "cannot read the state file {}: {e}; starting fresh",
                conf.state_file.display()
            ));
            Monitor::new(thresholds, now)
        }
        Ok(Some(bytes)) => match OutageState::parse(&String::from_utf8_lossy(&bytes)) {
            Ok(state) => {
                let here = crate::power::restore::Here {
                    now,
                    now_epoch: epoch_secs(),
                    boot_id,
                };
                let restored = crate::power::restore::restore(&state, &here);
                log.notice(&format!(
                    "resuming from {} (version {}): {}",
                    conf.state_file.display(),
                    state.version,
                    if restored.outage.is_some() {
                        "an outage in progress"
                    } else {
                        "no outage"
                    }
                ));
                for note in &restored.notes {
                    log.notice(&format!("{}: {note}", conf.state_file.display()));
                }
                Monitor::resume_from(thresholds, now, &restored)
            }
            Err(e) => {
                log.warning(&format!(
                    "ignoring the corrupt state file {}: {e}",
                    conf.state_file.display()
                ));
                Monitor::new(thresholds, now)
            }
        },
    }
}

/// Like Debian's prestart: a powerfail file left from an earlier run goes
/// (a shutdown is never resumed, see [`crate::power::restore`]), and so does
/// a nologin file that says POWER FAILURE, unless the outage we resume
/// prohibited logins.
pub(super) fn clear_stale_flags<E: Effects>(
    conf: &ApcupsdConf,
    monitor: &Monitor,
    effector: &mut Effector<E>,
) {
    let banned = monitor.snapshot(Mono::ZERO).logins_prohibited;
    let powerfail = conf.powerfail_path();
    if powerfail.exists() {
        match effector.effects.remove_file(&powerfail) {
            Ok(()) => effector
                .log
                .notice(&format!("removed the stale {}", powerfail.display())),
            Err(e) => effector.log.error(&format!(
                "cannot remove the stale {}: {e}",
                powerfail.display()
            )),
        }
    }
    let nologin = conf.nologin_path();
    if !banned && fs::read_to_string(&nologin).is_ok_and(|t| t.contains("POWER FAILURE")) {
        let _ = effector.effects.remove_file(&nologin);
    }
}

/// At start: close the outage the machine went down in (or one whose end
/// nobody closed), queueing the post-outage mail when SCRIPTDIR/config
/// configures mail; the flush timer (or the next event) delivers it.
pub(super) fn close_outages(conf: &ApcupsdConf, log: &mut Log) {
    let Some(dir) = &conf.journal_dir else {
        return;
    };
    let config = crate::config::ScriptConfig::read_declarations(
        &conf.script_dir,
        crate::config::script_config::Judge::for_this_process(),
        crate::notify::known_variables(),
    );
    let mail = crate::notify::event_mail::settings_from(&config.vars, log);
    let closings = crate::journal::after::close_outages(
        &Journal::new(dir),
        Writer::LaptopUpsd,
        &crate::journal::after::Here::now(),
        mail.as_ref(),
        log,
    );
    if !closings.queued.is_empty() {
        log.notice(
            "the post-outage mail is queued; apccontrol --flush-outbox (its timer) delivers it",
        );
    }
}
