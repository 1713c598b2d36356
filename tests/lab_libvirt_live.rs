//! libvirt writing VLANs itself, and a live host: one winner per port when libvirt ≥ 11 puts
//! an interface's `<vlan>` on the tap before our hooks run, `default_pvid` leftovers, live
//! `update-device` changes, libvirtd restarts under the watcher, policy enforced after libvirt
//! wrote first, `check` on a bridge that does not filter, and an LXC container. Isolation is
//! proven with real frames captured on the guests' taps, not only with `bridge vlan show`.
//!
//! Runs in the lab VM after `lab_libvirt` (same boot): it reuses a running libvirtd, and its
//! own bridge br1 (uplink up1 into switch namespace sw1) collides with nothing there. On
//! libvirt 9 (Debian 12), which refuses `<vlan>` on Linux bridges, every case that needs
//! libvirt ≥ 11 asserts that refusal instead: no case passes without asserting something.
//! One libvirtd serves the whole binary, so the tests take turns (SERIAL).

mod labkit;

use labkit::frames::arp_senders_seen_on_each;
use labkit::host::*;
use labkit::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

const LXC: &str = "lxc:///system";

/// br1 with uplink up1 to switch namespace sw1; guests may have VIDs 1-2000; the uplink
/// carries 100 and whatever local guests use.
const BASE: &str = r#"[bridges.br1]
default_pvid = 0
allowed = "1-2000"
[bridges.br1.self]
pvid = 1
[bridges.br1.uplinks.up1]
pvid = 1
tagged = "100"
on_demand = true
[hooks]
port_wait = 120
"#;

/// The switch has an 802.1Q subinterface in a namespace of its own for each of these VLANs,
/// with address 10.9.1.<vid>: their ARP requests are the frames the captures look for.
const FRAME_VLANS: [u16; 5] = [7, 10, 20, 42, 43];
/// An address nobody has: pinging it makes the kernel broadcast ARP requests.
const NOBODY: &str = "10.9.1.250";

/// A bridge-mode network on br1 whose portgroup has a `<vlan>` (7) that disagrees with the
/// portgroup's name convention (9). libvirt 9 refuses it.
const LVNET: &str = "<network><name>lvnet</name><forward mode='bridge'/><bridge name='br1'/>\
    <portgroup name='office-9'><vlan><tag id='7'/></vlan></portgroup></network>";

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes this test's turn; sets up the host (and libvirtd, unless one runs) the first time;
/// puts the base config back and converges the host on it.
fn turn() -> MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(setup);
    // an earlier test (or the machine's load) may have left libvirtd down: one failure stays
    // one test's failure
    libvirtd::ensure();
    restore_base_config();
    g
}

fn restore_base_config() {
    set_config(BASE);
    // hygiene only (a test that failed half-way may have left another default_pvid): the
    // tests assert on their own applies
    let o = vv(&["apply"]);
    if !o.status.success() {
        eprintln!(
            "apply to the base config failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn setup() {
    println!("libvirt {} (major {})", libvirt_version(), libvirt_major());
    // A previous run of this binary in the same boot may have left these.
    for s in ["link del br1", "link del br9"] {
        let _ = Command::new("ip")
            .args(s.split(' '))
            .stderr(Stdio::null())
            .status();
    }
    build_switch("sw1", "up1", &FRAME_VLANS);
    ip_batch(
        None,
        &[
            "link add br1 type bridge".into(),
            "link set br1 up".into(),
            "link set up1 master br1".into(),
            "link set up1 up".into(),
        ],
    );
    set_config(BASE);
    let hooks_were_there = Path::new("/etc/libvirt/hooks/qemu.d/virt-vlan").exists()
        && Path::new("/etc/libvirt/hooks/lxc.d/virt-vlan").exists();
    let o = Command::new(BIN).arg("install").output().unwrap();
    assert!(
        o.status.success(),
        "install: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_link("/etc/libvirt/hooks/lxc.d/virt-vlan").unwrap(),
        Path::new(BIN),
        "install put the lxc .d hook entry in place"
    );
    vv_ok(&["apply"]);
    if libvirtd::pid().is_some() {
        println!("reusing the running libvirtd");
        libvirtd::wait_answering();
        if !hooks_were_there {
            // libvirt notices hook entries only when it starts
            libvirtd::restart();
        }
    } else {
        libvirtd::start();
    }
}

/// An upstream switch: namespace `switch` holding the far end (eth0) of a veth whose near end
/// is `uplink`, with an 802.1Q subinterface in a namespace of its own (`<switch>-v<vid>`,
/// address 10.9.1.<vid>) for each of `vlans`. Whatever an earlier run left is removed first.
fn build_switch(switch: &str, uplink: &str, vlans: &[u16]) {
    let mut stale = vec![format!("link del {uplink}"), format!("netns del {switch}")];
    stale.extend(vlans.iter().map(|v| format!("netns del {switch}-v{v}")));
    for s in stale {
        let _ = Command::new("ip")
            .args(s.split(' '))
            .stderr(Stdio::null())
            .status();
    }
    let mut namespaces = vec![format!("netns add {switch}")];
    namespaces.extend(vlans.iter().map(|v| format!("netns add {switch}-v{v}")));
    ip_batch(None, &namespaces);
    ip_batch(
        None,
        &[format!(
            "link add {uplink} type veth peer name eth0 netns {switch}"
        )],
    );
    let mut inside = vec!["link set lo up".to_string(), "link set eth0 up".into()];
    for v in vlans {
        inside.push(format!(
            "link add link eth0 name v{v} type vlan protocol 802.1Q id {v}"
        ));
        inside.push(format!("link set v{v} netns {switch}-v{v}"));
    }
    ip_batch(Some(switch), &inside);
    for v in vlans {
        ip_batch(
            Some(&format!("{switch}-v{v}")),
            &[
                "link set lo up".into(),
                format!("link set v{v} up"),
                format!("addr add 10.9.1.{v}/24 dev v{v}"),
            ],
        );
    }
}

/// `libvirtd --version`'s number, e.g. "11.3.0".
fn libvirt_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let out = checked(
            {
                let mut c = Command::new("libvirtd");
                c.arg("--version");
                c
            },
            "libvirtd --version",
        );
        out.split_whitespace()
            .last()
            .unwrap_or_else(|| panic!("libvirtd --version said nothing: {out:?}"))
            .to_string()
    })
}

fn libvirt_major() -> u32 {
    let v = libvirt_version();
    v.split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read libvirt's version from {v:?}"))
}

/// libvirt ≥ 11 accepts `<vlan>` on Linux bridges and writes it onto the tap itself.
fn libvirt_writes_vlans() -> bool {
    libvirt_major() >= 11
}

fn vv(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
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

/// libvirt's own `<vlan>`: an access port in `vid`.
fn libvirt_vlan(vid: u16) -> String {
    format!("<vlan><tag id='{vid}'/></vlan>")
}

/// A type='bridge' interface on `bridge`, with libvirt's `<vlan>` XML if given.
fn bridge_nic(bridge: &str, mac: &str, vlan: Option<&str>) -> String {
    format!(
        "<interface type='bridge'><source bridge='{bridge}'/><mac address='{mac}'/>{}<model type='virtio'/></interface>",
        vlan.unwrap_or("")
    )
}

fn network_nic(network: &str, mac: &str, portgroup: &str) -> String {
    format!(
        "<interface type='network'><source network='{network}' portgroup='{portgroup}'/><mac address='{mac}'/><model type='virtio'/></interface>"
    )
}

/// Our metadata: `(mac, <vv:vlan> XML)` per interface.
fn meta(entries: &[(&str, &str)]) -> String {
    let inner: String = entries
        .iter()
        .map(|(mac, vlan)| format!("<vv:interface mac='{mac}'>{vlan}</vv:interface>"))
        .collect();
    format!("<vv:vlans xmlns:vv='urn:virt-vlan:1'>{inner}</vv:vlans>")
}

/// Our metadata's access port in `vid`.
fn vv_access(vid: u16) -> String {
    format!("<vv:vlan><vv:tag id='{vid}'/></vv:vlan>")
}

/// The host-side device (tap or veth) of the guest interface with `mac`, from libvirt's live
/// XML.
fn tap_on(uri: &str, domain: &str, mac: &str) -> String {
    let xml = virsh_ok_on(uri, &["dumpxml", domain]);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("interface"))
        .find(|i| {
            i.children()
                .any(|c| c.has_tag_name("mac") && c.attribute("address") == Some(mac))
        })
        .and_then(|i| i.children().find(|c| c.has_tag_name("target")))
        .and_then(|t| t.attribute("dev"))
        .unwrap_or_else(|| panic!("{domain} has no host-side device for {mac}:\n{xml}"))
        .to_string()
}

fn tap(domain: &str, mac: &str) -> String {
    tap_on(QEMU, domain, mac)
}

/// The VIDs on a port of the VM's own namespace.
fn vids(port: &str) -> BTreeSet<u16> {
    kernel_vlans_in(None)
        .get(port)
        .map(|v| v.keys().copied().collect())
        .unwrap_or_default()
}

/// Whether uplink up1 carries every VID of `with` and none of `without`.
fn uplink_carries(with: &[u16], without: &[u16]) -> bool {
    let up = vids("up1");
    with.iter().all(|v| up.contains(v)) && !without.iter().any(|v| up.contains(v))
}

/// `virt-vlan show --json`'s row for `port` (Null when it has none).
fn show_row(port: &str) -> serde_json::Value {
    let rows: serde_json::Value = serde_json::from_str(&vv_ok(&["show", "--json"])).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["port"] == port)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

fn source_of(port: &str) -> String {
    show_row(port)["source"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// libvirt 9's answer to a `<vlan>` on a Linux bridge: the command failed, and libvirt itself
/// (not a hook of ours) said why, naming the vlan.
fn assert_libvirt_refuses_vlan(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "{what}: libvirt {} accepted a <vlan> on a Linux bridge:\n{}",
        libvirt_version(),
        String::from_utf8_lossy(&o.stdout)
    );
    let said = err.to_lowercase().replace("virt-vlan", "");
    assert!(
        said.contains("vlan") && !said.contains("hook"),
        "{what}: libvirt {} failed, but not by refusing the <vlan>:\n{err}",
        libvirt_version()
    );
    println!(
        "libvirt {} refuses it, as expected: {}",
        libvirt_version(),
        err.trim()
    );
}

/// Starts `domain`, some bridge interface of which has a libvirt `<vlan>`: libvirt ≥ 11 must
/// start it; libvirt 9 must refuse it (asserted), and the refused definition is removed.
/// Returns whether the guest runs.
fn start_with_libvirt_vlan(domain: &str) -> bool {
    if libvirt_writes_vlans() {
        virsh_ok(&["start", domain]);
        true
    } else {
        assert_libvirt_refuses_vlan(&virsh(&["start", domain]), &format!("start {domain}"));
        assert!(virsh_ok(&["domstate", domain]).contains("shut off"));
        // the case goes on without libvirt's <vlan>: the name is free for that definition
        virsh_ok(&["undefine", domain]);
        false
    }
}

/// Captures on every tap of `expect` while switch sw1's VLAN namespaces each broadcast ARP
/// requests (pinging an address nobody has), then asserts per tap that the requests of the
/// `seen` VLANs arrived and none of the `unseen` ones did.
fn assert_frames(expect: &[(&str, &[u16], &[u16])]) {
    assert_frames_from("sw1", expect)
}

/// [`assert_frames`] with the broadcasts sent from the VLAN namespaces of `switch`.
fn assert_frames_from(switch: &str, expect: &[(&str, &[u16], &[u16])]) {
    let mut vlans: BTreeSet<u16> = BTreeSet::new();
    for (_, seen, unseen) in expect {
        vlans.extend(seen.iter().chain(unseen.iter()));
    }
    let taps: Vec<&str> = expect.iter().map(|(t, _, _)| *t).collect();
    let got = arp_senders_seen_on_each(&taps, || {
        let pings: Vec<KillOnDrop> = vlans
            .iter()
            .map(|v| {
                let ns = format!("{switch}-v{v}");
                // a failed neighbour entry left by an earlier capture must not delay the ARP
                let _ = in_ns(&ns, "ip")
                    .args(["neigh", "flush", "all"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                KillOnDrop(
                    in_ns(&ns, "ping")
                        .args(["-q", "-n", "-c", "4", "-i", "0.4", "-w", "2", NOBODY])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        for mut p in pings {
            let _ = p.0.wait();
        }
    });
    for ((tap, seen, unseen), senders) in expect.iter().zip(got) {
        println!("ARP requests seen on {tap}: {senders:?}");
        for v in *seen {
            assert!(
                senders.contains(&format!("10.9.1.{v}")),
                "{tap} must get VLAN {v}'s broadcasts but saw ARP only from {senders:?} (port {})",
                root_port(tap)
            );
        }
        for v in *unseen {
            assert!(
                !senders.contains(&format!("10.9.1.{v}")),
                "LEAK: {tap} got a broadcast of VLAN {v} (ARP from {senders:?}; port {})",
                root_port(tap)
            );
        }
    }
}

fn cleanup(uri: &str, domains: &[String]) {
    for d in domains {
        let _ = virsh_on(uri, &["destroy", d]);
        let _ = virsh_on(uri, &["undefine", d]);
    }
}

/// Destroys and undefines its domains when created and when dropped, also when a test fails
/// half-way, so the next test starts from a clean host.
struct Guests {
    uri: &'static str,
    names: Vec<String>,
}

impl Guests {
    fn on(uri: &'static str, names: &[&str]) -> Guests {
        let g = Guests {
            uri,
            names: names.iter().map(|s| s.to_string()).collect(),
        };
        cleanup(uri, &g.names);
        g
    }

    fn new(names: &[&str]) -> Guests {
        Guests::on(QEMU, names)
    }
}

impl Drop for Guests {
    fn drop(&mut self) {
        cleanup(self.uri, &self.names);
    }
}

/// A libvirt network destroyed and undefined when dropped (and before use).
struct Network(&'static str);

impl Network {
    fn new(name: &'static str) -> Network {
        let n = Network(name);
        n.remove();
        n
    }

    fn remove(&self) {
        let _ = virsh(&["net-destroy", self.0]);
        let _ = virsh(&["net-undefine", self.0]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A bridge outside the config, deleted when dropped (and before it is made).
struct ExtraBridge(&'static str);

impl ExtraBridge {
    fn without_vlan_filtering(name: &'static str) -> ExtraBridge {
        let _ = Command::new("ip")
            .args(["link", "del", name])
            .stderr(Stdio::null())
            .status();
        must(&format!(
            "ip link add {name} type bridge vlan_filtering 0 && ip link set {name} up"
        ));
        ExtraBridge(name)
    }
}

impl Drop for ExtraBridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).status();
    }
}

/// Puts the base config back and applies it when dropped.
struct BaseConfigAfter;

impl Drop for BaseConfigAfter {
    fn drop(&mut self) {
        restore_base_config();
    }
}

/// `virt-vlan watch` with its log (stderr) in a file; killed when dropped.
struct Watch {
    child: KillOnDrop,
    log: String,
}

impl Watch {
    /// Starts the watcher and waits until it says it is watching.
    fn start(tag: &str) -> Watch {
        let log = format!("/tmp/lv-watch-{tag}.log");
        let child = KillOnDrop(
            Command::new(BIN)
                .arg("watch")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        let w = Watch { child, log };
        assert!(wait_for(60, || w.log().contains("watching")), "{}", w.log());
        w
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; the watcher must exit successfully within 30 s.
    fn stop(mut self) {
        let pid = self.child.0.id() as libc::pid_t;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let mut status = None;
        assert!(
            wait_for(30, || {
                status = self.child.0.try_wait().unwrap();
                status.is_some()
            }),
            "watch did not exit on SIGTERM:\n{}",
            self.log()
        );
        assert!(status.unwrap().success(), "{}", self.log());
    }
}

fn settle() {
    std::thread::sleep(Duration::from_secs(3));
}

// ---------------------------------------------------------------------------------------
// 1. One winner per port, never a union
// ---------------------------------------------------------------------------------------

#[test]
fn metadata_beats_interface_vlan_one_winner_per_tap_proven_by_frames() {
    let _t = turn();
    let _g = Guests::new(&["lv-ifvlan"]);
    let (a, b) = ("52:54:00:71:00:01", "52:54:00:71:00:02");
    let v42 = libvirt_vlan(42);
    define(
        "lv-ifvlan",
        &[
            bridge_nic("br1", a, Some(&v42)),
            bridge_nic("br1", b, Some(&v42)),
        ],
        &meta(&[(a, &vv_access(43))]),
    );
    if start_with_libvirt_vlan("lv-ifvlan") {
        let (ta, tb) = (tap("lv-ifvlan", a), tap("lv-ifvlan", b));
        assert_eq!(
            root_port(&ta),
            "43PU",
            "metadata (43) beats the interface's own <vlan> (42) that libvirt wrote first: one winner, no union"
        );
        assert_eq!(
            root_port(&tb),
            "42PU",
            "no metadata: libvirt's <vlan> is the source"
        );
        let src = source_of(&ta);
        assert!(src.starts_with("metadata (line "), "{ta}: {src}");
        assert_eq!(source_of(&tb), "interface <vlan>");
    } else {
        // libvirt 9: the same taps from metadata alone, and the same frames
        define(
            "lv-ifvlan",
            &[bridge_nic("br1", a, None), bridge_nic("br1", b, None)],
            &meta(&[(a, &vv_access(43)), (b, &vv_access(42))]),
        );
        virsh_ok(&["start", "lv-ifvlan"]);
        assert_eq!(root_port(&tap("lv-ifvlan", a)), "43PU");
        assert_eq!(root_port(&tap("lv-ifvlan", b)), "42PU");
    }
    let (ta, tb) = (tap("lv-ifvlan", a), tap("lv-ifvlan", b));
    assert!(uplink_carries(&[42, 43], &[]), "{}", root_port("up1"));
    assert_frames(&[(&ta, &[43], &[42]), (&tb, &[42], &[43])]);
}

#[test]
fn metadata_trunk_beats_portgroup_vlan_and_portgroup_vlan_beats_its_name_proven_by_frames() {
    let _t = turn();
    let _n = Network::new("lvnet");
    let _g = Guests::new(&["lv-pgvlan"]);
    std::fs::write("/tmp/lvnet.xml", LVNET).unwrap();
    if !libvirt_writes_vlans() {
        // libvirt 9 refuses a portgroup <vlan> on a Linux bridge network when it is defined
        // (or, failing that, started)
        let o = virsh(&["net-define", "/tmp/lvnet.xml"]);
        if o.status.success() {
            assert_libvirt_refuses_vlan(&virsh(&["net-start", "lvnet"]), "net-start lvnet");
        } else {
            assert_libvirt_refuses_vlan(&o, "net-define lvnet");
        }
        return;
    }
    virsh_ok(&["net-define", "/tmp/lvnet.xml"]);
    virsh_ok(&["net-start", "lvnet"]);
    let (a, b) = ("52:54:00:72:00:01", "52:54:00:72:00:02");
    define(
        "lv-pgvlan",
        &[
            network_nic("lvnet", a, "office-9"),
            network_nic("lvnet", b, "office-9"),
        ],
        &meta(&[(
            a,
            "<vv:vlan trunk='yes'><vv:tag id='10' nativeMode='untagged'/><vv:tag id='20'/></vv:vlan>",
        )]),
    );
    virsh_ok(&["start", "lv-pgvlan"]);
    let (ta, tb) = (tap("lv-pgvlan", a), tap("lv-pgvlan", b));
    println!("live XML:\n{}", virsh_ok(&["dumpxml", "lv-pgvlan"]));
    assert_eq!(
        root_port(&ta),
        "10PU 20",
        "the metadata trunk beats the portgroup's <vlan> 7 libvirt wrote first: no 7 left"
    );
    assert_eq!(
        root_port(&tb),
        "7PU",
        "no metadata: the portgroup's <vlan> (7) wins over its name (office-9)"
    );
    let src = source_of(&ta);
    assert!(src.starts_with("metadata (line "), "{ta}: {src}");
    let src = source_of(&tb);
    assert!(
        src.contains("portgroup") && src != "interface <vlan>",
        "libvirt copies the portgroup's <vlan> into the live interface, but it is the portgroup's: {tb}: {src}"
    );
    assert!(uplink_carries(&[7, 10, 20], &[9]), "{}", root_port("up1"));
    assert_frames(&[(&ta, &[10, 20], &[7]), (&tb, &[7], &[10, 20])]);
}

#[test]
fn watch_gives_hotplugged_bridge_interface_its_metadata_vlan_over_its_own_vlan() {
    let _t = turn();
    let _g = Guests::new(&["lv-hot"]);
    let (a, h) = ("52:54:00:73:00:01", "52:54:00:73:00:09");
    define(
        "lv-hot",
        &[bridge_nic("br1", a, None)],
        &meta(&[(h, &vv_access(43))]),
    );
    virsh_ok(&["start", "lv-hot"]);
    let w = Watch::start("hot");
    // a type='bridge' hot-plug runs no hook: only the watcher sees it
    std::fs::write(
        "/tmp/lv-hot-nic.xml",
        bridge_nic("br1", h, Some(&libvirt_vlan(42))),
    )
    .unwrap();
    let o = virsh(&["attach-device", "lv-hot", "/tmp/lv-hot-nic.xml", "--live"]);
    if libvirt_writes_vlans() {
        assert!(
            o.status.success(),
            "attach-device: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    } else {
        assert_libvirt_refuses_vlan(&o, "attach-device with <vlan>");
        // libvirt 9: the same interface without <vlan>, from the metadata alone
        std::fs::write("/tmp/lv-hot-nic.xml", bridge_nic("br1", h, None)).unwrap();
        virsh_ok(&["attach-device", "lv-hot", "/tmp/lv-hot-nic.xml", "--live"]);
    }
    let t = tap("lv-hot", h);
    assert!(
        wait_for(60, || root_port(&t) == "43PU"),
        "{t}: {}\n{}",
        root_port(&t),
        w.log()
    );
    settle();
    assert_eq!(root_port(&t), "43PU", "stays: {}", w.log());
    let src = source_of(&t);
    assert!(src.starts_with("metadata (line "), "{t}: {src}");
    assert!(
        wait_for(10, || uplink_carries(&[43], &[42])),
        "on demand, only the winner: {}",
        root_port("up1")
    );
    w.stop();
}

// ---------------------------------------------------------------------------------------
// 2. default_pvid
// ---------------------------------------------------------------------------------------

#[test]
fn default_pvid_5_leaves_only_the_winning_vlan_on_a_tap_proven_by_frames() {
    let _t = turn();
    let _c = BaseConfigAfter;
    set_config(&BASE.replace("default_pvid = 0", "default_pvid = 5"));
    vv_ok(&["apply"]);
    let mut c = Command::new("ip");
    c.args(["-j", "-d", "link", "show", "br1"]);
    let link: serde_json::Value = serde_json::from_str(&checked(c, "ip -d link show br1")).unwrap();
    assert_eq!(link[0]["linkinfo"]["info_data"]["vlan_default_pvid"], 5);
    let _g = Guests::new(&["lv-pvid5"]);
    let (a, b) = ("52:54:00:74:00:01", "52:54:00:74:00:02");
    let v42 = libvirt_vlan(42);
    define(
        "lv-pvid5",
        &[
            bridge_nic("br1", a, Some(&v42)),
            bridge_nic("br1", b, Some(&v42)),
        ],
        &meta(&[(a, &vv_access(43))]),
    );
    if start_with_libvirt_vlan("lv-pvid5") {
        assert_eq!(
            root_port(&tap("lv-pvid5", a)),
            "43PU",
            "no 5 (the kernel's default) and no 42 (libvirt's) left beside the metadata's 43"
        );
        assert_eq!(
            root_port(&tap("lv-pvid5", b)),
            "42PU",
            "libvirt's <vlan> wins without metadata, and the kernel's 5 goes"
        );
    } else {
        define(
            "lv-pvid5",
            &[bridge_nic("br1", a, None), bridge_nic("br1", b, None)],
            &meta(&[(a, &vv_access(43)), (b, &vv_access(42))]),
        );
        virsh_ok(&["start", "lv-pvid5"]);
        assert_eq!(
            root_port(&tap("lv-pvid5", a)),
            "43PU",
            "no 5 (the kernel's default) left beside the metadata's 43"
        );
        assert_eq!(root_port(&tap("lv-pvid5", b)), "42PU");
    }
    let (ta, tb) = (tap("lv-pvid5", a), tap("lv-pvid5", b));
    assert!(uplink_carries(&[42, 43], &[]), "{}", root_port("up1"));
    assert_frames(&[(&ta, &[43], &[42]), (&tb, &[42], &[43])]);
}

// ---------------------------------------------------------------------------------------
// 3. Live changes converge on the newest XML
// ---------------------------------------------------------------------------------------

#[test]
fn update_device_to_a_new_vlan_then_apply_converges_on_it_and_the_uplink_follows() {
    let _t = turn();
    let _g = Guests::new(&["lv-upd"]);
    let a = "52:54:00:75:00:01";
    define(
        "lv-upd",
        &[bridge_nic("br1", a, Some(&libvirt_vlan(42)))],
        "",
    );
    if !start_with_libvirt_vlan("lv-upd") {
        return;
    }
    let t = tap("lv-upd", a);
    assert_eq!(root_port(&t), "42PU");
    assert!(uplink_carries(&[42], &[]), "{}", root_port("up1"));
    // libvirt re-attaches the tap and writes 50 itself; no domain event, no hook
    std::fs::write(
        "/tmp/lv-upd-nic.xml",
        bridge_nic("br1", a, Some(&libvirt_vlan(50))),
    )
    .unwrap();
    virsh_ok(&["update-device", "lv-upd", "/tmp/lv-upd-nic.xml", "--live"]);
    assert_eq!(tap("lv-upd", a), t, "libvirt kept the tap");
    println!("after update-device: {t} {}", root_port(&t));
    let o = vv(&["apply"]);
    assert!(
        o.status.success(),
        "apply after update-device ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(root_port(&t), "50PU", "the newest XML wins");
    assert!(
        uplink_carries(&[50], &[42]),
        "on demand: 50 added, 42 pruned: {}",
        root_port("up1")
    );
    assert_eq!(source_of(&t), "interface <vlan>");
}

#[test]
fn update_device_to_a_new_vlan_with_watch_running_stays_and_apply_has_nothing_to_do() {
    let _t = turn();
    let _g = Guests::new(&["lv-updw"]);
    let a = "52:54:00:76:00:01";
    define(
        "lv-updw",
        &[bridge_nic("br1", a, Some(&libvirt_vlan(42)))],
        "",
    );
    if !start_with_libvirt_vlan("lv-updw") {
        return;
    }
    let t = tap("lv-updw", a);
    assert_eq!(root_port(&t), "42PU");
    let w = Watch::start("updw");
    std::fs::write(
        "/tmp/lv-updw-nic.xml",
        bridge_nic("br1", a, Some(&libvirt_vlan(50))),
    )
    .unwrap();
    virsh_ok(&["update-device", "lv-updw", "/tmp/lv-updw-nic.xml", "--live"]);
    assert!(
        wait_for(60, || root_port(&t) == "50PU"),
        "{t}: {}\n{}",
        root_port(&t),
        w.log()
    );
    settle();
    assert_eq!(
        root_port(&t),
        "50PU",
        "the watcher must not write the old VLAN back:\n{}",
        w.log()
    );
    assert!(
        wait_for(30, || uplink_carries(&[50], &[42])),
        "on demand: 50 added, 42 pruned: {}\n{}",
        root_port("up1"),
        w.log()
    );
    let out = vv_ok(&["apply"]);
    assert!(out.contains("nothing to do"), "{out}\n{}", w.log());
    assert_eq!(root_port(&t), "50PU");
    w.stop();
}

#[test]
fn watch_resubscribes_to_libvirt_events_after_libvirtd_restarts() {
    let _t = turn();
    let _g = Guests::new(&["lv-rst"]);
    let a = "52:54:00:77:00:01";
    define(
        "lv-rst",
        &[bridge_nic("br1", a, None)],
        &meta(&[(a, &vv_access(60))]),
    );
    virsh_ok(&["start", "lv-rst"]);
    let t = tap("lv-rst", a);
    assert_eq!(root_port(&t), "60PU");
    let w = Watch::start("rst");
    libvirtd::restart();
    assert!(
        wait_for(60, || virsh_ok(&["domstate", "lv-rst"]).contains("running")),
        "the guest survived libvirtd's restart"
    );
    let set = |vid: u16| {
        set_live_metadata(
            "lv-rst",
            &format!(
                "<vlans><interface mac='{a}'><vlan><tag id='{vid}'/></vlan></interface></vlans>"
            ),
        )
    };
    set(61);
    assert!(
        wait_for(60, || root_port(&t) == "61PU"),
        "{t}: {}\n{}",
        root_port(&t),
        w.log()
    );
    // a second change, well after the watcher is back: only libvirt's event stream can bring
    // it (the watcher never polls)
    settle();
    set(62);
    assert!(
        wait_for(60, || root_port(&t) == "62PU"),
        "{t}: {}\n{}",
        root_port(&t),
        w.log()
    );
    w.stop();
}

// ---------------------------------------------------------------------------------------
// 4. Policy holds when libvirt writes first
// ---------------------------------------------------------------------------------------

#[test]
fn watch_strips_libvirt_vlans_outside_allowed_and_keeps_managing_other_guests() {
    let _t = turn();
    let _g = Guests::new(&["lv-pol", "lv-pol2"]);
    let (a, h, c) = (
        "52:54:00:78:00:01",
        "52:54:00:78:00:09",
        "52:54:00:78:00:11",
    );
    let v3000 = libvirt_vlan(3000);
    std::fs::write("/tmp/lv-pol-hot.xml", bridge_nic("br1", h, Some(&v3000))).unwrap();
    if !libvirt_writes_vlans() {
        define("lv-pol", &[bridge_nic("br1", a, None)], "");
        virsh_ok(&["start", "lv-pol"]);
        assert_libvirt_refuses_vlan(
            &virsh(&["attach-device", "lv-pol", "/tmp/lv-pol-hot.xml", "--live"]),
            "attach-device with <vlan> 3000",
        );
        return;
    }
    define(
        "lv-pol",
        &[bridge_nic("br1", a, Some(&libvirt_vlan(42)))],
        "",
    );
    virsh_ok(&["start", "lv-pol"]);
    let ta = tap("lv-pol", a);
    assert_eq!(root_port(&ta), "42PU");
    let w = Watch::start("pol");
    let stripped =
        |port: &str| root_port(port).is_empty() && source_of(port).contains("not allowed");

    // (a) a hot-plugged interface whose <vlan> libvirt writes is outside `allowed`
    virsh_ok(&["attach-device", "lv-pol", "/tmp/lv-pol-hot.xml", "--live"]);
    let th = tap("lv-pol", h);
    assert!(
        wait_for(60, || stripped(&th)),
        "{th}: {} ({})\n{}",
        root_port(&th),
        source_of(&th),
        w.log()
    );
    settle();
    assert_eq!(root_port(&th), "", "no VLAN at all, and it stays so");
    let log = w.log();
    assert!(
        log.contains("3000") && log.contains("not allowed"),
        "the watcher says why:\n{log}"
    );

    // (b) update-device of an existing interface to a <vlan> outside `allowed`
    std::fs::write("/tmp/lv-pol-upd.xml", bridge_nic("br1", a, Some(&v3000))).unwrap();
    virsh_ok(&["update-device", "lv-pol", "/tmp/lv-pol-upd.xml", "--live"]);
    assert!(
        wait_for(60, || stripped(&ta)),
        "{ta}: {} ({})\n{}",
        root_port(&ta),
        source_of(&ta),
        w.log()
    );
    settle();
    assert_eq!(root_port(&ta), "");

    // (c) meanwhile another guest's port is still managed, by the hooks and by the watcher
    define(
        "lv-pol2",
        &[bridge_nic("br1", c, None)],
        &meta(&[(c, &vv_access(44))]),
    );
    virsh_ok(&["start", "lv-pol2"]);
    let tc = tap("lv-pol2", c);
    assert_eq!(root_port(&tc), "44PU");
    must(&format!("bridge vlan del dev {tc} vid 44"));
    assert!(
        wait_for(60, || root_port(&tc) == "44PU"),
        "the watcher repairs {tc} despite lv-pol's violation: {}\n{}",
        root_port(&tc),
        w.log()
    );
    let o = vv(&["apply"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "apply: the violation is bad input:\n{err}"
    );
    assert!(
        err.contains("VID 3000 is not allowed on bridge br1"),
        "{err}"
    );
    assert_eq!(root_port(&tc), "44PU", "the other guest keeps its VLAN");
    assert_eq!(root_port(&ta), "");
    assert_eq!(root_port(&th), "");
    assert!(uplink_carries(&[44], &[42, 3000]), "{}", root_port("up1"));
    w.stop();
}

// ---------------------------------------------------------------------------------------
// 5. check
// ---------------------------------------------------------------------------------------

#[test]
fn check_warns_about_a_guest_vlan_on_a_bridge_that_does_not_filter_vlans() {
    let _t = turn();
    let _b = ExtraBridge::without_vlan_filtering("br9");
    let _g = Guests::new(&["lv-chk"]);
    let a = "52:54:00:79:00:01";
    define(
        "lv-chk",
        &[bridge_nic("br9", a, Some(&libvirt_vlan(42)))],
        "",
    );
    if !start_with_libvirt_vlan("lv-chk") {
        return;
    }
    // libvirt accepts it and says nothing, though the bridge enforces no VLAN
    let o = vv(&["check"]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.lines().any(|l| l.starts_with("warning:")
            && l.contains("br9")
            && l.contains("does not filter VLANs")),
        "check ({}):\n{out}",
        o.status
    );
}

// ---------------------------------------------------------------------------------------
// 6. LXC
// ---------------------------------------------------------------------------------------

#[test]
fn lxc_container_gets_its_metadata_vlan_apply_knows_it_and_destroy_releases() {
    let _t = turn();
    let _g = Guests::on(LXC, &["lv-lxc"]);
    let mac = "52:54:00:7a:00:01";
    // The lab VM's root is read-only and libvirt_lxc pivots into the container's root, so
    // the container gets a small writable root of its own: a shell from busybox-static.
    let root = "/tmp/lv-lxc-root";
    must(&format!(
        "rm -rf {root} && mkdir -p {root}/bin {root}/dev {root}/proc {root}/sys {root}/tmp \
         && cp /bin/busybox {root}/bin/busybox && ln -s busybox {root}/bin/sh"
    ));
    let xml = format!(
        "<domain type='lxc'><name>lv-lxc</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <metadata>{}</metadata>\
         <os><type>exe</type><init>/bin/sh</init></os>\
         <on_poweroff>destroy</on_poweroff>\
         <devices><console type='pty'/>\
         <filesystem type='mount'><source dir='{root}'/><target dir='/'/></filesystem>\
         <interface type='bridge'><source bridge='br1'/><mac address='{mac}'/></interface>\
         </devices></domain>",
        meta(&[(mac, &vv_access(45))]),
    );
    std::fs::write("/tmp/lv-lxc.xml", xml).unwrap();
    virsh_ok_on(LXC, &["define", "/tmp/lv-lxc.xml"]);
    // if the lxc driver cannot start a container here, this fails with libvirt's message
    virsh_ok_on(LXC, &["start", "lv-lxc"]);
    let veth = tap_on(LXC, "lv-lxc", mac);
    assert_eq!(root_port(&veth), "45PU", "the lxc start hook applied it");
    assert!(uplink_carries(&[45], &[]), "{}", root_port("up1"));
    let out = vv_ok(&["apply"]);
    assert!(
        out.contains("nothing to do"),
        "apply learnt the LXC domain:\n{out}"
    );
    assert_eq!(root_port(&veth), "45PU");
    assert_eq!(show_row(&veth)["domain"], "lv-lxc");
    virsh_ok_on(LXC, &["destroy", "lv-lxc"]);
    assert!(
        wait_for(30, || uplink_carries(&[], &[45])),
        "released: {}",
        root_port("up1")
    );
}

// ---------------------------------------------------------------------------------------
// 6. Open vSwitch guests: libvirt plugs them in with ovs-vsctl, our hooks give their VLANs
// ---------------------------------------------------------------------------------------

/// Bridge ovsvv on the host's Open vSwitch with an on-demand uplink upo (a veth): guests may
/// have VIDs 1-2000, like br1's.
const OVS_PART: &str = r#"
[bridges.ovsvv]
allowed = "1-2000"
[bridges.ovsvv.uplinks.upo]
on_demand = true
"#;

/// The VLANs upstream switch swo (behind ovsvv's uplink upo) broadcasts on: what the OVS
/// guests use, and what lost to another source there.
const OVS_FRAME_VLANS: [u16; 7] = [42, 43, 44, 45, 46, 47, 48];

/// A bridge-mode libvirt network on ovsvv with a portgroup named by convention (VLAN 46).
const OVSNET: &str = "<network><name>ovsnet</name><forward mode='bridge'/><bridge name='ovsvv'/>\
    <virtualport type='openvswitch'/><portgroup name='dmz-46'/></network>";

/// An interface plugged into Open vSwitch bridge `bridge`, with libvirt's `<vlan>` if given.
fn ovs_nic(bridge: &str, mac: &str, vlan: Option<&str>) -> String {
    format!(
        "<interface type='bridge'><source bridge='{bridge}'/><virtualport type='openvswitch'/>\
         <mac address='{mac}'/>{}<model type='virtio'/></interface>",
        vlan.unwrap_or("")
    )
}

#[test]
fn ovs_guests_get_metadata_libvirt_vlan_and_portgroup_vlans_one_winner_and_stop_prunes() {
    let _t = turn();
    let _base = BaseConfigAfter;
    let _ = Command::new("ip")
        .args(["link", "del", "upo"])
        .stderr(Stdio::null())
        .status();
    build_switch("swo", "upo", &OVS_FRAME_VLANS);
    must("ip link set upo up");
    let ovs = labkit::ovs::Ovs::start_system("lv-ovs");
    ovs.vsctl(&["add-br", "ovsvv", "--", "add-port", "ovsvv", "upo"]);
    set_config(&format!("{BASE}{OVS_PART}"));
    vv_ok(&["apply"]);
    let columns = |port: &str| ovs.vlan_columns(port);
    let access = |vid: u16| ("access".to_string(), vid.to_string(), "[]".to_string());
    assert_eq!(
        columns("upo"),
        ("trunk".into(), "4095".into(), "[4095]".into()),
        "no guest yet: the uplink carries no VLAN, never every VLAN"
    );

    let _n = Network::new("ovsnet");
    std::fs::write("/tmp/ovsnet.xml", OVSNET).unwrap();
    virsh_ok(&["net-define", "/tmp/ovsnet.xml"]);
    virsh_ok(&["net-start", "ovsnet"]);
    let _g = Guests::new(&["lv-ovs", "lv-ovs-bad"]);
    let (a, b, c, d, h) = (
        "52:54:00:7a:00:01",
        "52:54:00:7a:00:02",
        "52:54:00:7a:00:03",
        "52:54:00:7a:00:04",
        "52:54:00:7a:00:05",
    );
    let (v43, v44) = (libvirt_vlan(43), libvirt_vlan(44));
    define(
        "lv-ovs",
        &[
            ovs_nic("ovsvv", a, None),
            ovs_nic("ovsvv", b, Some(&v43)),
            ovs_nic("ovsvv", c, Some(&v44)),
            network_nic("ovsnet", d, "dmz-46"),
        ],
        &meta(&[
            (a, &vv_access(42)),
            (c, &vv_access(45)),
            (h, &vv_access(47)),
        ]),
    );
    virsh_ok(&["start", "lv-ovs"]);
    let (ta, tb, tc, td) = (
        tap("lv-ovs", a),
        tap("lv-ovs", b),
        tap("lv-ovs", c),
        tap("lv-ovs", d),
    );
    assert_eq!(columns(&ta), access(42), "metadata");
    // libvirt wrote tag=43 itself (vlan_mode unset, which Open vSwitch reads as access): the
    // port already carries what its source asks, so there is nothing to write
    assert_eq!(
        columns(&tb),
        ("[]".into(), "43".into(), "[]".into()),
        "libvirt's own <vlan>"
    );
    assert_eq!(
        columns(&tc),
        access(45),
        "metadata beats the interface's <vlan> 44: one winner, never both"
    );
    assert_eq!(columns(&td), access(46), "the portgroup's name");
    assert_eq!(ovs.get(&ta, "external_ids:virt-vlan-owned"), "true");
    assert_eq!(
        columns("upo"),
        ("trunk".into(), "[]".into(), "[42, 43, 45, 46]".into()),
        "the on-demand uplink carries what the guests use"
    );
    assert!(source_of(&tc).contains("metadata"), "{}", source_of(&tc));
    // converged: the hooks left nothing for apply to do
    let o = vv(&["apply", "--stats"]);
    let stats = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stats}");
    assert!(stats.contains("\"writes\":0"), "{stats}");

    // a hot-plug runs no hook: the watcher sees libvirt's new Port row (with libvirt's own
    // <vlan> 48 on it) and gives it the metadata's 47 instead, never both
    let w = Watch::start("ovs-hot");
    std::fs::write(
        "/tmp/lv-ovs-nic.xml",
        ovs_nic("ovsvv", h, Some(&libvirt_vlan(48))),
    )
    .unwrap();
    virsh_ok(&["attach-device", "lv-ovs", "/tmp/lv-ovs-nic.xml", "--live"]);
    let th = tap("lv-ovs", h);
    assert!(
        wait_for(60, || columns(&th) == access(47)),
        "{th}: {:?}\n{}",
        columns(&th),
        w.log()
    );
    assert!(
        wait_for(10, || columns("upo").2 == "[42, 43, 45, 46, 47]"),
        "on demand, only the winner: {:?}",
        columns("upo")
    );
    settle();
    assert_eq!(columns(&th), access(47), "stays: {}", w.log());
    assert!(source_of(&th).contains("metadata"), "{}", source_of(&th));
    w.stop();

    // frames: each guest gets its VLAN's broadcasts from the upstream switch and no other
    // guest's, and the VLANs that lost (44, 48) reach nobody
    assert_frames_from(
        "swo",
        &[
            (&ta, &[42], &[43, 44, 45, 46, 47, 48]),
            (&tb, &[43], &[42, 44, 45, 46, 47, 48]),
            (&tc, &[45], &[42, 43, 44, 46, 47, 48]),
            (&td, &[46], &[42, 43, 44, 45, 47, 48]),
            (&th, &[47], &[42, 43, 44, 45, 46, 48]),
        ],
    );

    // `allowed` holds on Open vSwitch too: the start is refused, nothing changes
    let e = "52:54:00:7a:00:09";
    define(
        "lv-ovs-bad",
        &[ovs_nic("ovsvv", e, None)],
        &meta(&[(e, &vv_access(3000))]),
    );
    let o = virsh(&["start", "lv-ovs-bad"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a guest outside `allowed` started");
    assert!(err.contains("3000") && err.contains("allowed"), "{err}");
    assert_eq!(
        columns("upo"),
        ("trunk".into(), "[]".into(), "[42, 43, 45, 46, 47]".into())
    );

    // the guest stops: libvirt deletes its ports, our release hook prunes the uplink
    virsh_ok(&["destroy", "lv-ovs"]);
    assert!(
        wait_for(30, || columns("upo").2 == "[4095]"),
        "uplink after the stop: {:?}",
        columns("upo")
    );
    assert_eq!(
        columns("upo").1,
        "4095",
        "isolated, never an empty trunk list"
    );
    drop(_g);
    drop(ovs);
    let _ = Command::new("ip").args(["link", "del", "upo"]).status();
    for v in OVS_FRAME_VLANS {
        let _ = Command::new("ip")
            .args(["netns", "del", &format!("swo-v{v}")])
            .status();
    }
    let _ = Command::new("ip").args(["netns", "del", "swo"]).status();
}
