//! This machine's host name, read in one place: the UPS name when UPSNAME
//! is unset (as apcupsd), the HOSTNAME line of the NIS status, and the
//! subjects and default addresses of mail. Reads the system (`gethostname`);
//! a name that cannot be read, is not UTF-8 or is empty is `None`, and each
//! caller says what stands in for it.

/// The host name as `hostname` prints it, or `None` when there is none to use.
pub(crate) fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
}
