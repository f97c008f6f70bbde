//! Who serves a local TCP port: the owner of its listening socket, asked of
//! the kernel through `NETLINK_SOCK_DIAG` (listening sockets only), or read
//! from `/proc/net/tcp` and `/proc/net/tcp6` where that is not available.
//!
//! NIS port 3551 is unprivileged: if laptop-upsd (or apcupsd) is not bound
//! to it, any local user may be, and whatever answers there would end up in
//! root's mail. apccontrol therefore reads a status for its mails only from
//! a listener that a trusted user (root) owns. [`parse`] and
//! [`parse_diag`] are pure (the file's text, the kernel's reply in);
//! [`owners`] asks.
//!
//! Why not just the files: generating `/proc/net/tcp` walks every socket
//! table of the machine, and cost 12 ms of kernel time per read on the VM
//! this was measured on, even with three sockets; a sock_diag dump of
//! listening sockets only skips the established table.

use std::path::Path;

/// TCP state `LISTEN` in `/proc/net/tcp`'s `st` column.
const LISTEN: &str = "0A";

/// The uids owning listening sockets on `port`, from the text of
/// `/proc/net/tcp` or `/proc/net/tcp6` (header line first).
pub fn parse(text: &str, port: u16) -> Vec<u32> {
    let wanted = format!("{port:04X}");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let uid = fields.get(7)?;
            let (_, local_port) = local.rsplit_once(':')?;
            (local_port.eq_ignore_ascii_case(&wanted) && *state == LISTEN)
                .then(|| uid.parse().ok())
                .flatten()
        })
        .collect()
}

/// `SOCK_DIAG_BY_FAMILY`, the netlink message type of a sock_diag request.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_DONE` and `NLMSG_ERROR`.
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
/// `TCP_LISTEN` in the kernel's TCP states.
const TCP_LISTEN: u32 = 10;
/// `struct inet_diag_msg`: family, state, timer, retrans (4 bytes), the
/// socket id (48: source port at 0, big-endian), expires, rqueue, wqueue,
/// uid (at 64), inode.
const DIAG_MSG_LEN: usize = 72;
const DIAG_UID_AT: usize = 64;

/// A sock_diag dump request for the listening TCP sockets of `family`.
fn diag_request(family: u8) -> Vec<u8> {
    let mut req = Vec::with_capacity(16 + 56);
    let len = u32::try_from(16 + 56).unwrap_or(72);
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    // NLM_F_REQUEST | NLM_F_DUMP
    req.extend_from_slice(&(0x0001u16 | 0x0300).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
                                                // struct inet_diag_req_v2
    req.push(family);
    req.push(6); // IPPROTO_TCP
    req.push(0); // no extensions
    req.push(0);
    req.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req.extend_from_slice(&[0u8; 48]); // any socket id
    req
}

/// The uids of listening sockets on `port` in a sock_diag reply, and
/// whether the reply was complete (`NLMSG_DONE` seen). `None` on an error
/// message or a malformed reply.
pub fn parse_diag(reply: &[u8], port: u16) -> Option<(Vec<u32>, bool)> {
    let mut uids = Vec::new();
    let mut rest = reply;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        if len < 16 || len > rest.len() {
            return None;
        }
        match kind {
            NLMSG_DONE => return Some((uids, true)),
            NLMSG_ERROR => return None,
            SOCK_DIAG_BY_FAMILY if len >= 16 + DIAG_MSG_LEN => {
                let msg = &rest[16..16 + DIAG_MSG_LEN];
                let sport = u16::from_be_bytes(msg[4..6].try_into().ok()?);
                let uid = u32::from_ne_bytes(msg[DIAG_UID_AT..DIAG_UID_AT + 4].try_into().ok()?);
                if sport == port && u32::from(msg[1]) == TCP_LISTEN {
                    uids.push(uid);
                }
            }
            _ => {}
        }
        // Messages are 4-byte aligned.
        let step = (len + 3) & !3;
        rest = rest.get(step..).unwrap_or(&[]);
    }
    Some((uids, false))
}

/// Ask the kernel for the owners of listening sockets on `port`, IPv4 and
/// IPv6. `None` when sock_diag cannot be used here (the caller reads /proc).
fn owners_by_sock_diag(port: u16) -> Option<Vec<u32>> {
    use nix::sys::socket::{
        recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
    };
    use std::os::fd::AsRawFd;
    let mut all = Vec::new();
    for family in [nix::libc::AF_INET as u8, nix::libc::AF_INET6 as u8] {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )
        .ok()?;
        // One second at most: this is a convenience for a mail body.
        let timeout = nix::sys::time::TimeVal::new(1, 0);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .ok()?;
        send(fd.as_raw_fd(), &diag_request(family), MsgFlags::empty()).ok()?;
        let mut buf = vec![0u8; 32 * 1024];
        let mut done = false;
        // Bounded: a reply of listening sockets is a few messages.
        for _ in 0..64 {
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).ok()?;
            let (uids, complete) = parse_diag(&buf[..n], port)?;
            all.extend(uids);
            if complete || n == 0 {
                done = true;
                break;
            }
        }
        if !done {
            return None;
        }
    }
    Some(all)
}

/// The owners of every socket listening on local TCP `port`: asked of the
/// kernel (sock_diag), else read from `<proc>/net/tcp` and
/// `<proc>/net/tcp6` (`proc` is `/proc` but in tests). Empty when nothing
/// listens or nothing can be read.
pub fn owners(proc: &Path, port: u16) -> Vec<u32> {
    if proc == Path::new("/proc") {
        if let Some(owners) = owners_by_sock_diag(port) {
            return owners;
        }
    }
    owners_from_proc(proc, port)
}

/// [`owners`] from the `/proc` files only.
pub fn owners_from_proc(proc: &Path, port: u16) -> Vec<u32> {
    ["net/tcp", "net/tcp6"]
        .iter()
        .filter_map(|name| {
            crate::trust::read_capped(&proc.join(name), 4 << 20)
                .ok()
                .flatten()
        })
        .flat_map(|bytes| parse(&String::from_utf8_lossy(&bytes), port))
        .collect()
}

/// Why what listens on a port is not to be believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    /// No socket listens on the port.
    #[error("nothing listens on port {port}")]
    NobodyListens {
        /// The port.
        port: u16,
    },
    /// A socket on the port belongs to a user the policy does not trust.
    #[error("port {port} is served by uid {uid}, not {policy}; not trusting what it says")]
    Untrusted {
        /// The port.
        port: u16,
        /// The owner of the untrusted socket.
        uid: u32,
        /// Who may serve it.
        policy: crate::trust::Policy,
    },
}

/// Whether every socket listening on `port` belongs to a user `policy`
/// trusts (and at least one listens).
pub fn served_by_trusted(port: u16, policy: &crate::trust::Policy) -> Result<(), ListenerError> {
    judge(&owners(Path::new("/proc"), port), port, policy)
}

/// [`served_by_trusted`] on the owners already found.
pub fn judge(
    owners: &[u32],
    port: u16,
    policy: &crate::trust::Policy,
) -> Result<(), ListenerError> {
    match owners.iter().find(|uid| !policy.trusts(**uid)) {
        _ if owners.is_empty() => Err(ListenerError::NobodyListens { port }),
        Some(uid) => Err(ListenerError::Untrusted {
            port,
            uid: *uid,
            policy: policy.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0DDF 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1598 1 0 100 0 0 10 0
   1: 0100007F:0DDF 0100007F:86CC 01 00000000:00000000 00:00000000 00000000  1000        0 0 3 0
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 1599 1 0 100 0 0 10 0
";

    #[test]
    fn only_listening_sockets_on_the_port_count() {
        assert_eq!(parse(TCP, 3551), [0]);
        assert_eq!(parse(TCP, 8080), [65534]);
        assert!(parse(TCP, 22).is_empty());
        assert!(parse("", 3551).is_empty());
        assert!(parse("header\ngarbage line\n", 3551).is_empty());
    }

    #[test]
    fn sock_diag_and_proc_agree_on_real_listeners() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0");
        let euid = nix::unistd::geteuid().as_raw();
        let port = v4.local_addr().unwrap().port();
        let diag = owners_by_sock_diag(port);
        if let Some(diag) = &diag {
            assert_eq!(diag, &[euid]);
        }
        assert_eq!(owners_from_proc(Path::new("/proc"), port), [euid]);
        if let Ok(v6) = v6 {
            let port = v6.local_addr().unwrap().port();
            assert_eq!(owners(Path::new("/proc"), port), [euid]);
        }
        // Nothing listening, nothing found (a closed port's number reused
        // by nothing within the test).
        drop(v4);
        assert!(owners(Path::new("/proc"), port).is_empty());
    }

    #[test]
    fn a_diag_reply_is_parsed_and_bounded() {
        let mut msg = Vec::new();
        let mut push = |kind: u16, body: &[u8]| {
            let len = 16 + body.len();
            msg.extend_from_slice(&(len as u32).to_ne_bytes());
            msg.extend_from_slice(&kind.to_ne_bytes());
            msg.extend_from_slice(&[0u8; 10]);
            msg.extend_from_slice(body);
        };
        let mut body = [0u8; DIAG_MSG_LEN];
        body[1] = TCP_LISTEN as u8;
        body[4..6].copy_from_slice(&3551u16.to_be_bytes());
        body[DIAG_UID_AT..DIAG_UID_AT + 4].copy_from_slice(&65534u32.to_ne_bytes());
        push(SOCK_DIAG_BY_FAMILY, &body);
        push(NLMSG_DONE, &[0u8; 4]);
        assert_eq!(parse_diag(&msg, 3551), Some((vec![65534], true)));
        assert_eq!(parse_diag(&msg, 80), Some((vec![], true)));
        assert_eq!(
            parse_diag(&msg[..20], 3551),
            None,
            "a cut message is malformed"
        );
        assert_eq!(parse_diag(&[], 3551), Some((vec![], false)));
    }

    #[test]
    fn a_real_listener_of_ours_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let euid = nix::unistd::geteuid().as_raw();
        assert_eq!(owners(Path::new("/proc"), port), [euid]);
        let root = crate::trust::Policy::root();
        assert_eq!(served_by_trusted(port, &root).is_ok(), euid == 0);
        assert!(served_by_trusted(port, &crate::trust::Policy::for_caller()).is_ok());
        drop(listener);
        assert!(served_by_trusted(port, &root).is_err());
    }
}
