//! `SCRIPTDIR/config` read without a shell when it is only literal
//! assignments.
//!
//! Most configs set a few variables to fixed values (`WALL=:`,
//! `MAIL_TO=ops@example.org`, `export NTFY_TOPIC=ups`). Starting `/bin/sh`
//! to source such a file is the dearest part of an event with a config
//! (`scripts/bench`), where the stock script sources it in the shell it
//! already runs in. When the text is nothing but
//! [`shell::literal_assignments`], [`report`] does here what dash does with
//! it and returns the very report ([`Records`]) the wrapper shell prints
//! ([`super::wrapper`]): the environment imported as dash imports it
//! (valid names only, the last of a name wins, `PWD` checked and exported),
//! dash's default PATH when there is none, the stock defaults the wrapper
//! sets ([`prelude`]), the file's assignments in order (an assignment to an
//! exported name changes what children inherit; a new name stays a shell
//! variable unless exported), `export -p`'s variables in its order, and
//! WALL, SHUTDOWN and APCUPSD split and found as `set -- $WALL; command -v
//! "$1"` does (dash: the first regular file on PATH that `faccessat(X_OK,
//! AT_EACCESS)` accepts).
//!
//! Whatever it cannot reproduce exactly it leaves to the shell (`None`):
//! another `/bin/sh` than dash, a special variable of dash's (IFS, OPTIND,
//! PWD...), a pattern, escape or builtin in a command variable, a PATH with
//! relative or empty entries. The differential tests run both on the same
//! files and compare the reports.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::settings::{COMMAND_VARIABLES, VARIABLES};
use super::shell::{self, Literal};
use super::wrapper::{Records, SHELL};

/// The PATH dash uses when the environment has none (a shell variable, not exported).
const DASH_DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Names dash gives a value of its own at start-up, whatever the
/// environment says: a config run with one of them in the environment goes
/// to the shell.
const DASH_SETS_AT_START: &[&str] = &["IFS", "OPTIND", "PPID", "LINENO"];

/// Names dash gives a meaning when assigned (field splitting, `cd`, `pwd`,
/// prompts, mail checks): a config that assigns one goes to the shell.
const DASH_SPECIAL: &[&str] = &[
    "IFS",
    "OPTIND",
    "PPID",
    "LINENO",
    "PWD",
    "OLDPWD",
    "CDPATH",
    "ENV",
    "MAIL",
    "MAILPATH",
    "MAILCHECK",
    "PS1",
    "PS2",
    "PS4",
    "HISTSIZE",
    "TERM",
];

/// dash's builtins and reserved words: `command -v` names them without a
/// path. Only `:` is judged here (it does nothing); the rest need the shell.
const DASH_BUILTINS: &[&str] = &[
    ".", "[", "alias", "bg", "break", "cd", "chdir", "command", "continue", "echo", "eval", "exec",
    "exit", "export", "false", "fg", "getopts", "hash", "jobs", "kill", "local", "printf", "pwd",
    "read", "readonly", "return", "set", "shift", "test", "times", "trap", "true", "type",
    "ulimit", "umask", "unalias", "unset", "wait", "!", "case", "do", "done", "elif", "else",
    "esac", "fi", "for", "if", "in", "then", "until", "while", "{", "}",
];

/// What the wrapper sets before it sources the config, in its order: the
/// stock script's own variables and defaults, then SCRIPTDIR. Shared with
/// the wrapper ([`super::wrapper`]) so both start from the same place.
pub fn prelude(scriptdir: &Path) -> Vec<Literal> {
    let set = |name: &str, value: &[u8]| Literal::Set {
        name: name.to_string(),
        value: value.to_vec(),
    };
    let mut steps = vec![
        set("prefix", b"/usr"),
        set("exec_prefix", b"/usr"),
        set("APCPID", b"/var/run/apcupsd.pid"),
        set("SCRIPTSHELL", b"/bin/sh"),
    ];
    for (name, default, _) in VARIABLES {
        if let Some(default) = default {
            steps.push(set(name, default.as_bytes()));
        }
    }
    for name in ["SYSADMIN", "APCUPSD_MAIL"] {
        steps.push(Literal::Export {
            name: name.to_string(),
            value: None,
        });
    }
    steps.push(set("SCRIPTDIR", scriptdir.as_os_str().as_bytes()));
    steps
}

/// A shell variable: its value (unset: `None`) and whether it is exported.
#[derive(Debug, Clone, Default)]
struct Variable {
    value: Option<Vec<u8>>,
    exported: bool,
}

/// The report the wrapper would print after sourcing `text`, or `None`
/// when only the shell can tell (see the module doc). `names` are the
/// variables the report reads back, as for the wrapper.
pub fn report(text: &[u8], scriptdir: &Path, names: &[&str]) -> Option<Records> {
    if !sh_is_dash() {
        return None;
    }
    let steps = shell::literal_assignments(text)?;
    let mut vars = dash_start()?;
    for step in prelude(scriptdir) {
        assign(&mut vars, step);
    }
    for step in steps {
        let (Literal::Set { name, .. } | Literal::Export { name, .. }) = &step;
        if DASH_SPECIAL.contains(&name.as_str()) || name.starts_with("__apc_") {
            return None;
        }
        assign(&mut vars, step);
    }
    let value = |name: &str| vars.get(name).and_then(|v| v.value.as_deref());

    let mut records = Records {
        umask: Some(crate::process::current_umask()),
        cwd: value("PWD").map(|p| PathBuf::from(OsString::from_vec(p.to_vec()))),
        complete: true,
        ..Records::default()
    };
    for name in names {
        if let Some(v) = value(name) {
            records
                .known
                .insert(name.to_string(), String::from_utf8_lossy(v).into_owned());
        }
    }
    records.exported = Some(
        vars.iter()
            .filter(|(_, v)| v.exported)
            .filter_map(|(name, v)| {
                Some((OsString::from(name), OsString::from_vec(v.value.clone()?)))
            })
            .collect(),
    );
    let path = value("PATH").unwrap_or(DASH_DEFAULT_PATH);
    for name in COMMAND_VARIABLES {
        let command = value(name).unwrap_or_default();
        // `set -- $WALL` also globs and honours backslashes: the shell's job.
        if command
            .iter()
            .any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        {
            return None;
        }
        let words: Vec<OsString> = command
            .split(|b| matches!(b, b' ' | b'\t' | b'\n'))
            .filter(|w| !w.is_empty())
            .map(|w| OsString::from_vec(w.to_vec()))
            .collect();
        let found = match words.first() {
            Some(first) => command_v(first.as_bytes(), path)?,
            None => Vec::new(),
        };
        records.commands.insert(name.to_string(), (words, found));
    }
    Some(records)
}

/// Whether `/bin/sh` is dash, whose behaviour [`report`] reproduces.
fn sh_is_dash() -> bool {
    std::fs::read_link(SHELL).is_ok_and(|target| target.file_name().is_some_and(|n| n == "dash"))
}

/// dash's variables when it starts: the environment's entries whose names
/// are valid (the last of a name wins), exported; PWD exported, kept from
/// the environment when it names the working directory, else the real one;
/// PATH, when the environment has none, dash's default (not exported).
/// `None` when the environment holds a variable dash changes at start-up.
fn dash_start() -> Option<BTreeMap<String, Variable>> {
    let mut vars: BTreeMap<String, Variable> = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| shell::is_name(n)) else {
            continue;
        };
        if DASH_SETS_AT_START.contains(&name) {
            return None;
        }
        vars.insert(
            name.to_string(),
            Variable {
                value: Some(value.into_vec()),
                exported: true,
            },
        );
    }
    let here = std::fs::metadata(".").ok()?;
    let same_dir = |p: &[u8]| {
        p.first() == Some(&b'/')
            && std::fs::metadata(Path::new(std::ffi::OsStr::from_bytes(p)))
                .is_ok_and(|m| m.dev() == here.dev() && m.ino() == here.ino())
    };
    let pwd = match vars.get("PWD").and_then(|v| v.value.clone()) {
        Some(pwd) if same_dir(&pwd) => pwd,
        _ => std::env::current_dir().ok()?.into_os_string().into_vec(),
    };
    vars.insert(
        "PWD".to_string(),
        Variable {
            value: Some(pwd),
            exported: true,
        },
    );
    vars.entry("PATH".to_string()).or_insert_with(|| Variable {
        value: Some(DASH_DEFAULT_PATH.to_vec()),
        exported: false,
    });
    Some(vars)
}

/// One assignment or `export`, as the shell does it.
fn assign(vars: &mut BTreeMap<String, Variable>, step: Literal) {
    match step {
        Literal::Set { name, value } => vars.entry(name).or_default().value = Some(value),
        Literal::Export { name, value } => {
            let var = vars.entry(name).or_default();
            var.exported = true;
            if value.is_some() {
                var.value = value;
            }
        }
    }
}

/// What dash's `command -v NAME` prints (without its newline; empty when
/// not found), or `None` when it is a builtin other than `:` or the lookup
/// depends on something judged only by the shell.
///
/// Deliberately not [`crate::executable`]: the report must equal the wrapper
/// shell's, so "executable" here is dash's rule, `faccessat(X_OK,
/// AT_EACCESS)` on the effective ids, not the crate's (root: any `x` bit;
/// others: `access(2)` on the real ids). The differential tests compare both.
fn command_v(name: &[u8], path: &[u8]) -> Option<Vec<u8>> {
    let name_str = std::str::from_utf8(name).ok();
    if name == b":" {
        return Some(name.to_vec());
    }
    if name_str.is_some_and(|n| DASH_BUILTINS.contains(&n)) {
        return None;
    }
    if name.contains(&b'/') {
        // A relative path is printed as given, which reads as a builtin.
        if name.first() != Some(&b'/') {
            return None;
        }
        let exists = std::fs::metadata(Path::new(std::ffi::OsStr::from_bytes(name))).is_ok();
        return Some(if exists { name.to_vec() } else { Vec::new() });
    }
    for dir in path.split(|b| *b == b':') {
        // dash reads `%` as an option, an empty entry as the working
        // directory; a trailing `/` changes what it prints.
        if dir.first() != Some(&b'/') || dir.contains(&b'%') || dir.ends_with(b"/") {
            return None;
        }
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        let full_path = Path::new(std::ffi::OsStr::from_bytes(&full));
        let Ok(meta) = std::fs::metadata(full_path) else {
            continue;
        };
        if meta.is_file()
            && nix::unistd::faccessat(
                None,
                full_path,
                nix::unistd::AccessFlags::X_OK,
                nix::fcntl::AtFlags::AT_EACCESS,
            )
            .is_ok()
        {
            return Some(full);
        }
    }
    Some(Vec::new())
}

#[cfg(test)]
mod tests {
    //! Differential: every config here is read both ways, in-process and by
    //! the real `/bin/sh` wrapper, and the results must be the same.

    use super::*;
    use crate::config::script_config::{Judge, Reading, ScriptConfig, ShellArgs};
    use proptest::prelude::*;

    /// What an event takes from the config, read one way.
    fn read(dir: &Path, reading: Reading) -> ScriptConfig {
        let call = ShellArgs {
            zero: "/etc/apcupsd/apccontrol".into(),
            args: vec!["onbattery".into(), "ups".into(), "1".into(), "1".into()],
        };
        let extra = crate::notify::known_variables();
        ScriptConfig::evaluate_with(dir, Judge::AsCaller, &call, extra, true, reading).0
    }

    /// Both readings of `text`; whether the in-process one applied.
    fn both(text: &[u8]) -> (ScriptConfig, ScriptConfig, bool) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config"), text).unwrap();
        let literal = report(
            text,
            dir.path(),
            &["WALL", "SHUTDOWN", "APCUPSD", "PATH", "MAIL_TO"],
        )
        .is_some();
        let fast = read(dir.path(), Reading::Fastest);
        let shell = read(dir.path(), Reading::ShellOnly);
        (fast, shell, literal)
    }

    /// `/proc/self/fd/6` reads `/proc/self/fd/N`.
    fn without_fd_numbers(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("/proc/self/fd/") {
            let (head, tail) = rest.split_at(at + "/proc/self/fd/".len());
            out.push_str(head);
            out.push('N');
            rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
        }
        out.push_str(rest);
        out
    }

    fn assert_same(text: &[u8], fast: &ScriptConfig, shell: &ScriptConfig) {
        let shown = String::from_utf8_lossy(text);
        // A config the shell reads is named by the descriptor it was opened
        // on, whose number depends on what else the test process has open.
        assert_eq!(
            without_fd_numbers(&format!("{:?}", fast.source)),
            without_fd_numbers(&format!("{:?}", shell.source)),
            "{shown}"
        );
        assert_eq!(fast.vars, shell.vars, "{shown}");
        assert_eq!(fast.context, shell.context, "{shown}");
        assert_eq!(fast.commands, shell.commands, "{shown}");
        assert_eq!(
            without_fd_numbers(&format!("{:?}", fast.diagnostics)),
            without_fd_numbers(&format!("{:?}", shell.diagnostics)),
            "{shown}"
        );
    }

    #[test]
    fn tricky_configs_read_the_same_both_ways() {
        let stubs = tempfile::tempdir().unwrap();
        for (name, mode) in [("mywall", 0o755), ("noexec", 0o644), ("xonly", 0o100)] {
            let path = stubs.path().join(name);
            crate::testing::write_executable(&path, "#!/bin/sh\nexit 0\n", mode);
        }
        std::fs::create_dir(stubs.path().join("adir")).unwrap();
        let stub_path = stubs.path().display().to_string();
        let literal: Vec<String> = vec![
            String::new(),
            "# nothing but comments\n\n   \n".into(),
            "WALL=:\nSHUTDOWN=:\n".into(),
            "WALL=\nSHUTDOWN=''\nAPCUPSD=\"\"\n".into(),
            "WALL='wall  -n'\tSHUTDOWN=/bin/true\n".into(),
            "SHUTDOWN=no-such-shutdown-here\nAPCUPSD=/no/such/apcupsd\n".into(),
            "SHUTDOWN=/bin\n".into(),
            format!(
                "PATH={stub_path}:/usr/bin:/bin\nWALL=mywall\nSHUTDOWN=noexec\nAPCUPSD=xonly\n"
            ),
            format!("export PATH={stub_path}\nWALL=adir\n"),
            "export MAIL_TO=ops@example.org; NEWVAR=1\nexport NEWVAR\n".into(),
            "export LATER\nLATER=now\nexport UNSET_ONLY\n".into(),
            "HOME=/elsewhere\nSYSADMIN=\"ops team\"\nSYSADMIN=last\n".into(),
            "A=1 B=\"two\nlines\" C='it''s'\n".into(),
            "GLOB=*.[ch]?\nHASH=a#b # comment\n".into(),
            "prefix=/opt SCRIPTSHELL=/bin/bash APCPID=/run/x\n".into(),
            "SCRIPTDIR=/srv/hooks\n".into(),
            "export SHUTDOWN=/bin/true\n".into(),
            // Found before the empty entry that only the shell could judge.
            "PATH=/usr/bin::/bin\nWALL=wall\n".into(),
        ];
        for text in &literal {
            let (fast, shell, was_literal) = both(text.as_bytes());
            assert!(was_literal, "not read in-process: {text:?}");
            assert_same(text.as_bytes(), &fast, &shell);
        }
        // Left to the shell, and still the same.
        let shell_only: Vec<&[u8]> = vec![
            b"WALL=wall\r\nSHUTDOWN=/bin/true\r\n",
            b"PATH=/opt/x:$PATH\n",
            b"case \"$1\" in onbattery) SYSADMIN=ops ;; esac\n",
            b"mywall() { cat >/dev/null; }\nWALL=mywall\n",
            b"WALL=echo\n",
            b"WALL='wall *'\n",
            b"IFS=:\nWALL=a:b\n",
            b"A='unterminated\n",
            b"logger -t x y\n",
            b"PATH=:/usr/bin\n",
            b"PATH=/usr/bin/:/bin\n",
        ];
        for text in shell_only {
            let (fast, shell, was_literal) = both(text);
            assert!(!was_literal, "{}", String::from_utf8_lossy(text));
            assert_same(text, &fast, &shell);
        }
    }

    /// A value in one of the quotings a literal config may use.
    /// `export`'s arguments get no unquoted pattern characters.
    fn value(patterns: bool) -> impl Strategy<Value = Vec<u8>> {
        let mut plain = b"abcXYZ019_-./:,+=@%^!]{}#\xc3\xa9".to_vec();
        if patterns {
            plain.extend_from_slice(b"*?[");
        }
        let unquoted = proptest::collection::vec(proptest::sample::select(plain), 0..8);
        let single = proptest::collection::vec(
            any::<u8>().prop_filter("not a quote, NUL or CR", |b| {
                !matches!(b, b'\'' | 0 | b'\r')
            }),
            0..8,
        )
        .prop_map(|v| [&b"'"[..], &v, b"'"].concat());
        let double = proptest::collection::vec(
            any::<u8>().prop_filter("nothing the shell expands", |b| {
                !matches!(b, b'"' | b'$' | b'`' | b'\\' | 0 | b'\r')
            }),
            0..8,
        )
        .prop_map(|v| [&b"\""[..], &v, b"\""].concat());
        // Parts in a row, as in `a'b'"c"`; a word never starts with `#`.
        proptest::collection::vec(prop_oneof![unquoted, single, double], 1..3)
            .prop_map(|parts| parts.concat())
            .prop_filter("a word starting with # is a comment", |w| {
                w.first() != Some(&b'#')
            })
    }

    fn name() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(vec![
            "SYSADMIN",
            "APCUPSD_MAIL",
            "HOOK_TIMEOUT",
            "KILLPOWER_DELAY",
            "MAIL_TO",
            "SMTP_HOST",
            "HOME",
            "USER",
            "NEWVAR",
            "other_1",
            "SCRIPTDIR",
            "prefix",
        ])
    }

    fn command() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(vec![
            "WALL=wall",
            "WALL=:",
            "WALL=",
            "WALL='wall -n'",
            "SHUTDOWN=/bin/true",
            "SHUTDOWN=\"/sbin/shutdown  -P\"",
            "SHUTDOWN=no-such-command",
            "APCUPSD=/no/such/apcupsd",
            "APCUPSD=sh",
            "PATH=/usr/bin:/bin",
            "PATH=/nonexistent:/usr/sbin",
            "export PATH=/usr/local/bin:/usr/bin:/bin",
        ])
    }

    /// One line: assignments (some exported), an `export` of names, a
    /// command variable, a comment or a blank line.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        let assignments = any::<bool>().prop_flat_map(|export| {
            let one = (name(), value(!export))
                .prop_map(|(name, value)| [name.as_bytes(), b"=", &value].concat());
            proptest::collection::vec(one, 1..3).prop_map(move |words| {
                let head: &[u8] = if export { b"export " } else { b"" };
                [head, &words.join(&b" "[..])].concat()
            })
        });
        prop_oneof![
            4 => assignments,
            1 => name().prop_map(|n| format!("export {n}").into_bytes()),
            2 => command().prop_map(|c| c.as_bytes().to_vec()),
            1 => Just(b"# a comment".to_vec()),
            1 => Just(Vec::new()),
        ]
    }

    fn config() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec((line(), any::<bool>(), any::<bool>()), 0..8).prop_map(|lines| {
            let mut text = Vec::new();
            for (line, semicolon, comment) in lines {
                text.extend_from_slice(&line);
                if semicolon && !line.is_empty() && !line.starts_with(b"#") {
                    text.push(b';');
                }
                if comment && !line.starts_with(b"#") {
                    text.extend_from_slice(b" # trailing");
                }
                text.push(b'\n');
            }
            text
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn literal_configs_read_the_same_as_the_shell_reads_them(text in config()) {
            let (fast, shell, was_literal) = both(&text);
            prop_assert!(was_literal, "not read in-process: {}", String::from_utf8_lossy(&text));
            assert_same(&text, &fast, &shell);
        }
    }
}
