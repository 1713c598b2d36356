//! A real live migration between two libvirt hosts inside the one lab VM (issue 11 item 6).
//!
//! Host A is the VM itself: the lab's libvirtd, bridge brA with uplink upA, virt-vlan installed
//! with `virt-vlan install`. Host B is a second libvirtd in a mount and network namespace of
//! its own (`ip netns exec`, which also remounts /sys so B sees its own interfaces there): its
//! own /etc/libvirt (its own hook entries, `host_uuid`), /run/libvirt, /var/lib/libvirt,
//! /var/log/libvirt, and virt-vlan's own /etc/virt-vlan, /run/virt-vlan and
//! /var/log/virt-vlan, each bind-mounted from a directory under [`B_DIR`] that A sees too. B's
//! bridge brB has its own uplink upB and a policy of its own (`allowed = "1-999"`). A veth
//! pair (10.77.0.1 in A, 10.77.0.2 in B) carries qemu's migration stream; virsh in A reaches
//! B's libvirtd through B's socket, `qemu+unix:///system?socket=…`. Guests plug into the
//! libvirt network `mig`, which is brA on A and brB on B: the usual way hosts with different
//! bridges share guests.
//!
//! What libvirt does here (checked in its sources, see the report of issue 11 item 6):
//! - the destination runs `migrate begin` (a filter; a failure cancels the migration before
//!   the domain is even added), then `prepare`, `start` and `started` — all in its Prepare
//!   phase, with the incoming qemu's CPUs stopped; they run only in Finish, after the stream;
//! - the source runs `stopped` and `release` after a successful migration (Confirm);
//! - it refuses a migration between hosts with the same host UUID, so B gets `host_uuid`;
//! - hook scripts get a cleaned environment: virt-vlan's paths for B must be B's mounts;
//! - B has no virtlogd of its own: its qemu.conf says `stdio_handler = "file"`.
//!
//! Run once in the VM: `LAB_DEBIAN=13 lab/run-tests lab_migrate`.

mod labkit;

use labkit::host::*;
use labkit::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const A_URI: &str = QEMU;
const A_HOOK_LOG: &str = "/var/log/virt-vlan/virt-vlan.log";

/// Host A: guests may have VIDs 1-2000; the uplink carries 100 and what local guests use.
const A_CONFIG: &str = r#"[bridges.brA]
default_pvid = 0
allowed = "1-2000"
[bridges.brA.self]
pvid = 1
[bridges.brA.uplinks.upA]
pvid = 1
tagged = "100"
on_demand = true
[hooks]
port_wait = 120
"#;

/// Host B: a stricter policy (1-999); its uplink carries 200 and what local guests use.
const B_CONFIG: &str = r#"[bridges.brB]
default_pvid = 0
allowed = "1-999"
[bridges.brB.self]
pvid = 1
[bridges.brB.uplinks.upB]
pvid = 1
tagged = "200"
on_demand = true
[hooks]
port_wait = 120
"#;

/// Host B's network namespace.
const B: &str = "vvmig-b";
/// Host B's own directories, as host A sees them (B sees them at their usual places).
const B_DIR: &str = "/run/vvmig-b";
/// (directory under B_DIR, where B sees it)
const B_MOUNTS: &[(&str, &str)] = &[
    ("etc-libvirt", "/etc/libvirt"),
    ("etc-virt-vlan", "/etc/virt-vlan"),
    ("run-libvirt", "/run/libvirt"),
    ("run-virt-vlan", "/run/virt-vlan"),
    ("var-lib-libvirt", "/var/lib/libvirt"),
    ("var-log-libvirt", "/var/log/libvirt"),
    ("var-log-virt-vlan", "/var/log/virt-vlan"),
];
/// B's libvirtd's host UUID (A's comes from its SMBIOS, or is random): libvirt refuses to
/// migrate a guest to a host with the UUID of the one it runs on.
const B_UUID: &str = "5a0c3d1e-7b2f-4c58-9e61-0b7a2d4c9f13";
const A_IP: &str = "10.77.0.1";
const B_IP: &str = "10.77.0.2";

fn b_uri() -> String {
    format!("qemu+unix:///system?socket={B_DIR}/run-libvirt/libvirt-sock")
}

fn b_path(sub: &str) -> String {
    format!("{B_DIR}/{sub}")
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes this test's turn: host A is set up once; its config, libvirtd and `mig` network
/// are checked on every turn. Host B is each test's own ([`HostB`]).
fn turn() -> MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(setup_a);
    set_config(A_CONFIG);
    libvirtd::ensure();
    ensure_mig(A_URI, "brA");
    g
}

fn setup_a() {
    for s in ["link del brA", "link del upA"] {
        let _ = Command::new("ip")
            .args(s.split(' '))
            .stderr(Stdio::null())
            .status();
    }
    must(
        "ip link add brA type bridge && ip link set brA up && \
         ip link add upA type veth peer name swA && ip link set upA master brA && \
         ip link set upA up && ip link set swA up",
    );
    set_config(A_CONFIG);
    println!("{}", vv_ok(&["install"]));
    vv_ok(&["apply"]);
    // a libvirtd already running would not see new hook entries
    libvirtd::restart();
}

fn virsh(uri: &str, args: &[&str]) -> Output {
    virsh_on(uri, args)
}

fn virsh_ok(uri: &str, args: &[&str]) -> String {
    virsh_ok_on(uri, args)
}

/// The network `mig` on the host at `uri`, bridge-mode onto `bridge`, defined and active.
fn ensure_mig(uri: &str, bridge: &str) {
    if virsh_ok(uri, &["net-list", "--name"])
        .lines()
        .any(|l| l.trim() == "mig")
    {
        return;
    }
    let path = format!("/tmp/vvmig-net-{bridge}.xml");
    std::fs::write(
        &path,
        format!(
            "<network><name>mig</name><forward mode='bridge'/><bridge name='{bridge}'/></network>"
        ),
    )
    .unwrap();
    let _ = virsh(uri, &["net-define", &path]);
    virsh_ok(uri, &["net-start", "mig"]);
}

/// A disk-less TCG guest on host A with one interface on `mig` and, from our metadata,
/// access VLAN `vid`.
fn define(name: &str, mac: &str, vid: u16) {
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <metadata><vv:vlans xmlns:vv='urn:virt-vlan:1'><vv:interface mac='{mac}'>\
         <vv:vlan><vv:tag id='{vid}'/></vv:vlan></vv:interface></vv:vlans></metadata>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>\
         <features><acpi/><apic/></features><on_poweroff>destroy</on_poweroff>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <interface type='network'><source network='mig'/><mac address='{mac}'/><model type='virtio'/></interface>\
         <memballoon model='none'/></devices></domain>"
    );
    let path = format!("/tmp/{name}.xml");
    std::fs::write(&path, xml).unwrap();
    virsh_ok(A_URI, &["define", &path]);
}

/// Destroys (on both hosts) and undefines (on A) its domains when dropped, also when a test
/// fails half-way.
struct Guests(Vec<String>);

impl Guests {
    fn new(names: &[&str]) -> Guests {
        let g = Guests(names.iter().map(|s| s.to_string()).collect());
        g.clean();
        g
    }

    fn clean(&self) {
        for d in &self.0 {
            let _ = virsh(A_URI, &["destroy", d]);
            let _ = virsh(A_URI, &["undefine", d]);
        }
    }
}

impl Drop for Guests {
    fn drop(&mut self) {
        self.clean();
    }
}

/// The tap of the interface with `mac` of a running domain on the host at `uri`.
fn tap(uri: &str, domain: &str, mac: &str) -> String {
    let xml = virsh_ok(uri, &["dumpxml", domain]);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("interface"))
        .find(|i| {
            i.children()
                .any(|c| c.has_tag_name("mac") && c.attribute("address") == Some(mac))
        })
        .and_then(|i| i.children().find(|c| c.has_tag_name("target")))
        .and_then(|t| t.attribute("dev"))
        .unwrap_or_else(|| panic!("{domain} has no tap for {mac}:\n{xml}"))
        .to_string()
}

fn domstate(uri: &str, domain: &str) -> String {
    String::from_utf8_lossy(&virsh(uri, &["domstate", domain]).stdout)
        .trim()
        .to_string()
}

/// One port's VLANs in host B's namespace, as `describe` writes them.
fn b_port(port: &str) -> String {
    describe(
        kernel_vlans_in(Some(B))
            .get(port)
            .cloned()
            .unwrap_or_default(),
    )
}

fn recorded_ports(record_path: &str, domain: &str) -> Vec<String> {
    recorded_ports_in(record_path, domain)
}

const A_RECORD: &str = RECORD_PATH;

fn b_record() -> String {
    b_path("run-virt-vlan/ownership.json")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `needles` appear in `log` in this order.
fn assert_in_order(log: &str, needles: &[&str], what: &str) {
    let mut at = 0;
    for n in needles {
        match log[at..].find(n) {
            Some(i) => at += i + n.len(),
            None => {
                panic!("{what}: no `{n}` after the lines before it in {needles:?}:\n{log}")
            }
        }
    }
}

/// `virsh -c from migrate --live … domain to --migrateuri tcp://ip`, capped by `timeout` so a
/// stream that never flows fails the test instead of holding the suite. `--timeout 120`
/// (pause the guest if the live copy has not converged after 120 s) only guards against an
/// emulated guest dirtying memory faster than the copy.
fn migrate(from: &str, domain: &str, to: &str, ip: &str, extra: &[&str]) -> Output {
    let started = Instant::now();
    let o = Command::new("timeout")
        .args([
            "600",
            "virsh",
            "-c",
            from,
            "migrate",
            "--live",
            "--timeout",
            "120",
        ])
        .args(extra)
        .args([domain, to, "--migrateuri", &format!("tcp://{ip}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    println!(
        "migrate {domain} {from} -> {to}: {} in {:.1} s",
        o.status,
        started.elapsed().as_secs_f64()
    );
    o
}

/// Host B: a second libvirtd in namespaces of its own (see the module docs), started with
/// virt-vlan installed and its bridge applied; stopped by its pid, with its domains and its
/// namespace, when dropped. A failing test prints B's logs (and A's) first.
struct HostB;

impl HostB {
    fn start(config: &str) -> HostB {
        HostB::clear();
        let host = HostB;
        let d = Path::new(B_DIR);
        for (sub, _) in B_MOUNTS {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for sub in ["var-lib-libvirt/qemu", "var-log-libvirt/qemu"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        b_libvirt_config(&d.join("etc-libvirt"));
        std::fs::write(d.join("etc-virt-vlan/virt-vlan.toml"), config).unwrap();

        ip_batch(
            None,
            &[
                format!("netns add {B}"),
                format!("link add migA type veth peer name migB netns {B}"),
                format!("addr add {A_IP}/24 dev migA"),
                "link set migA up".into(),
            ],
        );
        ip_batch(
            Some(B),
            &[
                "link set lo up".into(),
                format!("addr add {B_IP}/24 dev migB"),
                "link set migB up".into(),
                "link add brB type bridge".into(),
                "link set brB up".into(),
                "link add upB type veth peer name swB".into(),
                "link set upB master brB".into(),
                "link set upB up".into(),
                "link set swB up".into(),
            ],
        );

        // `ip netns exec` enters B's network namespace in a new mount namespace (mounts
        // there do not reach A) and mounts a sysfs of B's own on /sys; the script adds B's
        // directories, installs virt-vlan there as an admin would, and becomes libvirtd.
        let mut script = String::from("set -e\n");
        for (sub, target) in B_MOUNTS {
            script.push_str(&format!(
                "mkdir -p {target}\nmount --bind {B_DIR}/{sub} {target}\n"
            ));
        }
        // The fresh /sys has no securityfs: where A has it, B gets it back, so both daemons
        // see AppArmor alike (libvirt uses it only where libvirtd itself is confined).
        // cgroups stay A's alone: B's qemu runs without, as on a host with none mounted.
        if read("/proc/self/mounts").contains(" /sys/kernel/security securityfs ") {
            script.push_str("mount -t securityfs securityfs /sys/kernel/security\n");
        }
        script.push_str(&format!(
            "{BIN} install\n{BIN} apply\nexec libvirtd -d -p {B_DIR}/libvirtd.pid\n"
        ));
        let mut c = Command::new("ip");
        c.args(["netns", "exec", B, "sh", "-c", &script]);
        println!("host B: {}", checked(c, "start host B"));

        let started = Instant::now();
        wait_for(600, || {
            b_answers() || (b_pid().is_none() && started.elapsed() > Duration::from_secs(10))
        });
        assert!(
            b_answers(),
            "host B's libvirtd {} after {:.0} s",
            if b_pid().is_some() {
                "runs but does not answer"
            } else {
                "exited (or never started)"
            },
            started.elapsed().as_secs_f64()
        );
        println!(
            "host B: libvirtd (pid {}) answers after {:.1} s",
            b_pid().unwrap_or_default(),
            started.elapsed().as_secs_f64()
        );
        ensure_mig(&b_uri(), "brB");
        let caps = virsh_ok(&b_uri(), &["capabilities"]);
        assert!(
            caps.contains(&format!("<uuid>{B_UUID}</uuid>")),
            "host B runs with its own host UUID:\n{caps}"
        );
        assert!(
            !virsh_ok(A_URI, &["capabilities"]).contains(B_UUID),
            "hosts A and B must differ in host UUID"
        );
        host
    }

    /// Stops whatever an earlier HostB (this run's, or a failed attempt's) left.
    fn clear() {
        // (runs in Drop too: nothing here may panic)
        if b_answers() {
            let o = virsh(&b_uri(), &["list", "--name"]);
            for n in String::from_utf8_lossy(&o.stdout).lines() {
                if !n.trim().is_empty() {
                    let _ = virsh(&b_uri(), &["destroy", n.trim()]);
                }
            }
        }
        if let Some(pid) = b_pid().and_then(|p| p.parse::<i32>().ok()) {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            if !wait_for(60, || !Path::new(&format!("/proc/{pid}")).exists()) {
                eprintln!("host B's libvirtd (pid {pid}) ignored SIGTERM: killing it");
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // Anything still in B's namespace was started there by this test (a port helper, a
        // qemu whose destroy failed): by its pid.
        if let Ok(o) = Command::new("ip").args(["netns", "pids", B]).output() {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    eprintln!("host B: pid {pid} still runs in {B}: killing it");
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for s in [format!("netns del {B}"), "link del migA".to_string()] {
            let _ = Command::new("ip")
                .args(s.split(' '))
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(B_DIR);
    }
}

impl Drop for HostB {
    fn drop(&mut self) {
        if std::thread::panicking() {
            diagnostics();
        }
        HostB::clear();
    }
}

/// Host B's libvirtd's pid, if it runs.
fn b_pid() -> Option<String> {
    let pid = read(&b_path("libvirtd.pid")).trim().to_string();
    let comm = read(&format!("/proc/{pid}/comm"));
    (!pid.is_empty() && comm.trim() == "libvirtd").then_some(pid)
}

fn b_answers() -> bool {
    virsh_command(&b_uri(), &["list"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// B's /etc/libvirt: A's top-level config files (not A's domains, networks or hooks) with
/// B's host UUID, a log file (debug for migration, process start and hooks), and qemu's
/// output written by libvirtd itself, since B has no virtlogd of its own.
fn b_libvirt_config(dir: &Path) {
    for e in std::fs::read_dir("/etc/libvirt").unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    set_conf_keys(
        &dir.join("libvirtd.conf"),
        &[
            ("host_uuid", format!("\"{B_UUID}\"")),
            (
                "log_filters",
                "\"1:qemu.qemu_migration 1:qemu.qemu_process 1:util.hook\"".into(),
            ),
            (
                "log_outputs",
                "\"1:file:/var/log/libvirt/libvirtd.log\"".into(),
            ),
        ],
    );
    set_conf_keys(
        &dir.join("qemu.conf"),
        &[("stdio_handler", "\"file\"".into())],
    );
}

/// Sets `keys` in a libvirt config file, dropping any earlier setting of them (libvirt
/// reads the first).
fn set_conf_keys(path: &Path, keys: &[(&str, String)]) {
    let old = read(&path.display().to_string());
    let mut text: String = old
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !keys.iter().any(|(k, _)| {
                l.strip_prefix(k)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for (k, v) in keys {
        text.push_str(&format!("{k} = {v}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// The last `n` lines of a file.
fn tail(path: &str, n: usize) -> String {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a failing test needs: both hosts' hook logs, B's libvirtd log, every qemu log.
fn diagnostics() {
    let mut logs = vec![
        (b_path("var-log-libvirt/libvirtd.log"), 200),
        (b_path("var-log-virt-vlan/virt-vlan.log"), 80),
        (A_HOOK_LOG.to_string(), 80),
    ];
    for dir in [
        b_path("var-log-libvirt/qemu"),
        "/var/log/libvirt/qemu".into(),
    ] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path().display().to_string();
            if p.contains("vmig") || p.contains("vdeny") {
                logs.push((p, 40));
            }
        }
    }
    for (path, n) in logs {
        eprintln!("----- {path} (last {n} lines)\n{}", tail(&path, n));
    }
}

/// Issue 11 item 6, the guest B can serve: it migrates live from A to B. B's hooks admit it
/// (`migrate`) and put its tap in its VLAN in `start`, before its CPUs run there; A's hooks
/// release its old tap and prune the on-demand VID from A's uplink. It then migrates back
/// with `--suspend`, so it arrives paused: its new tap on A is in its VLAN while its CPUs
/// have not run on A at all.
#[test]
fn a_guest_migrates_live_to_a_host_that_serves_its_vlan_and_back() {
    let _t = turn();
    let _b = HostB::start(B_CONFIG);
    let _g = Guests::new(&["vmig"]);
    let mac = "52:54:00:77:00:01";
    define("vmig", mac, 310);
    virsh_ok(A_URI, &["start", "vmig"]);
    let tap_a = tap(A_URI, "vmig", mac);
    assert_eq!(root_port(&tap_a), "310PU");
    assert_eq!(
        root_port("upA"),
        "1PU 100 310",
        "A's uplink carries it on demand"
    );
    assert_eq!(recorded_ports(A_RECORD, "vmig"), vec![tap_a.clone()]);
    assert_eq!(b_port("upB"), "1PU 200", "B before");
    let a_log_start = read(A_HOOK_LOG).len();

    // A -> B, a plain live migration
    let o = migrate(A_URI, "vmig", &b_uri(), B_IP, &[]);
    assert!(
        o.status.success(),
        "migration A -> B failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(domstate(&b_uri(), "vmig"), "running");
    assert_eq!(domstate(A_URI, "vmig"), "shut off");
    let tap_b = tap(&b_uri(), "vmig", mac);
    assert_eq!(
        b_port(&tap_b),
        "310PU",
        "B's tap {tap_b} is in the guest's VLAN"
    );
    assert_eq!(
        b_port("upB"),
        "1PU 200 310",
        "B's uplink carries it on demand"
    );
    assert_eq!(recorded_ports(&b_record(), "vmig"), vec![tap_b.clone()]);
    // B's hooks ran in libvirt's order: admitted, then the tap's VLAN in `start`, before
    // `started` (the incoming qemu's CPUs run only once the stream has arrived)
    let b_log = read(&b_path("var-log-virt-vlan/virt-vlan.log"));
    assert_in_order(
        &b_log,
        &[
            "hook qemu vmig migrate begin",
            "hook qemu vmig prepare begin",
            "hook qemu vmig start begin",
            "start vmig: 1 port(s) in their VLANs",
            "hook qemu vmig started begin",
        ],
        "host B's hook log",
    );
    assert!(
        !b_log.contains(" ERROR "),
        "B's hooks logged errors:\n{b_log}"
    );
    // A let go of it: the old tap is gone from A's record, the VID from A's uplink
    assert!(
        wait_for(30, || root_port("upA") == "1PU 100"),
        "A's uplink after the guest left: {}",
        root_port("upA")
    );
    assert!(
        recorded_ports(A_RECORD, "vmig").is_empty(),
        "A's record: {}",
        read(A_RECORD)
    );
    let a_log = read(A_HOOK_LOG);
    let a_log = &a_log[a_log_start.min(a_log.len())..];
    assert_in_order(
        a_log,
        &["hook qemu vmig stopped end", "hook qemu vmig release end"],
        "host A's hook log",
    );
    assert!(
        !a_log.contains(" ERROR "),
        "A's hooks logged errors:\n{a_log}"
    );

    // B -> A, arriving paused: the VLAN is in place before the guest's CPUs run on A
    let a_log_start = read(A_HOOK_LOG).len();
    let o = migrate(&b_uri(), "vmig", A_URI, A_IP, &["--suspend"]);
    assert!(
        o.status.success(),
        "migration B -> A failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        domstate(A_URI, "vmig").starts_with("paused"),
        "arrived paused: {}",
        domstate(A_URI, "vmig")
    );
    let tap_a = tap(A_URI, "vmig", mac);
    assert_eq!(root_port(&tap_a), "310PU", "before its CPUs ran on A");
    assert_eq!(root_port("upA"), "1PU 100 310");
    let a_log = read(A_HOOK_LOG);
    assert_in_order(
        &a_log[a_log_start.min(a_log.len())..],
        &[
            "hook qemu vmig migrate begin",
            "hook qemu vmig prepare begin",
            "hook qemu vmig start begin",
            "start vmig: 1 port(s) in their VLANs",
            "hook qemu vmig started begin",
        ],
        "host A's hook log, incoming",
    );
    virsh_ok(A_URI, &["resume", "vmig"]);
    assert_eq!(domstate(A_URI, "vmig"), "running");
    assert_eq!(root_port(&tap_a), "310PU");
    // and B let go of it
    assert!(
        wait_for(30, || b_port("upB") == "1PU 200"),
        "B's uplink after the guest left: {}",
        b_port("upB")
    );
    assert!(
        recorded_ports(&b_record(), "vmig").is_empty(),
        "{}",
        read(&b_record())
    );
    assert!(
        virsh_ok(&b_uri(), &["list", "--all", "--name"])
            .trim()
            .is_empty(),
        "nothing left on B"
    );
}

/// Issue 11 item 6, the guest B cannot serve: B's `allowed` forbids its VID, so B's
/// `migrate` hook refuses it with the reason, before B starts anything; the guest keeps
/// running on A in its VLAN and nothing changed on B.
#[test]
fn a_migration_to_a_host_whose_policy_forbids_the_vlan_is_refused_by_its_hook() {
    let _t = turn();
    let _b = HostB::start(B_CONFIG);
    let _g = Guests::new(&["vdeny"]);
    let mac = "52:54:00:77:00:02";
    define("vdeny", mac, 1500);
    virsh_ok(A_URI, &["start", "vdeny"]);
    let tap_a = tap(A_URI, "vdeny", mac);
    assert_eq!(root_port(&tap_a), "1500PU", "A allows 1-2000");
    assert_eq!(root_port("upA"), "1PU 100 1500");
    let b_vlans = kernel_vlans_in(Some(B));
    let b_record_before = read(&b_record());

    let o = migrate(A_URI, "vdeny", &b_uri(), B_IP, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "B admitted a VID its policy forbids");
    assert!(
        err.contains("VID 1500 is not allowed on bridge brB here")
            && err.contains("allowed = \"1-999\""),
        "virsh migrate gives B's hook's reason:\n{err}"
    );
    // the guest runs on in A, in its VLAN
    assert_eq!(domstate(A_URI, "vdeny"), "running");
    assert_eq!(tap(A_URI, "vdeny", mac), tap_a);
    assert_eq!(root_port(&tap_a), "1500PU");
    assert_eq!(root_port("upA"), "1PU 100 1500");
    assert_eq!(recorded_ports(A_RECORD, "vdeny"), vec![tap_a.clone()]);
    // B: no domain, no port, no VID, no record entry; its hook refused at `migrate`
    assert!(
        virsh_ok(&b_uri(), &["list", "--all", "--name"])
            .trim()
            .is_empty(),
        "nothing on B"
    );
    assert_eq!(kernel_vlans_in(Some(B)), b_vlans, "B's bridge unchanged");
    assert_eq!(read(&b_record()), b_record_before, "B's record unchanged");
    let b_log = read(&b_path("var-log-virt-vlan/virt-vlan.log"));
    assert!(b_log.contains("hook qemu vdeny migrate begin"), "{b_log}");
    assert!(
        !b_log.contains("hook qemu vdeny prepare"),
        "B went on past the refusal:\n{b_log}"
    );
    assert!(b_answers(), "B's libvirtd is fine after refusing");
}
