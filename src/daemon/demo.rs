//! `laptop-upsd --demo`: a whole power outage in a few seconds, with no
//! battery, no UPS and no root.
//!
//! It builds a fake `/sys/class/power_supply` tree (an adapter and a 50 Wh
//! battery) and a SCRIPTDIR in a temporary directory, then plays a scripted
//! outage in virtual time: the tree is edited second by second, read by the
//! real sysfs source, stepped through the real monitor, and its effects go
//! through the daemon's `DryRun` effects: each event is handed to our
//! apccontrol with `--dry-run` (never a live run), whose output is shown;
//! the events file and the powerfail flag are written only because they lie
//! inside the temporary directory, which is removed at the end.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::apcupsd_conf;
use crate::event::Event;
use crate::log::Log;
use crate::power::{Effect, Explanation, Monitor, Mono, Source, Thresholds};

use super::dry_run::{DryRun, FileStep, Note};
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
        /// The file or directory of the fake tree being made.
        path: PathBuf,
        /// The system's error.
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

/// Our apccontrol: the sibling of this executable if it is there.
fn sibling_apccontrol() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join("apccontrol");
    candidate.is_file().then_some(candidate)
}

/// The demo's clock: virtual time starts at the real time the demo starts,
/// so the timeline, the events file and the NIS status agree.
struct Clock {
    start: chrono::DateTime<chrono::FixedOffset>,
}

impl Clock {
    fn at(&self, t: u64) -> chrono::DateTime<chrono::FixedOffset> {
        self.start + chrono::Duration::seconds(i64::try_from(t).unwrap_or(i64::MAX))
    }

    fn show(&self, t: u64) -> String {
        self.at(t).format("%H:%M:%S").to_string()
    }
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
         STATEFILE {r}/laptop-upsd.state\nPIDFILE {r}/laptop-upsd.pid\nJOURNALDIR {r}/journal\n",
        sd = sd.display(),
        r = root.display()
    );
    let conf = apcupsd_conf::parse(&conf_text)?.conf;
    let clock = Clock {
        start: chrono::Local::now().fixed_offset(),
    };

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "laptop-upsd demo: a 50 Wh laptop drawing 20 W loses mains power at {}.\n\
         Rules (apcupsd.conf): ONBATTERYDELAY 6, BATTERYLEVEL 5, MINUTES 3, and the laptop rule\n\
         BATTERYDROP 50 (shut down once half of the charge left at the outage start is gone).\n\
         Fake tree: {}\n\
         Time is virtual: it starts now, at {}, and runs one simulated second per step with\n\
         no waiting. Nothing on this machine is touched: apccontrol only ever runs with\n\
         --dry-run, and files are written only inside the fake tree, which is removed at the end.\n",
        clock.show(UNPLUG_AT),
        root.join("sys/class/power_supply").display(),
        clock.show(0),
    );
    if apccontrol.is_none() {
        let _ = writeln!(
            out,
            "(apccontrol was not found next to laptop-upsd, so the events are listed without\n its dry run; run `cargo build` first to see what apccontrol would do)\n"
        );
    }

    let mut effector = Effector::new(
        &conf,
        Log::silent("laptop-upsd"),
        DryRun::with_scratch(root),
    );
    let mut monitor = Monitor::new(Thresholds::from_conf(&conf), Mono::ZERO);
    let source = Source::new(root);
    let mut energy = FULL_UWH;
    let mut on_mains = true;
    let mut power_back_at: Option<u64> = None;
    let mut charge_at_outage: Option<f64> = None;
    let mut t = 0u64;
    loop {
        if t == UNPLUG_AT {
            on_mains = false;
            let _ = writeln!(
                out,
                "{}  -- AC adapter unplugged (online=0, status=Discharging, 20 W)",
                clock.show(t)
            );
        }
        if power_back_at == Some(t) {
            on_mains = true;
            let _ = writeln!(
                out,
                "{}  -- AC adapter plugged back in (online=1)",
                clock.show(t)
            );
        }
        if !on_mains {
            energy = energy.saturating_sub(DRAW_UW / 3600);
        }
        if let Err(e) = tree.set(on_mains, energy) {
            let _ = writeln!(out, "cannot update the fake tree: {e}");
            break;
        }
        let now = Mono::from_secs(i64::try_from(t).unwrap_or(i64::MAX));
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
                clock.show(t),
                if snapshot.on_battery {
                    "on battery"
                } else {
                    "on mains"
                },
                snapshot.charge_pct.unwrap_or(f64::NAN)
            );
        }
        effector.virtual_time = Some(clock.at(t));
        for effect in &effects {
            if *effect == Effect::Run(Event::Powerout) {
                charge_at_outage = snapshot.charge_pct;
            }
            effector.apply(effect, || monitor.outage_state(now, 0).to_text());
            let notes = effector.effects.take_notes();
            describe(&mut out, &clock.show(t), effect, &notes);
            if *effect == Effect::Run(Event::Loadlimit) {
                explain_loadlimit(&mut out, &conf, snapshot.charge_pct, charge_at_outage);
            }
            if *effect == Effect::Run(Event::Doshutdown) {
                let _ = writeln!(
                    out,
                    "          A real machine would now be shutting down, and off soon after: the\n          \
                     live apccontrol runs the shutdown command shown above. The demo plays on as\n          \
                     if it had stayed up, so that you see the mains return."
                );
            }
        }
        effector.journal_step(&effects, &snapshot, now, clock.at(t));
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
    let now = clock.at(t);
    let last = Mono::from_secs(i64::try_from(t).unwrap_or(i64::MAX));
    let ctx = status::Context {
        conf: &conf,
        upsname: "laptop",
        hostname: "demo",
        start_time: clock.start,
        last_poll: now,
        last_poll_mono: last,
    };
    let record = status::ups_status(&monitor.snapshot(last), &ctx);
    let _ = writeln!(out, "\nThe NIS status apcaccess would print now:");
    for line in crate::nis::status::render(&record, &now).to_text().lines() {
        let _ = writeln!(out, "  {line}");
    }
    outage_report(&mut out, effector.journal(), clock.start);
    let _ = writeln!(
        out,
        "\nNext steps:\n\
         - `laptop-upsd --status` prints this machine's own battery as apcaccess would.\n\
         - `laptop-upsd --dry-run -f /etc/apcupsd/apcupsd.conf` watches the real battery and\n  \
         prints what it would do, doing nothing.\n\
         - To run it for real, follow \"Laptop quick start\" in the README (and laptop-upsd(8))."
    );
    Ok(())
}

/// The report of the demo's outage from its journal (as `apccontrol
/// --report` prints it), and its chart, written to a file that outlives
/// the demo's temporary tree.
fn outage_report(
    out: &mut impl Write,
    journal: Option<&crate::journal::Journal>,
    start: chrono::DateTime<chrono::FixedOffset>,
) {
    let Some(journal) = journal else { return };
    let contents = journal.read();
    let outages = crate::journal::outages(&contents.records);
    let Some(outage) = outages.last() else {
        let _ = writeln!(out, "\n(The outage journal recorded no outage.)");
        return;
    };
    let _ = writeln!(
        out,
        "\nThe report of this outage, as `apccontrol --report` prints it from the outage\n\
         journal (laptop-upsd's side only: apccontrol ran as --dry-run, so there are no\n\
         hook results, and no record that the shutdown was carried out):\n"
    );
    for line in crate::journal::report::outage_text(outage).lines() {
        let _ = writeln!(out, "  {line}");
    }
    let chart = crate::journal::chart::svg(outage).map_err(|e| e.to_string());
    let kept = chart.and_then(|svg| {
        let mut file = tempfile::Builder::new()
            .prefix(&format!(
                "laptop-upsd-demo-{}-",
                start.format("%Y%m%d-%H%M%S")
            ))
            .suffix(".svg")
            .tempfile()
            .map_err(|e| e.to_string())?;
        file.write_all(svg.as_bytes()).map_err(|e| e.to_string())?;
        file.keep().map(|(_, path)| path).map_err(|e| e.to_string())
    });
    match kept {
        Ok(path) => {
            let _ = writeln!(
                out,
                "\nThe chart of this outage (charge, runtime estimate, events) is in\n  {}\n\
                 (`apccontrol --report --svg FILE` draws the same from a real journal.)",
                path.display()
            );
        }
        Err(e) => {
            let _ = writeln!(out, "\n(No chart: {e}.)");
        }
    }
}

/// Name the rule behind a loadlimit: BATTERYLEVEL, or the laptop's BATTERYDROP.
fn explain_loadlimit(
    out: &mut impl Write,
    conf: &apcupsd_conf::ApcupsdConf,
    charge: Option<f64>,
    at_outage: Option<f64>,
) {
    let Some(charge) = charge else { return };
    let text = match at_outage {
        Some(start) if conf.battery_drop > 0 && charge > f64::from(conf.battery_level) => {
            format!(
                "why: BATTERYDROP {}: charge {charge:.0} % is {} of {start:.0} % at the outage start",
                conf.battery_drop,
                if conf.battery_drop == 50 {
                    "half".to_string()
                } else {
                    format!("{} %", conf.battery_drop)
                }
            )
        }
        _ => format!(
            "why: BATTERYLEVEL {}: charge {charge:.0} % is at or below it",
            conf.battery_level
        ),
    };
    let _ = writeln!(out, "          {text}");
}

/// Print one effect and the dry run's notes about it.
fn describe(out: &mut impl Write, at: &str, effect: &Effect, notes: &[Note]) {
    if let Effect::Log { text, .. } = effect {
        let _ = writeln!(out, "{at}  log: {text}");
        return;
    }
    if let Effect::Explain(why) = effect {
        // A loadlimit is explained after its event, in the demo's words.
        if !matches!(
            why,
            Explanation::Loadlimit { .. } | Explanation::BatteryDrop { .. }
        ) {
            let _ = writeln!(out, "{at}  why: {why}");
        }
        return;
    }
    for note in notes {
        match note {
            Note::Apccontrol {
                command,
                event,
                dry_run,
            } => {
                let _ = writeln!(out, "{at}  event {event}: {command}");
                let text = match dry_run {
                    Ok(output) => output.clone(),
                    Err(why) => format!("({why})"),
                };
                for line in text.lines() {
                    let _ = writeln!(out, "            | {line}");
                }
            }
            Note::File { step, path, .. } => {
                let (verb, why) = match (effect, step) {
                    (Effect::SaveState, _) => continue,
                    (Effect::ProhibitLogins, _) => ("write", " (logins prohibited)"),
                    (Effect::AllowLogins, _) => ("remove", " (logins allowed again)"),
                    (_, FileStep::Remove) => ("remove", ""),
                    _ => ("create", ""),
                };
                let _ = writeln!(out, "{at}  {verb} {}{why}", path.display());
            }
            Note::EventsLine { .. } | Note::JournalRecord { .. } | Note::WakeAlarm { .. } => {}
        }
    }
}
