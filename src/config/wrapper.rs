//! The shell side of reading `SCRIPTDIR/config`: the wrapper script that
//! `/bin/sh` runs to source the file and report what it left (variables,
//! environment, umask, working directory, where WALL, SHUTDOWN and APCUPSD
//! are found), the parser of that report ([`parse_records`]), and the shell
//! kept afterwards to run what the config made a shell function
//! ([`ConfigShell`]), with the shell text for those calls.
//!
//! [`super::script_config`] decides when the shell is needed and fills a
//! [`super::ScriptConfig`] from the report; [`super::literal`] makes the
//! same report without a shell for configs of literal assignments.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::defaults::CONFIG_DEADLINE;
use super::settings::COMMAND_VARIABLES;
use super::shell;
use crate::process::{self, Reply, Session, Spec};
use crate::trust;

/// The shell that evaluates `SCRIPTDIR/config`, as in the stock script's shebang.
pub const SHELL: &str = "/bin/sh";

/// What the evaluation shell is given to source.
pub(super) enum Source<'a> {
    /// The checked file, sourced with `.` from its descriptor
    /// (`/proc/self/fd/N`), so nothing can be swapped in after the check.
    File(&'a trust::Trusted),
    /// Declarations only, each evaluated on its own.
    Declarations(&'a [Vec<u8>]),
}

/// The end of the wrapper's report.
pub(super) const END_MARKER: &[u8] = b"\x01Z\0";

/// The wrapper: the stock script's variables in its order, then ours; the
/// source; the report on stdout (a file in memory, see
/// [`process::Session`]), and [`END_MARKER`] on stderr when it is complete;
/// then a loop that runs one line at a time in a subshell (stdin
/// /dev/null, stdout to stderr) and answers on stderr with its status
/// (`\x01S<status>\0`), until we close its stdin.
pub(super) fn wrapper_script(scriptdir: &Path, source: &Source<'_>, names: &[&str]) -> Vec<u8> {
    let mut s: Vec<u8> = Vec::new();
    for step in super::literal::prelude(scriptdir) {
        match step {
            shell::Literal::Set { name, value } => {
                s.extend_from_slice(name.as_bytes());
                s.push(b'=');
                s.extend_from_slice(&shell::quote(&value));
            }
            shell::Literal::Export { name, .. } => {
                s.extend_from_slice(b"export ");
                s.extend_from_slice(name.as_bytes());
            }
        }
        s.push(b'\n');
    }
    match source {
        Source::File(file) => {
            s.extend_from_slice(b". ");
            s.extend_from_slice(&shell::quote(file.source_path().as_os_str().as_bytes()));
            s.extend_from_slice(b" </dev/null >/dev/null\n");
        }
        Source::Declarations(pieces) => {
            for piece in pieces.iter() {
                s.extend_from_slice(b"command eval ");
                s.extend_from_slice(&shell::quote(piece));
                s.extend_from_slice(b" </dev/null >/dev/null\n");
            }
        }
    }
    let mut line = |text: &str| {
        s.extend_from_slice(text.as_bytes());
        s.push(b'\n');
    };
    // The report must not stop half way: no -e, -u or tracing from here on.
    line("set +eux");
    // One printf for every known variable that is set (even to ""): an
    // unset one expands to no word at all. Names come from our own tables:
    // plain identifiers, safe to splice.
    let mut known = String::from("printf '\\001K\\000'; printf '%s\\000'");
    for name in names {
        known.push_str(&format!(" ${{{name}+\"{name}=${name}\"}}"));
    }
    line(&known);
    line("printf '\\001U\\000'; umask; printf '\\000\\001D\\000'; pwd; printf '\\000'");
    line("printf '\\001X\\000'; export -p; printf '\\000'");
    for name in COMMAND_VARIABLES {
        line(&format!(
            "printf '\\001C{name}\\000'; set -- ${name}; for __apc_w do printf '%s\\000' \"$__apc_w\"; done"
        ));
        line("printf '\\001P\\000'; [ $# -gt 0 ] && command -v -- \"$1\"; printf '\\000'");
    }
    line("printf '\\001Z\\000'; printf '\\001Z\\000' >&2");
    line(
        "while IFS= read -r __apc_line; do ( eval \"$__apc_line\" ) </dev/null >&2; printf '\\001S%d\\000' \"$?\" >&2; done",
    );
    line("exit 0");
    s
}

/// What the config wrapper reported: the import of `SCRIPTDIR/config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// The known variables that are set, with their values.
    pub known: BTreeMap<String, String>,
    /// The umask, when it could be read.
    pub umask: Option<u32>,
    /// The working directory.
    pub cwd: Option<PathBuf>,
    /// The exported environment, when `export -p` could be read.
    pub exported: Option<Vec<(OsString, OsString)>>,
    /// Each command variable: its words and what `command -v` printed.
    pub commands: BTreeMap<String, (Vec<OsString>, Vec<u8>)>,
    /// The report reached its end.
    pub complete: bool,
}

/// Parse the wrapper's output: NUL-separated records in sections started by
/// `\x01K` (known `NAME=value`), `\x01U` (umask), `\x01D` (working
/// directory), `\x01X` (`export -p`), `\x01C<NAME>` (a command's words)
/// and `\x01P` (where its first word was found), closed by `\x01Z`. `None`
/// when the known-variables section never started. Public for the fuzz
/// target; whatever the bytes, it never panics.
pub fn parse_records(out: &[u8]) -> Option<Records> {
    let mut records = Records::default();
    let mut section: &[u8] = b"";
    let mut command: Option<String> = None;
    let mut started = false;
    let trim = |r: &[u8]| -> Vec<u8> { r.strip_suffix(b"\n").unwrap_or(r).to_vec() };
    for record in out.split(|b| *b == 0) {
        if let Some(marker) = record.strip_prefix(b"\x01") {
            match marker {
                b"Z" => {
                    records.complete = started;
                    break;
                }
                b"K" => started = true,
                _ => {}
            }
            if let Some(name) = marker.strip_prefix(b"C") {
                let name = String::from_utf8_lossy(name).into_owned();
                records
                    .commands
                    .insert(name.clone(), (Vec::new(), Vec::new()));
                command = Some(name);
            }
            section = marker;
            continue;
        }
        match section.first() {
            Some(b'K') if !record.is_empty() => {
                let text = String::from_utf8_lossy(record);
                if let Some((name, value)) = text.split_once('=') {
                    records.known.insert(name.to_string(), value.to_string());
                }
            }
            Some(b'U') => {
                records.umask = std::str::from_utf8(&trim(record))
                    .ok()
                    .and_then(|t| u32::from_str_radix(t.trim(), 8).ok());
            }
            Some(b'D') => {
                let dir = trim(record);
                if dir.first() == Some(&b'/') {
                    records.cwd = Some(PathBuf::from(OsString::from_vec(dir)));
                }
            }
            Some(b'X') => records.exported = shell::parse_export_p(record),
            Some(b'C') => {
                if let Some(entry) = command.as_ref().and_then(|c| records.commands.get_mut(c)) {
                    entry.0.push(OsString::from_vec(record.to_vec()));
                }
            }
            Some(b'P') => {
                if let Some(entry) = command.as_ref().and_then(|c| records.commands.get_mut(c)) {
                    entry.1 = trim(record);
                }
            }
            _ => {}
        }
    }
    if !started {
        return None;
    }
    Some(records)
}

/// How a line run by the config's shell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellStep {
    /// It finished with this status; what it printed (stdout and stderr).
    Exited {
        /// Its exit status.
        status: i32,
        /// Its output.
        output: Vec<u8>,
    },
    /// It ran past its deadline; the shell was stopped with it.
    TimedOut,
    /// The shell is gone (stopped earlier, or it died).
    Gone,
}

/// The shell that sourced the config, kept to run the shell functions (or
/// builtins) the config uses as WALL, SHUTDOWN or APCUPSD, each line in a
/// subshell as the stock script would call it.
#[derive(Debug)]
pub struct ConfigShell {
    session: Option<Session>,
}

impl ConfigShell {
    /// The shell that sourced the config and waits for lines to run.
    pub(super) fn new(session: Session) -> ConfigShell {
        ConfigShell {
            session: Some(session),
        }
    }

    /// Run one line of shell text. On its deadline the shell and everything
    /// it started are stopped; later lines then find it [`ShellStep::Gone`].
    pub fn run(&mut self, line: &str, deadline: Instant) -> ShellStep {
        let Some(session) = self.session.as_mut() else {
            return ShellStep::Gone;
        };
        let _ = session.take_stderr();
        if line.contains('\n') || !session.send(format!("{line}\n").as_bytes()) {
            return ShellStep::Gone;
        }
        match session.read_until_match(deadline, |bytes| {
            status_record(bytes).map(|(_, end, _)| end)
        }) {
            Reply::Record(record) => match status_record(&record) {
                Some((start, _, status)) => ShellStep::Exited {
                    status,
                    output: record[..start].to_vec(),
                },
                None => ShellStep::Gone,
            },
            Reply::TimedOut => {
                if let Some(session) = self.session.take() {
                    let _ = session.finish(Instant::now());
                }
                ShellStep::TimedOut
            }
            Reply::Ended(_) => {
                if let Some(session) = self.session.take() {
                    let _ = session.finish(crate::deadline::after(Duration::from_secs(1)));
                }
                ShellStep::Gone
            }
        }
    }

    /// Let the shell end.
    pub fn finish(mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.finish(crate::deadline::after(Duration::from_secs(1)));
        }
    }
}

/// The last status record (`\x01S<digits>\0`) in what the config's shell
/// wrote: where it starts and ends, and the status.
fn status_record(bytes: &[u8]) -> Option<(usize, usize, i32)> {
    let mut from = bytes.len();
    while let Some(start) = bytes[..from].windows(2).rposition(|w| w == b"\x01S") {
        let digits = &bytes[start + 2..];
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if len > 0 && digits.get(len) == Some(&0) {
            let status = std::str::from_utf8(&digits[..len]).ok()?.parse().ok()?;
            return Some((start, start + 2 + len + 1, status));
        }
        from = start;
    }
    None
}

/// Shell text that pipes `text` into `${WALL}`, as the stock script's
/// `echo "..." | ${WALL}` does.
pub fn wall_line(text: &[u8]) -> String {
    format!("printf {} | ${{WALL}}", shell::printf_format(text))
}

/// Shell text that runs `${NAME} ARGS...` (NAME is one of
/// [`COMMAND_VARIABLES`]), as the stock script does. The text stays on one
/// line: an argument with a newline is rebuilt with `printf`.
pub fn command_line(name: &str, args: &[OsString]) -> String {
    let mut prelude = String::new();
    let mut line = format!("${{{name}}}");
    for (i, arg) in args.iter().enumerate() {
        line.push(' ');
        if arg.as_bytes().contains(&b'\n') {
            // `$(...)` drops trailing newlines: guard them with an `x`.
            prelude.push_str(&format!(
                "__apc_{i}=$(printf {}x); ",
                shell::printf_format(arg.as_bytes())
            ));
            line.push_str(&format!("\"${{__apc_{i}%x}}\""));
        } else {
            line.push_str(&String::from_utf8_lossy(&shell::quote(arg.as_bytes())));
        }
    }
    prelude + &line
}

/// `/bin/sh -n FILE`: the syntax errors of a file, without running it.
pub fn syntax_errors(path: &Path) -> Vec<String> {
    let spec = Spec::new(SHELL).arg("-n").arg(path).output_cap(16 * 1024);
    match process::run(&spec, Some(crate::deadline::after(CONFIG_DEADLINE))) {
        Ok(done) if done.outcome.success() => Vec::new(),
        Ok(done) => {
            let lines = done.stderr_lines();
            if lines.is_empty() {
                vec![format!("the shell rejects it ({})", done.outcome)]
            } else {
                lines
            }
        }
        Err(e) => vec![format!("cannot check its syntax: {e}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_sections_and_detect_an_early_exit() {
        let out = b"\x01K\0WALL=wall -n\0SYSADMIN=ops\0\x01U\x00027\n\0\x01D\0/srv/x\n\0\x01X\0export A='1'\nexport B='x=y'\n\0\x01CWALL\0wall\0-n\0\x01P\0/usr/bin/wall\n\0\x01CSHUTDOWN\0\x01P\0\0\x01Z\0";
        let r = parse_records(out).unwrap();
        assert!(r.complete);
        assert_eq!(r.known["WALL"], "wall -n");
        assert_eq!(r.umask, Some(0o27));
        assert_eq!(r.cwd.as_deref(), Some(Path::new("/srv/x")));
        let exported = r.exported.unwrap();
        assert_eq!(exported[1], (OsString::from("B"), OsString::from("x=y")));
        assert_eq!(
            r.commands["WALL"],
            (vec!["wall".into(), "-n".into()], b"/usr/bin/wall".to_vec())
        );
        assert_eq!(r.commands["SHUTDOWN"], (vec![], vec![]));
        assert!(parse_records(b"").is_none());
        assert!(!parse_records(b"\x01K\0A=1\0").unwrap().complete);
    }

    #[test]
    fn command_lines_keep_every_byte() {
        let args: Vec<OsString> = vec![
            "-h".into(),
            OsString::from_vec(b"it's K\xfcche\n".to_vec()),
            "$HOME `x`".into(),
        ];
        let line = command_line("SHUTDOWN", &args);
        assert!(!line.contains('\n'), "{line}");
        let script = format!("SHUTDOWN='printf %s|'; {line}");
        let done = process::run(&Spec::new("/bin/sh").arg("-c").arg(script), None).unwrap();
        assert_eq!(done.stdout, b"-h|it's K\xfcche\n|$HOME `x`|");
    }
}
