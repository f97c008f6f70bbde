//! `laptop-upsd --demo`: a whole power outage in a few seconds, with no
//! battery, no UPS and no root.
//!
//! It builds a fake `/sys/class/power_supply` tree (an adapter and a 50 Wh
//! battery) and a SCRIPTDIR in a temporary directory, then plays a scripted
//! outage in virtual time: the tree is edited second by second, read by the
//! real sysfs source, stepped through the real monitor, and each event is
//! handed to our apccontrol with `--dry-run`, whose output is shown. The
//! events file, powerfail and nologin files are written for real, inside the
//! temporary directory, which is removed at the end.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::apcupsd_conf;
use crate::log::Log;
use crate::power::{Effect, Monitor, Mono, Source, Thresholds};
use crate::process::{self, Spec};

use super::{status, Effector};

/// The battery's full energy, in µWh (50 Wh).
const FULL_UWH: u64 = 50_000_000;
/// The laptop's draw on battery, in µW (20 W).
const DRAW_UW: u64 = 20_000_000;
/// When the adapter is unplugged (virtual seconds).
const UNPLUG_AT: u64 = 30;
/// How long power stays back at the end.
const TAIL: u64 = 30;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Setting up the temporary tree failed.
    #[error("cannot build the demo tree in {}: {source}", path.display())]
    Setup {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The demo's own config did not parse (a bug).
    #[error("the demo config is invalid: {0}")]
    Config(#[from] apcupsd_conf::ConfError),
}

fn setup(path: &Path, result: std::io::Result<()>) -> Result<(), DemoError> {
    result.map_err(|source| DemoError::Setup {
        path: path.to_path_buf(),
        source,
    })
}

struct FakeTree {
    ac: PathBuf,
    bat: PathBuf,
}

impl FakeTree {
    fn build(root: &Path) -> Result<FakeTree, DemoError> {
        let supply = root.join("sys/class/power_supply");
        let tree = FakeTree {
            ac: supply.join("AC"),
            bat: supply.join("BAT0"),
        };
        for (dir, files) in [
            (&tree.ac, &[("type", "Mains"), ("online", "1")][..]),
            (
                &tree.bat,
                &[
                    ("type", "Battery"),
                    ("present", "1"),
                    ("status", "Full"),
                    ("energy_full", "50000000"),
                    ("energy_full_design", "56000000"),
                    ("energy_now", "50000000"),
                    ("power_now", "0"),
                    ("voltage_now", "12600000"),
                    ("capacity", "100"),
                    ("model_name", "Demo 50Wh"),
                    ("serial_number", "DEMO-0001"),
                    ("health", "Good"),
                ][..],
            ),
        ] {
            setup(dir, fs::create_dir_all(dir))?;
            for (name, value) in files {
                setup(dir, fs::write(dir.join(name), format!("{value}\n")))?;
            }
        }
        Ok(tree)
    }

    fn set(&self, on_mains: bool, energy_uwh: u64) -> std::io::Result<()> {
        fs::write(self.ac.join("online"), if on_mains { "1\n" } else { "0\n" })?;
        let status = match (on_mains, energy_uwh >= FULL_UWH) {
            (true, true) => "Full",
            (true, false) => "Charging",
            (false, _) => "Discharging",
        };
        fs::write(self.bat.join("status"), format!("{status}\n"))?;
        fs::write(self.bat.join("energy_now"), format!("{energy_uwh}\n"))?;
        fs::write(
            self.bat.join("capacity"),
            format!("{}\n", energy_uwh * 100 / FULL_UWH),
        )?;
        let power = if on_mains { 0 } else { DRAW_UW };
        fs::write(self.bat.join("power_now"), format!("{power}\n"))
    }
}

fn clock(t: u64) -> String {
    format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

/// Our apccontrol: the sibling of this executable if it is there.
fn sibling_apccontrol() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join("apccontrol");
    candidate.is_file().then_some(candidate)
}

/// Run the demo, printing the timeline on stdout.
pub fn run() -> Result<(), DemoError> {
    let dir = tempfile::Builder::new()
        .prefix("laptop-upsd-demo.")
        .tempdir()
        .map_err(|source| DemoError::Setup {
            path: std::env::temp_dir(),
            source,
        })?;
    let root = dir.path();
    let tree = FakeTree::build(root)?;
    let sd = root.join("etc/apcupsd");
    setup(&sd, fs::create_dir_all(&sd))?;
    let apccontrol = sibling_apccontrol();
    if let Some(binary) = &apccontrol {
        setup(
            &sd,
            std::os::unix::fs::symlink(binary, sd.join("apccontrol")),
        )?;
    }
    // apccontrol's own config: the powerfail flag lives in the demo tree.
    let config = sd.join("config");
    setup(
        &config,
        fs::write(&config, format!("PWRFAILDIR={}\n", root.display())),
    )?;
    // A legacy hook, as a user would have: the dry run shows it.
    let hook = sd.join("onbattery");
    setup(
        &hook,
        fs::write(&hook, "#!/bin/sh\n# mail the admin here\nexit 0\n"),
    )?;
    setup(
        &hook,
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)),
    )?;

    let conf_text = format!(
        "## apcupsd.conf v1.1 ##\n\
         UPSNAME laptop\nSCRIPTDIR {sd}\nPWRFAILDIR {r}\nNOLOGINDIR {r}\nNOLOGON disable\n\
         ONBATTERYDELAY 6\nBATTERYLEVEL 5\nMINUTES 3\nTIMEOUT 0\nBATTERYDROP 50\n\
         POLLTIME 60\nNETSERVER off\nEVENTSFILE {r}/apcupsd.events\nEVENTSFILEMAX 10\n\
         STATEFILE {r}/laptop-upsd.state\nPIDFILE {r}/laptop-upsd.pid\n",
        sd = sd.display(),
        r = root.display()
    );
    let conf = apcupsd_conf::parse(&conf_text)?.conf;

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "laptop-upsd demo: a 50 Wh laptop drawing 20 W loses mains power at {}.\n\
         Rules (apcupsd.conf): ONBATTERYDELAY 6, BATTERYLEVEL 5, MINUTES 3, and the laptop rule\n\
         BATTERYDROP 50 (shut down once half of the charge left at the outage is gone).\n\
         Fake tree: {}\n\
         Time is virtual: one simulated second per step, no waiting.\n",
        clock(UNPLUG_AT),
        root.join("sys/class/power_supply").display()
    );
    if apccontrol.is_none() {
        let _ = writeln!(
            out,
            "(apccontrol was not found next to laptop-upsd, so the events are listed without\n its dry run; run `cargo build` first to see what apccontrol would do)\n"
        );
    }

    let mut effector = Effector::new(&conf, Log::silent("laptop-upsd"));
    let demo_start = chrono::Local::now().fixed_offset();
    let mut monitor = Monitor::new(Thresholds::from_conf(&conf), Mono::ZERO);
    let source = Source::new(root);
    let mut energy = FULL_UWH;
    let mut on_mains = true;
    let mut power_back_at: Option<u64> = None;
    let mut t = 0u64;
    loop {
        if t == UNPLUG_AT {
            on_mains = false;
            let _ = writeln!(
                out,
                "{}  -- AC adapter unplugged (online=0, status=Discharging, 20 W)",
                clock(t)
            );
        }
        if power_back_at == Some(t) {
            on_mains = true;
            let _ = writeln!(
                out,
                "{}  -- AC adapter plugged back in (online=1)",
                clock(t)
            );
        }
        if !on_mains {
            energy = energy.saturating_sub(DRAW_UW / 3600);
        }
        if let Err(e) = tree.set(on_mains, energy) {
            let _ = writeln!(out, "cannot update the fake tree: {e}");
            break;
        }
        let now = Mono::from_secs(t as i64);
        let effects = monitor.step(source.read(), now);
        let snapshot = monitor.snapshot(now);
        if !effects.is_empty() || (t.is_multiple_of(600) && t > 0) {
            let runtime = snapshot
                .runtime
                .map(|r| format!("{} min left", r.as_secs() / 60))
                .unwrap_or_else(|| "runtime unknown".into());
            let _ = writeln!(
                out,
                "{}  reading: {}, charge {:.1} %, {runtime}",
                clock(t),
                if snapshot.on_battery {
                    "on battery"
                } else {
                    "on mains"
                },
                snapshot.charge_pct.unwrap_or(f64::NAN)
            );
        }
        effector.virtual_time = Some(demo_start + chrono::Duration::seconds(t as i64));
        for effect in &effects {
            describe(&mut out, t, effect, &conf, apccontrol.is_some(), &sd);
            effector.apply(effect, || monitor.outage_state(now, 0).to_text());
        }
        if snapshot.shutdown_started && power_back_at.is_none() {
            power_back_at = Some(t + 120);
        }
        if power_back_at.is_some_and(|back| t >= back + TAIL) || t > 6 * 3600 {
            break;
        }
        t += 1;
    }

    let _ = writeln!(
        out,
        "\nThe events file, as apcaccess `events` would serve it:"
    );
    if let Some(path) = &conf.events_file {
        for line in fs::read_to_string(path).unwrap_or_default().lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    let now = demo_start + chrono::Duration::seconds(t as i64);
    let last = Mono::from_secs(t as i64);
    let ctx = status::Context {
        conf: &conf,
        upsname: "laptop",
        hostname: "demo",
        start_time: demo_start,
        last_poll: now,
        last_poll_mono: last,
    };
    let record = status::ups_status(&monitor.snapshot(last), &ctx);
    let _ = writeln!(out, "\nThe NIS status apcaccess would print now:");
    for line in crate::nis::status::render(&record, &now).to_text().lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "\nOn a real laptop: laptop-upsd -f /etc/apcupsd/apcupsd.conf (see laptop-upsd(8))."
    );
    Ok(())
}

fn describe(
    out: &mut impl Write,
    t: u64,
    effect: &Effect,
    conf: &apcupsd_conf::ApcupsdConf,
    binary: bool,
    sd: &Path,
) {
    match effect {
        Effect::Log { text, .. } => {
            let _ = writeln!(out, "{}  log: {text}", clock(t));
        }
        Effect::Run(event) => {
            let _ = writeln!(
                out,
                "{}  event {event}: {}/apccontrol {event} laptop 1 1",
                clock(t),
                sd.display()
            );
            let text = if binary {
                let spec = Spec::new(sd.join("apccontrol"))
                    .args(["--dry-run", event.name(), "laptop", "1", "1"])
                    .output_cap(16 * 1024);
                match process::run(
                    &spec,
                    Some(std::time::Instant::now() + Duration::from_secs(10)),
                ) {
                    Ok(done) => String::from_utf8_lossy(&done.stdout).into_owned(),
                    Err(e) => format!("could not run apccontrol: {e}\n"),
                }
            } else {
                format!("(dry run of {event} skipped: no apccontrol binary)\n")
            };
            for line in text.lines() {
                let _ = writeln!(out, "            | {line}");
            }
        }
        Effect::CreatePowerfail => {
            let _ = writeln!(
                out,
                "{}  create {}",
                clock(t),
                conf.powerfail_path().display()
            );
        }
        Effect::ProhibitLogins => {
            let _ = writeln!(
                out,
                "{}  write {} (logins prohibited)",
                clock(t),
                conf.nologin_path().display()
            );
        }
        Effect::AllowLogins => {
            let _ = writeln!(
                out,
                "{}  remove {} if it says POWER FAILURE",
                clock(t),
                conf.nologin_path().display()
            );
        }
        Effect::SaveState => {}
        Effect::Explain(why) => {
            let _ = writeln!(out, "{}  why: {why}", clock(t));
        }
    }
}
