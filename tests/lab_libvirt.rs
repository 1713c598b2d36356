//! End-to-end with a real libvirtd (9.0) starting real qemu guests (TCG, no disk: the tap is
//! created, enslaved and every hook fires) inside the lab VM. virt-vlan is installed with
//! `virt-vlan install` and works only through libvirt's hooks here; the tests drive libvirt
//! with virsh and check the kernel with iproute2. One libvirtd serves the whole binary, so the
//! tests take turns (SERIAL).

mod labkit;

use labkit::host::*;
use labkit::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The host: br0 with uplink up0 to a switch namespace; guests may have VIDs 1-2000; the
/// uplink carries 100 and whatever local guests use.
const BASE: &str = r#"[bridges.br0]
default_pvid = 0
allowed = "1-2000"
[bridges.br0.self]
pvid = 1
[bridges.br0.uplinks.up0]
pvid = 1
tagged = "100"
on_demand = true
[hooks]
port_wait = 120
"#;

/// A bridge-mode network with portgroups named by the convention, one of them the default.
const LAN: &str = "<network><name>lan</name><forward mode='bridge'/><bridge name='br0'/>\
    <portgroup name='dmz-4'/><portgroup name='guests-30' default='yes'/>\
    <portgroup name='trunk'/><portgroup name='office'/></network>";

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes this test's turn. The host (br0, switch namespace sw, our hooks) is set up once;
/// libvirtd and the `lan` network are checked on every turn and brought back if an earlier
/// test, or the machine's load, left them down: one failure stays one test's failure.
fn turn() -> MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(setup);
    set_config(BASE);
    libvirtd::ensure();
    ensure_lan();
    g
}

/// The host every test starts from; whatever a failed earlier attempt left is removed first.
fn setup() {
    for s in ["link del br0", "netns del sw"] {
        let _ = Command::new("ip")
            .args(s.split(' '))
            .stderr(Stdio::null())
            .status();
    }
    must(
        "ip link add br0 type bridge && ip link set br0 up && ip netns add sw && \
         ip link add up0 type veth peer name eth0 netns sw && ip link set up0 master br0 && \
         ip link set up0 up && ip -n sw link set eth0 up",
    );
    set_config(BASE);
    let o = Command::new(BIN).arg("install").output().unwrap();
    assert!(
        o.status.success(),
        "install: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    println!("{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        std::fs::read_link("/etc/libvirt/hooks/qemu.d/virt-vlan").unwrap(),
        Path::new(BIN),
        "install put the .d hook entry in place"
    );
    vv_ok(&["apply"]);
    // a libvirtd already running (an earlier attempt's) would not see the new hook entries
    libvirtd::restart();
}

/// The `lan` network, defined and active.
fn ensure_lan() {
    if virsh_ok(&["net-list", "--name"])
        .lines()
        .any(|l| l.trim() == "lan")
    {
        return;
    }
    std::fs::write("/tmp/lan.xml", LAN).unwrap();
    let _ = virsh(&["net-define", "/tmp/lan.xml"]);
    virsh_ok(&["net-start", "lan"]);
}

fn virsh(args: &[&str]) -> Output {
    virsh_on(QEMU, args)
}

fn virsh_ok(args: &[&str]) -> String {
    virsh_ok_on(QEMU, args)
}

/// Replaces a running guest's virt-vlan metadata (`inner`: `<vlans>…</vlans>`, unprefixed).
fn set_live_metadata(domain: &str, inner: &str) {
    virsh_ok(&[
        "metadata",
        domain,
        "--uri",
        "urn:virt-vlan:1",
        "--key",
        "vv",
        "--live",
        "--set",
        inner,
    ]);
}

/// A disk-less TCG guest with `nics` (interface XML) and our `metadata` (inner XML).
fn define(name: &str, nics: &[String], metadata: &str) {
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <metadata>{metadata}</metadata>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>\
         <features><acpi/><apic/></features><on_poweroff>destroy</on_poweroff>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{}<memballoon model='none'/></devices></domain>",
        nics.join("")
    );
    let path = format!("/tmp/{name}.xml");
    std::fs::write(&path, xml).unwrap();
    virsh_ok(&["define", &path]);
}

fn bridge_nic(mac: &str) -> String {
    format!(
        "<interface type='bridge'><source bridge='br0'/><mac address='{mac}'/><model type='virtio'/></interface>"
    )
}

fn network_nic(mac: &str, portgroup: Option<&str>) -> String {
    let pg = portgroup
        .map(|p| format!(" portgroup='{p}'"))
        .unwrap_or_default();
    format!(
        "<interface type='network'><source network='lan'{pg}/><mac address='{mac}'/><model type='virtio'/></interface>"
    )
}

/// Our metadata: `(selector attribute, <vlan> XML)` per interface.
fn meta(entries: &[(&str, &str)]) -> String {
    let inner: String = entries
        .iter()
        .map(|(sel, vlan)| format!("<vv:interface {sel}>{vlan}</vv:interface>"))
        .collect();
    format!("<vv:vlans xmlns:vv='urn:virt-vlan:1'>{inner}</vv:vlans>")
}

/// The tap of the guest interface with `mac`, from libvirt's live XML.
fn tap(domain: &str, mac: &str) -> String {
    let xml = virsh_ok(&["dumpxml", domain]);
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

fn cleanup(domains: &[&str]) {
    for d in domains {
        let _ = virsh(&["destroy", d]);
        let _ = virsh(&["undefine", d]);
    }
}

/// Destroys and undefines its domains when dropped, also when a test fails half-way, so the
/// next test starts from a clean host.
struct Guests(Vec<String>);

impl Guests {
    fn new(names: &[&str]) -> Guests {
        cleanup(names);
        Guests(names.iter().map(|s| s.to_string()).collect())
    }
}

impl Drop for Guests {
    fn drop(&mut self) {
        let names: Vec<&str> = self.0.iter().map(String::as_str).collect();
        cleanup(&names);
    }
}

fn record() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(RECORD_PATH).unwrap_or("{}".into())).unwrap()
}

/// The ports the record ties to a domain.
fn recorded_ports(domain: &str) -> Vec<String> {
    recorded_ports_in(RECORD_PATH, domain)
}

#[test]
fn bridge_guest_vlans_from_metadata_access_trunk_native_untagged_and_tagged() {
    let _t = turn();
    let _g = Guests::new(&["vmeta"]);
    define(
        "vmeta",
        &[
            bridge_nic("52:54:00:a0:00:01"),
            bridge_nic("52:54:00:a0:00:02"),
            bridge_nic("52:54:00:a0:00:03"),
        ],
        &meta(&[
            (
                "mac='52:54:00:a0:00:01'",
                "<vv:vlan><vv:tag id='100'/></vv:vlan>",
            ),
            (
                "mac='52:54:00:a0:00:02'",
                "<vv:vlan trunk='yes'><vv:tag id='200' nativeMode='untagged'/><vv:tag id='201'/><vv:tag id='202'/></vv:vlan>",
            ),
            (
                "alias='net2'",
                "<vv:vlan trunk='yes'><vv:tag id='300' nativeMode='tagged'/><vv:tag id='301'/></vv:vlan>",
            ),
        ]),
    );
    virsh_ok(&["start", "vmeta"]);
    assert_eq!(root_port(&tap("vmeta", "52:54:00:a0:00:01")), "100PU");
    assert_eq!(
        root_port(&tap("vmeta", "52:54:00:a0:00:02")),
        "200PU 201-202"
    );
    assert_eq!(root_port(&tap("vmeta", "52:54:00:a0:00:03")), "300P 301");
    assert_eq!(
        root_port("up0"),
        "1PU 100 200-202 300-301",
        "on-demand uplink"
    );
    // applied by the start hook, before the guest's first instruction
    let log = std::fs::read_to_string("/var/log/virt-vlan/virt-vlan.log").unwrap();
    assert!(
        log.contains("start vmeta: 3 port(s) in their VLANs"),
        "{log}"
    );
    // show names the domain, the interface and the source
    let rows: serde_json::Value = serde_json::from_str(&vv_ok(&["show", "--json"])).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["port"] == tap("vmeta", "52:54:00:a0:00:03"))
        .unwrap();
    assert_eq!(row["domain"], "vmeta");
    assert_eq!(row["interface"], "net2");
    assert!(
        row["source"].as_str().unwrap().starts_with("metadata"),
        "{row}"
    );
    assert_eq!(row["role"], "guest");
    // stop: the domain's ports are released and on-demand VIDs leave the uplink
    virsh_ok(&["destroy", "vmeta"]);
    assert_eq!(root_port("up0"), "1PU 100");
    assert!(recorded_ports("vmeta").is_empty(), "{}", record());
    cleanup(&["vmeta"]);
}

#[test]
fn network_guests_by_portgroup_name_convention_and_default() {
    let _t = turn();
    let _g = Guests::new(&["vnet"]);
    define(
        "vnet",
        &[
            network_nic("52:54:00:b0:00:01", Some("dmz-4")),
            network_nic("52:54:00:b0:00:02", None),
            network_nic("52:54:00:b0:00:03", Some("trunk")),
            network_nic("52:54:00:b0:00:04", Some("office")),
        ],
        "",
    );
    virsh_ok(&["start", "vnet"]);
    assert_eq!(root_port(&tap("vnet", "52:54:00:b0:00:01")), "4PU");
    assert_eq!(
        root_port(&tap("vnet", "52:54:00:b0:00:02")),
        "30PU",
        "the default='yes' portgroup guests-30"
    );
    assert_eq!(
        root_port(&tap("vnet", "52:54:00:b0:00:03")),
        "1-2000",
        "trunk: every allowed VID"
    );
    assert_eq!(
        root_port(&tap("vnet", "52:54:00:b0:00:04")),
        "",
        "a portgroup name that says nothing: no VLAN"
    );
    let table = vv_ok(&["show"]);
    assert!(
        table.contains("portgroup name guests-30 of network lan"),
        "{table}"
    );
    cleanup(&["vnet"]);
    assert_eq!(root_port("up0"), "1PU 100");
}

#[test]
fn precedence_metadata_over_portgroup_over_config() {
    let _t = turn();
    let _g = Guests::new(&["vprec"]);
    set_config(&format!(
        "{BASE}[[ports]]\ndomain = \"vprec\"\ninterface = \"52:54:00:c0:00:02\"\npvid = 21\n\
         [[ports]]\ndomain = \"vprec\"\ninterface = \"net2\"\npvid = 22\n"
    ));
    define(
        "vprec",
        &[
            network_nic("52:54:00:c0:00:01", Some("dmz-4")),
            network_nic("52:54:00:c0:00:02", Some("dmz-4")),
            bridge_nic("52:54:00:c0:00:03"),
        ],
        &meta(&[(
            "mac='52:54:00:c0:00:01'",
            "<vv:vlan><vv:tag id='7'/></vv:vlan>",
        )]),
    );
    virsh_ok(&["start", "vprec"]);
    assert_eq!(
        root_port(&tap("vprec", "52:54:00:c0:00:01")),
        "7PU",
        "metadata beats the portgroup"
    );
    assert_eq!(
        root_port(&tap("vprec", "52:54:00:c0:00:02")),
        "4PU",
        "the portgroup beats the config"
    );
    assert_eq!(
        root_port(&tap("vprec", "52:54:00:c0:00:03")),
        "22PU",
        "the config, by alias"
    );
    cleanup(&["vprec"]);
}

#[test]
fn starts_are_refused_for_forbidden_or_malformed_vlans_and_nothing_is_applied() {
    let _t = turn();
    let _g = Guests::new(&["vbad1", "vbad2", "vbad3"]);
    let up_before = root_port("up0");
    define(
        "vbad1",
        &[bridge_nic("52:54:00:d0:00:01")],
        &meta(&[(
            "mac='52:54:00:d0:00:01'",
            "<vv:vlan><vv:tag id='3000'/></vv:vlan>",
        )]),
    );
    let o = virsh(&["start", "vbad1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("VID 3000 is not allowed on bridge br0"),
        "{err}"
    );
    define(
        "vbad2",
        &[bridge_nic("52:54:00:d0:00:02")],
        &meta(&[(
            "mac='52:54:00:d0:00:02'",
            "<vv:vlan><vv:tag id='4095'/></vv:vlan>",
        )]),
    );
    let o = virsh(&["start", "vbad2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("VID 4095 is reserved"), "{err}");
    // a network interface is refused already when its port is created
    define(
        "vbad3",
        &[network_nic("52:54:00:d0:00:03", None)],
        &meta(&[(
            "mac='52:54:00:d0:00:03'",
            "<vv:vlan><vv:tag id='2500'/></vv:vlan>",
        )]),
    );
    let o = virsh(&["start", "vbad3"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("VID 2500 is not allowed on bridge br0"),
        "{err}"
    );
    for d in ["vbad1", "vbad2", "vbad3"] {
        assert!(virsh_ok(&["domstate", d]).contains("shut off"));
        assert!(recorded_ports(d).is_empty());
    }
    assert_eq!(root_port("up0"), up_before, "nothing applied");
    cleanup(&["vbad1", "vbad2", "vbad3"]);
}

#[test]
fn hotplugged_network_interfaces_get_their_vlans_and_detach_prunes() {
    let _t = turn();
    let _g = Guests::new(&["vhot"]);
    define(
        "vhot",
        &[network_nic("52:54:00:e0:00:01", None)],
        &meta(&[(
            "mac='52:54:00:e0:00:09'",
            "<vv:vlan><vv:tag id='555'/></vv:vlan>",
        )]),
    );
    virsh_ok(&["start", "vhot"]);
    assert_eq!(root_port(&tap("vhot", "52:54:00:e0:00:01")), "30PU");
    // no qemu hook runs for a hot-plug: port-created's helper does the work
    std::fs::write(
        "/tmp/hot1.xml",
        network_nic("52:54:00:e0:00:02", Some("dmz-4")),
    )
    .unwrap();
    virsh_ok(&["attach-device", "vhot", "/tmp/hot1.xml", "--live"]);
    let t1 = tap("vhot", "52:54:00:e0:00:02");
    assert!(
        wait_for(60, || root_port(&t1) == "4PU"),
        "hot-plugged port: {}",
        root_port(&t1)
    );
    // the domain's metadata names this one: it wins over the default portgroup
    // (usb-net: a disk-less guest never completes a PCI hot-unplug; QEMU removes a USB NIC
    // at once, so this one can be detached)
    std::fs::write(
        "/tmp/hot2.xml",
        "<interface type='network'><source network='lan'/><mac address='52:54:00:e0:00:09'/><model type='usb-net'/></interface>",
    )
    .unwrap();
    virsh_ok(&["attach-device", "vhot", "/tmp/hot2.xml", "--live"]);
    let t2 = tap("vhot", "52:54:00:e0:00:09");
    assert!(
        wait_for(60, || root_port(&t2) == "555PU"),
        "hot-plugged port: {}",
        root_port(&t2)
    );
    assert!(
        wait_for(10, || root_port("up0").contains("555")),
        "{}",
        root_port("up0")
    );
    // detach: port-deleted prunes 555 from the uplink
    virsh_ok(&["detach-device", "vhot", "/tmp/hot2.xml", "--live"]);
    assert!(
        wait_for(60, || !root_port("up0").contains("555")),
        "{}",
        root_port("up0")
    );
    cleanup(&["vhot"]);
}

#[test]
fn libvirtd_restart_reconnect_keeps_ports_right_and_reload_reapplies_bridges() {
    let _t = turn();
    let _g = Guests::new(&["vrst"]);
    define(
        "vrst",
        &[
            network_nic("52:54:00:f0:00:01", Some("dmz-4")),
            bridge_nic("52:54:00:f0:00:02"),
        ],
        &meta(&[(
            "mac='52:54:00:f0:00:02'",
            "<vv:vlan><vv:tag id='77'/></vv:vlan>",
        )]),
    );
    virsh_ok(&["start", "vrst"]);
    let (a, b) = (
        tap("vrst", "52:54:00:f0:00:01"),
        tap("vrst", "52:54:00:f0:00:02"),
    );
    libvirtd::stop();
    // while libvirtd is down, someone breaks a port and adds a foreign VID
    must(&format!(
        "bridge vlan del dev {a} vid 4 && bridge vlan add dev {b} vid 999"
    ));
    assert_eq!(root_port(&a), "");
    libvirtd::start();
    // reconnect repaired it; the foreign VID is someone else's and stays
    assert!(wait_for(60, || root_port(&a) == "4PU"), "{}", root_port(&a));
    assert_eq!(root_port(&b), "77PU 999");
    assert_eq!(recorded_ports("vrst"), {
        let mut v = vec![a.clone(), b.clone()];
        v.sort();
        v
    });
    // daemon reload re-applies the bridges: uplink and filtering
    must("bridge vlan del dev up0 vid 100 && ip link set br0 type bridge vlan_filtering 0");
    let pid = std::fs::read_to_string("/run/libvirtd.pid").unwrap();
    must(&format!("kill -HUP {}", pid.trim()));
    assert!(
        wait_for(60, || root_port("up0").contains("100")),
        "{}",
        root_port("up0")
    );
    let filtering = || must("ip -d link show br0").contains("vlan_filtering 1");
    assert!(wait_for(10, filtering));
    cleanup(&["vrst"]);
}

/// Seconds since midnight of a hook log line's timestamp (`2026-11-22T11:12:09.820284Z ...`).
fn log_seconds(line: &str) -> Option<f64> {
    let clock = line.split_once('T')?.1.split('Z').next()?;
    let mut parts = clock.split(':').map(|p| p.parse::<f64>().ok());
    Some(parts.next()?? * 3600.0 + parts.next()?? * 60.0 + parts.next()??)
}

/// Load (issue 11): 32 guests started at once through libvirtd while `watch` runs and `apply`
/// runs in a loop, then destroyed at once. Every tap gets its VLAN, the uplink follows, the
/// record stays consistent, every `apply` succeeds and every hook finishes well within its
/// own patience (`port_wait`). The guests start paused: libvirt runs the same hooks and makes
/// the same taps, but 32 emulated BIOSes on two emulated CPUs would starve libvirtd itself.
#[test]
fn thirty_two_guests_start_and_stop_at_once_under_watch_and_apply_all_correct_record_consistent() {
    const N: u16 = 32;
    let _t = turn();
    let names: Vec<String> = (1..=N).map(|i| format!("vc{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let _g = Guests::new(&refs);
    for i in 1..=N {
        let mac = format!("52:54:00:c1:00:{i:02x}");
        define(
            &format!("vc{i}"),
            &[bridge_nic(&mac)],
            &meta(&[(
                &format!("mac='{mac}'"),
                &format!("<vv:vlan><vv:tag id='{}'/></vv:vlan>", 1100 + i),
            )]),
        );
    }
    let hook_log = "/var/log/virt-vlan/virt-vlan.log";
    let log_start = std::fs::read_to_string(hook_log).unwrap_or_default().len();
    let watch_log = "/tmp/watch-32.log";
    let mut watch = KillOnDrop(
        Command::new(BIN)
            .arg("watch")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(watch_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let read = || std::fs::read_to_string(watch_log).unwrap_or_default();
    assert!(wait_for(60, || read().contains("watching")), "{}", read());
    // `apply` in a loop all along, as an operator or a timer might run it
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let applies = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let o = Command::new(BIN).arg("apply").output().unwrap();
                runs.push((
                    o.status.code(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                ));
            }
            runs
        })
    };
    let at_once = |verb: &'static str| {
        let threads: Vec<_> = names
            .iter()
            .map(|n| {
                let n = n.clone();
                std::thread::spawn(move || {
                    let args: &[&str] = match verb {
                        "start" => &["start", "--paused", &n],
                        _ => &["destroy", &n],
                    };
                    (n.clone(), virsh(args))
                })
            })
            .collect();
        for h in threads {
            let (n, o) = h.join().unwrap();
            assert!(
                o.status.success(),
                "{verb} {n}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    };
    at_once("start");
    let vlans = kernel_vlans_in(None);
    let rec = record();
    for i in 1..=N {
        let t = tap(&format!("vc{i}"), &format!("52:54:00:c1:00:{i:02x}"));
        assert_eq!(
            describe(vlans[&t].clone()),
            format!("{}PU", 1100 + i),
            "{t}"
        );
        let e = &rec["bridges"]["br0"][&t];
        assert_eq!(e["origin"]["domain"], format!("vc{i}"), "{t}: {e}");
        assert_eq!(e["owned"], (1100 + i).to_string(), "{t}: {e}");
        let ifindex = must(&format!("cat /sys/class/net/{t}/ifindex"));
        assert_eq!(
            e["ifindex"].as_u64().unwrap().to_string(),
            ifindex.trim(),
            "record ties {t} to this tap"
        );
    }
    assert_eq!(root_port("up0"), format!("1PU 100 1101-{}", 1100 + N));

    // every start hook, from its first log line to its verdict
    let log = std::fs::read_to_string(hook_log).unwrap_or_default();
    let log = &log[log_start.min(log.len())..];
    let mut slowest = (0.0f64, String::new());
    for n in &names {
        let begun = log
            .lines()
            .find(|l| l.contains(&format!("hook qemu {n} start begin")))
            .and_then(log_seconds);
        let done = log
            .lines()
            .find(|l| l.contains(&format!("start {n}: 1 port(s) in their VLANs")))
            .and_then(log_seconds);
        let (Some(b), Some(d)) = (begun, done) else {
            panic!("no start hook and verdict for {n} in the hook log:\n{log}");
        };
        if d - b > slowest.0 {
            slowest = (d - b, n.clone());
        }
    }
    println!(
        "{N} guests at once: slowest start hook {:.2} s ({})",
        slowest.0, slowest.1
    );
    assert!(
        slowest.0 < 120.0,
        "a start hook took {:.1} s, past its own port_wait",
        slowest.0
    );
    assert!(!log.contains(" ERROR "), "the hooks logged errors:\n{log}");

    at_once("destroy");
    assert!(
        wait_for(60, || root_port("up0") == "1PU 100"),
        "{}",
        root_port("up0")
    );
    assert!(
        wait_for(30, || record()["bridges"]["br0"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| p == "br0" || p == "up0")),
        "{}",
        record()
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let runs = applies.join().unwrap();
    println!("{} applies ran alongside", runs.len());
    assert!(!runs.is_empty());
    for (code, err) in &runs {
        assert_eq!(*code, Some(0), "an apply alongside failed: {err}");
    }
    must(&format!("kill -TERM {}", watch.0.id()));
    assert!(watch.0.wait().unwrap().success(), "{}", read());
    assert!(!read().contains(" ERROR "), "{}", read());
    assert!(vv_ok(&["apply"]).contains("nothing to do"));
    cleanup(&refs);
}

#[test]
fn seed_002_network_and_kvmvlan_dispatcher_scripts_work_unchanged() {
    let _t = turn();
    let _g = Guests::new(&["vseed"]);
    // seed 002's network, as its README defines it
    std::fs::write(
        "/tmp/seed.xml",
        "<network><name>br0</name><forward mode='bridge'/><bridge name='br0'/>\
         <portgroup name = 'server-3'/><portgroup name = 'dmz-4'/>\
         <portgroup name = 'kubernetes-45'/><portgroup name = 'zerotier-46'/></network>",
    )
    .unwrap();
    let _ = virsh(&["net-destroy", "br0"]);
    let _ = virsh(&["net-undefine", "br0"]);
    virsh_ok(&["net-define", "/tmp/seed.xml"]);
    virsh_ok(&["net-start", "br0"]);
    // kvmvlan's layout: virt-vlan as the main qemu hook, a user script in qemu_started_begin.d
    vv_ok(&["install", "--uninstall"]);
    vv_ok(&["install", "--main-hook"]);
    must(
        "mkdir -p /etc/libvirt/hooks/qemu_started_begin.d /etc/libvirt/hooks/conf && \
         printf '#!/bin/sh\\necho \"$1 $2\" > /tmp/dispatched\\ngrep -c \"<domain\" >> /tmp/dispatched\\necho script-ran\\n' \
           > /etc/libvirt/hooks/qemu_started_begin.d/10-user.sh && \
         chmod 755 /etc/libvirt/hooks/qemu_started_begin.d/10-user.sh && rm -f /tmp/dispatched",
    );
    libvirtd::restart();
    define(
        "vseed",
        &["<interface type='network'><source network='br0' portgroup='zerotier-46'/><mac address='52:54:00:e2:55:89'/><model type='virtio'/></interface>".to_string()],
        "",
    );
    virsh_ok(&["start", "vseed"]);
    assert_eq!(root_port(&tap("vseed", "52:54:00:e2:55:89")), "46PU");
    assert_eq!(
        std::fs::read_to_string("/tmp/dispatched").unwrap(),
        "vseed /etc/libvirt/hooks/conf/10-user.conf\n1\n",
        "argv <object> <config> and the domain XML on stdin"
    );
    let log =
        std::fs::read_to_string("/var/log/virt-vlan/hooks/qemu_started_begin_vseed_10-user.log")
            .unwrap();
    assert_eq!(log, "script-ran\n");
    // a failing script in a phase libvirt honours refuses the start
    must(
        "mkdir -p /etc/libvirt/hooks/qemu_start_begin.d && \
         printf '#!/bin/sh\\necho broken >&2\\nexit 1\\n' > /etc/libvirt/hooks/qemu_start_begin.d/50-fails && \
         chmod 755 /etc/libvirt/hooks/qemu_start_begin.d/50-fails",
    );
    virsh_ok(&["destroy", "vseed"]);
    let o = virsh(&["start", "vseed"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("hook script 50-fails"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // back to the .d install for the other tests
    must("rm -rf /etc/libvirt/hooks/qemu_start_begin.d /etc/libvirt/hooks/qemu_started_begin.d");
    cleanup(&["vseed"]);
    let _ = virsh(&["net-destroy", "br0"]);
    let _ = virsh(&["net-undefine", "br0"]);
    vv_ok(&["install", "--uninstall", "--main-hook"]);
    vv_ok(&["install"]);
    libvirtd::restart();
}

#[test]
fn watch_gives_a_bridge_hotplug_its_vlans_with_no_hook_involved() {
    let _t = turn();
    let _g = Guests::new(&["vwatch"]);
    define(
        "vwatch",
        &[bridge_nic("52:54:00:ab:00:01")],
        &meta(&[
            (
                "mac='52:54:00:ab:00:01'",
                "<vv:vlan><vv:tag id='600'/></vv:vlan>",
            ),
            (
                "mac='52:54:00:ab:00:09'",
                "<vv:vlan trunk='yes'><vv:tag id='601'/><vv:tag id='602'/></vv:vlan>",
            ),
        ]),
    );
    virsh_ok(&["start", "vwatch"]);
    let log = "/tmp/watch-libvirt.log";
    let mut watch = KillOnDrop(
        Command::new(BIN)
            .arg("watch")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    );
    let read = || std::fs::read_to_string(log).unwrap_or_default();
    assert!(wait_for(60, || read().contains("watching")), "{}", read());
    let hook_lines = || {
        std::fs::read_to_string("/var/log/virt-vlan/virt-vlan.log")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("hook "))
            .count()
    };
    let hooks_before = hook_lines();
    // a type='bridge' hot-plug: libvirt runs no hook at all
    std::fs::write("/tmp/hotb.xml", bridge_nic("52:54:00:ab:00:09")).unwrap();
    virsh_ok(&["attach-device", "vwatch", "/tmp/hotb.xml", "--live"]);
    let t = tap("vwatch", "52:54:00:ab:00:09");
    assert!(
        wait_for(60, || root_port(&t) == "601-602"),
        "{}: {}\n{}",
        t,
        root_port(&t),
        read()
    );
    assert_eq!(hook_lines(), hooks_before, "no hook ran for it");
    let up = kernel_vlans_in(None)["up0"].clone();
    assert!(
        up.contains_key(&601) && up.contains_key(&602),
        "on demand: {}",
        root_port("up0")
    );
    // metadata changed on the running guest: libvirt's event stream tells the watcher
    let t0 = tap("vwatch", "52:54:00:ab:00:01");
    set_live_metadata(
        "vwatch",
        "<vlans><interface mac='52:54:00:ab:00:01'><vlan><tag id='650'/></vlan></interface>\
         <interface mac='52:54:00:ab:00:09'><vlan trunk='yes'><tag id='601'/><tag id='602'/></vlan></interface></vlans>",
    );
    assert!(
        wait_for(60, || root_port(&t0) == "650PU"),
        "{}\n{}",
        root_port(&t0),
        read()
    );
    must(&format!("kill -TERM {}", watch.0.id()));
    assert!(watch.0.wait().unwrap().success(), "{}", read());
}

#[test]
fn apply_learns_running_guests_from_libvirt() {
    let _t = turn();
    let _g = Guests::new(&["vapply"]);
    define(
        "vapply",
        &[
            bridge_nic("52:54:00:ac:00:01"),
            network_nic("52:54:00:ac:00:02", Some("dmz-4")),
        ],
        &meta(&[(
            "mac='52:54:00:ac:00:01'",
            "<vv:vlan><vv:tag id='70'/></vv:vlan>",
        )]),
    );
    virsh_ok(&["start", "vapply"]);
    let (a, b) = (
        tap("vapply", "52:54:00:ac:00:01"),
        tap("vapply", "52:54:00:ac:00:02"),
    );
    // someone breaks both ports; `apply` asks libvirt (one virsh run for the lists, one for
    // every domain's and network's XML) and puts them back
    must(&format!(
        "bridge vlan del dev {a} vid 70 && bridge vlan del dev {b} vid 4"
    ));
    vv_ok(&["apply"]);
    assert_eq!(root_port(&a), "70PU");
    assert_eq!(root_port(&b), "4PU");
    // metadata changed on the running guest: the next apply follows libvirt's live XML
    set_live_metadata(
        "vapply",
        "<vlans><interface mac='52:54:00:ac:00:01'><vlan><tag id='71'/></vlan></interface></vlans>",
    );
    let o = Command::new(BIN)
        .args(["apply", "--dry-run"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(
        plan.contains(&format!(
            "bridge vlan add dev {a} vid 71 pvid untagged master"
        )),
        "{plan}{}\nlive XML:\n{}",
        String::from_utf8_lossy(&o.stderr),
        virsh_ok(&["dumpxml", "vapply"])
    );
    vv_ok(&["apply"]);
    assert_eq!(root_port(&a), "71PU");
    let rows: serde_json::Value = serde_json::from_str(&vv_ok(&["show", "--json"])).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["port"] == b)
        .unwrap();
    assert_eq!(row["source"], "portgroup name dmz-4 of network lan");
}
