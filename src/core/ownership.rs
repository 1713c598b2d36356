//! The ownership record: for every port virt-vlan manages, which VIDs it added (only those are
//! ever removed), what it wants there and where that came from. Pure data and rules; the file
//! and its lock live in `store`.

use crate::port_vlans::PortVlans;
use crate::provenance::{Origin, Role};
use crate::state::HostState;
use crate::vid::VidSet;
use std::collections::BTreeMap;

/// One managed port's entry. `ifindex` ties it to one incarnation of the interface: a port
/// deleted and re-created under the same name is a different port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortRecord {
    pub ifindex: u32,
    pub role: Role,
    /// VIDs virt-vlan put on the port (or took over as the kernel's enslave default).
    pub owned: VidSet,
    /// What virt-vlan last applied; uplinks carry guests' VIDs on demand from this.
    pub desired: PortVlans,
    pub origin: Origin,
}

/// All entries, by bridge then port (the bridge's own port under the bridge's name).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    #[serde(default)]
    pub bridges: BTreeMap<String, BTreeMap<String, PortRecord>>,
    /// Per bridge, the `default_pvid` it had before virt-vlan first changed it, with the
    /// bridge's ifindex: ports enslaved before then still carry that VID as the kernel gave it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub original_default_pvid: BTreeMap<String, (u32, u16)>,
}

impl Record {
    pub fn get(&self, bridge: &str, port: &str) -> Option<&PortRecord> {
        self.bridges.get(bridge)?.get(port)
    }

    pub fn set(&mut self, bridge: &str, port: &str, rec: PortRecord) {
        self.bridges
            .entry(bridge.to_string())
            .or_default()
            .insert(port.to_string(), rec);
    }

    pub fn remove(&mut self, bridge: &str, port: &str) -> Option<PortRecord> {
        let ports = self.bridges.get_mut(bridge)?;
        let r = ports.remove(port);
        if ports.is_empty() {
            self.bridges.remove(bridge);
        }
        r
    }

    pub fn ports_of<'a>(
        &'a self,
        bridge: &str,
    ) -> impl Iterator<Item = (&'a String, &'a PortRecord)> {
        self.bridges.get(bridge).into_iter().flat_map(|m| m.iter())
    }

    /// Every entry as `(bridge, port, record)`.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String, &PortRecord)> {
        self.bridges
            .iter()
            .flat_map(|(b, ports)| ports.iter().map(move |(p, r)| (b, p, r)))
    }

    /// VIDs virt-vlan owns on a port, if the record is about the port the kernel has now.
    pub fn owned(&self, bridge: &str, port: &str, ifindex: u32) -> VidSet {
        match self.get(bridge, port) {
            Some(r) if r.ifindex == ifindex => r.owned.clone(),
            _ => VidSet::new(),
        }
    }

    /// VIDs the kernel hands (or handed) a port of `bridge` at enslave: its `default_pvid`
    /// now and, if virt-vlan changed it, before that.
    pub fn enslave_defaults(&self, bridge: &str, ifindex: u32, current: &[u16]) -> Vec<u16> {
        let mut out: Vec<u16> = current.iter().copied().filter(|v| *v != 0).collect();
        if let Some((i, v)) = self.original_default_pvid.get(bridge)
            && *i == ifindex
        {
            out.push(*v);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Notes a bridge's `default_pvid` before virt-vlan changes it (once: the first value is
    /// the one old ports got).
    pub fn note_default_pvid_change(&mut self, bridge: &str, ifindex: u32, old: u16) {
        if old != 0 {
            self.original_default_pvid
                .entry(bridge.to_string())
                .or_insert((ifindex, old));
        }
    }

    /// Drops entries whose port is gone, moved to another bridge or was re-created (the
    /// kernel flushed its VLANs with it); returns what was dropped.
    pub fn drop_stale(&mut self, state: &HostState) -> Vec<(String, String)> {
        let stale: Vec<(String, String)> = self
            .iter()
            .filter(|(b, p, r)| state.ifindex(b, p) != Some(r.ifindex))
            .map(|(b, p, _)| (b.clone(), p.clone()))
            .collect();
        for (b, p) in &stale {
            self.remove(b, p);
        }
        self.original_default_pvid
            .retain(|b, (i, _)| state.bridges.get(b).is_some_and(|bs| bs.ifindex == *i));
        stale
    }

    /// Entries that came from one libvirt domain.
    pub fn ports_of_domain<'a>(
        &'a self,
        domain: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a String, &'a PortRecord)> + 'a {
        self.iter()
            .filter(move |(_, _, r)| r.origin.domain.as_deref() == Some(domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{BridgeState, PortState};

    fn rec(ifindex: u32, owned: &str) -> PortRecord {
        PortRecord {
            ifindex,
            role: Role::Guest,
            owned: owned.parse().unwrap(),
            desired: PortVlans::none(),
            origin: Origin::new("test"),
        }
    }

    #[test]
    fn owned_only_for_the_same_incarnation() {
        let mut r = Record::default();
        r.set("br0", "vnet0", rec(7, "100"));
        assert_eq!(r.owned("br0", "vnet0", 7), "100".parse().unwrap());
        assert!(r.owned("br0", "vnet0", 8).is_empty());
        assert!(r.owned("br1", "vnet0", 7).is_empty());
    }

    #[test]
    fn drop_stale_removes_gone_recreated_and_moved_ports() {
        let mut st = HostState::default();
        let mut b = BridgeState {
            name: "br0".into(),
            ifindex: 1,
            ..Default::default()
        };
        for (name, idx) in [("alive", 2), ("recreated", 30)] {
            b.ports.insert(
                name.into(),
                PortState {
                    name: name.into(),
                    ifindex: idx,
                    ..Default::default()
                },
            );
        }
        st.bridges.insert("br0".into(), b);
        let mut r = Record::default();
        r.set("br0", "alive", rec(2, "5"));
        r.set("br0", "br0", rec(1, "5"));
        r.set("br0", "recreated", rec(3, "5"));
        r.set("br0", "gone", rec(4, "5"));
        r.set("br1", "moved", rec(5, "5"));
        let mut dropped = r.drop_stale(&st);
        dropped.sort();
        assert_eq!(
            dropped,
            vec![
                ("br0".to_string(), "gone".to_string()),
                ("br0".to_string(), "recreated".to_string()),
                ("br1".to_string(), "moved".to_string()),
            ]
        );
        assert!(r.get("br0", "alive").is_some() && r.get("br0", "br0").is_some());
        assert!(!r.bridges.contains_key("br1"));
    }

    #[test]
    fn original_default_pvid_is_noted_once_and_tied_to_the_bridge() {
        let mut r = Record::default();
        r.note_default_pvid_change("br0", 1, 1);
        r.note_default_pvid_change("br0", 1, 0);
        r.note_default_pvid_change("br1", 2, 0);
        assert_eq!(r.enslave_defaults("br0", 1, &[0]), vec![1]);
        assert_eq!(
            r.enslave_defaults("br0", 9, &[5, 0]),
            vec![5],
            "another bridge incarnation"
        );
        assert!(r.enslave_defaults("br1", 2, &[0]).is_empty());
        let mut st = HostState::default();
        st.bridges.insert(
            "br0".into(),
            BridgeState {
                name: "br0".into(),
                ifindex: 3,
                ..Default::default()
            },
        );
        r.drop_stale(&st);
        assert!(
            r.original_default_pvid.is_empty(),
            "br0 was re-created: its old default is moot"
        );
    }

    #[test]
    fn serialises_vid_sets_as_ranges() {
        let mut r = Record::default();
        r.set("br0", "vnet0", rec(7, "100-200,300"));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"owned\":\"100-200,300\""), "{json}");
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
