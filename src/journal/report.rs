//! The text of `apccontrol --report` and of the post-outage mail: per
//! outage, its span, time on battery, lowest charge and time left, every
//! event in order with its reason, every hook with its exit status and
//! duration (and the one that vetoed), each default action with its
//! result, and whether the machine shut down and when it was back.
//!
//! Pure: outages in, text out. Lines stay under 78 columns where the data
//! allows, so the mail goes out as plain text.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset};

use super::outage::{writer_name, EventSteps, Outage};
use super::record::{Entry, Record, Run};

/// `2 h 05 min`, `38 min 12 s`, `45 s`, `0.4 s`.
pub(crate) fn duration_text(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "unknown".to_string();
    }
    if secs < 10.0 {
        return format!("{secs:.1} s");
    }
    let whole = secs.round() as u64;
    let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

fn day_and_time(at: &DateTime<FixedOffset>) -> String {
    at.format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// The time of day, with the date when it is not `day`'s.
fn clock(at: &DateTime<FixedOffset>, day: &DateTime<FixedOffset>) -> String {
    if at.date_naive() == day.date_naive() {
        at.format("%H:%M:%S").to_string()
    } else {
        at.format("%m-%d %H:%M:%S").to_string()
    }
}

/// One line per outage: when, how long, how it ended.
pub(crate) fn summary(outage: &Outage) -> String {
    let start = outage
        .start()
        .map_or_else(|| "?".to_string(), |s| day_and_time(&s));
    let on_battery = outage
        .on_battery_secs()
        .map_or_else(|| "unknown".to_string(), duration_text);
    format!("{start}, {on_battery} on battery, {}", ending(outage))
}

/// How the outage ended, in a few words.
pub(crate) fn ending(outage: &Outage) -> String {
    match (
        &outage.closed,
        outage.shutdown_carried_out(),
        outage.power_back(),
    ) {
        (Some(closed), _, _) if !closed.stayed_up => match closed.down_secs {
            Some(down) => format!("shut down, back after {}", duration_text(down)),
            None => "shut down, back later".to_string(),
        },
        (_, true, _) => "shut down".to_string(),
        (_, false, Some(_)) => "power back, stayed up".to_string(),
        (_, false, None) => "in progress".to_string(),
    }
}

/// The UPS name apccontrol was given, if any record says.
fn ups_name(outage: &Outage) -> Option<&str> {
    outage.records.iter().find_map(|r| match &r.entry {
        Entry::Run(run) if !run.ups.is_empty() => Some(run.ups.as_str()),
        _ => None,
    })
}

/// The report of one outage.
pub(crate) fn outage_text(outage: &Outage) -> String {
    let mut out = String::new();
    let Some(start) = outage.start() else {
        return out;
    };
    let _ = writeln!(
        out,
        "Outage of {}{}",
        day_and_time(&start),
        ups_name(outage)
            .map(|u| format!(" (UPS {u})"))
            .unwrap_or_default()
    );
    let first_event = outage
        .records
        .first()
        .and_then(Record::event)
        .unwrap_or("powerout");
    let _ = writeln!(
        out,
        "  Start:       {} ({first_event})",
        clock(&start, &start)
    );
    let end = match outage.power_back() {
        Some(back) => format!("{} (power back)", clock(&back, &start)),
        None => match outage.last() {
            Some(last) if outage.shutdown().is_some() => {
                format!("{} (last record before the shutdown)", clock(&last, &start))
            }
            Some(last) => format!("not yet (last record {})", clock(&last, &start)),
            None => "unknown".to_string(),
        },
    };
    let _ = writeln!(out, "  End:         {end}");
    let _ = writeln!(
        out,
        "  On battery:  {}",
        outage
            .on_battery_secs()
            .map_or_else(|| "unknown".to_string(), duration_text)
    );
    let lowest_charge = outage
        .lowest_charge()
        .map_or_else(|| "unknown".to_string(), |c| format!("{c:.0} %"));
    let lowest_runtime = outage
        .lowest_runtime()
        .map_or_else(|| "unknown".to_string(), |m| format!("{m:.1} min"));
    let _ = writeln!(
        out,
        "  Lowest:      charge {lowest_charge}, time left {lowest_runtime}"
    );
    let _ = writeln!(out, "  Shut down:   {}", shutdown_text(outage, &start));
    let _ = writeln!(out, "  Events:");
    let mut notes = outage
        .records
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Note(note) => Some((r.time()?, note.text.as_str())),
            _ => None,
        })
        .peekable();
    for step in outage.events() {
        let at = step.at();
        while let Some((note_at, text)) = notes.next_if(|(t, _)| Some(*t) < at) {
            let _ = writeln!(out, "    {}  note: {text}", clock(&note_at, &start));
        }
        event_text(&mut out, &step, &start);
    }
    for (note_at, text) in notes {
        let _ = writeln!(out, "    {}  note: {text}", clock(&note_at, &start));
    }
    if let Some(closed) = &outage.closed {
        let _ = writeln!(out, "  Mail:        {}", closed.mail);
    }
    out
}

fn shutdown_text(outage: &Outage, start: &DateTime<FixedOffset>) -> String {
    let Some(shutdown) = outage.shutdown() else {
        return match outage.power_back() {
            Some(_) => "no: the power came back first".to_string(),
            None => "no (not so far)".to_string(),
        };
    };
    let how = match shutdown.carried_out {
        Some(true) => format!("{} at {}", shutdown.event, clock(&shutdown.at, start)),
        Some(false) => {
            return format!(
                "no: {} at {} was vetoed or failed (see below)",
                shutdown.event,
                clock(&shutdown.at, start)
            )
        }
        None => format!(
            "{} at {} (no record of apccontrol's run)",
            shutdown.event,
            clock(&shutdown.at, start)
        ),
    };
    match &outage.closed {
        Some(closed) if !closed.stayed_up => {
            let back = closed
                .back_at
                .as_deref()
                .and_then(|b| DateTime::parse_from_rfc3339(b).ok())
                .map_or_else(|| "later".to_string(), |b| day_and_time(&b));
            let down = closed
                .down_secs
                .map(|d| format!(", down for {}", duration_text(d)))
                .unwrap_or_default();
            format!("yes, {how}; back at {back}{down}")
        }
        Some(_) => format!("asked, {how}, but the machine stayed up"),
        None => format!("yes, {how}; not back since (or not yet recorded)"),
    }
}

fn event_text(out: &mut String, step: &EventSteps<'_>, start: &DateTime<FixedOffset>) {
    let at = step
        .at()
        .map_or_else(|| "?".to_string(), |t| clock(&t, start));
    let _ = writeln!(out, "    {at}  {}", step.event);
    if let Some(Entry::Decision(decision)) = step.decision.map(|r| &r.entry) {
        let _ = writeln!(out, "              why: {}", decision.reason);
        if let Some(reading) = &decision.reading {
            let mut parts = Vec::new();
            if let Some(c) = reading.charge {
                parts.push(format!("charge {c:.0} %"));
            }
            if let Some(m) = reading.runtime_min {
                parts.push(format!("runtime {m:.1} min"));
            }
            if let Some(w) = reading.power_w {
                parts.push(format!("{w:.1} W"));
            }
            if let Some(ac) = reading.ac {
                parts.push(format!("AC {}", if ac { "online" } else { "offline" }));
            }
            if !parts.is_empty() {
                let _ = writeln!(out, "              reading: {}", parts.join(", "));
            }
        }
    }
    match step.run.map(|r| (&r.entry, r.by)) {
        Some((Entry::Run(run), by)) => run_text(out, run, writer_name(by)),
        _ if step.decision.is_some() => {
            let _ = writeln!(
                out,
                "              apccontrol: no record (a stock script, a dry run, or still running)"
            );
        }
        _ => {}
    }
}

fn run_text(out: &mut String, run: &Run, who: &str) {
    if let Some(status) = &run.status {
        let mut parts = Vec::new();
        if let Some(s) = &status.status {
            parts.push(format!("STATUS {s}"));
        }
        if let Some(c) = status.charge {
            parts.push(format!("charge {c:.0} %"));
        }
        if let Some(m) = status.timeleft_min {
            parts.push(format!("time left {m:.1} min"));
        }
        if let Some(l) = status.load_pct {
            parts.push(format!("load {l:.0} %"));
        }
        if !parts.is_empty() {
            let _ = writeln!(
                out,
                "              UPS during the run: {}",
                parts.join(", ")
            );
        }
    }
    if run.hooks.is_empty() {
        let _ = writeln!(out, "              hooks: none");
    }
    for hook in &run.hooks {
        let flag = if hook.veto {
            "  << VETO"
        } else if hook.timed_out {
            "  << TIMED OUT"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "              hook {}: {}, {}{flag}",
            hook.path,
            hook.result,
            duration_text(hook.secs)
        );
    }
    if run.hooks_dropped > 0 {
        let _ = writeln!(
            out,
            "              ({} more hooks not recorded)",
            run.hooks_dropped
        );
    }
    match &run.vetoed_by {
        Some(by) => {
            let _ = writeln!(
                out,
                "              default action: skipped, vetoed by {by} (exit 99)"
            );
        }
        None if run.actions.is_empty() => {
            let _ = writeln!(out, "              default action: none");
        }
        None => {
            for action in &run.actions {
                let result = match (&action.detail, action.ok) {
                    (None, true) => "done".to_string(),
                    (Some(detail), true) => format!("done ({detail})"),
                    (None, false) => "FAILED".to_string(),
                    (Some(detail), false) => format!("FAILED: {detail}"),
                };
                let _ = writeln!(
                    out,
                    "              default action: {} -- {result}",
                    action.step
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "              {who}: exit status {}, {}",
        run.exit,
        duration_text(run.secs)
    );
}

/// The whole report: the last outage, or every one (oldest first).
pub(crate) fn report(outages: &[Outage], all: bool) -> String {
    let chosen: Vec<&Outage> = if all {
        outages.iter().collect()
    } else {
        outages.last().into_iter().collect()
    };
    let mut out = String::new();
    if all && outages.len() > 1 {
        let _ = writeln!(out, "{} outages in the journal:", outages.len());
        for (n, outage) in outages.iter().enumerate() {
            let _ = writeln!(out, "  {}. {}", n + 1, summary(outage));
        }
        out.push('\n');
    }
    for (n, outage) in chosen.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&outage_text(outage));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::outage::outages;
    use super::super::record::{Action, Closed, Decision, HookRecord, Reading, Writer};
    use super::*;

    fn at(secs: i64) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-22T14:00:00+01:00").unwrap()
            + chrono::Duration::seconds(secs)
    }

    fn decision(secs: i64, event: &str, reason: &str, charge: f64) -> Record {
        Record::new(
            Writer::LaptopUpsd,
            &at(secs),
            None,
            Entry::Decision(Decision {
                event: event.into(),
                reason: reason.into(),
                reading: Some(Reading {
                    on_battery: true,
                    ac: Some(false),
                    charge: Some(charge),
                    runtime_min: Some(charge * 1.5),
                    power_w: Some(20.0),
                    battery: Some("Discharging".into()),
                }),
            }),
        )
    }

    fn run(
        secs: i64,
        event: &str,
        hooks: Vec<HookRecord>,
        veto: bool,
        actions: Vec<Action>,
    ) -> Record {
        Record::new(
            Writer::Apccontrol,
            &at(secs),
            None,
            Entry::Run(Run {
                event: event.into(),
                ups: "laptop".into(),
                status: None,
                vetoed_by: veto.then(|| hooks[0].path.clone()),
                hooks,
                hooks_dropped: 0,
                actions,
                exit: 0,
                secs: 0.05,
            }),
        )
    }

    fn hook(path: &str, result: &str, exit: Option<i32>, timed_out: bool, secs: f64) -> HookRecord {
        HookRecord {
            path: path.into(),
            result: result.into(),
            exit,
            signal: timed_out.then_some(15),
            timed_out,
            veto: exit == Some(99),
            secs,
        }
    }

    #[test]
    fn the_report_names_every_step_and_its_result() {
        let records = vec![
            decision(0, "powerout", "the AC adapter went offline", 98.0),
            run(0, "powerout", Vec::new(), false, Vec::new()),
            decision(6, "onbattery", "on battery for ONBATTERYDELAY 6 s", 97.0),
            run(
                6,
                "onbattery",
                vec![hook(
                    "/sd/onbattery",
                    "stopped with SIGTERM because HOOK_TIMEOUT was reached (not a veto)",
                    None,
                    true,
                    2.0,
                )],
                false,
                vec![Action {
                    step: "wall \"Power failure on UPS laptop. Running on batteries.\"".into(),
                    ok: true,
                    detail: None,
                }],
            ),
            decision(
                1200,
                "loadlimit",
                "loadlimit: charge 49 % is 50 % of 98 % at outage start (BATTERYDROP 50)",
                49.0,
            ),
            run(
                1200,
                "loadlimit",
                vec![hook(
                    "/sd/loadlimit",
                    "exit status 99: default action vetoed",
                    Some(99),
                    false,
                    0.01,
                )],
                true,
                Vec::new(),
            ),
            decision(1200, "doshutdown", "after loadlimit", 49.0),
            run(
                1200,
                "doshutdown",
                Vec::new(),
                false,
                vec![Action {
                    step: "/bin/shutdown -h now \"apcupsd UPS laptop initiated shutdown\"".into(),
                    ok: true,
                    detail: None,
                }],
            ),
            Record::new(
                Writer::Apccontrol,
                &at(4000),
                None,
                Entry::Closed(Closed {
                    outage: at(0).to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
                    stayed_up: false,
                    back_at: Some(at(3600).to_rfc3339()),
                    down_secs: Some(2400.0),
                    mail: "queued".into(),
                }),
            ),
        ];
        let found = outages(&records);
        let text = report(&found, false);
        for expected in [
            "Outage of 2026-11-22 14:00:00 +01:00 (UPS laptop)",
            "On battery:  20 min 00 s",
            "Lowest:      charge 49 %, time left 73.5 min",
            "Shut down:   yes, doshutdown at 14:20:00; back at 2026-11-22 15:00:00 +01:00, down for 40 min 00 s",
            "why: loadlimit: charge 49 % is 50 % of 98 % at outage start (BATTERYDROP 50)",
            "hook /sd/onbattery: stopped with SIGTERM because HOOK_TIMEOUT was reached (not a veto), 2.0 s  << TIMED OUT",
            "hook /sd/loadlimit: exit status 99: default action vetoed, 0.0 s  << VETO",
            "default action: skipped, vetoed by /sd/loadlimit (exit 99)",
            "default action: wall \"Power failure on UPS laptop. Running on batteries.\" -- done",
            "default action: /bin/shutdown -h now \"apcupsd UPS laptop initiated shutdown\" -- done",
            "Mail:        queued",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert_eq!(
            summary(&found[0]),
            "2026-11-22 14:00:00 +01:00, 20 min 00 s on battery, shut down, back after 40 min 00 s"
        );
    }

    #[test]
    fn durations_read_like_a_person_says_them() {
        assert_eq!(duration_text(0.42), "0.4 s");
        assert_eq!(duration_text(45.0), "45 s");
        assert_eq!(duration_text(2292.0), "38 min 12 s");
        assert_eq!(duration_text(7500.0), "2 h 05 min");
        assert_eq!(duration_text(f64::NAN), "unknown");
        assert_eq!(duration_text(-1.0), "unknown");
    }
}
