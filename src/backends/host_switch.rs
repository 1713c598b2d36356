//! The switch of a whole host: Linux bridges over netlink and Open vSwitch bridges over
//! OVSDB behind one `Switch`, so the pipeline runs unchanged on either. Which kind a managed
//! bridge is comes from the system: a bridge ovsdb-server knows is an Open vSwitch bridge,
//! anything else is looked for among the kernel's bridges. ovsdb-server is asked only when its
//! socket exists. A socket that exists but does not answer is an error as soon as a managed
//! bridge is not among the kernel's (it could be an Open vSwitch bridge we cannot see); a host
//! whose managed bridges are all Linux bridges goes on, so a stale socket never stops a guest.

use crate::config::Config;
use crate::netlink::Netlink;
use crate::ovs::db::{DEFAULT_SOCKET, Ovsdb};
use crate::ovs::switch::OvsSwitch;
use crate::plan::{PortPlan, PortWrite, SettingsChange};
use crate::state::HostState;
use crate::switch::{Stats, Switch, WriteError};
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Overrides `[ovs] socket` (tests run their own ovsdb-server).
pub const OVSDB_ENV: &str = "VIRT_VLAN_OVSDB";

pub struct HostSwitch {
    kernel: Netlink,
    ovs: Option<OvsSwitch>,
    /// Why ovsdb-server could not be reached, when its socket is there.
    ovs_unreachable: Option<String>,
    /// The Open vSwitch bridges of the latest read.
    ovs_bridges: BTreeSet<String>,
    /// A read the caller already made with this switch (the watcher's, before it placed the
    /// guests), served to the next `read` instead of dumping the kernel again.
    reused: Option<HostState>,
}

/// Where ovsdb-server listens for this config.
pub fn ovsdb_socket(config: &Config) -> PathBuf {
    std::env::var_os(OVSDB_ENV)
        .map(PathBuf::from)
        .or_else(|| config.ovs_socket.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

impl HostSwitch {
    /// Netlink, and OVSDB when its socket exists.
    pub fn open(config: &Config) -> Result<Self> {
        let socket = ovsdb_socket(config);
        let (mut ovs, mut ovs_unreachable) = (None, None);
        if socket.exists() {
            match Ovsdb::connect(&socket) {
                Ok(db) => ovs = Some(OvsSwitch::new(db)),
                Err(e) => {
                    ovs_unreachable = Some(format!(
                        "{e}; Open vSwitch's database socket {} exists but does not answer: \
                         start ovsdb-server, or remove the stale socket",
                        socket.display()
                    ))
                }
            }
        }
        Ok(HostSwitch {
            kernel: Netlink::open()?,
            ovs,
            ovs_unreachable,
            ovs_bridges: BTreeSet::new(),
            reused: None,
        })
    }

    /// Serves `state`, read with this switch, to the next `read`. Only for a state nothing
    /// has changed since (see `session::run_on`).
    pub fn reuse_read(&mut self, state: HostState) {
        self.reused = Some(state);
    }

    /// Forgets a read left by [`HostSwitch::reuse_read`]: the next `read` asks again.
    pub fn forget_reused_read(&mut self) {
        self.reused = None;
    }

    /// Whether a write failed because another OVSDB client changed a port this run read:
    /// the run changed nothing there and may re-read and retry.
    pub fn conflicted(&self) -> bool {
        self.ovs.as_ref().is_some_and(OvsSwitch::conflicted)
    }

    fn is_ovs(&self, bridge: &str) -> bool {
        self.ovs_bridges.contains(bridge)
    }
}

impl Switch for HostSwitch {
    fn read(&mut self, managed: &BTreeSet<String>) -> Result<HostState> {
        if let Some(state) = self.reused.take() {
            return Ok(state);
        }
        let ovs = match &mut self.ovs {
            Some(o) => o.read()?,
            None => Vec::new(),
        };
        self.ovs_bridges = ovs.iter().map(|b| b.name.clone()).collect();
        let linux: BTreeSet<String> = managed.difference(&self.ovs_bridges).cloned().collect();
        let mut host = self.kernel.read(&linux)?;
        if let Some(why) = &self.ovs_unreachable
            && let Some(b) = managed.iter().find(|b| !host.bridges.contains_key(*b))
        {
            anyhow::bail!("bridge {b} is not a Linux bridge, and it may be Open vSwitch's: {why}");
        }
        for b in ovs {
            host.bridges.insert(b.name.clone(), b);
        }
        Ok(host)
    }

    fn set_settings(&mut self, change: &SettingsChange) -> Result<()> {
        if self.is_ovs(&change.bridge) {
            // plan_settings refuses every setting on an Open vSwitch bridge
            anyhow::bail!(
                "bridge {} is an Open vSwitch bridge: no settings",
                change.bridge
            );
        }
        self.kernel.set_settings(change)
    }

    fn write(&mut self, writes: &[PortWrite]) -> Vec<Result<(), WriteError>> {
        type Indexed<'a> = Vec<(usize, &'a PortWrite)>;
        let (ovs, linux): (Indexed, Indexed) = writes
            .iter()
            .enumerate()
            .partition(|(_, w)| self.is_ovs(&w.bridge));
        let mut out: Vec<Result<(), WriteError>> = vec![Ok(()); writes.len()];
        if !linux.is_empty() {
            let batch: Vec<PortWrite> = linux.iter().map(|(_, w)| (*w).clone()).collect();
            for ((i, _), r) in linux.iter().zip(self.kernel.write(&batch)) {
                out[*i] = r;
            }
        }
        if !ovs.is_empty() {
            let batch: Vec<&PortWrite> = ovs.iter().map(|(_, w)| *w).collect();
            let result = match &mut self.ovs {
                Some(o) => o.write(&batch),
                None => Err(WriteError {
                    bridge: batch[0].bridge.clone(),
                    port: batch[0].port.clone(),
                    errno: libc::ENOTCONN,
                    message: "no connection to ovsdb-server".into(),
                }),
            };
            if let Err(e) = result {
                // one error for the whole transaction, said once
                out[ovs[0].0] = Err(e);
            }
        }
        out
    }

    fn prepare(&mut self, ports: &[PortPlan]) -> Result<()> {
        let ovs: Vec<PortPlan> = ports
            .iter()
            .filter(|p| self.is_ovs(&p.bridge))
            .cloned()
            .collect();
        for p in ovs.iter().filter(|p| !p.is_noop()) {
            crate::ovs::switch::planned_columns(p)?;
        }
        if let Some(o) = &mut self.ovs {
            o.note_sources(&ovs);
        }
        Ok(())
    }

    fn stats(&self) -> Stats {
        let k = self.kernel.stats();
        let o = self.ovs.as_ref().map(OvsSwitch::stats).unwrap_or_default();
        Stats {
            writes: k.writes + o.writes,
            reads: k.reads + o.reads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_ovsdb_socket_stops_only_runs_that_may_need_open_vswitch() {
        let dir = std::env::temp_dir().join(format!("vv-stale-ovsdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("db.sock");
        std::fs::write(&sock, "").unwrap(); // there, but nobody listens
        let config = Config::parse(
            "t.toml",
            &format!(
                "[bridges.vvnosuch0]\n[ovs]\nsocket = \"{}\"\n",
                sock.display()
            ),
        )
        .unwrap();
        let mut sw = HostSwitch::open(&config).unwrap();
        // no managed bridge: a Linux-only run goes on
        sw.read(&BTreeSet::new()).unwrap();
        let e = sw
            .read(&BTreeSet::from(["vvnosuch0".to_string()]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vvnosuch0") && e.contains("does not answer") && e.contains("db.sock"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reused_read_stands_for_the_next_read_only() {
        let config = Config::parse(
            "t.toml",
            "[bridges.vvreuse0]\n[ovs]\nsocket = \"/nonexistent/vv-reuse.sock\"\n",
        )
        .unwrap();
        let mut sw = HostSwitch::open(&config).unwrap();
        let mut state = HostState::default();
        state.bridges.insert(
            "vvreuse0".into(),
            crate::state::BridgeState {
                name: "vvreuse0".into(),
                ..Default::default()
            },
        );
        let managed = BTreeSet::from(["vvreuse0".to_string()]);
        sw.reuse_read(state.clone());
        assert_eq!(sw.read(&managed).unwrap(), state, "served without a dump");
        assert_eq!(sw.stats().reads, 0);
        // the next read asks the kernel (which has no such bridge)
        let again = sw.read(&managed).unwrap();
        assert!(!again.bridges.contains_key("vvreuse0"));
        assert!(sw.stats().reads > 0);
        // and a forgotten one is never served
        sw.reuse_read(state);
        sw.forget_reused_read();
        assert!(!sw.read(&managed).unwrap().bridges.contains_key("vvreuse0"));
    }
}
