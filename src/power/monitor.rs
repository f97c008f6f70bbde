//! The monitor: apcupsd's decision logic for a laptop battery, as a pure
//! state machine.
//!
//! Readings and virtual time ([`Mono`]) go in through [`Monitor::step`]; an
//! ordered list of [`Effect`]s comes out, for the daemon to carry out in that
//! order (log lines, `apccontrol` runs, the powerfail and nologin files).
//! [`Monitor::next_deadline`] says when a timer can fire next, so the daemon
//! sleeps exactly until then; [`Monitor::snapshot`] is the status the NIS
//! server reports. The timeline is apcupsd 3.14.14's (facts §3.4–§3.7):
//!
//! - powerout at once; onbattery once on battery for ONBATTERYDELAY (`>=`);
//! - the shutdown checks run from the power failure on, so also during the
//!   ONBATTERYDELAY window: failing (critical or empty battery), timeout
//!   (whole seconds since onbattery, or since the failure before it, `>`
//!   TIMEOUT), loadlimit (charge `<=` BATTERYLEVEL, or the laptop rule
//!   BATTERYDROP), runlimit (runtime estimate `<=` MINUTES); every condition
//!   that reads the battery must hold 5 s, and resets when a believable
//!   reading clears it;
//! - a shutdown is: log, run the event, log `Initiating system shutdown!`,
//!   create powerfail, prohibit logins (unless NOLOGON disable, as Debian),
//!   run doshutdown. At most once per run (and per outage state file);
//! - back on mains: offbattery (only if onbattery was sent), mainsback,
//!   `Allowing logins` if logins were prohibited, then the nologin removal;
//! - NOLOGON and annoyme with apcupsd's rules (annoyme only while logins are
//!   prohibited, so never with NOLOGON disable; ANNOY 0 does not disable it);
//! - battdetach/battattach when the number of batteries drops or rises (the
//!   first reading is compared with "one present", as apcupsd does);
//! - commfailure after several unreadable or implausible polls (its log line
//!   repeated every 10 minutes while it lasts), commok after;
//! - remotedown (then doshutdown) after [`BLIND_POLLS`] polls in a row on
//!   battery without a trustworthy charge or runtime, as apcupsd's net
//!   driver does when it loses its master on battery (`drivers/net/net.c`);
//! - back on mains, the outage's shutdown state ends: a vetoed or failed
//!   shutdown does not block the next outage's;
//! - changeme when health says so or full < REPLACEPCT % of design, quiet for
//!   10 minutes after start, then at most every 9 hours;
//! - emergency when the adapter is online but the battery is critical and
//!   discharging (held 5 s), followed by a shutdown.
//!
//! The reading filter fixes a reading rather than throwing it away: a charge
//! above 100 up to [`CHARGE_CLAMP_MAX`] (gauges overshoot near full) is read
//! as 100; a charge no battery can give (above that, negative, garbage) drops
//! that field only (the charge is then taken from the contents, if they are
//! sane), never the adapter state. A battery saying `Unknown` (or not
//! charging) with 0 % on mains is dead: believed, flagged REPLACEBATT. Not
//! believed at all, counting towards commfailure: nothing readable, no
//! adapter state with no battery status or charge, `Unknown` with 0 % off
//! mains, and a charge jump larger than the time since the last reading
//! allows (believable once several consecutive readings agree). Time-only
//! timers (onbattery, TIMEOUT) keep running while readings are bad.
//!
//! Several batteries are judged as one (combined contents); a battery's own
//! `Critical` level counts only when that battery discharges and the
//! combined charge agrees (at most [`CRITICAL_AGREES_PCT`]).
//!
//! Each decision comes with an [`Explanation`] effect: the rule and the
//! numbers behind it, and (rate-limited) the readings that were ignored.
//!
//! Pure: no clock, no files, no processes.

use std::time::Duration;

use super::explain::{Explanation, Ignored};
use super::mono::Mono;
use super::reading::{Battery, BatteryStatus, CapacityLevel, PowerReading};
use super::restore::{restore, Here, Restored};
use super::runtime::RuntimeEstimator;
use super::state::{OutageState, STATE_VERSION};
use super::thresholds::{Thresholds, CHANGEME_EVERY, CHANGEME_QUIET, FAST_POLL, HOLD};
use super::SourceError;
use crate::config::apcupsd_conf::NoLogon;
use crate::event::{Event, Severity};

/// While communication stays lost, its log line is repeated this often.
pub const COMMLOST_RELOG: Duration = Duration::from_secs(10 * 60);

/// Consecutive polls on battery without a trustworthy charge or runtime
/// that shut the machine down (apcupsd's net driver: the 5th failed pass).
pub const BLIND_POLLS: u32 = 5;

/// The highest charge read as 100 %; above it the value is impossible.
pub const CHARGE_CLAMP_MAX: f64 = 150.0;

/// With several batteries, one's `Critical` level counts only when the
/// combined charge is at most this (percent).
pub const CRITICAL_AGREES_PCT: f64 = 10.0;

/// A learnt drain is saved again once it moved by more than this fraction.
const DRAIN_SAVE_STEP: f64 = 0.1;

/// Logged when the nologin file is written (apcupsd's text).
pub const LOGINS_PROHIBITED: &str = "User logins prohibited";
/// Logged when logins are allowed again (apcupsd's text).
pub const ALLOWING_LOGINS: &str = "Allowing logins";

/// One thing the daemon must do, in the order given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Write a line to syslog and the events file.
    Log {
        /// apcupsd's exact text.
        text: &'static str,
        /// The syslog priority.
        severity: Severity,
    },
    /// Start `SCRIPTDIR/apccontrol EVENT UPSNAME 1 1` without waiting.
    Run(Event),
    /// Create the empty `<PWRFAILDIR>/powerfail` file (mode 0644).
    CreatePowerfail,
    /// Write `<NOLOGINDIR>/nologin` with `POWER FAILURE\n` (mode 0644).
    ProhibitLogins,
    /// Remove `<NOLOGINDIR>/nologin`. apcupsd does this on every return of
    /// mains, whoever created the file; a careful daemon may remove it only
    /// when it holds `POWER FAILURE`.
    AllowLogins,
    /// The persistent state changed: write [`Monitor::outage_state`] to the state file.
    SaveState,
    /// Log why (syslog only): the rule and the numbers behind a decision,
    /// or a reading that was not believed.
    Explain(Explanation),
}

impl Effect {
    fn log_event(event: Event) -> Option<Effect> {
        event.log_text().map(|text| Effect::Log {
            text,
            severity: event.severity(),
        })
    }
}

/// The current outage.
#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    /// When the power failed (powerout).
    pub started: Mono,
    /// When onbattery was sent; TIMEOUT counts from here once it is set.
    pub onbattery_at: Option<Mono>,
    /// The believable charge at the start of the outage (BATTERYDROP's base).
    pub charge_at_start: Option<f64>,
    /// The last annoyme (or the time it was armed).
    pub last_annoy: Mono,
    /// Whether annoyme's log line was written in this outage.
    pub annoy_logged: bool,
}

impl Outage {
    /// apcupsd's `last_time_on_line` during an outage.
    fn timer_base(&self) -> Mono {
        self.onbattery_at.unwrap_or(self.started)
    }
}

/// The status the NIS server reports (as apcupsd's STATFLAG bits:
/// [`crate::daemon::status::flags`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// On battery (as believed).
    pub on_battery: bool,
    /// onbattery has been sent in this outage.
    pub onbattery_sent: bool,
    /// The battery is critical or empty (LOWBATT).
    pub low_battery: bool,
    /// The battery should be replaced (REPLACEBATT).
    pub replace_battery: bool,
    /// doshutdown has been sent (STATUS `SHUTTING DOWN`).
    pub shutdown_started: bool,
    /// What started the shutdown.
    pub shutdown_reason: Option<Event>,
    /// At least one battery is present.
    pub battery_present: bool,
    /// Charge in percent, from the last believable reading.
    pub charge_pct: Option<f64>,
    /// Runtime estimate that decisions use (measured, or the firmware's).
    pub runtime: Option<Duration>,
    /// TIMELEFT as reported: [`Snapshot::runtime`], else the stated
    /// estimate ([`RuntimeEstimator::stated`]), else zero (nothing known
    /// about the contents, or no battery).
    pub timeleft: Duration,
    /// Time on battery in the current outage (TONBATT).
    pub time_on_battery: Duration,
    /// Time on battery in all outages, this one included (CUMONBATT).
    pub cumulative_on_battery: Duration,
    /// Transfers to battery (NUMXFERS).
    pub transfers: u32,
    /// Start of the last transfer to battery (XONBATT).
    pub last_transfer_on: Option<Mono>,
    /// End of the last transfer to battery (XOFFBATT).
    pub last_transfer_off: Option<Mono>,
    /// Communication with the source is lost (COMMLOST).
    pub commlost: bool,
    /// Polling fast (1 s).
    pub fast_poll: bool,
    /// Logins are prohibited by laptop-upsd.
    pub logins_prohibited: bool,
    /// The last believable reading, and when it was taken.
    pub last_reading: Option<(Mono, PowerReading)>,
}

/// A charge jump not believed yet: the last reading that made it, and how
/// many readings in a row have agreed with it (the monitor believes it at
/// `jump_confirm_polls`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct SuspectJump {
    /// When the last agreeing reading was taken.
    at: Mono,
    /// Its charge, in percent.
    charge: f64,
    /// Readings in a row that agree, this one included.
    agreeing: u32,
}

/// A condition that must hold for [`HOLD`] before it counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Hold(Option<Mono>);

impl Hold {
    /// Record a believable observation; true once it has held long enough.
    fn observe(&mut self, condition: bool, now: Mono) -> bool {
        if !condition {
            self.0 = None;
            return false;
        }
        let since = *self.0.get_or_insert(now);
        now.since(since) >= HOLD
    }

    fn deadline(self) -> Option<Mono> {
        self.0.map(|since| since + HOLD)
    }
}

/// The state machine. See the module doc for the rules.
#[derive(Debug, Clone)]
pub struct Monitor {
    th: Thresholds,
    started_at: Mono,
    on_battery: bool,
    outage: Option<Outage>,
    shutdown_started: bool,
    shutdown_reason: Option<Event>,
    logins_prohibited: bool,
    // Reading filter and communication.
    bad_polls: u32,
    /// Set while communication is lost: when its log line was last written.
    commlost: Option<Mono>,
    last_good: Option<(Mono, PowerReading)>,
    /// A charge that jumped further than time allows, waiting for the
    /// readings after it to agree.
    suspect: Option<SuspectJump>,
    /// The reason of the last ignored reading.
    last_ignored: Option<Ignored>,
    /// Whether the current run of ignored readings was explained.
    ignored_logged: bool,
    /// Whether an impossible charge was explained in the current run of them.
    charge_ignored_logged: bool,
    /// Whether a charge above 100 was explained (once per run).
    clamp_logged: bool,
    /// Whether a blank gauge was explained in the current run of them.
    blank_logged: bool,
    /// The battery is dead on mains.
    dead_battery: bool,
    dead_logged: bool,
    /// Polls in a row on battery without a trustworthy charge or runtime.
    blind_polls: u32,
    /// The drain last saved.
    saved_drain: Option<f64>,
    /// A transition in this step changed what [`Monitor::outage_state`]
    /// saves (the outage, its logins, the transfer statistics), so the
    /// step ends with [`Effect::SaveState`]. Set where the change is made.
    state_changed: bool,
    // Battery presence.
    /// Believed number of batteries; `None` before the first reading.
    battery_count: Option<usize>,
    pending_count: Option<usize>,
    // Held conditions.
    lowbatt: Hold,
    lowbatt_now: bool,
    loadlimit: Hold,
    drop: Hold,
    runlimit: Hold,
    emergency: Hold,
    // changeme.
    replace_battery: bool,
    last_changeme: Option<Mono>,
    // Statistics.
    cumulative: Duration,
    transfers: u32,
    last_transfer_on: Option<Mono>,
    last_transfer_off: Option<Mono>,
    estimator: RuntimeEstimator,
}

impl Monitor {
    /// A monitor for a daemon that starts at `now`, assuming mains power and
    /// one battery present until the first reading says otherwise.
    pub fn new(th: Thresholds, now: Mono) -> Self {
        Self {
            th,
            started_at: now,
            on_battery: false,
            outage: None,
            shutdown_started: false,
            shutdown_reason: None,
            logins_prohibited: false,
            bad_polls: 0,
            commlost: None,
            last_good: None,
            suspect: None,
            last_ignored: None,
            ignored_logged: false,
            charge_ignored_logged: false,
            clamp_logged: false,
            blank_logged: false,
            dead_battery: false,
            dead_logged: false,
            blind_polls: 0,
            saved_drain: None,
            state_changed: false,
            battery_count: None,
            pending_count: None,
            lowbatt: Hold::default(),
            lowbatt_now: false,
            loadlimit: Hold::default(),
            drop: Hold::default(),
            runlimit: Hold::default(),
            emergency: Hold::default(),
            replace_battery: false,
            last_changeme: None,
            cumulative: Duration::ZERO,
            transfers: 0,
            last_transfer_on: None,
            last_transfer_off: None,
            estimator: RuntimeEstimator::default(),
        }
    }

    /// A monitor that resumes from a saved state. `now_epoch` is the wall
    /// clock (seconds since the epoch) at `now`; the boot is taken as
    /// unknown, so saved wall times place the outage. See [`super::restore`]
    /// for what is resumed.
    pub fn resume(th: Thresholds, now: Mono, now_epoch: i64, state: &OutageState) -> Self {
        let here = Here {
            now,
            now_epoch,
            boot_id: None,
        };
        Monitor::resume_from(th, now, &restore(state, &here))
    }

    /// A monitor that resumes what [`super::restore::restore`] kept. An
    /// outage continues: no second powerout or onbattery, and TIMEOUT keeps
    /// its base.
    pub fn resume_from(th: Thresholds, now: Mono, restored: &Restored) -> Self {
        let mut m = Monitor::new(th, now);
        if let Some(stats) = restored.stats {
            m.transfers = stats.transfers;
            m.cumulative = stats.cumulative;
            m.last_transfer_on = Some(stats.last_transfer_on);
            m.last_transfer_off = stats.last_transfer_off;
        }
        if let Some(drain) = restored.drain {
            m.estimator = RuntimeEstimator::restore(drain);
            m.saved_drain = Some(drain.per_hour);
        }
        if let Some(o) = restored.outage {
            m.on_battery = true;
            m.logins_prohibited = o.logins_prohibited;
            if m.last_transfer_on.is_none() {
                m.last_transfer_on = Some(o.started);
            }
            m.outage = Some(Outage {
                started: o.started,
                onbattery_at: o.onbattery_at,
                charge_at_start: o.charge_at_start,
                last_annoy: now,
                annoy_logged: false,
            });
        }
        m
    }

    /// What to save so that [`Monitor::resume`] can continue;
    /// `now_epoch_ms` is the wall clock at `now`, in milliseconds since the
    /// epoch. Times are saved as the whole second they fall in, the second
    /// the status shows (XONBATT, XOFFBATT), so a restart shows the same
    /// time. The boot id is the caller's to add.
    pub fn outage_state(&self, now: Mono, now_epoch_ms: i64) -> OutageState {
        let epoch = |t: Mono| {
            let ago_ms = i64::try_from(now.since(t).as_millis()).unwrap_or(i64::MAX);
            now_epoch_ms.saturating_sub(ago_ms).div_euclid(1000)
        };
        let outage = self.outage.as_ref();
        OutageState {
            version: STATE_VERSION,
            boot_id: None,
            outage_start: outage.map(|o| epoch(o.started)),
            outage_start_mono: outage.map(|o| o.started.as_millis()),
            onbattery_at: outage.and_then(|o| o.onbattery_at.map(epoch)),
            onbattery_at_mono: outage.and_then(|o| o.onbattery_at.map(Mono::as_millis)),
            charge_at_start: outage.and_then(|o| o.charge_at_start),
            logins_prohibited: outage.is_some() && self.logins_prohibited,
            shutdown_started: false,
            cumulative_on_battery: self.cumulative.as_secs(),
            transfers: self.transfers,
            last_transfer_on: self.last_transfer_on.map(epoch),
            last_transfer_off: self.last_transfer_off.map(epoch),
            drain: self.estimator.learnt(),
        }
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> &Thresholds {
        &self.th
    }

    /// How long the daemon should wait before the next poll: POLLTIME on
    /// mains, 1 s on battery or while anything is being confirmed.
    pub fn poll_interval(&self) -> Duration {
        if self.fast_poll() {
            FAST_POLL
        } else {
            self.th.poll_interval()
        }
    }

    fn fast_poll(&self) -> bool {
        self.on_battery
            || self.bad_polls > 0
            || self.suspect.is_some()
            || self.pending_count.is_some()
            || self.emergency.0.is_some()
    }

    /// The next instant at which a timer can fire, if any. The daemon should
    /// step (with a fresh reading) no later than this.
    pub fn next_deadline(&self) -> Option<Mono> {
        let mut d: Vec<Mono> = Vec::new();
        if let Some(o) = &self.outage {
            if o.onbattery_at.is_none() {
                d.push(o.started + secs(self.th.on_battery_delay));
            }
            if !self.shutdown_started {
                let base = o.timer_base();
                if self.th.timeout > 0 {
                    d.push(base + secs_u64(u64::from(self.th.timeout) + 1));
                    if self.th.nologon == NoLogon::Timeout && !self.logins_prohibited {
                        d.push(base + secs_u64(u64::from(self.th.timeout) * 9 / 10 + 1));
                    }
                }
                if self.logins_prohibited {
                    d.push(std::cmp::max(
                        base + secs_u64(u64::from(self.th.annoy_delay) + 1),
                        o.last_annoy + secs_u64(u64::from(self.th.annoy) + 1),
                    ));
                }
                for hold in [self.lowbatt, self.loadlimit, self.drop, self.runlimit] {
                    d.extend(hold.deadline());
                }
            }
        }
        if !self.shutdown_started {
            d.extend(self.emergency.deadline());
        }
        if self.replace_battery {
            d.push(self.changeme_due());
        }
        d.into_iter().min()
    }

    fn changeme_due(&self) -> Mono {
        let quiet = self.started_at + CHANGEME_QUIET;
        match self.last_changeme {
            Some(last) => std::cmp::max(quiet, last + CHANGEME_EVERY),
            None => quiet,
        }
    }

    /// The status for the NIS server.
    pub fn snapshot(&self, now: Mono) -> Snapshot {
        let on_batt_time = self
            .outage
            .as_ref()
            .map_or(Duration::ZERO, |o| now.since(o.started));
        let battery = self.last_good.as_ref().map(|(_, r)| &r.battery);
        let runtime = battery.and_then(|b| self.estimator.runtime(b));
        let timeleft = runtime
            .or_else(|| battery.and_then(|b| self.estimator.stated(b)))
            .unwrap_or(Duration::ZERO);
        Snapshot {
            on_battery: self.on_battery,
            onbattery_sent: self
                .outage
                .as_ref()
                .is_some_and(|o| o.onbattery_at.is_some()),
            low_battery: self.lowbatt_now,
            replace_battery: self.replace_battery,
            shutdown_started: self.shutdown_started,
            shutdown_reason: self.shutdown_reason,
            battery_present: self.battery_count.unwrap_or(1) > 0,
            charge_pct: battery.and_then(|b| b.charge_pct),
            runtime,
            timeleft,
            time_on_battery: on_batt_time,
            cumulative_on_battery: self.cumulative + on_batt_time,
            transfers: self.transfers,
            last_transfer_on: self.last_transfer_on,
            last_transfer_off: self.last_transfer_off,
            commlost: self.commlost.is_some(),
            fast_poll: self.fast_poll(),
            logins_prohibited: self.logins_prohibited,
            last_reading: self.last_good.clone(),
        }
    }

    /// The persistent state, without the drain (which moves every poll on
    /// battery and is saved by its own rule): what [`Monitor::state_changed`]
    /// stands for, compared in debug builds to check that every transition
    /// that changes it says so.
    #[cfg(debug_assertions)]
    fn persistent(&self, now: Mono) -> OutageState {
        OutageState {
            drain: None,
            ..self.outage_state(now, 0)
        }
    }

    /// One poll: the reading (or why there is none) taken at `now`.
    /// Returns what the daemon must do, in order.
    pub fn step(&mut self, reading: Result<PowerReading, SourceError>, now: Mono) -> Vec<Effect> {
        #[cfg(debug_assertions)]
        let before = self.persistent(now);
        self.state_changed = false;
        let mut fx = Vec::new();
        let good = self.filter(reading, now, &mut fx);
        self.communication(good.is_some(), now, &mut fx);
        if let Some(r) = &good {
            self.presence(r.battery.count, &mut fx);
            let on_battery = self.believed_on_battery(r);
            if on_battery != self.on_battery {
                if on_battery {
                    self.power_failed(r, now, &mut fx);
                } else {
                    self.mains_back(now, &mut fx);
                }
            }
            self.estimator.update(&r.battery, now);
            // LOWBATT's timer runs on mains too (apcupsd starts it when the
            // bit rises); failing itself needs battery power.
            self.lowbatt_now = !self.dead_battery && is_low(&r.battery);
            self.lowbatt.observe(self.lowbatt_now, now);
        }
        // Blind on battery: neither a charge nor a runtime to go by.
        let trustworthy = good.as_ref().is_some_and(|r| {
            r.battery.charge_pct.is_some() || self.estimator.runtime(&r.battery).is_some()
        });
        if self.on_battery && !trustworthy {
            self.blind_polls = self.blind_polls.saturating_add(1);
        } else {
            self.blind_polls = 0;
        }
        if self.outage.is_some() {
            self.on_battery_checks(good.as_ref(), now, &mut fx);
        } else if let Some(r) = &good {
            self.emergency_check(r, now, &mut fx);
        }
        if let Some(r) = &good {
            self.changeme(&r.battery, now, &mut fx);
        }
        let drain_moved = match (self.estimator.learnt(), self.saved_drain) {
            (Some(d), Some(saved)) => (d.per_hour - saved).abs() > saved * DRAIN_SAVE_STEP,
            (Some(_), None) => true,
            _ => false,
        };
        #[cfg(debug_assertions)]
        debug_assert_eq!(
            self.persistent(now) != before,
            self.state_changed,
            "a transition changed the saved state without saying so, or said so without changing it"
        );
        if self.state_changed || drain_moved {
            self.saved_drain = self.estimator.learnt().map(|d| d.per_hour);
            fx.push(Effect::SaveState);
        }
        if let Some(r) = good {
            self.last_good = Some((now, r));
        }
        fx
    }

    // ----- the reading filter -------------------------------------------

    /// Fix what can be fixed in one battery's figures; impossible values
    /// are dropped field by field. Returns whether the gauge is blank (a 0 %
    /// from a battery that says it holds 0 when full).
    fn sanitize(&mut self, b: &mut Battery, fx: &mut Vec<Effect>) -> bool {
        // Contents above what the battery holds: a little is the same
        // overshoot as a charge above 100, a lot is garbage.
        if let (Some(now), Some(full)) = (b.now, b.full) {
            if full > 0.0 && now > full {
                b.now = (now <= full * CHARGE_CLAMP_MAX / 100.0).then_some(full);
            }
        }
        let zero_full = b.full == Some(0.0);
        if zero_full {
            // Contents against a full of 0 mean nothing (the runtime falls
            // back to the percentage).
            b.now = None;
            b.unit = None;
        }
        let sane = |c: f64| c.is_finite() && (0.0..=CHARGE_CLAMP_MAX).contains(&c);
        let reported = b.charge_pct;
        let chosen = reported
            .filter(|c| sane(*c))
            .or_else(|| b.capacity_pct.filter(|c| sane(*c)));
        match reported {
            Some(c) if !sane(c) => {
                if !self.charge_ignored_logged {
                    self.charge_ignored_logged = true;
                    fx.push(Effect::Explain(Explanation::ChargeIgnored { reported: c }));
                }
            }
            _ => self.charge_ignored_logged = false,
        }
        if let Some(c) = chosen.filter(|c| *c > 100.0) {
            if !self.clamp_logged {
                self.clamp_logged = true;
                fx.push(Effect::Explain(Explanation::ChargeClamped { reported: c }));
            }
        }
        b.charge_pct = chosen.map(|c| c.min(100.0));
        let blank = b.charge_pct == Some(0.0) && zero_full;
        if blank {
            b.charge_pct = None;
            if !self.blank_logged {
                self.blank_logged = true;
                fx.push(Effect::Explain(Explanation::BlankGauge));
            }
        } else {
            self.blank_logged = false;
        }
        blank
    }

    /// The reading if it is believable, `None` if not.
    fn filter(
        &mut self,
        reading: Result<PowerReading, SourceError>,
        now: Mono,
        fx: &mut Vec<Effect>,
    ) -> Option<PowerReading> {
        let verdict = self.judge(reading, now, fx);
        match verdict {
            Ok(r) => {
                self.last_ignored = None;
                self.ignored_logged = false;
                Some(r)
            }
            Err(why) => {
                self.last_ignored = Some(why);
                if !self.ignored_logged {
                    self.ignored_logged = true;
                    fx.push(Effect::Explain(Explanation::ReadingIgnored(why)));
                }
                None
            }
        }
    }

    fn judge(
        &mut self,
        reading: Result<PowerReading, SourceError>,
        now: Mono,
        fx: &mut Vec<Effect>,
    ) -> Result<PowerReading, Ignored> {
        let mut r = match reading {
            Ok(r) => r,
            Err(SourceError::List { .. }) => return Err(Ignored::Unlistable),
            Err(SourceError::NothingFound { .. }) => return Err(Ignored::NothingFound),
        };
        let blank = r.battery.present() && self.sanitize(&mut r.battery, fx);
        let b = &r.battery;
        let charge = b.charge_pct;
        if r.ac_online.is_none()
            && (!b.present() || (b.status == BatteryStatus::Unknown && charge.is_none()))
        {
            return Err(Ignored::NothingUsable);
        }
        let idle = matches!(
            b.status,
            BatteryStatus::Unknown | BatteryStatus::NotCharging
        );
        let empty = charge == Some(0.0) || blank || (charge.is_none() && b.full == Some(0.0));
        let dead = b.present() && idle && empty && r.ac_online == Some(true);
        if b.present() && b.status == BatteryStatus::Unknown && charge == Some(0.0) && !dead {
            return Err(Ignored::UnknownAndEmpty);
        }
        self.dead_battery = dead;
        if dead && !self.dead_logged {
            self.dead_logged = true;
            fx.push(Effect::Explain(Explanation::DeadBattery));
        }
        let (Some(c), Some((t0, last))) = (charge, self.last_good.as_ref()) else {
            self.suspect = None;
            return Ok(r);
        };
        let Some(c0) = last.battery.charge_pct else {
            self.suspect = None;
            return Ok(r);
        };
        let dt = now.since(*t0);
        if self.plausible_change(c0, c, dt) {
            self.suspect = None;
            return Ok(r);
        }
        // A jump: believable only once several readings in a row agree.
        let agreeing = match self.suspect {
            Some(s) if self.plausible_change(s.charge, c, now.since(s.at)) => s.agreeing + 1,
            _ => 1,
        };
        if agreeing >= self.th.jump_confirm_polls {
            self.suspect = None;
            Ok(r)
        } else {
            self.suspect = Some(SuspectJump {
                at: now,
                charge: c,
                agreeing,
            });
            Err(Ignored::Jump {
                from: c0,
                to: c,
                secs: dt.as_secs_f64(),
            })
        }
    }

    fn plausible_change(&self, from: f64, to: f64, dt: Duration) -> bool {
        let allowed = 2.0 + self.th.max_charge_rate_per_min * dt.as_secs_f64() / 60.0;
        (to - from).abs() <= allowed
    }

    /// commfailure once, its log line again every 10 minutes while the
    /// source stays unreadable (as apcupsd's drivers do), commok after.
    fn communication(&mut self, good: bool, now: Mono, fx: &mut Vec<Effect>) {
        if good {
            self.bad_polls = 0;
            if self.commlost.take().is_some() {
                push_event(fx, Event::Commok);
            }
            return;
        }
        self.bad_polls = self.bad_polls.saturating_add(1);
        let why = self.last_ignored.map(|last| {
            Effect::Explain(Explanation::CommLost {
                polls: self.bad_polls,
                last,
            })
        });
        match self.commlost {
            None if self.bad_polls >= self.th.comm_fail_polls => {
                self.commlost = Some(now);
                fx.extend(why);
                push_event(fx, Event::Commfailure);
            }
            Some(logged) if now.since(logged) >= COMMLOST_RELOG => {
                self.commlost = Some(now);
                fx.extend(why);
                fx.extend(Effect::log_event(Event::Commfailure));
            }
            _ => {}
        }
    }

    /// AC online, cross-checked with the battery: an adapter that says
    /// offline while the battery charges is not believed (the previous state
    /// stays); without an adapter file, a discharging battery means on
    /// battery and any other status means mains.
    fn believed_on_battery(&self, r: &PowerReading) -> bool {
        let status = r.battery.status;
        match r.ac_online {
            Some(true) => false,
            Some(false) if status == BatteryStatus::Charging => self.on_battery,
            Some(false) => true,
            // No adapter to ask: a battery that is not discharging is fed
            // by something (an idle ThinkPad pack says Unknown on mains).
            None => status == BatteryStatus::Discharging,
        }
    }

    fn presence(&mut self, count: usize, fx: &mut Vec<Effect>) {
        // The first reading sets the baseline silently, except that an absent
        // battery is compared with "present" (apcupsd pretends the battery was
        // there at start-up, so it reports battdetach but never battattach).
        let known = match self.battery_count {
            Some(known) => known,
            None if count > 0 => {
                self.battery_count = Some(count);
                return;
            }
            None => *self.battery_count.insert(1),
        };
        if count == known {
            self.pending_count = None;
            return;
        }
        // A change must be seen twice in a row.
        if self.pending_count != Some(count) {
            self.pending_count = Some(count);
            return;
        }
        self.pending_count = None;
        let event = if count < known {
            Event::Battdetach
        } else {
            Event::Battattach
        };
        self.battery_count = Some(count);
        push_event(fx, event);
    }

    // ----- transitions --------------------------------------------------

    fn power_failed(&mut self, r: &PowerReading, now: Mono, fx: &mut Vec<Effect>) {
        self.on_battery = true;
        self.state_changed = true;
        self.transfers = self.transfers.saturating_add(1);
        self.last_transfer_on = Some(now);
        self.outage = Some(Outage {
            started: now,
            onbattery_at: None,
            charge_at_start: r.battery.charge_pct,
            last_annoy: now,
            annoy_logged: false,
        });
        self.loadlimit = Hold::default();
        self.drop = Hold::default();
        self.runlimit = Hold::default();
        push_event(fx, Event::Powerout);
    }

    fn mains_back(&mut self, now: Mono, fx: &mut Vec<Effect>) {
        self.on_battery = false;
        let Some(o) = self.outage.take() else {
            return;
        };
        self.state_changed = true;
        if o.onbattery_at.is_some() {
            push_event(fx, Event::Offbattery);
        }
        push_event(fx, Event::Mainsback);
        if self.logins_prohibited {
            self.logins_prohibited = false;
            fx.push(Effect::Log {
                text: ALLOWING_LOGINS,
                severity: Severity::Alert,
            });
        }
        fx.push(Effect::AllowLogins);
        self.cumulative += now.since(o.started);
        self.last_transfer_off = Some(now);
        self.loadlimit = Hold::default();
        self.drop = Hold::default();
        self.runlimit = Hold::default();
        // The outage's shutdown ends with it: a shutdown that was vetoed or
        // failed must not block the next outage's (apcupsd would be gone).
        self.shutdown_started = false;
        self.shutdown_reason = None;
    }

    // ----- on battery -----------------------------------------------------

    fn on_battery_checks(&mut self, good: Option<&PowerReading>, now: Mono, fx: &mut Vec<Effect>) {
        let th = self.th;
        let Some(o) = self.outage.as_mut() else {
            return;
        };
        if o.onbattery_at.is_none()
            && now.whole_secs_since(o.started) >= u64::from(th.on_battery_delay)
        {
            o.onbattery_at = Some(now);
            o.last_annoy = now;
            self.state_changed = true;
            push_event(fx, Event::Onbattery);
        }
        if o.charge_at_start.is_none() {
            o.charge_at_start = good.and_then(|r| r.battery.charge_pct);
            self.state_changed |= o.charge_at_start.is_some();
        }
        if self.shutdown_started {
            return;
        }
        let base = o.timer_base();
        let charge_at_start = o.charge_at_start;
        let elapsed = now.whole_secs_since(base);

        // Blind: apcupsd's slave checks its remote shutdown before anything else.
        if self.blind_polls >= BLIND_POLLS {
            let why = Explanation::Blind {
                polls: self.blind_polls,
                last: self.last_ignored,
            };
            fx.push(Effect::Explain(why));
            self.shutdown(Event::Remotedown, fx);
            return;
        }

        // The shutdown checks, in apcupsd's order.
        let battery = good.map(|r| &r.battery);
        let charge = battery.and_then(|b| b.charge_pct);
        let runtime_min = battery
            .and_then(|b| self.estimator.runtime(b))
            .map(|d| d.as_secs_f64() / 60.0);
        let failing = good.is_some()
            && self.lowbatt_now
            && self.lowbatt.0.is_some_and(|since| now.since(since) >= HOLD);
        let mut fire: Option<(Event, Explanation)> = None;
        if failing {
            let critical = battery.is_some_and(|b| b.capacity_level == CapacityLevel::Critical);
            fire = Some((Event::Failing, Explanation::Failing { charge, critical }));
        }
        if th.timeout > 0 && elapsed > u64::from(th.timeout) && fire.is_none() {
            let why = Explanation::Timeout {
                secs: elapsed,
                timeout: th.timeout,
            };
            fire = Some((Event::Timeout, why));
        }
        if let Some(c) = charge {
            if self
                .loadlimit
                .observe(c <= f64::from(th.battery_level), now)
                && fire.is_none()
            {
                let why = Explanation::Loadlimit {
                    charge: c,
                    limit: th.battery_level,
                };
                fire = Some((Event::Loadlimit, why));
            }
            if th.battery_drop > 0 {
                if let Some(start) = charge_at_start {
                    let limit = start * f64::from(th.battery_drop) / 100.0;
                    if self.drop.observe(c <= limit, now) && fire.is_none() {
                        let why = Explanation::BatteryDrop {
                            charge: c,
                            start,
                            drop: th.battery_drop,
                        };
                        fire = Some((Event::Loadlimit, why));
                    }
                }
            }
        }
        if let Some(rt) = runtime_min {
            if self.runlimit.observe(rt <= f64::from(th.minutes), now) && fire.is_none() {
                let why = Explanation::Runlimit {
                    minutes_left: rt,
                    minutes: th.minutes,
                };
                fire = Some((Event::Runlimit, why));
            }
        } else if good.is_some() {
            self.runlimit = Hold::default();
        }
        if let Some((event, why)) = fire {
            fx.push(Effect::Explain(why));
            self.shutdown(event, fx);
            return;
        }

        // NOLOGON.
        if !self.logins_prohibited {
            let prohibit = match th.nologon {
                NoLogon::Always => true,
                NoLogon::Disable => false,
                NoLogon::Timeout => th.timeout > 0 && elapsed > u64::from(th.timeout) * 9 / 10,
                NoLogon::Percent => {
                    charge.is_some_and(|c| c <= f64::from(th.nologon_percent_limit()))
                }
                NoLogon::Minutes => {
                    runtime_min.is_some_and(|m| m <= f64::from(th.nologon_minutes_limit()))
                }
            };
            if prohibit {
                self.prohibit_logins(fx);
            }
        }

        // annoyme.
        if self.logins_prohibited {
            if let Some(o) = self.outage.as_mut() {
                if elapsed > u64::from(th.annoy_delay)
                    && now.whole_secs_since(o.last_annoy) > u64::from(th.annoy)
                {
                    if !o.annoy_logged {
                        o.annoy_logged = true;
                        fx.extend(Effect::log_event(Event::Annoyme));
                    }
                    fx.push(Effect::Run(Event::Annoyme));
                    o.last_annoy = now;
                }
            }
        }
    }

    fn prohibit_logins(&mut self, fx: &mut Vec<Effect>) {
        self.logins_prohibited = true;
        // Saved with the outage only (on mains there is nothing to resume).
        self.state_changed |= self.outage.is_some();
        fx.push(Effect::ProhibitLogins);
        fx.push(Effect::Log {
            text: LOGINS_PROHIBITED,
            severity: Severity::Alert,
        });
    }

    /// apcupsd's sequence: the event, `Initiating system shutdown!`,
    /// powerfail, nologin (unless NOLOGON disable), doshutdown.
    fn shutdown(&mut self, event: Event, fx: &mut Vec<Effect>) {
        if self.shutdown_started {
            return;
        }
        self.shutdown_started = true;
        self.shutdown_reason = Some(event);
        push_event(fx, event);
        fx.extend(Effect::log_event(Event::Doshutdown));
        fx.push(Effect::CreatePowerfail);
        if self.th.nologon != NoLogon::Disable && !self.logins_prohibited {
            self.prohibit_logins(fx);
        }
        fx.push(Effect::Run(Event::Doshutdown));
    }

    // ----- on mains ---------------------------------------------------------

    fn emergency_check(&mut self, r: &PowerReading, now: Mono, fx: &mut Vec<Effect>) {
        let b = &r.battery;
        let condition = r.ac_online == Some(true)
            && b.present()
            && b.status == BatteryStatus::Discharging
            && is_low(b);
        if self.emergency.observe(condition, now) && !self.shutdown_started {
            let why = Explanation::Emergency {
                charge: b.charge_pct,
            };
            fx.push(Effect::Explain(why));
            self.shutdown(Event::Emergency, fx);
        }
    }

    fn changeme(&mut self, b: &Battery, now: Mono, fx: &mut Vec<Effect>) {
        if !b.present() {
            return;
        }
        let worn = self.th.replace_pct > 0
            && b.wear_pct()
                .is_some_and(|w| w < f64::from(self.th.replace_pct));
        self.replace_battery = b.health_says_replace() || worn || self.dead_battery;
        if self.replace_battery && now >= self.changeme_due() {
            self.last_changeme = Some(now);
            push_event(fx, Event::Changeme);
        }
    }
}

/// LOWBATT for a laptop: the firmware says critical (with several
/// batteries: a discharging one does, and the combined charge agrees), or a
/// discharging battery is empty.
fn is_low(b: &Battery) -> bool {
    let critical = b.capacity_level == CapacityLevel::Critical
        && (b.count <= 1 || b.charge_pct.is_none_or(|c| c <= CRITICAL_AGREES_PCT));
    b.present()
        && (critical || (b.status == BatteryStatus::Discharging && b.charge_pct == Some(0.0)))
}

/// Seconds as a duration, in u64 so that `limit + 1` or `limit * 9` of any
/// u32 setting cannot wrap.
fn secs_u64(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// Log an event (if apcupsd logs it) and run it.
fn push_event(fx: &mut Vec<Effect>, event: Event) {
    fx.extend(Effect::log_event(event));
    fx.push(Effect::Run(event));
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
