//! Who serves a local TCP port: the owner of its listening socket, from
//! `/proc/net/tcp` and `/proc/net/tcp6`.
//!
//! NIS port 3551 is unprivileged: if laptop-upsd (or apcupsd) is not bound
//! to it, any local user may be, and whatever answers there would end up in
//! root's mail. apccontrol therefore reads a status for its mails only from
//! a listener that a trusted user (root) owns. [`parse`] is pure (the file's
//! text in); [`owner`] reads the two files.

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

/// The owners of every socket listening on local TCP `port`, read from
/// `<proc>/net/tcp` and `<proc>/net/tcp6` (`proc` is `/proc` but in tests).
/// Empty when nothing listens or the files cannot be read.
pub fn owners(proc: &Path, port: u16) -> Vec<u32> {
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

/// Whether every socket listening on `port` belongs to a user `policy`
/// trusts (and at least one listens).
pub fn served_by_trusted(port: u16, policy: &crate::trust::Policy) -> Result<(), String> {
    judge(&owners(Path::new("/proc"), port), port, policy)
}

/// [`served_by_trusted`] on the owners already found.
pub fn judge(owners: &[u32], port: u16, policy: &crate::trust::Policy) -> Result<(), String> {
    match owners.iter().find(|uid| !policy.trusts(**uid)) {
        _ if owners.is_empty() => Err(format!("nothing listens on port {port}")),
        Some(uid) => Err(format!(
            "port {port} is served by uid {uid}, not {policy}; not trusting what it says"
        )),
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
