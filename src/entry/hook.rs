//! libvirt hook entry points: `virt-vlan hook <driver> <object> <op> <subop> [extra]`, or the
//! binary installed as `/etc/libvirt/hooks/<driver>` / `<driver>.d/virt-vlan` (argv[0]).
//! Each op runs the shared pipeline on its scope (one domain's ports, one network port, a
//! domain's release, the whole host) from what libvirt puts on stdin and what earlier hooks
//! told us — never asking libvirt itself, which would deadlock it.

use crate::apply::Mode;
use crate::config::{Config, OnError};
use crate::error::BadInput;
use crate::guests::{NetworkKnowledge, resolve};
use crate::intent::{GuestPort, ISOLATED, Origin, Scope};
use crate::libvirt_xml::{parse_domain, parse_hook_data};
use crate::netdev::parse_mac;
use crate::port_vlans::PortVlans;
use crate::session;
use crate::store::{Kind, Store};
use crate::switch::Switch;
use anyhow::{Context, Result, anyhow};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::hook_call::{Call, DRIVERS};

/// Where libvirt's hooks live; `VIRT_VLAN_ROOT` prefixes every system path (tests).
pub fn root() -> PathBuf {
    std::env::var_os("VIRT_VLAN_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

pub fn hooks_dir() -> PathBuf {
    root().join("etc/libvirt/hooks")
}

/// Runs one hook call; returns the exit code for libvirt.
pub fn run(call: &Call, config_path: &Path) -> i32 {
    let stdin = crate::text::read_limited(std::io::stdin(), "hook stdin", crate::text::MAX_STDIN);
    tracing::info!(
        "hook {} {} {} {}",
        call.driver,
        call.object,
        call.op,
        call.subop
    );
    let code = match op(call, config_path, stdin.as_deref()) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(
                "hook {} {} {} {}: {e:#}",
                call.driver,
                call.object,
                call.op,
                call.subop
            );
            if call.failure_aborts() {
                // libvirt shows this in the error of `virsh start`/`attach-interface`
                eprintln!("virt-vlan: {e:#}");
                1
            } else {
                0
            }
        }
    };
    if code != 0 || !call.main_hook {
        return code;
    }
    let stdin = stdin.as_deref().unwrap_or_default();
    crate::dispatcher::run(&hooks_dir(), call, stdin, config_timeout(config_path))
}

fn config_timeout(config_path: &Path) -> Duration {
    let secs = Config::load(config_path).map_or(30, |c| c.hooks.script_timeout);
    Duration::from_secs(secs)
}

/// The config, or none at all when virt-vlan is installed but not configured: then hooks
/// have nothing to do. A config that exists but is wrong is an error.
fn config(config_path: &Path) -> Result<Option<Config>> {
    if !config_path.exists() {
        tracing::info!("no config at {}: nothing to do", config_path.display());
        return Ok(None);
    }
    Ok(Some(Config::load(config_path)?))
}

/// The XML on stdin, or why it could not be read (too large, not UTF-8): an error only for
/// the ops that read it.
fn xml<'a>(stdin: Result<&'a str, &String>) -> Result<&'a str, BadInput> {
    stdin.map_err(|e| BadInput(e.clone()))
}

fn op(call: &Call, config_path: &Path, stdin: Result<&str, &String>) -> Result<()> {
    let store = Store::open_default();
    match (call.driver.as_str(), call.op.as_str()) {
        ("qemu" | "lxc" | "libxl" | "bhyve", "prepare") => remember_domain(&store, xml(stdin)?),
        ("qemu" | "lxc" | "libxl" | "bhyve", "start" | "started") => {
            let Some(config) = config(config_path)? else {
                return Ok(());
            };
            domain_start(&store, &config, xml(stdin)?, &call.op)
        }
        ("qemu" | "lxc" | "libxl" | "bhyve", "reconnect") => {
            // A failing reconnect hook makes libvirt kill the running guest: log, never fail.
            let Some(config) = config(config_path)? else {
                return Ok(());
            };
            if let Err(e) = xml(stdin)
                .map_err(anyhow::Error::from)
                .and_then(|x| domain_start(&store, &config, x, "reconnect"))
            {
                tracing::error!("reconnect {}: {e:#}", call.object);
            }
            Ok(())
        }
        ("qemu" | "lxc" | "libxl" | "bhyve", "migrate") => {
            // Also a filter: whatever goes to stdout replaces the domain XML. Print nothing.
            let Some(config) = config(config_path)? else {
                return Ok(());
            };
            migrate_check(&store, &config, xml(stdin)?)
        }
        ("qemu" | "lxc" | "libxl" | "bhyve", "stopped" | "release") => {
            let Some(config) = config(config_path)? else {
                return Ok(());
            };
            let r = domain_release(&store, &config, &call.object);
            if call.op == "release" {
                store.forget(Kind::Domain, &call.object);
            }
            r
        }
        ("network", "start" | "started" | "updated") => {
            let stdin = xml(stdin)?;
            let (net, _) = parse_hook_data(stdin)?;
            store.remember(Kind::Network, &net.name, stdin)?;
            if call.op == "start" {
                return Ok(());
            }
            let Some(config) = config(config_path)? else {
                return Ok(());
            };
            // re-applying must not stop the network from starting: log only
            if let Err(e) = network_reapply(&store, &config, &net.name) {
                tracing::error!(
                    "network {} {}: re-applying its ports: {e:#}",
                    net.name,
                    call.op
                );
            }
            Ok(())
        }
        ("network", "port-created") => {
            let Some(config) = config(config_path)? else {
                return Ok(());
            };
            port_created(&store, &config, xml(stdin)?)
        }
        ("network", "port-deleted") => {
            let Some(config) = config(config_path)? else {
                return Ok(());
            };
            port_deleted(&store, &config, xml(stdin)?)
        }
        ("daemon", "start" | "reload") => {
            let Some(config) = config(config_path)? else {
                return Ok(());
            };
            host_reapply(&store, &config)
        }
        _ => Ok(()),
    }
}

fn remember_domain(store: &Store, stdin: &str) -> Result<()> {
    let d = parse_domain(stdin)?;
    store.remember(Kind::Domain, &d.name, stdin)
}

/// `start`/`started`/`reconnect`: put this domain's ports in their VLANs (on `started` and
/// `reconnect`, a converged port costs nothing: this verifies and repairs).
fn domain_start(store: &Store, config: &Config, stdin: &str, op: &str) -> Result<()> {
    let d = parse_domain(stdin)?;
    store.remember(Kind::Domain, &d.name, stdin)?;
    let knowledge = NetworkKnowledge::remembered(store);
    let applied = resolve(&d, config, &knowledge)
        .map_err(anyhow::Error::from)
        .and_then(|r| {
            for n in &r.notes {
                tracing::warn!("{n}");
            }
            apply_ports(store, config, &r.ports)
        });
    match applied {
        Ok(n) => {
            tracing::info!("{op} {}: {n} port(s) in their VLANs", d.name);
            Ok(())
        }
        Err(e) => match config.hooks.on_error {
            OnError::Abort => Err(e),
            OnError::Warn => {
                tracing::warn!(
                    "domain {} starts with its ports as they are ([hooks] on_error = \"warn\"): {e:#}",
                    d.name
                );
                Ok(())
            }
            OnError::Isolate => isolate(store, config, &d, &knowledge, e),
        },
    }
}

/// Applies guest ports (their bridges' uplinks and own ports follow); returns how many.
fn apply_ports(store: &Store, config: &Config, ports: &[GuestPort]) -> Result<usize> {
    if ports.is_empty() {
        return Ok(0);
    }
    let scope = Scope::Ports(ports.iter().map(|p| p.ifname.clone()).collect());
    // A port in violation is isolated by the run itself; the hook still fails for it.
    session::run(store, config, ports, &scope, Mode::Apply)?.policy_result()?;
    Ok(ports.len())
}

/// `on_error = "isolate"`: the domain's taps on managed bridges are stripped to no VLAN. A tap
/// that is not on a managed bridge (missing, say: often the very error) carries nothing and
/// is left out, so it cannot make the isolation fail too.
fn isolate(
    store: &Store,
    config: &Config,
    d: &crate::libvirt_xml::Domain,
    k: &NetworkKnowledge,
    why: anyhow::Error,
) -> Result<()> {
    let ports: Vec<GuestPort> = d
        .interfaces
        .iter()
        .filter(|i| {
            crate::sources::bridge_of(i, &k.view()).is_some_and(|b| config.bridges.contains_key(&b))
        })
        .filter_map(|i| {
            // libvirt ≥ 11 may have written the interface's <vlan> already: it goes too
            let libvirts = crate::sources::libvirt_vlan(d, i, &k.view())
                .ok()
                .flatten()
                .map(|(v, _)| v.members())
                .unwrap_or_default();
            Some(GuestPort {
                ifname: i.target.clone()?,
                vlans: PortVlans::none(),
                origin: Origin {
                    what: format!("{ISOLATED}: its VLANs could not be applied"),
                    domain: Some(d.name.clone()),
                    interface: Some(i.alias.clone().unwrap_or_else(|| i.mac.clone())),
                },
                replaceable: libvirts,
                identity: d.uuid.as_ref().map(|u| crate::intent::GuestIdentity {
                    vm_id: u.clone(),
                    mac: i.mac.clone(),
                }),
            })
        })
        .collect();
    let state = crate::host_switch::HostSwitch::open(config)?
        .read(&config.bridges.keys().cloned().collect())?;
    let (ports, absent): (Vec<GuestPort>, Vec<GuestPort>) = ports.into_iter().partition(|p| {
        state
            .bridge_of(&p.ifname)
            .is_some_and(|b| config.bridges.contains_key(&b.name))
    });
    for p in &absent {
        tracing::info!(
            "domain {}: {} is on no managed bridge; nothing to isolate there",
            d.name,
            p.ifname
        );
    }
    tracing::warn!(
        "domain {}: isolating {} port(s) ([hooks] on_error = \"isolate\"): {why:#}",
        d.name,
        ports.len()
    );
    apply_ports(store, config, &ports)
        .map(|_| ())
        .map_err(|e| anyhow!("{why:#}; isolating its ports failed too: {e:#}"))
}

/// `migrate begin` on the destination: can this host serve the guest's VLANs? Its bridges
/// must be managed, its VIDs allowed and carried out of the host (by an uplink, statically
/// or on demand), or the migration is refused before the guest is black-holed.
fn migrate_check(store: &Store, config: &Config, stdin: &str) -> Result<()> {
    let d = parse_domain(stdin)?;
    let k = NetworkKnowledge::remembered(store);
    let mut problems = Vec::new();
    for (iface, vlans, what) in crate::sources::winners(&d, config, &k.view())? {
        let label = format!("domain {} interface {} ({what})", d.name, iface.label());
        let Some(bridge) = crate::sources::bridge_of(&iface, &k.view()) else {
            problems.push(format!(
                "{label}: cannot tell which bridge it plugs into on this host"
            ));
            continue;
        };
        let Some(bc) = config.bridges.get(&bridge) else {
            problems.push(format!(
                "{label}: bridge {bridge} is not managed by virt-vlan on this host"
            ));
            continue;
        };
        let outside = vlans.members().difference(&bc.allowed);
        if !outside.is_empty() {
            problems.push(format!(
                "{label}: VID {outside} is not allowed on bridge {bridge} here (allowed = \"{}\")",
                bc.allowed
            ));
            continue;
        }
        let on_demand = bc.uplinks.values().any(|u| u.on_demand);
        if !on_demand {
            let mut carried = crate::vid::VidSet::new();
            for hp in bc.uplinks.values().chain(bc.self_port.as_ref()) {
                carried = carried.union(&hp.vlans.members());
            }
            let cut = vlans.members().difference(&carried);
            if !cut.is_empty() {
                problems.push(format!(
                    "{label}: VID {cut} leaves bridge {bridge} by no uplink here"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "this host cannot serve the guest's VLANs: {}",
            problems.join("; ")
        ))
    }
}

/// `stopped`/`release`: the domain's ports are given up; on-demand VIDs nobody else needs
/// leave the uplinks.
fn domain_release(store: &Store, config: &Config, domain: &str) -> Result<()> {
    let record = store.load_unlocked()?;
    let mine: Vec<(String, String)> = record
        .ports_of_domain(domain)
        .map(|(b, p, _)| (b.clone(), p.clone()))
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    let scope = Scope::Bridges {
        bridges: mine.iter().map(|(b, _)| b.clone()).collect(),
        release: mine.iter().map(|(_, p)| p.clone()).collect(),
    };
    session::run(store, config, &[], &scope, Mode::Apply)?;
    tracing::info!("released {} port(s) of {domain}", mine.len());
    Ok(())
}

/// A network changed: its guests' VLANs may have (portgroups); re-apply those whose taps
/// are there.
fn network_reapply(store: &Store, config: &Config, network: &str) -> Result<()> {
    let k = NetworkKnowledge::remembered(store);
    let mut nl = crate::host_switch::HostSwitch::open(config)?;
    let state = nl.read(&config.bridges.keys().cloned().collect())?;
    let mut ports = Vec::new();
    for (_, xml) in store.remembered(Kind::Domain) {
        let Ok(d) = parse_domain(&xml) else { continue };
        if !d
            .interfaces
            .iter()
            .any(|i| i.network.as_deref() == Some(network))
        {
            continue;
        }
        let r = resolve(&d, config, &k)?;
        ports.extend(
            r.ports
                .into_iter()
                .filter(|p| state.bridge_of(&p.ifname).is_some()),
        );
    }
    apply_ports(store, config, &ports).map(|_| ())
}

/// `port-created`: libvirt waits for this hook and creates the tap afterwards, so the work
/// goes to a detached helper that waits for the tap to join its bridge. What can be decided
/// now (the port's VLANs are malformed or not allowed) refuses the port now.
fn port_created(store: &Store, config: &Config, stdin: &str) -> Result<()> {
    let (net, port) = parse_hook_data(stdin)?;
    let port = port.ok_or_else(|| BadInput("port-created without <networkport>".into()))?;
    store.remember(Kind::Network, &net.name, stdin)?;
    store.remember(Kind::Port, &port.uuid, stdin)?;
    let Some(bc) = port
        .bridge
        .as_ref()
        .or(net.bridge.as_ref())
        .and_then(|b| config.bridges.get(b))
    else {
        return Ok(());
    };
    // What can be decided without the tap is decided now: malformed or forbidden VLANs
    // refuse the port (and so the start or the hot-plug).
    let (mut d, idx) = port_domain(store, &port, &net.name)?;
    d.interfaces = vec![d.interfaces.swap_remove(idx)];
    for (i, v, what) in
        crate::sources::winners(&d, config, &NetworkKnowledge::remembered(store).view())?
    {
        let outside = v.members().difference(&bc.allowed);
        if !outside.is_empty() {
            return Err(BadInput(format!(
                "domain {} interface {} ({what}): VID {outside} is not allowed on bridge {} (allowed = \"{}\" at {})",
                d.name,
                i.label(),
                bc.name,
                bc.allowed,
                bc.at
            ))
            .into());
        }
    }
    spawn_waiter(&port.uuid)
}

/// The domain a network port belongs to, as a hook last saw it (or a bare one), with the
/// port's interface in it even when it was just hot-plugged.
fn port_domain(
    store: &Store,
    port: &crate::libvirt_xml::NetPort,
    network: &str,
) -> Result<(crate::libvirt_xml::Domain, usize)> {
    let owner = port.owner.clone().unwrap_or_else(|| "-".to_string());
    let mut d = match store.recall(Kind::Domain, &owner) {
        Some(xml) => parse_domain(&xml).map_err(|e| {
            let path = store.path_of(Kind::Domain, &owner);
            BadInput(format!("{} (as remembered in {})", e.0, path.display()))
        })?,
        None => crate::libvirt_xml::Domain {
            name: owner,
            uuid: None,
            interfaces: Vec::new(),
            metadata: Ok(Vec::new()),
        },
    };
    let idx = match d.interfaces.iter().position(|i| i.mac == port.mac) {
        Some(i) => i,
        None => {
            d.interfaces.push(crate::libvirt_xml::Iface {
                mac: port.mac.clone(),
                target: None,
                alias: None,
                kind: "network".into(),
                bridge: port.bridge.clone(),
                network: Some(network.to_string()),
                portgroup: port.group.clone(),
                portid: Some(port.uuid.clone()),
                vlan: port.vlan.clone(),
                line: 0,
            });
            d.interfaces.len() - 1
        }
    };
    if d.interfaces[idx].portgroup.is_none() {
        d.interfaces[idx].portgroup = port.group.clone();
    }
    Ok((d, idx))
}

/// Starts `virt-vlan hook-wait-port <uuid>` in a new session with stdio closed, so libvirt,
/// which waits for the hook's exit and for its stdout/stderr to close, is not held up.
fn spawn_waiter(uuid: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find my own executable")?;
    let mut c = std::process::Command::new(exe);
    c.arg("hook-wait-port").arg(uuid);
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c.spawn().context("cannot start the port helper")?;
    Ok(())
}

/// The detached helper: waits (on link notifications, not polling) for the tap of network
/// port `uuid` to join a managed bridge, then applies its VLANs — unless a domain hook has
/// already done so. Gives up after `[hooks] port_wait` seconds with a logged error.
pub fn wait_port(config_path: &Path, uuid: &str) -> Result<()> {
    let store = Store::open_default();
    let Some(config) = config(config_path)? else {
        return Ok(());
    };
    let xml = store
        .recall(Kind::Port, uuid)
        .ok_or_else(|| anyhow!("port {uuid}: nothing remembered about it"))?;
    let (net, port) = parse_hook_data(&xml).map_err(|e| {
        let path = store.path_of(Kind::Port, uuid);
        BadInput(format!("{} (as remembered in {})", e.0, path.display()))
    })?;
    let port = port.ok_or_else(|| anyhow!("port {uuid}: no <networkport>"))?;
    let guest_mac = parse_mac(&port.mac).ok_or_else(|| anyhow!("port {uuid}: bad MAC"))?;
    let mut events = crate::linkwatch::LinkEvents::subscribe()?;
    let managed: BTreeSet<String> = config.bridges.keys().cloned().collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(config.hooks.port_wait);
    let mut nl = crate::netlink::Netlink::open()?;
    let tap = loop {
        let state = nl.read(&managed)?;
        let found = state
            .bridges
            .values()
            .filter(|b| managed.contains(&b.name))
            .find_map(|b| {
                b.ports
                    .values()
                    .find(|p| {
                        p.mac
                            .is_some_and(|m| crate::linkwatch::tap_of_guest(&m, &guest_mac))
                    })
                    .map(|p| (b.name.clone(), p.name.clone(), p.ifindex))
            });
        if let Some(f) = found {
            break f;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(anyhow!(
                "port {uuid} ({} of {}): no tap with its MAC joined a managed bridge within {}s",
                port.mac,
                port.owner.as_deref().unwrap_or("?"),
                config.hooks.port_wait
            ));
        }
        // any link notification may be the one: look again
        events.wait(Some(left))?;
    };
    let (bridge, ifname, ifindex) = tap;
    let record = store.load_unlocked()?;
    if record
        .get(&bridge, &ifname)
        .is_some_and(|r| r.ifindex == ifindex)
    {
        tracing::info!("port {uuid}: {ifname} already done by the domain's hook");
        return Ok(());
    }
    let (mut d, idx) = port_domain(&store, &port, &net.name)?;
    d.interfaces[idx].target = Some(ifname.clone());
    // only this interface: the domain's others are its hooks' business
    d.interfaces = vec![d.interfaces.swap_remove(idx)];
    let r = resolve(&d, &config, &NetworkKnowledge::remembered(&store))?;
    if r.ports.is_empty() {
        tracing::info!(
            "port {uuid}: {ifname} on {bridge} has no VLAN source; left as the kernel made it"
        );
        return Ok(());
    }
    apply_ports(&store, &config, &r.ports)?;
    tracing::info!(
        "port {uuid}: {ifname} on {bridge} in its VLANs ({})",
        r.ports[0].origin
    );
    settle(&store, &config, &mut events, ifindex, &r.ports)
}

/// How long the port helper keeps watching a tap after applying: libvirt ≥ 11 writes the
/// interface's `<vlan>` onto the tap itself, one request per VID, and may do so after the
/// helper saw the tap join its bridge.
const SETTLE: Duration = Duration::from_secs(3);

/// Re-applies `ports` whenever the tap `ifindex` changes within [`SETTLE`], so what libvirt
/// wrote after us is replaced too (a converged re-apply writes nothing).
fn settle(
    store: &Store,
    config: &Config,
    events: &mut crate::linkwatch::LinkEvents,
    ifindex: u32,
    ports: &[GuestPort],
) -> Result<()> {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let touched = events.wait(Some(left))?.iter().any(|e| match e {
            crate::linkwatch::Event::Link(c) => c.ifindex == ifindex && !c.deleted,
            crate::linkwatch::Event::Overrun => true,
        });
        if touched && let Err(e) = apply_ports(store, config, ports) {
            // the tap went away or left its bridge meanwhile: nothing left to settle
            tracing::info!("settling {}: {e:#}", ports[0].ifname);
            return Ok(());
        }
    }
}

/// `port-deleted`: the port's tap is gone (libvirt closes it first); forget what we knew and
/// prune on-demand VIDs nobody needs any more. A tap that is still there is not released:
/// `virsh update-device` creates and deletes a short-lived port with the same MAC as a live one.
fn port_deleted(store: &Store, config: &Config, stdin: &str) -> Result<()> {
    let (net, port) = parse_hook_data(stdin)?;
    let Some(port) = port else { return Ok(()) };
    store.forget(Kind::Port, &port.uuid);
    let Some(bridge) = port
        .bridge
        .clone()
        .or(net.bridge.clone())
        .filter(|b| config.bridges.contains_key(b))
    else {
        return Ok(());
    };
    let scope = Scope::Bridges {
        bridges: [bridge].into(),
        release: BTreeSet::new(),
    };
    session::run(store, config, &[], &scope, Mode::Apply)?;
    Ok(())
}

/// daemon `start`/`reload`: every managed bridge's settings, uplinks and own port, the
/// config's ports, and every guest port hooks told us about, without asking libvirt.
fn host_reapply(store: &Store, config: &Config) -> Result<()> {
    let mut nl = crate::host_switch::HostSwitch::open(config)?;
    let state = nl.read(&config.bridges.keys().cloned().collect())?;
    let g = crate::guests::gather(config, store, &state, false)?;
    for n in &g.notes {
        tracing::info!("{n}");
    }
    let outcome = session::run(store, config, &g.ports, &Scope::Host, Mode::Apply)?;
    g.refused_result()?;
    outcome.policy_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv0_tells_main_hook_from_dot_d_entry() {
        let a = args(&["vm1", "start", "begin", "-"]);
        let c = Call::from_argv0(Path::new("/etc/libvirt/hooks/qemu"), &a).unwrap();
        assert_eq!(
            (
                c.driver.as_str(),
                c.object.as_str(),
                c.op.as_str(),
                c.subop.as_str(),
                c.main_hook
            ),
            ("qemu", "vm1", "start", "begin", true)
        );
        let c = Call::from_argv0(Path::new("/etc/libvirt/hooks/network.d/virt-vlan"), &a).unwrap();
        assert_eq!((c.driver.as_str(), c.main_hook), ("network", false));
        assert!(Call::from_argv0(Path::new("/usr/sbin/virt-vlan"), &a).is_none());
        assert!(Call::from_argv0(Path::new("/etc/foo.d/virt-vlan"), &a).is_none());
        let c = Call::new("daemon", &args(&["-", "start"]), false);
        assert_eq!(c.subop, "-", "missing values are -");
    }

    #[test]
    fn which_failures_libvirt_honours() {
        let c =
            |d: &str, op: &str| Call::new(d, &args(&["x", op, "begin"]), false).failure_aborts();
        assert!(
            c("qemu", "start")
                && c("qemu", "started")
                && c("qemu", "prepare")
                && c("qemu", "migrate")
        );
        assert!(!c("qemu", "stopped") && !c("qemu", "release") && !c("qemu", "reconnect"));
        assert!(c("network", "port-created") && c("network", "started"));
        assert!(!c("network", "port-deleted") && !c("daemon", "start"));
    }
}
