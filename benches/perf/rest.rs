//! Benchmark 2, at rest: laptop-upsd and an apcupsd slave side by side over a
//! battery window and a mains window: CPU, wakeups (and what could cause
//! them), peak RSS, from /proc.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::laptop::{Laptop, Slave};
use crate::support::{free_port, stamps, wait_stamp};
use crate::table::{ms, ratio, Table};
use crate::{APCUPSD, LAPTOP_UPSD};

/// Each at-rest window (the 60 s).
pub(crate) const REST_WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
pub(crate) struct ThreadStat {
    pub(crate) comm: String,
    /// Voluntary context switches: the thread blocked and was woken.
    pub(crate) switches: u64,
    /// Involuntary ones: preempted while running.
    pub(crate) preempted: u64,
    pub(crate) run_ns: u64,
}

#[derive(Clone, Default)]
pub(crate) struct ProcSnap {
    pub(crate) ticks: u64,
    /// The process CPU clock (clock_getcpuclockid): ns, every thread, exited ones too.
    pub(crate) cpu_ns: u64,
    pub(crate) threads: HashMap<u32, ThreadStat>,
    pub(crate) hwm_kb: u64,
    pub(crate) anon_kb: u64,
    pub(crate) file_kb: u64,
}

pub(crate) fn status_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn snap(pid: u32) -> ProcSnap {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let stat = fs::read_to_string(base.join("stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let status = fs::read_to_string(base.join("status")).unwrap_or_default();
    let mut threads = HashMap::new();
    if let Ok(entries) = fs::read_dir(base.join("task")) {
        for e in entries.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let p = e.path();
            let st = fs::read_to_string(p.join("status")).unwrap_or_default();
            let sched = fs::read_to_string(p.join("schedstat")).unwrap_or_default();
            threads.insert(
                tid,
                ThreadStat {
                    comm: fs::read_to_string(p.join("comm"))
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                    switches: status_field(&st, "voluntary_ctxt_switches:"),
                    preempted: status_field(&st, "nonvoluntary_ctxt_switches:"),
                    run_ns: sched
                        .split_whitespace()
                        .next()
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(0),
                },
            );
        }
    }
    let cpu_ns = nix::time::clock_getcpuclockid(nix::unistd::Pid::from_raw(pid as i32))
        .and_then(nix::time::clock_gettime)
        .map_or(0, |t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0)
        });
    ProcSnap {
        ticks,
        cpu_ns,
        threads,
        hwm_kb: status_field(&status, "VmHWM:"),
        anon_kb: status_field(&status, "RssAnon:"),
        file_kb: status_field(&status, "RssFile:"),
    }
}

/// What, besides its timer, can wake laptop-upsd's monitor loop in a window.
#[derive(Debug)]
pub(crate) struct WakeCauses {
    /// apccontrol runs that ended (SIGCHLD).
    pub(crate) apccontrol_runs: usize,
    /// Pages the main thread had to wait for.
    pub(crate) major_faults: u64,
    /// The uevents on its group (`None`: the census socket could not open).
    pub(crate) census: Option<UeventCensus>,
}

impl WakeCauses {
    pub(crate) fn describe(&self) -> String {
        let uevents = match &self.census {
            None => {
                "uevents were not counted (the bench could not open a netlink socket)".to_string()
            }
            Some(c) => format!(
                "{} uevent(s) on its group, {} about a power supply (they pass its socket filter), of which {} from the kernel (the only ones it believes); the power_supply ones came in {} burst(s){}",
                c.all,
                c.power_supply,
                c.from_kernel,
                c.bursts,
                if c.senders.is_empty() {
                    String::new()
                } else {
                    format!(", sent by {}", c.senders.join(", "))
                }
            ),
        };
        format!(
            "{} apccontrol run(s) ended (SIGCHLD), {} major page fault(s) on the main thread, {uevents}",
            self.apccontrol_runs, self.major_faults
        )
    }
}

pub(crate) struct Usage {
    pub(crate) cpu_ticks_ms: f64,
    pub(crate) cpu_ms: f64,
    pub(crate) run_ms: f64,
    pub(crate) anon_kb: u64,
    pub(crate) file_kb: u64,
    /// Voluntary switches, all threads.
    pub(crate) wakeups: u64,
    /// Involuntary switches, all threads.
    pub(crate) preempted: u64,
    pub(crate) main_wakeups: u64,
    /// Per thread: name, voluntary, involuntary.
    pub(crate) per_thread: Vec<(String, u64, u64)>,
    pub(crate) exited: usize,
    pub(crate) hwm_kb: u64,
}

pub(crate) fn usage(pid: u32, a: &ProcSnap, b: &ProcSnap) -> Usage {
    let hz = 100.0; // USER_HZ on Linux
    let mut wakeups = 0;
    let mut preempted = 0;
    let mut run_ns = 0;
    let mut per_thread = Vec::new();
    for (tid, t) in &b.threads {
        let before = a.threads.get(tid).cloned().unwrap_or_default();
        let w = t.switches.saturating_sub(before.switches);
        let p = t.preempted.saturating_sub(before.preempted);
        wakeups += w;
        preempted += p;
        run_ns += t.run_ns.saturating_sub(before.run_ns);
        per_thread.push((t.comm.clone(), w, p));
    }
    per_thread.sort();
    let main_wakeups = match (a.threads.get(&pid), b.threads.get(&pid)) {
        (Some(x), Some(y)) => y.switches.saturating_sub(x.switches),
        _ => 0,
    };
    Usage {
        cpu_ticks_ms: (b.ticks.saturating_sub(a.ticks)) as f64 * 1000.0 / hz,
        cpu_ms: b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / 1e6,
        run_ms: run_ns as f64 / 1e6,
        anon_kb: b.anon_kb,
        file_kb: b.file_kb,
        wakeups,
        preempted,
        main_wakeups,
        per_thread,
        exited: a
            .threads
            .keys()
            .filter(|t| !b.threads.contains_key(t))
            .count(),
        hwm_kb: b.hwm_kb,
    }
}

// ---------------------------------------------------------------- 2. at rest

/// Every uevent on the group laptop-upsd listens to, counted while a
/// window lasts, so the notes can say what woke its monitor loop.
#[derive(Debug, Default, Clone)]
pub(crate) struct UeventCensus {
    /// All messages.
    pub(crate) all: u64,
    /// About a power supply (they pass laptop-upsd's socket filter).
    pub(crate) power_supply: u64,
    /// Of those, sent by the kernel (port id 0): the ones it believes.
    pub(crate) from_kernel: u64,
    /// The power_supply ones in bursts (gaps over 20 ms): a burst wakes
    /// the loop a few times, not once a message.
    pub(crate) bursts: u64,
    /// The processes that sent power_supply messages (pid from SO_PASSCRED).
    pub(crate) senders: Vec<String>,
}

/// Counts uevents on `group` on a thread of its own until the returned
/// flag is set; the thread's result is the census.
pub(crate) fn uevent_census(
    group: apccontrol::daemon::uevent::Group,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<Option<UeventCensus>>,
) {
    use apccontrol::daemon::uevent::{is_power_supply, udev_properties, Group};
    use nix::sys::socket::{
        bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
        NetlinkAddr, SockFlag, SockProtocol, SockType,
    };
    use std::os::fd::{AsFd, AsRawFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .ok()?;
        setsockopt(&fd, sockopt::PassCred, &true).ok()?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, group.number())).ok()?;
        let mut census = UeventCensus::default();
        let mut last: Option<Instant> = None;
        let mut buf = vec![0u8; 16384];
        while !flag.load(Ordering::Relaxed) {
            let mut fds = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            if !matches!(nix::poll::poll(&mut fds, 200u16), Ok(n) if n > 0) {
                continue;
            }
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let Ok(msg) = recvmsg::<NetlinkAddr>(
                fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) else {
                continue;
            };
            let (len, port) = (msg.bytes, msg.address.map_or(0, |a| a.pid()));
            let pid = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                    _ => None,
                })
            });
            let message = &buf[..len.min(buf.len())];
            census.all += 1;
            let supply = match group {
                Group::Kernel => is_power_supply(message),
                Group::Udev => udev_properties(message).is_some_and(is_power_supply),
            };
            if !supply {
                continue;
            }
            census.power_supply += 1;
            let now = Instant::now();
            if last.is_none_or(|t| now.duration_since(t) > Duration::from_millis(20)) {
                census.bursts += 1;
            }
            last = Some(now);
            if port == 0 {
                census.from_kernel += 1;
            } else if let Some(pid) = pid {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map_or_else(|_| "gone".to_string(), |c| c.trim().to_string());
                let who = format!("pid {pid} ({comm})");
                if !census.senders.contains(&who) {
                    census.senders.push(who);
                }
            }
        }
        Some(census)
    });
    (stop, handle)
}

/// Major page faults of one thread (it blocked reading a page back in).
pub(crate) fn major_faults(pid: u32, tid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.to_string();
            after.split_whitespace().nth(9)?.parse().ok()
        })
        .unwrap_or(0)
}

pub(crate) fn bench_rest(table: &mut Table) {
    println!(
        "## 2. at rest: {} s on battery, then {} s on mains, laptop-upsd and an apcupsd slave side by side",
        REST_WINDOW.as_secs(),
        REST_WINDOW.as_secs()
    );
    let port = free_port();
    let laptop = Laptop::new(&format!("NETSERVER on\nNISIP 127.0.0.1\nNISPORT {port}\n"));
    // Start on battery: both notice at once at startup, so no POLLTIME-long
    // wait for a transition eats into the windows (on mains both poll every 60 s).
    laptop.supply(false, 80, "Discharging");
    let mut ours = laptop.start();
    let slave = Slave::new(port, None);
    std::thread::sleep(Duration::from_millis(300));
    let mut apc = slave.start();
    let ours_on = wait_stamp(&laptop.sd, "onbattery", 0, Duration::from_secs(30));
    let apc_on = wait_stamp(slave.dir.path(), "onbattery", 0, Duration::from_secs(30));
    assert!(ours.alive(), "laptop-upsd died: {}", laptop.stderr());
    assert!(apc.alive(), "the apcupsd slave died");
    println!(
        "  onbattery seen: laptop-upsd {}, apcupsd slave {}",
        ours_on.is_some(),
        apc_on.is_some()
    );
    std::thread::sleep(Duration::from_secs(2));
    let uevents = !laptop.stderr().contains("no kernel uevents");
    println!("  netlink uevent socket available to laptop-upsd: {uevents}");

    let mut phases = Vec::new();
    for phase in ["battery", "mains"] {
        if phase == "mains" {
            let from_ours = stamps(&laptop.sd).len();
            let from_apc = stamps(slave.dir.path()).len();
            laptop.supply(true, 80, "Charging");
            let a = wait_stamp(&laptop.sd, "mainsback", from_ours, Duration::from_secs(20));
            let b = wait_stamp(
                slave.dir.path(),
                "mainsback",
                from_apc,
                Duration::from_secs(20),
            );
            println!(
                "  mainsback seen: laptop-upsd {}, apcupsd slave {}",
                a.is_some(),
                b.is_some()
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        let (stop, census) = uevent_census(apccontrol::daemon::uevent::Group::for_this_machine());
        let runs_before = stamps(&laptop.sd).len();
        let faults_before = major_faults(ours.pid(), ours.pid());
        let (a0, b0) = (snap(ours.pid()), snap(apc.pid()));
        std::thread::sleep(REST_WINDOW);
        let (a1, b1) = (snap(ours.pid()), snap(apc.pid()));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let census = census.join().ok().flatten();
        let causes = WakeCauses {
            apccontrol_runs: stamps(&laptop.sd).len().saturating_sub(runs_before),
            major_faults: major_faults(ours.pid(), ours.pid()).saturating_sub(faults_before),
            census,
        };
        println!("  {phase}: what could wake laptop-upsd's monitor loop: {causes:?}");
        assert!(ours.alive(), "laptop-upsd died: {}", laptop.stderr());
        assert!(apc.alive(), "the apcupsd slave died");
        let u = usage(ours.pid(), &a0, &a1);
        let v = usage(apc.pid(), &b0, &b1);
        for (name, x) in [("laptop-upsd", &u), ("apcupsd", &v)] {
            println!(
                "  {phase} {name}: cpu {} (process CPU clock) / {} (utime+stime) / {} (schedstat of live threads), wakeups {} and {} preemption(s) (main thread {}; per thread (name, wakeups, preemptions) {:?}; {} thread(s) exited), VmHWM {} KiB (now RssAnon {} + RssFile {})",
                ms(x.cpu_ms),
                ms(x.cpu_ticks_ms),
                ms(x.run_ms),
                x.wakeups,
                x.preempted,
                x.main_wakeups,
                x.per_thread,
                x.exited,
                x.hwm_kb,
                x.anon_kb,
                x.file_kb
            );
        }
        phases.push((phase, u, v, causes));
    }
    ours.stop();
    apc.stop();

    for (phase, u, v, _) in &phases {
        let w = REST_WINDOW.as_secs();
        let cpu_ok = u.cpu_ms <= v.cpu_ms;
        table.row([
            &format!("2. at rest, {w} s on {phase}: CPU time (process CPU clock; utime+stime in 10 ms ticks)"),
            &format!("{} ({})", ms(u.cpu_ms), ms(u.cpu_ticks_ms)),
            &format!("apcupsd slave {} ({})", ms(v.cpu_ms), ms(v.cpu_ticks_ms)),
            &ratio(u.cpu_ms, v.cpu_ms),
            "≤ apcupsd",
            if cpu_ok { "yes" } else { "**no** (see notes)" },
        ]);
        table.row([
            &format!("2. at rest, {w} s on {phase}: wakeups (voluntary context switches, all threads; preemptions in brackets)"),
            &format!("{} ({}) (monitor loop {})", u.wakeups, u.preempted, u.main_wakeups),
            &format!("apcupsd slave {} ({})", v.wakeups, v.preempted),
            &ratio(u.wakeups as f64, v.wakeups as f64),
            if *phase == "mains" {
                "monitor loop ≤ 2 per POLLTIME (60 s)"
            } else {
                "none (fast poll: 1 s)"
            },
            if *phase == "mains" {
                if u.main_wakeups <= 2 {
                    "yes"
                } else {
                    "**no** (see notes)"
                }
            } else {
                "n/a"
            },
        ]);
        table.row([
            &format!("2. at rest, after the {phase} window: peak RSS (VmHWM)"),
            &format!(
                "{} KiB (now {} anon + {} file)",
                u.hwm_kb, u.anon_kb, u.file_kb
            ),
            &format!(
                "apcupsd slave {} KiB (now {} anon + {} file)",
                v.hwm_kb, v.anon_kb, v.file_kb
            ),
            &ratio(u.hwm_kb as f64, v.hwm_kb as f64),
            "≤ apcupsd",
            if u.hwm_kb <= v.hwm_kb {
                "yes"
            } else {
                "**no** (see notes)"
            },
        ]);
    }
    let mains = phases.iter().find(|p| p.0 == "mains");
    let size = |p: &str| fs::metadata(p).map_or(0, |m| m.len() / 1024);
    let group = if Path::new(apccontrol::daemon::uevent::UDEV_CONTROL).exists() {
        "udev's monitor group (udevd runs here), with libudev's socket filter on the subsystem"
    } else {
        "the kernel's uevent group (no udevd here), with the socket filter that drops other subsystems' uevents in the kernel"
    };
    let tree = laptop.tree_place();
    table.note(format!(
        "At rest: one laptop-upsd (POLLTIME 60, the default; NETSERVER on, serving the slave) and one `/sbin/apcupsd -b` as its network slave (UPSTYPE net, POLLTIME 60, NETSERVER off, polling laptop-upsd's NIS), measured over the same {w} s windows; laptop-upsd's fake /sys tree is {tree}. \
         CPU = the process CPU clock (`clock_getcpuclockid`, ns, every thread including exited ones, user and kernel time; the verdict uses it) and utime+stime from /proc/PID/stat (10 ms ticks, too coarse at this scale); wakeups = voluntary context switches (the thread blocked and was woken) summed over /proc/PID/task/*, with involuntary ones (preempted while running, which a busy machine causes) in brackets; peak RSS = VmHWM. \
         Both start on battery (so both see it at once, not up to 60 s late) and the battery window starts 2 s after both ran onbattery; then the adapter comes back and the mains window starts 2 s after both ran mainsback. \
         laptop-upsd listens to {uev}{mains}. It has two threads: the monitor loop (main thread: a poll on its signalfd and uevent socket until the next reading) and `nis`, one poll loop that serves every NIS client (no thread per connection) from a status rendered at the first request after each reading.",
        w = REST_WINDOW.as_secs(),
        uev = if uevents { group } else { "no uevents (the netlink socket could not be opened; polling only)" },
        mains = mains.map_or(String::new(), |(_, u, _, _)| format!(
            "; on mains its monitor loop (main thread) woke {} time(s) in {} s; per thread (name, wakeups, preemptions) {:?}",
            u.main_wakeups,
            REST_WINDOW.as_secs(),
            u.per_thread
        ))
    ));
    for (phase, u, v, _) in &phases {
        if u.cpu_ms > v.cpu_ms {
            table.note(format!(
                "CPU on {phase} missed: {} vs {} over {} s. Both poll every {}. At each reading laptop-upsd lists the supplies (the directory kept open, checked by one stat) and reads each one's `uevent` file again from its start (every property in one read, the file kept open between readings: no file is opened; the fake tree, {tree}, has one per supply, as sysfs does), steps the monitor and builds the status record; at each of the slave's requests its NIS thread accepts, reads, writes the reply (rendered once per reading) and closes. The slave, for its part, connects and reads the reply packet by packet. Most of the CPU on both sides is kernel time in those system calls.",
                ms(u.cpu_ms),
                ms(v.cpu_ms),
                REST_WINDOW.as_secs(),
                if *phase == "battery" { "1 s (fast poll)" } else { "60 s" }
            ));
        }
    }
    if let Some((_, u, _, causes)) = phases.last() {
        table.note(format!(
            "Mains wakeups{}: laptop-upsd's main thread woke {} time(s) in {} s. Its loop asks for one wake per POLLTIME on mains (one reading); besides that only signals (SIGCHLD when an apccontrol run ends, SIGUSR1 from --poke), uevents that pass its socket filter, and pages it must wait for block and wake it. Counted in the same window by the bench (listening on the same uevent group, unfiltered): {}. A power_supply uevent from a process other than the kernel (another program's test, a forger) passes the socket filter, which cannot see the sender, so it wakes the loop, which reads it and ignores it.",
            if u.main_wakeups > 2 { " missed" } else { "" },
            u.main_wakeups,
            REST_WINDOW.as_secs(),
            causes.describe()
        ));
    }
    if let Some((_, u, v, _)) = phases.last() {
        if u.hwm_kb > v.hwm_kb {
            table.note(format!(
                "Peak RSS missed: {} KiB vs {} KiB. At the end, laptop-upsd had {} KiB anonymous memory (heap, thread stacks) against apcupsd's {} KiB, so the difference is all file-backed pages: {} KiB vs {} KiB: the pages of the binaries and shared libraries mapped into the process (the kernel maps 64 KiB around each page touched), where the laptop-upsd binary is {} KiB (the Rust crates it links, from std's panic backtrace printer to chrono, serde and plotters for the post-outage chart; since issue 17 neither clap (lexopt reads its flags) nor libm.so.6 (exp() comes from the pure-Rust libm crate and the chart's axes need no log or pow)) against apcupsd's {} KiB plus C libraries that other processes share.",
                u.hwm_kb,
                v.hwm_kb,
                u.anon_kb,
                v.anon_kb,
                u.file_kb,
                v.file_kb,
                size(LAPTOP_UPSD),
                size(APCUPSD)
            ));
        }
    }
}
