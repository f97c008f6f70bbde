//! `--check` on mail: the built-in mail settings ([`crate::notify`]'s
//! checks), and the `$APCUPSD_MAIL` command the stock hooks pipe into.

use super::commands::resolve;
use super::{Findings, ScriptConfig};

/// The built-in mail settings: wrong values, and what `crate::notify`
/// finds wrong with valid ones.
pub(super) fn check_mail_settings(config: &ScriptConfig, findings: &mut Findings) {
    match crate::notify::MailSettings::from_vars(&config.vars) {
        Ok(Some(mail)) => {
            for problem in crate::notify::check(&mail) {
                findings.problem(config.path.clone(), problem.to_string(), None);
            }
        }
        Ok(None) => {}
        Err(e) => findings.problem(
            config.path.clone(),
            format!("mail settings: {e}"),
            "no mail is sent; the event itself goes on".to_string(),
        ),
    }
}

/// The APCUPSD_MAIL command when it cannot be found, for the hooks that
/// pipe into it.
pub(super) fn mail_command_missing(apcupsd_mail: &str, path_var: Option<&str>) -> Option<String> {
    let program = apcupsd_mail.split_whitespace().next()?;
    resolve(program, path_var)
        .err()
        .map(|_| program.to_string())
}
