//! The Debian package, end to end inside the lab VM: `dpkg -i` the .deb `make deb` built, check
//! what it put where (binary, man pages, completions, unit, conffile, hook entries, AppArmor
//! rule), start a disk-less qemu guest with virt-vlan metadata on a managed bridge under a real
//! libvirtd and check its tap's VLANs with iproute2, then `dpkg -r` and `dpkg -P` and check
//! that exactly virt-vlan's hook entries and rule went while another program's hook stayed.
//!
//! Build the package first (`make deb`); this test does not build it. The VM's /usr is the
//! host's, read-only: the test lays a tmpfs overlay over it so dpkg can write there.

mod labkit;

use labkit::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SBIN: &str = "/usr/sbin/virt-vlan";
const HOOKS: &str = "/etc/libvirt/hooks";
const DRIVERS: [&str; 4] = ["qemu", "lxc", "network", "daemon"];
const FOREIGN: &str = "/etc/libvirt/hooks/qemu.d/00-someone-else";
const FOREIGN_LOG: &str = "/run/vvdeb-foreign.log";
const CONFIG: &str = "/etc/virt-vlan/virt-vlan.toml";
const APPARMOR_LOCAL: &str = "/etc/apparmor.d/local/usr.sbin.libvirtd";
const BRIDGE: &str = "brdeb0";
const MAC: &str = "52:54:00:de:b0:01";

/// The newest `target/debian/virt-vlan_<version>_<arch>.deb`.
fn the_deb() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("virt-vlan_") && n.ends_with(".deb"))
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    newest.unwrap_or_else(|| {
        panic!(
            "no virt-vlan_*.deb in {}: run `make deb` before this test",
            dir.display()
        )
    })
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let o = run(program, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "{program} {args:?} failed ({}):\n{text}",
        o.status
    );
    println!("$ {program} {}\n{text}", args.join(" "));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn virsh(args: &[&str]) -> Output {
    let mut a = vec!["-c", "qemu:///system"];
    a.extend_from_slice(args);
    run("virsh", &a)
}

fn virsh_ok(args: &[&str]) -> String {
    let mut a = vec!["-c", "qemu:///system"];
    a.extend_from_slice(args);
    ok("virsh", &a)
}

/// dpkg writes below /usr, which the lab VM shares from the host (read-only): a tmpfs overlay
/// over it takes the writes, always, so that nothing reaches the host's /usr, and is dropped
/// with the VM. (/etc, /var and /run are the VM's own overlays already.)
fn private_usr() {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    if mounts.contains("upperdir=/run/vvdeb-usr/upper") {
        return; // an earlier run in this boot laid it
    }
    must(
        "mkdir -p /run/vvdeb-usr && mount -t tmpfs tmpfs /run/vvdeb-usr && \
         mkdir /run/vvdeb-usr/upper /run/vvdeb-usr/work && \
         mount -t overlay overlay \
           -o lowerdir=/usr,upperdir=/run/vvdeb-usr/upper,workdir=/run/vvdeb-usr/work /usr",
    );
    std::fs::write("/usr/.vvdeb-probe", "").expect("/usr is writable through the overlay");
    std::fs::remove_file("/usr/.vvdeb-probe").unwrap();
}

/// A disk-less TCG guest on `BRIDGE`, access VLAN 42 by our metadata.
fn define_guest() {
    let xml = format!(
        "<domain type='qemu'><name>vdeb</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <metadata><vv:vlans xmlns:vv='urn:virt-vlan:1'><vv:interface mac='{MAC}'>\
         <vv:vlan><vv:tag id='42'/></vv:vlan></vv:interface></vv:vlans></metadata>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>\
         <features><acpi/><apic/></features><on_poweroff>destroy</on_poweroff>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <interface type='bridge'><source bridge='{BRIDGE}'/><mac address='{MAC}'/>\
         <model type='virtio'/></interface><memballoon model='none'/></devices></domain>"
    );
    std::fs::write("/tmp/vdeb.xml", xml).unwrap();
    virsh_ok(&["define", "/tmp/vdeb.xml"]);
}

fn tap_of_guest() -> String {
    let xml = virsh_ok(&["dumpxml", "vdeb"]);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("interface"))
        .find(|i| {
            i.children()
                .any(|c| c.has_tag_name("mac") && c.attribute("address") == Some(MAC))
        })
        .and_then(|i| i.children().find(|c| c.has_tag_name("target")))
        .and_then(|t| t.attribute("dev"))
        .unwrap_or_else(|| panic!("vdeb has no tap:\n{xml}"))
        .to_string()
}

/// Destroys and undefines the guest when dropped, also when the test fails half-way.
struct Guest;

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", "vdeb"]);
        let _ = virsh(&["undefine", "vdeb"]);
    }
}

/// Every hook entry of virt-vlan's kind: `<driver>.d/virt-vlan`, or a main hook that is a
/// symlink to a virt-vlan binary.
fn virt_vlan_hooks() -> Vec<String> {
    let mut out = Vec::new();
    for d in DRIVERS {
        let dot_d = format!("{HOOKS}/{d}.d/virt-vlan");
        if Path::new(&dot_d).symlink_metadata().is_ok() {
            out.push(dot_d);
        }
        let main = format!("{HOOKS}/{d}");
        if std::fs::read_link(&main).is_ok_and(|t| t.ends_with("virt-vlan")) {
            out.push(main);
        }
    }
    out
}

#[test]
fn the_debian_package_installs_works_and_removes_exactly_its_own() {
    let deb = the_deb();
    println!("package: {}", deb.display());
    private_usr();
    // A fresh machine: nothing of a virt-vlan installed by hand, which the suites before this
    // one leave in the VM (their hook entries, their config).
    let _ = Command::new(labkit::BIN)
        .args(["install", "--uninstall"])
        .stdin(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all("/etc/virt-vlan");

    // another program's hook, there before virt-vlan
    std::fs::create_dir_all(format!("{HOOKS}/qemu.d")).unwrap();
    std::fs::write(
        FOREIGN,
        format!("#!/bin/sh\necho \"$*\" >> {FOREIGN_LOG}\nexit 0\n"),
    )
    .unwrap();
    std::fs::set_permissions(FOREIGN, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_file(FOREIGN_LOG);

    // man-db's trigger would rebuild the whole manual index, minutes under emulation; a
    // missing auto-update flag makes it skip that (the VM's /var is its own)
    let _ = std::fs::remove_file("/var/lib/man-db/auto-update");

    // install
    ok(
        "dpkg",
        &[
            "--force-confdef",
            "--force-confold",
            "-i",
            deb.to_str().unwrap(),
        ],
    );
    let meta = std::fs::metadata(SBIN).expect("the binary is in /usr/sbin");
    assert!(meta.permissions().mode() & 0o111 != 0);
    let version = ok(SBIN, &["--version"]);
    assert_eq!(
        version.trim(),
        format!("virt-vlan {}", env!("CARGO_PKG_VERSION"))
    );
    for page in [
        "virt-vlan",
        "virt-vlan-apply",
        "virt-vlan-show",
        "virt-vlan-check",
        "virt-vlan-install",
        "virt-vlan-watch",
        "virt-vlan-import-kvmvlan",
    ] {
        let p = format!("/usr/share/man/man8/{page}.8.gz");
        assert!(Path::new(&p).exists(), "{p} missing");
    }
    for c in [
        "/usr/share/bash-completion/completions/virt-vlan",
        "/usr/share/zsh/vendor-completions/_virt-vlan",
        "/usr/share/fish/vendor_completions.d/virt-vlan.fish",
    ] {
        let text = std::fs::read_to_string(c).unwrap_or_else(|e| panic!("{c}: {e}"));
        // fish spells long options `-l diagram`
        assert!(text.contains("check") && text.contains("diagram"), "{c}");
    }
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/virt-vlan-watch.service")
        .expect("the watch unit");
    assert!(
        unit.contains("ExecStart=/usr/sbin/virt-vlan watch"),
        "{unit}"
    );
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", "virt-vlan"]);
    assert!(conffiles.contains(CONFIG), "{conffiles}");
    assert!(
        std::fs::read_to_string(CONFIG)
            .unwrap()
            .starts_with("# virt-vlan config."),
        "the commented default config"
    );
    for d in DRIVERS {
        let link = format!("{HOOKS}/{d}.d/virt-vlan");
        assert_eq!(
            std::fs::read_link(&link).unwrap_or_else(|e| panic!("{link}: {e}")),
            Path::new(SBIN),
            "postinst put {link} in place"
        );
    }
    assert!(Path::new(FOREIGN).exists());
    let apparmor = Path::new("/etc/apparmor.d").is_dir();
    if apparmor {
        let local = std::fs::read_to_string(APPARMOR_LOCAL).unwrap();
        assert!(
            local.contains("# BEGIN virt-vlan") && local.contains("/usr/sbin/virt-vlan rmix,"),
            "{local}"
        );
    }

    // a guest on a managed bridge gets its VLAN from the installed hooks
    must(&format!(
        "ip link show {BRIDGE} >/dev/null 2>&1 || ip link add {BRIDGE} type bridge; \
         ip link set {BRIDGE} up"
    ));
    std::fs::write(
        CONFIG,
        format!("[bridges.{BRIDGE}]\ndefault_pvid = 0\n[bridges.{BRIDGE}.self]\npvid = 1\n"),
    )
    .unwrap();
    ok(SBIN, &["apply"]);
    // libvirt looks for hook entries when it starts, and the package's are new
    libvirtd::restart();
    let _guest = Guest;
    let _ = virsh(&["destroy", "vdeb"]);
    let _ = virsh(&["undefine", "vdeb"]);
    define_guest();
    virsh_ok(&["start", "vdeb"]);
    let tap = tap_of_guest();
    assert_eq!(
        root_port(&tap),
        "42PU",
        "the qemu start hook gave {tap} access VLAN 42"
    );
    let foreign_log = std::fs::read_to_string(FOREIGN_LOG).unwrap_or_default();
    assert!(
        foreign_log.contains("vdeb start begin"),
        "the other program's hook ran beside ours: {foreign_log:?}"
    );
    let diagram = ok(SBIN, &["show", "--diagram"]);
    assert!(
        diagram.contains(&format!("|{tap}"))
            && diagram.contains("vdeb(")
            && diagram.contains("pvid=42"),
        "{diagram}"
    );
    let check = run(SBIN, &["check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap_or_else(|e| {
        panic!(
            "check --json: {e}:\n{}",
            String::from_utf8_lossy(&check.stdout)
        )
    });
    println!("{report:#}");
    assert_eq!(report["exit"], check.status.code().unwrap());
    let finding = |id: &str| -> Vec<serde_json::Value> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == id)
            .cloned()
            .collect()
    };
    assert!(
        finding("hooks")
            .iter()
            .any(|f| f["level"] == "ok" && f["message"].as_str().unwrap().contains(SBIN)),
        "{report:#}"
    );
    assert!(
        finding("watcher")
            .iter()
            .any(|f| f["level"] == "warning" && f["message"].as_str().unwrap().contains("vdeb")),
        "a type='bridge' guest and no watcher: {report:#}"
    );
    virsh_ok(&["destroy", "vdeb"]);

    // remove: exactly virt-vlan's hook entries and rule go, the other hook and the config stay
    ok("dpkg", &["-r", "virt-vlan"]);
    assert!(!Path::new(SBIN).exists());
    assert_eq!(
        virt_vlan_hooks(),
        Vec::<String>::new(),
        "no virt-vlan hook remains"
    );
    assert!(
        Path::new(FOREIGN).exists(),
        "the other program's hook stays"
    );
    if apparmor {
        let local = std::fs::read_to_string(APPARMOR_LOCAL).unwrap_or_default();
        assert!(!local.contains("virt-vlan"), "{local}");
    }
    assert!(Path::new(CONFIG).exists(), "remove keeps the conffile");

    // purge: the config and virt-vlan's state go too
    ok("dpkg", &["-P", "virt-vlan"]);
    assert!(!Path::new(CONFIG).exists());
    assert!(!Path::new("/run/virt-vlan").exists());
    assert!(Path::new(FOREIGN).exists());

    let _ = std::fs::remove_file(FOREIGN);
    let _ = Command::new("ip").args(["link", "del", BRIDGE]).status();
}
