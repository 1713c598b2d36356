//! Lab tests: the real `virt-vlan` binary against a real kernel with bridge VLAN filtering,
//! checked with iproute2 and with real frames. They run inside the lab VM (`make test`);
//! Cargo.toml marks this target `test = false`, so a plain `cargo test` on a machine whose
//! kernel cannot filter VLANs does not run them.

mod labkit;

use labkit::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// The switch most tests start from: uplink `up0` to an upstream switch carrying 100 and 200
/// statically (and guests' VLANs on demand), the host on VLAN 1, five guest ports.
const CONFIG: &str = r#"
[bridges.br0]
default_pvid = 0
[bridges.br0.self]
pvid = 1
[bridges.br0.uplinks.up0]
pvid = 1
tagged = "100,200"
on_demand = true
[[ports]]
interface = "g1"
pvid = 100
[[ports]]
interface = "g2"
pvid = 100
[[ports]]
interface = "g3"
pvid = 200
[[ports]]
interface = "g4"
tagged = "100,200"
[[ports]]
interface = "g5"
pvid = 300
tagged = "100"
"#;

/// Builds the topology for CONFIG and returns every endpoint with the VLAN it should be in.
fn switch_lab(name: &str) -> (Lab, Vec<Endpoint>) {
    let mut lab = Lab::new(name);
    let mut eps = Vec::new();
    let host = lab.name.clone();
    lab.queue(&host, &format!("addr add {SUBNET}.1/24 dev br0"));
    eps.push(Endpoint {
        label: "host".into(),
        ns: host,
        ip: format!("{SUBNET}.1"),
        vlan: 1,
    });
    let sw = lab.veth_port("up0", "br0");
    lab.queue(&sw, &format!("addr add {SUBNET}.2/24 dev eth0"));
    eps.push(Endpoint {
        label: "sw".into(),
        ns: sw.clone(),
        ip: format!("{SUBNET}.2"),
        vlan: 1,
    });
    for (i, vid) in [100u16, 200, 300].into_iter().enumerate() {
        eps.push(lab.tagged_endpoint(&format!("u{vid}"), &sw, vid, "802.1Q", 3 + i as u8));
    }
    eps.push(lab.guest("g1", 11, 100));
    eps.push(lab.guest("g2", 12, 100));
    eps.push(lab.guest("g3", 13, 200));
    let g4 = lab.veth_port("g4", "br0");
    eps.push(lab.tagged_endpoint("g4a", &g4, 100, "802.1Q", 21));
    eps.push(lab.tagged_endpoint("g4b", &g4, 200, "802.1Q", 22));
    let g5 = lab.guest("g5", 31, 300);
    eps.push(lab.tagged_endpoint("g5t", &g5.ns, 100, "802.1Q", 32));
    eps.push(g5);
    lab.build();
    lab.config(CONFIG);
    (lab, eps)
}

fn expected_after_apply(lab: &Lab) {
    assert_eq!(lab.port("br0"), "1PU");
    assert_eq!(lab.port("up0"), "1PU 100 200 300");
    assert_eq!(lab.port("g1"), "100PU");
    assert_eq!(lab.port("g2"), "100PU");
    assert_eq!(lab.port("g3"), "200PU");
    assert_eq!(lab.port("g4"), "100 200");
    assert_eq!(lab.port("g5"), "100 300PU");
    assert_eq!(lab.bridge_settings(), (1, 0, "802.1Q".to_string()));
}

#[test]
fn apply_from_empty_isolates_guests_by_vlan_and_tags_the_uplink() {
    let (lab, eps) = switch_lab("fromempty");
    // as a distro leaves it: no filtering, every port in VLAN 1, everyone reaches everyone
    assert_eq!(lab.bridge_settings().0, 0);
    assert_eq!(lab.port("g3"), "1PU");
    let out = lab.vv_ok(&["apply"]);
    assert!(out.contains("verified"), "{out}");
    expected_after_apply(&lab);
    // Same VLAN reaches, different VLANs do not: guests, trunk subinterfaces, native VLAN,
    // and the upstream switch's 8021q subinterfaces (so guest frames leave tagged with the
    // right VID, and VLAN 300 is carried on demand).
    assert_ping_matrix(&eps);
}

#[test]
fn converged_reapply_writes_nothing() {
    let (lab, _) = switch_lab("converged");
    assert!(lab.apply_counting_writes() > 0);
    let before = lab.kernel_vlans();
    assert_eq!(
        lab.apply_counting_writes(),
        0,
        "a converged host must cost zero writes"
    );
    assert_eq!(lab.kernel_vlans(), before);
    let out = lab.vv_ok(&["apply"]);
    assert!(out.contains("nothing to do"), "{out}");
}

#[test]
fn pvid_change_and_trunk_to_access() {
    let (lab, eps) = switch_lab("changes");
    lab.vv_ok(&["apply"]);
    // g1 moves from VLAN 100 to 200; the trunk g4 becomes an access port in 100
    lab.config(
        &CONFIG
            .replace(
                "interface = \"g1\"\npvid = 100",
                "interface = \"g1\"\npvid = 200",
            )
            .replace(
                "interface = \"g4\"\ntagged = \"100,200\"",
                "interface = \"g4\"\npvid = 100",
            ),
    );
    lab.vv_ok(&["apply"]);
    assert_eq!(lab.port("g1"), "200PU");
    assert_eq!(lab.port("g4"), "100PU");
    let by = |l: &str| eps.iter().find(|e| e.label == l).unwrap().clone();
    let (g1, g2, g3) = (by("g1"), by("g2"), by("g3"));
    assert!(ping(&g1, &g3), "g1 is now in VLAN 200 with g3");
    assert!(!ping(&g1, &g2), "g1 left VLAN 100");
    // g4 untagged now reaches VLAN 100
    let mut g4 = by("g4a");
    g4.ns = format!("{}-g4", lab.name);
    must(&format!("ip -n {} addr add {SUBNET}.23/24 dev eth0", g4.ns));
    g4.ip = format!("{SUBNET}.23");
    assert!(ping(&g4, &g2), "g4 is an access port in VLAN 100");
    assert!(!ping(&g4, &g3));
}

#[test]
fn removing_a_port_from_the_config_removes_owned_vids_and_keeps_foreign_ones() {
    let (lab, _) = switch_lab("removal");
    lab.vv_ok(&["apply"]);
    // someone else adds VID 777 to g3 and to a port we never managed
    lab.host("bridge vlan add dev g3 vid 777 && bridge vlan add dev g5 vid 778");
    lab.config(&CONFIG.replace("[[ports]]\ninterface = \"g3\"\npvid = 200\n", ""));
    lab.vv_ok(&["apply"]);
    assert_eq!(lab.port("g3"), "777", "owned 200 removed, foreign 777 kept");
    assert_eq!(
        lab.port("g5"),
        "100 300PU 778",
        "foreign VID on a managed port kept"
    );
    // 200 stays on the uplink: it is configured there statically
    assert_eq!(lab.port("up0"), "1PU 100 200 300");
    let show: serde_json::Value = serde_json::from_str(&lab.vv_ok(&["show", "--json"])).unwrap();
    let g3 = show
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["port"] == "g3")
        .unwrap();
    assert_eq!(g3["role"], "foreign");
    let g5 = show
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["port"] == "g5")
        .unwrap();
    assert_eq!(g5["foreign"], "778");
}

#[test]
fn on_demand_uplink_vids_follow_the_guests() {
    let (lab, _) = switch_lab("ondemand");
    lab.vv_ok(&["apply"]);
    assert_eq!(lab.port("up0"), "1PU 100 200 300");
    // the only guest in VLAN 300 goes: 300 leaves the uplink; a new guest VLAN arrives
    lab.config(&CONFIG.replace(
        "pvid = 300\ntagged = \"100\"",
        "pvid = 450\ntagged = \"100\"",
    ));
    lab.vv_ok(&["apply"]);
    assert_eq!(lab.port("up0"), "1PU 100 200 450");
}

#[test]
fn default_pvid_zero_isolates_a_freshly_enslaved_port() {
    let (mut lab, eps) = switch_lab("freshport");
    lab.vv_ok(&["apply"]);
    let fresh = lab.guest("g9", 99, 0);
    lab.build();
    assert_eq!(lab.port("g9"), "", "a port nobody configured is in no VLAN");
    for e in &eps {
        assert!(
            !ping(&fresh, e),
            "fresh port reached {} in VLAN {}",
            e.label,
            e.vlan
        );
    }
    // with the kernel's default (1) instead, a fresh port would be on the host's VLAN
    lab.config(&CONFIG.replace("default_pvid = 0", "default_pvid = 1"));
    lab.vv_ok(&["apply"]);
    let fresh2 = lab.guest("g8", 98, 1);
    lab.build();
    assert_eq!(lab.port("g8"), "1PU");
    assert!(
        ping(&fresh2, &eps[0]),
        "default_pvid 1 puts a fresh port in VLAN 1"
    );
}

#[test]
fn dot1ad_bridge_tags_with_the_service_ethertype() {
    let mut lab = Lab::new("qinq");
    let sw = lab.veth_port("up0", "br0");
    let g1 = lab.guest("g1", 11, 100);
    let ad = lab.tagged_endpoint("ad100", &sw, 100, "802.1ad", 3);
    let q = lab.tagged_endpoint("q100", &sw, 100, "802.1Q", 4);
    lab.build();
    lab.config(
        "[bridges.br0]\nvlan_protocol = \"802.1ad\"\ndefault_pvid = 0\n\
         [bridges.br0.uplinks.up0]\non_demand = true\n\
         [[ports]]\ninterface = \"g1\"\npvid = 100\n",
    );
    lab.vv_ok(&["apply"]);
    assert_eq!(lab.bridge_settings(), (1, 0, "802.1ad".to_string()));
    assert_eq!(lab.port("up0"), "100");
    assert!(
        ping(&g1, &ad),
        "an 802.1ad subinterface upstream sees VLAN 100"
    );
    assert!(
        !ping(&g1, &q),
        "an 802.1Q subinterface does not: the tag is 802.1ad"
    );
}

#[test]
fn a_port_vanishing_mid_apply_rolls_back_what_the_run_changed() {
    let (lab, _) = switch_lab("vanish");
    lab.vv_ok(&["apply"]);
    let before = lab.kernel_vlans();
    let record = std::fs::read_to_string(lab.dir.join("state/ownership.json")).unwrap();
    // change g1, g2 and g3; g3 will vanish between planning and writing
    lab.config(
        &CONFIG
            .replace("pvid = 100", "pvid = 150")
            .replace("pvid = 200", "pvid = 250"),
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.name, BIN, "apply", "--confirm"])
        .env("VIRT_VLAN_CONFIG", lab.dir.join("virt-vlan.toml"))
        .env("VIRT_VLAN_STATE_DIR", lab.dir.join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut prompt = Vec::new();
    // the prompt has no newline: read up to its question mark
    err.read_until(b'?', &mut prompt).unwrap();
    assert!(
        String::from_utf8_lossy(&prompt).contains("apply these"),
        "{}",
        String::from_utf8_lossy(&prompt)
    );
    lab.host("ip link del g3");
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("port g3 on br0 vanished during apply"),
        "{stderr}"
    );
    assert!(stderr.contains("rolled back"), "{stderr}");
    assert!(stderr.contains("the host is as it was"), "{stderr}");
    let mut expect = before;
    expect.remove("g3");
    assert_eq!(
        lab.kernel_vlans(),
        expect,
        "every other port exactly as before"
    );
    let after = std::fs::read_to_string(lab.dir.join("state/ownership.json")).unwrap();
    assert_eq!(
        after, record,
        "the ownership record is untouched by a failed run"
    );
}

#[test]
fn dry_run_prints_the_equivalent_commands_and_changes_nothing() {
    let (lab, _) = switch_lab("dryrun");
    let before = lab.kernel_vlans();
    let settings = lab.bridge_settings();
    let plan = lab.vv_ok(&["apply", "--dry-run"]);
    assert_eq!(lab.kernel_vlans(), before, "dry run touched the kernel");
    assert_eq!(lab.bridge_settings(), settings);
    assert!(!lab.dir.join("state/ownership.json").exists());
    assert!(
        plan.contains("ip link set dev br0 type bridge vlan_filtering 1 vlan_default_pvid 0"),
        "{plan}"
    );
    assert!(
        plan.contains("bridge vlan add dev g1 vid 100 pvid untagged master"),
        "{plan}"
    );
    // The printed commands, run by hand, produce exactly what apply would: afterwards a real
    // apply finds nothing to write.
    let script = lab.dir.join("plan.sh");
    std::fs::write(&script, &plan).unwrap();
    lab.host(&format!("sh -e {}", script.display()));
    expected_after_apply(&lab);
    assert_eq!(lab.apply_counting_writes(), 0);
}

#[test]
fn bad_input_exits_2_naming_the_place_and_changes_nothing() {
    let (lab, _) = switch_lab("badinput");
    let before = lab.kernel_vlans();
    let cases = [
        (
            CONFIG.replace("pvid = 300", "pvid = 4095"),
            "virt-vlan.toml:24: ports.pvid: VID 4095 is reserved",
        ),
        (
            CONFIG.replace(
                "tagged = \"100,200\"\non_demand",
                "tagged = \"200-100\"\non_demand",
            ),
            "virt-vlan.toml:8: bridges.br0.uplinks.up0.tagged",
        ),
        (
            CONFIG.replace("default_pvid = 0", "default_pvid = 0\nvlan_filter = true"),
            "unknown field `vlan_filter`",
        ),
        (
            CONFIG.replace("interface = \"g1\"", "interface = \"g1; rm -rf\""),
            "contains whitespace",
        ),
        (
            CONFIG.replace("interface = \"g1\"", "interface = \"../etc/passwd\""),
            "contains `/`",
        ),
        (
            CONFIG.replace("interface = \"g1\"", "interface = \"aaaaaaaaaaaaaaaaaaaa\""),
            "at most 15 bytes",
        ),
        (
            CONFIG.replace("default_pvid = 0", "default_pvid = 0\nallowed = \"1-250\""),
            "VID 300 is outside bridge br0's allowed VIDs",
        ),
    ];
    for (text, want) in cases {
        lab.config(&text);
        let o = lab.vv(&["apply"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{want}: {err}");
        assert!(err.contains(want), "wanted `{want}` in: {err}");
        assert!(
            err.contains(&lab.dir.join("virt-vlan.toml").display().to_string()),
            "names the file: {err}"
        );
    }
    // a listed port that does not exist / sits on an unmanaged bridge: runtime error, exit 1
    lab.config(&CONFIG.replace("interface = \"g1\"", "interface = \"nosuch0\""));
    let o = lab.vv(&["apply"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("port nosuch0: no such bridge port"));
    lab.host("ip link add br9 type bridge && ip link set g1 master br9");
    lab.config(CONFIG);
    let o = lab.vv(&["apply"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("port g1: is a port of bridge br9, which virt-vlan does not manage"),
        "{err}"
    );
    // back on br0 (which still has the kernel's default_pvid 1) g1 is as it was
    lab.host("ip link set g1 master br0 && ip link del br9");
    assert_eq!(lab.kernel_vlans(), before, "no bad input changed the host");
    assert!(!lab.dir.join("state/ownership.json").exists());
}

#[test]
fn check_and_show_on_a_real_kernel() {
    let (lab, _) = switch_lab("checkshow");
    let o = lab.vv(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("vlan_filtering is off"));
    lab.vv_ok(&["apply"]);
    let out = lab.vv_ok(&["check"]);
    assert!(out.contains("ok: bridge br0: vlan_filtering on"), "{out}");
    assert!(
        !out.contains("warning"),
        "on-demand uplink carries every guest VLAN: {out}"
    );
    let table = lab.vv_ok(&["show"]);
    println!("{table}");
    let line = |p: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(p))
            .unwrap()
            .to_string()
    };
    assert!(line("up0").contains("uplink"), "{table}");
    assert!(line("up0").contains("100,200,300"), "{table}");
    assert!(
        line("g5").contains("guest") && line("g5").contains("300"),
        "{table}"
    );
    assert!(line("br0").contains("self"), "{table}");
    // an uplink that does not carry a guest VLAN is warned about
    lab.config(&CONFIG.replace("on_demand = true", ""));
    let out = lab.vv_ok(&["check"]);
    assert!(
        out.contains("port g5") && out.contains("uses VID 300"),
        "{out}"
    );
}

/// A `virt-vlan watch` running in a lab's host namespace, logging to a file; SIGTERM on drop.
struct Watcher {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Watcher {
    fn start(lab: &Lab, name: &str) -> Watcher {
        let log = lab.dir.join(format!("{name}.log"));
        let child = lab
            .vv_command(&["watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let w = Watcher { child, log };
        assert!(
            wait_for(30, || w.log().contains("watching")),
            "watch did not start:\n{}",
            w.log()
        );
        w
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        must(&format!("kill -{sig} {}", self.child.id()));
    }

    /// Runs of the pipeline that wrote something.
    fn writing_runs(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(" write(s), ports "))
            .count()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg(self.child.id().to_string())
                .status();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn watch_puts_back_what_others_change_and_leaves_foreign_ports_alone() {
    let (mut lab, eps) = switch_lab("watchdrift");
    let g9 = lab.guest("g9", 99, 0);
    lab.build();
    let w = Watcher::start(&lab, "watch");
    // the first run applies the config
    assert!(wait_for(30, || lab.port("g1") == "100PU"), "{}", w.log());
    expected_after_apply(&lab);
    // someone removes a managed VID
    lab.host("bridge vlan del dev g1 vid 100");
    assert!(
        wait_for(10, || lab.port("g1") == "100PU"),
        "not repaired: {}\n{}",
        lab.port("g1"),
        w.log()
    );
    // someone changes a managed VID's flags on a trunk
    lab.host("bridge vlan add dev g4 vid 100 pvid untagged");
    assert!(
        wait_for(10, || lab.port("g4") == "100 200"),
        "not repaired: {}\n{}",
        lab.port("g4"),
        w.log()
    );
    // someone moves g3's PVID to a VID of their own: the PVID comes back, their VID stays
    lab.host("bridge vlan add dev g3 vid 333 pvid untagged");
    assert!(
        wait_for(10, || lab.port("g3") == "200PU 333U"),
        "{}\n{}",
        lab.port("g3"),
        w.log()
    );
    // a foreign VID on a port nobody configured is theirs (counted once the g3 repair's
    // run has logged: the kernel shows a repair before the watcher writes its log line)
    assert!(
        wait_for(10, || w.log().contains("write(s), ports g3")),
        "{}",
        w.log()
    );
    let runs = w.writing_runs();
    lab.host("bridge vlan add dev g9 vid 777");
    std::thread::sleep(std::time::Duration::from_secs(2));
    // (g9 was there before the first run: it keeps the kernel's VLAN 1 as it had it)
    assert_eq!(lab.port("g9"), "1PU 777");
    assert_eq!(
        w.writing_runs(),
        runs,
        "nothing written for a foreign port:\n{}",
        w.log()
    );
    let _ = g9;
    // isolation still holds after all that
    assert_ping_matrix(&eps);
    // SIGHUP reloads the config
    lab.config(&CONFIG.replace(
        "interface = \"g2\"\npvid = 100",
        "interface = \"g2\"\npvid = 150",
    ));
    w.signal("HUP");
    assert!(
        wait_for(10, || lab.port("g2") == "150PU"),
        "{}\n{}",
        lab.port("g2"),
        w.log()
    );
    // SIGTERM ends it cleanly
    let mut w = w;
    w.signal("TERM");
    let status = w.child.wait().unwrap();
    assert!(status.success(), "{status}\n{}", w.log());
    assert!(w.log().contains("exiting after"), "{}", w.log());
}

#[test]
fn watch_brings_back_a_recreated_bridge_and_reenslaved_ports() {
    let (lab, eps) = switch_lab("watchbridge");
    let w = Watcher::start(&lab, "watch");
    assert!(wait_for(30, || lab.port("g1") == "100PU"), "{}", w.log());
    // ifupdown-style: the bridge is deleted and made again, ports enslaved again
    lab.host(
        "ip link del br0 && ip link add br0 type bridge && ip link set br0 up && \
         ip addr add 10.9.0.1/24 dev br0 && \
         for p in up0 g1 g2 g3 g4 g5; do ip link set $p master br0; done",
    );
    assert!(
        wait_for(30, || lab.port("g5") == "100 300PU"
            && lab.port("up0") == "1PU 100 200 300"),
        "{:?}\n{}",
        lab.kernel_vlans(),
        w.log()
    );
    expected_after_apply(&lab);
    assert_ping_matrix(&eps);
}

/// 100 ports configured before they exist; all enslaved in one go.
fn burst_config() -> String {
    let mut c = String::from(
        "[bridges.br0]\ndefault_pvid = 0\n[bridges.br0.uplinks.up0]\non_demand = true\n",
    );
    for i in 0..100 {
        c.push_str(&format!(
            "[[ports]]\ninterface = \"p{i:03}\"\npvid = {}\n",
            1000 + i
        ));
    }
    c
}

fn burst(lab: &Lab) {
    let mut lines = Vec::new();
    for i in 0..100 {
        lines.push(format!("link add p{i:03} type veth peer name q{i:03}"));
        lines.push(format!("link set p{i:03} master br0"));
        lines.push(format!("link set p{i:03} up"));
    }
    ip_batch(Some(&lab.name), &lines);
}

/// How many of the 100 burst ports are right.
fn burst_right(lab: &Lab) -> usize {
    let v = lab.kernel_vlans();
    (0..100)
        .filter(|i| {
            v.get(&format!("p{i:03}")).map(|x| describe(x.clone()))
                == Some(format!("{}PU", 1000 + i))
        })
        .count()
}

fn burst_done(lab: &Lab) -> bool {
    burst_right(lab) == 100
}

#[test]
fn watch_coalesces_a_burst_of_100_enslaved_ports() {
    let mut lab = Lab::new("watchburst");
    lab.veth_port("up0", "br0");
    lab.build();
    lab.config(&burst_config());
    let w = Watcher::start(&lab, "watch");
    burst(&lab);
    assert!(
        wait_for(60, || burst_done(&lab)),
        "not all 100 right:\n{:?}\n{}",
        lab.kernel_vlans(),
        w.log()
    );
    assert_eq!(lab.port("up0"), "1000-1099");
    let runs = w.writing_runs();
    println!("100 enslaves took {runs} writing run(s)");
    assert!(
        runs <= 10,
        "a burst is coalesced, not one run per port: {runs}\n{}",
        w.log()
    );
}

#[test]
fn watch_killed_mid_burst_and_restarted_converges() {
    let mut lab = Lab::new("watchkill");
    lab.veth_port("up0", "br0");
    lab.build();
    lab.config(&burst_config());
    let mut w = Watcher::start(&lab, "watch1");
    // the burst arrives in four waves; the watcher is killed once the first ports are right
    let burster = {
        let name = lab.name.clone();
        std::thread::spawn(move || {
            for wave in 0..4 {
                let mut lines = Vec::new();
                for i in wave * 25..(wave + 1) * 25 {
                    lines.push(format!("link add p{i:03} type veth peer name q{i:03}"));
                    lines.push(format!("link set p{i:03} master br0"));
                    lines.push(format!("link set p{i:03} up"));
                }
                ip_batch(Some(&name), &lines);
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        })
    };
    assert!(wait_for(30, || burst_right(&lab) > 0), "{}", w.log());
    w.signal("KILL");
    let _ = w.child.wait();
    let at_kill = burst_right(&lab);
    println!("killed with {at_kill} of 100 ports right");
    burster.join().unwrap();
    assert!(!burst_done(&lab), "the kill came mid-burst");
    let w2 = Watcher::start(&lab, "watch2");
    assert!(
        wait_for(60, || burst_done(&lab)),
        "{:?}\n{}",
        lab.kernel_vlans(),
        w2.log()
    );
    assert_eq!(lab.port("up0"), "1000-1099");
}

#[test]
fn watch_once_reconciles_and_exits() {
    let (lab, _) = switch_lab("watchonce");
    let out = lab.vv(&["watch", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expected_after_apply(&lab);
}

/// CONFIG with every guest moved to other VLANs (and the uplink following on demand).
fn moved_config() -> String {
    CONFIG
        .replace(
            "interface = \"g1\"\npvid = 100",
            "interface = \"g1\"\npvid = 150",
        )
        .replace(
            "interface = \"g3\"\npvid = 200",
            "interface = \"g3\"\npvid = 250\ntagged = \"260-262\"",
        )
        .replace(
            "interface = \"g4\"\ntagged = \"100,200\"",
            "interface = \"g4\"\ntagged = \"300-310\"",
        )
        .replace(
            "pvid = 300\ntagged = \"100\"",
            "pvid = 400\ntagged = \"100\"",
        )
}

/// The crash test with the real binary: `apply`, `watch --once` and the qemu `start` hook,
/// each SIGKILLed after its n-th kernel write for every n of a run, and then run again. The
/// rerun must reach exactly the converged state, and going back (the first config, or the
/// guest's `release` hook) must leave exactly the state before: nothing the killed run added
/// is orphaned, and a VID a person added by hand survives every kill.
#[test]
fn apply_hook_and_watch_killed_after_any_write_leave_nothing_orphaned() {
    use std::os::unix::process::ExitStatusExt;
    let (lab, _) = switch_lab("killed");
    lab.vv_ok(&["apply"]);
    lab.host("bridge vlan add dev g3 vid 777");
    let first = lab.kernel_vlans();
    let moved = moved_config();
    lab.config(&moved);
    let writes = lab.apply_counting_writes();
    let second = lab.kernel_vlans();
    assert!(
        writes >= 6,
        "a run with {writes} writes gives too few crash points"
    );
    lab.config(CONFIG);
    lab.vv_ok(&["apply"]);
    assert_eq!(lab.kernel_vlans(), first);
    assert_eq!(lab.port("g3"), "200PU 777");
    let killed = |c: &mut Command, what: &str| {
        let status = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{what}: {status}");
    };

    let mut kills = 0;
    for entry in ["apply", "watch"] {
        // after the last write, too: killed before the record is saved
        for n in 1..=writes {
            lab.config(&moved);
            let args: &[&str] = if entry == "apply" {
                &["apply"]
            } else {
                &["watch", "--once"]
            };
            let mut c = lab.vv_command(args);
            c.env("VIRT_VLAN_FAULT_KILL_AFTER_WRITES", n.to_string())
                .stdin(Stdio::null());
            killed(
                &mut c,
                &format!("{entry} killed after write {n} of {writes}"),
            );
            kills += 1;
            // the run after the crash converges on the new config...
            lab.vv_ok(&["apply"]);
            assert_eq!(lab.kernel_vlans(), second, "{entry} killed after write {n}");
            // ... and going back leaves nothing behind
            lab.config(CONFIG);
            lab.vv_ok(&["apply"]);
            assert_eq!(
                lab.kernel_vlans(),
                first,
                "VIDs orphaned after {entry} was killed after write {n}"
            );
        }
    }

    // a guest's tap, given a trunk by the start hook (its uplink VIDs on demand)
    lab.host(
        "ip link add g6 type veth peer name g6p && ip link set g6 master br0 && ip link set g6 up",
    );
    let domain = "<domain type='qemu'><name>vmk</name><metadata>\
        <vv:vlans xmlns:vv='urn:virt-vlan:1'><vv:interface mac='52:54:00:6b:00:06'>\
        <vv:vlan trunk='yes'><vv:tag id='501' nativeMode='untagged'/><vv:tag id='500'/>\
        <vv:tag id='502'/><vv:tag id='510'/></vv:vlan></vv:interface></vv:vlans></metadata>\
        <devices><interface type='bridge'><mac address='52:54:00:6b:00:06'/>\
        <source bridge='br0'/><target dev='g6'/><alias name='net0'/></interface></devices></domain>";
    let hook = |op: &str, fault: Option<u64>| {
        let mut c = lab.vv_command(&["hook", "qemu", "vmk", op, "begin", "-"]);
        if let Some(n) = fault {
            c.env("VIRT_VLAN_FAULT_KILL_AFTER_WRITES", n.to_string());
        }
        c.stdin(Stdio::piped());
        c
    };
    let run_hook = |mut c: Command| {
        let mut child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(domain.as_bytes())
            .unwrap();
        child.wait().unwrap()
    };
    let started = |lab: &Lab| {
        assert_eq!(lab.port("g6"), "500 501PU 502 510");
        assert_eq!(lab.port("up0"), "1PU 100 200 300 500-502 510");
    };
    assert!(run_hook(hook("start", None)).success());
    started(&lab);
    assert!(run_hook(hook("release", None)).success());
    assert_eq!(lab.port("g6"), "");
    assert_eq!(lab.port("up0"), "1PU 100 200 300");
    // kill the start hook after its 1st, 2nd, ... write until it gets to finish
    let mut n = 1;
    loop {
        let status = run_hook(hook("start", Some(n)));
        if status.success() {
            break;
        }
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "start hook killed after write {n}"
        );
        kills += 1;
        assert!(run_hook(hook("start", None)).success());
        started(&lab);
        assert!(run_hook(hook("release", None)).success());
        assert_eq!(lab.port("g6"), "", "orphaned on the tap");
        assert_eq!(lab.port("up0"), "1PU 100 200 300", "orphaned on the uplink");
        n += 1;
        assert!(n <= 10, "the start hook never finished");
    }
    assert!(
        n >= 3,
        "the hook's tap and uplink writes were both crash points"
    );
    assert_eq!(lab.kernel_vlans().get("g3"), first.get("g3"));
    println!("{kills} kills survived ({writes} writes per apply)");
}
