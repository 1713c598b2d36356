//! Reading libvirt's XML: a domain's interfaces and our `urn:virt-vlan:1` metadata, a
//! network's bridge, portgroups and `<vlan>`s, and the network hook's `<hookData>` (network +
//! `<networkport>`). Pure; every complaint names the element and its line.

use crate::error::BadInput;
use crate::libvirt_vlan::{Lines, line_of, parse_vlan};
use crate::netdev::{format_mac, parse_mac};
use crate::port_vlans::PortVlans;
use crate::text::shown;
use roxmltree::{Document, Node};

/// Our metadata namespace.
pub const NS: &str = "urn:virt-vlan:1";

/// A `<vlan>` as read: its VLANs, or why it is malformed (with the line).
pub type VlanElement = Result<PortVlans, String>;

/// One `<interface>` of a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Lowercase `52:54:00:…`.
    pub mac: String,
    /// Live XML: the tap's name (`<target dev>`).
    pub target: Option<String>,
    /// Live XML: `<alias name>` (`net0`, `ua-…`).
    pub alias: Option<String>,
    /// `<interface type>` as libvirt reports it (a bridge-mode network shows as `bridge`).
    pub kind: String,
    /// `<source bridge>`.
    pub bridge: Option<String>,
    /// `<source network>`.
    pub network: Option<String>,
    /// `<source portgroup>`.
    pub portgroup: Option<String>,
    /// `<source portid>`: the network port's uuid.
    pub portid: Option<String>,
    /// The interface's own `<vlan>`.
    pub vlan: Option<VlanElement>,
    pub line: u32,
}

impl Iface {
    /// How messages name this interface: `net0 (52:54:00:…)` or the MAC alone.
    pub fn label(&self) -> String {
        match &self.alias {
            Some(a) => format!("{a} ({})", self.mac),
            None => self.mac.clone(),
        }
    }
}

/// Which interface a metadata entry is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    Mac(String),
    Alias(String),
    Target(String),
}

impl Selector {
    pub fn matches(&self, i: &Iface) -> bool {
        match self {
            Selector::Mac(m) => *m == i.mac,
            Selector::Alias(a) => i.alias.as_deref() == Some(a.as_str()),
            Selector::Target(t) => i.target.as_deref() == Some(t.as_str()),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Mac(m) => write!(f, "mac=\"{}\"", shown(m)),
            Selector::Alias(a) => write!(f, "alias=\"{}\"", shown(a)),
            Selector::Target(t) => write!(f, "target=\"{}\"", shown(t)),
        }
    }
}

/// One `<vv:interface>` of our metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaEntry {
    pub selector: Selector,
    pub vlans: PortVlans,
    pub line: u32,
}

/// What a hook or virsh tells about a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub uuid: Option<String>,
    pub interfaces: Vec<Iface>,
    /// Our metadata entries; a malformed block is an error for the whole domain.
    pub metadata: Result<Vec<MetaEntry>, String>,
}

/// A network's `<portgroup>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portgroup {
    pub name: String,
    pub default: bool,
    pub vlan: Option<VlanElement>,
}

/// A libvirt network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub forward_mode: Option<String>,
    /// `<bridge name>`.
    pub bridge: Option<String>,
    pub portgroups: Vec<Portgroup>,
    pub vlan: Option<VlanElement>,
}

impl Network {
    /// The portgroup `name`, or (with `None`) the `default='yes'` one.
    pub fn portgroup(&self, name: Option<&str>) -> Option<&Portgroup> {
        match name {
            Some(n) => self.portgroups.iter().find(|p| p.name == n),
            None => self.portgroups.iter().find(|p| p.default),
        }
    }
}

/// A `<networkport>` from the network hook: one guest interface plugged into a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetPort {
    pub uuid: String,
    pub owner: Option<String>,
    pub mac: String,
    /// `<group>`: the portgroup, only when the interface names one.
    pub group: Option<String>,
    /// `<plug bridge>`.
    pub bridge: Option<String>,
    pub vlan: Option<VlanElement>,
}

fn parse_doc<'a>(what: &str, text: &'a str) -> Result<Document<'a>, BadInput> {
    Document::parse(text).map_err(|e| match e {
        // roxmltree refuses every DTD (so no entity expansion, internal or external) but
        // says where only as 1:1
        roxmltree::Error::DtdDetected => {
            let at = text.find("<!DOCTYPE").unwrap_or(0);
            let line = text[..at].matches('\n').count() + 1;
            BadInput(format!(
                "{what}: line {line}: <!DOCTYPE> refused: libvirt's XML has no DTD, and \
                 entity declarations are not expanded"
            ))
        }
        e => {
            // where the input ends, for the errors roxmltree places nowhere
            let line = match e {
                roxmltree::Error::NoRootNode | roxmltree::Error::UnclosedRootNode => {
                    text.lines().count().max(1) as u32
                }
                ref e => e.pos().row,
            };
            BadInput(format!("{what}: line {line}: not well-formed XML: {e}"))
        }
    })
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace().is_none()
    })
}

fn attr(n: Option<Node>, name: &str) -> Option<String> {
    n.and_then(|n| n.attribute(name)).map(str::to_string)
}

/// Reads a domain's XML (from a qemu/lxc hook's stdin or `virsh dumpxml`).
pub fn parse_domain(text: &str) -> Result<Domain, BadInput> {
    let doc = parse_doc("domain XML", text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "domain" {
        return Err(BadInput(format!(
            "domain XML: root element is <{}>, not <domain>",
            shown(root.tag_name().name())
        )));
    }
    let name = child(root, "name")
        .and_then(|n| n.text())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BadInput("domain XML: <domain> has no <name>".into()))?;
    let uuid = child(root, "uuid")
        .and_then(|n| n.text())
        .map(|s| s.trim().to_string());
    let lines = Lines::of(text);
    let mut interfaces = Vec::new();
    if let Some(devices) = child(root, "devices") {
        for i in devices
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "interface")
        {
            interfaces.push(parse_iface(i, &lines));
        }
    }
    let metadata = match child(root, "metadata") {
        None => Ok(Vec::new()),
        Some(m) => parse_metadata(m, &lines),
    };
    Ok(Domain {
        name,
        uuid,
        interfaces,
        metadata,
    })
}

fn parse_iface(i: Node, lines: &Lines) -> Iface {
    let source = child(i, "source");
    Iface {
        mac: attr(child(i, "mac"), "address")
            .map(|m| {
                parse_mac(&m)
                    .map(|b| format_mac(&b))
                    .unwrap_or(m.to_lowercase())
            })
            .unwrap_or_default(),
        target: attr(child(i, "target"), "dev"),
        alias: attr(child(i, "alias"), "name"),
        kind: i.attribute("type").unwrap_or("").to_string(),
        bridge: attr(source, "bridge"),
        network: attr(source, "network"),
        portgroup: attr(source, "portgroup"),
        portid: attr(source, "portid"),
        vlan: child(i, "vlan").map(parse_vlan),
        line: lines.at(i),
    }
}

/// Our `<vv:vlans>` blocks inside `<metadata>`. Elements of other namespaces are other
/// tools' business; inside ours, anything unexpected is an error.
fn parse_metadata(meta: Node, lines: &Lines) -> Result<Vec<MetaEntry>, String> {
    let mut out: Vec<MetaEntry> = Vec::new();
    // selector → line: a duplicate is found in O(1), not by scanning every entry so far
    let mut seen: std::collections::HashMap<Selector, u32> = std::collections::HashMap::new();
    let ours = |n: &Node| n.tag_name().namespace() == Some(NS);
    // children of our root may carry our namespace or none (hand-written XML)
    let inner =
        |n: &Node| n.tag_name().namespace() == Some(NS) || n.tag_name().namespace().is_none();
    for block in meta.children().filter(|c| c.is_element() && ours(c)) {
        let at = |n: Node, msg: &str| format!("metadata line {}: {msg}", line_of(n));
        if block.tag_name().name() != "vlans" {
            return Err(at(
                block,
                &format!(
                    "<{}> in {NS}: expected <vlans>",
                    shown(block.tag_name().name())
                ),
            ));
        }
        for e in block.children().filter(|c| c.is_element()) {
            if !inner(&e) || e.tag_name().name() != "interface" {
                return Err(at(
                    e,
                    &format!(
                        "<{}> in <vlans>: expected <interface mac|alias|target=…>",
                        shown(e.tag_name().name())
                    ),
                ));
            }
            let mut sels = Vec::new();
            for a in e.attributes() {
                match a.name() {
                    "mac" => match parse_mac(a.value()) {
                        Some(m) => sels.push(Selector::Mac(format_mac(&m))),
                        None => {
                            return Err(at(
                                e,
                                &format!(
                                    "<interface mac=\"{}\">: not a MAC address",
                                    shown(a.value())
                                ),
                            ));
                        }
                    },
                    "alias" => sels.push(Selector::Alias(a.value().to_string())),
                    "target" => sels.push(Selector::Target(a.value().to_string())),
                    other => {
                        return Err(at(
                            e,
                            &format!("<interface> has unknown attribute '{}'", shown(other)),
                        ));
                    }
                }
            }
            let selector = match sels.len() {
                1 => sels.remove(0),
                0 => return Err(at(e, "<interface> needs one of mac=, alias= or target=")),
                _ => {
                    return Err(at(
                        e,
                        "<interface> names the interface twice; give one of mac=, alias=, target=",
                    ));
                }
            };
            let vlans: Vec<Node> = e.children().filter(|c| c.is_element()).collect();
            let vlan = match vlans.as_slice() {
                [v] if inner(v) && v.tag_name().name() == "vlan" => *v,
                [] => return Err(at(e, &format!("<interface {selector}> has no <vlan>"))),
                [v] => {
                    return Err(at(
                        *v,
                        &format!(
                            "<{}> in <interface>: expected <vlan>",
                            shown(v.tag_name().name())
                        ),
                    ));
                }
                _ => {
                    return Err(at(
                        e,
                        &format!(
                            "<interface {selector}> has more than one child; expected one <vlan>"
                        ),
                    ));
                }
            };
            let vlans =
                parse_vlan(vlan).map_err(|m| format!("metadata <interface {selector}>: {m}"))?;
            if let Some(first) = seen.get(&selector) {
                return Err(at(
                    e,
                    &format!("<interface {selector}> is listed twice (first at line {first})"),
                ));
            }
            seen.insert(selector.clone(), lines.at(e));
            out.push(MetaEntry {
                selector,
                vlans,
                line: lines.at(e),
            });
        }
    }
    Ok(out)
}

fn parse_network_node(n: Node) -> Result<Network, BadInput> {
    let name = child(n, "name")
        .and_then(|x| x.text())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BadInput("network XML: <network> has no <name>".into()))?;
    let portgroups = n
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "portgroup")
        .map(|p| Portgroup {
            name: p.attribute("name").unwrap_or("").to_string(),
            default: p.attribute("default") == Some("yes"),
            vlan: child(p, "vlan").map(parse_vlan),
        })
        .collect();
    Ok(Network {
        name,
        forward_mode: attr(child(n, "forward"), "mode"),
        bridge: attr(child(n, "bridge"), "name"),
        portgroups,
        vlan: child(n, "vlan").map(parse_vlan),
    })
}

/// Reads a network's XML (`virsh net-dumpxml`, or the `<network>` of a hook's `<hookData>`).
pub fn parse_network(text: &str) -> Result<Network, BadInput> {
    let doc = parse_doc("network XML", text)?;
    let root = doc.root_element();
    let net = if root.tag_name().name() == "hookData" {
        child(root, "network")
    } else {
        Some(root)
    };
    match net {
        Some(n) if n.tag_name().name() == "network" => parse_network_node(n),
        _ => Err(BadInput("network XML: no <network> element".into())),
    }
}

/// Reads the network hook's `<hookData>`: the network and, for port ops, the port.
pub fn parse_hook_data(text: &str) -> Result<(Network, Option<NetPort>), BadInput> {
    let network = parse_network(text)?;
    let doc = parse_doc("hook XML", text)?;
    let port = match child(doc.root_element(), "networkport") {
        None => None,
        Some(p) => {
            let at =
                |n: Node, msg: String| BadInput(format!("hook XML: line {}: {msg}", line_of(n)));
            let uuid = child(p, "uuid")
                .and_then(|x| x.text())
                .map(|s| s.trim().to_string())
                .ok_or_else(|| at(p, "<networkport> has no <uuid>".into()))?;
            // it names a file and the port helper's argument: a UUID, nothing else
            if uuid.is_empty()
                || uuid.len() > 36
                || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            {
                return Err(at(
                    p,
                    format!("<networkport> <uuid>{}</uuid>: not a UUID", shown(&uuid)),
                ));
            }
            let mac = match child(p, "mac").map(|m| (m, m.attribute("address"))) {
                Some((m, Some(a))) => parse_mac(a).map(|b| format_mac(&b)).ok_or_else(|| {
                    at(
                        m,
                        format!(
                            "<networkport> <mac address='{}'>: not a MAC address",
                            shown(a)
                        ),
                    )
                })?,
                _ => return Err(at(p, "<networkport> has no <mac address>".into())),
            };
            Some(NetPort {
                uuid,
                owner: child(p, "owner")
                    .and_then(|o| child(o, "name"))
                    .and_then(|n| n.text())
                    .map(|s| s.trim().to_string()),
                mac,
                group: child(p, "group")
                    .and_then(|g| g.text())
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
                bridge: attr(child(p, "plug"), "bridge"),
                vlan: child(p, "vlan").map(parse_vlan),
            })
        }
    };
    Ok((network, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live XML a qemu `start begin` hook got from libvirt 9.0 for a bridge-mode network
    /// interface (trimmed), with our metadata as `virsh metadata --key vv` stores it.
    const DOMAIN: &str = r#"<domain type='qemu' id='3'>
  <name>vm-b</name>
  <uuid>18264d6c-d6ba-458b-8940-4fe9cadc5eeb</uuid>
  <metadata>
    <other:thing xmlns:other="urn:someone-else"><whatever/></other:thing>
    <vv:vlans xmlns:vv="urn:virt-vlan:1">
      <vv:interface mac="52:54:00:BB:00:02">
        <vv:vlan trunk="yes"><vv:tag id="100" nativeMode="untagged"/><vv:tag id="200"/></vv:vlan>
      </vv:interface>
      <vv:interface alias="net2"><vv:vlan><vv:tag id="7"/></vv:vlan></vv:interface>
    </vv:vlans>
  </metadata>
  <devices>
    <interface type='bridge'>
      <mac address='52:54:00:bb:00:01'/>
      <source network='lan' portgroup='dmz-4' portid='f64c4c65-1e32-4cf4-b69a-d0ff19327f00' bridge='br0'/>
      <target dev='vnet1'/>
      <model type='virtio'/>
      <alias name='net0'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:bb:00:02'/>
      <source bridge='br0'/>
      <vlan><tag id='42'/></vlan>
      <target dev='vnet2'/>
      <alias name='net1'/>
    </interface>
  </devices>
</domain>"#;

    #[test]
    fn reads_interfaces_and_metadata() {
        let d = parse_domain(DOMAIN).unwrap();
        assert_eq!(d.name, "vm-b");
        assert_eq!(d.interfaces.len(), 2);
        let i = &d.interfaces[0];
        assert_eq!(i.mac, "52:54:00:bb:00:01");
        assert_eq!(i.target.as_deref(), Some("vnet1"));
        assert_eq!(i.alias.as_deref(), Some("net0"));
        assert_eq!(i.network.as_deref(), Some("lan"));
        assert_eq!(i.portgroup.as_deref(), Some("dmz-4"));
        assert_eq!(i.bridge.as_deref(), Some("br0"));
        assert_eq!(
            i.portid.as_deref(),
            Some("f64c4c65-1e32-4cf4-b69a-d0ff19327f00")
        );
        assert_eq!(i.vlan, None);
        assert_eq!(d.interfaces[1].vlan, Some(Ok(PortVlans::access(42))));
        let m = d.metadata.unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].selector,
            Selector::Mac("52:54:00:bb:00:02".into()),
            "MACs compare lowercase"
        );
        assert_eq!(m[0].vlans.to_string(), "pvid 100 untagged 100 tagged 200");
        assert!(m[0].selector.matches(&d.interfaces[1]));
        assert_eq!(m[1].selector, Selector::Alias("net2".into()));
    }

    #[test]
    fn malformed_metadata_names_the_line_and_element() {
        let cases = [
            (
                "<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='4095'/></vv:vlan></vv:interface>",
                "4095",
            ),
            ("<vv:interface mac='52:54:00:00:00:01'/>", "has no <vlan>"),
            (
                "<vv:interface><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>",
                "needs one of mac=",
            ),
            (
                "<vv:interface mac='x'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>",
                "not a MAC",
            ),
            (
                "<vv:interface mac='52:54:00:00:00:01' alias='net0'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>",
                "names the interface twice",
            ),
            (
                "<vv:interface mac='52:54:00:00:00:01' colour='red'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>",
                "unknown attribute 'colour'",
            ),
            ("<vv:port mac='52:54:00:00:00:01'/>", "<port> in <vlans>"),
            (
                "<vv:interface alias='a'><vv:vlan><vv:tag id='1'/></vv:vlan></vv:interface><vv:interface alias='a'><vv:vlan><vv:tag id='2'/></vv:vlan></vv:interface>",
                "listed twice",
            ),
            (
                "<vv:interface alias='a'><vv:vlan trunk='no'><vv:tag id='1'/><vv:tag id='2'/></vv:vlan></vv:interface>",
                "trunk='no'",
            ),
        ];
        for (inner, want) in cases {
            let xml = format!(
                "<domain><name>d</name><metadata>\n<vv:vlans xmlns:vv='urn:virt-vlan:1'>\n{inner}\n</vv:vlans></metadata></domain>"
            );
            let e = parse_domain(&xml).unwrap().metadata.unwrap_err();
            assert!(e.contains(want), "{inner}: {e}");
            assert!(e.contains("line 3"), "{inner}: {e}");
        }
        let e = parse_domain("<domain><name>d</name><metadata><vv:other xmlns:vv='urn:virt-vlan:1'/></metadata></domain>")
            .unwrap()
            .metadata
            .unwrap_err();
        assert!(e.contains("expected <vlans>"), "{e}");
    }

    #[test]
    fn unprefixed_children_of_our_block_are_accepted() {
        let d = parse_domain(
            "<domain><name>d</name><metadata><vlans xmlns='urn:virt-vlan:1'><interface target='vm1-eth0'><vlan><tag id='9'/></vlan></interface></vlans></metadata></domain>",
        )
        .unwrap();
        assert_eq!(
            d.metadata.unwrap()[0].selector,
            Selector::Target("vm1-eth0".into())
        );
    }

    #[test]
    fn bad_domain_documents() {
        assert!(
            parse_domain("<domain>")
                .unwrap_err()
                .0
                .contains("not well-formed")
        );
        assert!(
            parse_domain("<network/>")
                .unwrap_err()
                .0
                .contains("not <domain>")
        );
        assert!(
            parse_domain("<domain/>")
                .unwrap_err()
                .0
                .contains("no <name>")
        );
    }

    /// The network hook's stdin for `port-created` on libvirt 9.0, portgroup named.
    const PORT_CREATED: &str = r#"<hookData>
  <network connections='1'>
    <name>lan</name>
    <uuid>0330f018-3d1e-4aa5-9f52-ed605b75764b</uuid>
    <forward mode='bridge'/>
    <bridge name='br0'/>
    <portgroup name='dmz-4'>
    </portgroup>
    <portgroup name='access' default='yes'>
      <vlan><tag id='30'/></vlan>
    </portgroup>
    <vlan trunk='yes'><tag id='1'/><tag id='2'/></vlan>
  </network>
  <networkport>
    <uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid>
    <owner>
      <name>vm-b</name>
      <uuid>18264d6c-d6ba-458b-8940-4fe9cadc5eeb</uuid>
    </owner>
    <group>dmz-4</group>
    <mac address='52:54:00:bb:00:01'/>
    <plug type='bridge' bridge='br0'/>
  </networkport>
</hookData>"#;

    #[test]
    fn reads_hook_data() {
        let (n, p) = parse_hook_data(PORT_CREATED).unwrap();
        assert_eq!(n.name, "lan");
        assert_eq!(n.forward_mode.as_deref(), Some("bridge"));
        assert_eq!(n.bridge.as_deref(), Some("br0"));
        assert_eq!(n.portgroup(Some("dmz-4")).unwrap().vlan, None);
        assert_eq!(n.portgroup(None).unwrap().name, "access");
        assert_eq!(
            n.portgroup(None).unwrap().vlan,
            Some(Ok(PortVlans::access(30)))
        );
        assert_eq!(
            n.vlan
                .as_ref()
                .unwrap()
                .as_ref()
                .unwrap()
                .tagged
                .to_string(),
            "1-2"
        );
        let p = p.unwrap();
        assert_eq!(p.owner.as_deref(), Some("vm-b"));
        assert_eq!(p.group.as_deref(), Some("dmz-4"));
        assert_eq!(p.bridge.as_deref(), Some("br0"));
        assert_eq!(p.mac, "52:54:00:bb:00:01");
        // network-only hook data (started/updated) has no port
        let (n, p) =
            parse_hook_data("<hookData><network><name>x</name></network></hookData>").unwrap();
        assert_eq!((n.name.as_str(), p), ("x", None));
        assert!(parse_network("<hookData/>").is_err());
    }
}
