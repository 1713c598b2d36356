//! Open vSwitch backend: talks to ovsdb-server over its Unix socket (RFC 7047), one job per
//! file, in the order the bytes flow:
//!
//! - `json_rpc`: the transport — JSON-RPC 1.0 requests, replies matched by id, the server's
//!   `echo` answered, notifications queued; framing by a stream deserializer, bounded waits.
//! - `ops`: the RFC's operations (select, update, mutate, wait, comment) as typed builders,
//!   OVSDB value encodings (`set`, `map`, `uuid`, `named-uuid`) and their parsing back.
//! - `vlans`: pure mapping between a `PortVlans` and a Port row's `vlan_mode`/`tag`/`trunks`,
//!   both ways, with refusals for what Open vSwitch cannot express.
//! - `db`: the session — read bridges, ports and interfaces in one transaction; write VLAN
//!   columns guarded by `wait` ops, bump `next_cfg`, wait for ovs-vswitchd's `cur_cfg`; undo.
//! - `switch`: the pipeline's view — rows as bridge states, port writes as one guarded
//!   transaction of all three VLAN columns per port, exact put-back.

pub mod db;
pub mod json_rpc;
pub mod ops;
pub mod switch;
pub mod vlans;
