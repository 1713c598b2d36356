//! Open vSwitch bridges as the pipeline sees them. Rows become `BridgeState`s (pure:
//! `bridge_state`), and the pipeline's per-VID port writes become one guarded OVSDB
//! transaction per call: what each port must carry afterwards is computed from what was read
//! and the writes (`after_writes`), then turned into the Port row's three VLAN columns
//! (`vlans::to_columns`), always all three, with our ownership marks.
//!
//! Putting a port back: a write that returns a port to what this run first read of it writes
//! back exactly the columns and marks that were read (never a re-encoding), and is skipped for
//! a port this run never changed — after a transaction that failed as a whole (a concurrent
//! change), rolling back must not overwrite the other client's change.

use super::db::{OWNED_KEY, Ovsdb, Port, PortState, SOURCE_KEY, WrittenPort};
use super::vlans::{Carried, PortVlanColumns, from_columns, to_columns};
use crate::error::BadInput;
use crate::plan::{PortOp, PortPlan, PortWrite};
use crate::port_vlans::{Native, PortVlans, VlanFlags};
use crate::state::{BridgeKind, BridgeSettings, BridgeState, PortState as KernelPort};
use crate::switch::{Stats, WriteError};
use crate::vid::VidSet;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A stable number for a row (FNV-1a of its UUID, never 0), standing in for an ifindex: the
/// ownership record notices a port re-created under the same name by its new number.
pub fn row_id(uuid: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in uuid.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

/// What a port carries, in the port model. A port that carries every VLAN (an empty `trunks`)
/// carries 1-4094, tagged but for its native VLAN; all of that is Open vSwitch's default for an
/// unconfigured port, nobody's choice, and replaced whole when virt-vlan manages the port
/// (`BridgeState::every_vlan`); `check` warns about it. Something the model has no words for
/// (QinQ, VLAN 0 on a trunk) is shown as carrying none.
pub fn carried_vlans(c: &PortVlanColumns) -> PortVlans {
    match from_columns(c) {
        Carried::Vlans(v) => v,
        Carried::EveryVlan { native } => {
            let mut v = PortVlans::none();
            v.tagged = VidSet::all();
            if let Some((pvid, how)) = native {
                v.set(
                    pvid,
                    VlanFlags {
                        pvid: true,
                        untagged: how == Native::Untagged,
                    },
                );
            }
            v
        }
        Carried::Other(_) => PortVlans::none(),
    }
}

/// An OVS bridge as a `BridgeState`: its own port is the internal port named like the bridge.
pub fn bridge_state(b: &super::db::Bridge) -> BridgeState {
    let mut state = BridgeState {
        name: b.name.clone(),
        ifindex: row_id(&b.uuid),
        kind: BridgeKind::OpenVswitch,
        settings: BridgeSettings {
            vlan_supported: true,
            vlan_filtering: true,
            default_pvid: 0,
            vlan_protocol: 0x8100,
        },
        self_vlans: PortVlans::none(),
        ports: BTreeMap::new(),
        marked_ours: BTreeSet::new(),
        every_vlan: BTreeSet::new(),
        guest_marks: BTreeMap::new(),
    };
    for p in &b.ports {
        let vlans = carried_vlans(&p.state.vlans);
        if matches!(from_columns(&p.state.vlans), Carried::EveryVlan { .. }) {
            state.every_vlan.insert(p.name.clone());
        }
        if p.owned() {
            state.marked_ours.insert(p.name.clone());
        }
        if p.name == b.name {
            state.self_vlans = vlans;
            continue;
        }
        if let Some((vm_id, mac)) = p
            .interfaces
            .iter()
            .find_map(|i| Some((i.vm_id()?, i.attached_mac()?)))
        {
            state.guest_marks.insert(
                p.name.clone(),
                crate::intent::GuestIdentity {
                    vm_id: vm_id.to_string(),
                    mac: mac.to_ascii_lowercase(),
                },
            );
        }
        state.ports.insert(
            p.name.clone(),
            KernelPort {
                name: p.name.clone(),
                ifindex: row_id(&p.uuid),
                mac: None,
                vlans,
            },
        );
    }
    state
}

/// What one message does to a port's VLANs, as the kernel would do it.
fn apply_op(v: &mut PortVlans, op: &PortOp) {
    match op {
        PortOp::Del(ranges) => {
            for (a, b) in ranges {
                for vid in *a..=*b {
                    v.remove(vid);
                }
            }
        }
        PortOp::Add(entries) => {
            for e in entries {
                for vid in e.first..=e.last {
                    v.set(
                        vid,
                        VlanFlags {
                            pvid: e.flags.pvid && vid == e.first,
                            untagged: e.flags.untagged,
                        },
                    );
                }
            }
        }
    }
}

/// What a port carries after `ops`, starting from `before`.
pub fn after_writes<'a>(
    before: &PortVlans,
    ops: impl IntoIterator<Item = &'a PortOp>,
) -> PortVlans {
    let mut v = before.clone();
    for op in ops {
        apply_op(&mut v, op);
    }
    v
}

/// A port plan on an Open vSwitch bridge as the columns it writes; refused (bad input, naming
/// the port, the source and the fix) when Open vSwitch cannot express it.
pub fn planned_columns(p: &PortPlan) -> Result<PortVlanColumns, BadInput> {
    let writes = p.writes();
    let after = after_writes(&p.before, writes.iter().map(|w| &w.op));
    to_columns(&after, &p.port, &p.origin.to_string()).map_err(|e| BadInput(e.to_string()))
}

/// `ovs-vsctl` commands that do what a port plan does (for `apply --dry-run`).
pub fn commands(p: &PortPlan) -> Vec<String> {
    match planned_columns(p) {
        Ok(c) => vec![format!(
            "ovs-vsctl set Port {} {c}",
            crate::plan::shell_word(&p.port)
        )],
        Err(e) => vec![format!("# refused: {e}")],
    }
}

/// Fault injection, for tests only: with `VIRT_VLAN_FAULT_OVS_RACE=PORT` set, just before this
/// process's first write transaction another OVSDB client (`ovs-vsctl`) sets
/// `external_ids:raced=yes` on Port PORT — a real concurrent change to a row the transaction
/// guards, so the lab can watch the run lose, re-read and retry.
pub const FAULT_OVS_RACE: &str = "VIRT_VLAN_FAULT_OVS_RACE";

/// Races once per process (a retry opens a new switch).
fn race_once(db: &std::path::Path) {
    static RACED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Ok(port) = std::env::var(FAULT_OVS_RACE) else {
        return;
    };
    if RACED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let _ = std::process::Command::new("ovs-vsctl")
        .arg(format!("--db=unix:{}", db.display()))
        .args(["--no-wait", "set", "Port", &port, "external_ids:raced=yes"])
        .status();
}

/// The Open vSwitch side of one run.
pub struct OvsSwitch {
    db: Ovsdb,
    /// Every port as this switch first read it, by row UUID.
    first: HashMap<String, (PortVlans, PortState)>,
    /// The latest read, by (bridge, port name).
    latest: BTreeMap<(String, String), Port>,
    /// Ports this switch has written.
    committed: BTreeSet<String>,
    /// Where a port's VLANs come from, stored in its marks (`note_sources`).
    sources: BTreeMap<(String, String), String>,
    /// Set when a transaction failed because another client changed a port it guarded.
    conflicted: bool,
    stats: Stats,
}

impl OvsSwitch {
    pub fn new(db: Ovsdb) -> Self {
        OvsSwitch {
            db,
            first: HashMap::new(),
            latest: BTreeMap::new(),
            committed: BTreeSet::new(),
            sources: BTreeMap::new(),
            conflicted: false,
            stats: Stats::default(),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.db.path()
    }

    /// Every Open vSwitch bridge, as `BridgeState`s.
    pub fn read(&mut self) -> anyhow::Result<Vec<BridgeState>> {
        let snap = self.db.read()?;
        self.stats.reads += 1;
        self.latest.clear();
        let mut out = Vec::new();
        for b in &snap.bridges {
            for p in &b.ports {
                self.first
                    .entry(p.uuid.clone())
                    .or_insert_with(|| (carried_vlans(&p.state.vlans), p.state.clone()));
                self.latest
                    .insert((b.name.clone(), p.name.clone()), p.clone());
            }
            out.push(bridge_state(b));
        }
        Ok(out)
    }

    /// Remembers each planned port's source, for the marks the next write puts on it.
    pub fn note_sources(&mut self, plans: &[PortPlan]) {
        for p in plans {
            self.sources
                .insert((p.bridge.clone(), p.port.clone()), p.origin.to_string());
        }
    }

    /// Whether a transaction of this switch failed on a concurrent change (re-read, retry).
    pub fn conflicted(&self) -> bool {
        self.conflicted
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Sends `writes` (all on Open vSwitch bridges) as one transaction and waits until
    /// ovs-vswitchd applied it. All or nothing: the error applies to every write.
    pub fn write(&mut self, writes: &[&PortWrite]) -> Result<(), WriteError> {
        let mut by_port: BTreeMap<(String, String), Vec<&PortOp>> = BTreeMap::new();
        for w in writes {
            by_port
                .entry((w.bridge.clone(), w.port.clone()))
                .or_default()
                .push(&w.op);
        }
        let mut ports = Vec::new();
        for ((bridge, name), ops) in by_port {
            let fail = |errno, message: String| WriteError {
                bridge: bridge.clone(),
                port: name.clone(),
                errno,
                message,
            };
            let Some(row) = self.latest.get(&(bridge.clone(), name.clone())) else {
                return Err(fail(libc::ENODEV, "no such port in OVSDB".into()));
            };
            let after = after_writes(&carried_vlans(&row.state.vlans), ops);
            let new = match self.first.get(&row.uuid) {
                Some((v0, s0)) if *v0 == after => {
                    if !self.committed.contains(&row.uuid) {
                        continue; // never changed by us: nothing to put back
                    }
                    s0.clone()
                }
                _ => {
                    let source = self
                        .sources
                        .get(&(bridge.clone(), name.clone()))
                        .cloned()
                        .unwrap_or_else(|| "virt-vlan".into());
                    let vlans = to_columns(&after, &name, &source)
                        .map_err(|e| fail(libc::EINVAL, e.to_string()))?;
                    let mut external_ids = row.state.external_ids.clone();
                    external_ids.insert(OWNED_KEY.into(), "true".into());
                    external_ids.insert(SOURCE_KEY.into(), source);
                    PortState {
                        vlans,
                        external_ids,
                    }
                }
            };
            if new == row.state {
                continue;
            }
            ports.push(WrittenPort {
                uuid: row.uuid.clone(),
                name: name.clone(),
                before: row.state.clone(),
                after: new,
            });
        }
        if ports.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = ports.iter().map(|p| p.name.clone()).collect();
        let first = writes[0];
        race_once(self.db.path());
        match self.db.replace_ports(&ports) {
            Ok(()) => {
                self.stats.writes += ports.len() as u64;
                for p in ports {
                    self.committed.insert(p.uuid.clone());
                    if let Some(row) = self.latest.values_mut().find(|r| r.uuid == p.uuid) {
                        row.state = p.after;
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.conflicted |= e.is_conflict();
                Err(WriteError {
                    bridge: first.bridge.clone(),
                    port: names.join(", "),
                    errno: if e.is_conflict() {
                        libc::EAGAIN
                    } else {
                        libc::EIO
                    },
                    message: e.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::Origin;
    use crate::ovs::db::Bridge;
    use crate::ovs::vlans::VlanMode;

    fn port(name: &str, uuid: &str, vlans: PortVlanColumns) -> Port {
        Port {
            uuid: uuid.into(),
            name: name.into(),
            state: PortState {
                vlans,
                external_ids: BTreeMap::new(),
            },
            interfaces: Vec::new(),
        }
    }

    fn cols(mode: Option<VlanMode>, tag: Option<u16>, trunks: &[u16]) -> PortVlanColumns {
        PortVlanColumns {
            vlan_mode: mode,
            tag,
            trunks: trunks.iter().copied().collect(),
        }
    }

    #[test]
    fn row_ids_are_stable_distinct_and_never_zero() {
        let a = row_id("0b5c1f46-9a8e-4c59-8d3b-2f0e1b6f6c01");
        assert_eq!(a, row_id("0b5c1f46-9a8e-4c59-8d3b-2f0e1b6f6c01"));
        assert_ne!(a, row_id("0b5c1f46-9a8e-4c59-8d3b-2f0e1b6f6c02"));
        assert_ne!(row_id(""), 0);
    }

    #[test]
    fn a_bridge_row_becomes_a_bridge_state_with_its_internal_port_as_its_own() {
        let b = Bridge {
            uuid: "b".into(),
            name: "ovsbr0".into(),
            external_ids: BTreeMap::new(),
            ports: vec![
                port("ovsbr0", "p0", cols(None, None, &[])),
                port("eth0", "p1", cols(Some(VlanMode::Trunk), None, &[10, 20])),
                port("vlan1234", "p2", cols(None, Some(1234), &[])),
                port("vnet0", "p3", cols(None, None, &[])),
            ],
        };
        let s = bridge_state(&b);
        assert_eq!(s.kind, BridgeKind::OpenVswitch);
        assert_eq!(s.settings.default_pvid, 0);
        assert!(s.settings.vlan_filtering);
        // the bridge's own port trunks everything (no columns)
        assert_eq!(s.self_vlans.tagged, VidSet::all());
        assert_eq!(s.ports.len(), 3);
        assert_eq!(
            s.ports["eth0"].vlans.tagged,
            "10,20".parse::<VidSet>().unwrap()
        );
        assert_eq!(s.ports["vlan1234"].vlans, PortVlans::access(1234));
        assert_eq!(s.ports["vnet0"].vlans.members(), VidSet::all());
        assert_eq!(
            s.every_vlan,
            BTreeSet::from(["ovsbr0".to_string(), "vnet0".to_string()]),
            "no columns: every VLAN"
        );
        assert_eq!(s.ports["eth0"].ifindex, row_id("p1"));
    }

    fn plan(before: PortVlans, desired: PortVlans) -> PortPlan {
        let vids = desired.members();
        PortPlan {
            bridge: "ovsbr0".into(),
            port: "vnet0".into(),
            ifindex: 7,
            is_self: false,
            role: Some(crate::intent::Role::Guest),
            origin: Origin::new("metadata"),
            del: before.members().difference(&vids),
            add: crate::plan::entries_for(&desired, &vids),
            before,
            desired,
            owned_after: vids,
        }
    }

    #[test]
    fn a_plan_becomes_all_three_columns_never_an_empty_trunk_list() {
        let access = plan(PortVlans::none(), PortVlans::access(42));
        assert_eq!(
            planned_columns(&access).unwrap(),
            cols(Some(VlanMode::Access), Some(42), &[])
        );
        let native = PortVlans {
            pvid: Some(5),
            untagged: "5".parse().unwrap(),
            tagged: "7-8".parse().unwrap(),
        };
        assert_eq!(
            planned_columns(&plan(PortVlans::access(42), native)).unwrap(),
            cols(Some(VlanMode::NativeUntagged), Some(5), &[5, 7, 8])
        );
        let isolated = planned_columns(&plan(PortVlans::access(42), PortVlans::none())).unwrap();
        assert_eq!(isolated, crate::ovs::vlans::isolated());
        assert_eq!(
            commands(&plan(PortVlans::none(), PortVlans::access(42))),
            vec!["ovs-vsctl set Port vnet0 vlan_mode=access tag=42 trunks=[]".to_string()]
        );
    }

    #[test]
    fn what_open_vswitch_cannot_express_is_refused_naming_port_source_and_fix() {
        let two_untagged = PortVlans {
            pvid: None,
            untagged: "10,20".parse().unwrap(),
            tagged: VidSet::new(),
        };
        let e = planned_columns(&plan(PortVlans::none(), two_untagged))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vnet0") && e.contains("metadata") && e.contains("untagged"),
            "{e}"
        );
    }
}
