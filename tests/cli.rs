//! The command line on this machine (no lab VM): arguments, exit codes, bad config, the
//! kvmvlan importer, and what virt-vlan says on a kernel that cannot filter VLANs — which is
//! this development machine's own kernel, probed here rather than assumed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_virt-vlan");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vv-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str], config: Option<&Path>, state: &Path) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("VIRT_VLAN_STATE_DIR", state)
        .env_remove("VIRT_VLAN_CONFIG");
    if let Some(p) = config {
        c.env("VIRT_VLAN_CONFIG", p);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_every_command() {
    let d = tmp("help");
    let o = run(&["--help"], None, &d);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["apply", "show", "check", "import"] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
    }
    assert!(out.contains("--config"), "{out}");
}

#[test]
fn bad_arguments_exit_2() {
    let d = tmp("args");
    assert_eq!(
        run(&["apply", "--frobnicate"], None, &d).status.code(),
        Some(2)
    );
    assert_eq!(run(&["nonsense"], None, &d).status.code(), Some(2));
    assert_eq!(
        run(&["apply", "--dry-run", "--confirm"], None, &d)
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn missing_and_bad_config_exit_2_naming_the_file_and_line() {
    let d = tmp("config");
    let missing = d.join("nope.toml");
    for cmd in ["apply", "show", "check"] {
        let o = run(&[cmd], Some(&missing), &d);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("nope.toml: cannot read config"),
            "{}",
            stderr(&o)
        );
    }
    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        "[bridges.br0]\n\n[bridges.br0.uplinks.eth0]\ntagged = \"1-5,4095\"\n",
    )
    .unwrap();
    let o = run(&["apply", "--dry-run"], Some(&bad), &d);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("bad.toml:4: bridges.br0.uplinks.eth0.tagged: VID 4095 is reserved"),
        "{e}"
    );
    // --config wins over the environment
    let o = run(
        &["--config", bad.to_str().unwrap(), "check"],
        Some(&missing),
        &d,
    );
    assert!(stderr(&o).contains("bad.toml:4"), "{}", stderr(&o));
}

#[test]
fn import_kvmvlan_prints_a_config_that_validates() {
    let d = tmp("import");
    let bi = d.join("bridge_init.conf");
    let vf = d.join("vlan_filtering.conf");
    std::fs::write(&bi, "[DEFAULT]\ntrunk-port =\ntrunk-pvid = 1\ntrunk-tags =\nbr-pvid = 1\n\n[br0]\ntrunk-port = eth0\ntrunk-tags = 200 201 202\n").unwrap();
    std::fs::write(&vf, "[DEFAULT]\nguest =\npvid = 1\ntagged =\n\n[veth0]\nguest = vm01\npvid = 1\ntagged = 400 4\n").unwrap();
    let args = [
        "import",
        "kvmvlan",
        "--bridge-init",
        bi.to_str().unwrap(),
        "--vlan-filtering",
        vf.to_str().unwrap(),
    ];
    let o = run(&args, None, &d);
    assert!(o.status.success(), "{}", stderr(&o));
    let toml = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        toml.contains("[bridges.br0.uplinks.eth0]\npvid = 1\ntagged = \"200-202\""),
        "{toml}"
    );
    assert!(
        toml.contains("domain = \"vm01\"\ninterface = \"veth0\"\npvid = 1\ntagged = \"4,400\""),
        "{toml}"
    );
    // what it prints is a config virt-vlan accepts
    let out = d.join("imported.toml");
    std::fs::write(&out, &toml).unwrap();
    let o = run(&["apply", "--dry-run"], Some(&out), &d);
    assert_ne!(
        o.status.code(),
        Some(2),
        "imported config must validate: {}",
        stderr(&o)
    );
    // kvmvlan's own sample has a typo (`quest`): caught, with the place
    std::fs::write(&vf, "[veth1]\nquest = vm02\npvid = 20\n").unwrap();
    let o = run(&args, None, &d);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "vlan_filtering.conf:2: [veth1]: unknown key `quest` (did you mean `guest`?)"
        ),
        "{}",
        stderr(&o)
    );
    let o = run(
        &[
            "import",
            "kvmvlan",
            "--bridge-init",
            "/nonexistent",
            "--vlan-filtering",
            vf.to_str().unwrap(),
        ],
        None,
        &d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent: cannot read"),
        "{}",
        stderr(&o)
    );
}

/// On a kernel without bridge VLAN filtering (this machine's), every command says exactly
/// that instead of a raw errno, and nothing changes. On a kernel that has it, the same setup
/// must instead report the bridge's filtering as off.
#[test]
fn a_kernel_without_vlan_filtering_is_named_exactly() {
    let d = tmp("kernel");
    let ns = format!("vvcli{}", std::process::id());
    let sh = |cmd: &str| Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        sh(&format!("ip netns add {ns}")).status.success(),
        "needs root and ip netns"
    );
    let cleanup = scopeguard(|| {
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    });
    assert!(sh(&format!("ip -n {ns} link add br0 type bridge && ip -n {ns} link add v0 type veth peer name v1 && ip -n {ns} link set v0 master br0")).status.success());
    let supported = sh(&format!(
        "ip -n {ns} link set br0 type bridge vlan_filtering 1"
    ))
    .status
    .success();
    let _ = sh(&format!(
        "ip -n {ns} link set br0 type bridge vlan_filtering 0"
    ));
    let cfg = d.join("k.toml");
    std::fs::write(
        &cfg,
        "[bridges.br0]\ndefault_pvid = 0\n[[ports]]\ninterface = \"v0\"\npvid = 5\n",
    )
    .unwrap();
    let vv = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &ns, BIN])
            .args(args)
            .env("VIRT_VLAN_CONFIG", &cfg)
            .env("VIRT_VLAN_STATE_DIR", d.join("state"))
            .output()
            .unwrap()
    };
    let link_before = sh(&format!("ip -n {ns} -d link show br0")).stdout;
    let check = vv(&["check"]);
    let apply = vv(&["apply"]);
    let check_out = String::from_utf8_lossy(&check.stdout).into_owned();
    if supported {
        assert!(check_out.contains("vlan_filtering is off"), "{check_out}");
    } else {
        let want = "bridge br0: this kernel cannot filter VLANs on bridges (it was built without CONFIG_BRIDGE_VLAN_FILTERING)";
        assert_eq!(check.status.code(), Some(1));
        assert!(check_out.contains(want), "{check_out}");
        assert_eq!(apply.status.code(), Some(1));
        assert!(stderr(&apply).contains(want), "{}", stderr(&apply));
        assert!(
            !stderr(&apply).contains("os error"),
            "no raw errno: {}",
            stderr(&apply)
        );
        assert_eq!(
            sh(&format!("ip -n {ns} -d link show br0")).stdout,
            link_before,
            "nothing changed"
        );
        assert!(!d.join("state/ownership.json").exists());
    }
    drop(cleanup);
}

/// Runs `f` when dropped (also when the test panics).
fn scopeguard<F: FnMut()>(f: F) -> impl Drop {
    struct G<F: FnMut()>(F);
    impl<F: FnMut()> Drop for G<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    G(f)
}

/// `migrate begin` and `restore begin` are XML filters: whatever the hook prints replaces the
/// domain XML, so nothing may go to stdout. On migrate, a guest whose VLANs this host cannot
/// serve is refused with the reason (exit 1), before it is black-holed.
#[test]
fn migrate_and_restore_hooks_print_nothing_and_migrate_checks_this_host() {
    let d = tmp("migrate");
    let cfg = d.join("m.toml");
    std::fs::write(
        &cfg,
        "[bridges.br0]\nallowed = \"1-999\"\n[bridges.br0.uplinks.eth0]\ntagged = \"100,200\"\n[bridges.br1]\n[bridges.br1.uplinks.eth1]\ntagged = \"5\"\non_demand = true\n",
    )
    .unwrap();
    let domain = |bridge: &str, vid: u16| {
        format!(
            "<domain type='kvm'><name>mig</name><metadata><vv:vlans xmlns:vv='urn:virt-vlan:1'>\
             <vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='{vid}'/></vv:vlan></vv:interface>\
             </vv:vlans></metadata><devices><interface type='bridge'><mac address='52:54:00:00:00:01'/>\
             <source bridge='{bridge}'/></interface></devices></domain>"
        )
    };
    let hook = |op: &str, xml: &str| {
        let mut c = Command::new(BIN);
        c.args(["hook", "qemu", "mig", op, "begin", "-"])
            .env("VIRT_VLAN_CONFIG", &cfg)
            .env("VIRT_VLAN_STATE_DIR", d.join("state"))
            .env("VIRT_VLAN_LOG_DIR", d.join("log"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(xml.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let cases: [(&str, u16, Option<&str>); 5] = [
        ("br0", 100, None),
        (
            "br0",
            300,
            Some("VID 300 leaves bridge br0 by no uplink here"),
        ),
        ("br0", 1500, Some("VID 1500 is not allowed on bridge br0")),
        (
            "br9",
            100,
            Some("bridge br9 is not managed by virt-vlan on this host"),
        ),
        ("br1", 777, None), // on demand: any allowed VID is carried
    ];
    for (bridge, vid, refused) in cases {
        let o = hook("migrate", &domain(bridge, vid));
        assert!(
            o.stdout.is_empty(),
            "migrate printed on stdout: {:?}",
            String::from_utf8_lossy(&o.stdout)
        );
        match refused {
            None => assert_eq!(o.status.code(), Some(0), "{bridge}/{vid}: {}", stderr(&o)),
            Some(why) => {
                assert_eq!(o.status.code(), Some(1), "{bridge}/{vid}");
                assert!(stderr(&o).contains(why), "{}", stderr(&o));
                assert!(
                    stderr(&o).contains("cannot serve the guest's VLANs"),
                    "{}",
                    stderr(&o)
                );
            }
        }
    }
    let o = hook("restore", &domain("br0", 100));
    assert!(o.stdout.is_empty() && o.status.success(), "{}", stderr(&o));
    // malformed metadata on an incoming guest: refused, naming it
    let o = hook("migrate", &domain("br0", 4095));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("VID 4095 is reserved"),
        "{}",
        stderr(&o)
    );
    // the log file got a line per call
    let log = std::fs::read_to_string(d.join("log/virt-vlan.log")).unwrap();
    assert!(log.contains("hook qemu mig migrate begin"), "{log}");
}
