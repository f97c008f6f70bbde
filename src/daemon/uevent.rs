//! Kernel uevents for the power_supply subsystem, so a plugged or unplugged
//! adapter wakes the daemon at once instead of at the next poll.
//!
//! A `NETLINK_KOBJECT_UEVENT` socket bound to the kernel's broadcast group.
//! Where netlink is unavailable (containers, seccomp), opening fails and the
//! daemon polls; polling also stays on as the fallback for laptops whose
//! firmware sends no event on plug or unplug.
//!
//! Only the kernel's own messages count (sender port id 0): any local
//! process can send to a netlink multicast group it can bind. And however
//! many arrive, the supplies are re-read at most once per
//! [`MIN_REREAD_INTERVAL`], the first at once ([`Coalescer`]), so a storm
//! costs one read per 100 ms and detection latency stays a few milliseconds.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    bind, recvfrom, socket, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

/// The shortest time between two re-reads that uevents cause.
pub const MIN_REREAD_INTERVAL: Duration = Duration::from_millis(100);

/// The kernel's uevent multicast group.
const KERNEL_GROUP: u32 = 1;

/// An open uevent socket.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// Open and bind the socket (non-blocking).
    pub fn open() -> nix::Result<Listener> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, KERNEL_GROUP))?;
        Ok(Listener { fd })
    }

    /// Read every queued message; true if any was the kernel's, about a
    /// power supply.
    pub fn drain_power_supply(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut relevant = false;
        // Bounded: a storm of uevents cannot keep us here forever.
        for _ in 0..256 {
            match recvfrom::<NetlinkAddr>(self.fd.as_raw_fd(), &mut buf) {
                Ok((0, _)) => break,
                Ok((n, sender)) => {
                    relevant |= from_kernel(sender.as_ref()) && is_power_supply(&buf[..n]);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        relevant
    }
}

/// Whether a message came from the kernel: netlink port id 0. A process's
/// messages carry its own port id, which the kernel fills in.
pub fn from_kernel(sender: Option<&NetlinkAddr>) -> bool {
    sender.is_some_and(|addr| addr.pid() == 0)
}

/// Turns a stream of uevents into re-reads at most [`MIN_REREAD_INTERVAL`]
/// apart: the first at once, later ones when the interval has passed.
/// Pure: the caller passes the clock in.
#[derive(Debug, Default, Clone)]
pub struct Coalescer {
    last_reread: Option<Instant>,
    pending: bool,
}

impl Coalescer {
    /// A power_supply uevent arrived at `now`: when to re-read.
    pub fn uevent(&mut self, now: Instant) -> Instant {
        self.pending = true;
        self.due(now)
    }

    /// When the pending re-read is due, if one is.
    pub fn pending(&self, now: Instant) -> Option<Instant> {
        self.pending.then(|| self.due(now))
    }

    fn due(&self, now: Instant) -> Instant {
        match self.last_reread {
            Some(last) => (last + MIN_REREAD_INTERVAL).max(now),
            None => now,
        }
    }

    /// The supplies were re-read at `now` (for whatever reason).
    pub fn reread(&mut self, now: Instant) {
        self.last_reread = Some(now);
        self.pending = false;
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether a uevent message (NUL-separated `KEY=value` fields after a
/// header) is for the power_supply subsystem.
pub fn is_power_supply(message: &[u8]) -> bool {
    message
        .split(|b| *b == 0)
        .any(|field| field == b"SUBSYSTEM=power_supply")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_power_supply_messages() {
        let msg = b"change@/devices/LNXSYSTM:00/ACPI0003:00/power_supply/AC\0ACTION=change\0SUBSYSTEM=power_supply\0POWER_SUPPLY_ONLINE=0\0";
        assert!(is_power_supply(msg));
        assert!(!is_power_supply(b"add@/devices/x\0SUBSYSTEM=usb\0"));
        assert!(!is_power_supply(b""));
    }

    #[test]
    fn only_the_kernel_is_believed() {
        assert!(from_kernel(Some(&NetlinkAddr::new(0, KERNEL_GROUP))));
        assert!(!from_kernel(Some(&NetlinkAddr::new(4242, KERNEL_GROUP))));
        assert!(!from_kernel(None));
    }

    #[test]
    fn a_storm_is_one_reread_per_interval_the_first_at_once() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        assert_eq!(c.pending(t0), None);
        assert_eq!(c.uevent(t0), t0, "the first re-read is immediate");
        c.reread(t0);
        assert_eq!(c.pending(t0), None);
        // 1000 messages in the next 50 ms: one re-read, due 100 ms after the last.
        let mut due = t0;
        for i in 1..=1000u64 {
            due = c.uevent(t0 + Duration::from_micros(50 * i));
        }
        assert_eq!(due, t0 + MIN_REREAD_INTERVAL);
        assert_eq!(c.pending(t0 + Duration::from_millis(60)), Some(due));
        c.reread(due);
        // Quiet for a second: the next uevent is served at once again.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(c.uevent(later), later);
    }
}
