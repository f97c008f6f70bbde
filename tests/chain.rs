//! Issue 6 end to end: a fake power_supply tree goes through an outage →
//! laptop-upsd → its NIS server → real clients: Debian's `apcaccess`,
//! Home Assistant's `aioapcaccess`, and the real `apcupsd` daemon running as
//! a network slave, whose SCRIPTDIR holds only a stub apccontrol that logs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::Laptop;
use crate::support::write_executable;
use crate::support::NisAddress;

const APCUPSD: &str = "/sbin/apcupsd";
const APCACCESS: &str = "/sbin/apcaccess";

fn require(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install Debian's apcupsd package (apt-get install --no-install-recommends apcupsd; scripts/test-all does)"
    );
}

/// The real apcupsd as a network slave of `port`; killed on drop. Its
/// SCRIPTDIR holds only a logging stub: nothing there can stop this machine.
struct Slave {
    child: Child,
    dir: tempfile::TempDir,
    /// Its own NIS server, to see what it has read from its master.
    nis: NisAddress,
}

impl Slave {
    fn start(master: &NisAddress) -> Slave {
        require(APCUPSD);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let stub = format!("#!/bin/sh\necho \"$1 $2 $3 $4\" >> {d}/calls\n");
        write_executable(&dir.path().join("apccontrol"), &stub, 0o755);
        let conf = dir.path().join("apcupsd.conf");
        let master = master.host();
        let nis = NisAddress::fresh();
        let own_nis = nis.conf();
        fs::write(
            &conf,
            format!(
                "## apcupsd.conf v1.1 ##\nUPSNAME slaveups\nUPSCABLE ether\nUPSTYPE net\n\
                 DEVICE {master}\nPOLLTIME 1\nLOCKFILE {d}\nSCRIPTDIR {d}\nPWRFAILDIR {d}\n\
                 NOLOGINDIR {d}\nNOLOGON disable\nONBATTERYDELAY 1\nBATTERYLEVEL 1\nMINUTES 0\nTIMEOUT 0\n\
                 {own_nis}EVENTSFILE {d}/events\nSTATTIME 0\nKILLDELAY 0\n"
            ),
        )
        .unwrap();
        let child = crate::support::command(APCUPSD)
            .arg("-b")
            .arg("-f")
            .arg(&conf)
            .arg("-P")
            .arg(dir.path().join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Slave { child, dir, nis }
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn events(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| c.split(' ').next().unwrap_or("").to_string())
            .collect()
    }

    /// Everything about the slave, for a failure message.
    fn dump(&self) -> String {
        format!(
            "slave calls: {:#?}\nslave events file:\n{}",
            self.calls(),
            fs::read_to_string(self.dir.path().join("events")).unwrap_or_default(),
        )
    }

    #[track_caller]
    fn wait_for(&self, event: &str, within: Duration, laptop: &Laptop) {
        laptop.wait_until(&format!("the apcupsd slave's `{event}`"), within, |_| {
            self.events().iter().any(|e| e == event)
        });
    }
}

impl Drop for Slave {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
    }
}

fn apcaccess(args: &[&str]) -> (i32, String) {
    require(APCACCESS);
    let out = crate::support::command(APCACCESS)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn nis_laptop() -> (Laptop, NisAddress) {
    Laptop::with_nis("BATTERYLEVEL 30")
}

/// Wait until the daemon serves NIS (after its first reading).
fn wait_for_server(laptop: &Laptop, nis: &NisAddress) {
    laptop.wait_until("laptop-upsd serves NIS", Duration::from_secs(10), |_| {
        nis.status().is_ok()
    });
}

#[test]
fn apcaccess_and_aioapcaccess_read_laptop_upsd() {
    let (mut laptop, nis) = nis_laptop();
    laptop.sysfs(false, 64);
    laptop.start();
    wait_for_server(&laptop, &nis);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    let host = nis.host();

    let (code, text) = apcaccess(&["-h", &host, "status"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("APC      : 001,"), "{text}");
    assert!(text.contains("UPSNAME  : testups\n"), "{text}");
    assert!(text.contains("STATUS   : ONBATT \n"), "{text}");
    assert!(text.contains("BCHARGE  : 64.0 Percent\n"), "{text}");
    let (code, value) = apcaccess(&["-h", &host, "-p", "BCHARGE"]);
    assert_eq!((code, value.trim()), (0, "64.0 Percent"));
    let (code, value) = apcaccess(&["-h", &host, "-p", "BCHARGE", "-u"]);
    assert_eq!((code, value.trim()), (0, "64.0"));
    let (code, flags) = apcaccess(&["-h", &host, "-p", "STATFLAG"]);
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(code, 0);
    assert_eq!(flags & 0x10, 0x10, "on battery bit: {flags:#x}");
    assert_eq!(
        flags & 0x0500_0000,
        0x0500_0000,
        "plugged and battery present: {flags:#x}"
    );

    let script = format!(
        "import asyncio, aioapcaccess\n\
         d = asyncio.run(aioapcaccess.request_status('{}', {}))\n\
         print(d['UPSNAME']); print(d['STATUS']); print(d['BCHARGE'])\n",
        nis.ip, nis.port
    );
    let out = crate::support::command("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aioapcaccess failed (pip install aioapcaccess; scripts/test-all does): {stderr}"
    );
    let got = String::from_utf8_lossy(&out.stdout);
    assert_eq!(got, "testups\nONBATT\n64.0 Percent\n");
}

#[test]
fn nis_events_serves_the_events_file() {
    let (mut laptop, nis) = nis_laptop();
    laptop.start();
    wait_for_server(&laptop, &nis);
    laptop.sysfs(false, 80);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    let text = apccontrol::nis::client::fetch_events(
        &nis.ip,
        nis.port,
        Instant::now() + Duration::from_secs(2),
    )
    .unwrap();
    assert!(text.contains("startup succeeded"), "{text}");
    assert!(text.contains("  Power failure.\n"), "{text}");
    assert!(text.contains("  Running on UPS batteries.\n"), "{text}");
}

/// The whole chain: the apcupsd slave follows laptop-upsd through an outage,
/// is told to shut down when laptop-upsd starts its own shutdown, and sees
/// power come back once the laptop has rebooted.
///
/// As with an apcupsd master, laptop-upsd keeps reporting SHUTTING DOWN
/// (STATFLAG 0x200) for the rest of its run, even after mains returns, and a
/// slave that sees that bit does nothing but remote shutdown. So "power
/// returns" is what really happens: the laptop finishes shutting down
/// (laptop-upsd stops), /run is cleared, mains is back, it boots, and
/// laptop-upsd starts fresh.
#[test]
fn a_real_apcupsd_slave_follows_laptop_upsd_through_an_outage() {
    let (mut laptop, nis) = nis_laptop();
    laptop.start();
    wait_for_server(&laptop, &nis);
    let slave = Slave::start(&nis);
    // Let the slave make its first good poll on mains: its own NIS then
    // serves what it read from its master.
    laptop.wait_until(
        &format!("the slave reads its master\n{}", slave.dump()),
        Duration::from_secs(15),
        |_| {
            slave.nis.status().is_ok_and(|r| {
                r.get("STATUS").is_some_and(|s| s.contains("ONLINE")) && r.get("BCHARGE").is_some()
            })
        },
    );
    laptop.expect(
        slave.events().is_empty(),
        format!("the slave acted on mains\n{}", slave.dump()),
    );

    laptop.sysfs(false, 60);
    laptop.wait_for("onbattery", Duration::from_secs(5));
    slave.wait_for("powerout", Duration::from_secs(10), &laptop);
    slave.wait_for("onbattery", Duration::from_secs(10), &laptop);

    laptop.sysfs(false, 25); // below laptop-upsd's BATTERYLEVEL 30
    laptop.wait_for("doshutdown", Duration::from_secs(12));
    slave.wait_for("remotedown", Duration::from_secs(10), &laptop);
    slave.wait_for("doshutdown", Duration::from_secs(10), &laptop);

    laptop.stop();
    fs::remove_file(laptop.path("state")).unwrap();
    laptop.sysfs(true, 26);
    laptop.start();
    // apcupsd starts offbattery and mainsback together; the stub logs each
    // as it ends, in either order.
    slave.wait_for("mainsback", Duration::from_secs(15), &laptop);
    slave.wait_for("offbattery", Duration::from_secs(5), &laptop);
    assert!(
        !laptop.path("powerfail").exists(),
        "a fresh start clears the stale powerfail file"
    );

    let events = slave.events();
    let order: Vec<&str> = [
        "powerout",
        "onbattery",
        "remotedown",
        "doshutdown",
        "offbattery",
        "mainsback",
    ]
    .into_iter()
    .filter(|e| events.iter().any(|x| x == e))
    .collect();
    assert_eq!(
        order,
        [
            "powerout",
            "onbattery",
            "remotedown",
            "doshutdown",
            "offbattery",
            "mainsback"
        ],
        "slave calls: {:?}",
        slave.calls()
    );
    let position = |e: &str| events.iter().position(|x| x == e).unwrap();
    assert!(position("onbattery") < position("remotedown"));
    assert!(position("doshutdown") < position("mainsback"));
    // A slave calls apccontrol with connected=0, powered=1, and the master's UPS name.
    let first = &slave.calls()[0];
    assert_eq!(first, "powerout testups 0 1", "{:?}", slave.calls());
    let _: PathBuf = slave.dir.path().to_path_buf();
}
