//! What one bridge port carries: an optional PVID, the VIDs that leave it untagged and the VIDs
//! that leave it tagged. Both desired state and kernel state are described with this one type.

use crate::vid::VidSet;
use std::fmt;

/// The VLAN membership of one port.
///
/// Invariants (upheld by every constructor): `untagged` and `tagged` are disjoint, and `pvid`,
/// when set, is a member of one of them (member of `tagged` = "native VLAN, egress tagged").
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortVlans {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvid: Option<u16>,
    #[serde(default, skip_serializing_if = "VidSet::is_empty")]
    pub untagged: VidSet,
    #[serde(default, skip_serializing_if = "VidSet::is_empty")]
    pub tagged: VidSet,
}

/// How one VID sits on a port, as the kernel's PVID and UNTAGGED flags say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanFlags {
    pub pvid: bool,
    pub untagged: bool,
}

/// Where the native (PVID) VLAN's frames go out: without a tag (the usual) or with one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Native {
    #[default]
    Untagged,
    Tagged,
}

impl PortVlans {
    /// A port in no VLAN at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Access port: frames in and out untagged, in VLAN `vid`.
    pub fn access(vid: u16) -> Self {
        PortVlans {
            pvid: Some(vid),
            untagged: VidSet::single(vid),
            tagged: VidSet::new(),
        }
    }

    /// Builds a port from a PVID with its native mode, extra egress-untagged VIDs and tagged
    /// VIDs, refusing combinations that say two things about one VID.
    pub fn build(
        pvid: Option<u16>,
        native: Native,
        untagged: VidSet,
        tagged: VidSet,
    ) -> Result<Self, String> {
        let both = untagged.intersection(&tagged);
        if !both.is_empty() {
            return Err(format!("VID {both} is listed as both untagged and tagged"));
        }
        let mut port = PortVlans {
            pvid,
            untagged,
            tagged,
        };
        if let Some(p) = pvid {
            match native {
                Native::Untagged => {
                    if port.tagged.contains(p) {
                        return Err(format!(
                            "pvid {p} is native untagged but also listed in tagged; \
                             set native = \"tagged\" or drop {p} from tagged"
                        ));
                    }
                    port.untagged.insert(p);
                }
                Native::Tagged => {
                    if port.untagged.contains(p) {
                        return Err(format!(
                            "pvid {p} is native tagged but also listed in untagged"
                        ));
                    }
                    port.tagged.insert(p);
                }
            }
        }
        Ok(port)
    }

    /// Every VID the port is a member of.
    pub fn members(&self) -> VidSet {
        self.untagged.union(&self.tagged)
    }

    pub fn is_empty(&self) -> bool {
        self.pvid.is_none() && self.untagged.is_empty() && self.tagged.is_empty()
    }

    /// How `vid` sits on this port, or `None` when the port is not a member.
    pub fn flags(&self, vid: u16) -> Option<VlanFlags> {
        let untagged = self.untagged.contains(vid);
        if !untagged && !self.tagged.contains(vid) {
            return None;
        }
        Some(VlanFlags {
            pvid: self.pvid == Some(vid),
            untagged,
        })
    }

    /// Adds `vid` with `flags`, replacing what the port said about it before (as the kernel
    /// does: a second PVID moves the PVID).
    pub fn set(&mut self, vid: u16, flags: VlanFlags) {
        self.remove(vid);
        if flags.untagged {
            self.untagged.insert(vid);
        } else {
            self.tagged.insert(vid);
        }
        if flags.pvid {
            self.pvid = Some(vid);
        }
    }

    pub fn remove(&mut self, vid: u16) {
        self.untagged.remove(vid);
        self.tagged.remove(vid);
        if self.pvid == Some(vid) {
            self.pvid = None;
        }
    }

    /// The part of this port's membership that lies in `vids`.
    pub fn restricted_to(&self, vids: &VidSet) -> PortVlans {
        PortVlans {
            pvid: self.pvid.filter(|p| vids.contains(*p)),
            untagged: self.untagged.intersection(vids),
            tagged: self.tagged.intersection(vids),
        }
    }
}

impl fmt::Display for PortVlans {
    /// `pvid 100 untagged 100 tagged 200,300`; a port in no VLAN prints as `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        if let Some(p) = self.pvid {
            parts.push(format!("pvid {p}"));
        }
        if !self.untagged.is_empty() {
            parts.push(format!("untagged {}", self.untagged));
        }
        if !self.tagged.is_empty() {
            parts.push(format!("tagged {}", self.tagged));
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> VidSet {
        x.parse().unwrap()
    }

    #[test]
    fn build_places_pvid_by_native_mode() {
        let p = PortVlans::build(Some(100), Native::Untagged, s(""), s("200,300")).unwrap();
        assert_eq!(p.untagged, s("100"));
        assert_eq!(p.tagged, s("200,300"));
        assert_eq!(p.to_string(), "pvid 100 untagged 100 tagged 200,300");

        let p = PortVlans::build(Some(100), Native::Tagged, s(""), s("200")).unwrap();
        assert!(p.untagged.is_empty());
        assert_eq!(p.tagged, s("100,200"));
        assert_eq!(
            p.flags(100),
            Some(VlanFlags {
                pvid: true,
                untagged: false
            })
        );
        // a native-tagged pvid may also be named in tagged
        let p2 = PortVlans::build(Some(100), Native::Tagged, s(""), s("100,200")).unwrap();
        assert_eq!(p, p2);
    }

    #[test]
    fn build_refuses_contradictions() {
        let e = PortVlans::build(Some(100), Native::Untagged, s(""), s("100")).unwrap_err();
        assert!(e.contains("pvid 100"), "{e}");
        let e = PortVlans::build(None, Native::Untagged, s("5"), s("5-6")).unwrap_err();
        assert!(e.contains("VID 5"), "{e}");
        let e = PortVlans::build(Some(7), Native::Tagged, s("7"), s("")).unwrap_err();
        assert!(e.contains("pvid 7"), "{e}");
    }

    #[test]
    fn set_moves_pvid_like_the_kernel() {
        let mut p = PortVlans::access(1);
        p.set(
            100,
            VlanFlags {
                pvid: true,
                untagged: true,
            },
        );
        assert_eq!(p.pvid, Some(100));
        assert_eq!(
            p.flags(1),
            Some(VlanFlags {
                pvid: false,
                untagged: true
            })
        );
        p.remove(100);
        assert_eq!(p.pvid, None);
        assert_eq!(p.members(), s("1"));
    }

    #[test]
    fn restricted_keeps_only_named_vids() {
        let p = PortVlans::build(Some(10), Native::Untagged, s(""), s("20-30")).unwrap();
        let r = p.restricted_to(&s("25-40"));
        assert_eq!(r.pvid, None);
        assert_eq!(r.tagged, s("25-30"));
        assert!(PortVlans::none().is_empty());
        assert_eq!(PortVlans::none().to_string(), "none");
    }
}
