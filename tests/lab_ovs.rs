//! Lab tests for the Open vSwitch backend (`virt_vlan::ovs`) against a real ovsdb-server and,
//! where `cur_cfg` matters, a real ovs-vswitchd with the userspace datapath
//! (`datapath_type=netdev`; no openvswitch kernel module needed). Each test starts its own
//! daemons with their database, sockets and logs in a private directory — ovs-vswitchd inside a
//! network namespace of its own, so its ports never meet the host's interfaces — and stops them
//! by their pids when it ends. Results are checked with `ovs-vsctl` and `ovsdb-tool`, not with
//! our own reader.
//!
//! Needs Open vSwitch (`apt-get install openvswitch-switch`) and root. Cargo.toml marks this
//! target `test = false`; run it with
//! `cargo test --release --test lab_ovs -- --test-threads 1`, here or inside the lab VM.

mod labkit;

use labkit::ovs::Ovs;
use labkit::{Endpoint, Lab, SUBNET, assert_ping_matrix};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use virt_vlan::ovs::db::{
    OWNED_KEY, OvsError, Ovsdb, PortChange, SOURCE_KEY, Snapshot, retry_on_conflict,
};
use virt_vlan::ovs::vlans::{Carried, from_columns, to_columns};
use virt_vlan::port_vlans::{Native, PortVlans};
use virt_vlan::vid::VidSet;

const VNET0_MAC: &str = "52:54:00:4e:00:01";
const VNET1_MAC: &str = "52:54:00:4e:00:02";
const VM_ID: &str = "6c1a0f1e-8d7b-4d8e-9a51-0c3f7e2b1a04";

/// What only these tests ask of the daemons.
trait OvsExt {
    fn connect(&self) -> Ovsdb;
    fn seed_004(&self);
}

impl OvsExt for Ovs {
    fn connect(&self) -> Ovsdb {
        Ovsdb::connect(&self.sock).unwrap()
    }

    /// Seed 004's switch: `ovsbr0` with an uplink trunking 100, 200 and 1234, the host on VLAN
    /// 1234 through internal port `vlan1234`, and two guest ports as libvirt adds them (Interface
    /// external_ids `attached-mac`, `iface-id`, `iface-status`, `vm-id`): `vnet0` with libvirt's
    /// `<tag id='4' nativeMode='tagged'/>`, `vnet1` without `<vlan>`.
    fn seed_004(&self) {
        let ext = |iface: &str, mac: &str, n: u8| {
            vec![
                "--".to_string(),
                "set".into(),
                "Interface".into(),
                iface.into(),
                format!("external-ids:attached-mac=\"{mac}\""),
                format!("external-ids:iface-id=\"0b6d3c52-0000-4000-8000-00000000000{n}\""),
                "external-ids:iface-status=active".into(),
                format!("external-ids:vm-id=\"{VM_ID}\""),
            ]
        };
        let mut args: Vec<String> = [
            "add-br ovsbr0 -- set Bridge ovsbr0 datapath_type=netdev",
            "-- add-port ovsbr0 uplink0 trunks=100,200,1234",
            "-- add-port ovsbr0 vlan1234 tag=1234 -- set Interface vlan1234 type=internal",
            "-- add-port ovsbr0 vnet0 tag=4 vlan_mode=native-tagged",
            "-- add-port ovsbr0 vnet1",
        ]
        .join(" ")
        .split(' ')
        .map(str::to_string)
        .collect();
        args.extend(ext("vnet0", VNET0_MAC, 0));
        args.extend(ext("vnet1", VNET1_MAC, 1));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.vsctl(&args);
    }
}

fn vids(s: &str) -> VidSet {
    s.parse().unwrap()
}

/// The change that makes port `name` of `snap` carry `vlans`.
fn change(snap: &Snapshot, name: &str, vlans: &PortVlans) -> PortChange {
    let (_, port) = snap.port(name).unwrap();
    let cols = to_columns(vlans, name, "lab test").unwrap();
    PortChange::new(port, cols, &format!("lab test {name}"))
}

fn carried(snap: &Snapshot, name: &str) -> Carried {
    from_columns(&snap.port(name).unwrap().1.state.vlans)
}

#[test]
fn reads_a_seed_004_bridge_in_one_transaction() {
    let ovs = Ovs::start("read", false);
    ovs.seed_004();
    let mut db = ovs.connect();
    let snap = db.read().unwrap();

    let br = snap.bridge("ovsbr0").unwrap();
    let names: Vec<&str> = br.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ovsbr0", "uplink0", "vlan1234", "vnet0", "vnet1"]);

    // The bridge's own port and a guest port added without <vlan>: every VLAN.
    assert_eq!(
        carried(&snap, "ovsbr0"),
        Carried::EveryVlan { native: None }
    );
    assert_eq!(carried(&snap, "vnet1"), Carried::EveryVlan { native: None });
    // libvirt's nativeMode='tagged' without trunk='yes': every VLAN too.
    assert_eq!(
        carried(&snap, "vnet0"),
        Carried::EveryVlan {
            native: Some((4, Native::Tagged))
        }
    );
    let uplink = PortVlans::build(None, Native::Untagged, VidSet::new(), vids("100,200,1234"));
    assert_eq!(carried(&snap, "uplink0"), Carried::Vlans(uplink.unwrap()));
    assert_eq!(
        carried(&snap, "vlan1234"),
        Carried::Vlans(PortVlans::access(1234))
    );

    let (_, vlan1234) = snap.port("vlan1234").unwrap();
    assert_eq!(vlan1234.interfaces.len(), 1);
    assert_eq!(vlan1234.interfaces[0].kind, "internal");
    assert_eq!(vlan1234.state.vlans.tag, Some(1234));
    assert_eq!(vlan1234.state.vlans.vlan_mode, None);

    // Guests are found by libvirt's marks, not by name.
    let (bridge, vnet1) = snap.guest_port(VM_ID, &VNET1_MAC.to_uppercase()).unwrap();
    assert_eq!(
        (bridge.name.as_str(), vnet1.name.as_str()),
        ("ovsbr0", "vnet1")
    );
    let iface = &vnet1.interfaces[0];
    assert_eq!(iface.attached_mac(), Some(VNET1_MAC));
    assert_eq!(iface.vm_id(), Some(VM_ID));
    assert!(iface.iface_id().unwrap().ends_with("01"));
    assert_eq!(iface.external_ids["iface-status"], "active");
    assert_eq!(iface.kind, "");
    assert!(!vnet1.owned());
    assert!(snap.guest_port(VM_ID, "52:54:00:ff:ff:ff").is_none());
}

#[test]
fn writes_all_three_columns_and_marks_in_one_transaction_applied_by_ovs_vswitchd() {
    let ovs = Ovs::start("write", true);
    ovs.seed_004();
    ovs.vsctl(&["add-port", "ovsbr0", "vnet2"]);
    let mut db = ovs.connect();
    let snap = db.read().unwrap();

    let native_untagged =
        PortVlans::build(Some(10), Native::Untagged, VidSet::new(), vids("20")).unwrap();
    let native_tagged =
        PortVlans::build(Some(30), Native::Tagged, VidSet::new(), vids("31")).unwrap();
    let trunk = PortVlans::build(
        None,
        Native::Untagged,
        VidSet::new(),
        vids("10,20,30-31,1234"),
    )
    .unwrap();
    let changes = vec![
        change(&snap, "vnet0", &native_untagged),
        change(&snap, "vnet1", &PortVlans::access(30)),
        change(&snap, "vnet2", &PortVlans::none()),
        change(&snap, "uplink0", &trunk),
        change(&snap, "vlan1234", &native_tagged),
    ];
    let before = ovs.cfg("next_cfg");
    let written = db.set_port_vlans(&changes).unwrap();
    let next_cfg = written.next_cfg.unwrap();
    assert_eq!(next_cfg, before + 1);
    // set_port_vlans returned: ovs-vswitchd has applied it.
    assert!(ovs.cfg("cur_cfg") >= next_cfg);

    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        ovs.vlan_columns("vnet0"),
        s("native-untagged", "10", "[10, 20]")
    );
    assert_eq!(ovs.vlan_columns("vnet1"), s("access", "30", "[]"));
    assert_eq!(ovs.vlan_columns("vnet2"), s("trunk", "4095", "[4095]"));
    assert_eq!(
        ovs.vlan_columns("uplink0"),
        s("trunk", "[]", "[10, 20, 30, 31, 1234]")
    );
    assert_eq!(
        ovs.vlan_columns("vlan1234"),
        s("native-tagged", "30", "[30, 31]")
    );
    for c in &changes {
        assert_eq!(
            ovs.get(&c.name, &format!("external_ids:{OWNED_KEY}")),
            "true"
        );
        assert_eq!(
            ovs.get(&c.name, &format!("external_ids:{SOURCE_KEY}")),
            format!("lab test {}", c.name)
        );
    }
    // Nobody else's keys were lost, and libvirt's Interface marks are untouched.
    ovs.vsctl(&["set", "Port", "vnet0", "external_ids:theirs=1"]);
    let snap = db.read().unwrap();
    let ch = change(&snap, "vnet0", &PortVlans::access(11));
    db.set_port_vlans(&[ch]).unwrap();
    assert_eq!(ovs.get("vnet0", "external_ids:theirs"), "1");
    assert_eq!(
        ovs.vsctl(&["get", "Interface", "vnet0", "external_ids:attached-mac"])
            .trim_matches('"'),
        VNET0_MAC
    );

    // One transaction: one record in the database log touching every port and next_cfg.
    let ours: Vec<String> = ovs
        .log_records()
        .into_iter()
        .filter(|r| r.contains("virt-vlan: set VLANs of vnet0, vnet1, vnet2"))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:#?}");
    for name in ["vnet0", "vnet1", "vnet2", "uplink0", "vlan1234"] {
        assert!(
            ours[0].contains(&format!("table Port row \"{name}\"")),
            "{name} not in {}",
            ours[0]
        );
    }
    assert!(ours[0].contains("table Open_vSwitch row"), "{}", ours[0]);

    // Our reader agrees with what was meant.
    let snap = db.read().unwrap();
    assert_eq!(
        carried(&snap, "vnet0"),
        Carried::Vlans(PortVlans::access(11))
    );
    assert_eq!(
        carried(&snap, "vnet1"),
        Carried::Vlans(PortVlans::access(30))
    );
    assert_eq!(carried(&snap, "vnet2"), Carried::Vlans(PortVlans::none()));
    assert_eq!(carried(&snap, "uplink0"), Carried::Vlans(trunk));
    assert_eq!(carried(&snap, "vlan1234"), Carried::Vlans(native_tagged));
    assert!(snap.port("vnet1").unwrap().1.owned());
    assert!(snap.cur_cfg >= snap.next_cfg);
}

#[test]
fn without_ovs_vswitchd_the_apply_wait_times_out_saying_so() {
    let ovs = Ovs::start("novswitchd", false);
    ovs.seed_004();
    let mut db = ovs.connect();
    db.set_apply_timeout(Duration::from_secs(1));
    let snap = db.read().unwrap();
    let started = Instant::now();
    let e = db
        .set_port_vlans(&[change(&snap, "vnet1", &PortVlans::access(30))])
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(e, OvsError::NotApplied { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("ovs-vswitchd") && msg.contains(&ovs.sock.display().to_string()),
        "{msg}"
    );
    // The write itself is in the database; nobody applied it.
    assert_eq!(ovs.get("vnet1", "tag"), "30");
    assert!(ovs.cfg("cur_cfg") < ovs.cfg("next_cfg"));
    // The session is still usable after the timeout.
    assert!(db.read().is_ok());
}

#[test]
fn a_change_between_read_and_write_fails_the_guard_and_nothing_is_written() {
    let ovs = Ovs::start("conflict", true);
    ovs.seed_004();
    let mut db = ovs.connect();
    let untouched = |ovs: &Ovs| {
        assert_eq!(
            ovs.vlan_columns("vnet0"),
            ("native-tagged".into(), "4".into(), "[]".into())
        );
        assert!(!ovs.get("vnet0", "external_ids").contains(OWNED_KEY));
    };

    // Another client changes vnet1's tag after our read.
    let snap = db.read().unwrap();
    ovs.vsctl(&["set", "Port", "vnet1", "tag=99"]);
    let next_cfg = ovs.cfg("next_cfg");
    let changes = [
        change(&snap, "vnet0", &PortVlans::access(10)),
        change(&snap, "vnet1", &PortVlans::access(30)),
    ];
    let e = db.set_port_vlans(&changes).unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.to_string().contains("port vnet1"), "{e}");
    untouched(&ovs);
    assert_eq!(ovs.get("vnet1", "tag"), "99");
    assert_eq!(ovs.cfg("next_cfg"), next_cfg);

    // Someone else's external_ids change is a change too.
    let snap = db.read().unwrap();
    ovs.vsctl(&["set", "Port", "vnet0", "external_ids:theirs=1"]);
    let e = db
        .set_port_vlans(&[change(&snap, "vnet0", &PortVlans::access(10))])
        .unwrap_err();
    assert!(
        e.is_conflict() && e.to_string().contains("port vnet0"),
        "{e}"
    );
    untouched(&ovs);

    // So is a port that went away.
    let snap = db.read().unwrap();
    ovs.vsctl(&["del-port", "vnet1"]);
    let e = db
        .set_port_vlans(&[
            change(&snap, "vnet0", &PortVlans::access(10)),
            change(&snap, "vnet1", &PortVlans::access(30)),
        ])
        .unwrap_err();
    assert!(
        e.is_conflict() && e.to_string().contains("port vnet1"),
        "{e}"
    );
    untouched(&ovs);

    // Re-reading and retrying succeeds once nobody interferes.
    let mut attempts = Vec::new();
    let written = retry_on_conflict(3, |n| {
        attempts.push(n);
        let snap = db.read()?;
        if n == 0 {
            ovs.vsctl(&["set", "Port", "vnet0", "external_ids:theirs=2"]);
        }
        db.set_port_vlans(&[change(&snap, "vnet0", &PortVlans::access(10))])
    })
    .unwrap();
    assert_eq!(attempts, [0, 1]);
    assert_eq!(written.ports[0].name, "vnet0");
    assert_eq!(
        ovs.vlan_columns("vnet0"),
        ("access".into(), "10".into(), "[]".into())
    );
    assert_eq!(ovs.get("vnet0", "external_ids:theirs"), "2");
}

#[test]
fn rollback_puts_the_columns_back_and_is_guarded_too() {
    let ovs = Ovs::start("rollback", true);
    ovs.seed_004();
    let mut db = ovs.connect();
    let original = db.read().unwrap();
    let states = |s: &Snapshot| -> BTreeMap<String, _> {
        s.bridges[0]
            .ports
            .iter()
            .map(|p| (p.name.clone(), p.state.clone()))
            .collect()
    };
    let trunk = PortVlans::build(
        None,
        Native::Untagged,
        VidSet::new(),
        vids("10,100,200,1234"),
    );
    let changes = [
        change(&original, "vnet0", &PortVlans::access(10)),
        change(&original, "uplink0", &trunk.unwrap()),
    ];
    let written = db.set_port_vlans(&changes).unwrap();
    assert_eq!(
        ovs.vlan_columns("vnet0"),
        ("access".into(), "10".into(), "[]".into())
    );

    db.rollback(&written).unwrap();
    assert_eq!(
        ovs.vlan_columns("vnet0"),
        ("native-tagged".into(), "4".into(), "[]".into())
    );
    assert_eq!(
        ovs.vlan_columns("uplink0"),
        ("[]".into(), "[]".into(), "[100, 200, 1234]".into())
    );
    assert_eq!(ovs.get("vnet0", "external_ids"), "{}");
    let after = db.read().unwrap();
    assert_eq!(states(&after), states(&original));
    assert!(
        after.cur_cfg >= after.next_cfg,
        "rollback waited for ovs-vswitchd"
    );
    assert!(
        ovs.log_records()
            .iter()
            .any(|r| r.contains("virt-vlan: roll back VLANs of vnet0, uplink0"))
    );

    // A rollback does not undo someone else's later change, and then undoes nothing at all.
    let snap = db.read().unwrap();
    let written = db
        .set_port_vlans(&[
            change(&snap, "vnet0", &PortVlans::access(10)),
            change(&snap, "uplink0", &PortVlans::access(1234)),
        ])
        .unwrap();
    ovs.vsctl(&["set", "Port", "vnet0", "tag=77"]);
    let e = db.rollback(&written).unwrap_err();
    assert!(
        e.is_conflict() && e.to_string().contains("port vnet0"),
        "{e}"
    );
    assert_eq!(ovs.get("vnet0", "tag"), "77");
    assert_eq!(
        ovs.vlan_columns("uplink0"),
        ("access".into(), "1234".into(), "[]".into())
    );
}

#[test]
fn an_unreachable_socket_is_named() {
    let missing = Path::new("/tmp/virt-vlan-ovs-no-such-dir/db.sock");
    let e = Ovsdb::connect(missing).err().unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains(&missing.display().to_string()) && msg.contains("ovsdb-server"),
        "{msg}"
    );
}

/// A guest on OVS port `port`: a veth whose peer `eth0` is in a namespace of its own, with an
/// untagged address (in the VLAN the port's PVID puts it in).
fn ovs_guest(lab: &mut Lab, port: &str, octet: u8, vlan: u16) -> Endpoint {
    let ns = lab.veth_into_netns(port, port);
    let ip = format!("{SUBNET}.{octet}");
    lab.queue(&ns, &format!("addr add {ip}/24 dev eth0"));
    Endpoint {
        label: port.to_string(),
        ns,
        ip,
        vlan,
    }
}

/// `virt-vlan` in the lab's host namespace, talking to this test's ovsdb-server.
fn vv_ovs(lab: &Lab, ovs: &Ovs, args: &[&str]) -> std::process::Output {
    lab.vv_command(args)
        .env("VIRT_VLAN_OVSDB", &ovs.sock)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn vv_ovs_ok(lab: &Lab, ovs: &Ovs, args: &[&str]) -> String {
    let o = vv_ovs(lab, ovs, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "virt-vlan {args:?} failed ({}):\n{text}",
        o.status
    );
    println!("$ virt-vlan {}\n{text}", args.join(" "));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Port writes of one `apply --stats` (OVS Port rows changed).
fn ovs_apply_writes(lab: &Lab, ovs: &Ovs) -> u64 {
    labkit::writes_counted(&vv_ovs(lab, ovs, &["apply", "--stats"]))
}

const SEED_004_CONFIG: &str = r#"
[bridges.ovsbr0]
[bridges.ovsbr0.uplinks.up0]
on_demand = true
[[ports]]
interface = "vlan1234"
pvid = 1234
[[ports]]
interface = "g100"
pvid = 100
[[ports]]
interface = "g200"
pvid = 200
[[ports]]
interface = "gnat"
pvid = 100
tagged = "200"
"#;

/// Seed 004's host on Open vSwitch with the kernel datapath, managed by the same config,
/// commands and pipeline as a Linux bridge: an uplink into an upstream switch (802.1Q
/// subinterfaces), the host's own address on internal port `vlan1234`, guests as access
/// ports and one native-untagged trunk. Real frames decide: the full ping matrix. Then a
/// converged re-apply writes nothing, a foreign port is left alone, drift by hand is
/// repaired, the on-demand uplink shrinks (never to an empty list), what OVS cannot express
/// is refused with nothing changed, and ovs-vswitchd restarted keeps everything.
#[test]
fn seed_004_on_open_vswitch_through_the_pipeline() {
    let mut lab = Lab::new("ovs4");
    let host = lab.name.clone();
    // the upstream switch: 802.1Q subinterfaces of its eth0, each in a namespace of its own
    let sw = lab.veth_into_netns("up0", "sw");
    let mut endpoints = vec![
        lab.tagged_endpoint("up100", &sw, 100, "802.1Q", 1),
        lab.tagged_endpoint("up200", &sw, 200, "802.1Q", 2),
        lab.tagged_endpoint("up1234", &sw, 1234, "802.1Q", 3),
        ovs_guest(&mut lab, "g100", 11, 100),
        ovs_guest(&mut lab, "g200", 12, 200),
        ovs_guest(&mut lab, "gnat", 13, 100),
    ];
    // gnat's tagged VLAN 200, from inside the guest
    let gnat_ns = endpoints[5].ns.clone();
    lab.queue(
        &gnat_ns,
        "link add link eth0 name eth0.200 type vlan id 200",
    );
    let g200t = lab.netns("gnat200");
    lab.queue(&gnat_ns, &format!("link set eth0.200 netns {g200t}"));
    lab.queue(&g200t, "link set eth0.200 up");
    lab.queue(&g200t, &format!("addr add {SUBNET}.14/24 dev eth0.200"));
    endpoints.push(Endpoint {
        label: "gnat.200".into(),
        ns: g200t,
        ip: format!("{SUBNET}.14"),
        vlan: 200,
    });
    // the host's own address lives on internal port vlan1234, moved into a namespace of its own
    let vlan1234 = lab.netns("vlan1234");
    lab.build();

    let ovs = Ovs::start_in_netns("seed004", &host);
    ovs.vsctl(&[
        "add-br",
        "ovsbr0",
        "--",
        "add-port",
        "ovsbr0",
        "up0",
        "--",
        "add-port",
        "ovsbr0",
        "g100",
        "--",
        "add-port",
        "ovsbr0",
        "g200",
        "--",
        "add-port",
        "ovsbr0",
        "gnat",
        "--",
        "add-port",
        "ovsbr0",
        "vlan1234",
        "--",
        "set",
        "Interface",
        "vlan1234",
        "type=internal",
        "--",
        "add-port",
        "ovsbr0",
        "other0",
        "tag=300",
        "--",
        "set",
        "Interface",
        "other0",
        "type=internal",
    ]);
    labkit::must(&format!(
        "ip -n {host} link set vlan1234 netns {vlan1234} && \
         ip -n {vlan1234} link set vlan1234 up && \
         ip -n {vlan1234} addr add {SUBNET}.20/24 dev vlan1234"
    ));
    endpoints.push(Endpoint {
        label: "host1234".into(),
        ns: vlan1234,
        ip: format!("{SUBNET}.20"),
        vlan: 1234,
    });
    let foreign_before = ovs.vlan_columns("other0");
    lab.config(SEED_004_CONFIG);

    // the dry run says it in ovs-vsctl's words and changes nothing
    let dry = vv_ovs_ok(&lab, &ovs, &["apply", "--dry-run"]);
    assert!(
        dry.contains("ovs-vsctl set Port g100 vlan_mode=access tag=100 trunks=[]"),
        "{dry}"
    );
    assert_eq!(
        ovs.vlan_columns("g100"),
        ("[]".into(), "[]".into(), "[]".into())
    );

    // another client changes a port between our read and our write: the guarded transaction
    // fails with nothing written, the run reads again and applies, the other change stays
    let o = lab
        .vv_command(&["apply"])
        .env("VIRT_VLAN_OVSDB", &ovs.sock)
        .env("VIRT_VLAN_FAULT_OVS_RACE", "g100")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("changed since it was read") && err.contains("reading again (attempt 2)"),
        "{err}"
    );
    assert_eq!(ovs.get("g100", "external_ids:raced"), "yes");
    assert_eq!(
        ovs.vlan_columns("up0"),
        ("trunk".into(), "[]".into(), "[100, 200, 1234]".into())
    );
    assert_eq!(
        ovs.vlan_columns("g100"),
        ("access".into(), "100".into(), "[]".into())
    );
    assert_eq!(
        ovs.vlan_columns("gnat"),
        ("native-untagged".into(), "100".into(), "[100, 200]".into())
    );
    assert_eq!(
        ovs.vlan_columns("vlan1234"),
        ("access".into(), "1234".into(), "[]".into())
    );
    assert_eq!(ovs.get("g100", "external_ids:virt-vlan-owned"), "true");
    assert_eq!(
        ovs.vlan_columns("other0"),
        foreign_before,
        "a foreign port is left alone"
    );
    let show = vv_ovs_ok(&lab, &ovs, &["show"]);
    assert!(show.contains("ovsbr0") && show.contains("gnat"), "{show}");
    assert_ping_matrix(&endpoints);

    // converged: nothing to write
    assert_eq!(ovs_apply_writes(&lab, &ovs), 0);

    // drift by hand is repaired, and only the drifted port is written
    ovs.vsctl(&["set", "Port", "g100", "tag=200"]);
    assert_eq!(ovs_apply_writes(&lab, &ovs), 1);
    assert_eq!(
        ovs.vlan_columns("g100"),
        ("access".into(), "100".into(), "[]".into())
    );

    // ovs-vswitchd restarted: the database kept it all, frames flow as before
    ovs.restart_vswitchd(&["ip", "netns", "exec", &host]);
    assert_eq!(ovs_apply_writes(&lab, &ovs), 0);
    assert_ping_matrix(&endpoints);

    // what OVS cannot express is refused, naming port and fix, and nothing changes
    let before: Vec<_> = ["up0", "g100", "g200", "gnat"]
        .iter()
        .map(|p| ovs.vlan_columns(p))
        .collect();
    lab.config(&SEED_004_CONFIG.replace(
        "interface = \"g200\"\npvid = 200",
        "interface = \"g200\"\nuntagged = \"300,301\"",
    ));
    let o = vv_ovs(&lab, &ovs, &["apply"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("g200") && err.contains("untagged"), "{err}");
    let after: Vec<_> = ["up0", "g100", "g200", "gnat"]
        .iter()
        .map(|p| ovs.vlan_columns(p))
        .collect();
    assert_eq!(before, after, "a refused run changes nothing");

    // the on-demand uplink shrinks with its guests, never to an empty list
    lab.config(
        &SEED_004_CONFIG
            .replace("interface = \"g200\"\npvid = 200\n", "")
            .replace("[[ports]]\n[[ports]]", "[[ports]]")
            .replace("pvid = 100\ntagged = \"200\"", "pvid = 100"),
    );
    println!(
        "{}",
        std::fs::read_to_string(lab.dir.join("virt-vlan.toml")).unwrap()
    );
    vv_ovs_ok(&lab, &ovs, &["apply"]);
    assert_eq!(
        ovs.vlan_columns("up0"),
        ("trunk".into(), "[]".into(), "[100, 1234]".into())
    );
    lab.config("[bridges.ovsbr0]\n[bridges.ovsbr0.uplinks.up0]\non_demand = true\n");
    vv_ovs_ok(&lab, &ovs, &["apply"]);
    let (mode, tag, trunks) = ovs.vlan_columns("up0");
    assert_ne!(trunks, "[]", "an empty trunks list would carry every VLAN");
    assert_eq!(
        (mode.as_str(), tag.as_str(), trunks.as_str()),
        ("trunk", "4095", "[4095]")
    );
    assert_eq!(ovs.vlan_columns("other0"), foreign_before);
}

/// `virt-vlan watch` on an Open vSwitch bridge: drift by hand repaired, a port added later
/// given its VLANs, a deleted one pruned from the on-demand uplink, and ovsdb-server
/// restarted under it (it connects again and keeps repairing). Never polls: every repair
/// follows an OVSDB notification.
#[test]
fn watch_on_open_vswitch_repairs_drift_follows_ports_and_survives_ovsdb_restarts() {
    let mut lab = Lab::new("ovsw");
    let host = lab.name.clone();
    let sw = lab.veth_into_netns("up0", "sw");
    ovs_guest(&mut lab, "g100", 11, 100);
    ovs_guest(&mut lab, "g300", 13, 300);
    lab.build();
    let ovs = Ovs::start_in_netns("watch", &host);
    ovs.vsctl(&[
        "add-br", "ovsbr0", "--", "add-port", "ovsbr0", "up0", "--", "add-port", "ovsbr0", "g100",
    ]);
    lab.config(
        "[bridges.ovsbr0]\n[bridges.ovsbr0.uplinks.up0]\non_demand = true\n\
         [[ports]]\ninterface = \"g100\"\npvid = 100\n\
         [[ports]]\ninterface = \"g300\"\npvid = 300\n",
    );
    let log = lab.dir.join("watch.log");
    let _watch = labkit::KillOnDrop(
        lab.vv_command(&["watch"])
            .env("VIRT_VLAN_OVSDB", &ovs.sock)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let access = |vid: u16| ("access".to_string(), vid.to_string(), "[]".to_string());
    let trunk = |t: &str| ("trunk".to_string(), "[]".to_string(), t.to_string());
    assert!(
        labkit::wait_for(60, || log_text().contains("watching")),
        "{}",
        log_text()
    );
    assert!(
        labkit::wait_for(30, || ovs.vlan_columns("g100") == access(100)
            && ovs.vlan_columns("up0") == trunk("[100]")),
        "start: {:?} {:?}\n{}",
        ovs.vlan_columns("g100"),
        ovs.vlan_columns("up0"),
        log_text()
    );

    // drift by hand on a port we own
    ovs.vsctl(&["set", "Port", "g100", "tag=200"]);
    assert!(
        labkit::wait_for(30, || ovs.vlan_columns("g100") == access(100)),
        "drift: {:?}\n{}",
        ovs.vlan_columns("g100"),
        log_text()
    );

    // a port added later gets its VLANs, and the uplink follows
    ovs.vsctl(&["add-port", "ovsbr0", "g300"]);
    assert!(
        labkit::wait_for(30, || ovs.vlan_columns("g300") == access(300)
            && ovs.vlan_columns("up0") == trunk("[100, 300]")),
        "new port: {:?} {:?}\n{}",
        ovs.vlan_columns("g300"),
        ovs.vlan_columns("up0"),
        log_text()
    );

    // a port deleted: the uplink prunes its VLAN
    ovs.vsctl(&["del-port", "ovsbr0", "g300"]);
    assert!(
        labkit::wait_for(30, || ovs.vlan_columns("up0") == trunk("[100]")),
        "deleted port: {:?}\n{}",
        ovs.vlan_columns("up0"),
        log_text()
    );

    // ovsdb-server restarted: the watcher connects again and still repairs
    ovs.restart_ovsdb();
    assert!(
        labkit::wait_for(60, || log_text().contains("Open vSwitch is back")),
        "{}",
        log_text()
    );
    ovs.vsctl(&["set", "Port", "g100", "tag=201"]);
    assert!(
        labkit::wait_for(30, || ovs.vlan_columns("g100") == access(100)),
        "after the restart: {:?}\n{}",
        ovs.vlan_columns("g100"),
        log_text()
    );
    println!("{}", log_text());
}
