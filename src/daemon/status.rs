//! Pure: the monitor's [`Snapshot`] and the config, as the apcupsd status
//! record that the NIS server serves and `laptop-upsd --status` prints.
//!
//! No clock: the caller passes the wall time of the last poll and a way to
//! turn the monitor's monotonic instants into wall times.

use chrono::{DateTime, FixedOffset};

use crate::config::apcupsd_conf::ApcupsdConf;
use crate::nis::status::{LastTransfer, SelfTestResult, UpsStatus};
use crate::power::{Mono, Snapshot};

/// The VERSION line: apcupsd's, so parsers that read it see what they know,
/// followed by who really answers.
pub const VERSION: &str = concat!(
    "3.14.14 (31 May 2016) laptop-upsd ",
    env!("CARGO_PKG_VERSION")
);

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
        flags: snapshot.flags(),
        bcharge: snapshot.charge_pct,
        timeleft_minutes: snapshot.runtime.map(|r| r.as_secs_f64() / 60.0),
        mbattchg: i64::from(ctx.conf.battery_level),
        mintimel: i64::from(ctx.conf.minutes),
        maxtime: i64::from(ctx.conf.timeout),
        battv: battery.and_then(|b| b.voltage),
        lastxfer: (snapshot.transfers == 0).then_some(LastTransfer::None),
        numxfers: i64::from(snapshot.transfers),
        xonbatt: snapshot.last_transfer_on.map(|at| ctx.wall(at)),
        tonbatt_secs: snapshot.time_on_battery.as_secs() as i64,
        cumonbatt_secs: snapshot.cumulative_on_battery.as_secs() as i64,
        xoffbatt: snapshot.last_transfer_off.map(|at| ctx.wall(at)),
        selftest: Some(SelfTestResult::None),
        serialno: text(battery.and_then(|b| b.serial.as_ref())),
        ..UpsStatus::default()
    }
}
