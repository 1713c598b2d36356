//! What the kernel has: bridges, their VLAN settings, their own port's VLANs and every port's
//! VLANs. Plain data filled in by the netlink edge (or by tests), read by the planner.

use crate::port_vlans::PortVlans;
use std::collections::BTreeMap;

/// Every bridge on the host with its ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostState {
    pub bridges: BTreeMap<String, BridgeState>,
}

/// A bridge's VLAN settings as the kernel reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeSettings {
    /// `false` when the kernel was built without bridge VLAN filtering at all.
    pub vlan_supported: bool,
    pub vlan_filtering: bool,
    pub default_pvid: u16,
    /// Ethertype: 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub vlan_protocol: u16,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings {
            vlan_supported: true,
            vlan_filtering: false,
            default_pvid: 1,
            vlan_protocol: 0x8100,
        }
    }
}

/// Which switch a bridge is; each has its own backend (netlink, OVSDB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum BridgeKind {
    /// A Linux bridge, driven over netlink.
    #[default]
    LinuxBridge,
    /// An Open vSwitch bridge, driven over OVSDB. Its `ifindex` and its ports' are stable
    /// numbers derived from their row UUIDs (a re-created row gets a new one), not kernel
    /// ifindexes; its own port is the internal port named like the bridge.
    OpenVswitch,
}

impl BridgeKind {
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            BridgeKind::LinuxBridge => "Linux bridge",
            BridgeKind::OpenVswitch => "Open vSwitch bridge",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeState {
    pub name: String,
    pub ifindex: u32,
    pub kind: BridgeKind,
    /// Filled for the bridges a run looks at closely (managed ones); default otherwise.
    pub settings: BridgeSettings,
    /// The bridge's own port (`bridge vlan … self`).
    pub self_vlans: PortVlans,
    pub ports: BTreeMap<String, PortState>,
    /// Ports the switch itself marks as virt-vlan's (Open vSwitch: our key in the Port row's
    /// `external_ids`). A port's VLAN columns are one value there, not a set of memberships:
    /// on a port marked ours, whatever it carries is ours to replace (drift, not a foreign VID).
    pub marked_ours: std::collections::BTreeSet<String>,
    /// Ports that carry every VLAN (Open vSwitch: a trunk or native port with an empty
    /// `trunks`): the switch's default for an unconfigured port, nobody's choice, so all of it
    /// is replaced when the port is managed; `check` warns about them.
    pub every_vlan: std::collections::BTreeSet<String>,
    /// Ports marked as a guest interface's by libvirt (Open vSwitch Interface `external_ids`
    /// `vm-id` and `attached-mac`), by port name.
    pub guest_marks: BTreeMap<String, crate::intent::GuestIdentity>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortState {
    pub name: String,
    pub ifindex: u32,
    pub mac: Option<[u8; 6]>,
    pub vlans: PortVlans,
}

/// What to say when the kernel cannot filter VLANs on `bridge`.
pub fn vlan_unsupported(bridge: &str) -> String {
    format!(
        "bridge {bridge}: this kernel cannot filter VLANs on bridges (it was built without \
         CONFIG_BRIDGE_VLAN_FILTERING); virt-vlan needs a kernel that has it"
    )
}

impl HostState {
    /// Fails with [`vlan_unsupported`] if any of `bridges` exists on a kernel that cannot
    /// filter VLANs: the first thing to say, before anything about ports.
    pub fn require_vlan_support<'a>(
        &self,
        bridges: impl IntoIterator<Item = &'a String>,
    ) -> anyhow::Result<()> {
        for b in bridges {
            if self
                .bridges
                .get(b)
                .is_some_and(|s| !s.settings.vlan_supported)
            {
                anyhow::bail!(vlan_unsupported(b));
            }
        }
        Ok(())
    }

    /// The bridge a port named `port` is enslaved to, if any.
    pub fn bridge_of(&self, port: &str) -> Option<&BridgeState> {
        self.bridges.values().find(|b| b.ports.contains_key(port))
    }

    /// A port's VLANs, `port == bridge` meaning the bridge's own port.
    pub fn vlans(&self, bridge: &str, port: &str) -> Option<&PortVlans> {
        let b = self.bridges.get(bridge)?;
        if port == bridge {
            Some(&b.self_vlans)
        } else {
            b.ports.get(port).map(|p| &p.vlans)
        }
    }

    /// The ifindex of a port (or of the bridge, for its own port).
    pub fn ifindex(&self, bridge: &str, port: &str) -> Option<u32> {
        let b = self.bridges.get(bridge)?;
        if port == bridge {
            Some(b.ifindex)
        } else {
            b.ports.get(port).map(|p| p.ifindex)
        }
    }

    /// What the kernel does to ports when a bridge's `default_pvid` changes from `old` to
    /// `new` (net/bridge/br_vlan.c, `__br_vlan_set_default_pvid` and
    /// `br_vlan_disable_default_pvid`): every port, the bridge's own included, whose PVID is still
    /// the old default and egresses it untagged moves to the new default (or to none for 0).
    /// Used to show a dry run's effect exactly; a real run re-reads the kernel instead.
    pub fn simulate_default_pvid(&mut self, bridge: &str, new: u16) {
        let Some(b) = self.bridges.get_mut(bridge) else {
            return;
        };
        let old = b.settings.default_pvid;
        if old == new {
            return;
        }
        let is_default =
            |v: &PortVlans| old != 0 && v.pvid == Some(old) && v.untagged.contains(old);
        let follow = |v: &mut PortVlans| {
            if new == 0 {
                if is_default(v) {
                    v.remove(old);
                }
            } else if (old == 0 || is_default(v)) && v.flags(new).is_none() {
                v.remove(old);
                v.set(
                    new,
                    crate::port_vlans::VlanFlags {
                        pvid: true,
                        untagged: true,
                    },
                );
            }
        };
        follow(&mut b.self_vlans);
        for p in b.ports.values_mut() {
            follow(&mut p.vlans);
        }
        b.settings.default_pvid = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port_vlans::Native;

    fn port(name: &str, vlans: PortVlans) -> PortState {
        PortState {
            name: name.into(),
            ifindex: 0,
            mac: None,
            vlans,
        }
    }

    fn host() -> HostState {
        let mut b = BridgeState {
            name: "br0".into(),
            ifindex: 1,
            settings: BridgeSettings::default(),
            self_vlans: PortVlans::access(1),
            ports: BTreeMap::new(),
            ..Default::default()
        };
        b.ports
            .insert("fresh".into(), port("fresh", PortVlans::access(1)));
        let trunk = PortVlans::build(
            Some(1),
            Native::Tagged,
            Default::default(),
            "1".parse().unwrap(),
        )
        .unwrap();
        b.ports.insert("tagged1".into(), port("tagged1", trunk));
        b.ports
            .insert("vlan7".into(), port("vlan7", PortVlans::access(7)));
        let mut h = HostState::default();
        h.bridges.insert("br0".into(), b);
        h
    }

    #[test]
    fn default_pvid_zero_strips_only_untouched_defaults() {
        let mut h = host();
        h.simulate_default_pvid("br0", 0);
        let b = &h.bridges["br0"];
        assert!(b.self_vlans.is_empty());
        assert!(b.ports["fresh"].vlans.is_empty());
        // pvid 1 egress tagged is not the kernel's default any more: kept
        assert_eq!(b.ports["tagged1"].vlans.pvid, Some(1));
        assert_eq!(b.ports["vlan7"].vlans, PortVlans::access(7));
        assert_eq!(b.settings.default_pvid, 0);
    }

    #[test]
    fn default_pvid_change_moves_untouched_defaults() {
        let mut h = host();
        h.simulate_default_pvid("br0", 5);
        let b = &h.bridges["br0"];
        assert_eq!(b.self_vlans, PortVlans::access(5));
        assert_eq!(b.ports["fresh"].vlans, PortVlans::access(5));
        assert_eq!(b.ports["vlan7"].vlans, PortVlans::access(7));
        assert_eq!(h.bridge_of("vlan7").unwrap().name, "br0");
        assert_eq!(h.vlans("br0", "br0"), Some(&PortVlans::access(5)));
        assert_eq!(h.ifindex("br0", "br0"), Some(1));
        assert_eq!(h.ifindex("br0", "nope"), None);
    }
}
