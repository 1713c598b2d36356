//! Backends: the switches the core drives through its `Switch` trait — Linux bridges over
//! netlink (`linux_bridge`), Open vSwitch over OVSDB (`ovs`) — and the host's switch that puts
//! both behind one `Switch`, choosing per bridge (`host_switch`).

pub mod host_switch;
pub mod linux_bridge;
pub mod ovs;
