//! The kernel edge: a synchronous rtnetlink socket that reads every bridge port's VLANs in one
//! compressed AF_BRIDGE dump, reads and sets bridge VLAN settings, and sends port VLAN changes
//! as range-compressed RTM_SETLINK/RTM_DELLINK messages, many per `send`, one ack each.

use crate::plan::{PortOp, PortWrite, SettingsChange};
use crate::port_vlans::{PortVlans, VlanFlags};
use crate::state::{BridgeSettings, BridgeState, HostState, PortState};
use crate::switch::{Stats, Switch, WriteError};
use anyhow::{Context, Result, anyhow, bail};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoData, InfoKind,
    LinkAttribute, LinkExtentMask, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::collections::{BTreeMap, BTreeSet};

/// Largest batch of requests written with one `send` (the kernel handles them in order and
/// acks each; acks must fit our receive buffer).
const BATCH_MESSAGES: usize = 128;
const BATCH_BYTES: usize = 64 * 1024;
const RECV_BUF: usize = 64 * 1024;
/// Attempts at a dump the kernel marks as interrupted by concurrent changes.
const DUMP_RETRIES: usize = 5;

/// A kernel answer to one request: errno (positive) and the kernel's message, if any.
type Nack = (i32, String);

/// The kernel refused a dump or a get with this errno.
#[derive(Debug, thiserror::Error)]
#[error("kernel refused the request: {}", std::io::Error::from_raw_os_error(*.0))]
struct Refused(i32);

pub struct Netlink {
    sock: Socket,
    seq: u32,
    stats: Stats,
    buf: Vec<u8>,
    /// Fault injection for the crash tests: [`FAULT_KILL_AFTER_WRITES`].
    kill_after_writes: Option<u64>,
    /// Fault injection: how many more dumps to take as interrupted ([`FAULT_DUMP_INTR`]).
    interrupt_dumps: usize,
}

/// Fault injection, for tests only: with `VIRT_VLAN_FAULT_KILL_AFTER_WRITES=N` set, the process
/// sends its writes one message at a time and SIGKILLs itself once N have been acknowledged —
/// a crash at a chosen point between two kernel writes, to prove that the ownership record
/// (written ahead of every write) lets the next run attribute and clean up everything.
pub const FAULT_KILL_AFTER_WRITES: &str = "VIRT_VLAN_FAULT_KILL_AFTER_WRITES";

/// Fault injection, for tests only: with `VIRT_VLAN_FAULT_DUMP_INTR=N` set, the first N dumps
/// of each netlink socket are handled as if the kernel had marked them `NLM_F_DUMP_INTR` (a
/// concurrent change while the dump was in flight, which a real host produces only by chance)
/// — so the lab can prove the retry, and the clean refusal once the retries run out.
pub const FAULT_DUMP_INTR: &str = "VIRT_VLAN_FAULT_DUMP_INTR";

impl Netlink {
    pub fn open() -> Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE).context("cannot open a netlink socket")?;
        sock.bind_auto().context("cannot bind the netlink socket")?;
        sock.connect(&SocketAddr::new(0, 0))
            .context("cannot connect the netlink socket")?;
        // The kernel's own error words, and acks without a copy of our request.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_rx_buf_sz(4 << 20);
        Ok(Netlink {
            sock,
            seq: 0,
            stats: Stats::default(),
            buf: Vec::with_capacity(RECV_BUF),
            kill_after_writes: std::env::var(FAULT_KILL_AFTER_WRITES)
                .ok()
                .and_then(|v| v.parse().ok()),
            interrupt_dumps: std::env::var(FAULT_DUMP_INTR)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        })
    }

    fn message(
        &mut self,
        inner: RouteNetlinkMessage,
        flags: u16,
    ) -> NetlinkMessage<RouteNetlinkMessage> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
        m.finalize();
        m
    }

    fn recv(&mut self) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
        self.buf.clear();
        let n = self
            .sock
            .recv(&mut self.buf, 0)
            .context("netlink receive failed")?;
        parse_messages(&self.buf[..n])
    }

    /// Sends a dump request and collects every reply, retrying if the kernel says the dump
    /// was interrupted by a concurrent change.
    fn dump(&mut self, req: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_RETRIES {
            let msg = self.message(req.clone(), NLM_F_REQUEST | NLM_F_DUMP);
            let seq = msg.header.sequence_number;
            self.send(&[msg])?;
            self.stats.reads += 1;
            let mut out = Vec::new();
            let mut interrupted = false;
            'recv: loop {
                for m in self.recv()? {
                    if m.header.sequence_number != seq {
                        continue;
                    }
                    interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
                    match m.payload {
                        NetlinkPayload::Done(_) => break 'recv,
                        NetlinkPayload::Error(e) if e.code.is_some() => {
                            return Err(Refused(-e.raw_code()).into());
                        }
                        NetlinkPayload::InnerMessage(inner) => out.push(inner),
                        _ => {}
                    }
                }
            }
            if self.interrupt_dumps > 0 {
                self.interrupt_dumps -= 1;
                interrupted = true;
            }
            if !interrupted {
                return Ok(out);
            }
            tracing::debug!("the kernel marked a dump interrupted; dumping again");
        }
        bail!("the kernel's view kept changing during {DUMP_RETRIES} dumps; try again")
    }

    /// One request answered by one message (or an error).
    fn get(&mut self, req: RouteNetlinkMessage) -> Result<Option<RouteNetlinkMessage>> {
        let msg = self.message(req, NLM_F_REQUEST);
        let seq = msg.header.sequence_number;
        self.send(&[msg])?;
        self.stats.reads += 1;
        loop {
            for m in self.recv()? {
                if m.header.sequence_number != seq {
                    continue;
                }
                return match m.payload {
                    NetlinkPayload::InnerMessage(inner) => Ok(Some(inner)),
                    NetlinkPayload::Error(e) if e.raw_code() == -libc::ENODEV => Ok(None),
                    NetlinkPayload::Error(e) => Err(Refused(-e.raw_code()).into()),
                    _ => Ok(None),
                };
            }
        }
    }

    fn send(&mut self, msgs: &[NetlinkMessage<RouteNetlinkMessage>]) -> Result<()> {
        let total: usize = msgs.iter().map(|m| m.buffer_len()).sum();
        let mut bytes = vec![0u8; total];
        let mut off = 0;
        for m in msgs {
            let len = m.buffer_len();
            m.serialize(&mut bytes[off..off + len]);
            off += len;
        }
        self.sock.send(&bytes, 0).context("netlink send failed")?;
        Ok(())
    }

    /// Sends `reqs` with acks requested, in batches, and answers for each in order.
    fn transact(&mut self, reqs: Vec<RouteNetlinkMessage>) -> Result<Vec<Result<(), Nack>>> {
        let mut answers = Vec::with_capacity(reqs.len());
        let mut pending = reqs.into_iter().peekable();
        while pending.peek().is_some() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(r) = pending.peek() {
                let m = self.message(r.clone(), NLM_F_REQUEST | NLM_F_ACK);
                let most = if self.kill_after_writes.is_some() {
                    1
                } else {
                    BATCH_MESSAGES
                };
                if !batch.is_empty()
                    && (batch.len() >= most || bytes + m.buffer_len() > BATCH_BYTES)
                {
                    break;
                }
                bytes += m.buffer_len();
                batch.push(m);
                pending.next();
            }
            self.send(&batch)?;
            self.stats.writes += batch.len() as u64;
            let mut results: BTreeMap<u32, Result<(), Nack>> = BTreeMap::new();
            let wanted: BTreeSet<u32> = batch.iter().map(|m| m.header.sequence_number).collect();
            while results.len() < wanted.len() {
                for m in self.recv()? {
                    let seq = m.header.sequence_number;
                    if !wanted.contains(&seq) {
                        continue;
                    }
                    if let NetlinkPayload::Error(e) = &m.payload {
                        let r = match e.code {
                            None => Ok(()),
                            Some(c) => Err((
                                -c.get(),
                                ext_ack_message(m.header.flags, &e.header)
                                    .unwrap_or_else(|| e.to_io().to_string()),
                            )),
                        };
                        results.insert(seq, r);
                    }
                }
            }
            answers.extend(
                batch
                    .iter()
                    .map(|m| results.remove(&m.header.sequence_number).unwrap()),
            );
            if self
                .kill_after_writes
                .is_some_and(|n| self.stats.writes >= n)
            {
                // the crash test's "power cut": no destructor, no record save, nothing
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
        }
        Ok(answers)
    }

    /// The bridge settings in a link message's IFLA_LINKINFO, if it is a bridge.
    fn settings_of(msg: &LinkMessage) -> Option<BridgeSettings> {
        let mut is_bridge = false;
        let mut s = BridgeSettings {
            vlan_supported: false,
            ..BridgeSettings::default()
        };
        for a in &msg.attributes {
            let LinkAttribute::LinkInfo(infos) = a else {
                continue;
            };
            for i in infos {
                match i {
                    LinkInfo::Kind(InfoKind::Bridge) => is_bridge = true,
                    LinkInfo::Data(InfoData::Bridge(data)) => {
                        for d in data {
                            // IFLA_BR_VLAN_FILTERING is reported by every kernel; the default
                            // PVID only by one built with CONFIG_BRIDGE_VLAN_FILTERING.
                            match d {
                                InfoBridge::VlanFiltering(f) => s.vlan_filtering = *f,
                                InfoBridge::VlanDefaultPvid(p) => {
                                    s.vlan_supported = true;
                                    s.default_pvid = *p;
                                }
                                InfoBridge::VlanProtocol(p) => s.vlan_protocol = u16::from(*p),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        is_bridge.then_some(s)
    }

    fn get_link(&mut self, ifindex: u32, name: Option<&str>) -> Result<Option<LinkMessage>> {
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        if let Some(n) = name {
            m.attributes.push(LinkAttribute::IfName(n.to_string()));
        }
        Ok(match self.get(RouteNetlinkMessage::GetLink(m))? {
            Some(RouteNetlinkMessage::NewLink(l)) => Some(l),
            _ => None,
        })
    }

    /// Whether an interface exists at all (for messages about missing ports).
    pub fn link_exists(&mut self, name: &str) -> Result<bool> {
        Ok(self.get_link(0, Some(name))?.is_some())
    }
}

/// One receive buffer split into its netlink messages (pure: the fuzz target reads kernel
/// answers through this very function).
pub fn parse_messages(buf: &[u8]) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
    let n = buf.len();
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= n {
        let len = NetlinkBuffer::new(&buf[off..n]).length() as usize;
        if len < 16 || off + len > n {
            bail!("malformed netlink message from the kernel");
        }
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..off + len])
            .map_err(|e| anyhow!("cannot parse a netlink message: {e}"))?;
        out.push(m);
        off += (len + 3) & !3;
    }
    Ok(out)
}

/// The kernel's extended-ack message (NLMSGERR_ATTR_MSG) in an error payload.
pub fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    const NLM_F_CAPPED: u16 = 0x100;
    const NLM_F_ACK_TLVS: u16 = 0x200;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 16 {
        return None;
    }
    let orig_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        u32::from_ne_bytes(payload[0..4].try_into().ok()?) as usize
    };
    let mut tlvs = payload.get(orig_len..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            break;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let s = String::from_utf8_lossy(&tlvs[4..len]);
            return Some(s.trim_end_matches('\0').to_string());
        }
        // the last TLV may lack its padding: that ends the list, not the process
        tlvs = tlvs.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

/// Kernel VLAN entries (compressed: ranges as BEGIN/END pairs) into a port's VLANs.
pub fn vlans_from(spec: &[AfSpecBridge]) -> PortVlans {
    let mut v = PortVlans::none();
    let mut begin: Option<u16> = None;
    for a in spec {
        let AfSpecBridge::VlanInfo(info) = a else {
            continue;
        };
        let f = info.flags;
        let flags = VlanFlags {
            pvid: f.contains(BridgeVlanInfoFlags::Pvid),
            untagged: f.contains(BridgeVlanInfoFlags::Untagged),
        };
        if f.contains(BridgeVlanInfoFlags::RangeBegin) {
            begin = Some(info.vid);
            continue;
        }
        let first = if f.contains(BridgeVlanInfoFlags::RangeEnd) {
            begin.take().unwrap_or(info.vid)
        } else {
            info.vid
        };
        let (first, last) = (first.max(1), info.vid.min(4094));
        if first > last {
            continue;
        }
        // the kernel never reports a PVID inside a range nor a VID twice: whole ranges at once;
        // a VID listed again anyway keeps its last flags, so untagged and tagged stay disjoint
        if flags.untagged {
            v.untagged.insert_range(first, last);
            v.tagged = v.tagged.difference(&v.untagged);
        } else {
            v.tagged.insert_range(first, last);
            v.untagged = v.untagged.difference(&v.tagged);
        }
        if flags.pvid {
            v.pvid = Some(first);
        }
    }
    v
}

/// A port write as IFLA_AF_SPEC attributes.
fn af_spec(w: &PortWrite) -> Vec<AfSpecBridge> {
    let mut spec = Vec::new();
    if w.is_self {
        spec.push(AfSpecBridge::Flags(BridgeFlag::LowerDev));
    }
    let mut push = |first: u16, last: u16, base: BridgeVlanInfoFlags| {
        if first == last {
            spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags: base,
                vid: first,
            }));
        } else {
            spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags: base | BridgeVlanInfoFlags::RangeBegin,
                vid: first,
            }));
            spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags: base | BridgeVlanInfoFlags::RangeEnd,
                vid: last,
            }));
        }
    };
    match &w.op {
        PortOp::Del(ranges) => {
            for (a, b) in ranges {
                push(*a, *b, BridgeVlanInfoFlags::empty());
            }
        }
        PortOp::Add(entries) => {
            for e in entries {
                let mut f = BridgeVlanInfoFlags::empty();
                if e.flags.pvid {
                    f |= BridgeVlanInfoFlags::Pvid;
                }
                if e.flags.untagged {
                    f |= BridgeVlanInfoFlags::Untagged;
                }
                push(e.first, e.last, f);
            }
        }
    }
    spec
}

fn port_request(w: &PortWrite) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    m.header.index = w.ifindex;
    m.attributes.push(LinkAttribute::AfSpecBridge(af_spec(w)));
    match w.op {
        PortOp::Del(_) => RouteNetlinkMessage::DelLink(m),
        PortOp::Add(_) => RouteNetlinkMessage::SetLink(m),
    }
}

impl Switch for Netlink {
    fn read(&mut self, managed: &BTreeSet<String>) -> Result<HostState> {
        let mut req = LinkMessage::default();
        req.header.interface_family = AddressFamily::Bridge;
        req.attributes.push(LinkAttribute::ExtMask(vec![
            LinkExtentMask::BrvlanCompressed,
        ]));
        // A kernel without bridge VLAN filtering refuses this dump (EOPNOTSUPP); managed
        // bridges are then looked up by name below and report `vlan_supported: false`.
        let replies = match self.dump(RouteNetlinkMessage::GetLink(req)) {
            Err(e)
                if e.downcast_ref::<Refused>()
                    .is_some_and(|r| r.0 == libc::EOPNOTSUPP) =>
            {
                Vec::new()
            }
            other => other?,
        };

        struct Entry {
            ifindex: u32,
            name: String,
            master: u32,
            mac: Option<[u8; 6]>,
            vlans: PortVlans,
        }
        let mut entries = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewLink(l) = r else {
                continue;
            };
            let mut e = Entry {
                ifindex: l.header.index,
                name: String::new(),
                master: 0,
                mac: None,
                vlans: PortVlans::none(),
            };
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => e.name = n.clone(),
                    LinkAttribute::Controller(m) => e.master = *m,
                    LinkAttribute::Address(a) if a.len() == 6 => {
                        e.mac = a.as_slice().try_into().ok()
                    }
                    LinkAttribute::AfSpecBridge(spec) => e.vlans = vlans_from(spec),
                    _ => {}
                }
            }
            entries.push(e);
        }
        let mut host = HostState::default();
        let mut by_index: BTreeMap<u32, String> = BTreeMap::new();
        for e in entries.iter().filter(|e| e.master == e.ifindex) {
            by_index.insert(e.ifindex, e.name.clone());
            host.bridges.insert(
                e.name.clone(),
                BridgeState {
                    name: e.name.clone(),
                    ifindex: e.ifindex,
                    kind: crate::state::BridgeKind::LinuxBridge,
                    settings: BridgeSettings::default(),
                    self_vlans: e.vlans.clone(),
                    ports: BTreeMap::new(),
                    marked_ours: Default::default(),
                    every_vlan: Default::default(),
                    guest_marks: Default::default(),
                },
            );
        }
        for e in entries.into_iter().filter(|e| e.master != e.ifindex) {
            let Some(bname) = by_index.get(&e.master) else {
                continue;
            };
            host.bridges.get_mut(bname).unwrap().ports.insert(
                e.name.clone(),
                PortState {
                    name: e.name,
                    ifindex: e.ifindex,
                    mac: e.mac,
                    vlans: e.vlans,
                },
            );
        }
        // Settings of managed bridges; a managed bridge the dump did not list (a kernel that
        // reports no VLANs) is looked up by name.
        for name in managed {
            let ifindex = host.bridges.get(name).map_or(0, |b| b.ifindex);
            let link = if ifindex != 0 {
                self.get_link(ifindex, None)?
            } else {
                self.get_link(0, Some(name))?
            };
            let Some(link) = link else { continue };
            let Some(settings) = Self::settings_of(&link) else {
                continue;
            };
            let b = host
                .bridges
                .entry(name.clone())
                .or_insert_with(|| BridgeState {
                    name: name.clone(),
                    ifindex: link.header.index,
                    ..Default::default()
                });
            b.settings = settings;
        }
        Ok(host)
    }

    fn set_settings(&mut self, c: &SettingsChange) -> Result<()> {
        let mut data = Vec::new();
        if let Some(f) = c.vlan_filtering {
            data.push(InfoBridge::VlanFiltering(f));
        }
        if let Some(p) = c.default_pvid {
            data.push(InfoBridge::VlanDefaultPvid(p));
        }
        if let Some(p) = c.vlan_protocol {
            data.push(InfoBridge::VlanProtocol(p.into()));
        }
        let mut m = LinkMessage::default();
        m.header.index = c.ifindex;
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(data)),
        ]));
        match self
            .transact(vec![RouteNetlinkMessage::NewLink(m)])?
            .remove(0)
        {
            Ok(()) => Ok(()),
            Err((errno, msg)) if errno == libc::EOPNOTSUPP => Err(anyhow!(
                "bridge {}: the kernel cannot do `{}` ({msg}); it may lack CONFIG_BRIDGE_VLAN_FILTERING",
                c.bridge,
                c.command()
            )),
            Err((_, msg)) => Err(anyhow!(
                "bridge {}: kernel refused `{}`: {msg}",
                c.bridge,
                c.command()
            )),
        }
    }

    fn write(&mut self, writes: &[PortWrite]) -> Vec<Result<(), WriteError>> {
        let reqs = writes.iter().map(port_request).collect();
        match self.transact(reqs) {
            Ok(answers) => answers
                .into_iter()
                .zip(writes)
                .map(|(a, w)| {
                    a.map_err(|(errno, message)| WriteError {
                        bridge: w.bridge.clone(),
                        port: w.port.clone(),
                        errno,
                        message,
                    })
                })
                .collect(),
            Err(e) => writes
                .iter()
                .map(|w| {
                    Err(WriteError {
                        bridge: w.bridge.clone(),
                        port: w.port.clone(),
                        errno: libc::EIO,
                        message: format!("{e:#}"),
                    })
                })
                .collect(),
        }
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::VlanEntry;
    use netlink_packet_core::Emitable;

    fn info(flags: BridgeVlanInfoFlags, vid: u16) -> AfSpecBridge {
        AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid })
    }

    #[test]
    fn compressed_dump_entries_expand_to_port_vlans() {
        use BridgeVlanInfoFlags as F;
        let spec = vec![
            info(F::Pvid | F::Untagged, 1),
            info(F::RangeBegin, 2),
            info(F::RangeEnd, 4094),
        ];
        let v = vlans_from(&spec);
        assert_eq!(v.to_string(), "pvid 1 untagged 1 tagged 2-4094");
        // the bridge's own entries carry BRENTRY: ignored
        let v = vlans_from(&[info(F::Brentry | F::Untagged | F::Pvid, 7)]);
        assert_eq!(v, PortVlans::access(7));
        // found by fuzzing: a VID listed twice was both untagged and tagged; the last says
        let v = vlans_from(&[info(F::Pvid | F::Untagged, 7), info(F::empty(), 7)]);
        assert_eq!(v.to_string(), "pvid 7 tagged 7");
    }

    #[test]
    fn a_full_trunk_is_one_message_with_one_range() {
        let w = PortWrite {
            bridge: "br0".into(),
            port: "vnet0".into(),
            ifindex: 9,
            is_self: false,
            op: PortOp::Add(vec![VlanEntry {
                first: 2,
                last: 4094,
                flags: VlanFlags {
                    pvid: false,
                    untagged: false,
                },
            }]),
        };
        let spec = af_spec(&w);
        assert_eq!(spec.len(), 2);
        let RouteNetlinkMessage::SetLink(m) = port_request(&w) else {
            panic!()
        };
        assert_eq!(m.header.index, 9);
        assert_eq!(m.header.interface_family, AddressFamily::Bridge);
        // pin the bytes of IFLA_AF_SPEC: two IFLA_BRIDGE_VLAN_INFO {flags, vid}
        let mut bytes = vec![0u8; m.buffer_len()];
        m.emit(&mut bytes);
        let tail = &bytes[bytes.len() - 20..];
        assert_eq!(
            tail,
            &[
                20, 0, 26, 0, // IFLA_AF_SPEC (26), 20 bytes
                8, 0, 2, 0, 8, 0, 2, 0, // VLAN_INFO: flags RANGE_BEGIN (0x8), vid 2
                8, 0, 2, 0, 16, 0, 0xfe, 0x0f, // VLAN_INFO: flags RANGE_END (0x10), vid 4094
            ]
        );
        // and the whole netlink message parses back to the same request
        let mut nl = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::SetLink(m)),
        );
        nl.finalize();
        let mut wire = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut wire);
        let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&wire).unwrap();
        assert_eq!(back, nl);
    }

    #[test]
    fn self_writes_carry_bridge_flags_self() {
        let w = PortWrite {
            bridge: "br0".into(),
            port: "br0".into(),
            ifindex: 1,
            is_self: true,
            op: PortOp::Del(vec![(1, 1)]),
        };
        let spec = af_spec(&w);
        assert_eq!(spec[0], AfSpecBridge::Flags(BridgeFlag::LowerDev));
        assert_eq!(u16::from(BridgeFlag::LowerDev), 2, "BRIDGE_FLAGS_SELF");
        assert!(matches!(port_request(&w), RouteNetlinkMessage::DelLink(_)));
    }

    #[test]
    fn ext_ack_message_is_read_from_capped_errors() {
        // capped original header (16 bytes) then NLMSGERR_ATTR_MSG "nope\0"
        let mut p = vec![0u8; 16];
        p.extend_from_slice(&[9, 0, 1, 0]);
        p.extend_from_slice(b"nope\0");
        p.extend_from_slice(&[0, 0, 0]);
        assert_eq!(ext_ack_message(0x300, &p).as_deref(), Some("nope"));
        assert_eq!(ext_ack_message(0x100, &p), None, "no TLVs flag, no message");
        // found by fuzzing: an unpadded last TLV of another kind used to panic
        let mut p = vec![0u8; 16];
        p.extend_from_slice(&[5, 0, 2, 0, 0]);
        assert_eq!(ext_ack_message(0x300, &p), None);
    }
}
