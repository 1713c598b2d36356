//! Fuzz targets: one function per reader of outside input, taking raw bytes, calling the very
//! parser virt-vlan uses and checking what its result promises (not only "no panic"). The AFL
//! binary in `fuzz/` and the corpus replay in `tests/fuzz_corpus.rs` both call these, so a crash
//! the fuzzer finds, once kept under `fuzz/regressions/`, fails plain `cargo test` until fixed.
//!
//! Hand-written because the checks are virt-vlan's own invariants; a target panics (through
//! `assert!`) when one does not hold, which the fuzzer reports as a crash.

use crate::config::Config;
use crate::libvirt_vlan::parse_vlan;
use crate::libvirt_xml::{Network, parse_domain, parse_hook_data, parse_network};
use crate::netdev::{check_ifname, format_mac, parse_mac};
use crate::port_vlans::PortVlans;
use crate::sources::{Networks, resolve_domain};
use crate::vid::{MAX_VID, MIN_VID, VidSet};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkAttribute;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// A fuzz target: bytes in, panics on a broken promise.
pub type Target = fn(&[u8]);

/// Every target by name; the name is also its corpus folder (`fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("domain", domain),
    ("vlan", vlan),
    ("hook_data", hook_data),
    ("kvmvlan", kvmvlan),
    ("vid_list", vid_list),
    ("netlink", netlink),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Text readers get the input as UTF-8 (lossily: a mutated byte still reaches the parser).
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// What every [`PortVlans`] promises: VIDs 1–4094, untagged and tagged disjoint, the PVID a
/// member.
fn check_port(p: &PortVlans, what: &str) {
    for v in p.untagged.iter().chain(p.tagged.iter()) {
        assert!((MIN_VID..=MAX_VID).contains(&v), "{what}: VID {v} in {p}");
    }
    let both = p.untagged.intersection(&p.tagged);
    assert!(both.is_empty(), "{what}: {both} both untagged and tagged");
    if let Some(pvid) = p.pvid {
        assert!(
            p.untagged.contains(pvid) || p.tagged.contains(pvid),
            "{what}: pvid {pvid} is not a member: {p}"
        );
    }
}

/// A message that should name a line (`line N: …`) names one that exists.
fn check_line_prefix(msg: &str, prefix: &str, lines: usize) {
    let rest = msg
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("`{msg}` does not start with `{prefix}`"));
    let n: usize = rest
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("`{msg}`: no line number after `{prefix}`"));
    assert!(n >= 1 && n <= lines + 1, "`{msg}`: line {n} of {lines}");
}

fn line_count(s: &str) -> usize {
    s.matches('\n').count() + 1
}

/// Every VID-bearing part of a config, with the promises a validated config makes.
fn check_config(c: &Config, file: &str) {
    for (name, b) in &c.bridges {
        assert_eq!(&b.name, name);
        assert!(check_ifname(name).is_ok(), "bridge {name:?} accepted");
        assert!(
            b.default_pvid.is_none_or(|p| p <= MAX_VID),
            "{file}: default_pvid {:?}",
            b.default_pvid
        );
        for v in b.allowed.iter() {
            assert!((MIN_VID..=MAX_VID).contains(&v), "allowed VID {v}");
        }
        if let Some(s) = &b.self_port {
            check_port(&s.vlans, &format!("bridge {name} self"));
        }
        for (u, up) in &b.uplinks {
            assert!(check_ifname(u).is_ok(), "uplink {u:?} accepted");
            check_port(&up.vlans, &format!("uplink {u}"));
        }
    }
    for p in &c.ports {
        check_port(&p.vlans, &format!("port {}", p.interface));
        if p.domain.is_none() {
            assert!(
                check_ifname(&p.interface).is_ok(),
                "port {:?} accepted",
                p.interface
            );
        }
        let bridge = match &p.bridge {
            Some(b) => c.bridges.get(b),
            None if c.bridges.len() == 1 => c.bridges.values().next(),
            None => None,
        };
        if let Some(b) = bridge {
            assert!(
                p.vlans.members().is_subset(&b.allowed),
                "port {} outside {}'s allowed",
                p.interface,
                b.name
            );
        }
    }
}

/// The TOML config: an accepted config keeps every promise, a refused one names file and line.
pub fn config(data: &[u8]) {
    const FILE: &str = "fuzz.toml";
    let text = text(data);
    match Config::parse(FILE, &text) {
        Ok(c) => check_config(&c, FILE),
        Err(e) => check_line_prefix(&e.0, &format!("{FILE}:"), line_count(&text)),
    }
}

/// The config domains are resolved against: two managed bridges, ports named by alias and MAC.
const DOMAIN_CONFIG: &str = r#"
[bridges.br0]
allowed = "1-100,200-4094"
[bridges.br1]
[[ports]]
domain = "vm"
interface = "net0"
pvid = 5
[[ports]]
domain = "vm"
interface = "52:54:00:00:00:01"
tagged = "7-9"
bridge = "br1"
"#;

/// Networks domains are resolved against: portgroups with and without `<vlan>`, a default
/// one, a convention name, an unmanaged bridge and a malformed `<vlan>`.
const DOMAIN_NETWORKS: &[&str] = &[
    "<network><name>lan</name><bridge name='br0'/>\
       <portgroup name='dmz-4'/><portgroup name='trunk'/>\
       <portgroup name='pg' default='yes'><vlan><tag id='30'/></vlan></portgroup></network>",
    "<network><name>wan</name><bridge name='br1'/>\
       <vlan trunk='yes'><tag id='10' nativeMode='untagged'/><tag id='11'/></vlan></network>",
    "<network><name>ext</name><bridge name='virbr9'/></network>",
    "<network><name>bad</name><bridge name='br1'/><vlan><tag id='0'/></vlan></network>",
];

type World = (Config, BTreeMap<String, Network>, BTreeMap<String, String>);

/// [`DOMAIN_CONFIG`], [`DOMAIN_NETWORKS`] and one port's portgroup, read once.
fn domain_world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let config = Config::parse("domain-config.toml", DOMAIN_CONFIG).expect("fixed config");
        let networks = DOMAIN_NETWORKS
            .iter()
            .map(|x| {
                let n = parse_network(x).expect("fixed network");
                (n.name.clone(), n)
            })
            .collect();
        let port_groups = BTreeMap::from([(
            "f64c4c65-1e32-4cf4-b69a-d0ff19327f00".to_string(),
            "dmz-4".to_string(),
        )]);
        (config, networks, port_groups)
    })
}

/// The domain XML and our metadata in it, then the sources' resolution of its interfaces.
pub fn domain(data: &[u8]) {
    let text = text(data);
    let Ok(d) = parse_domain(&text) else {
        return;
    };
    let lines = line_count(&text);
    assert!(
        !d.name.is_empty() && d.name == d.name.trim(),
        "name {:?}",
        d.name
    );
    for i in &d.interfaces {
        assert!(
            i.line >= 1 && i.line as usize <= lines,
            "interface line {}",
            i.line
        );
        if let Some(Ok(v)) = &i.vlan {
            check_port(v, "interface <vlan>");
        }
        if let Some(Err(e)) = &i.vlan {
            check_line_prefix(e, "line ", lines);
        }
    }
    match &d.metadata {
        Ok(entries) => {
            for m in entries {
                check_port(&m.vlans, "metadata");
                assert!(
                    m.line >= 1 && m.line as usize <= lines,
                    "metadata line {}",
                    m.line
                );
            }
        }
        Err(e) => assert!(e.starts_with("metadata "), "metadata error `{e}`"),
    }
    let (config, by_name, port_groups) = domain_world();
    let nets = Networks {
        by_name,
        port_groups,
    };
    if let Ok(r) = resolve_domain(&d, config, &nets) {
        for p in &r.ports {
            check_port(&p.vlans, &format!("resolved {}", p.ifname));
            for v in p.replaceable.iter() {
                assert!((MIN_VID..=MAX_VID).contains(&v), "replaceable VID {v}");
            }
            assert!(
                d.interfaces
                    .iter()
                    .any(|i| i.target.as_deref() == Some(p.ifname.as_str())),
                "resolved port {} is no interface's tap",
                p.ifname
            );
        }
    }
}

/// `<vlan>` written back from what it was read into, in libvirt's grammar.
fn vlan_xml(p: &PortVlans) -> String {
    if let Some(v) = p.pvid
        && p.tagged.is_empty()
        && p.untagged == VidSet::single(v)
    {
        return format!("<vlan><tag id='{v}'/></vlan>");
    }
    let mut s = String::from("<vlan trunk='yes'>");
    if let Some(v) = p.pvid {
        let mode = if p.untagged.contains(v) {
            "untagged"
        } else {
            "tagged"
        };
        s += &format!("<tag id='{v}' nativeMode='{mode}'/>");
    }
    for v in p.tagged.iter().filter(|v| Some(*v) != p.pvid) {
        s += &format!("<tag id='{v}'/>");
    }
    s + "</vlan>"
}

/// libvirt's `<vlan>` grammar, on every element of the document: what it accepts keeps the
/// promises of a port and reads back the same when written out again.
pub fn vlan(data: &[u8]) {
    let text = text(data);
    let Ok(doc) = roxmltree::Document::parse(&text) else {
        return;
    };
    let lines = line_count(&text);
    for el in doc.descendants().filter(|n| n.is_element()).take(64) {
        match parse_vlan(el) {
            Ok(p) => {
                check_port(&p, "<vlan>");
                assert!(!p.is_empty(), "an accepted <vlan> carries a VLAN");
                assert!(
                    p.untagged.len() <= 1 && p.untagged.iter().all(|v| Some(v) == p.pvid),
                    "only the native VLAN can be untagged: {p}"
                );
                let again = vlan_xml(&p);
                let doc2 = roxmltree::Document::parse(&again).expect("own XML");
                assert_eq!(parse_vlan(doc2.root_element()).as_ref(), Ok(&p), "{again}");
            }
            Err(e) => check_line_prefix(&e, "line ", lines),
        }
    }
}

/// The network hook's `<hookData>`: network, portgroups and the port.
pub fn hook_data(data: &[u8]) {
    let text = text(data);
    let lines = line_count(&text);
    let vlan_ok = |v: &Option<Result<PortVlans, String>>, what: &str| match v {
        Some(Ok(p)) => check_port(p, what),
        Some(Err(e)) => check_line_prefix(e, "line ", lines),
        None => {}
    };
    let Ok((net, port)) = parse_hook_data(&text) else {
        return;
    };
    assert!(!net.name.is_empty() && net.name == net.name.trim());
    assert_eq!(parse_network(&text).as_ref().ok(), Some(&net));
    vlan_ok(&net.vlan, "network");
    for pg in &net.portgroups {
        vlan_ok(&pg.vlan, "portgroup");
    }
    if let Some(p) = port {
        let mac = parse_mac(&p.mac).expect("port MAC parses");
        assert_eq!(format_mac(&mac), p.mac, "MAC is printed lowercase");
        assert!(p.group.as_deref().is_none_or(|g| !g.is_empty()));
        vlan_ok(&p.vlan, "networkport");
    }
}

/// kvmvlan's two INI files (split at the first NUL; without one, the input is tried as either
/// file): an import is a valid config whose names all come verbatim from the input.
pub fn kvmvlan(data: &[u8]) {
    const BI: &str = "bridge_init.conf";
    const VF: &str = "vlan_filtering.conf";
    let text = text(data);
    let pairs: Vec<(&str, &str)> = match text.split_once('\0') {
        Some((a, b)) => vec![(a, b)],
        None => vec![(&text, ""), ("", &text)],
    };
    for (bi, vf) in pairs {
        match crate::kvmvlan::import((BI, bi), (VF, vf)) {
            Ok((toml, _notes)) => {
                let c = Config::parse("imported.toml", &toml).expect("import validated it");
                check_config(&c, "imported.toml");
                // a guest name may span continuation lines: each of its words, then
                let names = c
                    .bridges
                    .values()
                    .flat_map(|b| std::iter::once(&b.name).chain(b.uplinks.keys()))
                    .chain(c.ports.iter().map(|p| &p.interface))
                    .map(String::as_str)
                    .chain(
                        c.ports
                            .iter()
                            .filter_map(|p| p.domain.as_deref())
                            .flat_map(str::split_whitespace),
                    );
                for n in names {
                    assert!(
                        bi.contains(n) || vf.contains(n),
                        "imported name {n:?} is not in the input:\n{toml}"
                    );
                }
            }
            Err(e) => assert!(
                e.0.starts_with(BI) || e.0.starts_with(VF) || e.0.starts_with("the imported"),
                "error names no file: {e}"
            ),
        }
    }
}

/// VID range lists (`10-20,30`): an accepted list prints as ranges that parse back to it and
/// holds exactly the VIDs its items name.
pub fn vid_list(data: &[u8]) {
    let text = text(data);
    let Ok(set) = text.parse::<VidSet>() else {
        return;
    };
    let printed = set.to_string();
    assert_eq!(printed.parse::<VidSet>().as_ref(), Ok(&set), "{printed}");
    let mut items = 0;
    let mut one_by_one = VidSet::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let (a, b): (u16, u16) = (a.trim().parse().unwrap(), b.trim().parse().unwrap());
        items += usize::from(b - a + 1);
        for v in a..=b {
            one_by_one.insert(v);
        }
    }
    assert_eq!(set.len(), items, "items overlap yet were accepted");
    assert_eq!(set, one_by_one);
    let ranges = set.ranges();
    for w in ranges.windows(2) {
        assert!(
            w[0].1 + 1 < w[1].0,
            "ranges {w:?} not maximal and ascending"
        );
    }
    for (a, b) in ranges {
        assert!(MIN_VID <= a && a <= b && b <= MAX_VID);
    }
}

/// A netlink receive buffer as the kernel could send it: split into messages, each link's
/// VLANs read as the bridge dump reads them, each error's extended-ack message as acks do.
pub fn netlink(data: &[u8]) {
    let Ok(msgs) = crate::netlink::parse_messages(data) else {
        return;
    };
    for m in msgs {
        match &m.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                for a in &l.attributes {
                    if let LinkAttribute::AfSpecBridge(spec) = a {
                        check_port(&crate::netlink::vlans_from(spec), "dumped port");
                    }
                }
            }
            NetlinkPayload::Error(e) => {
                let _ = crate::netlink::ext_ack_message(m.header.flags, &e.header);
            }
            _ => {}
        }
    }
}
