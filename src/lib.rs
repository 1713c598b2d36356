//! virt-vlan: a Linux bridge as a managed 802.1Q switch for libvirt/KVM guests.
//!
//! Data flow: inputs (config, libvirt XML, kernel state) → `intent` → `plan` → `apply`
//! (netlink) → verify. `intent` and `plan` are pure; `netlink`, `store` and the command
//! modules are the thin I/O edges.

pub mod apply;
pub mod check;
pub mod commands;
pub mod config;
pub mod error;
pub mod intent;
pub mod kvmvlan;
pub mod libvirt_vlan;
pub mod netdev;
pub mod netlink;
pub mod ownership;
pub mod plan;
pub mod port_vlans;
pub mod show;
pub mod state;
pub mod store;
pub mod switch;
pub mod vid;
