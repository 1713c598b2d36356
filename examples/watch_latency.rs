//! Benchmark probe (run by bench/inside.py): how long `virt-vlan watch` takes from a port
//! being enslaved to a managed bridge to that port carrying its VLANs, as the kernel reports
//! it, and the watcher's resident memory as events accumulate.
//!
//!     watch_latency <bridge> <count> <first-vid> <watch-pid>
//!
//! Ports `w000`… must exist (veths, not enslaved) and be configured with pvid `first-vid + i`.
//! Enslaves them one at a time with its own RTM_NEWLINK (no process start in the measured
//! path) and prints JSON: latencies in ms, RSS samples, failures.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::time::{Duration, Instant};
use virt_vlan::linkwatch::{Event, LinkEvents};

fn ifindex(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn enslave(sock: &Socket, port: u32, bridge: u32, seq: u32) {
    let mut m = LinkMessage::default();
    m.header.index = port;
    m.attributes.push(LinkAttribute::Controller(bridge));
    let mut h = NetlinkHeader::default();
    h.flags = NLM_F_REQUEST | NLM_F_ACK;
    h.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        h,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)),
    );
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    sock.send(&buf, 0).expect("send");
    let mut ack = Vec::with_capacity(4096);
    sock.recv(&mut ack, 0).expect("ack");
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (bridge, count, first_vid, watch_pid): (String, usize, u16, u32) = (
        a[1].clone(),
        a[2].parse().unwrap(),
        a[3].parse().unwrap(),
        a[4].parse().unwrap(),
    );
    let br = ifindex(&bridge);
    let mut events = LinkEvents::subscribe().expect("subscribe");
    let mut sock = Socket::new(NETLINK_ROUTE).unwrap();
    sock.bind_auto().unwrap();
    sock.connect(&SocketAddr::new(0, 0)).unwrap();
    let mut latencies = Vec::new();
    let mut rss = vec![(0usize, rss_kb(watch_pid))];
    let mut failures = 0;
    for i in 0..count {
        let port = ifindex(&format!("w{i:03}"));
        let want = first_vid + i as u16;
        let t0 = Instant::now();
        enslave(&sock, port, br, i as u32 + 1);
        let deadline = t0 + Duration::from_secs(10);
        let mut done = false;
        while !done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                failures += 1;
                break;
            }
            for e in events.wait(Some(left)).expect("events") {
                if let Event::Link(c) = e
                    && c.ifindex == port
                    && c.bridge_family
                    && c.vlans
                        .as_ref()
                        .is_some_and(|v| v.pvid == Some(want) && v.untagged.contains(want))
                {
                    latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                    done = true;
                }
            }
        }
        if (i + 1) % 50 == 0 {
            rss.push((i + 1, rss_kb(watch_pid)));
        }
    }
    println!(
        "{}",
        serde_json::json!({"latencies_ms": latencies, "rss_kb": rss, "failures": failures})
    );
}
