//! Inputs: what the world tells virt-vlan, read and checked — the TOML config, libvirt's
//! domain and network XML with our metadata and its `<vlan>`s, the sources that decide a guest
//! interface's VLANs, the running guests (from libvirt or from what its hooks said), and
//! kvmvlan's files for import. Everything here that parses is pure; `libvirt_live` asks libvirt.

pub mod config;
pub mod guests;
pub mod kvmvlan;
pub mod libvirt_live;
pub mod libvirt_vlan;
pub mod libvirt_xml;
pub mod sources;
