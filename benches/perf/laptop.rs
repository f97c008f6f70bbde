//! The fake laptop (a power_supply tree, a SCRIPTDIR holding the stamping
//! stub, a config) that laptop-upsd runs on in the rest, latency and NIS
//! benchmarks, and the real apcupsd as its network slave.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::{mkdir, put, tempdir, Proc};
use crate::{APCUPSD, LAPTOP_UPSD};

/// A fake laptop tree, a SCRIPTDIR holding the stamping stub, a config.
pub(crate) struct Laptop {
    pub(crate) dir: tempfile::TempDir,
    /// Where the fake /sys lives: in memory, as sysfs is (see [`sys_tempdir`]).
    _sys: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) sd: PathBuf,
    pub(crate) conf: PathBuf,
}

impl Laptop {
    pub(crate) fn new(extra: &str) -> Laptop {
        let dir = tempdir();
        let d = dir.path().to_path_buf();
        let sys = sys_tempdir();
        let root = sys.path().join("root");
        let sd = d.join("sd");
        mkdir(&sd);
        symlink(
            std::env::current_exe().expect("cannot find the bench binary"),
            sd.join("apccontrol"),
        )
        .expect("cannot link the stamping stub");
        let conf = d.join("apcupsd.conf");
        fs::write(
            &conf,
            format!(
                "## apcupsd.conf v1.1 ##\nUPSNAME bench\nUPSTYPE usb\nSCRIPTDIR {sd}\nPWRFAILDIR {d}\nNOLOGINDIR {d}\n\
                 NOLOGON disable\nEVENTSFILE {d}/events\nSTATEFILE {d}/state\nPIDFILE {d}/pid\nJOURNALDIR {d}\n{extra}\n",
                sd = sd.display(),
                d = d.display()
            ),
        )
        .expect("cannot write apcupsd.conf");
        let laptop = Laptop {
            dir,
            _sys: sys,
            root,
            sd,
            conf,
        };
        laptop.supply(true, 80, "Charging");
        laptop
    }

    /// The whole tree: adapter online or not, battery charge and status.
    pub(crate) fn supply(&self, online: bool, charge: u32, status: &str) {
        let base = self.root.join("sys/class/power_supply");
        let (ac, bat) = (base.join("AC"), base.join("BAT0"));
        mkdir(&ac);
        mkdir(&bat);
        self.set_online(online);
        let full = 40_000_000u64;
        let mut uevent = "POWER_SUPPLY_NAME=BAT0\n".to_string();
        for (name, value) in [
            ("type", "Battery".to_string()),
            ("present", "1".into()),
            ("status", status.into()),
            ("capacity", charge.to_string()),
            ("energy_full", full.to_string()),
            ("energy_full_design", full.to_string()),
            ("energy_now", (full * u64::from(charge) / 100).to_string()),
            ("power_now", if online { "0" } else { "10000000" }.into()),
            ("voltage_now", "11800000".into()),
        ] {
            put(&bat.join(name), &format!("{value}\n"));
            let _ = writeln!(uevent, "POWER_SUPPLY_{}={value}", name.to_ascii_uppercase());
        }
        put(&bat.join("uevent"), &uevent);
    }

    /// The adapter's files, as the kernel shows them: its `uevent` (all its
    /// properties, which laptop-upsd reads) and the attribute files. The
    /// uevent file is replaced first: the change happens there.
    pub(crate) fn set_online(&self, online: bool) {
        let ac = self.root.join("sys/class/power_supply/AC");
        mkdir(&ac);
        let value = u8::from(online);
        put(
            &ac.join("uevent"),
            &format!(
                "POWER_SUPPLY_NAME=AC\nPOWER_SUPPLY_TYPE=Mains\nPOWER_SUPPLY_ONLINE={value}\n"
            ),
        );
        put(&ac.join("type"), "Mains\n");
        put(&ac.join("online"), &format!("{value}\n"));
    }

    pub(crate) fn start(&self) -> Proc {
        self.start_with(&[])
    }

    /// With `-v`: every log line on stderr (which uevent group, ...).
    pub(crate) fn start_verbose(&self) -> Proc {
        self.start_with(&["-v"])
    }

    pub(crate) fn start_with(&self, extra: &[&str]) -> Proc {
        let stderr = fs::File::create(self.dir.path().join("stderr"))
            .expect("cannot create the daemon's stderr file");
        let mut cmd = Command::new(LAPTOP_UPSD);
        cmd.arg("-f")
            .arg(&self.conf)
            .arg("--root")
            .arg(&self.root)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr);
        Proc::spawn("laptop-upsd", &mut cmd)
    }

    /// Where the fake tree is, for the notes.
    pub(crate) fn tree_place(&self) -> &'static str {
        if self.root.starts_with(SHM) {
            "on tmpfs (/dev/shm), in memory as sysfs is"
        } else {
            "on the disk /tmp is on (no /dev/shm here)"
        }
    }

    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

/// The in-memory file system the fake /sys goes on.
const SHM: &str = "/dev/shm";

/// A directory for the fake /sys tree: on tmpfs when there is one, since
/// the real /sys/class/power_supply is in memory (kernfs) and listing or
/// reading a directory on a disk file system costs more than on sysfs,
/// which would charge laptop-upsd's readings with a cost a real machine
/// does not have. SCRIPTDIR, the config and the journal stay on disk.
fn sys_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("apccontrol-bench-sys.")
        .tempdir_in(SHM)
        .unwrap_or_else(|_| crate::support::tempdir())
}

/// A real apcupsd, a network slave of `master_port`, in its own directory.
pub(crate) struct Slave {
    pub(crate) dir: tempfile::TempDir,
}

impl Slave {
    pub(crate) fn new(master_port: u16, nis_port: Option<u16>) -> Slave {
        let dir = tempdir();
        let d = dir.path();
        symlink(
            std::env::current_exe().expect("cannot find the bench binary"),
            d.join("apccontrol"),
        )
        .expect("cannot link the stamping stub");
        let nis = match nis_port {
            Some(p) => format!("NETSERVER on\nNISIP 127.0.0.1\nNISPORT {p}\n"),
            None => "NETSERVER off\n".into(),
        };
        fs::write(
            d.join("apcupsd.conf"),
            format!(
                "## apcupsd.conf v1.1 ##\nUPSNAME slave\nUPSCABLE ether\nUPSTYPE net\n\
                 DEVICE 127.0.0.1:{master_port}\nLOCKFILE {d}\nSCRIPTDIR {d}\nPWRFAILDIR {d}\n\
                 NOLOGINDIR {d}\nNOLOGON disable\n{nis}EVENTSFILE {d}/events\nSTATTIME 0\n",
                d = d.display()
            ),
        )
        .expect("cannot write the slave's apcupsd.conf");
        Slave { dir }
    }

    pub(crate) fn start(&self) -> Proc {
        let d = self.dir.path();
        let mut cmd = Command::new(APCUPSD);
        cmd.arg("-b")
            .arg("-f")
            .arg(d.join("apcupsd.conf"))
            .arg("-P")
            .arg(d.join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Proc::spawn("apcupsd", &mut cmd)
    }
}
