//! The daemon's main loop: read the power supplies, step the monitor, carry
//! out its effects, publish the status for NIS, then sleep until the next
//! deadline, a power_supply uevent, a poke, or a signal.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::config::apcupsd_conf::ApcupsdConf;
use crate::event::Event;
use crate::log::{Level, Log};
use crate::nis::published::Published;
use crate::power::{Effect, Source};

use super::dry_run::DryRun;
use super::effects::{Effects, Live};
use super::nis_service::start_nis;
use super::pid_lock::PidLock;
use super::reaper::reap_children;
use super::startup::{clear_stale_flags, close_outages, load_config, start_monitor, ups_name};
use super::{clock, nis_bind, poke, preflight, status, uevent, wake};
use crate::hostname::hostname;

use super::clock::{epoch_millis, epoch_secs};
use super::{DaemonError, Effector, Options};

/// Run the daemon until SIGTERM or SIGINT: with `Live` effects, or with
/// `--dry-run` watching the real supplies but only printing what it would do
/// (no pid file, no apccontrol run, no file written).
pub fn run(options: &Options) -> Result<(), DaemonError> {
    let mut log = Log::new("laptop-upsd");
    log.echo_to_stderr(if options.verbose {
        Level::Info
    } else {
        Level::Notice
    });
    let conf = load_config(&options.config, &mut log)?;
    if options.dry_run {
        log.notice("dry run: watching the power supplies; every step is printed, none is done");
        serve(
            options,
            &conf,
            Effector::new(&conf, log, DryRun::new().echo(true)),
        )
    } else {
        let _pid_lock = PidLock::acquire(&conf.pid_file)?;
        close_outages(&conf, &mut log);
        serve(options, &conf, Effector::new(&conf, log, Live))
    }
}

/// The main loop, whatever carries the effects out.
fn serve<E: Effects>(
    options: &Options,
    conf: &ApcupsdConf,
    mut effector: Effector<E>,
) -> Result<(), DaemonError> {
    // Signals are handled by reading a signalfd in the loop; block them
    // before any thread starts so every thread inherits the mask.
    let mut mask = SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
        poke::POKE_SIGNAL,
    ] {
        mask.add(signal);
    }
    mask.thread_block().map_err(DaemonError::Signals)?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(DaemonError::Signals)?;

    // Mono is CLOCK_BOOTTIME: suspended time counts (see clock.rs).
    let (boot_clock, clock_note) = clock::BootClock::new();
    if let Some(note) = clock_note {
        effector.log.warning(&note);
    }
    let now = || boot_clock.now();
    let boot_id = clock::boot_id();
    let start_time = crate::local_time::now();
    let mut monitor = start_monitor(conf, now(), boot_id.as_deref(), &mut effector.log);
    clear_stale_flags(conf, &monitor, &mut effector);
    // The preflight checks of `--check`, logged (the NIS port is checked by
    // binding it, below).
    for finding in preflight::run(&options.config, &options.root, false).findings {
        if finding.problem {
            effector
                .log
                .warning(&format!("preflight: {}", finding.text));
        }
    }
    let previous_wake = wake::read(conf);

    let upsname = ups_name(conf);
    let host = hostname().unwrap_or_default();
    let source = Source::new(&options.root);
    effector.event_line(
        Level::Notice,
        &format!(
            "laptop-upsd {} startup succeeded",
            env!("CARGO_PKG_VERSION")
        ),
    );

    let uevents = match uevent::Listener::open() {
        Ok(listener) => {
            effector.log.info(&format!(
                "listening to {} for power supplies{}",
                listener.group(),
                if listener.filtered() {
                    ""
                } else {
                    " (the kernel refused the socket filter: every uevent wakes us)"
                }
            ));
            Some(listener)
        }
        Err(e) => {
            effector
                .log
                .notice(&format!("no kernel uevents ({e}); polling only"));
            None
        }
    };

    // Rendered once per reading for the NIS server (nis::published).
    let mut published: Option<Arc<Published>> = None;
    // Started after the first status is published.
    let mut nis: Option<nis_bind::NisKeeper> = None;
    let mut mains_seen = false;

    let mut coalescer = uevent::Coalescer::default();
    let exit_signal = loop {
        let at = now();
        // The wall clock of the same moment: the status and the journal
        // place the monitor's instants (XONBATT, ...) relative to this
        // pair, so it must not drift by the time the effects below take.
        let last_poll = crate::local_time::now();
        let reading = source.read();
        let effects = monitor.step(reading, at);
        for effect in &effects {
            effector.apply(effect, || {
                let mut state = monitor.outage_state(now(), epoch_millis());
                state.boot_id.clone_from(&boot_id);
                state.to_text()
            });
        }
        let snapshot = monitor.snapshot(at);
        effector.journal_step(&effects, &snapshot, at, last_poll);
        mains_seen |= snapshot.last_reading.is_some() && !snapshot.on_battery;
        if effects.contains(&Effect::Run(Event::Doshutdown)) {
            let situation = wake::Situation {
                previous: previous_wake.as_ref(),
                now_epoch: epoch_secs(),
                booted_epoch: epoch_secs() - at.as_millis() / 1000,
                mains_seen,
                on_battery: snapshot.on_battery,
                charge: snapshot.charge_pct,
                wake_delay: conf.wake_delay,
            };
            wake::write_plan(
                conf,
                &wake::plan(&situation),
                &mut effector.effects,
                &mut effector.log,
            );
        }
        if conf.net_server {
            let ctx = status::Context {
                conf,
                upsname: &upsname,
                hostname: &host,
                start_time,
                last_poll,
                last_poll_mono: at,
            };
            let record = status::ups_status(&snapshot, &ctx);
            let source = match &published {
                Some(source) => {
                    source.publish(record, &last_poll);
                    Arc::clone(source)
                }
                None => Arc::clone(published.insert(Arc::new(Published::new(record, &last_poll)))),
            };
            if nis.is_none() {
                nis = start_nis(conf, source, &mut effector.log);
            }
        }

        let mut wake = at + monitor.poll_interval();
        if let Some(deadline) = monitor.next_deadline() {
            wake = wake.min(deadline);
        }
        let timeout = wake.since(now()).max(Duration::from_millis(50));
        match wait(
            &signals,
            uevents.as_ref(),
            &mut coalescer,
            timeout,
            &mut effector.log,
        ) {
            Wake::Signal(signal) => break signal,
            Wake::Timer | Wake::Uevent | Wake::Poke => {}
        }
    };
    effector.event_line(
        Level::Warning,
        &format!("laptop-upsd exiting, signal {}", exit_signal as i32),
    );
    Ok(())
}

enum Wake {
    Timer,
    Uevent,
    /// `laptop-upsd --poke` (the acpid rule): read now.
    Poke,
    Signal(Signal),
}

/// Sleep until the timeout, a power_supply uevent from the kernel (coalesced:
/// see [`uevent::Coalescer`]), or a signal. SIGCHLD reaps and keeps
/// sleeping; SIGHUP is logged (restart to reload).
fn wait(
    signals: &SignalFd,
    uevents: Option<&uevent::Listener>,
    coalescer: &mut uevent::Coalescer,
    timeout: Duration,
    log: &mut Log,
) -> Wake {
    let deadline = crate::deadline::after(timeout);
    loop {
        let now = Instant::now();
        if coalescer.pending(now).is_some_and(|due| due <= now) {
            coalescer.reread(now);
            return Wake::Uevent;
        }
        let until = coalescer
            .pending(now)
            .map_or(deadline, |due| due.min(deadline));
        let left = until.saturating_duration_since(now);
        if left.is_zero() {
            return Wake::Timer;
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(listener) = uevents {
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        }
        // Rounded up: rounded down, poll returns just before the deadline
        // and a second poll of 1 ms follows, two wakeups a reading for one.
        let ms = PollTimeout::try_from(left.as_micros().div_ceil(1000).max(1))
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log.error(&format!("poll failed: {e}"));
                std::thread::sleep(left.min(Duration::from_secs(1)));
                continue;
            }
        }
        let uevent_ready = fds
            .get(1)
            .and_then(|fd| fd.revents())
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        while let Ok(Some(info)) = signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => reap_children(log),
                Ok(Signal::SIGHUP) => log.notice(
                    "SIGHUP: laptop-upsd does not reload; restart it to apply a new config",
                ),
                Ok(poke::POKE_SIGNAL) => {
                    log.info("poked (laptop-upsd --poke): reading the power supplies now");
                    return Wake::Poke;
                }
                Ok(signal) => return Wake::Signal(signal),
                Err(_) => {}
            }
        }
        if uevent_ready {
            if let Some(listener) = uevents {
                if listener.drain_power_supply() {
                    coalescer.uevent(Instant::now());
                }
            }
        }
    }
}
