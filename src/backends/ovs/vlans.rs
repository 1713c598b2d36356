//! The mapping between our port model (`PortVlans`) and an Open vSwitch Port row's VLAN
//! columns (`vlan_mode`, `tag`, `trunks`), both ways. Pure: no I/O.
//!
//! Writing (DESIGN.md, "Open vSwitch facts"):
//!
//! | port model                        | vlan_mode         | tag  | trunks  |
//! |-----------------------------------|-------------------|------|---------|
//! | access P                          | `access`          | P    | []      |
//! | tagged T only                     | `trunk`           | []   | T       |
//! | PVID P untagged + tagged T        | `native-untagged` | P    | T ∪ {P} |
//! | PVID P egress tagged + tagged T   | `native-tagged`   | P    | T ∪ {P} |
//! | no VLAN (isolated)                | `trunk`           | 4095 | [4095]  |
//!
//! A trunk or native port is never written with an empty `trunks`: to Open vSwitch that means
//! every VLAN. Reading follows ovs-vswitchd (`bridge.c`, `ofproto-dpif.c`): `vlan_mode` unset is
//! access when `tag` is set, else trunk; access ignores `trunks`; trunk ignores `tag`; an empty
//! `trunks` carries every VLAN; native modes always carry their native VLAN.

use crate::port_vlans::{Native, PortVlans};
use crate::vid::{MAX_VID, MIN_VID, VidSet};
use std::collections::BTreeSet;
use std::fmt;

/// The VLAN that carries nothing: an isolated port trunks only this one (as Neutron does).
pub const DEAD_VLAN: u16 = 4095;

/// `Port.vlan_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VlanMode {
    Access,
    Trunk,
    NativeTagged,
    NativeUntagged,
    Dot1qTunnel,
}

impl VlanMode {
    pub fn as_str(self) -> &'static str {
        match self {
            VlanMode::Access => "access",
            VlanMode::Trunk => "trunk",
            VlanMode::NativeTagged => "native-tagged",
            VlanMode::NativeUntagged => "native-untagged",
            VlanMode::Dot1qTunnel => "dot1q-tunnel",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "access" => VlanMode::Access,
            "trunk" => VlanMode::Trunk,
            "native-tagged" => VlanMode::NativeTagged,
            "native-untagged" => VlanMode::NativeUntagged,
            "dot1q-tunnel" => VlanMode::Dot1qTunnel,
            _ => return None,
        })
    }
}

impl fmt::Display for VlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Port row's three VLAN columns, as stored (values 0–4095, unset as `None`/empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortVlanColumns {
    pub vlan_mode: Option<VlanMode>,
    pub tag: Option<u16>,
    pub trunks: BTreeSet<u16>,
}

impl fmt::Display for PortVlanColumns {
    /// `vlan_mode=native-untagged tag=10 trunks=[10,20]`, as ovs-vsctl would set them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = self.vlan_mode.map_or("[]", VlanMode::as_str);
        let tag = self.tag.map_or("[]".to_string(), |t| t.to_string());
        let trunks: Vec<String> = self.trunks.iter().map(u16::to_string).collect();
        write!(
            f,
            "vlan_mode={mode} tag={tag} trunks=[{}]",
            trunks.join(",")
        )
    }
}

/// A port model Open vSwitch cannot express; names the port, where its VLANs came from, what
/// is wrong and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("port {port} ({source_desc}): {problem} on Open vSwitch; {fix}")]
pub struct Inexpressible {
    pub port: String,
    pub source_desc: String,
    pub problem: String,
    pub fix: String,
}

/// The columns that make an Open vSwitch port carry exactly `vlans`. `port` and `source`
/// (e.g. "domain web1's <vlan>") only name things in the error.
pub fn to_columns(
    vlans: &PortVlans,
    port: &str,
    source: &str,
) -> Result<PortVlanColumns, Inexpressible> {
    let refuse = |problem: String, fix: &str| Inexpressible {
        port: port.to_string(),
        source_desc: source.to_string(),
        problem,
        fix: fix.to_string(),
    };
    if vlans.untagged.len() > 1 {
        return Err(refuse(
            format!(
                "{} untagged VIDs ({}) cannot be expressed: a port has at most one untagged \
                 (native) VLAN",
                vlans.untagged.len(),
                vlans.untagged
            ),
            "keep one untagged VID, make it the PVID, and carry the others tagged",
        ));
    }
    let both = vlans.untagged.intersection(&vlans.tagged);
    if !both.is_empty() {
        return Err(refuse(
            format!("VID {both} is both untagged and tagged"),
            "list each VID once",
        ));
    }
    let untagged = vlans.untagged.iter().next();
    let Some(pvid) = vlans.pvid else {
        if let Some(u) = untagged {
            return Err(refuse(
                format!(
                    "VID {u} leaves untagged without being the PVID, which cannot be expressed"
                ),
                &format!("make {u} the PVID (native untagged) or carry it tagged"),
            ));
        }
        if vlans.tagged.is_empty() {
            return Ok(isolated());
        }
        return Ok(PortVlanColumns {
            vlan_mode: Some(VlanMode::Trunk),
            tag: None,
            trunks: vlans.tagged.iter().collect(),
        });
    };
    if let Some(u) = untagged.filter(|u| *u != pvid) {
        return Err(refuse(
            format!("VID {u} leaves untagged but the PVID is {pvid}, which cannot be expressed"),
            &format!("make {u} the PVID, or carry it tagged"),
        ));
    }
    let mut trunks: BTreeSet<u16> = vlans.tagged.iter().collect();
    trunks.insert(pvid);
    let mode = if untagged == Some(pvid) {
        if vlans.tagged.is_empty() {
            return Ok(PortVlanColumns {
                vlan_mode: Some(VlanMode::Access),
                tag: Some(pvid),
                trunks: BTreeSet::new(),
            });
        }
        VlanMode::NativeUntagged
    } else if vlans.tagged.contains(pvid) {
        VlanMode::NativeTagged
    } else {
        return Err(refuse(
            format!("PVID {pvid} is not a VLAN the port carries, which cannot be expressed"),
            &format!("add {pvid} to the port's VLANs (untagged or tagged) or drop the PVID"),
        ));
    };
    Ok(PortVlanColumns {
        vlan_mode: Some(mode),
        tag: Some(pvid),
        trunks,
    })
}

/// The columns of a port in no VLAN: a trunk of the dead VLAN only.
pub fn isolated() -> PortVlanColumns {
    PortVlanColumns {
        vlan_mode: Some(VlanMode::Trunk),
        tag: Some(DEAD_VLAN),
        trunks: BTreeSet::from([DEAD_VLAN]),
    }
}

/// What a Port row's columns make ovs-vswitchd carry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived value per port; a box would only make callers deref"
)]
pub enum Carried {
    /// Exactly this (an isolated port is `PortVlans::none()`).
    Vlans(PortVlans),
    /// An empty `trunks`: every VLAN, tagged, and untagged frames too — as the native VLAN
    /// when there is one, else as VLAN 0. `check` should warn: almost never what was meant
    /// (libvirt's `<tag id='4' nativeMode='tagged'/>` without `trunk='yes'` does this).
    EveryVlan { native: Option<(u16, Native)> },
    /// Something the port model has no words for (dot1q-tunnel, VLAN 0 traffic on a trunk, an
    /// access port without a tag, …), described.
    Other(String),
}

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Carried::Vlans(v) => write!(f, "{v}"),
            Carried::EveryVlan { native: None } => f.write_str("every VLAN (empty trunks)"),
            Carried::EveryVlan {
                native: Some((p, n)),
            } => {
                let how = match n {
                    Native::Untagged => "untagged",
                    Native::Tagged => "egress tagged",
                };
                write!(f, "every VLAN (empty trunks), native VLAN {p} {how}")
            }
            Carried::Other(s) => f.write_str(s),
        }
    }
}

/// What a port with these columns carries, as ovs-vswitchd reads them.
pub fn from_columns(c: &PortVlanColumns) -> Carried {
    let mode = match c.vlan_mode {
        Some(m) => m,
        None if c.tag.is_some() => VlanMode::Access,
        None => VlanMode::Trunk,
    };
    // VIDs a trunk list names that are VLANs in our model (0 and 4095 are not).
    let listed: VidSet = c
        .trunks
        .iter()
        .copied()
        .filter(|v| (MIN_VID..=MAX_VID).contains(v))
        .collect();
    match mode {
        VlanMode::Dot1qTunnel => Carried::Other(format!("dot1q-tunnel (QinQ) port: {c}")),
        VlanMode::Access => match c.tag {
            Some(t) if (MIN_VID..=MAX_VID).contains(&t) => Carried::Vlans(PortVlans::access(t)),
            Some(t) => Carried::Other(format!(
                "access port in VLAN {t}, which is not a usable VLAN"
            )),
            None => {
                Carried::Other("access port without a tag: untagged frames only, as VLAN 0".into())
            }
        },
        VlanMode::Trunk => {
            if c.trunks.is_empty() {
                return Carried::EveryVlan { native: None };
            }
            if c.trunks.contains(&0) {
                return Carried::Other(format!(
                    "trunk that carries untagged frames as VLAN 0 besides VLANs [{listed}]"
                ));
            }
            Carried::Vlans(PortVlans {
                pvid: None,
                untagged: VidSet::new(),
                tagged: listed,
            })
        }
        VlanMode::NativeTagged | VlanMode::NativeUntagged => {
            let native = if mode == VlanMode::NativeTagged {
                Native::Tagged
            } else {
                Native::Untagged
            };
            let Some(p) = c.tag.filter(|t| (MIN_VID..=MAX_VID).contains(t)) else {
                return Carried::Other(format!(
                    "{mode} port without a usable native VLAN (tag {})",
                    c.tag.map_or("unset".to_string(), |t| t.to_string())
                ));
            };
            if c.trunks.is_empty() {
                return Carried::EveryVlan {
                    native: Some((p, native)),
                };
            }
            let mut tagged = listed;
            tagged.remove(p);
            let vlans = PortVlans::build(Some(p), native, VidSet::new(), tagged)
                .expect("the native VLAN was taken out of the tagged set");
            Carried::Vlans(vlans)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> VidSet {
        x.parse().unwrap()
    }

    fn cols(mode: Option<VlanMode>, tag: Option<u16>, trunks: &[u16]) -> PortVlanColumns {
        PortVlanColumns {
            vlan_mode: mode,
            tag,
            trunks: trunks.iter().copied().collect(),
        }
    }

    fn build(pvid: Option<u16>, native: Native, tagged: &str) -> PortVlans {
        PortVlans::build(pvid, native, VidSet::new(), s(tagged)).unwrap()
    }

    fn write(v: &PortVlans) -> PortVlanColumns {
        to_columns(v, "vnet0", "test").unwrap()
    }

    use VlanMode::*;

    #[test]
    fn every_mode_as_the_design_maps_it() {
        assert_eq!(
            write(&PortVlans::access(10)),
            cols(Some(Access), Some(10), &[])
        );
        assert_eq!(
            write(&build(None, Native::Untagged, "20,30-31")),
            cols(Some(Trunk), None, &[20, 30, 31])
        );
        assert_eq!(
            write(&build(Some(10), Native::Untagged, "20")),
            cols(Some(NativeUntagged), Some(10), &[10, 20])
        );
        assert_eq!(
            write(&build(Some(30), Native::Tagged, "31")),
            cols(Some(NativeTagged), Some(30), &[30, 31])
        );
        // native tagged with nothing else tagged: still an explicit list
        assert_eq!(
            write(&build(Some(30), Native::Tagged, "")),
            cols(Some(NativeTagged), Some(30), &[30])
        );
        assert_eq!(
            write(&PortVlans::none()),
            cols(Some(Trunk), Some(4095), &[4095])
        );
        assert_eq!(
            write(&PortVlans::none()).to_string(),
            "vlan_mode=trunk tag=4095 trunks=[4095]"
        );
    }

    #[test]
    fn never_an_empty_trunk_list_outside_access() {
        let cases = [
            PortVlans::none(),
            PortVlans::access(1),
            PortVlans::access(4094),
            build(None, Native::Untagged, "1"),
            build(None, Native::Untagged, "1-4094"),
            build(Some(5), Native::Untagged, "6"),
            build(Some(5), Native::Tagged, ""),
            build(Some(5), Native::Tagged, "1-4094"),
        ];
        for v in cases {
            let c = write(&v);
            assert!(
                c.vlan_mode == Some(Access) || !c.trunks.is_empty(),
                "{v} wrote {c}"
            );
        }
    }

    #[test]
    fn round_trips() {
        let cases = [
            PortVlans::none(),
            PortVlans::access(1),
            PortVlans::access(4094),
            build(None, Native::Untagged, "100,200-210"),
            build(None, Native::Untagged, "1-4094"),
            build(Some(10), Native::Untagged, "20,30"),
            build(Some(10), Native::Untagged, "1-9,11-4094"),
            build(Some(30), Native::Tagged, "31"),
            build(Some(30), Native::Tagged, ""),
        ];
        for v in cases {
            let c = write(&v);
            assert_eq!(from_columns(&c), Carried::Vlans(v.clone()), "{v} via {c}");
        }
    }

    #[test]
    fn refusals_name_the_port_the_source_and_the_fix() {
        let two_untagged = PortVlans {
            pvid: Some(10),
            untagged: s("10,11"),
            tagged: VidSet::new(),
        };
        let e = to_columns(&two_untagged, "vnet3", "domain web1's <vlan>").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("vnet3") && msg.contains("domain web1's <vlan>"),
            "{msg}"
        );
        assert!(
            msg.contains("10-11") && msg.contains("keep one untagged"),
            "{msg}"
        );

        let untagged_no_pvid = PortVlans {
            pvid: None,
            untagged: s("7"),
            tagged: s("8"),
        };
        let msg = to_columns(&untagged_no_pvid, "p", "config")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("VID 7") && msg.contains("make 7 the PVID"),
            "{msg}"
        );

        let untagged_not_pvid = PortVlans {
            pvid: Some(8),
            untagged: s("7"),
            tagged: s("8"),
        };
        let msg = to_columns(&untagged_not_pvid, "p", "config")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("PVID is 8"), "{msg}");

        let pvid_not_member = PortVlans {
            pvid: Some(9),
            untagged: VidSet::new(),
            tagged: s("8"),
        };
        let e = to_columns(&pvid_not_member, "p", "config").unwrap_err();
        assert!(e.problem.contains("PVID 9"), "{e}");
        assert!(e.fix.contains("add 9"), "{e}");

        let both = PortVlans {
            pvid: Some(5),
            untagged: s("5"),
            tagged: s("5"),
        };
        assert!(to_columns(&both, "p", "config").is_err());
    }

    #[test]
    fn libvirts_native_tagged_without_trunk_carries_every_vlan() {
        let c = cols(Some(NativeTagged), Some(4), &[]);
        let got = from_columns(&c);
        assert_eq!(
            got,
            Carried::EveryVlan {
                native: Some((4, Native::Tagged))
            }
        );
        assert!(got.to_string().contains("every VLAN"), "{got}");
        assert_eq!(
            from_columns(&cols(Some(NativeUntagged), Some(4), &[])),
            Carried::EveryVlan {
                native: Some((4, Native::Untagged))
            }
        );
    }

    #[test]
    fn reading_follows_ovs_vswitchd() {
        // A port libvirt adds without <vlan>: nothing set = trunk of everything.
        assert_eq!(
            from_columns(&cols(None, None, &[])),
            Carried::EveryVlan { native: None }
        );
        assert_eq!(
            from_columns(&cols(Some(Trunk), None, &[])),
            Carried::EveryVlan { native: None }
        );
        // vlan_mode unset with a tag is access; trunks are ignored then (seed 004's vlan1234).
        assert_eq!(
            from_columns(&cols(None, Some(1234), &[])),
            Carried::Vlans(PortVlans::access(1234))
        );
        assert_eq!(
            from_columns(&cols(None, Some(5), &[6, 7])),
            Carried::Vlans(PortVlans::access(5))
        );
        assert_eq!(
            from_columns(&cols(Some(Access), Some(5), &[6])),
            Carried::Vlans(PortVlans::access(5))
        );
        // vlan_mode unset, no tag, a list: a trunk of the list (seed 004's uplink).
        assert_eq!(
            from_columns(&cols(None, None, &[100, 200])),
            Carried::Vlans(build(None, Native::Untagged, "100,200"))
        );
        // trunk ignores its tag; the native VLAN is carried even when not listed.
        assert_eq!(
            from_columns(&cols(Some(Trunk), Some(9), &[100])),
            Carried::Vlans(build(None, Native::Untagged, "100"))
        );
        assert_eq!(
            from_columns(&cols(Some(NativeUntagged), Some(10), &[20])),
            Carried::Vlans(build(Some(10), Native::Untagged, "20"))
        );
        // the dead VLAN is nothing; isolated in other spellings too
        assert_eq!(
            from_columns(&cols(Some(Trunk), None, &[4095])),
            Carried::Vlans(PortVlans::none())
        );
        assert_eq!(
            from_columns(&cols(Some(Trunk), Some(4095), &[4095, 20])),
            Carried::Vlans(build(None, Native::Untagged, "20"))
        );
    }

    #[test]
    fn what_the_model_cannot_say_is_described() {
        for c in [
            cols(Some(Dot1qTunnel), Some(100), &[]),
            cols(Some(Access), None, &[]),
            cols(Some(Access), Some(0), &[]),
            cols(None, Some(4095), &[]),
            cols(Some(Trunk), None, &[0, 10]),
            cols(Some(NativeUntagged), None, &[10]),
            cols(Some(NativeTagged), Some(0), &[10]),
        ] {
            match from_columns(&c) {
                Carried::Other(why) => assert!(!why.is_empty()),
                got => panic!("{c} read as {got}"),
            }
        }
        assert!(
            from_columns(&cols(Some(Trunk), None, &[0, 10]))
                .to_string()
                .contains("VLAN 0")
        );
    }

    #[test]
    fn mode_names() {
        for m in [Access, Trunk, NativeTagged, NativeUntagged, Dot1qTunnel] {
            assert_eq!(VlanMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(VlanMode::parse("hybrid"), None);
    }
}
