//! virt-vlan: a Linux bridge as a managed 802.1Q switch for libvirt/KVM guests.
//!
//! Data flow: inputs (config, libvirt XML, kernel state) → `intent` → `plan` → `apply`
//! (netlink) → verify. `intent`, `plan` and `sources` are pure; `netlink`, `store`,
//! `libvirt_live` and the command and hook modules are the thin I/O edges.

pub mod apply;
pub mod check;
pub mod commands;
pub mod config;
pub mod dispatcher;
pub mod error;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod guests;
pub mod hook;
pub mod install;
pub mod intent;
pub mod kvmvlan;
pub mod libvirt_live;
pub mod libvirt_vlan;
pub mod libvirt_xml;
pub mod linkwatch;
pub mod logging;
pub mod netdev;
pub mod netlink;
pub mod ovs;
pub mod ownership;
pub mod plan;
pub mod port_vlans;
pub mod session;
pub mod show;
pub mod sources;
pub mod state;
pub mod store;
pub mod switch;
pub mod vid;
pub mod watch;
