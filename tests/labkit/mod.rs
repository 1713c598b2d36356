//! Test kit for the lab VM: every test gets its own network namespace as "the host" (so tests
//! run in parallel with the same interface names), builds a real topology — a bridge, an
//! uplink into an upstream-switch namespace with 8021q subinterfaces, guests as veth pairs
//! into namespaces — runs the real `virt-vlan` binary there, and checks the kernel with
//! iproute2 (not with our own netlink code) and with real frames (ping).
//!
//! Process starts are expensive under TCG, so topologies are queued and built with one
//! `ip -batch` per namespace, and commands enter namespaces with `setns` before `exec`.
#![allow(dead_code)]
pub mod frames;
pub mod host;
pub mod libvirtd;
pub mod ovs;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_virt-vlan");

/// The subnet every endpoint shares: whether two endpoints reach each other is then decided
/// by VLANs alone.
pub const SUBNET: &str = "10.9.0";

/// What `bridge -j vlan show` says about one port: vid → (pvid, untagged).
pub type KernelVlans = BTreeMap<u16, (bool, bool)>;

/// An address someone can be pinged at, and the VLAN it is in.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub label: String,
    pub ns: String,
    pub ip: String,
    pub vlan: u16,
}

/// `program args…` run inside network namespace `ns` (entered with setns before exec).
pub fn in_ns(ns: &str, program: &str) -> Command {
    let path = format!("/run/netns/{ns}");
    let mut c = Command::new(program);
    unsafe {
        c.pre_exec(move || {
            let f = std::fs::File::open(&path)?;
            if libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// A child process (a daemon a test started) killed and reaped when dropped, so a failing
/// test leaves nothing running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `c` with `input` on its stdin (as libvirt feeds a hook) and its stdout and stderr
/// captured.
pub fn fed(mut c: Command, input: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // a hook that stops reading early is the hook's business, not a test failure here
    let _ = std::io::Write::write_all(&mut stdin, input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// Runs `c`, panicking with its output unless it succeeds; returns stdout.
pub fn checked(mut c: Command, what: &str) -> String {
    let o = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "`{what}` failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a shell command (in the VM's initial namespace), panicking on failure.
pub fn must(cmd: &str) -> String {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    checked(c, cmd)
}

/// `ip -batch -` with `lines`, in namespace `ns` (`None`: the VM's initial namespace).
pub fn ip_batch(ns: Option<&str>, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut c = Command::new("ip");
    if let Some(ns) = ns {
        c.args(["-n", ns]);
    }
    c.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.join("\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "ip -batch in {ns:?} failed:\n{}\n{}",
        lines.join("\n"),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One isolated test world.
pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    namespaces: Vec<String>,
    /// Queued topology: commands for the VM's initial namespace, then per namespace.
    root_cmds: Vec<String>,
    ns_cmds: Vec<(String, Vec<String>)>,
}

impl Lab {
    /// A fresh host namespace `name` with a bridge `br0` (no VLAN filtering yet, as a distro
    /// creates it) and loopback up.
    pub fn new(name: &str) -> Lab {
        assert!(
            std::path::Path::new("/sys/module/8021q").exists(),
            "this test needs the lab kernel with 8021q (run it with `make test`, which boots the lab VM)"
        );
        let dir = std::env::temp_dir().join(format!("vvlab-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut lab = Lab {
            name: name.to_string(),
            dir,
            namespaces: Vec::new(),
            root_cmds: Vec::new(),
            ns_cmds: Vec::new(),
        };
        lab.queue_netns(name);
        lab.queue(name, "link add br0 type bridge");
        lab.queue(name, "link set br0 up");
        lab
    }

    fn queue_netns(&mut self, ns: &str) {
        self.root_cmds.push(format!("netns add {ns}"));
        self.namespaces.push(ns.to_string());
        self.queue(ns, "link set lo up");
    }

    /// Queues an `ip` command (without `ip`) for namespace `ns`.
    pub fn queue(&mut self, ns: &str, cmd: &str) {
        match self.ns_cmds.iter_mut().find(|(n, _)| n == ns) {
            Some((_, cmds)) => cmds.push(cmd.to_string()),
            None => self.ns_cmds.push((ns.to_string(), vec![cmd.to_string()])),
        }
    }

    /// Builds everything queued: namespaces first, then each namespace's commands in the
    /// order the namespaces were first used.
    pub fn build(&mut self) {
        ip_batch(None, &std::mem::take(&mut self.root_cmds));
        let mut queued = std::mem::take(&mut self.ns_cmds);
        // the host namespace creates the veths the others configure
        queued.sort_by_key(|(ns, _)| *ns != self.name);
        for (ns, cmds) in queued {
            ip_batch(Some(&ns), &cmds);
        }
    }

    /// Runs a shell command in the host namespace; panics on failure.
    pub fn host(&self, cmd: &str) -> String {
        let mut c = in_ns(&self.name, "sh");
        c.arg("-c").arg(cmd);
        checked(c, cmd)
    }

    /// A namespace owned by this lab (deleted with it).
    pub fn netns(&mut self, suffix: &str) -> String {
        let ns = format!("{}-{suffix}", self.name);
        self.queue_netns(&ns);
        ns
    }

    /// A veth `port` enslaved to `bridge` in the host namespace, its peer `eth0` (up) in a
    /// new namespace; returns that namespace.
    pub fn veth_port(&mut self, port: &str, bridge: &str) -> String {
        let ns = self.veth_into_netns(port, port);
        let host = self.name.clone();
        self.queue(&host, &format!("link set {port} master {bridge}"));
        ns
    }

    /// A veth `port` (up) in the host namespace whose peer `eth0` (up) is in a new namespace
    /// `<lab>-<suffix>`; returns that namespace. Enslaving `port` is the caller's.
    pub fn veth_into_netns(&mut self, port: &str, suffix: &str) -> String {
        let ns = self.netns(suffix);
        let host = self.name.clone();
        self.queue(
            &host,
            &format!("link add {port} type veth peer name eth0 netns {ns}"),
        );
        self.queue(&host, &format!("link set {port} up"));
        self.queue(&ns, "link set eth0 up");
        ns
    }

    /// A guest on `port` with an untagged address, in VLAN `vlan` (for the ping matrix).
    pub fn guest(&mut self, port: &str, host_octet: u8, vlan: u16) -> Endpoint {
        let ns = self.veth_port(port, "br0");
        let ip = format!("{SUBNET}.{host_octet}");
        self.queue(&ns, &format!("addr add {ip}/24 dev eth0"));
        Endpoint {
            label: port.to_string(),
            ns,
            ip,
            vlan,
        }
    }

    /// A tagged subinterface of `eth0` in namespace `ns`, moved into a namespace of its own
    /// (so several VLANs can share one subnet) with an address.
    pub fn tagged_endpoint(
        &mut self,
        label: &str,
        ns: &str,
        vid: u16,
        proto: &str,
        host_octet: u8,
    ) -> Endpoint {
        let sub = self.netns(label);
        let ip = format!("{SUBNET}.{host_octet}");
        let dev = format!("v{vid}{}", if proto == "802.1ad" { "ad" } else { "" });
        self.queue(
            ns,
            &format!("link add link eth0 name {dev} type vlan protocol {proto} id {vid}"),
        );
        self.queue(ns, &format!("link set {dev} netns {sub}"));
        self.queue(&sub, &format!("link set {dev} up"));
        self.queue(&sub, &format!("addr add {ip}/24 dev {dev}"));
        Endpoint {
            label: label.to_string(),
            ns: sub,
            ip,
            vlan: vid,
        }
    }

    /// Writes the config file and returns its path.
    pub fn config(&self, toml: &str) -> PathBuf {
        let p = self.dir.join("virt-vlan.toml");
        std::fs::write(&p, toml).unwrap();
        p
    }

    /// `virt-vlan args…` in the host namespace with this lab's config and state dir.
    pub fn vv_command(&self, args: &[&str]) -> Command {
        let mut c = in_ns(&self.name, BIN);
        c.args(args)
            .env("VIRT_VLAN_CONFIG", self.dir.join("virt-vlan.toml"))
            .env("VIRT_VLAN_STATE_DIR", self.dir.join("state"));
        c
    }

    pub fn vv(&self, args: &[&str]) -> Output {
        self.vv_command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `virt-vlan` that must succeed; returns stdout.
    pub fn vv_ok(&self, args: &[&str]) -> String {
        let o = self.vv(args);
        assert!(
            o.status.success(),
            "virt-vlan {args:?} failed ({}):\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Writes counted by `virt-vlan apply --stats`.
    pub fn apply_counting_writes(&self) -> u64 {
        writes_counted(&self.vv(&["apply", "--stats"]))
    }

    /// Every port's VLANs as iproute2 reports them (`bridge -j -compressvlans vlan show`).
    pub fn kernel_vlans(&self) -> BTreeMap<String, KernelVlans> {
        kernel_vlans_in(Some(&self.name))
    }

    /// One port's VLANs in the notation `"1PU 100 200-300"`: P = PVID, U = egress untagged.
    pub fn port(&self, port: &str) -> String {
        describe(self.kernel_vlans().get(port).cloned().unwrap_or_default())
    }

    /// br0's (vlan_filtering, default_pvid, protocol) as `ip -d link` reports them.
    pub fn bridge_settings(&self) -> (u8, u16, String) {
        let mut c = in_ns(&self.name, "ip");
        c.args(["-j", "-d", "link", "show", "br0"]);
        let v: serde_json::Value =
            serde_json::from_str(&checked(c, "ip -d link show br0")).unwrap();
        let d = &v[0]["linkinfo"]["info_data"];
        (
            d["vlan_filtering"].as_u64().unwrap() as u8,
            d["vlan_default_pvid"].as_u64().unwrap() as u16,
            d["vlan_protocol"].as_str().unwrap().to_string(),
        )
    }
}

/// The writes an `apply --stats` that must have succeeded counted (its last JSON line).
pub fn writes_counted(o: &Output) -> u64 {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "apply failed: {err}");
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("stats line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["writes"].as_u64().unwrap()
}

/// Every port's VLANs in namespace `ns` (`None`: the VM's own), as iproute2 reports them.
pub fn kernel_vlans_in(ns: Option<&str>) -> BTreeMap<String, KernelVlans> {
    let mut c = match ns {
        Some(ns) => in_ns(ns, "bridge"),
        None => Command::new("bridge"),
    };
    c.args(["-j", "-compressvlans", "vlan", "show"]);
    let out = checked(c, "bridge -j vlan show");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut map = BTreeMap::new();
    for port in v.as_array().unwrap() {
        let name = port["ifname"].as_str().unwrap().to_string();
        let mut vlans = KernelVlans::new();
        for e in port["vlans"].as_array().into_iter().flatten() {
            let first = e["vlan"].as_u64().unwrap() as u16;
            let last = e
                .get("vlanEnd")
                .and_then(|x| x.as_u64())
                .unwrap_or(first as u64) as u16;
            let flags: Vec<&str> = e["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .collect();
            for vid in first..=last {
                vlans.insert(
                    vid,
                    (flags.contains(&"PVID"), flags.contains(&"Egress Untagged")),
                );
            }
        }
        map.insert(name, vlans);
    }
    map
}

/// One port's VLANs in the VM's own namespace, as `describe` writes them.
pub fn root_port(port: &str) -> String {
    describe(kernel_vlans_in(None).get(port).cloned().unwrap_or_default())
}

/// Polls `check` every 100 ms until it is true or `secs` pass; returns whether it became true.
pub fn wait_for(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let dels: Vec<String> = self
            .namespaces
            .iter()
            .rev()
            .map(|ns| format!("netns del {ns}"))
            .collect();
        let _ = std::panic::catch_unwind(|| ip_batch(None, &dels));
    }
}

/// `"1PU 100 200-300"`: VIDs in ranges of equal flags.
pub fn describe(vlans: KernelVlans) -> String {
    let mut parts: Vec<(u16, u16, (bool, bool))> = Vec::new();
    for (vid, flags) in vlans {
        match parts.last_mut() {
            Some((_, last, f)) if *last + 1 == vid && *f == flags && !flags.0 => *last = vid,
            _ => parts.push((vid, vid, flags)),
        }
    }
    parts
        .into_iter()
        .map(|(a, b, (p, u))| {
            let r = if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            };
            format!(
                "{r}{}{}",
                if p { "P" } else { "" },
                if u { "U" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `from` reaches `to` with real frames: one reply within two seconds (a request
/// every 0.2 s meanwhile, so ARP has time).
pub fn ping(from: &Endpoint, to: &Endpoint) -> bool {
    in_ns(&from.ns, "ping")
        .args(["-q", "-n", "-c", "1", "-i", "0.2", "-w", "2", &to.ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Pings every pair (many at once), prints the matrix, and panics if any pair's
/// reachability differs from "same VLAN".
pub fn assert_ping_matrix(endpoints: &[Endpoint]) -> String {
    let mut pairs = Vec::new();
    for (i, a) in endpoints.iter().enumerate() {
        for b in endpoints.iter().skip(i + 1) {
            pairs.push((a.clone(), b.clone()));
        }
    }
    let mut results: BTreeMap<(String, String), bool> = BTreeMap::new();
    for chunk in pairs.chunks(24) {
        let handles: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|(a, b)| {
                std::thread::spawn(move || ((a.label.clone(), b.label.clone()), ping(&a, &b)))
            })
            .collect();
        for h in handles {
            let (k, ok) = h.join().unwrap();
            results.insert(k, ok);
        }
    }
    let w = endpoints
        .iter()
        .map(|e| e.label.len() + 6)
        .max()
        .unwrap_or(8)
        .max(8);
    let mut text = format!("{:w$}", "");
    for e in endpoints {
        text.push_str(&format!(" {:>w$}", format!("{}/{}", e.label, e.vlan)));
    }
    text.push('\n');
    let mut wrong = Vec::new();
    for a in endpoints {
        text.push_str(&format!("{:w$}", format!("{}/{}", a.label, a.vlan)));
        for b in endpoints {
            let cell = if a.label == b.label {
                "-".to_string()
            } else {
                let ok = results
                    .get(&(a.label.clone(), b.label.clone()))
                    .or_else(|| results.get(&(b.label.clone(), a.label.clone())))
                    .copied()
                    .unwrap();
                let want = a.vlan == b.vlan;
                if ok != want && a.label < b.label {
                    wrong.push(format!(
                        "{} (VLAN {}) -> {} (VLAN {}): {} but expected {}",
                        a.label,
                        a.vlan,
                        b.label,
                        b.vlan,
                        if ok { "reached" } else { "unreachable" },
                        if want { "reachable" } else { "isolated" }
                    ));
                }
                match (ok, want) {
                    (true, true) => "ok".into(),
                    (false, false) => "x".into(),
                    (true, false) => "LEAK".into(),
                    (false, true) => "LOST".into(),
                }
            };
            text.push_str(&format!(" {cell:>w$}"));
        }
        text.push('\n');
    }
    println!("{text}");
    assert!(
        wrong.is_empty(),
        "ping matrix is wrong:\n{}\n{text}",
        wrong.join("\n")
    );
    text
}
