//! The `status` reply: a typed snapshot of the UPS and its rendering as the
//! exact text apcupsd 3.14.14 sends (facts §5.2).
//!
//! [`UpsStatus`] is plain data that laptop-upsd fills on every poll; the NIS
//! server, a STATFILE writer or a test renders it with [`render`]. Key order,
//! which lines are always present, `N/A`, units and number formats follow
//! 3.14.14, because apcupsd slaves find fields with `strstr` and third-party
//! clients (apcaccess, Home Assistant, NUT, netdata) match the strings.
//!
//! Pure: no clock (the caller passes "now" for `END APC`), no hostname lookup,
//! no I/O.

use chrono::{DateTime, FixedOffset, TimeZone};

use super::flags::StatusFlags;

/// The VERSION value of Debian's apcupsd 3.14.14.
pub const APCUPSD_VERSION: &str = "3.14.14 (31 May 2016) debian";

/// The record-format revision in the `APC` header (`STAT_REV`).
pub const STATUS_REVISION: u32 = 1;

/// Our bound on one status line, newline included. apcupsd's fields are short
/// fixed-size strings; clients such as aioapcaccess assume every line fits a
/// one-byte length. Longer values are cut (at a character boundary).
pub const MAX_LINE_LEN: usize = 255;

/// Cause of the last transfer to battery (`LASTXFER`), with apcupsd's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastTransfer {
    /// `No transfers since turnon`
    None,
    /// `Automatic or explicit self test`
    SelfTest,
    /// `Forced by software`
    Forced,
    /// `Low line voltage`
    LowLineVoltage,
    /// `High line voltage`
    HighLineVoltage,
    /// `Unacceptable line voltage changes`
    LineVoltageChanges,
    /// `Line voltage notch or spike`
    NotchOrSpike,
    /// `Input frequency out of range`
    FrequencyOutOfRange,
    /// `UNKNOWN EVENT`
    Unknown,
}

impl LastTransfer {
    /// The exact LASTXFER text (the net driver matches these strings).
    pub fn text(self) -> &'static str {
        match self {
            LastTransfer::None => "No transfers since turnon",
            LastTransfer::SelfTest => "Automatic or explicit self test",
            LastTransfer::Forced => "Forced by software",
            LastTransfer::LowLineVoltage => "Low line voltage",
            LastTransfer::HighLineVoltage => "High line voltage",
            LastTransfer::LineVoltageChanges => "Unacceptable line voltage changes",
            LastTransfer::NotchOrSpike => "Line voltage notch or spike",
            LastTransfer::FrequencyOutOfRange => "Input frequency out of range",
            LastTransfer::Unknown => "UNKNOWN EVENT",
        }
    }
}

/// Result of the last self-test (`SELFTEST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfTestResult {
    /// `NO`: no test run.
    None,
    /// `NG`: failed (apcupsd also uses it for a failure due to overload).
    Failed,
    /// `WN`: warning.
    Warning,
    /// `IP`: in progress.
    InProgress,
    /// `OK`: passed.
    Passed,
    /// `BT`: failed for lack of battery capacity.
    BatteryCapacity,
    /// `??`: unknown.
    Unknown,
}

impl SelfTestResult {
    /// The two-character SELFTEST code.
    pub fn code(self) -> &'static str {
        match self {
            SelfTestResult::None => "NO",
            SelfTestResult::Failed => "NG",
            SelfTestResult::Warning => "WN",
            SelfTestResult::InProgress => "IP",
            SelfTestResult::Passed => "OK",
            SelfTestResult::BatteryCapacity => "BT",
            SelfTestResult::Unknown => "??",
        }
    }
}

/// Line-voltage sensitivity (`SENSE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    /// `Auto Adjust`
    AutoAdjust,
    /// `Low`
    Low,
    /// `Medium`
    Medium,
    /// `High`
    High,
    /// `Unknown`
    Unknown,
}

impl Sensitivity {
    /// The SENSE text.
    pub fn text(self) -> &'static str {
        match self {
            Sensitivity::AutoAdjust => "Auto Adjust",
            Sensitivity::Low => "Low",
            Sensitivity::Medium => "Medium",
            Sensitivity::High => "High",
            Sensitivity::Unknown => "Unknown",
        }
    }
}

/// Alarm delay (`ALARMDEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmDelay {
    /// `30 Seconds`
    ThirtySeconds,
    /// `Low Battery`
    LowBattery,
    /// `No alarm`
    NoAlarm,
    /// `5 Seconds`
    FiveSeconds,
    /// `Always`
    Always,
}

impl AlarmDelay {
    /// The ALARMDEL text.
    pub fn text(self) -> &'static str {
        match self {
            AlarmDelay::ThirtySeconds => "30 Seconds",
            AlarmDelay::LowBattery => "Low Battery",
            AlarmDelay::NoAlarm => "No alarm",
            AlarmDelay::FiveSeconds => "5 Seconds",
            AlarmDelay::Always => "Always",
        }
    }
}

/// What a network slave knows about its master (`MASTERUPD` and `MASTER`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MasterLink {
    /// Last successful poll of the master; `None` prints `No connection to Master`.
    pub last_update: Option<DateTime<FixedOffset>>,
    /// The master as configured in DEVICE, e.g. `127.0.0.1:3551`.
    pub master: String,
}

/// A snapshot of everything the `status` reply shows.
///
/// `Option` fields are lines that appear only when the UPS has that
/// capability (`None` = no line); the others are always printed. Times are
/// local times with their offset, as apcupsd prints them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpsStatus {
    /// Time of the last UPS poll (`DATE`).
    pub date: DateTime<FixedOffset>,
    /// `HOSTNAME`.
    pub hostname: String,
    /// `VERSION`, normally [`APCUPSD_VERSION`].
    pub version: String,
    /// `UPSNAME`; no line when empty.
    pub upsname: String,
    /// `CABLE`, the cable's long name (e.g. `USB Cable`).
    pub cable: String,
    /// `DRIVER` (e.g. `USB UPS Driver`).
    pub driver: String,
    /// `UPSMODE` (e.g. `Stand Alone`).
    pub upsmode: String,
    /// When the daemon started (`STARTTIME`).
    pub start_time: DateTime<FixedOffset>,
    /// `SHARE`, present only when UPSMODE is not disable.
    pub share: Option<String>,
    /// `MASTERUPD` and `MASTER`, for a network slave only.
    pub master: Option<MasterLink>,
    /// `MODEL`.
    pub model: Option<String>,
    /// The STATFLAG word; also gives the STATUS words.
    pub flags: StatusFlags,
    /// `LINEV`, volts.
    pub line_voltage: Option<f64>,
    /// `LOADPCT`, percent.
    pub load_percent: Option<f64>,
    /// `LOADAPNT`, apparent load, percent.
    pub load_apparent_percent: Option<f64>,
    /// `BCHARGE`, battery charge, percent.
    pub bcharge: Option<f64>,
    /// `TIMELEFT`, runtime left, minutes.
    pub timeleft_minutes: Option<f64>,
    /// `MBATTCHG`: shut down at this charge, percent (BATTERYLEVEL).
    pub mbattchg: i64,
    /// `MINTIMEL`: shut down at this runtime, minutes (MINUTES).
    pub mintimel: i64,
    /// `MAXTIME`: shut down after this long on battery, seconds (TIMEOUT).
    pub maxtime: i64,
    /// `MAXLINEV`, volts.
    pub max_line_voltage: Option<f64>,
    /// `MINLINEV`, volts.
    pub min_line_voltage: Option<f64>,
    /// `OUTPUTV`, volts.
    pub output_voltage: Option<f64>,
    /// `SENSE`.
    pub sense: Option<Sensitivity>,
    /// `DWAKE`, seconds.
    pub dwake: Option<i64>,
    /// `DSHUTD`, seconds.
    pub dshutd: Option<i64>,
    /// `DLOWBATT`, minutes.
    pub dlowbatt: Option<i64>,
    /// `LOTRANS`, volts.
    pub lotrans: Option<i64>,
    /// `HITRANS`, volts.
    pub hitrans: Option<i64>,
    /// `RETPCT`, percent.
    pub retpct: Option<i64>,
    /// `ITEMP`, internal temperature, °C.
    pub itemp: Option<f64>,
    /// `ALARMDEL`.
    pub alarmdel: Option<AlarmDelay>,
    /// `BATTV`, battery voltage.
    pub battv: Option<f64>,
    /// `LINEFREQ`, Hz.
    pub linefreq: Option<f64>,
    /// `OUTCURNT`, amps.
    pub outcurnt: Option<f64>,
    /// `LASTXFER`; `None` when the UPS does not report it.
    pub lastxfer: Option<LastTransfer>,
    /// `NUMXFERS`: transfers to battery since start.
    pub numxfers: i64,
    /// `XONBATT`: last transfer to battery (printed when NUMXFERS > 0).
    pub xonbatt: Option<DateTime<FixedOffset>>,
    /// `TONBATT`: seconds on battery now (0 when on mains).
    pub tonbatt_secs: i64,
    /// `CUMONBATT`: total seconds on battery since start.
    pub cumonbatt_secs: i64,
    /// `XOFFBATT`: last transfer off battery; `None` prints `N/A`.
    pub xoffbatt: Option<DateTime<FixedOffset>>,
    /// `LASTSTEST`: time of the last self-test.
    pub last_selftest: Option<DateTime<FixedOffset>>,
    /// `SELFTEST`.
    pub selftest: Option<SelfTestResult>,
    /// `STESTI`, self-test interval as the UPS states it.
    pub stesti: Option<String>,
    /// `DIPSW`.
    pub dipsw: Option<u8>,
    /// `REG1`.
    pub reg1: Option<u8>,
    /// `REG2`.
    pub reg2: Option<u8>,
    /// `REG3`.
    pub reg3: Option<u8>,
    /// `MANDATE`, manufacture date.
    pub mandate: Option<String>,
    /// `SERIALNO`.
    pub serialno: Option<String>,
    /// `BATTDATE`, battery date.
    pub battdate: Option<String>,
    /// `NOMOUTV`, volts.
    pub nomoutv: Option<i64>,
    /// `NOMINV`, volts.
    pub nominv: Option<i64>,
    /// `NOMBATTV`, nominal battery voltage.
    pub nombattv: Option<f64>,
    /// `NOMPOWER`, watts.
    pub nompower: Option<i64>,
    /// `NOMAPNT`, VA.
    pub nomapnt: Option<i64>,
    /// `HUMIDITY`, percent.
    pub humidity: Option<f64>,
    /// `AMBTEMP`, °C.
    pub ambtemp: Option<f64>,
    /// `EXTBATTS`.
    pub extbatts: Option<i64>,
    /// `BADBATTS`.
    pub badbatts: Option<i64>,
    /// `FIRMWARE`.
    pub firmware: Option<String>,
}

/// A rendered status reply: the `APC` header and the lines after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusText {
    header: String,
    lines: Vec<String>,
}

impl StatusText {
    /// Wraps already rendered lines (each ending in `\n`) and computes the header.
    pub fn from_lines(lines: Vec<String>) -> StatusText {
        let bytes: usize = lines.iter().map(String::len).sum();
        let header = header_line(lines.len(), bytes);
        StatusText { header, lines }
    }

    /// `APC      : 001,NNN,BBBB\n`: revision, line count and byte count of the lines.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The lines after the header, each ending in `\n`; one NIS packet each.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Header and lines as one text, as `apcaccess` prints it and STATFILE holds it.
    pub fn to_text(&self) -> String {
        let mut text = self.header.clone();
        for line in &self.lines {
            text.push_str(line);
        }
        text
    }
}

/// The header of a status reply with `lines` lines of `bytes` bytes in all:
/// `APC      : 001,NNN,BBBB\n`.
pub fn header_line(lines: usize, bytes: usize) -> String {
    format!("APC      : {STATUS_REVISION:03},{lines:03},{bytes:04}\n")
}

/// The last line of a status reply: `END APC` and the time of the request.
pub fn end_apc_line(now: &DateTime<FixedOffset>) -> String {
    format!("{:<9}: {}\n", "END APC", date_value(now))
}

/// C's `%.1f` (and friends) for a double, including non-finite values.
fn fixed(value: f64, decimals: usize) -> String {
    if value.is_nan() {
        "nan".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{value:.decimals$}")
    }
}

/// A date as apcupsd prints it: `%Y-%m-%d %H:%M:%S %z` and two spaces.
fn date_value(time: &DateTime<FixedOffset>) -> String {
    format!("{}  ", time.format("%Y-%m-%d %H:%M:%S %z"))
}

/// Builds lines in order; each `add` makes one `KEY     : value\n` line.
struct LineWriter {
    lines: Vec<String>,
}

impl LineWriter {
    fn add(&mut self, key: &str, value: &str) {
        let mut line = format!("{key:<9}: ");
        for c in value.chars() {
            // A newline or NUL from a caller-supplied string must not split the line.
            let c = if c.is_control() { ' ' } else { c };
            if line.len() + c.len_utf8() + 1 > MAX_LINE_LEN {
                break;
            }
            line.push(c);
        }
        line.push('\n');
        self.lines.push(line);
    }

    fn opt(&mut self, key: &str, value: Option<String>) {
        if let Some(value) = value {
            self.add(key, &value);
        }
    }
}

/// Renders `status` as apcupsd 3.14.14's status reply; `now` is the `END APC` time.
///
/// Pure: the same snapshot and `now` always give the same bytes.
pub fn render(status: &UpsStatus, now: &DateTime<FixedOffset>) -> StatusText {
    let s = status;
    let volts = |v: Option<f64>| v.map(|v| format!("{} Volts", fixed(v, 1)));
    let percent = |v: Option<f64>| v.map(|v| format!("{} Percent", fixed(v, 1)));
    let celsius = |v: Option<f64>| v.map(|v| format!("{} C", fixed(v, 1)));
    let hex2 = |v: Option<u8>| v.map(|v| format!("0x{v:02X}"));
    let mut w = LineWriter {
        lines: Vec::with_capacity(64),
    };

    w.add("DATE", &date_value(&s.date));
    w.add("HOSTNAME", &s.hostname);
    w.add("VERSION", &s.version);
    if !s.upsname.is_empty() {
        w.add("UPSNAME", &s.upsname);
    }
    w.add("CABLE", &s.cable);
    w.add("DRIVER", &s.driver);
    w.add("UPSMODE", &s.upsmode);
    w.add("STARTTIME", &date_value(&s.start_time));
    w.opt("SHARE", s.share.clone());
    if let Some(link) = &s.master {
        match &link.last_update {
            Some(t) => w.add("MASTERUPD", &date_value(t)),
            None => w.add("MASTERUPD", "No connection to Master"),
        }
        w.add("MASTER", &link.master);
    }
    w.opt("MODEL", s.model.clone());
    w.add("STATUS", &s.flags.status_words());
    w.opt("LINEV", volts(s.line_voltage));
    w.opt("LOADPCT", percent(s.load_percent));
    w.opt("LOADAPNT", percent(s.load_apparent_percent));
    w.opt("BCHARGE", percent(s.bcharge));
    w.opt(
        "TIMELEFT",
        s.timeleft_minutes
            .map(|v| format!("{} Minutes", fixed(v, 1))),
    );
    w.add("MBATTCHG", &format!("{} Percent", s.mbattchg));
    w.add("MINTIMEL", &format!("{} Minutes", s.mintimel));
    w.add("MAXTIME", &format!("{} Seconds", s.maxtime));
    w.opt("MAXLINEV", volts(s.max_line_voltage));
    w.opt("MINLINEV", volts(s.min_line_voltage));
    w.opt("OUTPUTV", volts(s.output_voltage));
    w.opt("SENSE", s.sense.map(|v| v.text().to_owned()));
    w.opt("DWAKE", s.dwake.map(|v| format!("{v} Seconds")));
    w.opt("DSHUTD", s.dshutd.map(|v| format!("{v} Seconds")));
    w.opt("DLOWBATT", s.dlowbatt.map(|v| format!("{v} Minutes")));
    w.opt("LOTRANS", s.lotrans.map(|v| format!("{v}.0 Volts")));
    w.opt("HITRANS", s.hitrans.map(|v| format!("{v}.0 Volts")));
    w.opt("RETPCT", s.retpct.map(|v| format!("{v}.0 Percent")));
    w.opt("ITEMP", celsius(s.itemp));
    w.opt("ALARMDEL", s.alarmdel.map(|v| v.text().to_owned()));
    w.opt("BATTV", volts(s.battv));
    w.opt(
        "LINEFREQ",
        s.linefreq.map(|v| format!("{} Hz", fixed(v, 1))),
    );
    w.opt(
        "OUTCURNT",
        s.outcurnt.map(|v| format!("{} Amps", fixed(v, 2))),
    );
    w.opt("LASTXFER", s.lastxfer.map(|v| v.text().to_owned()));
    w.add("NUMXFERS", &s.numxfers.to_string());
    if s.numxfers > 0 {
        // apcupsd formats its last_onbatt_time even when it was never set (0).
        let epoch = now.offset().timestamp_opt(0, 0).single();
        if let Some(t) = s.xonbatt.or(epoch) {
            w.add("XONBATT", &date_value(&t));
        }
    }
    w.add("TONBATT", &format!("{} Seconds", s.tonbatt_secs));
    w.add("CUMONBATT", &format!("{} Seconds", s.cumonbatt_secs));
    match &s.xoffbatt {
        Some(t) => w.add("XOFFBATT", &date_value(t)),
        None => w.add("XOFFBATT", "N/A"),
    }
    w.opt("LASTSTEST", s.last_selftest.as_ref().map(date_value));
    w.opt("SELFTEST", s.selftest.map(|v| v.code().to_owned()));
    w.opt("STESTI", s.stesti.clone());
    w.add("STATFLAG", &s.flags.to_string());
    w.opt("DIPSW", hex2(s.dipsw));
    w.opt("REG1", hex2(s.reg1));
    w.opt("REG2", hex2(s.reg2));
    w.opt("REG3", hex2(s.reg3));
    w.opt("MANDATE", s.mandate.clone());
    w.opt("SERIALNO", s.serialno.clone());
    w.opt("BATTDATE", s.battdate.clone());
    w.opt("NOMOUTV", s.nomoutv.map(|v| format!("{v} Volts")));
    w.opt("NOMINV", s.nominv.map(|v| format!("{v} Volts")));
    w.opt("NOMBATTV", volts(s.nombattv));
    w.opt("NOMPOWER", s.nompower.map(|v| format!("{v} Watts")));
    w.opt("NOMAPNT", s.nomapnt.map(|v| format!("{v} VA")));
    w.opt("HUMIDITY", percent(s.humidity));
    w.opt("AMBTEMP", celsius(s.ambtemp));
    w.opt("EXTBATTS", s.extbatts.map(|v| v.to_string()));
    w.opt("BADBATTS", s.badbatts.map(|v| v.to_string()));
    w.opt("FIRMWARE", s.firmware.clone());
    w.lines.push(end_apc_line(now));

    StatusText::from_lines(w.lines)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z").unwrap()
    }

    /// The slave whose reply is in shared/docs/nis-capture-apcupsd-3.14.14.txt.
    pub(crate) fn captured_slave() -> UpsStatus {
        UpsStatus {
            date: at("2026-11-22 01:40:22 +0000"),
            hostname: "vm".into(),
            version: APCUPSD_VERSION.into(),
            upsname: "laptopbat".into(),
            cable: "Ethernet Link".into(),
            driver: "NETWORK UPS Driver".into(),
            upsmode: "Stand Alone".into(),
            start_time: at("2026-11-22 01:40:16 +0000"),
            master: Some(MasterLink {
                last_update: Some(at("2026-11-22 01:40:22 +0000")),
                master: "127.0.0.1:47310".into(),
            }),
            model: Some("Fake Laptop Battery".into()),
            flags: StatusFlags(0x0500_0408),
            load_percent: Some(10.0),
            bcharge: Some(100.0),
            timeleft_minutes: Some(120.0),
            mbattchg: 5,
            mintimel: 3,
            maxtime: 0,
            battv: Some(12.6),
            lastxfer: Some(LastTransfer::None),
            selftest: Some(SelfTestResult::None),
            ..UpsStatus::default()
        }
    }

    /// The status packets of the capture, payloads in order (header first).
    pub(crate) const CAPTURED_STATUS: [&str; 28] = [
        "APC      : 001,027,0694\n",
        "DATE     : 2026-11-22 01:40:22 +0000  \n",
        "HOSTNAME : vm\n",
        "VERSION  : 3.14.14 (31 May 2016) debian\n",
        "UPSNAME  : laptopbat\n",
        "CABLE    : Ethernet Link\n",
        "DRIVER   : NETWORK UPS Driver\n",
        "UPSMODE  : Stand Alone\n",
        "STARTTIME: 2026-11-22 01:40:16 +0000  \n",
        "MASTERUPD: 2026-11-22 01:40:22 +0000  \n",
        "MASTER   : 127.0.0.1:47310\n",
        "MODEL    : Fake Laptop Battery\n",
        "STATUS   : ONLINE SLAVE \n",
        "LOADPCT  : 10.0 Percent\n",
        "BCHARGE  : 100.0 Percent\n",
        "TIMELEFT : 120.0 Minutes\n",
        "MBATTCHG : 5 Percent\n",
        "MINTIMEL : 3 Minutes\n",
        "MAXTIME  : 0 Seconds\n",
        "BATTV    : 12.6 Volts\n",
        "LASTXFER : No transfers since turnon\n",
        "NUMXFERS : 0\n",
        "TONBATT  : 0 Seconds\n",
        "CUMONBATT: 0 Seconds\n",
        "XOFFBATT : N/A\n",
        "SELFTEST : NO\n",
        "STATFLAG : 0x05000408\n",
        "END APC  : 2026-11-22 01:40:24 +0000  \n",
    ];

    #[test]
    fn capture_file_agrees_with_the_constant() {
        // Re-read the capture so the constant cannot drift from the evidence.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/docs/nis-capture-apcupsd-3.14.14.txt"
        );
        let Ok(capture) = std::fs::read_to_string(path) else {
            return; // shared/ is not beside every checkout; the constant stands alone
        };
        let payloads: Vec<String> = capture
            .lines()
            .skip_while(|l| *l != ">> b'status'")
            .skip(1)
            .take_while(|l| l.starts_with("<< len=") && !l.contains("len=0 "))
            .map(|l| {
                let start = l.find("b'").unwrap() + 2;
                l[start..l.len() - 1].replace("\\n", "\n")
            })
            .collect();
        assert_eq!(payloads, CAPTURED_STATUS);
    }

    #[test]
    fn renders_the_capture_byte_for_byte() {
        let text = render(&captured_slave(), &at("2026-11-22 01:40:24 +0000"));
        assert_eq!(text.header(), CAPTURED_STATUS[0]);
        let lines: Vec<&str> = text.lines().iter().map(String::as_str).collect();
        assert_eq!(lines, &CAPTURED_STATUS[1..]);
        assert_eq!(text.to_text(), CAPTURED_STATUS.concat());
    }

    #[test]
    fn header_counts_are_the_real_counts() {
        let mut s = captured_slave();
        s.hostname = "a-much-longer-hostname.example.org".into();
        s.itemp = Some(31.25);
        s.serialno = Some("BAT0-1234".into());
        let text = render(&s, &at("2026-11-22 01:40:24 +0000"));
        let bytes: usize = text.lines().iter().map(String::len).sum();
        let expected = format!("APC      : 001,{:03},{:04}\n", text.lines().len(), bytes);
        assert_eq!(text.header(), expected);
        assert_eq!(text.header().len(), 24);
        assert!(text
            .lines()
            .iter()
            .all(|l| l.ends_with('\n') && l.len() >= 11));
    }

    #[test]
    fn every_line_in_3_14_14_order_with_its_format() {
        let t = at("2026-01-02 03:04:05 -0500");
        let s = UpsStatus {
            date: t,
            hostname: "h".into(),
            version: APCUPSD_VERSION.into(),
            upsname: String::new(),
            cable: "USB Cable".into(),
            driver: "USB UPS Driver".into(),
            upsmode: "Stand Alone".into(),
            start_time: t,
            share: Some("NetworkUPS".into()),
            master: Some(MasterLink {
                last_update: None,
                master: "m:3551".into(),
            }),
            model: Some("Back-UPS".into()),
            flags: StatusFlags(0x0500_0010),
            line_voltage: Some(0.0),
            load_percent: Some(7.0),
            load_apparent_percent: Some(8.04),
            bcharge: Some(55.55),
            timeleft_minutes: Some(1.0),
            mbattchg: 10,
            mintimel: 5,
            maxtime: 300,
            max_line_voltage: Some(240.0),
            min_line_voltage: Some(200.0),
            output_voltage: Some(230.0),
            sense: Some(Sensitivity::Medium),
            dwake: Some(0),
            dshutd: Some(90),
            dlowbatt: Some(2),
            lotrans: Some(196),
            hitrans: Some(253),
            retpct: Some(15),
            itemp: Some(29.25),
            alarmdel: Some(AlarmDelay::ThirtySeconds),
            battv: Some(13.5),
            linefreq: Some(50.0),
            outcurnt: Some(0.5),
            lastxfer: Some(LastTransfer::LowLineVoltage),
            numxfers: 2,
            xonbatt: Some(t),
            tonbatt_secs: 42,
            cumonbatt_secs: 100,
            xoffbatt: Some(t),
            last_selftest: Some(t),
            selftest: Some(SelfTestResult::Passed),
            stesti: Some("336".into()),
            dipsw: Some(0x0a),
            reg1: Some(0),
            reg2: Some(0xff),
            reg3: Some(1),
            mandate: Some("2020-01-01".into()),
            serialno: Some("SN1".into()),
            battdate: Some("2021-02-03".into()),
            nomoutv: Some(230),
            nominv: Some(230),
            nombattv: Some(12.0),
            nompower: Some(865),
            nomapnt: Some(1500),
            humidity: Some(40.0),
            ambtemp: Some(21.5),
            extbatts: Some(0),
            badbatts: Some(0),
            firmware: Some("925.T2".into()),
        };
        let d = "2026-01-02 03:04:05 -0500  ";
        let expected = [
            format!("DATE     : {d}"),
            "HOSTNAME : h".into(),
            "VERSION  : 3.14.14 (31 May 2016) debian".into(),
            "CABLE    : USB Cable".into(),
            "DRIVER   : USB UPS Driver".into(),
            "UPSMODE  : Stand Alone".into(),
            format!("STARTTIME: {d}"),
            "SHARE    : NetworkUPS".into(),
            "MASTERUPD: No connection to Master".into(),
            "MASTER   : m:3551".into(),
            "MODEL    : Back-UPS".into(),
            "STATUS   : ONBATT ".into(),
            "LINEV    : 0.0 Volts".into(),
            "LOADPCT  : 7.0 Percent".into(),
            "LOADAPNT : 8.0 Percent".into(),
            "BCHARGE  : 55.5 Percent".into(),
            "TIMELEFT : 1.0 Minutes".into(),
            "MBATTCHG : 10 Percent".into(),
            "MINTIMEL : 5 Minutes".into(),
            "MAXTIME  : 300 Seconds".into(),
            "MAXLINEV : 240.0 Volts".into(),
            "MINLINEV : 200.0 Volts".into(),
            "OUTPUTV  : 230.0 Volts".into(),
            "SENSE    : Medium".into(),
            "DWAKE    : 0 Seconds".into(),
            "DSHUTD   : 90 Seconds".into(),
            "DLOWBATT : 2 Minutes".into(),
            "LOTRANS  : 196.0 Volts".into(),
            "HITRANS  : 253.0 Volts".into(),
            "RETPCT   : 15.0 Percent".into(),
            "ITEMP    : 29.2 C".into(),
            "ALARMDEL : 30 Seconds".into(),
            "BATTV    : 13.5 Volts".into(),
            "LINEFREQ : 50.0 Hz".into(),
            "OUTCURNT : 0.50 Amps".into(),
            "LASTXFER : Low line voltage".into(),
            "NUMXFERS : 2".into(),
            format!("XONBATT  : {d}"),
            "TONBATT  : 42 Seconds".into(),
            "CUMONBATT: 100 Seconds".into(),
            format!("XOFFBATT : {d}"),
            format!("LASTSTEST: {d}"),
            "SELFTEST : OK".into(),
            "STESTI   : 336".into(),
            "STATFLAG : 0x05000010".into(),
            "DIPSW    : 0x0A".into(),
            "REG1     : 0x00".into(),
            "REG2     : 0xFF".into(),
            "REG3     : 0x01".into(),
            "MANDATE  : 2020-01-01".into(),
            "SERIALNO : SN1".into(),
            "BATTDATE : 2021-02-03".into(),
            "NOMOUTV  : 230 Volts".into(),
            "NOMINV   : 230 Volts".into(),
            "NOMBATTV : 12.0 Volts".into(),
            "NOMPOWER : 865 Watts".into(),
            "NOMAPNT  : 1500 VA".into(),
            "HUMIDITY : 40.0 Percent".into(),
            "AMBTEMP  : 21.5 C".into(),
            "EXTBATTS : 0".into(),
            "BADBATTS : 0".into(),
            "FIRMWARE : 925.T2".into(),
            format!("END APC  : {d}"),
        ];
        let text = render(&s, &t);
        let got: Vec<&str> = text
            .lines()
            .iter()
            .map(|l| l.trim_end_matches('\n'))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn numbers_follow_c_printf() {
        assert_eq!(fixed(0.25, 1), "0.2"); // ties to even on the exact binary value, as glibc
        assert_eq!(fixed(0.35, 1), "0.3"); // 0.35 is 0.34999… in binary
        assert_eq!(fixed(99.95, 1), "100.0"); // 99.95 is 99.950000000000003 in binary
        assert_eq!(fixed(-0.0, 1), "-0.0");
        assert_eq!(fixed(f64::NAN, 1), "nan");
        assert_eq!(fixed(f64::NEG_INFINITY, 1), "-inf");
        assert_eq!(fixed(1.005, 2), "1.00");
    }

    #[test]
    fn caller_strings_cannot_break_lines() {
        let mut s = captured_slave();
        s.hostname = "evil\nSTATFLAG : 0x00000000\0".into();
        s.model = Some("é".repeat(400));
        let text = render(&s, &s.date);
        assert!(text.lines().iter().all(|l| l.len() <= MAX_LINE_LEN));
        assert!(text.lines().iter().all(|l| l.matches('\n').count() == 1));
        assert_eq!(text.lines()[1], "HOSTNAME : evil STATFLAG : 0x00000000 \n");
    }

    #[test]
    fn slave_never_connected_and_transfers_without_a_time() {
        let mut s = captured_slave();
        s.master = Some(MasterLink::default());
        s.numxfers = 1;
        let text = render(&s, &at("2026-11-22 01:40:24 +0100"));
        let all = text.to_text();
        assert!(all.contains("MASTERUPD: No connection to Master\nMASTER   : \n"));
        assert!(all.contains("XONBATT  : 1970-01-01 01:00:00 +0100  \n"));
    }
}
