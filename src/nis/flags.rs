//! apcupsd's STATFLAG word and the STATUS text derived from it.
//!
//! The bit values are those of apcupsd 3.14.14's `include/defines.h` (facts
//! §5.3): the low byte is the APC status byte, the rest is apcupsd's own
//! bookkeeping. Slaves and third-party parsers read both the hex word and the
//! STATUS words, so both must match apcupsd exactly. Pure: no I/O.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// The 32-bit STATFLAG word (`0x%08X` in the status reply).
///
/// `Default` is the empty word; a real UPS always has [`StatusFlags::PLUGGED`],
/// and [`StatusFlags::BATTPRESENT`] unless the battery is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusFlags(pub u32);

impl StatusFlags {
    /// Runtime calibration in progress (`UPS_calibration`).
    pub const CALIBRATION: StatusFlags = StatusFlags(0x0000_0001);
    /// SmartTrim (`UPS_trim`).
    pub const TRIM: StatusFlags = StatusFlags(0x0000_0002);
    /// SmartBoost (`UPS_boost`).
    pub const BOOST: StatusFlags = StatusFlags(0x0000_0004);
    /// On line power (`UPS_online`).
    pub const ONLINE: StatusFlags = StatusFlags(0x0000_0008);
    /// On battery (`UPS_onbatt`).
    pub const ONBATT: StatusFlags = StatusFlags(0x0000_0010);
    /// Overload (`UPS_overload`).
    pub const OVERLOAD: StatusFlags = StatusFlags(0x0000_0020);
    /// Low battery (`UPS_battlow`).
    pub const BATTLOW: StatusFlags = StatusFlags(0x0000_0040);
    /// Replace battery (`UPS_replacebatt`).
    pub const REPLACEBATT: StatusFlags = StatusFlags(0x0000_0080);
    /// apcupsd lost communication with the UPS (`UPS_commlost`).
    pub const COMMLOST: StatusFlags = StatusFlags(0x0000_0100);
    /// Shutdown in progress (`UPS_shutdown`); a slave seeing it runs remotedown.
    pub const SHUTDOWN: StatusFlags = StatusFlags(0x0000_0200);
    /// This apcupsd is a network slave (`UPS_slave`).
    pub const SLAVE: StatusFlags = StatusFlags(0x0000_0400);
    /// Slave not responding, legacy (`UPS_slavedown`).
    pub const SLAVEDOWN: StatusFlags = StatusFlags(0x0000_0800);
    /// The onbattery event was already sent (`UPS_onbatt_msg`).
    pub const ONBATT_MSG: StatusFlags = StatusFlags(0x0002_0000);
    /// Fast polling because of a power problem (`UPS_fastpoll`).
    pub const FASTPOLL: StatusFlags = StatusFlags(0x0004_0000);
    /// BCHARGE at or below BATTERYLEVEL was seen (`UPS_shut_load`).
    pub const SHUT_LOAD: StatusFlags = StatusFlags(0x0008_0000);
    /// TIMEOUT expired (`UPS_shut_btime`).
    pub const SHUT_BTIME: StatusFlags = StatusFlags(0x0010_0000);
    /// TIMELEFT at or below MINUTES was seen (`UPS_shut_ltime`).
    pub const SHUT_LTIME: StatusFlags = StatusFlags(0x0020_0000);
    /// Emergency shutdown (`UPS_shut_emerg`).
    pub const SHUT_EMERG: StatusFlags = StatusFlags(0x0040_0000);
    /// Remote shutdown requested (`UPS_shut_remote`).
    pub const SHUT_REMOTE: StatusFlags = StatusFlags(0x0080_0000);
    /// Always set by apcupsd (`UPS_plugged`).
    pub const PLUGGED: StatusFlags = StatusFlags(0x0100_0000);
    /// A battery is connected (`UPS_battpresent`); clear means `NOBATT`.
    pub const BATTPRESENT: StatusFlags = StatusFlags(0x0400_0000);

    /// The empty word.
    pub const fn empty() -> StatusFlags {
        StatusFlags(0)
    }

    /// The raw 32-bit value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// True when every bit of `other` is set in `self`.
    pub const fn contains(self, other: StatusFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the bits of `other` set or cleared.
    #[must_use]
    pub const fn with(self, other: StatusFlags, on: bool) -> StatusFlags {
        if on {
            StatusFlags(self.0 | other.0)
        } else {
            StatusFlags(self.0 & !other.0)
        }
    }

    /// The STATUS value exactly as apcupsd 3.14.14 builds it (facts §5.2).
    ///
    /// Words are appended in the order `CAL TRIM BOOST ONLINE ONBATT OVERLOAD
    /// LOWBATT REPLACEBATT NOBATT SLAVE SLAVEDOWN`, each with a trailing space
    /// except `SLAVEDOWN`; the lot is then replaced by `COMMLOST ` when
    /// communication is lost, and by `SHUTTING DOWN` when a shutdown is in
    /// progress. `NOBATT` means [`StatusFlags::BATTPRESENT`] is clear.
    pub fn status_words(self) -> String {
        if self.contains(StatusFlags::SHUTDOWN) {
            return "SHUTTING DOWN".to_owned();
        }
        if self.contains(StatusFlags::COMMLOST) {
            return "COMMLOST ".to_owned();
        }
        let words: [(bool, &str); 11] = [
            (self.contains(StatusFlags::CALIBRATION), "CAL "),
            (self.contains(StatusFlags::TRIM), "TRIM "),
            (self.contains(StatusFlags::BOOST), "BOOST "),
            (self.contains(StatusFlags::ONLINE), "ONLINE "),
            (self.contains(StatusFlags::ONBATT), "ONBATT "),
            (self.contains(StatusFlags::OVERLOAD), "OVERLOAD "),
            (self.contains(StatusFlags::BATTLOW), "LOWBATT "),
            (self.contains(StatusFlags::REPLACEBATT), "REPLACEBATT "),
            (!self.contains(StatusFlags::BATTPRESENT), "NOBATT "),
            (self.contains(StatusFlags::SLAVE), "SLAVE "),
            (self.contains(StatusFlags::SLAVEDOWN), "SLAVEDOWN"),
        ];
        words
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, word)| *word)
            .collect()
    }
}

impl BitOr for StatusFlags {
    type Output = StatusFlags;
    fn bitor(self, rhs: StatusFlags) -> StatusFlags {
        StatusFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for StatusFlags {
    fn bitor_assign(&mut self, rhs: StatusFlags) {
        self.0 |= rhs.0;
    }
}

/// Formats as apcupsd's STATFLAG value: `0x%08X`.
impl fmt::Display for StatusFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: StatusFlags = StatusFlags(0x0500_0000); // PLUGGED | BATTPRESENT

    fn words(bits: u32) -> String {
        StatusFlags(bits).status_words()
    }

    #[test]
    fn constants_match_defines_h() {
        assert_eq!(StatusFlags::PLUGGED | StatusFlags::BATTPRESENT, BASE);
        assert_eq!(StatusFlags::ONLINE.bits(), 8);
        assert_eq!(StatusFlags::SHUT_REMOTE.bits(), 0x0080_0000);
        assert_eq!(StatusFlags(0x0500_0408).to_string(), "0x05000408");
        assert_eq!(StatusFlags(0xabc).to_string(), "0x00000ABC");
    }

    #[test]
    fn observed_words() {
        assert_eq!(words(0x0500_0008), "ONLINE ");
        assert_eq!(words(0x0500_0408), "ONLINE SLAVE ");
        assert_eq!(words(0x0500_0508), "COMMLOST ");
        // shutdown in progress wins over everything, commlost included
        assert_eq!(words(0x0508_0608), "SHUTTING DOWN");
        assert_eq!(words(0x0584_0610), "SHUTTING DOWN");
        assert_eq!(words(0x0500_0310), "SHUTTING DOWN");
    }

    #[test]
    fn combinations_keep_apcupsd_order() {
        let f = BASE | StatusFlags::ONBATT | StatusFlags::BATTLOW;
        assert_eq!(f.status_words(), "ONBATT LOWBATT ");
        let f = BASE | StatusFlags::TRIM | StatusFlags::ONLINE;
        assert_eq!(f.status_words(), "TRIM ONLINE ");
        let f = BASE | StatusFlags::CALIBRATION | StatusFlags::ONBATT;
        assert_eq!(f.status_words(), "CAL ONBATT ");
        let f = BASE
            | StatusFlags::BOOST
            | StatusFlags::ONLINE
            | StatusFlags::OVERLOAD
            | StatusFlags::REPLACEBATT
            | StatusFlags::SLAVE
            | StatusFlags::SLAVEDOWN;
        assert_eq!(
            f.status_words(),
            "BOOST ONLINE OVERLOAD REPLACEBATT SLAVE SLAVEDOWN"
        );
        assert_eq!(
            StatusFlags(!0x300).status_words(),
            "CAL TRIM BOOST ONLINE ONBATT OVERLOAD LOWBATT REPLACEBATT SLAVE SLAVEDOWN"
        );
    }

    #[test]
    fn missing_battery_reads_nobatt() {
        assert_eq!(words(0x0100_0008), "ONLINE NOBATT ");
        assert_eq!(words(0), "NOBATT ");
        assert_eq!(words(0x0400_0000), "");
        assert_eq!(words(0x0100_0508), "COMMLOST ");
    }

    #[test]
    fn with_sets_and_clears() {
        let f = BASE.with(StatusFlags::ONLINE, true);
        assert!(f.contains(StatusFlags::ONLINE));
        let f = f.with(StatusFlags::ONLINE, false);
        assert_eq!(f, BASE);
        let mut g = StatusFlags::empty();
        g |= StatusFlags::SLAVE;
        assert_eq!(g.bits(), 0x400);
    }
}
