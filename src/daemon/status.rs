//! Pure: the monitor's [`Snapshot`] and the config, as the apcupsd status
//! record that the NIS server serves and `laptop-upsd --status` prints.
//!
//! No clock: the caller passes the wall time of the last poll and a way to
//! turn the monitor's monotonic instants into wall times.
//!
//! Clients decide at their first poll which fields exist (apcupsd's net
//! driver reads its capabilities once; apcupsd_exporter and Home Assistant
//! create their sensors from the first reply), so TIMELEFT and LASTXFER are
//! on every reply: TIMELEFT is the monitor's estimate, or its stated one
//! before any drain is measured (see [`crate::power::runtime`]); LASTXFER
//! is [`LAST_TRANSFER_CAUSE`] once a transfer happened.

use chrono::{DateTime, FixedOffset};

use crate::config::apcupsd_conf::ApcupsdConf;
use crate::event::Event;
use crate::nis::flags::StatusFlags;
use crate::nis::status::{LastTransfer, SelfTestResult, UpsStatus};
use crate::power::{Mono, Snapshot};

/// The VERSION line: apcupsd's, so parsers that read it see what they know,
/// followed by who really answers.
pub const VERSION: &str = concat!(
    "3.14.14 (31 May 2016) laptop-upsd ",
    env!("CARGO_PKG_VERSION")
);

/// LASTXFER after a transfer to battery: an unplugged adapter is the line
/// voltage gone, and apcupsd's own drivers report a blackout that way (its
/// USB driver maps APC's line-fail causes "notch, spike, or blackout",
/// "notch or blackout" and "spike or blackout" to `Low line voltage`).
/// Never `Automatic or explicit self test`: an apcupsd slave would then run
/// startselftest instead of powerout.
pub const LAST_TRANSFER_CAUSE: LastTransfer = LastTransfer::LowLineVoltage;

/// What the status needs besides the snapshot.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The configuration (limits, UPS name).
    pub conf: &'a ApcupsdConf,
    /// The UPS name in use (UPSNAME, else the host name).
    pub upsname: &'a str,
    /// This machine's name.
    pub hostname: &'a str,
    /// When the daemon started.
    pub start_time: DateTime<FixedOffset>,
    /// When the last reading was taken.
    pub last_poll: DateTime<FixedOffset>,
    /// The monotonic time of `last_poll`, to place the monitor's instants.
    pub last_poll_mono: Mono,
}

impl Context<'_> {
    fn wall(&self, at: Mono) -> DateTime<FixedOffset> {
        let delta =
            chrono::Duration::milliseconds(at.as_millis() - self.last_poll_mono.as_millis());
        self.last_poll + delta
    }
}

/// apcupsd's STATFLAG bits (facts §5.3) for the monitor's status: the
/// monitor says what holds, this says which bit of the NIS record shows it.
pub fn flags(snapshot: &Snapshot) -> StatusFlags {
    let reason = snapshot.shutdown_reason;
    StatusFlags::PLUGGED
        .with(StatusFlags::ONLINE, !snapshot.on_battery)
        .with(StatusFlags::ONBATT, snapshot.on_battery)
        .with(StatusFlags::BATTLOW, snapshot.low_battery)
        .with(StatusFlags::REPLACEBATT, snapshot.replace_battery)
        .with(StatusFlags::COMMLOST, snapshot.commlost)
        .with(StatusFlags::SHUTDOWN, snapshot.shutdown_started)
        .with(StatusFlags::ONBATT_MSG, snapshot.onbattery_sent)
        .with(StatusFlags::FASTPOLL, snapshot.fast_poll)
        .with(StatusFlags::SHUT_LOAD, reason == Some(Event::Loadlimit))
        .with(StatusFlags::SHUT_BTIME, reason == Some(Event::Timeout))
        .with(StatusFlags::SHUT_LTIME, reason == Some(Event::Runlimit))
        .with(StatusFlags::SHUT_EMERG, reason == Some(Event::Emergency))
        .with(StatusFlags::SHUT_REMOTE, reason == Some(Event::Remotedown))
        .with(StatusFlags::BATTPRESENT, snapshot.battery_present)
}

/// The status record for this snapshot.
pub fn ups_status(snapshot: &Snapshot, ctx: &Context<'_>) -> UpsStatus {
    let battery = snapshot
        .last_reading
        .as_ref()
        .map(|(_, reading)| &reading.battery);
    let text = |s: Option<&String>| {
        s.filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
    };
    UpsStatus {
        date: ctx.last_poll,
        hostname: ctx.hostname.to_string(),
        version: VERSION.to_string(),
        upsname: ctx.upsname.to_string(),
        cable: "Internal Battery".to_string(),
        driver: "laptop-upsd power_supply Driver".to_string(),
        upsmode: "Stand Alone".to_string(),
        start_time: ctx.start_time,
        model: Some(
            text(battery.and_then(|b| b.model.as_ref()))
                .unwrap_or_else(|| "Laptop Battery".to_string()),
        ),
        flags: flags(snapshot),
        bcharge: snapshot.charge_pct,
        timeleft_minutes: Some(snapshot.timeleft.as_secs_f64() / 60.0),
        mbattchg: i64::from(ctx.conf.battery_level),
        mintimel: i64::from(ctx.conf.minutes),
        maxtime: i64::from(ctx.conf.timeout),
        battv: battery.and_then(|b| b.voltage),
        lastxfer: Some(if snapshot.transfers == 0 {
            LastTransfer::None
        } else {
            LAST_TRANSFER_CAUSE
        }),
        numxfers: i64::from(snapshot.transfers),
        xonbatt: snapshot.last_transfer_on.map(|at| ctx.wall(at)),
        tonbatt_secs: snapshot.time_on_battery.as_secs() as i64,
        cumonbatt_secs: snapshot.cumulative_on_battery.as_secs() as i64,
        xoffbatt: snapshot.last_transfer_off.map(|at| ctx.wall(at)),
        selftest: Some(SelfTestResult::None),
        serialno: text(battery.and_then(|b| b.serial.as_ref())),
        nombattv: battery.and_then(|b| b.voltage_min_design),
        ..UpsStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::{Battery, BatteryStatus, CapacityUnit, Monitor, PowerReading, Thresholds};

    fn ctx_status(snapshot: &Snapshot) -> UpsStatus {
        let conf = ApcupsdConf::default();
        let now =
            chrono::DateTime::parse_from_rfc3339("2026-11-22T01:40:22+00:00").unwrap_or_default();
        let ctx = Context {
            conf: &conf,
            upsname: "laptop",
            hostname: "host",
            start_time: now,
            last_poll: now,
            last_poll_mono: Mono::ZERO,
        };
        ups_status(snapshot, &ctx)
    }

    fn reading(ac: bool) -> PowerReading {
        PowerReading {
            ac_online: Some(ac),
            battery: Battery {
                count: 1,
                status: if ac {
                    BatteryStatus::Full
                } else {
                    BatteryStatus::Discharging
                },
                charge_pct: Some(100.0),
                unit: Some(CapacityUnit::WattHours),
                now: Some(50.0),
                full: Some(50.0),
                rate: Some(if ac { 0.0 } else { 25.0 }),
                voltage_min_design: Some(11.4),
                ..Battery::default()
            },
        }
    }

    #[test]
    fn timeleft_and_lastxfer_from_the_first_poll() {
        let mut m = Monitor::new(Thresholds::default(), Mono::ZERO);
        let _ = m.step(Ok(reading(true)), Mono::ZERO);
        let status = ctx_status(&m.snapshot(Mono::ZERO));
        // 50 Wh at the stated 10 W.
        assert_eq!(status.timeleft_minutes, Some(300.0));
        assert_eq!(status.lastxfer, Some(LastTransfer::None));
        assert_eq!(status.nombattv, Some(11.4));
        let _ = m.step(Ok(reading(false)), Mono::from_secs(1));
        let status = ctx_status(&m.snapshot(Mono::from_secs(1)));
        assert_eq!(status.lastxfer, Some(LastTransfer::LowLineVoltage));
        // The battery's own rate before the drain is measured.
        assert_eq!(status.timeleft_minutes, Some(120.0));
    }
}
