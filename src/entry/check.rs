//! `virt-vlan check`: is this host ready — config valid, bridges present, kernel able to filter
//! VLANs, filtering on, uplinks and static ports where they should be and carrying the VIDs the
//! config asks (and, on demand, every VID a local guest uses) — would any guest be cut off
//! because no uplink or the bridge itself carries its VLAN, is any guest isolated for asking
//! for a VLAN its bridge does not allow, does any guest carry libvirt's own `<vlan>` on a
//! bridge that does not filter VLANs (libvirt accepts it silently); and around libvirt: are
//! virt-vlan's hooks installed and executable for the running libvirt (and older than the
//! daemon, which looks for hooks when it starts), is the AppArmor rule there where AppArmor
//! confines libvirtd, and is a watcher running where guests have `type='bridge'` interfaces
//! (their hot-plug runs no hook). Pure findings: what the host looks like comes in as
//! arguments; `probe` reads it.

pub mod probe;

use crate::config::{Config, HostPort};
use crate::intent::Role;
use crate::ownership::Record;
use crate::port_vlans::PortVlans;
use crate::state::HostState;
use crate::vid::VidSet;
use std::fmt;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub level: Level,
    /// Stable, for scripts: `config`, `bridge`, `kernel`, `vlan-filtering`, `default-pvid`,
    /// `uplink`, `port`, `carried`, `cut-off`, `isolated`, `libvirt-vlan`, `libvirt`, `hooks`,
    /// `apparmor`, `watcher` (and `runtime` when the check itself could not run).
    pub id: &'static str,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        };
        write!(f, "{tag}: {}", self.message)
    }
}

/// `check`'s exit code for `findings`: 1 if any error, else 3 if `strict` and any warning,
/// else 0. (2, bad input, comes from the config failing to load.)
pub fn exit_code(findings: &[Finding], strict: bool) -> u8 {
    match findings.iter().map(|f| f.level).max() {
        Some(Level::Error) => 1,
        Some(Level::Warning) if strict => 3,
        _ => 0,
    }
}

/// `check --json`'s document.
pub fn json_report(findings: &[Finding], exit: u8, bad_input: bool) -> String {
    let count = |l| findings.iter().filter(|f| f.level == l).count();
    let status = if bad_input {
        "bad-input"
    } else {
        match findings.iter().map(|f| f.level).max() {
            Some(Level::Error) => "error",
            Some(Level::Warning) => "warning",
            _ => "ok",
        }
    };
    let doc = serde_json::json!({
        "status": status,
        "exit": exit,
        "counts": {
            "ok": count(Level::Ok),
            "warning": count(Level::Warning),
            "error": count(Level::Error),
        },
        "findings": findings,
    });
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes")
}

pub use crate::guests::LibvirtVlanUse;

/// What `check` knows about the host around the kernel's bridges (read by `probe`).
#[derive(Clone, Debug, Default)]
pub struct HostFacts {
    /// libvirt, when a daemon of it runs or listens here; `None`: hooks are not checked.
    pub libvirt: Option<Libvirt>,
    /// For each hooked driver (`install::HOOKED`), its `.d/virt-vlan` entry and main hook.
    pub hooks: Vec<HookEntries>,
    /// `Some` when AppArmor is on and confines libvirtd (its profile is there).
    pub apparmor: Option<AppArmor>,
    /// pids of running `virt-vlan watch` daemons.
    pub watchers: Vec<u32>,
    /// Running guests' `type='bridge'` interfaces (not a network's): their hot-plug runs no
    /// hook.
    pub bridge_interfaces: Vec<BridgeInterface>,
}

#[derive(Clone, Debug, Default)]
pub struct Libvirt {
    /// `(major, minor)` from `libvirtd --version`, if it answered.
    pub version: Option<(u32, u32)>,
    /// Running daemons (`libvirtd`, `virtqemud`…).
    pub daemons: Vec<Daemon>,
}

#[derive(Clone, Debug)]
pub struct Daemon {
    pub name: String,
    pub pid: u32,
    pub started: Option<SystemTime>,
}

#[derive(Clone, Debug)]
pub struct HookEntries {
    pub driver: String,
    /// `/etc/libvirt/hooks/<driver>.d/virt-vlan`
    pub dot_d: Hook,
    /// `/etc/libvirt/hooks/<driver>`
    pub main: Hook,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub path: String,
    pub state: HookState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookState {
    Missing,
    /// Another program's hook.
    Foreign,
    /// A symlink of ours to `target`.
    Ours {
        target: String,
        /// The target is an executable file (a dangling link is not).
        executable: bool,
        /// When the entry was made.
        since: Option<SystemTime>,
    },
}

#[derive(Clone, Debug)]
pub struct AppArmor {
    /// The local file libvirtd's profile includes.
    pub local: String,
    /// Whether libvirtd's profile is loaded in the kernel (`None`: cannot tell).
    pub loaded: Option<bool>,
    /// The binaries virt-vlan's rule in `local` lets libvirtd run (empty: no rule).
    pub rule_exes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeInterface {
    pub domain: String,
    pub interface: String,
    pub bridge: String,
}

type Push<'a> = dyn FnMut(Level, &'static str, String) + 'a;

pub fn check(
    config: &Config,
    state: &HostState,
    record: &Record,
    libvirt_vlans: &[LibvirtVlanUse],
    host: &HostFacts,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push =
        |level: Level, id: &'static str, message: String| out.push(Finding { level, id, message });
    push(
        Level::Ok,
        "config",
        format!(
            "config {} is valid: {} bridge(s), {} static port(s)",
            config.path,
            config.bridges.len(),
            config.ports.len()
        ),
    );
    for name in config.bridges.keys() {
        check_bridge(config, state, record, name, &mut push);
    }
    for (bridge, port, rec) in record.iter() {
        if rec.origin.what.starts_with(crate::intent::ISOLATED) {
            push(
                Level::Error,
                "isolated",
                format!(
                    "bridge {bridge}: port {port} ({}) is in no VLAN",
                    rec.origin
                ),
            );
        }
    }
    for u in libvirt_vlans {
        // not a Linux bridge (Open vSwitch takes <vlan> natively) or not there: not ours
        let Some(b) = state.bridges.get(&u.bridge) else {
            continue;
        };
        if !(b.settings.vlan_supported && b.settings.vlan_filtering) {
            push(
                Level::Warning,
                "libvirt-vlan",
                format!(
                    "domain {} interface {}: {} on bridge {}, which does not filter VLANs: \
                     libvirt accepts it but nothing enforces it; manage the bridge with \
                     virt-vlan ([bridges.{}]) or switch its vlan_filtering on",
                    u.domain, u.interface, u.what, u.bridge, u.bridge
                ),
            );
        }
    }
    let hooked = check_hooks(host, &mut push);
    check_apparmor(host, &hooked, &mut push);
    check_watcher(config, host, &mut push);
    out
}

/// One managed bridge: there, able to filter, filtering, its settings, its uplinks and static
/// ports in place, what its uplinks and own port carry, and guests cut off from the uplinks.
fn check_bridge(config: &Config, state: &HostState, record: &Record, name: &str, push: &mut Push) {
    let bc = &config.bridges[name];
    let Some(bs) = state.bridges.get(name) else {
        push(
            Level::Error,
            "bridge",
            format!("{}: bridge {name} does not exist", bc.at),
        );
        return;
    };
    if !bs.settings.vlan_supported {
        push(Level::Error, "kernel", crate::state::vlan_unsupported(name));
        return;
    }
    for port in &bs.every_vlan {
        push(
            Level::Warning,
            "every-vlan",
            format!(
                "bridge {name} ({}): port {port} carries every VLAN (a trunk with an empty \
                 `trunks` list, which Open vSwitch reads as all of them); give it its VLANs \
                 in the config (`[[ports]]`, an uplink or `self`) or with libvirt, or set \
                 its trunks",
                bs.kind.describe()
            ),
        );
    }
    if bs.settings.vlan_filtering != bc.vlan_filtering {
        push(
            Level::Error,
            "vlan-filtering",
            format!(
                "bridge {name}: vlan_filtering is {}, the config wants {}; run `virt-vlan apply`",
                onoff(bs.settings.vlan_filtering),
                onoff(bc.vlan_filtering)
            ),
        );
    } else {
        push(
            Level::Ok,
            "vlan-filtering",
            format!("bridge {name}: vlan_filtering {}", onoff(bc.vlan_filtering)),
        );
    }
    if let Some(p) = bc.default_pvid.filter(|p| *p != bs.settings.default_pvid) {
        push(
            Level::Warning,
            "default-pvid",
            format!(
                "bridge {name}: default_pvid is {}, the config wants {p}; run `virt-vlan apply`",
                bs.settings.default_pvid
            ),
        );
    }
    for (up, hp) in &bc.uplinks {
        match state.bridge_of(up) {
            Some(b) if b.name == *name => {}
            Some(b) => push(
                Level::Error,
                "uplink",
                format!("{}: uplink {up} is a port of {}, not {name}", hp.at, b.name),
            ),
            None => push(
                Level::Error,
                "uplink",
                format!("{}: uplink {up} is not a port of {name}", hp.at),
            ),
        }
    }

    let guests = guests_of(config, state, record, name, push);

    // What the uplinks and the bridge's own port carry, if the kernel filters at all.
    if bs.settings.vlan_filtering {
        let mut used = VidSet::new();
        for (_, vids, _) in guests.iter().filter(|g| g.2) {
            used = used.union(vids);
        }
        for (up, hp) in &bc.uplinks {
            if let Some(p) = bs.ports.get(up) {
                carried(name, &format!("uplink {up}"), hp, &p.vlans, &used, push);
            }
        }
        if let Some(hp) = &bc.self_port {
            carried(name, "its own port", hp, &bs.self_vlans, &used, push);
        }
    }

    // Which VIDs leave the host: uplinks (everything, if any is on demand) and the bridge.
    let on_demand = bc.uplinks.values().any(|u| u.on_demand)
        || bc.self_port.as_ref().is_some_and(|s| s.on_demand);
    if !on_demand {
        let mut leave = VidSet::new();
        for hp in bc.uplinks.values().chain(bc.self_port.as_ref()) {
            leave = leave.union(&hp.vlans.members());
        }
        for (who, vids, _) in guests {
            let cut = vids.difference(&leave);
            if !cut.is_empty() {
                push(
                    Level::Warning,
                    "cut-off",
                    format!(
                        "bridge {name}: {who} uses VID {cut}, which no uplink and not the \
                         bridge itself carries: it reaches only local guests in that VLAN"
                    ),
                );
            }
        }
    }
}

/// Guest ports on bridge `name` — static ones from the config (an error for each that is on
/// no bridge) and recorded guests — with the VIDs they use and whether the port is alive (the
/// one the record is about is the one the kernel has now).
fn guests_of(
    config: &Config,
    state: &HostState,
    record: &Record,
    name: &str,
    push: &mut Push,
) -> Vec<(String, VidSet, bool)> {
    let mut guests = Vec::new();
    for p in config.ports_of_domain(None) {
        match state.bridge_of(&p.interface) {
            Some(b) if b.name == *name => guests.push((
                format!("port {} ({})", p.interface, p.at),
                p.vlans.members(),
                true,
            )),
            Some(_) => {}
            None if p.bridge.as_deref() == Some(name) || config.bridges.len() == 1 => push(
                Level::Error,
                "port",
                format!(
                    "{}: port {} is not a port of any bridge (missing or not enslaved)",
                    p.at, p.interface
                ),
            ),
            None => {}
        }
    }
    let ports = state.bridges.get(name).map(|b| &b.ports);
    for (port, rec) in record.ports_of(name) {
        if rec.role == Role::Guest && config.ports_of_domain(None).all(|p| p.interface != *port) {
            let alive = ports
                .and_then(|ps| ps.get(port))
                .is_some_and(|p| p.ifindex == rec.ifindex);
            guests.push((
                format!("port {port} ({})", rec.origin),
                rec.desired.members(),
                alive,
            ));
        }
    }
    guests
}

/// Whether an uplink or the bridge's own port carries, in the kernel, every VID the config
/// gives it (each as configured: PVID, untagged or tagged) and, on demand, every VID a guest
/// on the bridge uses.
fn carried(
    bridge: &str,
    who: &str,
    hp: &HostPort,
    kernel: &PortVlans,
    used: &VidSet,
    push: &mut Push,
) {
    let want = &hp.vlans;
    let mut missing = want.members().difference(&kernel.members());
    let differ: VidSet = want
        .members()
        .intersection(&kernel.members())
        .iter()
        .filter(|v| want.flags(*v) != kernel.flags(*v))
        .collect();
    let mut problems = Vec::new();
    if hp.on_demand {
        let wanted = used.difference(&kernel.members());
        missing = missing.union(&wanted);
    }
    if !missing.is_empty() {
        problems.push(format!("does not carry VID {missing}"));
    }
    if !differ.is_empty() {
        problems.push(format!(
            "carries VID {differ} otherwise than configured (kernel: {})",
            kernel.restricted_to(&differ)
        ));
    }
    if problems.is_empty() {
        push(
            Level::Ok,
            "carried",
            format!(
                "bridge {bridge}: {who} carries what the config asks ({}{})",
                want,
                if hp.on_demand { ", on demand" } else { "" }
            ),
        );
    } else {
        push(
            Level::Error,
            "carried",
            format!(
                "bridge {bridge}: {who} {}; the config ({}) wants {}{}; run `virt-vlan apply`",
                problems.join(" and "),
                hp.at,
                want,
                if hp.on_demand {
                    format!(" and on demand every VID local guests use ({used})")
                } else {
                    String::new()
                }
            ),
        );
    }
}

/// Hook entries for the running libvirt. Returns the binaries our working entries run.
fn check_hooks(host: &HostFacts, push: &mut Push) -> Vec<String> {
    let Some(lv) = &host.libvirt else {
        push(
            Level::Ok,
            "libvirt",
            "no libvirt daemon runs or listens here: hook entries not checked".into(),
        );
        return Vec::new();
    };
    let dot_d_runs = lv.version.is_none_or(|v| v >= (6, 5));
    let version = lv
        .version
        .map_or("unknown version".into(), |(a, b)| format!("{a}.{b}"));
    let mut working = Vec::new();
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    let mut newest: Option<(SystemTime, &str)> = None;
    for h in &host.hooks {
        let mut ok = false;
        for (entry, runs) in [(&h.dot_d, dot_d_runs), (&h.main, true)] {
            let Some((target, since)) = working_entry(entry, runs, &version, push) else {
                continue;
            };
            ok = true;
            if !targets.contains(target) {
                targets.push(target.clone());
            }
            if let Some(t) = since
                && newest.is_none_or(|(n, _)| t > n)
            {
                newest = Some((t, entry.path.as_str()));
            }
        }
        if ok {
            working.push(h.driver.as_str());
        } else {
            missing.push(h.driver.as_str());
        }
    }
    if working.is_empty() {
        push(
            Level::Warning,
            "hooks",
            format!(
                "libvirt ({version}) runs no virt-vlan hook: guests get their VLANs only from \
                 `virt-vlan apply` or the watcher, after they start; run `virt-vlan install`"
            ),
        );
        return targets;
    }
    if missing.is_empty() {
        push(
            Level::Ok,
            "hooks",
            format!(
                "libvirt ({version}) runs virt-vlan's hooks for {} ({})",
                working.join(", "),
                targets.join(", ")
            ),
        );
    } else {
        push(
            Level::Warning,
            "hooks",
            format!(
                "libvirt ({version}) runs virt-vlan's hooks for {} but none for {}; run \
                 `virt-vlan install`",
                working.join(", "),
                missing.join(", ")
            ),
        );
    }
    if let Some((t, path)) = newest {
        for d in &lv.daemons {
            if d.started.is_some_and(|s| s < t) {
                push(
                    Level::Warning,
                    "hooks",
                    format!(
                        "{} (pid {}) started before {path} was installed: libvirt looks for \
                         hooks when it starts, so it may not run them; restart it \
                         (`systemctl restart {}`)",
                        d.name, d.pid, d.name
                    ),
                );
            }
        }
    }
    targets
}

/// A hook entry of ours that libvirt runs: its target and when it was made. One that libvirt
/// cannot run (`runs`: libvirt runs entries of its kind) is an error.
fn working_entry<'h>(
    entry: &'h Hook,
    runs: bool,
    version: &str,
    push: &mut Push,
) -> Option<(&'h String, Option<SystemTime>)> {
    let HookState::Ours {
        target,
        executable,
        since,
    } = &entry.state
    else {
        return None;
    };
    if !executable {
        push(
            Level::Error,
            "hooks",
            format!(
                "hook {} -> {target}: not an executable file, so libvirt skips it; run \
                 `virt-vlan install` again",
                entry.path
            ),
        );
        return None;
    }
    if !runs {
        push(
            Level::Error,
            "hooks",
            format!(
                "hook {}: libvirt {version} runs no <driver>.d/ hooks (6.5 and later do); \
                 `virt-vlan install` installs the main hook instead",
                entry.path
            ),
        );
        return None;
    }
    Some((target, *since))
}

/// Where AppArmor confines libvirtd, its profile must let our hooks (`hooked`: the binaries
/// they run) use netlink and our files.
fn check_apparmor(host: &HostFacts, hooked: &[String], push: &mut Push) {
    let Some(aa) = &host.apparmor else {
        return;
    };
    if hooked.is_empty() {
        return; // no hook of ours runs under libvirtd's profile
    }
    let lacking: Vec<&String> = hooked
        .iter()
        .filter(|exe| !aa.rule_exes.contains(exe))
        .collect();
    if lacking.is_empty() {
        push(
            Level::Ok,
            "apparmor",
            format!("AppArmor: {} has virt-vlan's rule", aa.local),
        );
        return;
    }
    let what = if aa.rule_exes.is_empty() {
        "has no virt-vlan rule".to_string()
    } else {
        format!(
            "has virt-vlan's rule for {}, not for {}",
            aa.rule_exes.join(", "),
            lacking
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    push(
        if aa.loaded == Some(true) {
            Level::Error
        } else {
            Level::Warning
        },
        "apparmor",
        format!(
            "AppArmor confines libvirtd{} and {} {what}: the hooks will be denied netlink and \
             their state files; run `virt-vlan install`",
            match aa.loaded {
                Some(true) => "",
                Some(false) => " (once its profile is loaded)",
                None => " (if its profile is loaded)",
            },
            aa.local
        ),
    );
}

/// `type='bridge'` interfaces on managed bridges get their VLANs on hot-plug only from the
/// watcher: no hook runs for them.
fn check_watcher(config: &Config, host: &HostFacts, push: &mut Push) {
    let exposed: Vec<&BridgeInterface> = host
        .bridge_interfaces
        .iter()
        .filter(|i| config.bridges.contains_key(&i.bridge))
        .collect();
    if !host.watchers.is_empty() {
        let pids: Vec<String> = host.watchers.iter().map(|p| p.to_string()).collect();
        push(
            Level::Ok,
            "watcher",
            format!("virt-vlan watch is running (pid {})", pids.join(", ")),
        );
    } else if !exposed.is_empty() {
        let list: Vec<String> = exposed
            .iter()
            .map(|i| format!("{} {} on {}", i.domain, i.interface, i.bridge))
            .collect();
        push(
            Level::Warning,
            "watcher",
            format!(
                "no `virt-vlan watch` is running, and running guests have type='bridge' \
                 interfaces on managed bridges ({}): hot-plugging such an interface runs no \
                 libvirt hook, so its tap gets no VLANs; `systemctl enable --now \
                 virt-vlan-watch`",
                list.join("; ")
            ),
        );
    }
}

fn onoff(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port_vlans::PortVlans;
    use crate::state::{BridgeSettings, BridgeState, PortState};

    fn st(filtering: bool, supported: bool, ports: &[&str]) -> HostState {
        let mut b = BridgeState {
            name: "br0".into(),
            ifindex: 1,
            settings: BridgeSettings {
                vlan_supported: supported,
                vlan_filtering: filtering,
                default_pvid: 1,
                vlan_protocol: 0x8100,
            },
            ..Default::default()
        };
        for (i, p) in ports.iter().enumerate() {
            b.ports.insert(
                p.to_string(),
                PortState {
                    name: p.to_string(),
                    ifindex: 2 + i as u32,
                    mac: None,
                    // as applying CONF leaves them
                    vlans: match *p {
                        "eth0" => PortVlans::build(
                            None,
                            Default::default(),
                            VidSet::new(),
                            "100".parse().unwrap(),
                        )
                        .unwrap(),
                        "veth0" => PortVlans::build(
                            Some(100),
                            Default::default(),
                            VidSet::new(),
                            "300".parse().unwrap(),
                        )
                        .unwrap(),
                        _ => PortVlans::none(),
                    },
                },
            );
        }
        let mut h = HostState::default();
        h.bridges.insert("br0".into(), b);
        h
    }

    fn levels(f: &[Finding], level: Level) -> Vec<String> {
        f.iter()
            .filter(|x| x.level == level)
            .map(|x| x.message.clone())
            .collect()
    }

    const CONF: &str = "[bridges.br0.uplinks.eth0]\ntagged = \"100\"\n[[ports]]\ninterface = \"veth0\"\npvid = 100\ntagged = \"300\"\n";

    #[test]
    fn healthy_host_warns_only_about_cut_off_vlans() {
        let c = Config::parse("t.toml", CONF).unwrap();
        let f = check(
            &c,
            &st(true, true, &["eth0", "veth0"]),
            &Record::default(),
            &[],
            &HostFacts::default(),
        );
        assert!(levels(&f, Level::Error).is_empty(), "{f:?}");
        let w = levels(&f, Level::Warning);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("port veth0 (t.toml:3) uses VID 300"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn on_demand_uplinks_carry_everything() {
        let c = Config::parse(
            "t.toml",
            &CONF.replace(
                "tagged = \"100\"\n[[",
                "tagged = \"100\"\non_demand = true\n[[",
            ),
        )
        .unwrap();
        let f = check(
            &c,
            &st(true, true, &["eth0", "veth0"]),
            &Record::default(),
            &[],
            &HostFacts::default(),
        );
        assert!(levels(&f, Level::Warning).is_empty(), "{f:?}");
    }

    #[test]
    fn an_open_vswitch_port_that_trunks_every_vlan_is_a_warning() {
        let c = Config::parse("t.toml", CONF).unwrap();
        let mut h = st(true, true, &["eth0", "veth0", "vnet7"]);
        let b = h.bridges.get_mut("br0").unwrap();
        b.kind = crate::state::BridgeKind::OpenVswitch;
        b.every_vlan.insert("vnet7".into());
        let f = check(&c, &h, &Record::default(), &[], &HostFacts::default());
        let w = levels(&f, Level::Warning);
        assert!(
            w.iter().any(|m| m.contains("port vnet7 carries every VLAN")
                && m.contains("Open vSwitch bridge")),
            "{w:?}"
        );
    }

    #[test]
    fn kernel_without_vlan_filtering_is_named_exactly() {
        let c = Config::parse("t.toml", CONF).unwrap();
        let f = check(
            &c,
            &st(false, false, &["eth0", "veth0"]),
            &Record::default(),
            &[],
            &HostFacts::default(),
        );
        let e = levels(&f, Level::Error);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("built without CONFIG_BRIDGE_VLAN_FILTERING"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn filtering_off_missing_uplink_port_and_bridge() {
        let c = Config::parse("t.toml", CONF).unwrap();
        let f = check(
            &c,
            &st(false, true, &[]),
            &Record::default(),
            &[],
            &HostFacts::default(),
        );
        let e = levels(&f, Level::Error).join("\n");
        assert!(e.contains("vlan_filtering is off"), "{e}");
        assert!(
            e.contains("t.toml:1: uplink eth0 is not a port of br0"),
            "{e}"
        );
        assert!(
            e.contains("t.toml:3: port veth0 is not a port of any bridge"),
            "{e}"
        );
        let f = check(
            &c,
            &HostState::default(),
            &Record::default(),
            &[],
            &HostFacts::default(),
        );
        assert!(levels(&f, Level::Error)[0].contains("bridge br0 does not exist"));
    }

    #[test]
    fn libvirt_vlan_on_a_bridge_that_does_not_filter_is_a_warning_naming_it() {
        let c = Config::parse("t.toml", "[bridges.br0]\n").unwrap();
        let mut h = st(true, true, &[]);
        let mut br9 = h.bridges["br0"].clone();
        br9.name = "br9".into();
        br9.settings.vlan_filtering = false;
        h.bridges.insert("br9".into(), br9);
        let use_on = |bridge: &str| LibvirtVlanUse {
            domain: "vm1".into(),
            interface: "net0 (52:54:00:00:00:01)".into(),
            bridge: bridge.into(),
            what: "interface <vlan>".into(),
        };
        let uses = [use_on("br9"), use_on("br0"), use_on("ovsbr0")];
        let f = check(&c, &h, &Record::default(), &uses, &HostFacts::default());
        let warned: Vec<&Finding> = f
            .iter()
            .filter(|f| f.message.contains("does not filter VLANs"))
            .collect();
        assert_eq!(warned.len(), 1, "{f:?}");
        assert_eq!(warned[0].level, Level::Warning);
        assert!(
            warned[0].message.starts_with(
                "domain vm1 interface net0 (52:54:00:00:00:01): interface <vlan> on bridge br9"
            ),
            "{}",
            warned[0]
        );
    }

    #[test]
    fn an_isolated_guest_port_is_an_error_saying_why() {
        let c = Config::parse("t.toml", "[bridges.br0]\n").unwrap();
        let mut r = Record::default();
        r.set(
            "br0",
            "vnet3",
            crate::ownership::PortRecord {
                ifindex: 9,
                role: Role::Guest,
                owned: Default::default(),
                desired: Default::default(),
                origin: crate::intent::Origin {
                    what: "isolated: interface <vlan>: VID 3000 is not allowed".into(),
                    domain: Some("rogue".into()),
                    interface: Some("net0".into()),
                },
            },
        );
        let f = check(&c, &st(true, true, &[]), &r, &[], &HostFacts::default());
        let e = f.iter().find(|f| f.level == Level::Error).unwrap();
        assert!(
            e.message
                .contains("port vnet3 (rogue net0: isolated: interface <vlan>: VID 3000"),
            "{e}"
        );
    }

    #[test]
    fn uplinks_must_carry_what_the_config_asks_and_on_demand_what_guests_use() {
        let c = Config::parse("t.toml", CONF).unwrap();
        let run = |h: &HostState| check(&c, h, &Record::default(), &[], &HostFacts::default());
        let mut h = st(true, true, &["eth0", "veth0"]);
        let f = run(&h);
        assert!(
            f.iter().any(|f| f.level == Level::Ok
                && f.id == "carried"
                && f.message
                    == "bridge br0: uplink eth0 carries what the config asks (tagged 100)"),
            "{f:?}"
        );
        let eth0 = &mut h
            .bridges
            .get_mut("br0")
            .unwrap()
            .ports
            .get_mut("eth0")
            .unwrap()
            .vlans;
        *eth0 = PortVlans::access(100);
        let e = levels(&run(&h), Level::Error);
        assert_eq!(
            e,
            [
                "bridge br0: uplink eth0 carries VID 100 otherwise than configured (kernel: pvid 100 \
              untagged 100); the config (t.toml:1) wants tagged 100; run `virt-vlan apply`"
            ]
        );
        *h.bridges
            .get_mut("br0")
            .unwrap()
            .ports
            .get_mut("eth0")
            .unwrap() = PortState {
            name: "eth0".into(),
            ifindex: 2,
            mac: None,
            vlans: PortVlans::none(),
        };
        let e = levels(&run(&h), Level::Error);
        assert!(
            e[0].contains("uplink eth0 does not carry VID 100;"),
            "{e:?}"
        );
        // on demand: also every VID a guest on the bridge uses (veth0: 100 and 300)
        let c = Config::parse(
            "t.toml",
            &CONF.replace(
                "tagged = \"100\"\n[[",
                "tagged = \"100\"\non_demand = true\n[[",
            ),
        )
        .unwrap();
        let f = check(
            &c,
            &st(true, true, &["eth0", "veth0"]),
            &Record::default(),
            &[],
            &HostFacts::default(),
        );
        let e = levels(&f, Level::Error);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("uplink eth0 does not carry VID 300; the config (t.toml:1) wants tagged 100 and on demand every VID local guests use (100,300)"),
            "{e:?}"
        );
        // a bridge that does not filter carries everything: nothing said about VIDs
        let f = check(
            &c,
            &st(false, true, &["eth0", "veth0"]),
            &Record::default(),
            &[],
            &HostFacts::default(),
        );
        assert!(!f.iter().any(|f| f.id == "carried"), "{f:?}");
    }

    fn at(secs: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    }

    /// libvirt 9.0 started at t=1000, every hook entry ours (installed at t=500).
    fn facts() -> HostFacts {
        let ours = |path: String| Hook {
            path,
            state: HookState::Ours {
                target: "/usr/sbin/virt-vlan".into(),
                executable: true,
                since: at(500),
            },
        };
        HostFacts {
            libvirt: Some(Libvirt {
                version: Some((9, 0)),
                daemons: vec![Daemon {
                    name: "libvirtd".into(),
                    pid: 77,
                    started: at(1000),
                }],
            }),
            hooks: crate::install::HOOKED
                .iter()
                .map(|d| HookEntries {
                    driver: d.to_string(),
                    dot_d: ours(format!("/etc/libvirt/hooks/{d}.d/virt-vlan")),
                    main: Hook {
                        path: format!("/etc/libvirt/hooks/{d}"),
                        state: HookState::Missing,
                    },
                })
                .collect(),
            ..Default::default()
        }
    }

    fn about<'f>(f: &'f [Finding], id: &str) -> Vec<&'f Finding> {
        f.iter().filter(|f| f.id == id).collect()
    }

    #[test]
    fn hooks_for_the_running_libvirt() {
        let c = Config::parse("t.toml", "[bridges.br0]\n").unwrap();
        let h = st(true, true, &[]);
        let run = |facts: &HostFacts| check(&c, &h, &Record::default(), &[], facts);
        let f = run(&facts());
        let hooks = about(&f, "hooks");
        assert_eq!(hooks.len(), 1, "{f:?}");
        assert_eq!(hooks[0].level, Level::Ok);
        assert_eq!(
            hooks[0].message,
            "libvirt (9.0) runs virt-vlan's hooks for qemu, lxc, network, daemon (/usr/sbin/virt-vlan)"
        );
        // not running: not checked
        let f = run(&HostFacts::default());
        assert_eq!(about(&f, "libvirt")[0].level, Level::Ok);
        assert!(about(&f, "hooks").is_empty());
        // none installed: a warning
        let mut none = facts();
        for h in &mut none.hooks {
            h.dot_d.state = HookState::Missing;
        }
        let f = run(&none);
        assert_eq!(about(&f, "hooks")[0].level, Level::Warning);
        assert!(
            about(&f, "hooks")[0]
                .message
                .contains("runs no virt-vlan hook")
        );
        // some missing, one dangling
        let mut some = facts();
        some.hooks[1].dot_d.state = HookState::Missing;
        some.hooks[2].dot_d.state = HookState::Ours {
            target: "/usr/local/sbin/virt-vlan".into(),
            executable: false,
            since: at(500),
        };
        let f = run(&some);
        let e = levels(&f, Level::Error);
        assert_eq!(e.len(), 1, "{f:?}");
        assert!(
            e[0].starts_with("hook /etc/libvirt/hooks/network.d/virt-vlan -> /usr/local/sbin/virt-vlan: not an executable file"),
            "{e:?}"
        );
        let w = levels(&f, Level::Warning);
        assert!(
            w[0].contains("hooks for qemu, daemon but none for lxc, network"),
            "{w:?}"
        );
        // installed after libvirtd started
        let mut late = facts();
        late.hooks[0].dot_d.state = HookState::Ours {
            target: "/usr/sbin/virt-vlan".into(),
            executable: true,
            since: at(2000),
        };
        let w = levels(&run(&late), Level::Warning);
        assert!(
            w[0].starts_with(
                "libvirtd (pid 77) started before /etc/libvirt/hooks/qemu.d/virt-vlan was installed"
            ),
            "{w:?}"
        );
        // libvirt before 6.5 runs no .d/ entries; a main hook of ours is fine
        let mut old = facts();
        old.libvirt.as_mut().unwrap().version = Some((6, 0));
        let f = run(&old);
        assert_eq!(levels(&f, Level::Error).len(), 4, "{f:?}");
        for h in &mut old.hooks {
            h.dot_d.state = HookState::Missing;
            h.main.state = HookState::Ours {
                target: "/usr/sbin/virt-vlan".into(),
                executable: true,
                since: at(500),
            };
        }
        assert!(levels(&run(&old), Level::Error).is_empty());
    }

    #[test]
    fn apparmor_rule_where_apparmor_confines_libvirtd() {
        let c = Config::parse("t.toml", "[bridges.br0]\n").unwrap();
        let h = st(true, true, &[]);
        let run = |facts: &HostFacts| check(&c, &h, &Record::default(), &[], facts);
        let mut f = facts();
        f.apparmor = Some(AppArmor {
            local: "/etc/apparmor.d/local/usr.sbin.libvirtd".into(),
            loaded: Some(true),
            rule_exes: vec![],
        });
        let out = run(&f);
        let aa = about(&out, "apparmor");
        assert_eq!(aa.len(), 1);
        assert_eq!(aa[0].level, Level::Error);
        assert!(
            aa[0].message.starts_with(
                "AppArmor confines libvirtd and /etc/apparmor.d/local/usr.sbin.libvirtd has no \
                 virt-vlan rule: the hooks will be denied netlink"
            ),
            "{}",
            aa[0]
        );
        // a rule for another binary than the hooks run
        f.apparmor.as_mut().unwrap().rule_exes = vec!["/usr/local/sbin/virt-vlan".into()];
        let out = run(&f);
        assert!(
            about(&out, "apparmor")[0].message.contains(
                "has virt-vlan's rule for /usr/local/sbin/virt-vlan, not for /usr/sbin/virt-vlan"
            ),
            "{out:?}"
        );
        // profile not known to be loaded: a warning
        f.apparmor.as_mut().unwrap().loaded = None;
        assert_eq!(about(&run(&f), "apparmor")[0].level, Level::Warning);
        f.apparmor.as_mut().unwrap().rule_exes = vec!["/usr/sbin/virt-vlan".into()];
        assert_eq!(about(&run(&f), "apparmor")[0].level, Level::Ok);
        // no hook of ours: nothing runs under the profile, nothing to say
        let mut none = f.clone();
        none.apparmor.as_mut().unwrap().rule_exes.clear();
        for h in &mut none.hooks {
            h.dot_d.state = HookState::Missing;
        }
        assert!(about(&run(&none), "apparmor").is_empty());
    }

    #[test]
    fn a_watcher_where_guests_have_bridge_interfaces_on_managed_bridges() {
        let c = Config::parse("t.toml", "[bridges.br0]\n").unwrap();
        let h = st(true, true, &[]);
        let run = |facts: &HostFacts| check(&c, &h, &Record::default(), &[], facts);
        let mut f = facts();
        f.bridge_interfaces = vec![
            BridgeInterface {
                domain: "vm1".into(),
                interface: "net0 (52:54:00:00:00:01)".into(),
                bridge: "br0".into(),
            },
            BridgeInterface {
                domain: "vm2".into(),
                interface: "52:54:00:00:00:02".into(),
                bridge: "virbr0".into(),
            },
        ];
        let w = about(&run(&f), "watcher")
            .into_iter()
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].level, Level::Warning);
        assert!(
            w[0].message
                .contains("(vm1 net0 (52:54:00:00:00:01) on br0)"),
            "{}",
            w[0]
        );
        f.watchers = vec![4242];
        let w = about(&run(&f), "watcher")
            .into_iter()
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(
            (w[0].level, w[0].message.as_str()),
            (Level::Ok, "virt-vlan watch is running (pid 4242)")
        );
        f.watchers.clear();
        f.bridge_interfaces.remove(0);
        assert!(about(&run(&f), "watcher").is_empty());
    }

    #[test]
    fn exit_codes_by_severity_and_the_json_document() {
        let f = |level| Finding {
            level,
            id: "x",
            message: "m".into(),
        };
        assert_eq!(exit_code(&[f(Level::Ok)], true), 0);
        assert_eq!(exit_code(&[f(Level::Ok), f(Level::Warning)], false), 0);
        assert_eq!(exit_code(&[f(Level::Ok), f(Level::Warning)], true), 3);
        assert_eq!(exit_code(&[f(Level::Warning), f(Level::Error)], true), 1);
        let doc: serde_json::Value =
            serde_json::from_str(&json_report(&[f(Level::Ok), f(Level::Warning)], 0, false))
                .unwrap();
        assert_eq!(doc["status"], "warning");
        assert_eq!(doc["exit"], 0);
        assert_eq!(doc["counts"]["warning"], 1);
        assert_eq!(doc["findings"][1]["level"], "warning");
        assert_eq!(doc["findings"][1]["id"], "x");
        let doc: serde_json::Value =
            serde_json::from_str(&json_report(&[f(Level::Error)], 2, true)).unwrap();
        assert_eq!(doc["status"], "bad-input");
    }
}
