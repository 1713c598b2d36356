//! Where a guest interface's VLANs come from, highest first: our domain metadata, the
//! interface's own `<vlan>`, the network's portgroup `<vlan>` (named, else `default='yes'`)
//! then the network's `<vlan>`, the portgroup name convention (`dmz-4`, `trunk`/`all`), and
//! `[[ports]]` in the config. The whole `<vlan>` of the winner applies, as in libvirt. Pure.

use crate::config::Config;
use crate::error::BadInput;
use crate::intent::{GuestPort, Origin};
use crate::libvirt_xml::{Domain, Iface, MetaEntry, Network, Portgroup, Selector, VlanElement};
use crate::port_vlans::PortVlans;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A domain's interfaces resolved to tap names and VLANs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub ports: Vec<GuestPort>,
    /// Things a sysadmin should hear about that do not stop the guest.
    pub notes: Vec<String>,
}

/// What the network side knows about an interface: the network and the portgroup the port
/// was given (from `port-created`'s `<group>`, when the live XML does not name one).
pub struct Networks<'a> {
    pub by_name: &'a BTreeMap<String, Network>,
    /// portid → portgroup named for that port.
    pub port_groups: &'a BTreeMap<String, String>,
}

/// Resolves every interface of `d`. Interfaces on bridges virt-vlan does not manage are left
/// alone unless metadata or the config names them explicitly (then binding them fails later,
/// saying the bridge is not managed). Malformed VLAN data is bad input.
pub fn resolve_domain(d: &Domain, config: &Config, nets: &Networks) -> Result<Resolved, BadInput> {
    let meta = d
        .metadata
        .as_ref()
        .map_err(|e| BadInput(format!("domain {}: {e}", d.name)))?;
    let mut out = Resolved::default();
    let present = Selectors::of(&d.interfaces);
    for m in meta {
        if !present.has(&m.selector) {
            out.notes.push(format!(
                "domain {}: metadata line {} names interface {} which the domain does not have",
                d.name, m.line, m.selector
            ));
        }
    }
    for (iface, vlans, what) in winners(d, config, nets)? {
        // What libvirt ≥ 11 writes on the tap itself; the winner replaces it.
        let replaceable = match libvirt_vlan(d, &iface, nets)? {
            Some((v, _)) if managed(&iface, config, nets) => v.members(),
            _ => Default::default(),
        };
        let Some(ifname) = iface.target.clone() else {
            out.notes.push(format!(
                "domain {} interface {}: no tap name yet (inactive XML); not applied",
                d.name,
                iface.label()
            ));
            continue;
        };
        // the tap name is the kernel's to give; a name it could not have given is refused
        // before the kernel is asked about it
        crate::netdev::check_ifname(&ifname).map_err(|e| {
            BadInput(format!(
                "domain {} interface {} (line {}): <target dev>: {e}",
                d.name,
                iface.label(),
                iface.line
            ))
        })?;
        out.ports.push(GuestPort {
            ifname,
            vlans,
            origin: Origin {
                what,
                domain: Some(d.name.clone()),
                interface: Some(iface.alias.clone().unwrap_or_else(|| iface.mac.clone())),
            },
            replaceable,
            identity: d.uuid.as_ref().map(|u| crate::intent::GuestIdentity {
                vm_id: u.clone(),
                mac: iface.mac.clone(),
            }),
        });
    }
    Ok(out)
}

/// Every interface of `d` that some source gives VLANs, with those VLANs and the source.
pub fn winners(
    d: &Domain,
    config: &Config,
    nets: &Networks,
) -> Result<Vec<(Iface, PortVlans, String)>, BadInput> {
    if let Err(e) = &d.metadata {
        return Err(BadInput(format!("domain {}: {e}", d.name)));
    }
    let meta = MetaIndex::of(d);
    let mut out = Vec::new();
    for iface in &d.interfaces {
        if let Some((vlans, what)) = winner(d, &meta, iface, config, nets)? {
            out.push((iface.clone(), vlans, what));
        }
    }
    Ok(out)
}

/// The bridge an interface is plugged into: its own `<source bridge>`, else its network's.
pub fn bridge_of(iface: &Iface, nets: &Networks) -> Option<String> {
    iface.bridge.clone().or_else(|| {
        iface
            .network
            .as_ref()
            .and_then(|n| nets.by_name.get(n))
            .and_then(|n| n.bridge.clone())
    })
}

/// Whether an interface plugs into a bridge virt-vlan manages.
fn managed(iface: &Iface, config: &Config, nets: &Networks) -> bool {
    bridge_of(iface, nets).is_some_and(|b| config.bridges.contains_key(&b))
}

/// The portgroup an interface is in: the one it names (or `port-created` named for its
/// port), else the network's `default='yes'` one.
fn portgroup_of<'n>(iface: &Iface, net: &'n Network, nets: &Networks) -> Option<&'n Portgroup> {
    let named = iface.portgroup.clone().or_else(|| {
        iface
            .portid
            .as_ref()
            .and_then(|id| nets.port_groups.get(id))
            .cloned()
    });
    net.portgroup(named.as_deref())
}

/// libvirt's own `<vlan>` for an interface, as libvirt applies it (and libvirt ≥ 11 writes it
/// onto a Linux bridge tap): the interface's, else its portgroup's (named, else the
/// `default='yes'` one), else its network's; with where it came from. libvirt ≥ 11 copies a
/// portgroup's or network's `<vlan>` into the live interface, so an interface `<vlan>` equal
/// to its portgroup's (or, with none there, its network's) is named after that source.
pub fn libvirt_vlan(
    d: &Domain,
    iface: &Iface,
    nets: &Networks,
) -> Result<Option<(PortVlans, String)>, BadInput> {
    let net = iface.network.as_ref().and_then(|n| nets.by_name.get(n));
    let mut inherited: Option<(PortVlans, String)> = None;
    if let Some(net) = net {
        let pg = portgroup_of(iface, net, nets);
        if let Some(pg) = pg
            && let Some(v) = &pg.vlan
        {
            let what = format!("portgroup {} of network {} <vlan>", pg.name, net.name);
            inherited = Some((vlan_of(v, d, iface, &what)?, what));
        } else if let Some(v) = &net.vlan {
            let what = format!("network {} <vlan>", net.name);
            inherited = Some((vlan_of(v, d, iface, &what)?, what));
        }
    }
    match &iface.vlan {
        Some(v) => {
            let own = vlan_of(v, d, iface, "interface <vlan>")?;
            Ok(Some(match inherited {
                Some((from_net, what)) if from_net == own => (own, what),
                _ => (own, "interface <vlan>".into()),
            }))
        }
        None => Ok(inherited),
    }
}

fn vlan_of(el: &VlanElement, d: &Domain, iface: &Iface, what: &str) -> Result<PortVlans, BadInput> {
    el.clone().map_err(|e| {
        BadInput(format!(
            "domain {} interface {}: {what}: {e}",
            d.name,
            iface.label()
        ))
    })
}

/// Every interface's MAC, alias and tap name, for telling in O(1) whether a metadata entry
/// names an interface the domain has (a domain may have thousands).
struct Selectors<'d> {
    macs: HashSet<&'d str>,
    aliases: HashSet<&'d str>,
    targets: HashSet<&'d str>,
}

impl<'d> Selectors<'d> {
    fn of(ifaces: &'d [Iface]) -> Selectors<'d> {
        Selectors {
            macs: ifaces.iter().map(|i| i.mac.as_str()).collect(),
            aliases: ifaces.iter().filter_map(|i| i.alias.as_deref()).collect(),
            targets: ifaces.iter().filter_map(|i| i.target.as_deref()).collect(),
        }
    }

    fn has(&self, sel: &Selector) -> bool {
        match sel {
            Selector::Mac(m) => self.macs.contains(m.as_str()),
            Selector::Alias(a) => self.aliases.contains(a.as_str()),
            Selector::Target(t) => self.targets.contains(t.as_str()),
        }
    }
}

/// A domain's metadata entries by selector, so each interface finds its entry in O(1)
/// instead of scanning them all (which made a domain with thousands of interfaces quadratic).
struct MetaIndex<'d> {
    by: HashMap<&'d Selector, &'d MetaEntry>,
}

impl<'d> MetaIndex<'d> {
    fn of(d: &'d Domain) -> MetaIndex<'d> {
        let mut by = HashMap::new();
        for m in d.metadata.iter().flatten() {
            // the first entry in document order wins, as a scan would find it
            by.entry(&m.selector).or_insert(m);
        }
        MetaIndex { by }
    }

    /// The entry naming `iface` by MAC, alias or tap name. Two entries naming the same
    /// interface in different ways are ambiguous: refused, naming both lines.
    fn find(&self, d: &Domain, iface: &Iface) -> Result<Option<&'d MetaEntry>, BadInput> {
        let mut keys = vec![Selector::Mac(iface.mac.clone())];
        keys.extend(iface.alias.clone().map(Selector::Alias));
        keys.extend(iface.target.clone().map(Selector::Target));
        let mut found: Vec<&MetaEntry> = keys
            .iter()
            .filter_map(|k| self.by.get(k).copied())
            .collect();
        found.sort_by_key(|m| m.line);
        match found.as_slice() {
            [a, b, ..] => Err(BadInput(format!(
                "domain {}: metadata line {}: <interface {}> names interface {} (line {}), \
                 as <interface {}> at line {} does; name it once",
                d.name,
                b.line,
                b.selector,
                iface.label(),
                iface.line,
                a.selector,
                a.line
            ))),
            _ => Ok(found.first().copied()),
        }
    }
}

/// The winning source for one interface: its VLANs and a description.
fn winner(
    d: &Domain,
    meta: &MetaIndex,
    iface: &Iface,
    config: &Config,
    nets: &Networks,
) -> Result<Option<(PortVlans, String)>, BadInput> {
    // 1. our metadata
    if let Some(m) = meta.find(d, iface)? {
        return Ok(Some((
            m.vlans.clone(),
            format!("metadata (line {})", m.line),
        )));
    }
    // 5. the config, when it names the interface explicitly (checked before the implicit
    // sources only to keep them apart: it still loses to them below)
    let from_config = config.ports_of_domain(Some(&d.name)).find(|p| {
        p.interface == iface.mac
            || Some(&p.interface) == iface.target.as_ref()
            || Some(&p.interface) == iface.alias.as_ref()
    });
    // The implicit sources only speak for interfaces on bridges virt-vlan manages.
    if managed(iface, config, nets) {
        // 2. the interface's own <vlan>, 3. its portgroup's <vlan>, then its network's
        if let Some(found) = libvirt_vlan(d, iface, nets)? {
            return Ok(Some(found));
        }
        if let Some(net) = iface.network.as_ref().and_then(|n| nets.by_name.get(n)) {
            let pg = portgroup_of(iface, net, nets);
            // 4. the portgroup's name
            if let Some(pg) = pg {
                let bridge = bridge_of(iface, nets).unwrap_or_default();
                if let Some(v) = convention(&pg.name, &config.bridges[&bridge].allowed) {
                    let what = format!("portgroup name {} of network {}", pg.name, net.name);
                    return Ok(Some((v, what)));
                }
            }
        }
    }
    Ok(from_config.map(|p| (p.vlans.clone(), format!("config {}", p.at))))
}

/// Seed 002's convention: portgroup `<name>-<vid>` is access `<vid>`; `trunk` or `all` is a
/// trunk of every VID the bridge allows; anything else says nothing.
pub fn convention(name: &str, allowed: &crate::vid::VidSet) -> Option<PortVlans> {
    if name.eq_ignore_ascii_case("trunk") || name.eq_ignore_ascii_case("all") {
        return Some(PortVlans {
            pvid: None,
            untagged: Default::default(),
            tagged: allowed.clone(),
        });
    }
    let (_, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let vid = crate::vid::check_vid(digits.parse().ok()?).ok()?;
    Some(PortVlans::access(vid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libvirt_xml::{parse_domain, parse_network};

    fn config() -> Config {
        Config::parse(
            "t.toml",
            "[bridges.br0]\nallowed = \"1-999\"\n[[ports]]\ndomain = \"vm\"\ninterface = \"net3\"\npvid = 33\n[[ports]]\ndomain = \"vm\"\ninterface = \"52:54:00:00:00:01\"\npvid = 31\n",
        )
        .unwrap()
    }

    fn iface(mac: &str, alias: &str, source: &str, extra: &str) -> String {
        format!(
            "<interface type='bridge'><mac address='{mac}'/><source {source}/>{extra}<target dev='tap-{alias}'/><alias name='{alias}'/></interface>"
        )
    }

    fn domain(ifaces: &[String], meta: &str) -> Domain {
        parse_domain(&format!(
            "<domain><name>vm</name><metadata>{meta}</metadata><devices>{}</devices></domain>",
            ifaces.join("")
        ))
        .unwrap()
    }

    fn nets(xml: &[&str]) -> BTreeMap<String, Network> {
        xml.iter()
            .map(|x| parse_network(x).unwrap())
            .map(|n| (n.name.clone(), n))
            .collect()
    }

    const LAN: &str = "<network><name>lan</name><forward mode='bridge'/><bridge name='br0'/>\
        <portgroup name='dmz-4'/><portgroup name='guests-30' default='yes'/><portgroup name='trunk'/>\
        <portgroup name='office'/></network>";
    const VLANNET: &str = "<network><name>vnet</name><forward mode='bridge'/><bridge name='br0'/>\
        <portgroup name='pg' default='yes'><vlan><tag id='70'/></vlan></portgroup><portgroup name='bare'/>\
        <vlan><tag id='80'/></vlan></network>";
    const ELSEWHERE: &str = "<network><name>other</name><forward mode='bridge'/><bridge name='br9'/>\
        <portgroup name='dmz-5'/></network>";

    fn resolve(
        d: &Domain,
        n: &BTreeMap<String, Network>,
        groups: &BTreeMap<String, String>,
    ) -> Resolved {
        resolve_domain(
            d,
            &config(),
            &Networks {
                by_name: n,
                port_groups: groups,
            },
        )
        .unwrap()
    }

    fn summary(r: &Resolved) -> Vec<(String, String, String)> {
        r.ports
            .iter()
            .map(|p| (p.ifname.clone(), p.vlans.to_string(), p.origin.what.clone()))
            .collect()
    }

    #[test]
    fn precedence_metadata_then_interface_then_portgroup_then_network_then_name_then_config() {
        let n = nets(&[LAN, VLANNET]);
        let meta = "<vv:vlans xmlns:vv='urn:virt-vlan:1'><vv:interface alias='net0'><vv:vlan><vv:tag id='10'/></vv:vlan></vv:interface></vv:vlans>";
        let d = domain(
            &[
                // metadata beats the interface's own <vlan> and the portgroup
                iface(
                    "52:54:00:00:00:00",
                    "net0",
                    "network='vnet' bridge='br0'",
                    "<vlan><tag id='11'/></vlan>",
                ),
                // the interface's own <vlan> beats the portgroup
                iface(
                    "52:54:00:00:00:01",
                    "net1",
                    "network='vnet' portgroup='pg' bridge='br0'",
                    "<vlan><tag id='12'/></vlan>",
                ),
                // named portgroup without <vlan>: the network's <vlan>
                iface(
                    "52:54:00:00:00:02",
                    "net2",
                    "network='vnet' portgroup='bare' bridge='br0'",
                    "",
                ),
                // the default portgroup's <vlan>
                iface(
                    "52:54:00:00:00:03",
                    "net3",
                    "network='vnet' bridge='br0'",
                    "",
                ),
                // the portgroup name convention, named and default
                iface(
                    "52:54:00:00:00:04",
                    "net4",
                    "network='lan' portgroup='dmz-4' bridge='br0'",
                    "",
                ),
                iface(
                    "52:54:00:00:00:05",
                    "net5",
                    "network='lan' bridge='br0'",
                    "",
                ),
                // a portgroup whose name says nothing: the config (by alias? no: by MAC below)
                iface(
                    "52:54:00:00:00:06",
                    "net6",
                    "network='lan' portgroup='office' bridge='br0'",
                    "",
                ),
            ],
            meta,
        );
        let r = resolve(&d, &n, &BTreeMap::new());
        assert_eq!(
            summary(&r),
            [
                ("tap-net0", "pvid 10 untagged 10", "metadata (line 1)"),
                ("tap-net1", "pvid 12 untagged 12", "interface <vlan>"),
                ("tap-net2", "pvid 80 untagged 80", "network vnet <vlan>"),
                (
                    "tap-net3",
                    "pvid 70 untagged 70",
                    "portgroup pg of network vnet <vlan>"
                ),
                (
                    "tap-net4",
                    "pvid 4 untagged 4",
                    "portgroup name dmz-4 of network lan"
                ),
                (
                    "tap-net5",
                    "pvid 30 untagged 30",
                    "portgroup name guests-30 of network lan"
                ),
            ]
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        );
        assert_eq!(r.ports[0].origin.domain.as_deref(), Some("vm"));
        assert_eq!(r.ports[0].origin.interface.as_deref(), Some("net0"));
    }

    #[test]
    fn config_ports_by_alias_or_mac_are_the_last_resort() {
        let n = nets(&[LAN]);
        let d = domain(
            &[
                iface("52:54:00:00:00:01", "net1", "bridge='br0'", ""),
                iface(
                    "52:54:00:00:00:09",
                    "net3",
                    "network='lan' portgroup='office' bridge='br0'",
                    "",
                ),
                iface("52:54:00:00:00:08", "net8", "bridge='br0'", ""),
            ],
            "",
        );
        let r = resolve(&d, &n, &BTreeMap::new());
        let s = summary(&r);
        assert_eq!(s.len(), 2, "net8 has no source at all: left alone");
        assert_eq!(s[0].1, "pvid 31 untagged 31");
        assert!(s[0].2.starts_with("config t.toml:"), "{}", s[0].2);
        assert_eq!(s[1].1, "pvid 33 untagged 33");
    }

    #[test]
    fn the_port_created_group_names_the_portgroup_when_the_live_xml_does_not() {
        let n = nets(&[LAN]);
        let d = domain(
            &[iface(
                "52:54:00:00:00:05",
                "net0",
                "network='lan' portid='abc' bridge='br0'",
                "",
            )],
            "",
        );
        let groups = BTreeMap::from([("abc".to_string(), "dmz-4".to_string())]);
        let r = resolve(&d, &n, &groups);
        assert_eq!(r.ports[0].vlans, PortVlans::access(4));
    }

    #[test]
    fn trunk_and_all_carry_every_allowed_vid() {
        let n = nets(&[LAN]);
        let d = domain(
            &[iface(
                "52:54:00:00:00:05",
                "net0",
                "network='lan' portgroup='trunk' bridge='br0'",
                "",
            )],
            "",
        );
        let r = resolve(&d, &n, &BTreeMap::new());
        assert_eq!(r.ports[0].vlans.tagged.to_string(), "1-999");
        assert_eq!(r.ports[0].vlans.pvid, None);
        assert_eq!(
            convention("ALL", &"5-6".parse().unwrap())
                .unwrap()
                .tagged
                .to_string(),
            "5-6"
        );
        assert_eq!(convention("dmz-4095", &Default::default()), None);
        assert_eq!(convention("dmz-", &Default::default()), None);
        assert_eq!(convention("office", &Default::default()), None);
        assert_eq!(
            convention("a-b-12", &Default::default()),
            Some(PortVlans::access(12))
        );
    }

    #[test]
    fn unmanaged_bridges_are_left_to_libvirt_unless_named_explicitly() {
        let n = nets(&[ELSEWHERE]);
        let d = domain(
            &[
                iface(
                    "52:54:00:00:00:02",
                    "net0",
                    "network='other' portgroup='dmz-5' bridge='br9'",
                    "",
                ),
                iface(
                    "52:54:00:00:00:03",
                    "net1",
                    "bridge='br9'",
                    "<vlan><tag id='9'/></vlan>",
                ),
            ],
            "",
        );
        assert!(resolve(&d, &n, &BTreeMap::new()).ports.is_empty());
        let meta = "<vv:vlans xmlns:vv='urn:virt-vlan:1'><vv:interface alias='net0'><vv:vlan><vv:tag id='10'/></vv:vlan></vv:interface></vv:vlans>";
        let d = domain(
            &[iface("52:54:00:00:00:02", "net0", "bridge='br9'", "")],
            meta,
        );
        let r = resolve(&d, &n, &BTreeMap::new());
        assert_eq!(
            r.ports.len(),
            1,
            "metadata is explicit: binding it will say br9 is unmanaged"
        );
    }

    #[test]
    fn two_metadata_entries_for_one_interface_are_refused() {
        let n = nets(&[LAN]);
        let meta = "<vv:vlans xmlns:vv='urn:virt-vlan:1'>\
            <vv:interface mac='52:54:00:00:00:02'><vv:vlan><vv:tag id='10'/></vv:vlan></vv:interface>\
            <vv:interface alias='net0'><vv:vlan><vv:tag id='20'/></vv:vlan></vv:interface></vv:vlans>";
        let d = domain(
            &[iface("52:54:00:00:00:02", "net0", "bridge='br0'", "")],
            meta,
        );
        let nets = Networks {
            by_name: &n,
            port_groups: &BTreeMap::new(),
        };
        let e = resolve_domain(&d, &config(), &nets).unwrap_err();
        assert!(e.0.contains("<interface alias=\"net0\">"), "{}", e.0);
        assert!(
            e.0.contains("as <interface mac=\"52:54:00:00:00:02\">"),
            "{}",
            e.0
        );
    }

    #[test]
    fn malformed_vlan_data_is_bad_input_and_stray_metadata_is_noted() {
        let n = nets(&[LAN]);
        let bad = "<vv:vlans xmlns:vv='urn:virt-vlan:1'><vv:interface alias='net0'><vv:vlan><vv:tag id='0'/></vv:vlan></vv:interface></vv:vlans>";
        let d = domain(
            &[iface("52:54:00:00:00:02", "net0", "bridge='br0'", "")],
            bad,
        );
        let e = resolve_domain(
            &d,
            &config(),
            &Networks {
                by_name: &n,
                port_groups: &BTreeMap::new(),
            },
        )
        .unwrap_err();
        assert!(e.0.starts_with("domain vm: metadata"), "{}", e.0);
        assert!(e.0.contains("VID 0"), "{}", e.0);
        let stray = "<vv:vlans xmlns:vv='urn:virt-vlan:1'><vv:interface alias='net7'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface></vv:vlans>";
        let d = domain(
            &[iface("52:54:00:00:00:02", "net0", "bridge='br0'", "")],
            stray,
        );
        let r = resolve(&d, &n, &BTreeMap::new());
        assert!(
            r.notes[0].contains("alias=\"net7\" which the domain does not have"),
            "{:?}",
            r.notes
        );
        let d = domain(
            &[iface(
                "52:54:00:00:00:02",
                "net0",
                "bridge='br0'",
                "<vlan><tag id='x'/></vlan>",
            )],
            "",
        );
        let e = resolve_domain(
            &d,
            &config(),
            &Networks {
                by_name: &n,
                port_groups: &BTreeMap::new(),
            },
        )
        .unwrap_err();
        assert!(
            e.0.contains("interface net0 (52:54:00:00:00:02): interface <vlan>"),
            "{}",
            e.0
        );
    }

    #[test]
    fn libvirts_own_vlan_is_replaceable_whoever_wins() {
        let n = nets(&[VLANNET]);
        let meta = "<vv:vlans xmlns:vv='urn:virt-vlan:1'><vv:interface alias='net0'><vv:vlan><vv:tag id='43'/></vv:vlan></vv:interface></vv:vlans>";
        let d = domain(
            &[
                // metadata wins over the interface's own <vlan>: libvirt's 42 goes
                iface(
                    "52:54:00:00:00:00",
                    "net0",
                    "bridge='br0'",
                    "<vlan><tag id='42'/></vlan>",
                ),
                // the portgroup's <vlan> wins: libvirt wrote exactly it
                iface(
                    "52:54:00:00:00:02",
                    "net2",
                    "network='vnet' portgroup='pg'",
                    "",
                ),
                // nothing of libvirt's
                iface("52:54:00:00:00:03", "net3", "bridge='br0'", ""),
            ],
            meta,
        );
        let r = resolve(&d, &n, &BTreeMap::new());
        let by: BTreeMap<&str, &GuestPort> =
            r.ports.iter().map(|p| (p.ifname.as_str(), p)).collect();
        assert_eq!(by["tap-net0"].vlans, PortVlans::access(43));
        assert_eq!(by["tap-net0"].replaceable, "42".parse().unwrap());
        assert_eq!(by["tap-net2"].replaceable, "70".parse().unwrap());
        assert!(by["tap-net3"].replaceable.is_empty());
    }

    #[test]
    fn a_portgroup_vlan_libvirt_copied_into_the_live_interface_is_named_after_the_portgroup() {
        let n = nets(&[VLANNET]);
        let d = domain(
            &[
                // libvirt >= 11's live XML: the portgroup's <vlan> copied into the interface
                iface(
                    "52:54:00:00:00:00",
                    "net0",
                    "network='vnet' portgroup='pg' bridge='br0'",
                    "<vlan><tag id='70'/></vlan>",
                ),
                // the network's <vlan> copied (a portgroup without one)
                iface(
                    "52:54:00:00:00:02",
                    "net2",
                    "network='vnet' portgroup='bare' bridge='br0'",
                    "<vlan><tag id='80'/></vlan>",
                ),
                // an interface <vlan> of its own, unlike its portgroup's
                iface(
                    "52:54:00:00:00:03",
                    "net3",
                    "network='vnet' portgroup='pg' bridge='br0'",
                    "<vlan><tag id='71'/></vlan>",
                ),
            ],
            "",
        );
        let r = resolve(&d, &n, &BTreeMap::new());
        assert_eq!(
            summary(&r),
            vec![
                (
                    "tap-net0".into(),
                    "pvid 70 untagged 70".into(),
                    "portgroup pg of network vnet <vlan>".into()
                ),
                (
                    "tap-net2".into(),
                    "pvid 80 untagged 80".into(),
                    "network vnet <vlan>".into()
                ),
                (
                    "tap-net3".into(),
                    "pvid 71 untagged 71".into(),
                    "interface <vlan>".into()
                ),
            ]
        );
    }
}
