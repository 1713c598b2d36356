//! `virt-vlan show`: one row per port of each managed bridge, who is in which VLAN and why,
//! as an aligned table or JSON, or drawn as a switch (`diagram`). Pure: built from config,
//! kernel state and the record.

pub mod diagram;

use crate::config::Config;
use crate::intent::Role;
use crate::ownership::Record;
use crate::state::HostState;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    pub bridge: String,
    pub port: String,
    /// `self`, `uplink`, `guest` or `foreign`.
    pub role: String,
    pub pvid: Option<u16>,
    pub untagged: String,
    pub tagged: String,
    /// VIDs on a managed port that virt-vlan neither owns nor wants: left alone.
    pub foreign: String,
    /// Where the port's VLANs came from.
    pub source: String,
    pub domain: Option<String>,
    pub interface: Option<String>,
}

/// Rows for every port of every managed bridge that exists, the bridge's own port first.
pub fn rows(config: &Config, state: &HostState, record: &Record) -> Vec<Row> {
    let mut out = Vec::new();
    for (name, bc) in &config.bridges {
        let Some(bs) = state.bridges.get(name) else {
            continue;
        };
        let mut ports: Vec<(&str, u32, &crate::port_vlans::PortVlans)> =
            vec![(name.as_str(), bs.ifindex, &bs.self_vlans)];
        ports.extend(
            bs.ports
                .values()
                .map(|p| (p.name.as_str(), p.ifindex, &p.vlans)),
        );
        for (port, ifindex, vlans) in ports {
            let rec = record.get(name, port).filter(|r| r.ifindex == ifindex);
            let configured = if port == name {
                bc.self_port.as_ref().map(|h| {
                    (
                        Role::SelfPort,
                        h.vlans.members(),
                        format!("config {}", h.at),
                    )
                })
            } else if let Some(h) = bc.uplinks.get(port) {
                Some((Role::Uplink, h.vlans.members(), format!("config {}", h.at)))
            } else {
                config
                    .ports_of_domain(None)
                    .find(|p| p.interface == port)
                    .map(|p| (Role::Guest, p.vlans.members(), format!("config {}", p.at)))
            };
            let (role, ours, source, domain, interface) = match (rec, configured) {
                (Some(r), _) => (
                    r.role.to_string(),
                    r.owned.union(&r.desired.members()),
                    r.origin.what.clone(),
                    r.origin.domain.clone(),
                    r.origin.interface.clone(),
                ),
                (None, Some((role, members, src))) => (
                    role.to_string(),
                    members,
                    format!("{src} (not applied yet)"),
                    None,
                    None,
                ),
                (None, None) => (
                    "foreign".to_string(),
                    vlans.members(),
                    "-".to_string(),
                    None,
                    None,
                ),
            };
            let foreign = vlans.members().difference(&ours);
            out.push(Row {
                bridge: name.clone(),
                port: port.to_string(),
                role,
                pvid: vlans.pvid,
                untagged: vlans.untagged.to_string(),
                tagged: vlans.tagged.to_string(),
                foreign: foreign.to_string(),
                source,
                domain,
                interface,
            });
        }
    }
    out
}

/// Rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "BRIDGE", "PORT", "ROLE", "PVID", "UNTAGGED", "TAGGED", "FOREIGN", "SOURCE",
    ];
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let source = match (&r.domain, &r.interface) {
            (Some(d), Some(i)) => format!("{d} {i}: {}", r.source),
            (Some(d), None) => format!("{d}: {}", r.source),
            _ => r.source.clone(),
        };
        // names may hold control characters the kernel allows; never send them raw to a tty
        cells.push(vec![
            r.bridge.escape_debug().to_string(),
            r.port.escape_debug().to_string(),
            r.role.clone(),
            r.pvid.map_or("-".to_string(), |p| p.to_string()),
            dash(&r.untagged),
            dash(&r.tagged),
            dash(&r.foreign),
            source,
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for c in cells {
        let line: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i + 1 == c.len() {
                    s.clone()
                } else {
                    format!("{s:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::Origin;
    use crate::ownership::PortRecord;
    use crate::port_vlans::{PortVlans, VlanFlags};
    use crate::state::{BridgeState, PortState};
    use crate::vid::VidSet;

    fn fixture() -> (Config, HostState, Record) {
        let c = Config::parse(
            "t.toml",
            "[bridges.br0.self]\npvid = 1\n[bridges.br0.uplinks.eth0]\ntagged = \"100\"\n[[ports]]\ninterface = \"veth0\"\npvid = 100\n",
        )
        .unwrap();
        let mut b = BridgeState {
            name: "br0".into(),
            ifindex: 1,
            self_vlans: PortVlans::access(1),
            ..Default::default()
        };
        let mut veth0 = PortVlans::access(100);
        veth0.set(
            9,
            VlanFlags {
                pvid: false,
                untagged: false,
            },
        );
        for (n, i, v) in [
            (
                "eth0",
                2,
                PortVlans {
                    pvid: None,
                    untagged: VidSet::new(),
                    tagged: "100".parse().unwrap(),
                },
            ),
            ("veth0", 3, veth0),
            ("vnet0", 4, PortVlans::access(42)),
            ("tap9", 5, PortVlans::access(1)),
        ] {
            b.ports.insert(
                n.into(),
                PortState {
                    name: n.into(),
                    ifindex: i,
                    mac: None,
                    vlans: v,
                },
            );
        }
        let mut st = HostState::default();
        st.bridges.insert("br0".into(), b);
        let mut rec = Record::default();
        rec.set(
            "br0",
            "vnet0",
            PortRecord {
                ifindex: 4,
                role: Role::Guest,
                owned: "42".parse().unwrap(),
                desired: PortVlans::access(42),
                origin: Origin {
                    what: "metadata".into(),
                    domain: Some("vm1".into()),
                    interface: Some("52:54:00:00:00:01".into()),
                },
            },
        );
        (c, st, rec)
    }

    #[test]
    fn one_row_per_port_with_roles_and_sources() {
        let (c, st, rec) = fixture();
        let r = rows(&c, &st, &rec);
        let by: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.port.as_str(), r.role.as_str()))
            .collect();
        assert_eq!(
            by,
            [
                ("br0", "self"),
                ("eth0", "uplink"),
                ("tap9", "foreign"),
                ("veth0", "guest"),
                ("vnet0", "guest")
            ]
        );
        let veth0 = &r[3];
        assert_eq!(
            veth0.foreign, "9",
            "a VID someone else put there is shown as foreign"
        );
        assert!(
            veth0.source.contains("config t.toml:5 (not applied yet)"),
            "{}",
            veth0.source
        );
        let vnet0 = &r[4];
        assert_eq!(vnet0.domain.as_deref(), Some("vm1"));
        assert_eq!(vnet0.pvid, Some(42));
        let text = table(&r);
        assert!(
            text.lines()
                .next()
                .unwrap()
                .starts_with("BRIDGE  PORT   ROLE"),
            "{text}"
        );
        assert!(text.contains("vm1 52:54:00:00:00:01: metadata"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json[4]["untagged"], "42");
        assert_eq!(json[2]["role"], "foreign");
    }

    #[test]
    fn bridges_that_do_not_exist_have_no_rows() {
        let (c, _, rec) = fixture();
        assert!(rows(&c, &HostState::default(), &rec).is_empty());
    }
}
