//! The Debian package: built once (`cargo build --release`, then
//! `cargo deb --no-build`), then its file list, maintainer scripts and
//! lintian checked, and a real dpkg install, reinstall (upgrade), remove and
//! purge done into a throwaway root (`dpkg --root`, its own admin dir,
//! `--force-script-chrootless` so the scripts run with `DPKG_ROOT`), next to
//! a fake apcupsd package that owns a stock `/etc/apcupsd/apccontrol`.
//!
//! Everything heavy runs under `nice -n 19`, so it does not starve the
//! timing tests that run beside it. dpkg runs under fakeroot, and when the tests run as root, as `nobody` as
//! well: a maintainer script that forgot `DPKG_ROOT` fails on the real /etc
//! instead of changing it. Also here: the docs of what the package ships
//! (laptop-upsd(8) against `--help`, apccontrol-config(5) against the
//! variables and directives the code reads).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use apccontrol::config::script_config::VARIABLES;

use crate::daemon::laptop_upsd_bin;
use crate::support::write_executable;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dump(what: &str, out: &Output) -> String {
    format!(
        "{what}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(out.status.success(), "{}", dump(what, &out));
    out
}

/// `nice -n 19 cargo ARGS` in the crate, in the environment a shell gives
/// it: without the variables `cargo test` sets for the tests it runs.
///
/// ring's build script asks to be rerun when CARGO_MANIFEST_DIR, CARGO_PKG_NAME
/// or CARGO_PKG_VERSION_* change; inherited from `cargo test` (set to this
/// crate's) they differ from a plain `cargo build --release`'s, so the
/// release build that `scripts/test-all` makes before the tests was thrown
/// away and redone here (ring, rustls, lettre and both binaries with LTO:
/// minutes of both CPUs, beside the timing tests), and then again by the
/// next plain build. RUSTC_BOOTSTRAP too, which proc-macro2's build script
/// watches: set to 1 for the test run alone (libtest's `-Z unstable-options
/// --report-time`, to time each test), it rebuilt the whole release tree.
fn plain_cargo(args: &[&str]) -> std::process::Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = crate::support::command("nice");
    command
        .args(["-n", "19", &cargo])
        .args(args)
        .current_dir(manifest_dir());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo_test = [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "OUT_DIR",
            "RUSTC_BOOTSTRAP",
        ]
        .contains(&key.as_ref())
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_");
        if set_by_cargo_test {
            command.env_remove(key.as_ref());
        }
    }
    command
}

/// The .deb, built once per test run.
fn deb() -> &'static Path {
    static DEB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = DEB.get_or_init(|| {
        let build = plain_cargo(&["build", "--release", "--quiet", "--bins"])
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !build.status.success() {
            return Err(dump("cargo build --release", &build));
        }
        let out = plain_cargo(&["deb", "--no-build", "--fast", "--quiet"])
            .output()
            .map_err(|e| format!("cannot run cargo deb: {e}"))?;
        if !out.status.success() {
            return Err(dump(
                "cargo deb --no-build (cargo install cargo-deb --version 3.8.0 --locked; scripts/test-all does)",
                &out,
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .map(str::trim)
            .rfind(|l| l.ends_with(".deb"))
            .map(PathBuf::from)
            .ok_or_else(|| dump("cargo deb printed no .deb path", &out))
    });
    match built {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

/// `dpkg-deb -c`: path (without `./`) -> mode string and link target.
fn contents() -> Vec<(String, String, Option<String>)> {
    let out = run_ok(
        "dpkg-deb -c",
        crate::support::command("dpkg-deb").arg("-c").arg(deb()),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let mode = fields.first()?.to_string();
            let at = fields.iter().position(|f| f.starts_with("./"))?;
            let path = fields[at].trim_start_matches("./").to_string();
            let link = (fields.get(at + 1) == Some(&"->")).then(|| fields[at + 2].to_string());
            Some((path, mode, link))
        })
        .collect()
}

#[test]
fn package_ships_binaries_units_hook_man_pages_and_examples() {
    let list = contents();
    let mode_of = |path: &str| -> String {
        list.iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, m, _)| m.clone())
            .unwrap_or_else(|| panic!("{path} is not in the package: {list:#?}"))
    };
    for (path, mode) in [
        ("usr/sbin/apccontrol", "-rwxr-xr-x"),
        ("usr/sbin/laptop-upsd", "-rwxr-xr-x"),
        ("lib/systemd/system/laptop-upsd.service", "-rw-r--r--"),
        (
            "lib/systemd/system/apccontrol-flush-outbox.service",
            "-rw-r--r--",
        ),
        (
            "lib/systemd/system/apccontrol-flush-outbox.timer",
            "-rw-r--r--",
        ),
        (
            "lib/systemd/system-shutdown/laptop-upsd_shutdown",
            "-rwxr-xr-x",
        ),
        ("usr/share/man/man8/apccontrol.8.gz", "-rw-r--r--"),
        ("usr/share/man/man8/laptop-upsd.8.gz", "-rw-r--r--"),
        ("usr/share/man/man5/apccontrol-config.5.gz", "-rw-r--r--"),
        (
            "usr/share/doc/apccontrol/examples/config.example",
            "-rw-r--r--",
        ),
        ("usr/share/doc/apccontrol/README.md", "-rw-r--r--"),
        (
            "usr/share/doc/apccontrol/examples/acpi/laptop-upsd",
            "-rw-r--r--",
        ),
        ("usr/share/doc/apccontrol/copyright", "-rw-r--r--"),
        ("usr/share/doc/apccontrol/changelog.Debian.gz", "-rw-r--r--"),
    ] {
        assert_eq!(mode_of(path), mode, "{path}");
    }
    // Every example hook, not executable in /usr/share/doc.
    let examples = manifest_dir().join("hooks.d-examples");
    let mut n = 0;
    for entry in fs::read_dir(&examples).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let path = format!("usr/share/doc/apccontrol/examples/hooks.d/{name}");
        assert_eq!(mode_of(&path), "-rw-r--r--", "{path}");
        n += 1;
    }
    assert!(n >= 6, "{n} example hooks");
    // Nothing in /etc: the link, hooks.d/ and the spool are the scripts' work,
    // so no conffile can fight apcupsd's.
    assert!(
        list.iter().all(|(p, _, _)| !p.starts_with("etc/")),
        "{list:#?}"
    );
    // Every man page in man/ is shipped.
    for entry in fs::read_dir(manifest_dir().join("man")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let section = name.rsplit('.').next().unwrap().to_string();
        mode_of(&format!("usr/share/man/man{section}/{name}.gz"));
    }
}

#[test]
fn control_says_what_it_is_and_the_maintainer_scripts_divert_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        "dpkg-deb -e",
        crate::support::command("dpkg-deb")
            .arg("-e")
            .arg(deb())
            .arg(dir.path()),
    );
    let control = fs::read_to_string(dir.path().join("control")).unwrap();
    for field in [
        "Package: apccontrol",
        "Section: admin",
        "Suggests: apcupsd",
        "Depends: libc6",
    ] {
        assert!(control.contains(field), "{field}:\n{control}");
    }
    let script = |name: &str| -> String {
        let path = dir.path().join(name);
        let mode = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{name} missing: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{name} is not executable");
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("#!/bin/sh\n") && text.contains("\nset -e\n"),
            "{name}"
        );
        text
    };
    let divert = "dpkg-divert --package apccontrol --rename";
    let preinst = script("preinst");
    assert!(
        preinst.contains(divert)
            && preinst.contains("--divert /etc/apcupsd/apccontrol.stock --add"),
        "{preinst}"
    );
    let postinst = script("postinst");
    assert!(postinst.contains("ln -s \"$target\" \"$DPKG_ROOT$link\""));
    assert!(postinst.contains("install -d -m 0700 \"$DPKG_ROOT/var/spool/apccontrol\""));
    assert!(postinst.contains("install -d -m 0755 \"$DPKG_ROOT/var/lib/apccontrol\""));
    assert!(postinst.contains("deb-systemd-helper enable apccontrol-flush-outbox.timer"));
    assert!(
        !postinst.contains("deb-systemd-helper enable laptop-upsd"),
        "laptop-upsd.service must not be enabled by the package"
    );
    let postrm = script("postrm");
    assert!(postrm.contains("--divert /etc/apcupsd/apccontrol.stock --remove"));
    script("prerm");
    // Every file operation honours DPKG_ROOT.
    for (name, text) in [
        ("preinst", &preinst),
        ("postinst", &postinst),
        ("postrm", &postrm),
    ] {
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with("ln ")
                || l.starts_with("rm ")
                || l.starts_with("install -")
                || l.starts_with("rmdir ")
            {
                assert!(l.contains("$DPKG_ROOT"), "{name}: {l}");
            }
        }
    }
    let out = crate::support::command("shellcheck")
        .args(["preinst", "postinst", "prerm", "postrm"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", dump("shellcheck", &out));
}

#[test]
fn lintian_reports_no_errors() {
    let out = crate::support::command("nice")
        .args(["-n", "19", "lintian", "--allow-root"])
        .arg(deb())
        .output()
        .unwrap_or_else(|e| {
            panic!("lintian is needed (apt-get install lintian; scripts/test-all does): {e}")
        });
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "{}", dump("lintian", &out));
    // Warnings are allowed but shown with --nocapture.
    println!("{report}");
}

/// A throwaway dpkg root with its own admin dir, and dpkg run in it.
struct Root {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let admin = root.join("var/lib/dpkg");
        for sub in ["info", "updates", "triggers"] {
            fs::create_dir_all(admin.join(sub)).unwrap();
        }
        for file in ["status", "available"] {
            fs::write(admin.join(file), "").unwrap();
        }
        let r = Root { dir, root };
        r.give_to_nobody();
        r
    }

    fn as_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// When we are root, dpkg runs as nobody: chown the tree to it.
    fn give_to_nobody(&self) {
        if Root::as_root() {
            run_ok(
                "chown",
                crate::support::command("chown")
                    .args(["-R", "nobody:nogroup"])
                    .arg(self.dir.path()),
            );
        }
    }

    /// A fake apcupsd package owning a stock /etc/apcupsd/apccontrol.
    fn fake_apcupsd(&self) -> PathBuf {
        let tree = self.dir.path().join("fake-apcupsd");
        fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        fs::create_dir_all(tree.join("etc/apcupsd")).unwrap();
        fs::write(
            tree.join("DEBIAN/control"),
            "Package: apcupsd\nVersion: 3.14.14-99\nArchitecture: all\nMaintainer: test <test@example.org>\nDescription: fake apcupsd with the stock apccontrol\n",
        )
        .unwrap();
        fs::write(tree.join("DEBIAN/conffiles"), "/etc/apcupsd/apccontrol\n").unwrap();
        let stock = tree.join("etc/apcupsd/apccontrol");
        write_executable(&stock, "#!/bin/sh\necho stock apccontrol\n", 0o755);
        let deb = self.dir.path().join("apcupsd.deb");
        run_ok(
            "dpkg-deb -b",
            crate::support::command("dpkg-deb")
                .args(["--root-owner-group", "-b"])
                .arg(&tree)
                .arg(&deb),
        );
        self.give_to_nobody();
        deb
    }

    /// Our .deb, copied where nobody can read it.
    fn ours(&self) -> PathBuf {
        let copy = self.dir.path().join("apccontrol.deb");
        fs::copy(deb(), &copy).unwrap();
        self.give_to_nobody();
        copy
    }

    fn dpkg(&self, args: &[&str]) -> Output {
        let mut cmd = if Root::as_root() {
            let mut c = crate::support::command("nice");
            c.args([
                "-n",
                "19",
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--",
                "fakeroot",
            ]);
            c
        } else {
            let mut c = crate::support::command("nice");
            c.args(["-n", "19", "fakeroot"]);
            c
        };
        cmd.arg("dpkg")
            .arg(format!("--root={}", self.root.display()))
            .arg(format!(
                "--log={}",
                self.dir.path().join("dpkg.log").display()
            ))
            .args([
                "--force-not-root",
                "--force-script-chrootless",
                "--force-depends",
                // No fsync in a throwaway root: less I/O beside the timing tests.
                "--force-unsafe-io",
            ])
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("DPKG_ROOT")
            .env_remove("DPKG_ADMINDIR");
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("fakeroot and dpkg are needed (scripts/test-all installs fakeroot): {e}")
        });
        assert!(
            out.status.success(),
            "{}",
            dump(&format!("dpkg {args:?}"), &out)
        );
        out
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn link(&self) -> Option<PathBuf> {
        fs::read_link(self.path("/etc/apcupsd/apccontrol")).ok()
    }

    fn stock_at(&self, p: &str) -> bool {
        fs::read_to_string(self.path(p)).is_ok_and(|t| t.contains("stock apccontrol"))
    }

    fn diversions(&self) -> String {
        fs::read_to_string(self.path("/var/lib/dpkg/diversions")).unwrap_or_default()
    }

    fn mode(&self, p: &str) -> u32 {
        fs::metadata(self.path(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    }

    /// The state after our install: link, stock diverted, dirs, timer.
    fn assert_installed(&self, context: &str) {
        assert_eq!(
            self.link(),
            Some(PathBuf::from("/usr/sbin/apccontrol")),
            "{context}"
        );
        assert!(self.stock_at("/etc/apcupsd/apccontrol.stock"), "{context}");
        assert!(
            self.diversions().contains("/etc/apcupsd/apccontrol.stock"),
            "{context}"
        );
        assert_eq!(self.mode("/etc/apcupsd/hooks.d"), 0o755, "{context}");
        assert_eq!(self.mode("/var/spool/apccontrol"), 0o700, "{context}");
        assert_eq!(self.mode("/var/lib/apccontrol"), 0o755, "{context}");
        assert!(self.path("/usr/sbin/apccontrol").exists(), "{context}");
        assert!(
            fs::symlink_metadata(
                self.path("/etc/systemd/system/timers.target.wants/apccontrol-flush-outbox.timer")
            )
            .is_ok(),
            "{context}: the flush timer is enabled"
        );
        let wants = self.path("/etc/systemd/system/multi-user.target.wants/laptop-upsd.service");
        assert!(
            fs::symlink_metadata(wants).is_err(),
            "{context}: laptop-upsd.service must not be enabled"
        );
    }
}

#[test]
fn dpkg_install_upgrade_remove_purge_round_trip_restores_the_stock_script() {
    let r = Root::new();
    let apcupsd = r.fake_apcupsd();
    let ours = r.ours();
    r.dpkg(&["-i", apcupsd.to_str().unwrap()]);
    assert!(r.stock_at("/etc/apcupsd/apccontrol"));

    r.dpkg(&["-i", ours.to_str().unwrap()]);
    r.assert_installed("after install");
    // A hook of the admin's survives everything but is never ours to remove.
    fs::write(r.path("/etc/apcupsd/hooks.d/mine"), "#!/bin/sh\n").unwrap();

    // Upgrade: the same version again runs preinst upgrade, postinst configure 0.1.0-1.
    // postinst prints what `apccontrol --check` finds (here: the hook above
    // is not executable), and the install still succeeds.
    let out = r.dpkg(&["-i", ours.to_str().unwrap()]);
    r.assert_installed("after reinstall");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("apccontrol --check --scriptdir /etc/apcupsd")
            && said.contains("hooks.d/mine: will not run: not executable"),
        "{}",
        dump("reinstall", &out)
    );

    // Remove: the link goes, the stock script is back, hooks.d stays.
    r.dpkg(&["-r", "apccontrol"]);
    assert_eq!(r.link(), None, "the link is gone");
    assert!(
        r.stock_at("/etc/apcupsd/apccontrol"),
        "stock script restored"
    );
    assert!(!r.path("/etc/apcupsd/apccontrol.stock").exists());
    assert!(
        !r.diversions().contains("apccontrol.stock"),
        "{}",
        r.diversions()
    );
    assert!(!r.path("/usr/sbin/apccontrol").exists());
    assert!(r.path("/etc/apcupsd/hooks.d/mine").exists());

    // Purge: quiet about the diversion already gone; the spool goes,
    // hooks.d stays while it holds the admin's hook.
    let out = r.dpkg(&["-P", "apccontrol"]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("replaced by hand"),
        "{}",
        dump("purge", &out)
    );
    assert!(r.stock_at("/etc/apcupsd/apccontrol"));
    assert!(!r.path("/var/spool/apccontrol").exists());
    assert!(!r.path("/var/lib/apccontrol").exists());
    assert!(r.path("/etc/apcupsd/hooks.d/mine").exists());
    // apcupsd's package still owns its file.
    r.dpkg(&["-V", "apcupsd"]);
}

#[test]
fn dpkg_apcupsd_installed_after_us_lands_beside_our_link() {
    let r = Root::new();
    let apcupsd = r.fake_apcupsd();
    let ours = r.ours();
    r.dpkg(&["-i", ours.to_str().unwrap()]);
    assert_eq!(r.link(), Some(PathBuf::from("/usr/sbin/apccontrol")));
    r.dpkg(&["-i", apcupsd.to_str().unwrap()]);
    r.assert_installed("apcupsd installed after us");
    // Removing ours, then purging it, leaves an empty hooks.d gone and the
    // stock script in place.
    r.dpkg(&["-P", "apccontrol"]);
    assert!(r.stock_at("/etc/apcupsd/apccontrol"));
    assert!(!r.path("/etc/apcupsd/hooks.d").exists());
}

/// Issue 15: apcupsd purged while our diversion is in place. dpkg leaves
/// the diverted stock script behind, owned by no package, and our link in
/// place. Removing us then does not resurrect a purged package's file: it
/// says so, removes it, and leaves no diversion and no apccontrol behind.
#[test]
fn dpkg_purging_apcupsd_under_our_diversion_ends_clean_and_says_so() {
    let r = Root::new();
    let apcupsd = r.fake_apcupsd();
    let ours = r.ours();
    r.dpkg(&["-i", apcupsd.to_str().unwrap()]);
    r.dpkg(&["-i", ours.to_str().unwrap()]);
    r.assert_installed("before purging apcupsd");

    r.dpkg(&["-P", "apcupsd"]);
    assert_eq!(r.link(), Some(PathBuf::from("/usr/sbin/apccontrol")));

    let out = r.dpkg(&["-r", "apccontrol"]);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("apcupsd is purged, so its stock apccontrol (left at /etc/apcupsd/apccontrol.stock) is removed, not restored"),
        "{}",
        dump("remove apccontrol", &out)
    );
    assert_eq!(r.link(), None);
    assert!(fs::symlink_metadata(r.path("/etc/apcupsd/apccontrol")).is_err());
    assert!(!r.path("/etc/apcupsd/apccontrol.stock").exists());
    assert!(!r.diversions().contains("apccontrol"), "{}", r.diversions());
    r.dpkg(&["-P", "apccontrol"]);
    assert!(!r.diversions().contains("apccontrol"), "{}", r.diversions());
}

/// Issue 15: a file already at apccontrol.stock when we install (a copy the
/// admin made, or one left behind) once failed the install in preinst. A
/// copy of the stock script is dropped; anything else is kept aside, said.
#[test]
fn dpkg_an_existing_apccontrol_stock_is_set_aside_not_fatal() {
    for (content, kept) in [
        ("#!/bin/sh\necho stock apccontrol\n", false),
        ("#!/bin/sh\necho my own edited copy\n", true),
    ] {
        let r = Root::new();
        let apcupsd = r.fake_apcupsd();
        let ours = r.ours();
        r.dpkg(&["-i", apcupsd.to_str().unwrap()]);
        fs::write(r.path("/etc/apcupsd/apccontrol.stock"), content).unwrap();
        r.give_to_nobody();
        let out = r.dpkg(&["-i", ours.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        r.assert_installed("with an apccontrol.stock already there");
        let aside = r.path("/etc/apcupsd/apccontrol.stock.dpkg-old");
        if kept {
            assert!(
                said.contains("kept it as /etc/apcupsd/apccontrol.stock.dpkg-old"),
                "{said}"
            );
            assert_eq!(fs::read_to_string(&aside).unwrap(), content);
        } else {
            assert!(
                said.contains("was a copy of /etc/apcupsd/apccontrol; removed it"),
                "{said}"
            );
            assert!(!aside.exists());
        }
        // And the round trip back still restores apcupsd's script.
        r.dpkg(&["-r", "apccontrol"]);
        assert!(r.stock_at("/etc/apcupsd/apccontrol"));
    }
}

#[test]
fn dpkg_maintainer_scripts_run_twice_change_nothing() {
    let r = Root::new();
    let apcupsd = r.fake_apcupsd();
    let ours = r.ours();
    r.dpkg(&["-i", apcupsd.to_str().unwrap()]);
    r.dpkg(&["-i", ours.to_str().unwrap()]);
    // Run the installed scripts again by hand, as dpkg would, twice.
    let info = r.path("/var/lib/dpkg/info");
    for _ in 0..2 {
        for (script, arg) in [("preinst", "upgrade"), ("postinst", "configure")] {
            let mut cmd = if Root::as_root() {
                let mut c = crate::support::command("setpriv");
                c.args([
                    "--reuid=nobody",
                    "--regid=nogroup",
                    "--clear-groups",
                    "--",
                    "fakeroot",
                ]);
                c
            } else {
                crate::support::command("fakeroot")
            };
            cmd.arg(info.join(format!("apccontrol.{script}")))
                .args([arg, "0.1.0-1"])
                .env("DPKG_ROOT", &r.root)
                .env("DPKG_ADMINDIR", r.path("/var/lib/dpkg"))
                .env("DPKG_MAINTSCRIPT_PACKAGE", "apccontrol");
            run_ok(script, &mut cmd);
        }
        r.assert_installed("after running the scripts again");
    }
}

#[test]
fn laptop_upsd_help_options_are_in_its_man_page() {
    let help = crate::support::command(laptop_upsd_bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let man = fs::read_to_string(manifest_dir().join("man/laptop-upsd.8"))
        .unwrap()
        .replace("\\-", "-");
    let options: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
        .collect();
    assert!(options.contains(&"--killpower"), "{help}");
    for option in options {
        assert!(
            man.contains(option),
            "{option} is in --help but not in man/laptop-upsd.8"
        );
    }
}

#[test]
fn config_page_documents_every_variable_and_directive() {
    let man = fs::read_to_string(manifest_dir().join("man/apccontrol-config.5"))
        .unwrap()
        .replace("\\-", "-");
    let mut names: Vec<&str> = VARIABLES.iter().map(|(n, _, _)| *n).collect();
    names.extend(apccontrol::notify::known_variables());
    // The apcupsd.conf directives laptop-upsd reads (src/config/apcupsd_conf.rs).
    let source = fs::read_to_string(manifest_dir().join("src/config/apcupsd_conf.rs")).unwrap();
    let directives: Vec<String> = source
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('"')?;
            let (key, after) = rest.split_once('"')?;
            let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_uppercase());
            (is_key && after.trim_start().starts_with("=>")).then(|| key.to_string())
        })
        .collect();
    assert!(directives.len() >= 20, "{directives:?}");
    assert!(directives.iter().any(|d| d == "WAKEDELAY"));
    for name in names
        .iter()
        .copied()
        .chain(directives.iter().map(String::as_str))
    {
        let described = man.lines().filter(|l| l.starts_with(".B")).any(|l| {
            l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == name)
        });
        assert!(
            described,
            "{name} is not described in man/apccontrol-config.5"
        );
    }
}
