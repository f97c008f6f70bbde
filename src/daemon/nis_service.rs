//! Starting the NIS server thread for the daemon, with its log rate-limited:
//! 500 bad connections must not become 500 journal lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::apcupsd_conf::ApcupsdConf;
use crate::log::{Level, Log};
use crate::nis::published::Published;
use crate::nis::server::ServerConfig;

use super::nis_bind;

/// At most this many NIS server problem lines per minute reach the log: 500
/// bad connections must not become 500 journal lines.
const NIS_LOG_PER_MINUTE: u32 = 20;

/// The NIS server's log sink, rate-limited per minute.
struct NisLog {
    log: Log,
    window: Instant,
    lines: u32,
}

impl NisLog {
    fn line(&mut self, line: &str) {
        if self.window.elapsed() >= Duration::from_secs(60) {
            if self.lines > NIS_LOG_PER_MINUTE {
                let dropped = self.lines - NIS_LOG_PER_MINUTE;
                self.log.warning(&format!(
                    "NIS server: {dropped} more problem lines in the last minute were not logged"
                ));
            }
            self.window = Instant::now();
            self.lines = 0;
        }
        self.lines = self.lines.saturating_add(1);
        if self.lines <= NIS_LOG_PER_MINUTE {
            self.log.warning(line);
        } else if self.lines == NIS_LOG_PER_MINUTE + 1 {
            self.log.warning(&format!(
                "NIS server: more than {NIS_LOG_PER_MINUTE} problems this minute; counting the rest, not logging them"
            ));
        }
    }
}

pub(super) fn start_nis(
    conf: &ApcupsdConf,
    published: Arc<Published>,
    log: &mut Log,
) -> Option<nis_bind::NisKeeper> {
    let mut nis_log = Log::new("laptop-upsd");
    nis_log.echo_to_stderr(Level::Warning);
    let nis_log = Arc::new(std::sync::Mutex::new(NisLog {
        log: nis_log,
        window: Instant::now(),
        lines: 0,
    }));
    let config = ServerConfig {
        events_file: conf.events_file.clone(),
        log: Arc::new(move |line: &str| {
            if let Ok(mut log) = nis_log.lock() {
                log.line(line);
            }
        }),
        // At the cap, a newcomer always gets a slot: the connection that has
        // waited longest is closed. A well-behaved client (apcaccess, a
        // slave) finishes its exchange in milliseconds, so under a flood the
        // longest waiter is nearly always the flood; refusing newcomers
        // instead would let 32 silent sockets lock every client out for
        // the eviction delay (tests/faults.rs, NIS under attack).
        evict_after: Duration::ZERO,
        // apcupsd has no cap at all; 128 keeps 64 honest clients polling at
        // once (Home Assistant, exporters, slaves) clear of eviction.
        max_connections: 128,
        ..ServerConfig::default()
    };
    // Bind failures are retried with backoff, each logged with its likely
    // cause (nis_bind.rs).
    let mut bind_log = Log::new("laptop-upsd");
    bind_log.echo_to_stderr(log.stderr_level().unwrap_or(Level::Notice));
    match nis_bind::keep(conf.nis_ip, conf.nis_port, published, config, bind_log) {
        Ok(keeper) => Some(keeper),
        Err(e) => {
            log.error(&format!("cannot start the NIS server thread: {e}"));
            None
        }
    }
}
