//! Kernel uevents for the power_supply subsystem, so a plugged or unplugged
//! adapter wakes the daemon at once instead of at the next poll.
//!
//! A `NETLINK_KOBJECT_UEVENT` socket bound to the kernel's broadcast group.
//! Where netlink is unavailable (containers, seccomp), opening fails and the
//! daemon polls; polling also stays on as the fallback for laptops whose
//! firmware sends no event on plug or unplug.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

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
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &NetlinkAddr::new(0, KERNEL_GROUP),
        )?;
        Ok(Listener { fd })
    }

    /// Read every queued message; true if any was about a power supply.
    pub fn drain_power_supply(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut relevant = false;
        // Bounded: a storm of uevents cannot keep us here forever.
        for _ in 0..256 {
            match recv(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                &mut buf,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) => break,
                Ok(n) => relevant |= is_power_supply(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        relevant
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
}
