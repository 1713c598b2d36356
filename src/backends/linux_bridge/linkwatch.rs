//! rtnetlink link events: a socket subscribed to RTNLGRP_LINK that reports links appearing,
//! changing (enslaved, VLANs changed: the bridge's AF_BRIDGE notifications) and going away,
//! waiting with a timeout and never polling. A receive-buffer overrun (ENOBUFS) is reported
//! as such, so the caller resynchronises from a full dump.

use anyhow::{Context, Result};
use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// RTNLGRP_LINK.
const GROUP_LINK: u32 = 1;

/// One link notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkChange {
    pub deleted: bool,
    /// An AF_BRIDGE notification (port state or VLANs changed), not a plain link one.
    pub bridge_family: bool,
    pub ifindex: u32,
    pub name: Option<String>,
    /// IFLA_MASTER: the bridge (or bond…) it is enslaved to.
    pub master: Option<u32>,
    pub mac: Option<[u8; 6]>,
    /// The link is itself a bridge.
    pub is_bridge: bool,
    /// A bridge notification's VLANs (the kernel sends them compressed with every port or
    /// VLAN change), when it carries them.
    pub vlans: Option<Box<crate::port_vlans::PortVlans>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Link(LinkChange),
    /// The kernel dropped notifications: whatever we knew may be stale.
    Overrun,
}

pub struct LinkEvents {
    sock: Socket,
    buf: Vec<u8>,
}

impl LinkEvents {
    /// Subscribes to link notifications. Subscribe before reading the current state, so
    /// nothing that happens in between is missed.
    pub fn subscribe() -> Result<LinkEvents> {
        let mut sock = Socket::new(NETLINK_ROUTE).context("cannot open a netlink socket")?;
        sock.bind(&SocketAddr::new(0, 0))
            .context("cannot bind the netlink socket")?;
        sock.add_membership(GROUP_LINK)
            .context("cannot subscribe to link notifications")?;
        let _ = sock.set_rx_buf_sz(4 << 20);
        Ok(LinkEvents {
            sock,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Waits up to `timeout` (forever with `None`) for notifications; returns every one that
    /// arrived in one read, or nothing on timeout.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<Event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Vec::new());
                    }
                    left.as_millis().min(i32::MAX as u128) as i32
                }
            };
            let mut pfd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    return Ok(Vec::new());
                }
                return Err(e).context("poll on the netlink socket failed");
            }
            if n == 0 {
                continue;
            }
            return self.read();
        }
    }

    /// Raw fd, for callers that also wait on other things (signals).
    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    /// Reads one datagram of notifications (call when the fd is readable).
    pub fn read(&mut self) -> Result<Vec<Event>> {
        self.buf.clear();
        let n = match self.sock.recv(&mut self.buf, libc::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(vec![Event::Overrun]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(Vec::new()),
            Err(e) => return Err(e).context("netlink receive failed"),
        };
        let mut out = Vec::new();
        let mut off = 0;
        while off + 16 <= n {
            let len = NetlinkBuffer::new(&self.buf[off..n]).length() as usize;
            if len < 16 || off + len > n {
                break;
            }
            if let Ok(m) =
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..off + len])
            {
                match m.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                        out.push(Event::Link(change(&l, false)))
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                        out.push(Event::Link(change(&l, true)))
                    }
                    NetlinkPayload::Overrun(_) => out.push(Event::Overrun),
                    _ => {}
                }
            }
            off += (len + 3) & !3;
        }
        Ok(out)
    }
}

fn change(l: &LinkMessage, deleted: bool) -> LinkChange {
    let mut c = LinkChange {
        deleted,
        bridge_family: l.header.interface_family == AddressFamily::Bridge,
        ifindex: l.header.index,
        name: None,
        master: None,
        mac: None,
        is_bridge: false,
        vlans: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => c.name = Some(n.clone()),
            LinkAttribute::Controller(m) if *m != 0 => c.master = Some(*m),
            LinkAttribute::Address(a) if a.len() == 6 => c.mac = a.as_slice().try_into().ok(),
            LinkAttribute::LinkInfo(infos) => {
                c.is_bridge |= infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)))
            }
            LinkAttribute::AfSpecBridge(spec) => {
                c.vlans = Some(Box::new(crate::netlink::vlans_from(spec)))
            }
            _ => {}
        }
    }
    c
}

/// Whether a tap's MAC belongs to a guest interface with MAC `guest`: libvirt gives the
/// host side of a tap the guest's MAC with the first byte set to 0xfe.
pub fn tap_of_guest(tap: &[u8; 6], guest: &[u8; 6]) -> bool {
    tap == guest || (tap[0] == 0xfe && tap[1..] == guest[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_macs_match_their_guest() {
        let guest = [0x52, 0x54, 0, 0xbb, 0, 1];
        assert!(tap_of_guest(&[0xfe, 0x54, 0, 0xbb, 0, 1], &guest));
        assert!(tap_of_guest(&guest, &guest));
        assert!(!tap_of_guest(&[0xfe, 0x54, 0, 0xbb, 0, 2], &guest));
    }

    #[test]
    fn link_messages_become_changes() {
        let mut l = LinkMessage::default();
        l.header.index = 7;
        l.header.interface_family = AddressFamily::Bridge;
        l.attributes.push(LinkAttribute::IfName("vnet3".into()));
        l.attributes.push(LinkAttribute::Controller(2));
        l.attributes
            .push(LinkAttribute::Address(vec![0xfe, 0x54, 0, 1, 2, 3]));
        let c = change(&l, false);
        assert_eq!(c.ifindex, 7);
        assert!(c.bridge_family && !c.deleted && !c.is_bridge);
        assert_eq!(c.master, Some(2));
        assert_eq!(c.name.as_deref(), Some("vnet3"));
        assert_eq!(c.mac, Some([0xfe, 0x54, 0, 1, 2, 3]));
    }
}
