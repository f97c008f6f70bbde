//! Issue 15, "trust the path, not the name": each attack a local user
//! (`nobody`, through `setpriv`) could make on what root runs, sources,
//! writes or reads, replayed against the real binaries in temporary
//! directories. The attacker's file must never run or be read, the victim
//! file must stay unchanged, and laptop-upsd must keep serving. The races
//! loop at least 40 times while the attacker swaps files as fast as it can.
//!
//! They need root (to be attacked by another user); as a normal user each
//! test says so and checks nothing.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::daemon::Laptop;
use crate::support::{as_root, command, Scene};

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;
const ROUNDS: usize = 40;

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn give_to_nobody(path: &Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOGROUP)).unwrap();
}

/// A shell loop run as `nobody` (group `nogroup`) until killed.
struct Attacker(Child);

impl Attacker {
    fn start(script: &str) -> Attacker {
        let child = command("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/bin/sh",
                "-c",
            ])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Attacker(child)
    }

    /// Run one command as nobody and wait.
    fn once(script: &str) {
        let status = command("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/bin/sh",
                "-c",
            ])
            .arg(script)
            .status()
            .unwrap();
        assert!(status.success(), "the attacker's setup failed: {script}");
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scene whose directories `nobody` can traverse (tempdir makes 0700).
fn open_scene() -> Scene {
    let scene = Scene::new();
    chmod(scene.dir.path(), 0o755);
    scene
}

/// A script that touches `witness` when it runs.
fn witness_script(path: &Path, witness: &Path) {
    let text = format!("#!/bin/sh\ntouch {}\nexit 0\n", witness.display());
    crate::support::write_executable(path, &text, 0o755);
}

/// A directory `nobody` owns, holding a root-owned hook the admin put there,
/// and the attacker's own file beside it: the attacker swaps them by rename
/// as fast as it can.
fn swapping_dir(
    base: &Path,
    name: &str,
    evil_witness: &Path,
    good_witness: &Path,
) -> (PathBuf, Attacker) {
    let theirs = base.join("attacker");
    fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o755);
    witness_script(&theirs.join("good"), good_witness);
    give_to_nobody(&theirs);
    let evil = format!(
        "printf '#!/bin/sh\\ntouch {}\\n' > {t}/evil; chmod 755 {t}/evil",
        evil_witness.display(),
        t = theirs.display()
    );
    Attacker::once(&evil);
    let t = theirs.display();
    let attacker = Attacker::start(&format!(
        "cd {t} || exit 1; while :; do mv -f good {name}; mv -f {name} good; mv -f evil {name}; mv -f {name} evil; done"
    ));
    (theirs, attacker)
}

/// Run `powerout` [`ROUNDS`] times while the attacker swaps: neither its
/// file nor the admin's (reached through its directory) may ever run, and
/// whenever the name exists mid-swap, `said` of the run shows `refusal`.
fn survive_rounds(
    scene: &Scene,
    evil: &Path,
    good: &Path,
    refusal: &str,
    said: impl Fn(&crate::support::Run) -> String,
) {
    let mut refused = 0;
    for round in 0..ROUNDS {
        let run = scene.run(&["powerout", "ups", "1", "1"]);
        run.expect(
            !evil.exists(),
            format!("round {round}: nobody's file ran or was sourced as root"),
        );
        run.expect(
            !good.exists(),
            format!("round {round}: a file reached through nobody's directory was used"),
        );
        refused += usize::from(said(&run).contains(refusal));
    }
    assert!(refused > 0, "no round said `{refusal}`");
}

#[test]
fn a_hooks_d_link_into_a_directory_nobody_owns_never_runs_their_file() {
    if !as_root() {
        eprintln!("skipped: needs root to be attacked by nobody");
        return;
    }
    let scene = open_scene();
    let evil = scene.dir.path().join("evil-ran");
    let good = scene.dir.path().join("good-ran");
    let (theirs, _attacker) = swapping_dir(scene.dir.path(), "hook", &evil, &good);
    let hd = scene.sd.join("hooks.d");
    fs::create_dir(&hd).unwrap();
    chmod(&hd, 0o755);
    symlink(theirs.join("hook"), hd.join("50-hook")).unwrap();
    let refusal = format!("{} is owned by uid 65534, not root", theirs.display());
    survive_rounds(&scene, &evil, &good, &refusal, |run| run.log.clone());
}

#[test]
fn a_config_link_into_a_directory_nobody_owns_is_never_sourced() {
    if !as_root() {
        eprintln!("skipped: needs root to be attacked by nobody");
        return;
    }
    let scene = open_scene();
    let evil = scene.dir.path().join("evil-ran");
    let good = scene.dir.path().join("good-ran");
    let (theirs, _attacker) = swapping_dir(scene.dir.path(), "config", &evil, &good);
    // The real config moves into nobody's directory; SCRIPTDIR/config links there.
    fs::remove_file(scene.sd.join("config")).unwrap();
    symlink(theirs.join("config"), scene.sd.join("config")).unwrap();
    let refusal = format!("{} is owned by uid 65534, not root", theirs.display());
    survive_rounds(&scene, &evil, &good, &refusal, |run| {
        String::from_utf8_lossy(&run.stderr).into_owned()
    });
}

/// A group-writable SCRIPTDIR: its group (here nogroup) could replace
/// hooks.d by a link to a root-owned program directory and plant hooks.
/// Nothing in it runs, and `--check` says why.
#[test]
fn a_group_writable_scriptdir_runs_nothing_a_group_member_planted() {
    if !as_root() {
        eprintln!("skipped: needs root to be attacked by nobody");
        return;
    }
    let scene = open_scene();
    // A root-owned "program directory" with a program that leaves a trace.
    let programs = scene.dir.path().join("programs");
    fs::create_dir(&programs).unwrap();
    chmod(&programs, 0o755);
    let ran = scene.dir.path().join("root-program-ran");
    witness_script(&programs.join("powerout"), &ran);
    std::os::unix::fs::chown(&scene.sd, None, Some(NOGROUP)).unwrap();
    chmod(&scene.sd, 0o775);
    let sd = scene.sd.display();
    let p = programs.display();
    Attacker::once(&format!(
        "rm -rf {sd}/hooks.d 2>/dev/null; ln -s {p} {sd}/hooks.d && ln -s {p}/powerout {sd}/powerout"
    ));
    let run = scene.run(&["powerout", "ups", "1", "1"]);
    run.expect(!ran.exists(), "a planted hook ran");
    let check = command(crate::support::apccontrol_bin())
        .args(["--check", "--scriptdir"])
        .arg(&scene.sd)
        .env("PATH", scene.path_env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("{sd} is writable by group (mode 0775)")),
        "{text}"
    );
    assert!(!text.contains("all is well"), "{text}");
}

/// Files laptop-upsd writes as root, in a world-writable sticky directory
/// (like /tmp) where `nobody` planted links named like each of them, all to
/// a root-only victim: the events file, the pid file, the powerfail flag and
/// the state file. The victim stays as it was, the NIS `events` reader never
/// serves it, and the daemon starts, shuts down as it should and keeps
/// running.
#[test]
fn laptop_upsd_never_writes_or_serves_through_planted_links() {
    if !as_root() {
        eprintln!("skipped: needs root to be attacked by nobody");
        return;
    }
    let mut laptop = Laptop::new("BATTERYLEVEL 90");
    let d = laptop.dir.path().to_path_buf();
    chmod(&d, 0o755);
    let public = d.join("public");
    fs::create_dir(&public).unwrap();
    chmod(&public, 0o1777);
    let victim = d.join("shadow");
    let secret = "root:$6$secret:19000:0:99999:7:::\n";
    fs::write(&victim, secret).unwrap();
    chmod(&victim, 0o600);
    let pb = public.display();
    Attacker::once(&format!(
        "for n in events pid state powerfail; do ln -s {v} {pb}/$n; done",
        v = victim.display()
    ));
    // Later directives win: the four files move into the public directory.
    let mut conf = fs::read_to_string(&laptop.conf).unwrap();
    conf.push_str(&format!(
        "EVENTSFILE {pb}/events\nPIDFILE {pb}/pid\nSTATEFILE {pb}/state\nPWRFAILDIR {pb}\n"
    ));
    fs::write(&laptop.conf, conf).unwrap();
    laptop.start_and_wait();
    laptop.sysfs(false, 80);
    laptop.wait_for("doshutdown", Duration::from_secs(20));
    let is_file = |name: &str| fs::symlink_metadata(public.join(name)).is_ok_and(|m| m.is_file());
    laptop
        .expect(
            fs::read_to_string(&victim).is_ok_and(|v| v == secret),
            "the victim was written",
        )
        .expect_stderr(&format!("cannot write events file {pb}/events"))
        .expect_stderr("is a symbolic link")
        // Nothing of the victim was read into a log line either.
        .expect_no_stderr("secret")
        // The pid file was made afresh in place of the planted link.
        .expect(is_file("pid"), "the pid file is not a file")
        // The state file replaced the link (rename), never wrote through it.
        .expect(is_file("state"), "the state file is not a file")
        // NIS `events` reads the file without following the link.
        .expect(
            apccontrol::nis::events::tail_records(&public.join("events")).is_err(),
            "NIS events followed the link",
        )
        // And the daemon is still there.
        .expect_running();
    laptop.stop();
}

/// A uevent sent by a process (here root's own, so only the sender check
/// can stop it) to the kernel's uevent group does not wake laptop-upsd: with
/// POLLTIME 60 on mains, an unplugged adapter stays unseen for the next
/// seconds however many such messages arrive.
#[test]
fn uevents_from_a_process_do_not_wake_laptop_upsd() {
    if !as_root() {
        eprintln!("skipped: needs root to send to the uevent group");
        return;
    }
    let (mut laptop, nis) = Laptop::with_nis("POLLTIME 60");
    laptop.start();
    // The first reading (on mains) is made, and the uevent socket opened,
    // before NIS is served.
    laptop.wait_until("NIS", Duration::from_secs(10), |_| nis.status().is_ok());
    if laptop.stderr().contains("no kernel uevents") {
        eprintln!("skipped: no netlink uevent socket here");
        return;
    }
    laptop.sysfs(false, 80);
    use nix::sys::socket::{
        bind, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
        SockType,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).unwrap();
    let msg = "change@/devices/fake/power_supply/AC\0ACTION=change\0SUBSYSTEM=power_supply\0POWER_SUPPLY_ONLINE=0\0";
    for _ in 0..1000 {
        let _ = sendto(
            fd.as_raw_fd(),
            msg.as_bytes(),
            &NetlinkAddr::new(0, 1),
            MsgFlags::empty(),
        );
    }
    // Nothing to wait for: the daemon must stay asleep for these seconds.
    std::thread::sleep(Duration::from_secs(3));
    laptop.expect_none_of(&["powerout"]);
    laptop.stop();
}

/// `--check`, in both programs, names every path the run would refuse and
/// the component at fault (here: links where root writes its files).
#[test]
fn check_names_each_path_a_run_would_refuse() {
    let scene = Scene::new();
    let victim = scene.dir.path().join("victim");
    fs::write(&victim, "x\n").unwrap();
    let log_link = scene.dir.path().join("apccontrol-link.log");
    symlink(&victim, &log_link).unwrap();
    let scene = scene.config(&format!("LOGFILE={}", log_link.display()));
    let out = command(crate::support::apccontrol_bin())
        .args(["--check", "--scriptdir"])
        .arg(&scene.sd)
        .env("PATH", scene.path_env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "LOGFILE: {} is a symbolic link",
            log_link.display()
        )),
        "{text}"
    );

    let laptop = Laptop::new("");
    let events = laptop.path("events");
    symlink(&victim, &events).unwrap();
    let out = command(crate::daemon::laptop_upsd_bin())
        .arg("--check")
        .arg("-f")
        .arg(&laptop.conf)
        .arg("--root")
        .arg(&laptop.root)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "EVENTSFILE: laptop-upsd will not write it: {} is a symbolic link",
            events.display()
        )),
        "{text}"
    );
}
