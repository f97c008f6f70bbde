//! Tests of [`super`]: the pure rules, the two socket filters run by a small
//! classic-BPF interpreter over many messages, and (as root) the filters
//! and the udev path on real sockets in a private network namespace.

use super::*;

/// Runs a classic BPF program as the kernel would on a message: the value
/// it returns (0 drops). A load past the end drops, as in the kernel.
fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    let load = |at: u32, size: usize| -> Option<u32> {
        let at = usize::try_from(at).ok()?;
        let bytes = pkt.get(at..at.checked_add(size)?)?;
        Some(bytes.iter().fold(0u32, |v, b| (v << 8) | u32::from(*b)))
    };
    for _ in 0..100_000 {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => match load(i.k, 4) {
                Some(v) => a = v,
                None => return 0,
            },
            LD_W_IND | LD_H_IND | LD_B_IND => {
                let size = match i.code {
                    LD_W_IND => 4,
                    LD_H_IND => 2,
                    _ => 1,
                };
                match load(x.wrapping_add(i.k), size) {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            LD_W_LEN => a = u32::try_from(pkt.len()).unwrap(),
            LD_MEM => a = mem[i.k as usize],
            ST => mem[i.k as usize] = a,
            LDX_IMM => x = i.k,
            JA => pc += i.k as usize,
            JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
            JGE_K => pc += usize::from(if a >= i.k { i.jt } else { i.jf }),
            RET_K => return i.k,
            other => panic!("opcode {other:#x} not expected"),
        }
    }
    panic!("the program did not end")
}

/// A kernel uevent as the kernel writes it: header, then ACTION, DEVPATH,
/// SUBSYSTEM, then the rest.
fn kernel_message(devpath: &str, subsystem: &str) -> Vec<u8> {
    format!(
        "change@{devpath}\0ACTION=change\0DEVPATH={devpath}\0SUBSYSTEM={subsystem}\0POWER_SUPPLY_NAME=AC\0SEQNUM=4711\0"
    )
    .into_bytes()
}

/// A message in libudev's format, as udevd sends it.
fn udev_message(subsystem: &str, magic: u32) -> Vec<u8> {
    let properties =
        format!("ACTION=change\0DEVPATH=/devices/x/power_supply/AC\0SUBSYSTEM={subsystem}\0SEQNUM=1\0USEC_INITIALIZED=1\0");
    let mut m = b"libudev\0".to_vec();
    m.extend_from_slice(&magic.to_be_bytes());
    m.extend_from_slice(&40u32.to_ne_bytes()); // header_size
    m.extend_from_slice(&40u32.to_ne_bytes()); // properties_off
    m.extend_from_slice(&u32::try_from(properties.len()).unwrap().to_ne_bytes());
    m.extend_from_slice(&murmur2(subsystem.as_bytes()).to_be_bytes());
    m.extend_from_slice(&[0; 12]); // devtype hash, tag bloom
    m.extend_from_slice(properties.as_bytes());
    m
}

#[test]
fn murmur2_is_libudevs() {
    // Read back from the filters libudev 252 attached for these subsystems.
    assert_eq!(murmur2(b"power_supply"), 0xb1ac_bcca);
    assert_eq!(murmur2(b"usb"), 0x0577_c5e5);
    assert_eq!(murmur2(b"a"), 0x9268_5f5e);
    assert_eq!(murmur2(b"abcd"), 0x2687_3021);
    assert_eq!(murmur2(b"abcde"), 0x5f09_a8de);
}

#[test]
fn recognises_power_supply_messages() {
    let msg = b"change@/devices/LNXSYSTM:00/ACPI0003:00/power_supply/AC\0ACTION=change\0SUBSYSTEM=power_supply\0POWER_SUPPLY_ONLINE=0\0";
    assert!(is_power_supply(msg));
    assert!(!is_power_supply(b"add@/devices/x\0SUBSYSTEM=usb\0"));
    assert!(!is_power_supply(b""));
}

#[test]
fn only_the_kernel_is_believed_on_the_kernel_group() {
    let msg = kernel_message("/devices/x/power_supply/AC", "power_supply");
    let kernel = NetlinkAddr::new(0, 1);
    assert!(believe(Group::Kernel, Some(&kernel), Some(0), &msg));
    assert!(!believe(
        Group::Kernel,
        Some(&NetlinkAddr::new(4242, 1)),
        Some(0),
        &msg
    ));
    assert!(!believe(Group::Kernel, None, Some(0), &msg));
    // Unicast, or without root's credentials.
    assert!(!believe(
        Group::Kernel,
        Some(&NetlinkAddr::new(0, 0)),
        Some(0),
        &msg
    ));
    assert!(!believe(Group::Kernel, Some(&kernel), Some(1000), &msg));
    assert!(!believe(Group::Kernel, Some(&kernel), None, &msg));
    let usb = kernel_message("/devices/x/usb1", "usb");
    assert!(!believe(Group::Kernel, Some(&kernel), Some(0), &usb));
    assert!(from_kernel(Some(&kernel)));
    assert!(!from_kernel(None));
}

#[test]
fn on_udevs_group_only_what_libudev_accepts() {
    let udevd = NetlinkAddr::new(321, 2);
    let good = udev_message("power_supply", UDEV_MAGIC);
    assert!(believe(Group::Udev, Some(&udevd), Some(0), &good));
    // Not from the kernel, from root, with the header and magic.
    assert!(!believe(
        Group::Udev,
        Some(&NetlinkAddr::new(0, 2)),
        Some(0),
        &good
    ));
    assert!(!believe(Group::Udev, Some(&udevd), Some(1000), &good));
    assert!(!believe(Group::Udev, Some(&udevd), None, &good));
    assert!(!believe(
        Group::Udev,
        Some(&NetlinkAddr::new(321, 1)),
        Some(0),
        &good
    ));
    assert!(!believe(
        Group::Udev,
        Some(&udevd),
        Some(0),
        &udev_message("power_supply", 0xdead_beef)
    ));
    assert!(!believe(
        Group::Udev,
        Some(&udevd),
        Some(0),
        &udev_message("usb", UDEV_MAGIC)
    ));
    // The kernel's text format is not believed on udev's group.
    let text = kernel_message("/devices/x/power_supply/AC", "power_supply");
    assert!(!believe(Group::Udev, Some(&udevd), Some(0), &text));
    // A header whose properties lie outside the message.
    let mut cut = good.clone();
    cut[16..20].copy_from_slice(&4000u32.to_ne_bytes());
    assert!(!believe(Group::Udev, Some(&udevd), Some(0), &cut));
    assert!(udev_properties(&good[..30]).is_none());
}

#[test]
fn the_udev_filter_passes_power_supplies_only() {
    let prog = udev_filter();
    assert_eq!(run(&prog, &udev_message("power_supply", UDEV_MAGIC)), PASS);
    assert_eq!(run(&prog, &udev_message("usb", UDEV_MAGIC)), DROP);
    assert_eq!(run(&prog, &udev_message("power_supply", 0x1234_5678)), DROP);
    assert_eq!(run(&prog, b"short"), DROP);
}

#[test]
fn the_kernel_filter_finds_the_subsystem_wherever_the_window_allows() {
    let prog = kernel_filter();
    assert!(
        prog.len() <= 4096,
        "classic BPF allows 4096 instructions: {}",
        prog.len()
    );
    // Device paths of every length move SUBSYSTEM= through the window.
    for len in 1..300 {
        let devpath = format!("/devices/{}", "p".repeat(len));
        let ps = kernel_message(&devpath, "power_supply");
        let usb = kernel_message(&devpath, "usb");
        let near = kernel_message(&devpath, "power_supplyX");
        let at = find(&ps, b"\0SUBSYSTEM=").unwrap();
        if at < KERNEL_FILTER_WINDOW {
            assert_eq!(run(&prog, &ps), PASS, "power_supply at {at}");
            assert_eq!(run(&prog, &usb), DROP, "usb at {at}");
            assert_eq!(run(&prog, &near), DROP, "power_supplyX at {at}");
        } else {
            // Beyond the window: passed on, user space decides.
            assert_eq!(run(&prog, &usb), PASS, "usb at {at}");
            assert_eq!(run(&prog, &ps), PASS);
        }
    }
}

#[test]
fn the_kernel_filter_passes_what_it_cannot_judge() {
    let prog = kernel_filter();
    // Too short to scan, or a key that only starts like SUBSYSTEM.
    assert_eq!(run(&prog, b"add@/x\0SUBSYSTEM=usb\0"), PASS);
    let odd = b"change@/devices/some/long/enough/path/for/the/filter\0SUBWAY=1\0SUBSYSTEM=usb\0SEQNUM=1\0";
    assert_eq!(run(&prog, odd), PASS);
    assert_eq!(run(&prog, &[0u8; 2000]), PASS);
    assert_eq!(run(&prog, b""), PASS);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn the_kernel_takes_both_filters() {
    // Binding to either group needs no privilege; the filters must load.
    for group in [Group::Kernel, Group::Udev] {
        let listener = Listener::open_group(group).unwrap();
        assert!(
            listener.filtered(),
            "the kernel refused the {group:?} filter"
        );
        assert_eq!(listener.group(), group);
    }
}

/// Run `f` on a thread of its own in a new network namespace, where
/// multicast uevents we send reach no other listener; `None` when we may
/// not make one (not root).
fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        Some(f())
    })
    .join()
    .unwrap()
}

fn sender() -> OwnedFd {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).unwrap();
    fd
}

fn send(fd: &OwnedFd, group: Group, message: &[u8]) {
    nix::sys::socket::sendto(
        fd.as_raw_fd(),
        message,
        &NetlinkAddr::new(0, group.number()),
        MsgFlags::empty(),
    )
    .unwrap();
}

/// Raw receive: whether anything got through the filter.
fn received(listener: &Listener) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = nix::sys::socket::recv(
        listener.as_fd().as_raw_fd(),
        &mut buf,
        MsgFlags::MSG_DONTWAIT,
    ) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn real_sockets_filter_and_believe_as_designed() {
    let outcome = in_private_netns(|| {
        let kernel = Listener::open_group(Group::Kernel).unwrap();
        let udev = Listener::open_group(Group::Udev).unwrap();
        let tx = sender();
        // Kernel group: other subsystems never wake us; a power supply from
        // a process gets through the filter but is not believed.
        send(
            &tx,
            Group::Kernel,
            &kernel_message("/devices/virtual/net/lo", "net"),
        );
        send(
            &tx,
            Group::Kernel,
            &kernel_message("/devices/x/power_supply/AC", "power_supply"),
        );
        std::thread::sleep(Duration::from_millis(20));
        let got = received(&kernel);
        assert_eq!(
            got,
            [kernel_message("/devices/x/power_supply/AC", "power_supply")]
        );
        send(
            &tx,
            Group::Kernel,
            &kernel_message("/devices/x/power_supply/AC", "power_supply"),
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !kernel.drain_power_supply(),
            "a process's message on the kernel group"
        );
        // udev group: root's properly made message is believed; others
        // are dropped by the filter.
        send(&tx, Group::Udev, &udev_message("usb", UDEV_MAGIC));
        send(&tx, Group::Udev, &udev_message("power_supply", 0x0bad_f00d));
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            received(&udev).is_empty(),
            "the udev filter let another message through"
        );
        send(&tx, Group::Udev, &udev_message("power_supply", UDEV_MAGIC));
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            udev.drain_power_supply(),
            "root's udev message was not believed"
        );
        assert!(!udev.drain_power_supply());
    });
    if outcome.is_none() {
        eprintln!("skipped: a private network namespace needs root");
    }
}

#[test]
fn a_storm_is_one_reread_per_interval_the_first_at_once() {
    let t0 = Instant::now();
    let mut c = Coalescer::default();
    assert_eq!(c.pending(t0), None);
    assert_eq!(c.uevent(t0), t0, "the first re-read is immediate");
    c.reread(t0);
    assert_eq!(c.pending(t0), None);
    // 1000 messages in the next 50 ms: one re-read, due 100 ms after the last.
    let mut due = t0;
    for i in 1..=1000u64 {
        due = c.uevent(t0 + Duration::from_micros(50 * i));
    }
    assert_eq!(due, t0 + MIN_REREAD_INTERVAL);
    assert_eq!(c.pending(t0 + Duration::from_millis(60)), Some(due));
    c.reread(due);
    // Quiet for a second: the next uevent is served at once again.
    let later = t0 + Duration::from_secs(2);
    assert_eq!(c.uevent(later), later);
}
