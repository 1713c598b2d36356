//! The lab VM itself as the host the libvirt suites manage: virt-vlan's config at its default
//! path and the binary run as an admin runs it, virsh against a libvirtd's URI, and what the
//! ownership record ties to a domain.

use super::{BIN, checked};
use std::process::{Command, Output, Stdio};

/// Where virt-vlan reads its config when not told otherwise.
pub const CONFIG_PATH: &str = "/etc/virt-vlan/virt-vlan.toml";
/// The ownership record at its default path.
pub const RECORD_PATH: &str = "/run/virt-vlan/ownership.json";
/// The lab's own libvirtd's qemu driver.
pub const QEMU: &str = "qemu:///system";

pub fn set_config(text: &str) {
    std::fs::create_dir_all("/etc/virt-vlan").unwrap();
    std::fs::write(CONFIG_PATH, text).unwrap();
}

/// `virt-vlan args…`, which must succeed: its stdout.
pub fn vv_ok(args: &[&str]) -> String {
    let mut c = Command::new(BIN);
    c.args(args);
    checked(c, &format!("virt-vlan {args:?}"))
}

pub fn virsh_command(uri: &str, args: &[&str]) -> Command {
    let mut c = Command::new("virsh");
    c.args(["-c", uri]).args(args);
    c
}

pub fn virsh_on(uri: &str, args: &[&str]) -> Output {
    virsh_command(uri, args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `virsh -c uri args…`, which must succeed: its stdout.
pub fn virsh_ok_on(uri: &str, args: &[&str]) -> String {
    checked(
        virsh_command(uri, args),
        &format!("virsh -c {uri} {args:?}"),
    )
}

/// The ports a record (`ownership.json` at `path`) ties to `domain`, sorted.
pub fn recorded_ports_in(path: &str, domain: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "{}".into());
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for (_, ports) in r["bridges"].as_object().into_iter().flatten() {
        for (port, e) in ports.as_object().unwrap() {
            if e["origin"]["domain"] == domain {
                out.push(port.clone());
            }
        }
    }
    out.sort();
    out
}
