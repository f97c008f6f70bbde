//! Power-supply uevents, so a plugged or unplugged adapter wakes the daemon
//! at once instead of at the next poll, and nothing else wakes it.
//!
//! Where they come from. When udevd runs (`/run/udev/control` exists, the
//! test sd-device makes), we listen on udev's monitor group, as libudev and
//! sd-device do: udevd re-broadcasts every kernel uevent there after its
//! rules ran, with a binary header that carries a hash of the subsystem, so
//! a socket filter in the kernel ([`udev_filter`], libudev's) drops every
//! message that is not about a power supply before it can wake us. Without
//! udevd (containers, minimal systems) we listen on the kernel's group,
//! whose messages are plain `KEY=value` text; there a longer filter
//! ([`kernel_filter`]) looks for `SUBSYSTEM=` in the first
//! [`KERNEL_FILTER_WINDOW`] bytes and drops what names another subsystem.
//! Either way the other subsystems' uevents (network devices, block
//! devices, cgroups, a busy machine makes many) never wake the main loop.
//!
//! Whom we believe: any local process can send to a netlink multicast
//! group it can bind. On the kernel group only the kernel's own messages
//! count (sender port id 0). On udev's group only what libudev accepts: a
//! sender that is not the kernel, with credentials of uid 0 (SO_PASSCRED),
//! the `libudev` header with its magic, and properties inside the message.
//! The filters only save wake-ups; these checks in user space decide.
//!
//! Where netlink is unavailable (seccomp, an odd container), opening fails
//! and the daemon polls; polling also stays on as the fallback for laptops
//! whose firmware sends no event on plug or unplug. However many uevents
//! arrive, the supplies are re-read at most once per [`MIN_REREAD_INTERVAL`],
//! the first at once ([`Coalescer`]), so a storm costs one read per 100 ms
//! and detection latency stays a few milliseconds.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    NetlinkAddr, SockFlag, SockProtocol, SockType,
};

/// The shortest time between two re-reads that uevents cause.
pub const MIN_REREAD_INTERVAL: Duration = Duration::from_millis(100);

/// The subsystem we listen for.
pub const SUBSYSTEM: &str = "power_supply";

/// Where udevd's control socket lives while it runs (sd-device's test).
pub const UDEV_CONTROL: &str = "/run/udev/control";

/// The magic of libudev's message header, in network order on the wire.
pub const UDEV_MAGIC: u32 = 0xfeed_cafe;

/// How far into a kernel uevent [`kernel_filter`] looks for `SUBSYSTEM=`
/// (where `\0SUBSYSTEM=` may start).
/// The kernel writes it third, after ACTION and DEVPATH, so it sits within
/// about twice the device path's length; a message where it lies further
/// out is passed to user space, which decides.
pub const KERNEL_FILTER_WINDOW: usize = 512;

/// A `NETLINK_KOBJECT_UEVENT` multicast group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The kernel's own uevents (group 1).
    Kernel,
    /// udevd's re-broadcast, libudev's format (group 2).
    Udev,
}

impl Group {
    /// udev's group when udevd runs here, else the kernel's.
    pub fn for_this_machine() -> Group {
        if Path::new(UDEV_CONTROL).exists() {
            Group::Udev
        } else {
            Group::Kernel
        }
    }

    /// The multicast group's number (its bit in `nl_groups`).
    pub fn number(self) -> u32 {
        match self {
            Group::Kernel => 1,
            Group::Udev => 2,
        }
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Group::Kernel => "the kernel's uevents",
            Group::Udev => "udev's uevents",
        })
    }
}

/// An open uevent socket.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    group: Group,
    filtered: bool,
}

impl Listener {
    /// Open the socket on the group [`Group::for_this_machine`] picks.
    pub fn open() -> nix::Result<Listener> {
        Self::open_group(Group::for_this_machine())
    }

    /// Open and bind a non-blocking socket on `group`, with its socket
    /// filter. A filter the kernel refuses is not fatal: every message is
    /// then judged in user space.
    pub fn open_group(group: Group) -> nix::Result<Listener> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        let program = match group {
            Group::Kernel => kernel_filter(),
            Group::Udev => udev_filter(),
        };
        let filtered = attach_filter(&fd, &program).is_ok();
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, group.number()))?;
        Ok(Listener {
            fd,
            group,
            filtered,
        })
    }

    /// The group it listens on.
    pub fn group(&self) -> Group {
        self.group
    }

    /// Whether the kernel accepted the socket filter.
    pub fn filtered(&self) -> bool {
        self.filtered
    }

    /// Read every queued message; true if any was one we believe, about a
    /// power supply.
    pub fn drain_power_supply(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut relevant = false;
        // Bounded: a storm of uevents cannot keep us here forever.
        for _ in 0..256 {
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (len, sender, uid, truncated) = match recvmsg::<NetlinkAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) {
                Ok(msg) => {
                    let uid = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmCredentials(cred) => Some(cred.uid()),
                            _ => None,
                        })
                    });
                    (
                        msg.bytes,
                        msg.address,
                        uid,
                        msg.flags.contains(MsgFlags::MSG_TRUNC),
                    )
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            };
            if len == 0 {
                break;
            }
            let message = &buf[..len.min(buf.len())];
            relevant |= !truncated && believe(self.group, sender.as_ref(), uid, message);
        }
        relevant
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether a message received on `group` is one we believe and is about a
/// power supply: the rules of the module doc. Pure.
pub fn believe(
    group: Group,
    sender: Option<&NetlinkAddr>,
    uid: Option<u32>,
    message: &[u8],
) -> bool {
    let Some(sender) = sender else {
        return false;
    };
    // A unicast message (no group) is never a uevent broadcast.
    if sender.groups() & group.number() == 0 || uid != Some(0) {
        return false;
    }
    match group {
        Group::Kernel => from_kernel(Some(sender)) && is_power_supply(message),
        Group::Udev => sender.pid() != 0 && udev_properties(message).is_some_and(is_power_supply),
    }
}

/// Whether a message came from the kernel: netlink port id 0. A process's
/// messages carry its own port id, which the kernel fills in.
pub fn from_kernel(sender: Option<&NetlinkAddr>) -> bool {
    sender.is_some_and(|addr| addr.pid() == 0)
}

/// The properties of a message in libudev's format (`libudev\0`, the magic,
/// the header's sizes), or `None` when it is not one.
pub fn udev_properties(message: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<[u8; 4]> { message.get(at..at + 4)?.try_into().ok() };
    if !message.starts_with(b"libudev\0") || u32::from_be_bytes(word(8)?) != UDEV_MAGIC {
        return None;
    }
    // Host order, as libudev writes and reads it.
    let offset = usize::try_from(u32::from_ne_bytes(word(16)?)).ok()?;
    if offset.checked_add(32)? > message.len() {
        return None;
    }
    message.get(offset..)
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

/// Whether uevent properties (NUL-separated `KEY=value` fields, after a
/// header) are for the power_supply subsystem.
pub fn is_power_supply(message: &[u8]) -> bool {
    message
        .split(|b| *b == 0)
        .any(|field| field == b"SUBSYSTEM=power_supply")
}

/// MurmurHash2 (32 bits, seed 0) of a string, in host byte order: what
/// libudev and udevd put in a message header to name its subsystem.
pub fn murmur2(text: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h = u32::try_from(text.len()).unwrap_or(u32::MAX);
    let mut chunks = text.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Operation.
    pub code: u16,
    /// Forward jump if true.
    pub jt: u8,
    /// Forward jump if false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

// The classic BPF opcodes we use (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const LD_W_IND: u16 = 0x40;
const LD_H_IND: u16 = 0x48;
const LD_B_IND: u16 = 0x50;
const LD_W_LEN: u16 = 0x80;
const LD_MEM: u16 = 0x60;
const ST: u16 = 0x02;
const LDX_IMM: u16 = 0x01;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
/// Accept the whole message.
const PASS: u32 = 0xffff_ffff;
/// Drop it.
const DROP: u32 = 0;

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// libudev's filter for one subsystem: a message with the magic passes
/// when its subsystem hash is [`SUBSYSTEM`]'s; everything else is dropped
/// (libudev passes a message without the magic on to user space, which then
/// ignores it on this group; dropping it spares the wake-up).
pub fn udev_filter() -> Vec<Insn> {
    vec![
        stmt(LD_W_ABS, 8),
        jump(JEQ_K, UDEV_MAGIC, 1, 0),
        stmt(RET_K, DROP),
        stmt(LD_W_ABS, 24),
        jump(JEQ_K, murmur2(SUBSYSTEM.as_bytes()), 0, 1),
        stmt(RET_K, PASS),
        stmt(RET_K, DROP),
    ]
}

/// Positions per length check in [`kernel_filter`].
const BLOCK: usize = 8;

/// A filter for the kernel's plain-text uevents: find the first
/// `\0SUBSYSTEM=` in the first [`KERNEL_FILTER_WINDOW`] bytes and pass the
/// message only if `power_supply\0` follows. Classic BPF has no loops, so
/// the scan is unrolled, one position after the other; it may not read past
/// the message, so each block of positions first checks the length. When it
/// cannot decide (a short message, `\0SUB` that is not `\0SUBSYSTEM=`, no
/// `SUBSYSTEM=` in the window) it passes the message: user space decides.
pub fn kernel_filter() -> Vec<Insn> {
    // "\0SUBSYSTEM=" then "power_supply\0": 24 bytes from the position.
    const SPAN: u32 = 24;
    let window = u32::try_from(KERNEL_FILTER_WINDOW).unwrap_or(512);
    let block = u32::try_from(BLOCK).unwrap_or(8);
    let mut prog = vec![stmt(LD_W_LEN, 0), stmt(ST, 0)];
    // Jumps to the shared tails are patched once their place is known.
    let mut to_pass = Vec::new();
    let mut to_verify = Vec::new();
    let mut start = 0;
    while start < window {
        // Every position of this block in bounds, else let user space see it.
        prog.push(stmt(LD_MEM, 0));
        prog.push(jump(JGE_K, start + block - 1 + SPAN, 1, 0));
        to_pass.push(prog.len());
        prog.push(stmt(JA, 0));
        for at in start..start + block {
            prog.push(stmt(LD_W_ABS, at));
            // "\0SUB"?
            prog.push(jump(JEQ_K, 0x0053_5542, 0, 2));
            prog.push(stmt(LDX_IMM, at));
            to_verify.push(prog.len());
            prog.push(stmt(JA, 0));
        }
        start += block;
    }
    // Nothing in the window: user space decides.
    let pass_at = prog.len();
    prog.push(stmt(RET_K, PASS));
    // X = where "\0SUB" starts: "SYST", "EM", "=", then the value.
    let verify_at = prog.len();
    let checks: [(u16, u32, u32); 7] = [
        (LD_W_IND, 4, u32::from_be_bytes(*b"SYST")),
        (LD_H_IND, 8, u32::from(u16::from_be_bytes(*b"EM"))),
        (LD_B_IND, 10, u32::from(b'=')),
        (LD_W_IND, 11, u32::from_be_bytes(*b"powe")),
        (LD_W_IND, 15, u32::from_be_bytes(*b"r_su")),
        (LD_W_IND, 19, u32::from_be_bytes(*b"pply")),
        (LD_B_IND, 23, 0),
    ];
    let checks_len = checks.len();
    for (i, (code, offset, value)) in checks.into_iter().enumerate() {
        prog.push(stmt(code, offset));
        // Left after this check: the other checks (two insns each).
        let left = u8::try_from(2 * (checks_len - 1 - i)).unwrap_or(u8::MAX);
        let jf = if i < 3 {
            // Not "\0SUBSYSTEM=": undecided; past the rest, the match and
            // the drop, to the pass.
            left + 2
        } else {
            // SUBSYSTEM= with another value: past the rest and the match,
            // to the drop.
            left + 1
        };
        prog.push(jump(JEQ_K, value, 0, jf));
    }
    prog.push(stmt(RET_K, PASS));
    prog.push(stmt(RET_K, DROP));
    prog.push(stmt(RET_K, PASS));
    for at in to_pass {
        prog[at].k = u32::try_from(pass_at - at - 1).unwrap_or(0);
    }
    for at in to_verify {
        prog[at].k = u32::try_from(verify_at - at - 1).unwrap_or(0);
    }
    prog
}

/// Attach a classic BPF program to a socket (`SO_ATTACH_FILTER`).
#[allow(unsafe_code)]
fn attach_filter(fd: &OwnedFd, program: &[Insn]) -> nix::Result<()> {
    let insns: Vec<libc::sock_filter> = program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: u16::try_from(insns.len()).map_err(|_| nix::errno::Errno::E2BIG)?,
        filter: insns.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `insns`, which lives until after the call;
    // the kernel copies the program and keeps no pointer to it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::from_ref(&fprog).cast(),
            u32::try_from(std::mem::size_of::<libc::sock_fprog>()).unwrap_or(16),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}

#[cfg(test)]
#[path = "uevent_tests.rs"]
mod tests;
