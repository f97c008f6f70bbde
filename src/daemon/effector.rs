//! Carrying out the pure monitor's [`Effect`]s as apcupsd would: events
//! file and syslog lines, `SCRIPTDIR/apccontrol EVENT UPSNAME 1 1` started
//! without waiting, the powerfail and nologin files, the state file, and the
//! outage journal. Shared by the daemon ([`Live`]) and the demo ([`DryRun`]);
//! every failure is logged and survived, because the next step may be the
//! one that needs a shutdown.

use std::fs;

use crate::config::apcupsd_conf::ApcupsdConf;
use crate::event::Event;
use crate::journal::sampler::Sampler;
use crate::journal::{Appended, Journal, Record, Writer};
use crate::log::{Level, Log};
use crate::power::{Effect, Mono, Snapshot};

#[cfg(doc)]
use super::dry_run::DryRun;
use super::effects::Effects;
#[cfg(doc)]
use super::effects::Live;
use super::events_file::{self, EventsFile};
use super::{clock, startup::ups_name};

/// Carries out the monitor's effects through an [`Effects`] implementation
/// ([`Live`] in the daemon, [`DryRun`] in the demo). Every failure is logged
/// and survived.
pub(crate) struct Effector<E: Effects> {
    conf: ApcupsdConf,
    upsname: String,
    events: Option<EventsFile>,
    /// What carries the side effects out (or only describes them).
    pub effects: E,
    /// The log all lines go to.
    pub log: Log,
    /// When set, events file lines carry this time instead of the clock's
    /// (the demo runs in virtual time).
    pub virtual_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    journal: Option<Journal>,
    sampler: Sampler,
    boot_id: Option<String>,
    /// The last journal write failed or was dropped (said once until one works).
    journal_trouble: bool,
}

impl<E: Effects> Effector<E> {
    /// An effector for this config.
    pub(crate) fn new(conf: &ApcupsdConf, log: Log, effects: E) -> Effector<E> {
        Effector {
            conf: conf.clone(),
            upsname: ups_name(conf),
            events: conf
                .events_file
                .as_deref()
                .map(|path| EventsFile::new(path, conf.events_file_max)),
            effects,
            log,
            virtual_time: None,
            journal: conf.journal_dir.as_deref().map(Journal::new),
            sampler: Sampler::default(),
            boot_id: clock::boot_id(),
            journal_trouble: false,
        }
    }

    /// The outage journal, if JOURNALDIR is set.
    pub(crate) fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Write what one monitor step means for the outage journal: each
    /// event's decision with its reason, a reading at most every 10 s on
    /// battery ([`Sampler`]). Called after the step's effects were carried
    /// out, so it never comes before a shutdown; a failure is logged once
    /// and changes nothing else.
    /// `at` is when the step began (before its apccontrol runs started),
    /// unless the effector runs in virtual time.
    pub(crate) fn journal_step(
        &mut self,
        effects: &[Effect],
        snapshot: &Snapshot,
        now: Mono,
        at: chrono::DateTime<chrono::FixedOffset>,
    ) {
        let Some(journal) = self.journal.clone() else {
            return;
        };
        let entries = self.sampler.step(effects, snapshot, &self.conf, now);
        if entries.is_empty() {
            return;
        }
        let at = self.virtual_time.unwrap_or(at);
        for entry in entries {
            let record = Record::new(Writer::LaptopUpsd, &at, self.boot_id.clone(), entry);
            match self.effects.append_journal(&journal, &record) {
                Ok(Appended::Written { .. }) => self.journal_trouble = false,
                Ok(Appended::Dropped { bound }) => {
                    if !std::mem::replace(&mut self.journal_trouble, true) {
                        self.log.notice(&format!(
                            "outage journal {}: at its bound of {bound} bytes for this outage; \
                             further records of this kind are dropped",
                            journal.path().display()
                        ));
                    }
                }
                Err(e) => {
                    if !std::mem::replace(&mut self.journal_trouble, true) {
                        self.log.warning(&format!(
                            "outage journal: cannot write ({e}); monitoring goes on, said once \
                             until a write works again"
                        ));
                    }
                }
            }
        }
    }

    /// A line for syslog and the events file, as apcupsd's `log_event`.
    pub(crate) fn event_line(&mut self, level: Level, text: &str) {
        self.log.line(level, text);
        if let Some(events) = &self.events {
            let at = self
                .virtual_time
                .unwrap_or_else(|| chrono::Local::now().fixed_offset());
            let line = events_file::format_line(&at, text);
            if let Err(e) = self.effects.append_event_line(events, &line) {
                let path = events.path().display().to_string();
                self.log
                    .error(&format!("cannot write events file {path}: {e}"));
            }
        }
    }

    /// Do one effect. `state` gives the text for [`Effect::SaveState`].
    pub(crate) fn apply(&mut self, effect: &Effect, state: impl FnOnce() -> String) {
        match effect {
            Effect::Log { text, severity } => self.event_line((*severity).into(), text),
            Effect::Explain(why) => self.log.line(why.level(), &why.to_string()),
            Effect::Run(event) => self.run_apccontrol(*event),
            Effect::CreatePowerfail => {
                let path = self.conf.powerfail_path();
                if let Err(e) = self.effects.write_file(&path, b"") {
                    self.log
                        .error(&format!("Unable to create {}: ERR={e}", path.display()));
                }
            }
            Effect::ProhibitLogins => {
                let path = self.conf.nologin_path();
                if let Err(e) = self.effects.replace_file(&path, b"POWER FAILURE\n") {
                    self.log
                        .error(&format!("cannot write {}: {e}", path.display()));
                }
            }
            Effect::AllowLogins => {
                // Only our own file: apcupsd removes any nologin, even an
                // admin's; we leave one that does not say POWER FAILURE.
                let path = self.conf.nologin_path();
                if fs::read_to_string(&path).is_ok_and(|t| t.contains("POWER FAILURE")) {
                    if let Err(e) = self.effects.remove_file(&path) {
                        self.log
                            .error(&format!("cannot remove {}: {e}", path.display()));
                    }
                }
            }
            Effect::SaveState => {
                let path = self.conf.state_file.clone();
                if let Err(e) = self.effects.replace_file(&path, state().as_bytes()) {
                    self.log.error(&format!(
                        "cannot save the outage state to {}: {e}",
                        path.display()
                    ));
                }
            }
        }
    }

    /// Start `SCRIPTDIR/apccontrol EVENT UPSNAME 1 1` without waiting.
    fn run_apccontrol(&mut self, event: Event) {
        let program = self.conf.apccontrol_path();
        match self
            .effects
            .start_apccontrol(&program, event, &self.upsname)
        {
            Ok(how) => self.log.info(&format!(
                "started {} {} {} 1 1 ({how})",
                program.display(),
                event,
                self.upsname,
            )),
            Err(e) => self
                .log
                .error(&format!("Cannot exec {} {event}: {e}", program.display())),
        }
    }
}
