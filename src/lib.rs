//! virt-vlan: a Linux bridge or an Open vSwitch bridge as a managed 802.1Q switch for
//! libvirt/KVM guests.
//!
//! The folders follow the data: `inputs` (config, libvirt XML, sources) → `core` (intent,
//! plan, the pipeline; pure) → `backends` (Linux bridge over netlink, Open vSwitch over
//! OVSDB) → `entry` (hooks, apply, watch, show, check). `store`, `logging`, `error` and
//! `text` (reading input bounded, as UTF-8) serve them all. Every module is also reachable
//! by its own name (`crate::intent`, …), so code says what it uses, not where it is filed.

pub mod backends;
pub mod core;
pub mod entry;
pub mod error;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod inputs;
pub mod logging;
pub mod store;
pub mod text;

pub use crate::backends::linux_bridge::{linkwatch, netdev, netlink};
pub use crate::backends::{host_switch, ovs};
pub use crate::core::{apply, intent, ownership, plan, port_vlans, provenance, state, switch, vid};
pub use crate::entry::{
    check, commands, dispatcher, hook, hook_call, install, session, show, watch,
};
pub use crate::inputs::{
    config, guests, kvmvlan, libvirt_live, libvirt_vlan, libvirt_xml, sources,
};
