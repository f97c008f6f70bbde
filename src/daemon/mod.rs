//! laptop-upsd's thin shell around the pure [`Monitor`]: read the power
//! supplies, step the monitor, carry out its [`Effect`]s as apcupsd would
//! (events file and syslog lines, `SCRIPTDIR/apccontrol EVENT UPSNAME 1 1`
//! started without waiting, powerfail and nologin files, the state file),
//! publish the status for the NIS server, and sleep until the next deadline,
//! a kernel power_supply uevent, or a signal.
//!
//! Failures here are logged, never fatal once the loop runs: a full disk, a
//! missing apccontrol or a broken sysfs file must not stop the next reading,
//! because the next reading may be the one that needs a shutdown.

pub mod ask;
pub mod clock;
pub mod demo;
pub mod effects;
pub mod events_file;
pub mod killpower;
pub mod nis_bind;
pub mod poke;
pub mod preflight;
pub mod status;
pub mod uevent;
pub mod wake;

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::config::apcupsd_conf::{self, ApcupsdConf, ConfError};
use crate::event::Event;
use crate::journal::sampler::Sampler;
use crate::journal::{Appended, Journal, Record, Writer};
use crate::log::{Level, Log};
use crate::nis::published::Published;
use crate::nis::server::ServerConfig;
use crate::power::{Effect, Monitor, Mono, OutageState, Snapshot, Source, Thresholds};

use effects::{DryRun, Effects, Live};
use events_file::EventsFile;

/// What the binary parsed.
#[derive(Debug, Clone)]
pub struct Options {
    /// apcupsd.conf to read.
    pub config: PathBuf,
    /// Prefix for every `/sys` and `/proc` path read.
    pub root: PathBuf,
    /// Every log line on stderr too.
    pub verbose: bool,
    /// Watch and decide, but only print what would be done ([`DryRun`]).
    pub dry_run: bool,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration file is wrong.
    #[error(transparent)]
    Config(#[from] ConfError),
    /// Another instance holds the pid file lock.
    #[error("another laptop-upsd is already running{} (it holds the lock on {}); stop it first", pid.map(|p| format!(" as pid {p}")).unwrap_or_default(), path.display())]
    AlreadyRunning {
        /// Its pid, if the file says.
        pid: Option<i32>,
        /// The pid file.
        path: PathBuf,
    },
    /// The pid file could not be created.
    #[error("cannot create the pid file {}: {source}; set PIDFILE in the config to a writable path", path.display())]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The power supplies could not be read (`--status`).
    #[error(transparent)]
    Source(#[from] crate::power::SourceError),
    /// Signal handling could not be set up.
    #[error("cannot set up signal handling: {0}")]
    Signals(nix::errno::Errno),
}

/// Load the config, the way every mode does: warnings go to the log.
pub fn load_config(path: &Path, log: &mut Log) -> Result<ApcupsdConf, DaemonError> {
    let parsed = apcupsd_conf::load(path)?;
    for warning in &parsed.warnings {
        log.warning(&format!("{}: {warning}", path.display()));
    }
    Ok(parsed.conf)
}

/// The UPS name: UPSNAME, else the host name, else `default` (as apcupsd).
pub fn ups_name(conf: &ApcupsdConf) -> String {
    conf.ups_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| hostname().unwrap_or_else(|| "default".to_string()))
}

fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
}

fn epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The single-instance lock: the pid file, held with `flock` for the
/// daemon's lifetime. Released (and the file removed) on drop.
#[derive(Debug)]
pub struct PidLock {
    path: PathBuf,
    _lock: nix::fcntl::Flock<fs::File>,
}

impl PidLock {
    /// Take the lock or say who holds it.
    pub fn acquire(path: &Path) -> Result<PidLock, DaemonError> {
        // Never through a planted link or into someone else's file: a pid
        // file is written as root (crate::trust). What someone planted at
        // its name (a link, their file, a second hard link) is removed, and
        // the file made afresh: the daemon must start.
        let file = match crate::trust::create_flag(path, 0o644) {
            Ok(file) => Ok(file),
            Err(_) if planted(path) => {
                fs::remove_file(path).map_err(|source| DaemonError::PidFile {
                    path: path.to_path_buf(),
                    source,
                })?;
                crate::trust::create_flag(path, 0o644)
            }
            Err(e) => Err(e),
        }
        .map_err(|e| DaemonError::PidFile {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        let mut lock =
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, _)) => {
                    let pid = crate::trust::read_capped(path, 64)
                        .ok()
                        .flatten()
                        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok());
                    return Err(DaemonError::AlreadyRunning {
                        pid,
                        path: path.to_path_buf(),
                    });
                }
            };
        let written = lock
            .set_len(0)
            .and_then(|()| writeln!(&mut *lock, "{}", std::process::id()));
        if let Err(source) = written {
            return Err(DaemonError::PidFile {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(PidLock {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

/// Whether something other than our own pid file stands at `path`: a
/// symlink, someone else's file, or a file with a second hard link.
fn planted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).is_ok_and(|meta| {
        !meta.is_dir()
            && (meta.file_type().is_symlink()
                || meta.uid() != nix::unistd::geteuid().as_raw()
                || meta.nlink() > 1
                || !meta.is_file())
    })
}

impl Drop for PidLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Carries out the monitor's effects through an [`Effects`] implementation
/// ([`Live`] in the daemon, [`DryRun`] in the demo). Every failure is logged
/// and survived.
pub struct Effector<E: Effects> {
    conf: ApcupsdConf,
    upsname: String,
    events: Option<EventsFile>,
    /// What carries the side effects out (or only describes them).
    pub effects: E,
    /// The log all lines go to.
    pub log: Log,
    /// When set, events file lines carry this time instead of the clock's
    /// (the demo runs in virtual time).
    pub virtual_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    journal: Option<Journal>,
    sampler: Sampler,
    boot_id: Option<String>,
    /// The last journal write failed or was dropped (said once until one works).
    journal_trouble: bool,
}

impl<E: Effects> Effector<E> {
    /// An effector for this config.
    pub fn new(conf: &ApcupsdConf, log: Log, effects: E) -> Effector<E> {
        Effector {
            conf: conf.clone(),
            upsname: ups_name(conf),
            events: conf
                .events_file
                .as_deref()
                .map(|path| EventsFile::new(path, conf.events_file_max)),
            effects,
            log,
            virtual_time: None,
            journal: conf.journal_dir.as_deref().map(Journal::new),
            sampler: Sampler::default(),
            boot_id: clock::boot_id(),
            journal_trouble: false,
        }
    }

    /// The outage journal, if JOURNALDIR is set.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Write what one monitor step means for the outage journal: each
    /// event's decision with its reason, a reading at most every 10 s on
    /// battery ([`Sampler`]). Called after the step's effects were carried
    /// out, so it never comes before a shutdown; a failure is logged once
    /// and changes nothing else.
    /// `at` is when the step began (before its apccontrol runs started),
    /// unless the effector runs in virtual time.
    pub fn journal_step(
        &mut self,
        effects: &[Effect],
        snapshot: &Snapshot,
        now: Mono,
        at: chrono::DateTime<chrono::FixedOffset>,
    ) {
        let Some(journal) = self.journal.clone() else {
            return;
        };
        let entries = self.sampler.step(effects, snapshot, &self.conf, now);
        if entries.is_empty() {
            return;
        }
        let at = self.virtual_time.unwrap_or(at);
        for entry in entries {
            let record = Record::new(Writer::LaptopUpsd, &at, self.boot_id.clone(), entry);
            match self.effects.append_journal(&journal, &record) {
                Ok(Appended::Written { .. }) => self.journal_trouble = false,
                Ok(Appended::Dropped { bound }) => {
                    if !std::mem::replace(&mut self.journal_trouble, true) {
                        self.log.notice(&format!(
                            "outage journal {}: at its bound of {bound} bytes for this outage; \
                             further records of this kind are dropped",
                            journal.path().display()
                        ));
                    }
                }
                Err(e) => {
                    if !std::mem::replace(&mut self.journal_trouble, true) {
                        self.log.warning(&format!(
                            "outage journal: cannot write ({e}); monitoring goes on, said once \
                             until a write works again"
                        ));
                    }
                }
            }
        }
    }

    /// A line for syslog and the events file, as apcupsd's `log_event`.
    pub fn event_line(&mut self, level: Level, text: &str) {
        self.log.line(level, text);
        if let Some(events) = &self.events {
            let at = self
                .virtual_time
                .unwrap_or_else(|| chrono::Local::now().fixed_offset());
            let line = events_file::format_line(&at, text);
            if let Err(e) = self.effects.append_event_line(events, &line) {
                let path = events.path().display().to_string();
                self.log
                    .error(&format!("cannot write events file {path}: {e}"));
            }
        }
    }

    /// Do one effect. `state` gives the text for [`Effect::SaveState`].
    pub fn apply(&mut self, effect: &Effect, state: impl FnOnce() -> String) {
        match effect {
            Effect::Log { text, severity } => self.event_line((*severity).into(), text),
            Effect::Explain(why) => self.log.line(why.level(), &why.to_string()),
            Effect::Run(event) => self.run_apccontrol(*event),
            Effect::CreatePowerfail => {
                let path = self.conf.powerfail_path();
                if let Err(e) = self.effects.write_file(&path, b"") {
                    self.log
                        .error(&format!("Unable to create {}: ERR={e}", path.display()));
                }
            }
            Effect::ProhibitLogins => {
                let path = self.conf.nologin_path();
                if let Err(e) = self.effects.replace_file(&path, b"POWER FAILURE\n") {
                    self.log
                        .error(&format!("cannot write {}: {e}", path.display()));
                }
            }
            Effect::AllowLogins => {
                // Only our own file: apcupsd removes any nologin, even an
                // admin's; we leave one that does not say POWER FAILURE.
                let path = self.conf.nologin_path();
                if fs::read_to_string(&path).is_ok_and(|t| t.contains("POWER FAILURE")) {
                    if let Err(e) = self.effects.remove_file(&path) {
                        self.log
                            .error(&format!("cannot remove {}: {e}", path.display()));
                    }
                }
            }
            Effect::SaveState => {
                let path = self.conf.state_file.clone();
                if let Err(e) = self.effects.replace_file(&path, state().as_bytes()) {
                    self.log.error(&format!(
                        "cannot save the outage state to {}: {e}",
                        path.display()
                    ));
                }
            }
        }
    }

    /// Start `SCRIPTDIR/apccontrol EVENT UPSNAME 1 1` without waiting.
    fn run_apccontrol(&mut self, event: Event) {
        let program = self.conf.apccontrol_path();
        match self
            .effects
            .start_apccontrol(&program, event, &self.upsname)
        {
            Ok(how) => self.log.info(&format!(
                "started {} {} {} 1 1 ({how})",
                program.display(),
                event,
                self.upsname,
            )),
            Err(e) => self
                .log
                .error(&format!("Cannot exec {} {event}: {e}", program.display())),
        }
    }
}

/// Reap every finished child without blocking.
pub fn reap_children(log: &mut Log) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return,
            Ok(WaitStatus::Exited(pid, code)) => {
                if code != 0 {
                    log.info(&format!("apccontrol (pid {pid}) exited with status {code}"));
                }
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                log.warning(&format!("apccontrol (pid {pid}) was killed by {signal}"));
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECHILD) => return,
            Err(e) => {
                log.error(&format!("waitpid failed: {e}"));
                return;
            }
        }
    }
}

/// The monitor to start with: resumed from the state file with the rules
/// of [`crate::power::restore`] (each choice logged), fresh when there is
/// none (a corrupt file is logged and ignored).
fn start_monitor(
    conf: &ApcupsdConf,
    now: Mono,
    boot_id: Option<&str>,
    log: &mut Log,
) -> (Monitor, Option<OutageState>) {
    let thresholds = Thresholds::from_conf(conf);
    // Bytes, not a string: a state file that is not UTF-8 is corrupt, and
    // says so below, rather than silently ignored.
    // Only a file of ours, never through a link (crate::trust): someone
    // else's file planted at its name must not be read, nor quoted below.
    match crate::trust::read_own(&conf.state_file, 64 * 1024) {
        Ok(None) => (Monitor::new(thresholds, now), None),
        Err(e) => {
            log.warning(&format!(
                "cannot read the state file {}: {e}; starting fresh",
                conf.state_file.display()
            ));
            (Monitor::new(thresholds, now), None)
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
                (
                    Monitor::resume_from(thresholds, now, &restored),
                    Some(state),
                )
            }
            Err(e) => {
                log.warning(&format!(
                    "ignoring the corrupt state file {}: {e}",
                    conf.state_file.display()
                ));
                (Monitor::new(thresholds, now), None)
            }
        },
    }
}

/// Like Debian's prestart: a powerfail file left from an earlier run goes
/// (a shutdown is never resumed, see [`crate::power::restore`]), and so does
/// a nologin file that says POWER FAILURE, unless the outage we resume
/// prohibited logins.
fn clear_stale_flags<E: Effects>(
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

/// Run the daemon until SIGTERM or SIGINT: with [`Live`] effects, or with
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

/// At start: close the outage the machine went down in (or one whose end
/// nobody closed), queueing the post-outage mail when SCRIPTDIR/config
/// configures mail; the flush timer (or the next event) delivers it.
fn close_outages(conf: &ApcupsdConf, log: &mut Log) {
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
    let start_time = chrono::Local::now().fixed_offset();
    let (mut monitor, _resumed) = start_monitor(conf, now(), boot_id.as_deref(), &mut effector.log);
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
        let last_poll = chrono::Local::now().fixed_offset();
        let reading = source.read();
        let effects = monitor.step(reading, at);
        for effect in &effects {
            effector.apply(effect, || {
                let mut state = monitor.outage_state(now(), epoch_secs());
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

/// At most this many NIS server problem lines per minute reach the log: 500
/// bad connections must not become 500 journal lines.
const NIS_LOG_PER_MINUTE: u32 = 20;

/// The NIS server's log sink, rate-limited per minute.
struct NisLog {
    log: Log,
    window: Instant,
    lines: u32,
}

impl NisLog {
    fn line(&mut self, line: &str) {
        if self.window.elapsed() >= Duration::from_secs(60) {
            if self.lines > NIS_LOG_PER_MINUTE {
                let dropped = self.lines - NIS_LOG_PER_MINUTE;
                self.log.warning(&format!(
                    "NIS server: {dropped} more problem lines in the last minute were not logged"
                ));
            }
            self.window = Instant::now();
            self.lines = 0;
        }
        self.lines = self.lines.saturating_add(1);
        if self.lines <= NIS_LOG_PER_MINUTE {
            self.log.warning(line);
        } else if self.lines == NIS_LOG_PER_MINUTE + 1 {
            self.log.warning(&format!(
                "NIS server: more than {NIS_LOG_PER_MINUTE} problems this minute; counting the rest, not logging them"
            ));
        }
    }
}

fn start_nis(
    conf: &ApcupsdConf,
    published: Arc<Published>,
    log: &mut Log,
) -> Option<nis_bind::NisKeeper> {
    let mut nis_log = Log::new("laptop-upsd");
    nis_log.echo_to_stderr(Level::Warning);
    let nis_log = Arc::new(std::sync::Mutex::new(NisLog {
        log: nis_log,
        window: Instant::now(),
        lines: 0,
    }));
    let config = ServerConfig {
        events_file: conf.events_file.clone(),
        log: Arc::new(move |line: &str| {
            if let Ok(mut log) = nis_log.lock() {
                log.line(line);
            }
        }),
        // At the cap, a newcomer always gets a slot: the connection that has
        // waited longest is closed. A well-behaved client (apcaccess, a
        // slave) finishes its exchange in milliseconds, so under a flood the
        // longest waiter is nearly always the flood; refusing newcomers
        // instead would let 32 silent sockets lock every client out for
        // the eviction delay (tests/faults.rs, NIS under attack).
        evict_after: Duration::ZERO,
        // apcupsd has no cap at all; 128 keeps 64 honest clients polling at
        // once (Home Assistant, exporters, slaves) clear of eviction.
        max_connections: 128,
        ..ServerConfig::default()
    };
    // Bind failures are retried with backoff, each logged with its likely
    // cause (nis_bind.rs).
    let mut bind_log = Log::new("laptop-upsd");
    bind_log.echo_to_stderr(log.stderr_level().unwrap_or(Level::Notice));
    match nis_bind::keep(conf.nis_ip, conf.nis_port, published, config, bind_log) {
        Ok(keeper) => Some(keeper),
        Err(e) => {
            log.error(&format!("cannot start the NIS server thread: {e}"));
            None
        }
    }
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
        let ms = PollTimeout::try_from(left.as_millis().max(1)).unwrap_or(PollTimeout::MAX);
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

/// `laptop-upsd --status`: one reading, printed as apcaccess prints a status.
pub fn status_text(options: &Options) -> Result<String, DaemonError> {
    let mut log = Log::silent("laptop-upsd");
    log.echo_to_stderr(Level::Warning);
    let conf = if options.config.exists() {
        load_config(&options.config, &mut log)?
    } else {
        ApcupsdConf::default()
    };
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
