//! The narrow interface between the pipeline and the kernel: read everything, change bridge
//! settings, send port writes. `netlink::Netlink` is the real one; `fake::FakeKernel` (tests
//! only) models the kernel's bridge VLAN rules in memory so the pipeline's rollback paths can
//! be exercised exhaustively without a kernel.

use crate::plan::{PortPlan, PortWrite, SettingsChange};
use crate::state::HostState;
use anyhow::Result;
use std::collections::BTreeSet;
use std::fmt;

/// The kernel refused one port write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteError {
    pub bridge: String,
    pub port: String,
    /// Positive errno.
    pub errno: i32,
    /// The kernel's own words (extended ack) or the errno's description.
    pub message: String,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.starts_with("OVSDB at ") {
            // Open vSwitch's own words name the database and what happened
            write!(f, "port {} on {}: {}", self.port, self.bridge, self.message)
        } else if self.errno == libc::ENODEV {
            write!(
                f,
                "port {} on {} vanished during apply ({})",
                self.port, self.bridge, self.message
            )
        } else {
            write!(
                f,
                "kernel refused the change on port {} of {}: {}",
                self.port, self.bridge, self.message
            )
        }
    }
}

/// Counts of kernel round trips, for `--stats` and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Messages that change the kernel.
    pub writes: u64,
    /// Dumps and gets.
    pub reads: u64,
}

pub trait Switch {
    /// One consistent view of every bridge and port; full settings for the `managed` bridges.
    fn read(&mut self, managed: &BTreeSet<String>) -> Result<HostState>;
    /// Changes one bridge's VLAN settings.
    fn set_settings(&mut self, change: &SettingsChange) -> Result<()>;
    /// Sends every write, in order, and answers for each.
    fn write(&mut self, writes: &[PortWrite]) -> Vec<Result<(), WriteError>>;
    /// Looks at the port plans before anything is written: refuses (bad input) what this
    /// switch cannot express. The kernel can express every plan.
    fn prepare(&mut self, _ports: &[PortPlan]) -> Result<()> {
        Ok(())
    }
    fn stats(&self) -> Stats;
}

#[cfg(test)]
pub mod fake {
    //! An in-memory kernel with the bridge's VLAN rules, and faults on demand.
    use super::*;
    use crate::plan::PortOp;
    use crate::port_vlans::PortVlans;

    #[derive(Default)]
    pub struct FakeKernel {
        pub state: HostState,
        /// Ports whose writes fail with ENODEV (they "vanish": removed on first touch).
        pub vanish: BTreeSet<String>,
        /// Ports whose next write is acknowledged but silently not done (verify must catch
        /// it; the rollback's writes then work).
        pub ignore_once: BTreeSet<String>,
        /// The process "dies" (panics) when it tries a write after this many: a crash between
        /// two kernel writes, with no rollback and no record saved.
        pub die_after_writes: Option<u64>,
        pub stats: Stats,
    }

    /// What a crash test catches: the panic of a [`FakeKernel`] that "died".
    pub const DIED: &str = "fake kernel: the process died here";

    impl FakeKernel {
        pub fn port_vlans(&self, bridge: &str, port: &str) -> PortVlans {
            self.state.vlans(bridge, port).cloned().unwrap_or_default()
        }
    }

    impl Switch for FakeKernel {
        fn read(&mut self, _managed: &BTreeSet<String>) -> Result<HostState> {
            self.stats.reads += 1;
            Ok(self.state.clone())
        }

        fn set_settings(&mut self, c: &SettingsChange) -> Result<()> {
            if self.die_after_writes == Some(self.stats.writes) {
                panic!("{DIED}");
            }
            self.stats.writes += 1;
            if let Some(p) = c.default_pvid {
                self.state.simulate_default_pvid(&c.bridge, p);
            }
            let b = self.state.bridges.get_mut(&c.bridge).expect("bridge");
            if let Some(f) = c.vlan_filtering {
                b.settings.vlan_filtering = f;
            }
            if let Some(p) = c.vlan_protocol {
                b.settings.vlan_protocol = p;
            }
            Ok(())
        }

        fn write(&mut self, writes: &[PortWrite]) -> Vec<Result<(), WriteError>> {
            writes
                .iter()
                .map(|w| {
                    if self.die_after_writes == Some(self.stats.writes) {
                        panic!("{DIED}");
                    }
                    self.stats.writes += 1;
                    if self.vanish.contains(&w.port) {
                        if let Some(b) = self.state.bridges.get_mut(&w.bridge) {
                            b.ports.remove(&w.port);
                        }
                        return Err(WriteError {
                            bridge: w.bridge.clone(),
                            port: w.port.clone(),
                            errno: libc::ENODEV,
                            message: "No such device".into(),
                        });
                    }
                    if self.ignore_once.remove(&w.port) {
                        return Ok(());
                    }
                    let b = self.state.bridges.get_mut(&w.bridge).expect("bridge");
                    let v = if w.is_self {
                        &mut b.self_vlans
                    } else {
                        &mut b.ports.get_mut(&w.port).expect("port").vlans
                    };
                    match &w.op {
                        PortOp::Del(ranges) => {
                            for (a, z) in ranges {
                                for vid in *a..=*z {
                                    v.remove(vid);
                                }
                            }
                        }
                        PortOp::Add(entries) => {
                            for e in entries {
                                for vid in e.first..=e.last {
                                    v.set(vid, e.flags);
                                }
                            }
                        }
                    }
                    Ok(())
                })
                .collect()
        }

        fn stats(&self) -> Stats {
            self.stats
        }
    }
}
