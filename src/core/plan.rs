//! The plan: the smallest set of kernel writes that takes the host from its current state to
//! the intent, removing only VIDs virt-vlan owns. Pure; also renders itself as the equivalent
//! `ip link` / `bridge vlan` commands for `--dry-run`.

use crate::config::VlanProtocol;
use crate::intent::{BridgeIntent, Intent, Origin, Role};
use crate::port_vlans::{PortVlans, VlanFlags};
use crate::state::{BridgeSettings, HostState};
use crate::vid::VidSet;
use anyhow::{Result, anyhow, bail};
use std::fmt::Write as _;

/// Origin of the plan for a guest port this run takes away.
pub const RELEASED: &str = "released";
/// Origin of the plan that puts a port that is not ours back as it was.
pub const RESTORED: &str = "not ours: put back as it was";

/// A run of consecutive VIDs with the same flags: one `IFLA_BRIDGE_VLAN_INFO` (or a
/// RANGE_BEGIN/RANGE_END pair) on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanEntry {
    pub first: u16,
    pub last: u16,
    pub flags: VlanFlags,
}

/// What one message to one port does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortOp {
    /// RTM_DELLINK of these ranges.
    Del(Vec<(u16, u16)>),
    /// RTM_SETLINK of these entries (adds, or changes flags of, existing VIDs).
    Add(Vec<VlanEntry>),
}

/// One kernel message for one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortWrite {
    pub bridge: String,
    pub port: String,
    pub ifindex: u32,
    /// The bridge's own port (`BRIDGE_FLAGS_SELF` on the bridge).
    pub is_self: bool,
    pub op: PortOp,
}

/// Changes to one bridge's settings (`None`: unchanged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsChange {
    pub bridge: String,
    pub ifindex: u32,
    pub vlan_filtering: Option<bool>,
    pub default_pvid: Option<u16>,
    pub vlan_protocol: Option<u16>,
    /// What the bridge had, for rollback and messages.
    pub before: BridgeSettings,
}

impl SettingsChange {
    /// The change that puts `before` back.
    pub fn undo(&self) -> SettingsChange {
        SettingsChange {
            bridge: self.bridge.clone(),
            ifindex: self.ifindex,
            vlan_filtering: self.vlan_filtering.map(|_| self.before.vlan_filtering),
            default_pvid: self.default_pvid.map(|_| self.before.default_pvid),
            vlan_protocol: self.vlan_protocol.map(|_| self.before.vlan_protocol),
            before: self.before,
        }
    }

    fn is_empty(&self) -> bool {
        self.vlan_filtering.is_none() && self.default_pvid.is_none() && self.vlan_protocol.is_none()
    }

    /// `ip link set dev br0 type bridge vlan_filtering 1 …`
    pub fn command(&self) -> String {
        let mut c = format!("ip link set dev {} type bridge", shell_word(&self.bridge));
        if let Some(f) = self.vlan_filtering {
            let _ = write!(c, " vlan_filtering {}", u8::from(f));
        }
        if let Some(p) = self.default_pvid {
            let _ = write!(c, " vlan_default_pvid {p}");
        }
        if let Some(p) = self.vlan_protocol {
            match VlanProtocol::from_ethertype(p) {
                Some(proto) => {
                    let _ = write!(c, " vlan_protocol {proto}");
                }
                None => {
                    let _ = write!(c, " vlan_protocol 0x{p:04x}");
                }
            }
        }
        c
    }
}

/// Everything one port needs, and what to check afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPlan {
    pub bridge: String,
    pub port: String,
    pub ifindex: u32,
    pub is_self: bool,
    /// `None` for a port being released or restored: not recorded afterwards.
    pub role: Option<Role>,
    pub origin: Origin,
    pub before: PortVlans,
    /// The managed part the port must show afterwards.
    pub desired: PortVlans,
    pub del: VidSet,
    pub add: Vec<VlanEntry>,
    /// What virt-vlan owns on the port once the plan is applied.
    pub owned_after: VidSet,
}

impl PortPlan {
    pub fn is_noop(&self) -> bool {
        self.del.is_empty() && self.add.is_empty()
    }

    /// The messages for this port: removals first, so a port moving between VLANs is never
    /// briefly in both.
    pub fn writes(&self) -> Vec<PortWrite> {
        let mut out = Vec::new();
        let w = |op| PortWrite {
            bridge: self.bridge.clone(),
            port: self.port.clone(),
            ifindex: self.ifindex,
            is_self: self.is_self,
            op,
        };
        if !self.del.is_empty() {
            out.push(w(PortOp::Del(self.del.ranges())));
        }
        if !self.add.is_empty() {
            out.push(w(PortOp::Add(self.add.clone())));
        }
        out
    }

    /// Checks the port's VLANs after the writes: every desired VID with its flags, every
    /// removed VID gone, the desired PVID in place. Foreign VIDs are not judged.
    pub fn verify(&self, actual: &PortVlans) -> Result<(), String> {
        let want = self.desired.members();
        let seen = actual.restricted_to(&want);
        // no desired VID may carry a PVID flag the desired state does not give it
        let pvid_ok = match self.desired.pvid {
            Some(_) => actual.pvid == self.desired.pvid,
            None => actual.pvid.is_none_or(|p| !want.contains(p)),
        };
        let lingering = self.del.intersection(&actual.members());
        if seen.untagged == self.desired.untagged
            && seen.tagged == self.desired.tagged
            && pvid_ok
            && lingering.is_empty()
        {
            return Ok(());
        }
        let mut msg = format!(
            "port {} on {}: wanted {}, kernel has {}",
            self.port,
            self.bridge,
            self.desired,
            actual.restricted_to(&self.desired.members().union(&self.del))
        );
        if !lingering.is_empty() {
            let _ = write!(msg, "; VID {lingering} should be gone");
        }
        Err(msg)
    }
}

/// All changes of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub settings: Vec<SettingsChange>,
    pub ports: Vec<PortPlan>,
}

impl Plan {
    /// Number of kernel messages the plan sends.
    pub fn write_count(&self) -> usize {
        self.settings.len() + self.ports.iter().map(|p| p.writes().len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.write_count() == 0
    }

    /// Names of the ports the plan writes to, each once.
    pub fn changed_ports(&self) -> std::collections::BTreeSet<&str> {
        self.ports
            .iter()
            .filter(|p| !p.is_noop())
            .map(|p| p.port.as_str())
            .collect()
    }

    /// Every port write in order: uplinks and bridges' own ports first (so a guest never
    /// waits on an uplink), then guests, then released ports.
    pub fn writes(&self) -> Vec<PortWrite> {
        let mut ports: Vec<&PortPlan> = self.ports.iter().collect();
        ports.sort_by_key(|p| match p.role {
            Some(Role::Uplink) | Some(Role::SelfPort) => 0,
            Some(Role::Guest) => 1,
            None => 2,
        });
        ports.iter().flat_map(|p| p.writes()).collect()
    }

    /// The plan as commands a person could run, with a comment per port saying why.
    pub fn render(&self) -> String {
        self.render_with(&|_| None)
    }

    /// `render`, with the commands for some ports given by `commands_of` (Open vSwitch ports
    /// are `ovs-vsctl`, not `bridge vlan`).
    pub fn render_with(&self, commands_of: &dyn Fn(&PortPlan) -> Option<Vec<String>>) -> String {
        let mut out = String::new();
        for s in &self.settings {
            let _ = writeln!(out, "{}", s.command());
        }
        let mut ports: Vec<&PortPlan> = self.ports.iter().filter(|p| !p.is_noop()).collect();
        ports.sort_by_key(|p| match p.role {
            Some(Role::Uplink) | Some(Role::SelfPort) => 0,
            Some(Role::Guest) => 1,
            None => 2,
        });
        for p in ports {
            let why = match p.role {
                Some(r) => format!("{r}, {}", p.origin),
                None => p.origin.to_string(),
            };
            let _ = writeln!(
                out,
                "# {} on {} ({}): {} -> {}",
                p.port.escape_debug(),
                p.bridge.escape_debug(),
                why.replace('\n', " "),
                p.before,
                p.desired
            );
            match commands_of(p) {
                Some(lines) => {
                    for l in lines {
                        let _ = writeln!(out, "{l}");
                    }
                }
                None => {
                    for w in p.writes() {
                        let _ = writeln!(out, "{}", command(&w));
                    }
                }
            }
        }
        if out.is_empty() {
            out.push_str("# nothing to do: the host already matches the config\n");
        }
        out
    }
}

/// One write as an iproute2 command.
pub fn command(w: &PortWrite) -> String {
    let whose = if w.is_self { "self" } else { "master" };
    let mut lines = Vec::new();
    match &w.op {
        PortOp::Del(ranges) => {
            for (a, b) in ranges {
                lines.push(format!(
                    "bridge vlan del dev {} vid {} {whose}",
                    shell_word(&w.port),
                    range(*a, *b)
                ));
            }
        }
        PortOp::Add(entries) => {
            for e in entries {
                let mut c = format!(
                    "bridge vlan add dev {} vid {}",
                    shell_word(&w.port),
                    range(e.first, e.last)
                );
                if e.flags.pvid {
                    c.push_str(" pvid");
                }
                if e.flags.untagged {
                    c.push_str(" untagged");
                }
                let _ = write!(c, " {whose}");
                lines.push(c);
            }
        }
    }
    lines.join("\n")
}

/// `s` as one shell word: as is when it holds only safe characters, else single-quoted.
/// Interface names may legally contain `;`, `$`, quotes…; the dry run's output is meant to be
/// runnable, so it must not be injectable.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+@%=,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn range(a: u16, b: u16) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// The VIDs to set on a port, grouped into ranges of equal flags. The PVID always travels
/// alone: the kernel refuses PVID inside a range.
pub fn entries_for(desired: &PortVlans, vids: &VidSet) -> Vec<VlanEntry> {
    let mut out: Vec<VlanEntry> = Vec::new();
    for v in vids.iter() {
        let flags = desired.flags(v).expect("only desired VIDs are set");
        match out.last_mut() {
            Some(e) if e.last + 1 == v && e.flags == flags && !flags.pvid => e.last = v,
            _ => out.push(VlanEntry {
                first: v,
                last: v,
                flags,
            }),
        }
    }
    out
}

/// The diff for one port: which VIDs to remove (owned ones no longer wanted) and which to
/// set (wanted ones missing or with other flags), and what is owned afterwards.
pub fn diff_port(
    desired: &PortVlans,
    current: &PortVlans,
    owned: &VidSet,
) -> (VidSet, Vec<VlanEntry>, VidSet) {
    let want = desired.members();
    let have = current.members();
    let del = have.intersection(owned).difference(&want);
    // Wanted VIDs whose untagged or tagged membership differs (missing ones differ too), found a
    // word at a time: a converged 4094-VID trunk costs 64 word operations, not 4094 lookups.
    let mut to_set = desired
        .untagged
        .symmetric_difference(&current.untagged)
        .union(&desired.tagged.symmetric_difference(&current.tagged))
        .intersection(&want);
    // ... and the PVID: the new one, and an old one that stays as a plain member.
    if desired.pvid != current.pvid {
        for v in [desired.pvid, current.pvid].into_iter().flatten() {
            if want.contains(v) {
                to_set.insert(v);
            }
        }
    }
    let owned_after = owned.intersection(&want).union(&want.difference(&have));
    (del, entries_for(desired, &to_set), owned_after)
}

/// Settings to change on each bridge in the intent. A kernel without bridge VLAN filtering is
/// refused here, before anything is written.
pub fn plan_settings(intent: &Intent, state: &HostState) -> Result<Vec<SettingsChange>> {
    let mut out = Vec::new();
    for b in intent.bridges.values() {
        let bs = state
            .bridges
            .get(&b.name)
            .ok_or_else(|| anyhow!("bridge {} does not exist", b.name))?;
        if !bs.settings.vlan_supported {
            bail!(crate::state::vlan_unsupported(&b.name));
        }
        let have = bs.settings;
        let want = b.settings;
        let change = SettingsChange {
            bridge: b.name.clone(),
            ifindex: bs.ifindex,
            vlan_filtering: (want.vlan_filtering != have.vlan_filtering)
                .then_some(want.vlan_filtering),
            default_pvid: want.default_pvid.filter(|p| *p != have.default_pvid),
            vlan_protocol: want
                .vlan_protocol
                .map(VlanProtocol::ethertype)
                .filter(|p| *p != have.vlan_protocol),
            before: have,
        };
        if change.is_empty() {
            continue;
        }
        if bs.kind == crate::state::BridgeKind::OpenVswitch {
            // Open vSwitch filters VLANs always, gives a new port no VLAN of its own and
            // speaks 802.1Q on access ports: none of these settings exists there.
            let mut what = Vec::new();
            if change.vlan_filtering.is_some() {
                what.push("vlan_filtering = false");
            }
            if change.default_pvid.is_some() {
                what.push("a default_pvid other than 0");
            }
            if change.vlan_protocol.is_some() {
                what.push("vlan_protocol 802.1ad");
            }
            return Err(crate::error::BadInput(format!(
                "bridge {} is an Open vSwitch bridge, which has no {}; remove it from \
                 [bridges.{}] in the config",
                b.name,
                what.join(", "),
                b.name
            ))
            .into());
        }
        out.push(change);
    }
    Ok(out)
}

/// Port plans for every port of `b` in the intent, and for released ports.
///
/// `now` is the kernel after settings were applied. `defaults` are the VIDs the kernel gave
/// ports at enslave (a managed port still carrying one as PVID untagged is ours to replace);
/// `owned` gives the recorded owned VIDs.
pub fn plan_ports(
    b: &BridgeIntent,
    now: &HostState,
    defaults: &[u16],
    owned: impl Fn(&str, &str, u32) -> VidSet,
) -> Result<Vec<PortPlan>> {
    let bs = now
        .bridges
        .get(&b.name)
        .ok_or_else(|| anyhow!("bridge {} vanished during apply", b.name))?;
    let mut out = Vec::new();
    for (port, pi) in &b.ports {
        let is_self = *port == b.name;
        let (ifindex, current) = match (now.ifindex(&b.name, port), now.vlans(&b.name, port)) {
            (Some(i), Some(v)) => (i, v.clone()),
            _ => bail!("port {port} left bridge {} during apply", b.name),
        };
        let mut mine =
            owned(&b.name, port, ifindex).union(&pi.replaceable.intersection(&current.members()));
        if bs.marked_ours.contains(port) || bs.every_vlan.contains(port) {
            mine = mine.union(&current.members());
        }
        for d in defaults {
            if enslave_default_left(pi.role, &current, *d) {
                mine.insert(*d);
            }
        }
        let (del, add, owned_after) = diff_port(&pi.vlans, &current, &mine);
        out.push(PortPlan {
            bridge: b.name.clone(),
            port: port.clone(),
            ifindex,
            is_self,
            role: Some(pi.role),
            origin: pi.origin.clone(),
            before: current,
            desired: pi.vlans.clone(),
            del,
            add,
            owned_after,
        });
    }
    for port in &b.released {
        let Some(p) = bs.ports.get(port) else {
            continue;
        };
        let mine = owned(&b.name, port, p.ifindex);
        let (del, add, owned_after) = diff_port(&PortVlans::none(), &p.vlans, &mine);
        out.push(PortPlan {
            bridge: b.name.clone(),
            port: port.clone(),
            ifindex: p.ifindex,
            is_self: false,
            role: None,
            origin: Origin::new(RELEASED),
            before: p.vlans.clone(),
            desired: PortVlans::none(),
            del,
            add,
            owned_after,
        });
    }
    Ok(out)
}

/// Whether `port` still carries the VID `default` the kernel gave it at enslave. On a guest's
/// tap it counts while it is untagged, PVID or not: libvirt ≥ 11 deletes only VID 1 and moves
/// the PVID to its own `<vlan>`, leaving any other `default_pvid` untagged beside it. On the
/// host's ports (uplinks, the bridge's own) only the untouched PVID-untagged default counts.
fn enslave_default_left(role: Role, port: &PortVlans, default: u16) -> bool {
    match role {
        Role::Guest => port.untagged.contains(default),
        Role::Uplink | Role::SelfPort => {
            port.pvid == Some(default) && port.untagged.contains(default)
        }
    }
}

/// The plan that puts a port back exactly as it was (`target`), whatever it has now.
pub fn restore_port(
    bridge: &str,
    port: &str,
    ifindex: u32,
    is_self: bool,
    now: &PortVlans,
    target: &PortVlans,
) -> PortPlan {
    let (del, add, _) = diff_port(target, now, &VidSet::all());
    PortPlan {
        bridge: bridge.to_string(),
        port: port.to_string(),
        ifindex,
        is_self,
        role: None,
        origin: Origin::new(RESTORED),
        before: now.clone(),
        desired: target.clone(),
        del,
        add,
        owned_after: VidSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port_vlans::Native;

    fn s(x: &str) -> VidSet {
        x.parse().unwrap()
    }

    fn trunk(pvid: Option<u16>, tagged: &str) -> PortVlans {
        PortVlans::build(pvid, Native::Untagged, VidSet::new(), s(tagged)).unwrap()
    }

    const PU: VlanFlags = VlanFlags {
        pvid: true,
        untagged: true,
    };
    const T: VlanFlags = VlanFlags {
        pvid: false,
        untagged: false,
    };

    #[test]
    fn converged_port_needs_nothing() {
        let p = trunk(Some(100), "200-300");
        let (del, add, owned) = diff_port(&p, &p, &s("100,200-300"));
        assert!(del.is_empty() && add.is_empty());
        assert_eq!(owned, s("100,200-300"));
    }

    #[test]
    fn full_trunk_is_one_range_entry() {
        let (del, add, owned) =
            diff_port(&trunk(None, "2-4094"), &PortVlans::none(), &VidSet::new());
        assert!(del.is_empty());
        assert_eq!(
            add,
            vec![VlanEntry {
                first: 2,
                last: 4094,
                flags: T
            }]
        );
        assert_eq!(owned, s("2-4094"));
    }

    #[test]
    fn pvid_travels_alone_even_inside_a_run() {
        let want = PortVlans::build(Some(5), Native::Tagged, VidSet::new(), s("1-10")).unwrap();
        let (_, add, _) = diff_port(&want, &PortVlans::none(), &VidSet::new());
        let pv = VlanFlags {
            pvid: true,
            untagged: false,
        };
        assert_eq!(
            add,
            vec![
                VlanEntry {
                    first: 1,
                    last: 4,
                    flags: T
                },
                VlanEntry {
                    first: 5,
                    last: 5,
                    flags: pv
                },
                VlanEntry {
                    first: 6,
                    last: 10,
                    flags: T
                },
            ]
        );
    }

    #[test]
    fn change_of_pvid_removes_owned_old_pvid() {
        let (del, add, owned) =
            diff_port(&PortVlans::access(200), &PortVlans::access(100), &s("100"));
        assert_eq!(del, s("100"));
        assert_eq!(
            add,
            vec![VlanEntry {
                first: 200,
                last: 200,
                flags: PU
            }]
        );
        assert_eq!(owned, s("200"));
    }

    #[test]
    fn foreign_vids_are_never_removed_and_never_owned() {
        // the port has 7 (someone else's) and 1 (ours); we want access 100
        let mut current = PortVlans::access(1);
        current.set(7, T);
        let (del, add, owned) = diff_port(&PortVlans::access(100), &current, &s("1"));
        assert_eq!(del, s("1"));
        assert_eq!(add.len(), 1);
        assert!(!owned.contains(7));
        // a foreign VID we also want gets our flags but stays foreign
        let (del, add, owned) = diff_port(&trunk(None, "7,8"), &current, &VidSet::new());
        assert!(del.is_empty());
        assert_eq!(
            add,
            vec![VlanEntry {
                first: 8,
                last: 8,
                flags: T
            }]
        );
        assert_eq!(owned, s("8"));
    }

    #[test]
    fn trunk_to_access_and_flag_changes() {
        let current = trunk(Some(10), "20-30");
        let owned = s("10,20-30");
        let (del, add, owned_after) = diff_port(&PortVlans::access(20), &current, &owned);
        assert_eq!(del, s("10,21-30"));
        assert_eq!(
            add,
            vec![VlanEntry {
                first: 20,
                last: 20,
                flags: PU
            }]
        );
        assert_eq!(owned_after, s("20"));
        // a pvid that becomes plain tagged is re-sent without flags (clears pvid+untagged)
        let (del, add, _) = diff_port(&trunk(None, "10,20-30"), &current, &owned);
        assert!(del.is_empty());
        assert_eq!(
            add,
            vec![VlanEntry {
                first: 10,
                last: 10,
                flags: T
            }]
        );
    }

    #[test]
    fn scattered_vids_make_one_entry_each() {
        let want: VidSet = (1..=200).map(|i| i * 20).collect();
        let desired = PortVlans {
            pvid: None,
            untagged: VidSet::new(),
            tagged: want.clone(),
        };
        let (_, add, _) = diff_port(&desired, &PortVlans::none(), &VidSet::new());
        assert_eq!(add.len(), 200);
    }

    fn bridge_intent(ports: &[(&str, Role, PortVlans)], released: &[&str]) -> BridgeIntent {
        BridgeIntent {
            name: "br0".into(),
            settings: crate::intent::DesiredSettings {
                vlan_filtering: true,
                default_pvid: None,
                vlan_protocol: None,
            },
            ports: ports
                .iter()
                .map(|(n, r, v)| {
                    (
                        n.to_string(),
                        crate::intent::PortIntent {
                            role: *r,
                            vlans: v.clone(),
                            origin: Origin::new("t"),
                            replaceable: VidSet::new(),
                        },
                    )
                })
                .collect(),
            released: released.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn host(ports: &[(&str, u32, PortVlans)], default_pvid: u16) -> HostState {
        let mut b = crate::state::BridgeState {
            name: "br0".into(),
            ifindex: 1,
            ..Default::default()
        };
        b.settings.default_pvid = default_pvid;
        b.self_vlans = PortVlans::access(1);
        for (n, i, v) in ports {
            b.ports.insert(
                n.to_string(),
                crate::state::PortState {
                    name: n.to_string(),
                    ifindex: *i,
                    mac: None,
                    vlans: v.clone(),
                },
            );
        }
        let mut h = HostState::default();
        h.bridges.insert("br0".into(), b);
        h
    }

    #[test]
    fn enslave_default_counts_as_ours_on_managed_ports_only() {
        let h = host(
            &[
                ("veth0", 2, PortVlans::access(1)),
                ("other", 3, PortVlans::access(1)),
            ],
            1,
        );
        let b = bridge_intent(&[("veth0", Role::Guest, PortVlans::access(100))], &[]);
        let plans = plan_ports(&b, &h, &[1], |_, _, _| VidSet::new()).unwrap();
        assert_eq!(plans.len(), 1, "the unmanaged port is not planned");
        assert_eq!(plans[0].del, s("1"));
        // with default_pvid 0 nothing is the kernel's default: VID 1 is foreign
        let h0 = host(&[("veth0", 2, PortVlans::access(1))], 0);
        let plans = plan_ports(&b, &h0, &[], |_, _, _| VidSet::new()).unwrap();
        assert!(plans[0].del.is_empty());
        // a VID 1 that is pvid but egress tagged was set by someone: foreign
        let h1 = host(
            &[(
                "veth0",
                2,
                PortVlans::build(Some(1), Native::Tagged, VidSet::new(), VidSet::new()).unwrap(),
            )],
            1,
        );
        let plans = plan_ports(&b, &h1, &[1], |_, _, _| VidSet::new()).unwrap();
        assert!(plans[0].del.is_empty());
    }

    /// libvirt ≥ 11 on a fresh tap, `default_pvid 5`, interface `<vlan>` 42: it deleted VID 1
    /// (not there), added 42 PVID untagged, and left 5 untagged. Someone also added 7 by hand.
    fn libvirt_wrote_42_beside_default_5() -> PortVlans {
        let mut tap = PortVlans::access(42);
        tap.set(
            5,
            VlanFlags {
                pvid: false,
                untagged: true,
            },
        );
        tap.set(7, T);
        tap
    }

    #[test]
    fn the_winner_replaces_what_libvirt_and_the_kernel_put_on_a_guest_tap_never_a_union() {
        let h = host(&[("vnet0", 2, libvirt_wrote_42_beside_default_5())], 5);
        let mut b = bridge_intent(&[("vnet0", Role::Guest, PortVlans::access(43))], &[]);
        b.ports.get_mut("vnet0").unwrap().replaceable = s("42");
        let plans = plan_ports(&b, &h, &[5], |_, _, _| VidSet::new()).unwrap();
        assert_eq!(
            plans[0].del,
            s("5,42"),
            "libvirt's VLAN and the enslave default go"
        );
        assert_eq!(plans[0].owned_after, s("43"));
        let mut after = plans[0].before.clone();
        for v in plans[0].del.iter() {
            after.remove(v);
        }
        for e in &plans[0].add {
            for v in e.first..=e.last {
                after.set(v, e.flags);
            }
        }
        assert_eq!(
            after.to_string(),
            "pvid 43 untagged 43 tagged 7",
            "exactly the winner, plus the VID a person added by hand"
        );
        // without knowing libvirt's <vlan>, 42 would be someone else's: kept
        b.ports.get_mut("vnet0").unwrap().replaceable = VidSet::new();
        let plans = plan_ports(&b, &h, &[5], |_, _, _| VidSet::new()).unwrap();
        assert_eq!(plans[0].del, s("5"));
    }

    #[test]
    fn a_replaceable_vid_the_port_does_not_carry_is_not_deleted() {
        let h = host(&[("vnet0", 2, PortVlans::access(43))], 0);
        let mut b = bridge_intent(&[("vnet0", Role::Guest, PortVlans::access(43))], &[]);
        b.ports.get_mut("vnet0").unwrap().replaceable = s("42");
        let plans = plan_ports(&b, &h, &[], |_, _, _| VidSet::new()).unwrap();
        assert!(plans[0].is_noop(), "{:?}", plans[0]);
    }

    #[test]
    fn an_uplink_keeps_an_untagged_default_that_is_no_longer_its_pvid() {
        let h = host(&[("eth0", 2, libvirt_wrote_42_beside_default_5())], 5);
        let b = bridge_intent(&[("eth0", Role::Uplink, PortVlans::access(42))], &[]);
        let plans = plan_ports(&b, &h, &[5], |_, _, _| VidSet::new()).unwrap();
        assert!(
            plans[0].del.is_empty(),
            "on the host's own ports only an untouched default is the kernel's"
        );
    }

    #[test]
    fn released_ports_lose_only_owned_vids() {
        let mut current = PortVlans::access(100);
        current.set(7, T);
        let h = host(&[("vnet0", 5, current)], 0);
        let b = bridge_intent(&[], &["vnet0"]);
        let plans = plan_ports(&b, &h, &[], |_, p, i| {
            if p == "vnet0" && i == 5 {
                s("100")
            } else {
                VidSet::new()
            }
        })
        .unwrap();
        assert_eq!(plans[0].del, s("100"));
        assert!(plans[0].add.is_empty());
        assert_eq!(plans[0].role, None);
    }

    #[test]
    fn self_port_plan_is_marked_self() {
        let h = host(&[], 1);
        let b = bridge_intent(&[("br0", Role::SelfPort, trunk(Some(1), "200"))], &[]);
        let plans = plan_ports(&b, &h, &[1], |_, _, _| VidSet::new()).unwrap();
        assert!(plans[0].is_self);
        assert_eq!(
            plans[0].add,
            vec![VlanEntry {
                first: 200,
                last: 200,
                flags: T
            }]
        );
        let text = Plan {
            settings: vec![],
            ports: plans,
        }
        .render();
        assert!(
            text.contains("bridge vlan add dev br0 vid 200 self"),
            "{text}"
        );
    }

    #[test]
    fn verify_judges_managed_vids_only() {
        let mut p = restore_port(
            "br0",
            "v",
            2,
            false,
            &PortVlans::none(),
            &PortVlans::access(100),
        );
        p.desired = PortVlans::access(100);
        p.del = s("1");
        let mut actual = PortVlans::access(100);
        actual.set(7, T); // foreign: fine
        assert!(p.verify(&actual).is_ok());
        actual.set(1, T);
        let e = p.verify(&actual).unwrap_err();
        assert!(e.contains("VID 1 should be gone"), "{e}");
        let e = p.verify(&PortVlans::access(5)).unwrap_err();
        assert!(
            e.contains("wanted pvid 100 untagged 100, kernel has none"),
            "{e}"
        );
    }

    #[test]
    fn restore_puts_back_exactly() {
        let before = trunk(Some(1), "7");
        let now = PortVlans::access(100);
        let r = restore_port("br0", "v", 2, false, &now, &before);
        assert_eq!(r.del, s("100"));
        let mut sim = now.clone();
        for v in r.del.iter() {
            sim.remove(v);
        }
        for e in &r.add {
            for v in e.first..=e.last {
                sim.set(v, e.flags);
            }
        }
        assert_eq!(sim, before);
    }

    #[test]
    fn settings_plan_changes_only_what_differs_and_refuses_no_vlan_kernels() {
        let mut h = host(&[], 1);
        let mut i = Intent::default();
        let mut b = bridge_intent(&[], &[]);
        b.settings.default_pvid = Some(0);
        b.settings.vlan_protocol = Some(VlanProtocol::Dot1Q);
        i.bridges.insert("br0".into(), b);
        let ch = plan_settings(&i, &h).unwrap();
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].vlan_filtering, Some(true));
        assert_eq!(ch[0].default_pvid, Some(0));
        assert_eq!(ch[0].vlan_protocol, None, "802.1Q is already set");
        assert_eq!(
            ch[0].command(),
            "ip link set dev br0 type bridge vlan_filtering 1 vlan_default_pvid 0"
        );
        assert_eq!(ch[0].undo().default_pvid, Some(1));
        assert_eq!(ch[0].undo().vlan_filtering, Some(false));

        let bs = h.bridges.get_mut("br0").unwrap();
        bs.settings.vlan_filtering = true;
        bs.settings.default_pvid = 0;
        assert!(plan_settings(&i, &h).unwrap().is_empty());

        h.bridges.get_mut("br0").unwrap().settings.vlan_supported = false;
        let e = plan_settings(&i, &h).unwrap_err().to_string();
        assert!(e.contains("CONFIG_BRIDGE_VLAN_FILTERING"), "{e}");
    }

    /// A small deterministic generator, so the randomized test needs no crate.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn vid(&mut self) -> u16 {
            // mostly a small window, so sets overlap
            1 + (self.next() % 40) as u16
                + if self.next().is_multiple_of(8) {
                    4000
                } else {
                    0
                }
        }
        fn port(&mut self) -> PortVlans {
            let mut p = PortVlans::none();
            for _ in 0..(self.next() % 12) {
                let v = self.vid();
                let f = VlanFlags {
                    pvid: false,
                    untagged: self.next().is_multiple_of(3),
                };
                p.set(v, f);
            }
            if self.next().is_multiple_of(2) {
                let members: Vec<u16> = p.members().iter().collect();
                if !members.is_empty() {
                    p.pvid = Some(members[(self.next() % members.len() as u64) as usize]);
                }
            }
            p
        }
    }

    /// The word-at-a-time diff agrees with checking every VID's flags, and applying the plan
    /// the way the kernel does always verifies, leaving non-owned VIDs alone.
    #[test]
    fn diff_agrees_with_the_per_vid_reference_on_random_ports() {
        let mut rng = XorShift(0x9e3779b97f4a7c15);
        for _ in 0..20_000 {
            let desired = rng.port();
            let current = rng.port();
            let owned: VidSet = current
                .members()
                .iter()
                .filter(|_| rng.next().is_multiple_of(2))
                .collect();
            let (del, add, owned_after) = diff_port(&desired, &current, &owned);
            let reference: VidSet = desired
                .members()
                .iter()
                .filter(|v| desired.flags(*v) != current.flags(*v))
                .collect();
            let got: VidSet = add.iter().flat_map(|e| e.first..=e.last).collect();
            assert_eq!(got, reference, "desired {desired}, current {current}");
            let mut after = current.clone();
            for v in del.iter() {
                after.remove(v);
            }
            for e in &add {
                for v in e.first..=e.last {
                    after.set(v, e.flags);
                }
            }
            let plan = PortPlan {
                bridge: "b".into(),
                port: "p".into(),
                ifindex: 1,
                is_self: false,
                role: None,
                origin: Origin::new("t"),
                before: current.clone(),
                desired: desired.clone(),
                del: del.clone(),
                add: add.clone(),
                owned_after: owned_after.clone(),
            };
            assert_eq!(
                plan.verify(&after),
                Ok(()),
                "desired {desired}, current {current}, after {after}"
            );
            let foreign = current
                .members()
                .difference(&owned)
                .difference(&desired.members());
            assert!(
                foreign.is_subset(&after.members()),
                "a foreign VID was removed"
            );
            assert!(owned_after.is_subset(&desired.members()));
        }
    }

    #[test]
    fn hostile_names_are_quoted_in_commands() {
        assert_eq!(shell_word("vnet0"), "vnet0");
        assert_eq!(shell_word("a;rm"), "'a;rm'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("$(x)"), "'$(x)'");
        let w = PortWrite {
            bridge: "br0".into(),
            port: "g;x".into(),
            ifindex: 1,
            is_self: false,
            op: PortOp::Del(vec![(5, 5)]),
        };
        assert_eq!(command(&w), "bridge vlan del dev 'g;x' vid 5 master");
    }

    #[test]
    fn render_is_runnable_commands_with_reasons() {
        let h = host(&[("veth0", 2, PortVlans::access(1))], 1);
        let b = bridge_intent(
            &[("veth0", Role::Guest, trunk(Some(100), "2000-2010"))],
            &[],
        );
        let plan = Plan {
            settings: vec![],
            ports: plan_ports(&b, &h, &[1], |_, _, _| VidSet::new()).unwrap(),
        };
        let text = plan.render();
        assert_eq!(
            text,
            "# veth0 on br0 (guest, t): pvid 1 untagged 1 -> pvid 100 untagged 100 tagged 2000-2010\n\
             bridge vlan del dev veth0 vid 1 master\n\
             bridge vlan add dev veth0 vid 100 pvid untagged master\n\
             bridge vlan add dev veth0 vid 2000-2010 master\n"
        );
        assert_eq!(plan.write_count(), 2);
        assert!(Plan::default().render().contains("nothing to do"));
    }
}
