//! Desired state: which VLANs every port in scope should carry and where that came from.
//! Pure: binds config and guest ports to the bridges the kernel reports, enforces the bridges'
//! `allowed` policy and computes on-demand uplinks. No I/O.

use crate::config::{Config, VlanProtocol};
use crate::error::BadInput;
use crate::ownership::Record;
use crate::port_vlans::{PortVlans, VlanFlags};
use crate::state::HostState;
use crate::vid::VidSet;
use anyhow::{Result, anyhow, bail};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::provenance::{Origin, Role};

/// A guest port whose tap name is known, with the VLANs its winning source gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestPort {
    pub ifname: String,
    pub vlans: PortVlans,
    pub origin: Origin,
    /// VIDs someone else put on this tap *for this guest* — libvirt ≥ 11 writes the
    /// interface's own (or its portgroup's, or its network's) `<vlan>` itself before our
    /// hooks run. The winning source replaces them: a port never carries two sources' union.
    pub replaceable: VidSet,
    /// The domain's UUID and the interface's MAC (lowercase), when known: on a switch that
    /// marks guest ports with them (Open vSwitch, `vm-id`/`attached-mac`), the port is found
    /// by these, not by its reusable name.
    pub identity: Option<GuestIdentity>,
}

/// Who a guest port belongs to, as libvirt marks it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GuestIdentity {
    pub vm_id: String,
    /// Lowercase `52:54:00:…`.
    pub mac: String,
}

impl GuestPort {
    /// A port whose VIDs only virt-vlan writes.
    pub fn new(ifname: impl Into<String>, vlans: PortVlans, origin: Origin) -> GuestPort {
        GuestPort {
            ifname: ifname.into(),
            vlans,
            origin,
            replaceable: VidSet::new(),
            identity: None,
        }
    }
}

/// The port a guest interface really has: on a switch that marks guest ports (Open vSwitch),
/// the one marked with its identity, whatever libvirt's XML calls it; a port of that name
/// marked for someone else is refused. Elsewhere, the name.
fn guest_port_name(state: &HostState, g: &GuestPort) -> Result<String> {
    let Some(id) = &g.identity else {
        return Ok(g.ifname.clone());
    };
    let marked = state
        .bridges
        .values()
        .flat_map(|b| b.guest_marks.iter())
        .find(|(_, m)| *m == id);
    if let Some((port, _)) = marked {
        return Ok(port.clone());
    }
    if let Some(other) = state
        .bridge_of(&g.ifname)
        .and_then(|b| b.guest_marks.get(&g.ifname))
    {
        bail!(
            "{}: port {} is marked as another guest's (vm-id {}, mac {}), not this interface's \
             (vm-id {}, mac {}); the name was reused",
            g.origin,
            g.ifname,
            other.vm_id,
            other.mac,
            id.vm_id,
            id.mac
        );
    }
    Ok(g.ifname.clone())
}

/// One port's desired VLANs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortIntent {
    pub role: Role,
    pub vlans: PortVlans,
    pub origin: Origin,
    /// VIDs on the port that are not ours by the record but may be taken away (see
    /// [`GuestPort::replaceable`]).
    pub replaceable: VidSet,
}

/// Bridge settings to enforce; `None` leaves the kernel's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DesiredSettings {
    pub vlan_filtering: bool,
    pub default_pvid: Option<u16>,
    pub vlan_protocol: Option<VlanProtocol>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeIntent {
    pub name: String,
    pub settings: DesiredSettings,
    /// Ports in scope, the bridge's own port under the bridge's name.
    pub ports: BTreeMap<String, PortIntent>,
    /// Recorded guest ports this run takes away (their owned VIDs are removed).
    pub released: BTreeSet<String>,
}

/// Desired state of every bridge in scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intent {
    pub bridges: BTreeMap<String, BridgeIntent>,
    /// Guest ports whose source asks for VIDs outside their bridge's `allowed`: each is
    /// isolated (in no VLAN) and the run reports the violation, while every other port is
    /// managed as usual.
    pub violations: Vec<String>,
    /// Guest ports a whole-host run learnt from libvirt whose taps were gone (or off their
    /// bridge) by the time this run read the switch: their guests are stopping or being
    /// re-plugged, so there is nothing to manage; each is noted, not an error.
    pub skipped: Vec<String>,
}

/// What an isolated port's origin says, before the reason.
pub const ISOLATED: &str = "isolated";

/// Which part of the host one run reconciles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every managed bridge and every port on it; recorded guest ports not in the intent any
    /// more are released.
    Host,
    /// These guest ports, plus settings, uplinks and own port of their bridges.
    Ports(BTreeSet<String>),
    /// Only settings, uplinks and own port of these bridges, after guests went away:
    /// recorded guest ports named in `release` are released (their owned VIDs removed if the
    /// port still exists) and no longer count for on-demand uplinks.
    Bridges {
        bridges: BTreeSet<String>,
        release: BTreeSet<String>,
    },
}

/// Builds the intent for `scope`.
///
/// `guests` are guest ports learnt from libvirt (or any other source) with their tap names;
/// the config's own `[[ports]]` without a `domain` are added here. Guest ports on bridges not
/// in the config, missing ports and bridges are errors (exit 1). A VID outside a bridge's
/// `allowed` is bad input (exit 2) for a port the config names; a libvirt guest's port that
/// asks for one is isolated instead and listed in [`Intent::violations`], so one guest in
/// violation never stops the others from being managed. In a whole-host run, a guest's tap
/// that went away since the caller learnt it is listed in [`Intent::skipped`].
pub fn resolve(
    config: &Config,
    state: &HostState,
    guests: &[GuestPort],
    record: &Record,
    scope: &Scope,
) -> Result<Intent> {
    let mut guest_ports: BTreeMap<String, (String, PortIntent)> = BTreeMap::new();
    let take_static = matches!(scope, Scope::Host);
    if take_static {
        for p in config.ports_of_domain(None) {
            let bridge = bind_port(config, state, &p.interface, p.bridge.as_deref())
                .map_err(|e| anyhow!("{}: port {}: {e}", p.at, p.interface))?;
            let origin = Origin::new(format!("config {}", p.at));
            guest_ports.insert(
                p.interface.clone(),
                (
                    bridge,
                    PortIntent {
                        role: Role::Guest,
                        vlans: p.vlans.clone(),
                        origin,
                        replaceable: VidSet::new(),
                    },
                ),
            );
        }
    }
    // libvirt's name for a guest port → the port its marks say it has (when they differ)
    let mut renamed: BTreeMap<&str, String> = BTreeMap::new();
    let mut skipped = Vec::new();
    for g in guests {
        let ifname = guest_port_name(state, g)?;
        // The caller learnt this tap from an earlier look at the host; in a whole-host run a
        // guest's tap that is gone (or off every bridge) now belongs to a guest that is
        // stopping: one guest going away must not fail the run for every other port.
        if take_static
            && g.origin.domain.is_some()
            && state.bridge_of(&ifname).is_none()
            && !state.bridges.contains_key(&ifname)
        {
            skipped.push(format!(
                "{}: tap {ifname} went away (the guest is stopping?); skipped",
                g.origin
            ));
            continue;
        }
        if ifname != g.ifname {
            renamed.insert(&g.ifname, ifname.clone());
        }
        // A guest's XML names its tap; it must not name a port the config gives a role of its
        // own (an uplink, or a port of no domain): the uplink would carry the guest's VIDs
        // on demand, and a hook would overwrite the static port.
        if let Some(b) = config
            .bridges
            .values()
            .find(|b| b.uplinks.contains_key(&ifname))
        {
            return Err(BadInput(format!(
                "{}: port {}: is the uplink of bridge {} ({}); a guest's interface cannot be it",
                g.origin, ifname, b.name, b.uplinks[&ifname].at
            ))
            .into());
        }
        if !take_static
            && let Some(p) = config.ports_of_domain(None).find(|p| p.interface == ifname)
        {
            return Err(BadInput(format!(
                "{}: port {}: is configured for no domain at {}; a guest's interface cannot be it",
                g.origin, ifname, p.at
            ))
            .into());
        }
        let bridge = bind_port(config, state, &ifname, None)
            .map_err(|e| anyhow!("{}: port {}: {e}", g.origin, ifname))?;
        if let Some((_, first)) = guest_ports.get(&ifname) {
            bail!(
                "port {} is given VLANs twice: by {} and by {}",
                ifname,
                first.origin,
                g.origin
            );
        }
        guest_ports.insert(
            ifname.clone(),
            (
                bridge,
                PortIntent {
                    role: Role::Guest,
                    vlans: g.vlans.clone(),
                    origin: g.origin.clone(),
                    replaceable: g.replaceable.clone(),
                },
            ),
        );
    }
    if let Scope::Ports(only) = scope {
        for name in only {
            let name = renamed.get(name.as_str()).unwrap_or(name);
            if !guest_ports.contains_key(name) {
                bail!("port {name} is in scope but nothing says which VLANs it carries");
            }
        }
    }

    // Policy: every guest VID within its bridge's `allowed`.
    let mut violations = Vec::new();
    for (name, (bridge, p)) in guest_ports.iter_mut() {
        let b = &config.bridges[bridge.as_str()];
        let outside = p.vlans.members().difference(&b.allowed);
        if outside.is_empty() {
            continue;
        }
        let why = format!(
            "VID {outside} is not allowed on bridge {bridge} (allowed = \"{}\" at {})",
            b.allowed, b.at
        );
        if p.origin.domain.is_none() {
            return Err(BadInput(format!("{}: port {name}: {why}", p.origin)).into());
        }
        violations.push(format!(
            "{}: port {name}: {why}; the port is isolated",
            p.origin
        ));
        // Whatever the source (or libvirt) put there goes; nothing else comes.
        p.replaceable = p.replaceable.union(&p.vlans.members());
        p.vlans = PortVlans::none();
        p.origin.what = format!("{ISOLATED}: {}: {why}", p.origin.what);
    }

    let bridges_in_scope: BTreeSet<String> = match scope {
        Scope::Host => config.bridges.keys().cloned().collect(),
        Scope::Ports(_) => guest_ports.values().map(|(b, _)| b.clone()).collect(),
        Scope::Bridges { bridges, .. } => bridges
            .iter()
            .filter(|b| config.bridges.contains_key(*b))
            .cloned()
            .collect(),
    };

    let mut intent = Intent {
        violations,
        skipped,
        ..Intent::default()
    };
    for name in bridges_in_scope {
        let bc = &config.bridges[&name];
        let bs = state
            .bridges
            .get(&name)
            .ok_or_else(|| anyhow!("{}: bridge {name} does not exist", bc.at))?;
        let mut ports = BTreeMap::new();
        for uplink in bc.uplinks.keys() {
            match state.bridge_of(uplink) {
                Some(b) if b.name == name => {}
                Some(b) => bail!(
                    "{}: uplink {uplink} of {name} is a port of bridge {}",
                    bc.uplinks[uplink].at,
                    b.name
                ),
                None => bail!(
                    "{}: uplink {uplink} of {name} is not a port of {name} (missing or not enslaved)",
                    bc.uplinks[uplink].at
                ),
            }
        }
        // Guests of this bridge that uplinks carry on demand: this run's, plus recorded ones
        // that still exist and are not being replaced or released.
        let mut released = BTreeSet::new();
        let mut on_demand = VidSet::new();
        for (port, (b, p)) in &guest_ports {
            if *b == name {
                on_demand = on_demand.union(&p.vlans.members());
                ports.insert(port.clone(), p.clone());
            }
        }
        for (port, rec) in record.ports_of(&name) {
            if rec.role != Role::Guest || ports.contains_key(port) {
                continue;
            }
            let alive = bs.ports.get(port).is_some_and(|p| p.ifindex == rec.ifindex);
            let releasing = match scope {
                Scope::Host => true,
                Scope::Bridges { release, .. } => release.contains(port),
                Scope::Ports(_) => false,
            };
            if releasing && alive {
                released.insert(port.clone());
            } else if alive && !releasing {
                on_demand = on_demand.union(&rec.desired.members());
            }
        }
        for (uplink, hp) in &bc.uplinks {
            ports.insert(
                uplink.clone(),
                host_port_intent(Role::Uplink, hp, &on_demand),
            );
        }
        if let Some(hp) = &bc.self_port {
            ports.insert(
                name.clone(),
                host_port_intent(Role::SelfPort, hp, &on_demand),
            );
        }
        intent.bridges.insert(
            name.clone(),
            BridgeIntent {
                name: name.clone(),
                settings: DesiredSettings {
                    vlan_filtering: bc.vlan_filtering,
                    default_pvid: bc.default_pvid,
                    vlan_protocol: bc.vlan_protocol,
                },
                ports,
                released,
            },
        );
    }
    Ok(intent)
}

/// The managed bridge `port` is enslaved to, checked against the bridge the config names.
fn bind_port(
    config: &Config,
    state: &HostState,
    port: &str,
    want_bridge: Option<&str>,
) -> Result<String> {
    let Some(b) = state.bridge_of(port) else {
        if state.bridges.contains_key(port) {
            bail!("is a bridge, not a bridge port");
        }
        bail!("no such bridge port (the interface is missing or not enslaved to a bridge)");
    };
    if !config.bridges.contains_key(&b.name) {
        bail!(
            "is a port of bridge {}, which virt-vlan does not manage (no [bridges.{}] in {})",
            b.name,
            b.name,
            config.path
        );
    }
    if let Some(want) = want_bridge
        && want != b.name
    {
        bail!(
            "is a port of bridge {}, not of {want} as configured",
            b.name
        );
    }
    Ok(b.name.clone())
}

/// An uplink's or the bridge's own port's VLANs: the configured ones, plus (on demand) every
/// guest VID not already configured, tagged.
fn host_port_intent(role: Role, hp: &crate::config::HostPort, on_demand: &VidSet) -> PortIntent {
    let mut vlans = hp.vlans.clone();
    let mut what = format!("config {}", hp.at);
    if hp.on_demand {
        let extra = on_demand.difference(&vlans.members());
        for v in extra.iter() {
            vlans.set(
                v,
                VlanFlags {
                    pvid: false,
                    untagged: false,
                },
            );
        }
        if !extra.is_empty() {
            what.push_str(&format!(" + on demand {extra}"));
        }
    }
    PortIntent {
        role,
        vlans,
        origin: Origin::new(what),
        replaceable: VidSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::PortRecord;
    use crate::state::{BridgeState, PortState};

    fn s(x: &str) -> VidSet {
        x.parse().unwrap()
    }

    fn config(text: &str) -> Config {
        Config::parse("t.toml", text).unwrap()
    }

    fn state(bridges: &[(&str, &[&str])]) -> HostState {
        let mut h = HostState::default();
        let mut idx = 1;
        for (b, ports) in bridges {
            let mut bs = BridgeState {
                name: b.to_string(),
                ifindex: idx,
                ..Default::default()
            };
            idx += 1;
            for p in *ports {
                bs.ports.insert(
                    p.to_string(),
                    PortState {
                        name: p.to_string(),
                        ifindex: idx,
                        mac: None,
                        vlans: PortVlans::access(1),
                    },
                );
                idx += 1;
            }
            h.bridges.insert(b.to_string(), bs);
        }
        h
    }

    const CONF: &str = r#"
[bridges.br0]
default_pvid = 0
allowed = "1-999"
[bridges.br0.self]
pvid = 1
tagged = "200"
[bridges.br0.uplinks.eth0]
pvid = 1
tagged = "100"
on_demand = true
[[ports]]
interface = "veth0"
pvid = 100
tagged = "200,300"
"#;

    #[test]
    fn host_scope_takes_config_ports_and_on_demand_uplinks() {
        let c = config(CONF);
        let st = state(&[("br0", &["eth0", "veth0", "vnet9"])]);
        let i = resolve(&c, &st, &[], &Record::default(), &Scope::Host).unwrap();
        let b = &i.bridges["br0"];
        assert_eq!(b.settings.default_pvid, Some(0));
        assert_eq!(
            b.ports["veth0"].vlans.to_string(),
            "pvid 100 untagged 100 tagged 200,300"
        );
        assert_eq!(b.ports["veth0"].origin.what, "config t.toml:12");
        let up = &b.ports["eth0"];
        assert_eq!(up.role, Role::Uplink);
        // static 1 (untagged pvid), 100 tagged, plus guest 200,300 on demand (100 already there)
        assert_eq!(up.vlans.to_string(), "pvid 1 untagged 1 tagged 100,200,300");
        assert!(
            up.origin.what.contains("on demand 200,300"),
            "{}",
            up.origin.what
        );
        // self is not on demand: exactly as configured
        assert_eq!(
            b.ports["br0"].vlans.to_string(),
            "pvid 1 untagged 1 tagged 200"
        );
        assert_eq!(b.ports["br0"].role, Role::SelfPort);
        // a port nobody configured is not in the intent at all
        assert!(!b.ports.contains_key("vnet9"));
    }

    #[test]
    fn a_whole_host_run_skips_a_guest_tap_that_went_away_and_a_hook_run_refuses_it() {
        let c = config(CONF);
        let st = state(&[("br0", &["eth0", "veth0", "vnet3"])]);
        let mut gone = GuestPort::new("vnet7", PortVlans::access(42), Origin::new("metadata"));
        gone.origin.domain = Some("web1".into());
        let mut here = GuestPort::new("vnet3", PortVlans::access(43), Origin::new("metadata"));
        here.origin.domain = Some("db1".into());
        let i = resolve(
            &c,
            &st,
            &[gone.clone(), here],
            &Record::default(),
            &Scope::Host,
        )
        .unwrap();
        assert_eq!(i.bridges["br0"].ports["vnet3"].vlans, PortVlans::access(43));
        assert_eq!(i.skipped.len(), 1);
        assert!(
            i.skipped[0].contains("tap vnet7 went away"),
            "{:?}",
            i.skipped
        );
        // a hook names the tap it was given: a missing one is an error there
        let scope = Scope::Ports(["vnet7".to_string()].into());
        let e = resolve(&c, &st, &[gone], &Record::default(), &scope).unwrap_err();
        assert!(e.to_string().contains("no such bridge port"), "{e}");
    }

    #[test]
    fn a_guest_port_is_found_by_libvirts_marks_not_by_a_reused_name() {
        let c = config(CONF);
        let mut st = state(&[("br0", &["eth0", "veth0", "vnet3", "vnet9"])]);
        let id = |vm: &str| GuestIdentity {
            vm_id: vm.into(),
            mac: "52:54:00:00:00:01".into(),
        };
        let b = st.bridges.get_mut("br0").unwrap();
        b.guest_marks.insert("vnet9".into(), id("web1"));
        b.guest_marks.insert("vnet3".into(), id("db1"));
        let mut g = GuestPort::new("vnet3", PortVlans::access(42), Origin::new("metadata"));
        g.identity = Some(id("web1"));
        let scope = Scope::Ports(["vnet3".to_string()].into());
        let i = resolve(&c, &st, &[g.clone()], &Record::default(), &scope).unwrap();
        assert_eq!(i.bridges["br0"].ports["vnet9"].vlans, PortVlans::access(42));
        assert!(!i.bridges["br0"].ports.contains_key("vnet3"));
        // the name points at another guest's port and its own is not there: refused
        st.bridges
            .get_mut("br0")
            .unwrap()
            .guest_marks
            .remove("vnet9");
        let e = resolve(&c, &st, &[g], &Record::default(), &Scope::Host)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vnet3") && e.contains("db1") && e.contains("reused"),
            "{e}"
        );
    }

    #[test]
    fn port_scope_counts_recorded_guests_on_demand_and_skips_static_ports() {
        let c = config(CONF);
        let st = state(&[("br0", &["eth0", "veth0", "vnet1", "vnet2"])]);
        let mut rec = Record::default();
        rec.set(
            "br0",
            "vnet2",
            PortRecord {
                ifindex: st.ifindex("br0", "vnet2").unwrap(),
                role: Role::Guest,
                owned: s("500"),
                desired: PortVlans::access(500),
                origin: Origin::new("metadata"),
            },
        );
        // a stale record (wrong ifindex: the tap was re-created) does not count
        rec.set(
            "br0",
            "vnet1",
            PortRecord {
                ifindex: 999,
                role: Role::Guest,
                owned: s("600"),
                desired: PortVlans::access(600),
                origin: Origin::new("metadata"),
            },
        );
        let g = GuestPort::new("vnet1", PortVlans::access(42), Origin::new("metadata"));
        let scope = Scope::Ports(["vnet1".to_string()].into());
        let i = resolve(&c, &st, &[g], &rec, &scope).unwrap();
        let b = &i.bridges["br0"];
        assert_eq!(b.ports.keys().collect::<Vec<_>>(), ["br0", "eth0", "vnet1"]);
        assert_eq!(b.ports["eth0"].vlans.tagged, s("42,100,500"));
        assert!(b.released.is_empty());
    }

    #[test]
    fn host_scope_releases_recorded_guests_no_longer_wanted() {
        let c = config(CONF);
        let st = state(&[("br0", &["eth0", "veth0", "vnet2"])]);
        let mut rec = Record::default();
        rec.set(
            "br0",
            "vnet2",
            PortRecord {
                ifindex: st.ifindex("br0", "vnet2").unwrap(),
                role: Role::Guest,
                owned: s("500"),
                desired: PortVlans::access(500),
                origin: Origin::new("metadata"),
            },
        );
        let i = resolve(&c, &st, &[], &rec, &Scope::Host).unwrap();
        let b = &i.bridges["br0"];
        assert!(b.released.contains("vnet2"));
        assert!(!b.ports["eth0"].vlans.tagged.contains(500));
    }

    #[test]
    fn bridges_scope_recomputes_only_bridge_ports() {
        let c = config(CONF);
        let st = state(&[("br0", &["eth0", "veth0"])]);
        let scope = Scope::Bridges {
            bridges: ["br0".to_string(), "unmanaged".to_string()].into(),
            release: Default::default(),
        };
        let i = resolve(&c, &st, &[], &Record::default(), &scope).unwrap();
        assert_eq!(i.bridges.len(), 1);
        assert_eq!(
            i.bridges["br0"].ports.keys().collect::<Vec<_>>(),
            ["br0", "eth0"]
        );
        assert_eq!(i.bridges["br0"].ports["eth0"].vlans.tagged, s("100"));
    }

    #[test]
    fn errors_name_the_port_and_where_it_was_configured() {
        let c = config(CONF);
        let e = resolve(
            &c,
            &state(&[("br0", &["eth0"])]),
            &[],
            &Record::default(),
            &Scope::Host,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("t.toml:12: port veth0: no such bridge port"),
            "{e}"
        );

        let st = state(&[("br0", &["eth0"]), ("br9", &["veth0"])]);
        let e = resolve(&c, &st, &[], &Record::default(), &Scope::Host)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("port veth0: is a port of bridge br9, which virt-vlan does not manage"),
            "{e}"
        );

        let st = state(&[("br0", &["veth0"])]);
        let e = resolve(&c, &st, &[], &Record::default(), &Scope::Host)
            .unwrap_err()
            .to_string();
        assert!(e.contains("uplink eth0 of br0 is not a port of br0"), "{e}");

        let e = resolve(
            &c,
            &state(&[("br1", &["veth0"])]),
            &[],
            &Record::default(),
            &Scope::Ports(Default::default()),
        )
        .map(|_| ())
        .err();
        assert!(e.is_none(), "an empty port scope touches no bridge");

        let c2 = config("[bridges.br0]\n[bridges.br1]\n");
        let e = resolve(
            &c2,
            &state(&[("br0", &[])]),
            &[],
            &Record::default(),
            &Scope::Host,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("t.toml:2: bridge br1 does not exist"), "{e}");
    }

    #[test]
    fn a_guest_asking_for_a_vid_outside_allowed_is_isolated_and_the_others_managed() {
        let c = config(CONF);
        let st = state(&[("br0", &["eth0", "veth0", "vnet1", "vnet2"])]);
        let vm = |what: &str| Origin {
            what: what.into(),
            domain: Some("vm1".into()),
            interface: Some("net0".into()),
        };
        let mut rogue = GuestPort::new("vnet1", PortVlans::access(1000), vm("interface <vlan>"));
        rogue.replaceable = s("1000");
        let good = GuestPort::new("vnet2", PortVlans::access(42), vm("metadata"));
        let i = resolve(&c, &st, &[rogue, good], &Record::default(), &Scope::Host).unwrap();
        assert_eq!(i.violations.len(), 1);
        let msg = &i.violations[0];
        assert!(
            msg.contains(
                "vm1 net0: interface <vlan>: port vnet1: VID 1000 is not allowed on bridge br0"
            ),
            "{msg}"
        );
        assert!(msg.contains("allowed = \"1-999\" at t.toml:2"), "{msg}");
        let b = &i.bridges["br0"];
        let p = &b.ports["vnet1"];
        assert!(p.vlans.is_empty(), "isolated: in no VLAN");
        assert_eq!(p.replaceable, s("1000"), "what libvirt wrote goes");
        assert!(
            p.origin
                .what
                .starts_with("isolated: interface <vlan>: VID 1000 is not allowed on bridge br0"),
            "{}",
            p.origin.what
        );
        assert_eq!(
            b.ports["vnet2"].vlans,
            PortVlans::access(42),
            "others managed"
        );
        assert!(
            !b.ports["eth0"].vlans.members().contains(1000),
            "the uplink never carries a forbidden VID on demand"
        );
    }

    #[test]
    fn a_guest_naming_an_uplink_or_a_static_port_as_its_tap_is_refused() {
        let c = config(CONF);
        let st = state(&[("br0", &["eth0", "veth0"])]);
        let origin = Origin {
            what: "metadata (line 5)".into(),
            domain: Some("vm1".into()),
            interface: Some("net0".into()),
        };
        let g = GuestPort::new("eth0", PortVlans::access(5), origin.clone());
        let scope = Scope::Ports(["eth0".to_string()].into());
        let e = resolve(&c, &st, &[g], &Record::default(), &scope).unwrap_err();
        assert!(
            format!("{e:#}").contains("port eth0: is the uplink of bridge br0 (t.toml:8)"),
            "{e:#}"
        );
        assert_eq!(crate::error::exit_code(&e), 2);
        let g = GuestPort::new("veth0", PortVlans::access(5), origin);
        let scope = Scope::Ports(["veth0".to_string()].into());
        let e = resolve(&c, &st, &[g], &Record::default(), &scope).unwrap_err();
        assert!(
            format!("{e:#}").contains("port veth0: is configured for no domain at t.toml:12"),
            "{e:#}"
        );
    }

    #[test]
    fn a_port_given_vlans_twice_is_refused() {
        let c = config(CONF);
        let st = state(&[("br0", &["eth0", "veth0"])]);
        let g = GuestPort::new("veth0", PortVlans::access(5), Origin::new("metadata"));
        let e = resolve(&c, &st, &[g], &Record::default(), &Scope::Host)
            .unwrap_err()
            .to_string();
        assert!(e.contains("given VLANs twice"), "{e}");
    }
}
