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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use virt_vlan::ovs::db::{
    OWNED_KEY, OvsError, Ovsdb, PortChange, SOURCE_KEY, Snapshot, retry_on_conflict,
};
use virt_vlan::ovs::vlans::{Carried, from_columns, to_columns};
use virt_vlan::port_vlans::{Native, PortVlans};
use virt_vlan::vid::VidSet;

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const VNET0_MAC: &str = "52:54:00:4e:00:01";
const VNET1_MAC: &str = "52:54:00:4e:00:02";
const VM_ID: &str = "6c1a0f1e-8d7b-4d8e-9a51-0c3f7e2b1a04";

/// One private Open vSwitch: ovsdb-server, and ovs-vswitchd when asked for. Dropping it stops
/// both (by the pids in their pidfiles) and removes the directory.
struct Ovs {
    dir: PathBuf,
    sock: PathBuf,
    vswitchd: bool,
}

impl Ovs {
    fn start(test: &str, vswitchd: bool) -> Ovs {
        let dir = PathBuf::from(format!("/tmp/virt-vlan-ovs-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ovs = Ovs {
            sock: dir.join("db.sock"),
            dir,
            vswitchd,
        };
        let d = ovs.dir.display().to_string();
        ovs.run("ovsdb-tool", &["create", &format!("{d}/conf.db"), SCHEMA]);
        ovs.run(
            "ovsdb-server",
            &[
                &format!("{d}/conf.db"),
                &format!("--remote=punix:{d}/db.sock"),
                &format!("--pidfile={d}/ovsdb.pid"),
                &format!("--unixctl={d}/ovsdb.ctl"),
                "--detach",
                &format!("--log-file={d}/ovsdb.log"),
            ],
        );
        ovs.vsctl_no_wait(&["init"]);
        if vswitchd {
            ovs.run(
                "unshare",
                &[
                    "--net",
                    "--",
                    "ovs-vswitchd",
                    &format!("unix:{d}/db.sock"),
                    &format!("--pidfile={d}/vswitchd.pid"),
                    &format!("--unixctl={d}/vswitchd.ctl"),
                    "--detach",
                    &format!("--log-file={d}/vswitchd.log"),
                ],
            );
        }
        ovs
    }

    /// Runs `program args` with the daemons' run, log and database directories pointed here.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install openvswitch-switch)"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// ovs-vsctl as another client would run it; waits for ovs-vswitchd when it runs.
    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.sock.display());
        let mut all = vec![db.as_str(), "--timeout=20"];
        if !self.vswitchd {
            all.push("--no-wait");
        }
        all.extend_from_slice(args);
        self.run("ovs-vsctl", &all).trim().to_string()
    }

    fn vsctl_no_wait(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.sock.display());
        let mut all = vec![db.as_str(), "--timeout=20", "--no-wait"];
        all.extend_from_slice(args);
        self.run("ovs-vsctl", &all).trim().to_string()
    }

    /// `ovs-vsctl get Port NAME COLUMN`, unquoted.
    fn get(&self, name: &str, column: &str) -> String {
        self.vsctl(&["get", "Port", name, column])
            .trim_matches('"')
            .to_string()
    }

    /// The three VLAN columns as ovs-vsctl prints them: `(vlan_mode, tag, trunks)`.
    fn vlan_columns(&self, name: &str) -> (String, String, String) {
        (
            self.get(name, "vlan_mode"),
            self.get(name, "tag"),
            self.get(name, "trunks"),
        )
    }

    fn cfg(&self, column: &str) -> i64 {
        self.vsctl(&["get", "Open_vSwitch", ".", column])
            .parse()
            .unwrap()
    }

    /// The database log's records (one per committed transaction), as `ovsdb-tool` prints them.
    fn log_records(&self) -> Vec<String> {
        let log = self.run(
            "ovsdb-tool",
            &[
                "show-log",
                "-m",
                &self.dir.join("conf.db").display().to_string(),
            ],
        );
        log.split("\nrecord ").map(str::to_string).collect()
    }

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

impl Drop for Ovs {
    fn drop(&mut self) {
        for pidfile in ["vswitchd.pid", "ovsdb.pid"] {
            if let Some(pid) = std::fs::read_to_string(self.dir.join(pidfile))
                .ok()
                .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
            {
                stop(pid);
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept {} for its logs", self.dir.display());
        }
    }
}

/// Stops one daemon we started: SIGTERM, then SIGKILL after 5 s.
fn stop(pid: libc::pid_t) {
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    };
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive() {
        unsafe { libc::kill(pid, libc::SIGKILL) };
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
