//! The NIS server and client against real clients: Debian's `apcaccess`, a real
//! apcupsd 3.14.14 running as a network slave of our server, the
//! Python `aioapcaccess` Home Assistant uses, raw sockets for the corner cases,
//! and our own client. Servers bind 127.0.0.1 port 0 and are stopped by their
//! handles; every socket and child is closed or reaped before a test ends.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use apccontrol::nis::client::{self, ClientError};
use apccontrol::nis::frame::{self, Packet};
use apccontrol::nis::server::{INVALID_COMMAND, NOT_AVAILABLE};
use apccontrol::nis::status::{LastTransfer, MasterLink, SelfTestResult, APCUPSD_VERSION};
use apccontrol::nis::{
    render, NisServer, ServerConfig, ServerHandle, StatusFlags, StatusReport, StatusSource,
    UpsStatus,
};
use chrono::{DateTime, FixedOffset};

const APCACCESS: &str = "/usr/sbin/apcaccess";

fn at(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z").unwrap()
}

/// A laptop-like snapshot, with the values of the 3.14.14 capture.
fn laptop() -> UpsStatus {
    UpsStatus {
        date: at("2026-11-22 01:40:22 +0000"),
        hostname: "vm".into(),
        version: APCUPSD_VERSION.into(),
        upsname: "laptopbat".into(),
        cable: "Ethernet Link".into(),
        driver: "NETWORK UPS Driver".into(),
        upsmode: "Stand Alone".into(),
        start_time: at("2026-11-22 01:40:16 +0000"),
        master: Some(MasterLink {
            last_update: Some(at("2026-11-22 01:40:22 +0000")),
            master: "127.0.0.1:47310".into(),
        }),
        model: Some("Fake Laptop Battery".into()),
        flags: StatusFlags(0x0500_0408),
        load_percent: Some(10.0),
        bcharge: Some(100.0),
        timeleft_minutes: Some(120.0),
        mbattchg: 5,
        mintimel: 3,
        battv: Some(12.6),
        lastxfer: Some(LastTransfer::None),
        selftest: Some(SelfTestResult::None),
        serialno: Some("BAT0-42".into()),
        ..UpsStatus::default()
    }
}

/// A source with a fixed END APC time, so replies are predictable.
struct Fixed(UpsStatus);

const NOW: &str = "2026-11-22 01:40:24 +0000";

impl StatusSource for Fixed {
    fn status(&self) -> UpsStatus {
        self.0.clone()
    }
    fn now(&self) -> DateTime<FixedOffset> {
        at(NOW)
    }
}

fn expected_text() -> String {
    render(&laptop(), &at(NOW)).to_text()
}

/// Collects the server's log lines for assertions.
fn log_sink() -> (Arc<Mutex<Vec<String>>>, apccontrol::nis::server::LogSink) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink_lines = Arc::clone(&lines);
    let sink = Arc::new(move |line: &str| sink_lines.lock().unwrap().push(line.to_owned()));
    (lines, sink)
}

fn start_with(source: Arc<dyn StatusSource>, config: ServerConfig) -> ServerHandle {
    let server = NisServer::bind(Ipv4Addr::LOCALHOST, 0).unwrap();
    assert_ne!(server.local_addr().port(), 0);
    server.spawn(source, config).unwrap()
}

fn start(config: ServerConfig) -> ServerHandle {
    start_with(Arc::new(Fixed(laptop())), config)
}

fn connect(addr: SocketAddrV4) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends one request packet and reads packets up to and including the end marker.
fn exchange(stream: &mut TcpStream, request: &[u8]) -> Vec<Vec<u8>> {
    frame::write_packet(stream, request).unwrap();
    let mut packets = Vec::new();
    loop {
        match frame::read_packet(stream, 65535).unwrap() {
            Packet::End => return packets,
            Packet::Data(p) => packets.push(p),
        }
    }
}

/// True when the peer closed (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            // A read with SO_RCVTIMEO fails with EINTR, even with no signal
            // handler, when this process is stopped and continued or frozen
            // and thawed (signal(7)); it is not an answer.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                )
            }
        }
    }
}

fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn require_apcaccess() {
    assert!(
        Path::new(APCACCESS).exists(),
        "{APCACCESS} is missing: install Debian's apcupsd package (apt-get install apcupsd)"
    );
}

fn apcaccess(args: &[&str]) -> std::process::Output {
    require_apcaccess();
    crate::support::command(APCACCESS)
        .arg("-f")
        .arg("/dev/null")
        .args(args)
        .output()
        .unwrap()
}

fn events_file(lines: usize) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for i in 0..lines {
        writeln!(f, "2026-11-22 01:40:{:02} +0000  event number {i}", i % 60).unwrap();
    }
    f
}

#[test]
fn apcaccess_prints_exactly_our_lines() {
    let server = start(ServerConfig::default());
    let host = format!("127.0.0.1:{}", server.local_addr().port());
    let out = apcaccess(&["-h", &host, "status"]);
    assert!(out.status.success(), "apcaccess failed: {out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected_text());
    server.stop();
}

#[test]
fn apcaccess_single_values_and_unit_stripping() {
    let server = start(ServerConfig::default());
    let host = format!("127.0.0.1:{}", server.local_addr().port());
    let value = |args: &[&str]| {
        let mut all = vec!["-h", host.as_str()];
        all.extend_from_slice(args);
        let out = apcaccess(&all);
        assert!(out.status.success(), "apcaccess {args:?} failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(value(&["-p", "BCHARGE"]), "100.0 Percent\n");
    assert_eq!(value(&["-p", "BCHARGE", "-u"]), "100.0\n");
    assert_eq!(value(&["-p", "TIMELEFT", "-u"]), "120.0\n");
    assert_eq!(value(&["-p", "STATUS"]), "ONLINE SLAVE \n");
    assert_eq!(value(&["-p", "STATFLAG"]), "0x05000408\n");
    assert_eq!(value(&["-p", "SERIALNO"]), "BAT0-42\n");
    let missing = apcaccess(&["-h", &host, "-p", "NOSUCHKEY"]);
    assert_eq!(missing.status.code(), Some(2));
    server.stop();
}

#[test]
fn aioapcaccess_reads_our_status() {
    let server = start(ServerConfig::default());
    let script = format!(
        "import asyncio\n\
         try:\n    import aioapcaccess\n\
         except ImportError:\n    raise SystemExit('MISSING aioapcaccess')\n\
         d = asyncio.run(aioapcaccess.request_status('127.0.0.1', {}))\n\
         for k, v in d.items():\n    print(k + '\\t' + v)\n",
        server.local_addr().port()
    );
    let out = match crate::support::command("python3")
        .arg("-c")
        .arg(&script)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            panic!("cannot run python3 ({e}): install Python 3, then `pip install aioapcaccess`")
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("MISSING aioapcaccess"),
        "the Python package aioapcaccess is not installed: run `pip install aioapcaccess`"
    );
    assert!(out.status.success(), "aioapcaccess failed: {stderr}");
    let got: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let ours = StatusReport::parse(&expected_text());
    let header = render(&laptop(), &at(NOW)).header()[11..].trim().to_owned();
    assert_eq!(header, "001,028,0713");
    let mut expected = vec![("APC".to_owned(), header)];
    expected.extend(ours.fields().iter().cloned());
    assert_eq!(got, expected);
    assert!(got.contains(&("BCHARGE".into(), "100.0 Percent".into())));
    assert!(got.contains(&("STATUS".into(), "ONLINE SLAVE".into())));
    assert!(got.contains(&("END APC".into(), "2026-11-22 01:40:24 +0000".into())));
    server.stop();
}

#[test]
fn events_serves_the_last_fifty_lines() {
    let file = events_file(60);
    let server = start(ServerConfig {
        events_file: Some(file.path().to_owned()),
        ..ServerConfig::default()
    });
    let mut s = connect(server.local_addr());
    let packets = exchange(&mut s, b"events");
    assert_eq!(packets.len(), 50);
    let all = std::fs::read_to_string(file.path()).unwrap();
    let last: Vec<&str> = all.split_inclusive('\n').skip(10).collect();
    let got: Vec<String> = packets
        .iter()
        .map(|p| String::from_utf8(p.clone()).unwrap())
        .collect();
    assert_eq!(got, last);
    assert!(got[0].ends_with("event number 10\n"));
    drop(s);
    server.stop();
}

#[test]
fn events_not_available_and_invalid_command() {
    for events in [None, Some(PathBuf::from("/nonexistent/apcupsd.events"))] {
        let server = start(ServerConfig {
            events_file: events,
            ..ServerConfig::default()
        });
        let mut s = connect(server.local_addr());
        assert_eq!(exchange(&mut s, b"events"), vec![NOT_AVAILABLE.to_vec()]);
        assert_eq!(NOT_AVAILABLE, b"Not available\n\0");
        for bogus in [&b"bogus"[..], b"statusx", b"STATUS", b"stat", b"events\n"] {
            assert_eq!(exchange(&mut s, bogus), vec![INVALID_COMMAND.to_vec()]);
        }
        assert_eq!(INVALID_COMMAND, b"Invalid command\n\0");
        drop(s);
        server.stop();
    }
}

#[test]
fn several_requests_on_one_connection() {
    let file = events_file(3);
    let server = start(ServerConfig {
        events_file: Some(file.path().to_owned()),
        ..ServerConfig::default()
    });
    let mut s = connect(server.local_addr());
    let expected = render(&laptop(), &at(NOW));
    for _ in 0..3 {
        let status = exchange(&mut s, b"status");
        assert_eq!(status[0], expected.header().as_bytes());
        assert_eq!(status.len(), expected.lines().len() + 1);
        assert_eq!(exchange(&mut s, b"events").len(), 3);
        assert_eq!(exchange(&mut s, b"nope"), vec![INVALID_COMMAND.to_vec()]);
    }
    drop(s);
    server.stop();
}

#[test]
fn oversize_request_drops_the_connection() {
    let (log, sink) = log_sink();
    let server = start(ServerConfig {
        log: sink,
        ..ServerConfig::default()
    });
    let mut s = connect(server.local_addr());
    frame::write_packet(&mut s, &[b'a'; 300]).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "the server kept a 300-byte request open"
    );
    // 256 bytes is still a (bad) request, answered as such
    let mut s = connect(server.local_addr());
    assert_eq!(
        exchange(&mut s, &[b'a'; 256]),
        vec![INVALID_COMMAND.to_vec()]
    );
    drop(s);
    server.stop();
    assert!(log.lock().unwrap().iter().any(|l| l.contains("300 bytes")));
}

#[test]
fn a_silent_client_does_not_delay_others() {
    let server = start(ServerConfig::default());
    let silent = connect(server.local_addr());
    let half_open = {
        let mut s = connect(server.local_addr());
        s.write_all(&[0x00]).unwrap(); // half a length prefix, then nothing
        s
    };
    let started = Instant::now();
    let mut s = connect(server.local_addr());
    assert_eq!(exchange(&mut s, b"status").len(), 29);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    drop((silent, half_open, s));
    server.stop();
}

#[test]
fn idle_connections_time_out() {
    let server = start(ServerConfig {
        read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    });
    let started = Instant::now();
    let mut s = connect(server.local_addr());
    assert!(closed_within(&mut s, Duration::from_secs(3)));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "took {took:?}"
    );
    server.stop();
}

#[test]
fn connections_over_the_cap_are_refused_until_slots_free() {
    let (log, sink) = log_sink();
    let server = start(ServerConfig {
        max_connections: 2,
        evict_after: Duration::from_secs(60),
        log: sink,
        ..ServerConfig::default()
    });
    let addr = server.local_addr();
    let first = connect(addr);
    let second = connect(addr);
    wait_until("both are served", Duration::from_secs(3), || {
        server.live_connections() == 2
    });
    let mut third = connect(addr);
    assert!(
        closed_within(&mut third, Duration::from_secs(2)),
        "over-cap connection was kept"
    );
    assert!(log.lock().unwrap().iter().any(|l| l.contains("refusing")));
    drop(first);
    wait_until("a slot frees", Duration::from_secs(3), || {
        server.live_connections() < 2
    });
    let mut s = connect(addr);
    assert_eq!(exchange(&mut s, b"status").len(), 29);
    drop((second, s));
    server.stop();
}

#[test]
fn at_the_cap_a_long_silent_connection_makes_room() {
    let (log, sink) = log_sink();
    let server = start(ServerConfig {
        max_connections: 2,
        evict_after: Duration::from_millis(200),
        log: sink,
        ..ServerConfig::default()
    });
    let addr = server.local_addr();
    let mut hogs = [connect(addr), connect(addr)];
    wait_until("both are served", Duration::from_secs(3), || {
        server.live_connections() == 2
    });
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut s = connect(addr);
    assert_eq!(exchange(&mut s, b"status").len(), 29);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let closed = hogs
        .iter_mut()
        .map(|h| closed_within(h, Duration::from_millis(300)))
        .filter(|closed| *closed)
        .count();
    assert_eq!(closed, 1, "exactly one hog should have been evicted");
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("longest-waiting")));
    drop((hogs, s));
    server.stop();
}

#[test]
fn a_client_that_never_reads_is_dropped() {
    let server = start(ServerConfig {
        write_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    });
    let mut greedy = connect(server.local_addr());
    // Ask for ~15 MB of replies and read none of them.
    let requests: Vec<u8> = b"\x00\x06status".repeat(20_000);
    greedy
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = greedy.write_all(&requests);
    wait_until("the stuck writer gives up", Duration::from_secs(10), || {
        server.live_connections() == 0
    });
    let mut s = connect(server.local_addr());
    assert_eq!(exchange(&mut s, b"status").len(), 29);
    drop((greedy, s));
    server.stop();
}

/// Panics on its first call only.
struct PanicsOnce(AtomicBool);

impl StatusSource for PanicsOnce {
    fn status(&self) -> UpsStatus {
        if !self.0.swap(true, Ordering::SeqCst) {
            panic!("deliberate test panic in the status source");
        }
        laptop()
    }
}

#[test]
fn a_panicking_handler_does_not_stop_the_server() {
    let (log, sink) = log_sink();
    let server = start_with(
        Arc::new(PanicsOnce(AtomicBool::new(false))),
        ServerConfig {
            log: sink,
            ..ServerConfig::default()
        },
    );
    let mut s = connect(server.local_addr());
    frame::write_packet(&mut s, b"status").unwrap();
    // generous: the default panic hook may capture a backtrace on a busy machine
    assert!(closed_within(&mut s, Duration::from_secs(30)));
    let mut s = connect(server.local_addr());
    assert_eq!(exchange(&mut s, b"status").len(), 29);
    drop(s);
    wait_until("no live connections", Duration::from_secs(3), || {
        server.live_connections() == 0
    });
    server.stop();
    assert!(log.lock().unwrap().iter().any(|l| l.contains("panicked")));
}

#[test]
fn our_client_against_our_server() {
    let file = events_file(5);
    let snapshot = Arc::new(RwLock::new(laptop()));
    let server = start_with(
        snapshot.clone(),
        ServerConfig {
            events_file: Some(file.path().to_owned()),
            ..ServerConfig::default()
        },
    );
    let port = server.local_addr().port();
    let deadline = || Instant::now() + Duration::from_secs(2);
    let text = client::fetch_status("127.0.0.1", port, deadline()).unwrap();
    let report = StatusReport::parse(&text);
    assert_eq!(report.get("HOSTNAME"), Some("vm"));
    assert_eq!(report.status_flags(), Some(StatusFlags(0x0500_0408)));
    assert_eq!(
        report.header().unwrap().lines as usize,
        report.fields().len()
    );
    // the daemon updates its snapshot; the next reply shows it
    snapshot.write().unwrap().bcharge = Some(42.5);
    let text = client::fetch_status("localhost", port, deadline()).unwrap();
    assert_eq!(
        StatusReport::parse(&text).get("BCHARGE"),
        Some("42.5 Percent")
    );
    let events = client::fetch_events("127.0.0.1", port, deadline()).unwrap();
    assert_eq!(events, std::fs::read_to_string(file.path()).unwrap());
    server.stop();
    let err = client::fetch_status("127.0.0.1", port, deadline()).unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

#[test]
fn client_deadline_holds_against_a_server_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    // Accepts, then either says nothing or trickles a byte every 50 ms.
    let mute = thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let mut held: Vec<(TcpStream, usize)> = Vec::new();
        while !stop_flag.load(Ordering::SeqCst) {
            if let Ok((s, _)) = listener.accept() {
                s.set_nonblocking(false).unwrap();
                held.push((s, 0));
            }
            // The first connection hears nothing; later ones get a packet that
            // announces 64 bytes, then one byte of it every 50 ms.
            for (s, sent) in held.iter_mut().skip(1) {
                let byte = match *sent {
                    0 => 0x00,
                    1 => 0x40,
                    _ => b'x',
                };
                let _ = s.write_all(&[byte]);
                *sent += 1;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    for _ in 0..2 {
        let started = Instant::now();
        let err = client::fetch_status("127.0.0.1", port, started + Duration::from_millis(500))
            .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, ClientError::TimedOut { .. }), "{err}");
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(900),
            "took {took:?}"
        );
    }
    // A deadline already past returns at once.
    let started = Instant::now();
    assert!(client::fetch_events("127.0.0.1", port, started).is_err());
    assert!(started.elapsed() < Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    mute.join().unwrap();
}

#[test]
fn server_binds_with_reuseaddr() {
    let server = NisServer::bind(Ipv4Addr::LOCALHOST, 0).unwrap();
    let port = server.local_addr().port();
    let handle = server
        .spawn(Arc::new(Fixed(laptop())), ServerConfig::default())
        .unwrap();
    // leave a connection in TIME_WAIT on our side, then rebind the same port
    let mut s = connect(handle.local_addr());
    assert_eq!(exchange(&mut s, b"status").len(), 29);
    handle.stop();
    drop(s);
    let again = NisServer::bind(Ipv4Addr::LOCALHOST, port).unwrap();
    assert_eq!(again.local_addr().port(), port);
}

#[test]
fn a_real_apcupsd_slave_reads_our_server() {
    const APCUPSD: &str = "/sbin/apcupsd";
    assert!(
        Path::new(APCUPSD).exists(),
        "{APCUPSD} is missing: install Debian's apcupsd package (apt-get install apcupsd)"
    );
    let mut status = laptop();
    status.master = None;
    status.flags = StatusFlags(0x0500_0008);
    status.line_voltage = Some(230.0);
    status.bcharge = Some(87.5);
    status.timeleft_minutes = Some(95.3);
    status.nombattv = Some(11.4);
    let server = start_with(Arc::new(Fixed(status)), ServerConfig::default());
    // The slave's own NIS, on an address of this test's own.
    let slave = NisAddress::fresh();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = dir.path().join("apcupsd.conf");
    std::fs::write(
        &conf,
        format!(
            "## apcupsd.conf v1.1 ##\nUPSNAME slave1\nUPSCABLE ether\nUPSTYPE net\n\
             DEVICE 127.0.0.1:{}\nPOLLTIME 1\nLOCKFILE {d}\nSCRIPTDIR {d}\nPWRFAILDIR {d}\n\
             NOLOGINDIR {d}\n{}EVENTSFILE {d}/events\nSTATTIME 0\n",
            server.local_addr().port(),
            slave.conf()
        ),
    )
    .unwrap();
    let _slave = Reaped(
        crate::support::command(APCUPSD)
            .arg("-b")
            .arg("-f")
            .arg(&conf)
            .arg("-P")
            .arg(dir.path().join("pid"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let give_up = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let attempt = client::fetch_status(
            &slave.ip,
            slave.port,
            Instant::now() + Duration::from_secs(2),
        );
        if let Ok(text) = attempt {
            let report = StatusReport::parse(&text);
            if report.get("BCHARGE").is_some() {
                break report;
            }
        }
        assert!(
            Instant::now() < give_up,
            "the apcupsd slave never showed our values"
        );
        thread::sleep(Duration::from_millis(200));
    };
    // The slave found every field with strstr and parsed it.
    assert_eq!(report.get("UPSNAME"), Some("laptopbat"));
    assert_eq!(report.get("MODEL"), Some("Fake Laptop Battery"));
    assert_eq!(report.get("STATUS"), Some("ONLINE SLAVE"));
    assert_eq!(report.get("LINEV"), Some("230.0 Volts"));
    assert_eq!(report.get("BCHARGE"), Some("87.5 Percent"));
    assert_eq!(report.get("TIMELEFT"), Some("95.3 Minutes"));
    assert_eq!(report.get("BATTV"), Some("12.6 Volts"));
    assert_eq!(report.get("NOMBATTV"), Some("11.4 Volts"));
    assert_eq!(report.get("SERIALNO"), Some("BAT0-42"));
    assert_eq!(report.get("LASTXFER"), Some("No transfers since turnon"));
    assert_eq!(report.status_flags(), Some(StatusFlags(0x0500_0408)));
    server.stop();
}

// ---- the real laptop-upsd against real clients (issue 13) ----

use crate::daemon::Laptop;
use crate::support::{NisAddress, Reaped};

/// A laptop-upsd serving NIS on a loopback address of its own (so no
/// other test's server can answer in its place), with a fake battery at
/// `charge` % of 40 Wh on mains, its own limits off so only clients act.
/// Returns the laptop and `ip:port`.
fn serving_laptop(charge: u32) -> (Laptop, String) {
    let (mut laptop, nis) = Laptop::with_nis("BATTERYLEVEL 0\nMINUTES 0");
    laptop.sysfs(true, charge);
    laptop.battery_file("voltage_min_design", "11400000\n");
    laptop.start();
    laptop.wait_until("laptop-upsd serves NIS", Duration::from_secs(10), |_| {
        nis.status().is_ok()
    });
    (laptop, nis.host())
}

#[test]
fn apcaccess_and_aioapcaccess_see_timeleft_and_lastxfer_from_the_first_poll() {
    let (laptop, host) = serving_laptop(80);
    let out = apcaccess(&["-h", &host, "status"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "TIMELEFT : 192.0 Minutes",
        "LASTXFER : No transfers since turnon",
        "NOMBATTV : 11.4 Volts",
        "BCHARGE  : 80.0 Percent",
    ] {
        laptop.expect(text.contains(line), format!("`{line}` missing:\n{text}"));
    }
    // Home Assistant's client creates its sensors from these keys.
    let (ip, port) = host.split_once(':').unwrap();
    let script = format!(
        "import asyncio, aioapcaccess\n\
         d = asyncio.run(aioapcaccess.request_status('{ip}', {port}))\n\
         print(d['TIMELEFT'] + '|' + d['LASTXFER'])\n"
    );
    let out = crate::support::command("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "aioapcaccess: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "192.0 Minutes|No transfers since turnon"
    );
}

#[test]
fn a_real_apcupsd_slave_started_at_boot_applies_its_minutes() {
    const APCUPSD: &str = "/sbin/apcupsd";
    assert!(
        Path::new(APCUPSD).exists(),
        "{APCUPSD} is missing: install Debian's apcupsd package (apt-get install apcupsd)"
    );
    // 10 % of 40 Wh: the stated 24 minutes from the very first reply,
    // before any drain is measured.
    let (laptop, master) = serving_laptop(10);
    // The slave's own NIS, on an address of this test's own.
    let slave = NisAddress::fresh();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let stub = dir.path().join("apccontrol");
    crate::support::write_executable(
        &stub,
        &format!("#!/bin/sh\necho \"$1\" >> {d}/calls\n"),
        0o755,
    );
    let conf = dir.path().join("apcupsd.conf");
    let slave_conf = slave.conf();
    std::fs::write(
        &conf,
        format!(
            "## apcupsd.conf v1.1 ##\nUPSNAME slave1\nUPSCABLE ether\nUPSTYPE net\n\
             DEVICE {master}\nPOLLTIME 1\nLOCKFILE {d}\nSCRIPTDIR {d}\nPWRFAILDIR {d}\n\
             NOLOGINDIR {d}\nNOLOGON disable\n{slave_conf}\
             EVENTSFILE {d}/events\nSTATTIME 0\nONBATTERYDELAY 1\nBATTERYLEVEL 0\nMINUTES 40\n\
             TIMEOUT 0\n"
        ),
    )
    .unwrap();
    let _slave = Reaped(
        crate::support::command(APCUPSD)
            .arg("-b")
            .arg("-f")
            .arg(&conf)
            .arg("-P")
            .arg(dir.path().join("pid"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The slave found TIMELEFT at its first poll (its capabilities are read
    // once, then never again).
    laptop.wait_until("the slave serves TIMELEFT", Duration::from_secs(20), |_| {
        slave
            .status()
            .is_ok_and(|report| report.get("TIMELEFT").is_some())
    });
    laptop.sysfs(false, 10);
    let calls = dir.path().join("calls");
    let slave_events = || std::fs::read_to_string(dir.path().join("events")).unwrap_or_default();
    laptop.wait_until(
        &format!(
            "the slave runs runlimit, then doshutdown; its events file:\n{}",
            slave_events()
        ),
        Duration::from_secs(20),
        |_| {
            std::fs::read_to_string(&calls).is_ok_and(|c| {
                c.lines().any(|l| l == "runlimit") && c.lines().any(|l| l == "doshutdown")
            })
        },
    );
    // laptop-upsd itself did not shut down (its limits are off).
    laptop.expect_none_of(&["doshutdown"]).expect(
        slave_events().contains("Reached remaining time percentage limit"),
        format!("the slave's events file:\n{}", slave_events()),
    );
}
