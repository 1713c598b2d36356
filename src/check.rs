//! `virt-vlan check`: is this host ready — config valid, bridges present, kernel able to filter
//! VLANs, filtering on, uplinks and static ports where they should be — would any guest be
//! cut off because no uplink or the bridge itself carries its VLAN, is any guest isolated for
//! asking for a VLAN its bridge does not allow, and does any guest carry libvirt's own `<vlan>`
//! on a bridge that does not filter VLANs (libvirt accepts it silently). Pure findings.

use crate::config::Config;
use crate::intent::Role;
use crate::ownership::Record;
use crate::state::HostState;
use crate::vid::VidSet;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
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

/// A running guest interface that libvirt gives a `<vlan>` of its own (interface, portgroup
/// or network), on the bridge it plugs into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibvirtVlanUse {
    pub domain: String,
    pub interface: String,
    pub bridge: String,
    /// Which `<vlan>`: `interface <vlan>`, `portgroup … <vlan>`…
    pub what: String,
}

pub fn check(
    config: &Config,
    state: &HostState,
    record: &Record,
    libvirt_vlans: &[LibvirtVlanUse],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |level, message: String| out.push(Finding { level, message });
    push(
        Level::Ok,
        format!(
            "config {} is valid: {} bridge(s), {} static port(s)",
            config.path,
            config.bridges.len(),
            config.ports.len()
        ),
    );
    for (name, bc) in &config.bridges {
        let Some(bs) = state.bridges.get(name) else {
            push(
                Level::Error,
                format!("{}: bridge {name} does not exist", bc.at),
            );
            continue;
        };
        if !bs.settings.vlan_supported {
            push(Level::Error, crate::state::vlan_unsupported(name));
            continue;
        }
        if bs.settings.vlan_filtering != bc.vlan_filtering {
            push(
                Level::Error,
                format!(
                    "bridge {name}: vlan_filtering is {}, the config wants {}; run `virt-vlan apply`",
                    onoff(bs.settings.vlan_filtering),
                    onoff(bc.vlan_filtering)
                ),
            );
        } else {
            push(
                Level::Ok,
                format!("bridge {name}: vlan_filtering {}", onoff(bc.vlan_filtering)),
            );
        }
        if let Some(p) = bc.default_pvid.filter(|p| *p != bs.settings.default_pvid) {
            push(
                Level::Warning,
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
                    format!("{}: uplink {up} is a port of {}, not {name}", hp.at, b.name),
                ),
                None => push(
                    Level::Error,
                    format!("{}: uplink {up} is not a port of {name}", hp.at),
                ),
            }
        }

        // Which VIDs leave the host: uplinks (everything, if any is on demand) and the bridge.
        let on_demand = bc.uplinks.values().any(|u| u.on_demand)
            || bc.self_port.as_ref().is_some_and(|s| s.on_demand);
        let mut carried = VidSet::new();
        for hp in bc.uplinks.values().chain(bc.self_port.as_ref()) {
            carried = carried.union(&hp.vlans.members());
        }
        let mut guests: Vec<(String, VidSet)> = Vec::new();
        for p in config.ports_of_domain(None) {
            match state.bridge_of(&p.interface) {
                Some(b) if b.name == *name => guests.push((
                    format!("port {} ({})", p.interface, p.at),
                    p.vlans.members(),
                )),
                Some(_) => {}
                None if p.bridge.as_deref() == Some(name) || config.bridges.len() == 1 => push(
                    Level::Error,
                    format!(
                        "{}: port {} is not a port of any bridge (missing or not enslaved)",
                        p.at, p.interface
                    ),
                ),
                None => {}
            }
        }
        for (port, rec) in record.ports_of(name) {
            if rec.role == Role::Guest && config.ports_of_domain(None).all(|p| p.interface != *port)
            {
                guests.push((
                    format!("port {port} ({})", rec.origin),
                    rec.desired.members(),
                ));
            }
        }
        if !on_demand {
            for (who, vids) in guests {
                let cut = vids.difference(&carried);
                if !cut.is_empty() {
                    push(
                        Level::Warning,
                        format!(
                            "bridge {name}: {who} uses VID {cut}, which no uplink and not the \
                             bridge itself carries: it reaches only local guests in that VLAN"
                        ),
                    );
                }
            }
        }
    }
    for (bridge, port, rec) in record.iter() {
        if rec.origin.what.starts_with(crate::intent::ISOLATED) {
            push(
                Level::Error,
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
                format!(
                    "domain {} interface {}: {} on bridge {}, which does not filter VLANs: \
                     libvirt accepts it but nothing enforces it; manage the bridge with \
                     virt-vlan ([bridges.{}]) or switch its vlan_filtering on",
                    u.domain, u.interface, u.what, u.bridge, u.bridge
                ),
            );
        }
    }
    out
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
                    vlans: PortVlans::none(),
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
        );
        assert!(levels(&f, Level::Warning).is_empty(), "{f:?}");
    }

    #[test]
    fn kernel_without_vlan_filtering_is_named_exactly() {
        let c = Config::parse("t.toml", CONF).unwrap();
        let f = check(
            &c,
            &st(false, false, &["eth0", "veth0"]),
            &Record::default(),
            &[],
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
        let f = check(&c, &st(false, true, &[]), &Record::default(), &[]);
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
        let f = check(&c, &HostState::default(), &Record::default(), &[]);
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
        let f = check(&c, &h, &Record::default(), &uses);
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
        let f = check(&c, &st(true, true, &[]), &r, &[]);
        let e = f.iter().find(|f| f.level == Level::Error).unwrap();
        assert!(
            e.message
                .contains("port vnet3 (rogue net0: isolated: interface <vlan>: VID 3000"),
            "{e}"
        );
    }
}
