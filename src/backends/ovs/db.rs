//! A session with ovsdb-server's `Open_vSwitch` database: what virt-vlan reads (bridges →
//! ports → VLAN columns and marks → interfaces with libvirt's marks, in one transaction) and
//! writes (a port's three VLAN columns and our ownership marks, guarded so that a row changed
//! by someone else since it was read fails the whole transaction), how it learns that
//! ovs-vswitchd applied a write (`next_cfg` bumped in the transaction, `cur_cfg` watched until
//! it gets there), and how a write is undone.

use super::json_rpc::{Client, Notification, RpcError};
use super::ops::{self, Condition, DecodeError, Mutation, Op, OpFailure, Row};
use super::vlans::{PortVlanColumns, VlanMode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where Debian's ovsdb-server listens.
pub const DEFAULT_SOCKET: &str = "/var/run/openvswitch/db.sock";
/// The database.
pub const DB: &str = "Open_vSwitch";
/// Port `external_ids` key saying virt-vlan wrote this port's VLAN columns ("true"). Hyphens,
/// like libvirt's `attached-mac`: ovs-vsctl reads `external_ids:KEY`, so a colon in KEY would
/// need quoting.
pub const OWNED_KEY: &str = "virt-vlan-owned";
/// Port `external_ids` key saying where the VLANs came from (e.g. "domain web1").
pub const SOURCE_KEY: &str = "virt-vlan-source";
/// How long a write waits for ovs-vswitchd to apply it unless told otherwise.
pub const DEFAULT_APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The Port columns a write guards and replaces.
const GUARDED: [&str; 4] = ["vlan_mode", "tag", "trunks", "external_ids"];

/// Why a read or a write failed. Every variant names the socket.
#[derive(Debug, thiserror::Error)]
pub enum OvsError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("OVSDB at {path}: {source}")]
    Decode { path: PathBuf, source: DecodeError },
    /// A guarded row changed (or went away) after it was read: nothing was written. Re-read,
    /// re-plan and retry (`retry_on_conflict`).
    #[error(
        "OVSDB at {path}: port {port} changed since it was read (another client wrote it); \
         nothing was written — re-read and retry"
    )]
    Conflict { path: PathBuf, port: String },
    #[error("OVSDB at {path} refused the transaction: {}", describe(.failure))]
    Refused { path: PathBuf, failure: OpFailure },
    #[error(
        "OVSDB at {path}: the change is in the database but ovs-vswitchd did not apply it within \
         {after:?} (cur_cfg {cur_cfg}, waiting for {next_cfg}); is ovs-vswitchd running?"
    )]
    NotApplied {
        path: PathBuf,
        next_cfg: i64,
        cur_cfg: i64,
        after: Duration,
    },
}

fn describe(f: &OpFailure) -> String {
    let at = f
        .index
        .map_or("at commit".to_string(), |i| format!("at operation {i}"));
    match &f.details {
        Some(d) => format!("{} {at} ({d})", f.error),
        None => format!("{} {at}", f.error),
    }
}

impl OvsError {
    /// True when re-reading and retrying may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, OvsError::Conflict { .. })
    }
}

/// Runs `attempt` (which must re-read what it writes) up to `attempts` times while it fails
/// with a conflict; any other error, or the last conflict, is returned.
pub fn retry_on_conflict<T>(
    attempts: usize,
    mut attempt: impl FnMut(usize) -> Result<T, OvsError>,
) -> Result<T, OvsError> {
    let mut n = 0;
    loop {
        match attempt(n) {
            Err(e) if e.is_conflict() && n + 1 < attempts => {
                tracing::info!("{e}; retrying");
                n += 1;
            }
            other => return other,
        }
    }
}

/// One Interface row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub uuid: String,
    pub name: String,
    /// `type`: "" (a system device such as a tap), "internal", "patch", …
    pub kind: String,
    pub external_ids: BTreeMap<String, String>,
}

impl Interface {
    /// libvirt's mark: the guest NIC's MAC.
    pub fn attached_mac(&self) -> Option<&str> {
        self.external_ids.get("attached-mac").map(String::as_str)
    }
    /// libvirt's mark: the domain's UUID.
    pub fn vm_id(&self) -> Option<&str> {
        self.external_ids.get("vm-id").map(String::as_str)
    }
    /// libvirt's mark: the interface's `<virtualport><parameters interfaceid>`.
    pub fn iface_id(&self) -> Option<&str> {
        self.external_ids.get("iface-id").map(String::as_str)
    }
}

/// A Port row's guarded columns: its VLANs and its `external_ids`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortState {
    pub vlans: PortVlanColumns,
    pub external_ids: BTreeMap<String, String>,
}

impl PortState {
    fn row(&self) -> Row {
        let mut row = Row::new();
        let c = &self.vlans;
        row.insert(
            "vlan_mode".into(),
            ops::optional(c.vlan_mode.map(|m| json!(m.as_str()))),
        );
        row.insert("tag".into(), ops::optional(c.tag.map(|t| json!(t))));
        row.insert("trunks".into(), ops::set(c.trunks.iter().map(|t| json!(t))));
        row.insert("external_ids".into(), ops::string_map(&self.external_ids));
        row
    }
}

/// One Port row with its interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub uuid: String,
    pub name: String,
    pub state: PortState,
    pub interfaces: Vec<Interface>,
}

impl Port {
    /// Whether virt-vlan's mark is on this port.
    pub fn owned(&self) -> bool {
        self.state.external_ids.get(OWNED_KEY).map(String::as_str) == Some("true")
    }
}

/// One Bridge row with its ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    pub uuid: String,
    pub name: String,
    pub external_ids: BTreeMap<String, String>,
    pub ports: Vec<Port>,
}

/// Everything virt-vlan reads, from one transaction. Bridges, ports and interfaces are sorted
/// by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub bridges: Vec<Bridge>,
    /// The configuration ovs-vswitchd has applied, and the one the database asks for.
    pub cur_cfg: i64,
    pub next_cfg: i64,
}

impl Snapshot {
    pub fn bridge(&self, name: &str) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// The port named `name` and its bridge.
    pub fn port(&self, name: &str) -> Option<(&Bridge, &Port)> {
        self.bridges
            .iter()
            .find_map(|b| b.ports.iter().find(|p| p.name == name).map(|p| (b, p)))
    }

    /// The port of a guest's NIC, by libvirt's marks (names go stale: `--may-exist`).
    pub fn guest_port(&self, vm_id: &str, mac: &str) -> Option<(&Bridge, &Port)> {
        self.bridges.iter().find_map(|b| {
            b.ports
                .iter()
                .find(|p| {
                    p.interfaces.iter().any(|i| {
                        i.vm_id() == Some(vm_id)
                            && i.attached_mac()
                                .is_some_and(|m| m.eq_ignore_ascii_case(mac))
                    })
                })
                .map(|p| (b, p))
        })
    }
}

/// New VLAN columns for one port, with what was read from it (the guard).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortChange {
    pub uuid: String,
    pub name: String,
    pub read: PortState,
    pub vlans: PortVlanColumns,
    /// Where the VLANs came from; stored under `SOURCE_KEY`.
    pub source: String,
}

impl PortChange {
    pub fn new(port: &Port, vlans: PortVlanColumns, source: &str) -> Self {
        PortChange {
            uuid: port.uuid.clone(),
            name: port.name.clone(),
            read: port.state.clone(),
            vlans,
            source: source.to_string(),
        }
    }

    /// The state written: the new columns, and the marks added to what was there.
    fn after(&self) -> PortState {
        let mut external_ids = self.read.external_ids.clone();
        external_ids.insert(OWNED_KEY.into(), "true".into());
        external_ids.insert(SOURCE_KEY.into(), self.source.clone());
        PortState {
            vlans: self.vlans.clone(),
            external_ids,
        }
    }
}

/// One port as written: before and after, for verifying and undoing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenPort {
    pub uuid: String,
    pub name: String,
    pub before: PortState,
    pub after: PortState,
}

/// What one write transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub ports: Vec<WrittenPort>,
    /// The `next_cfg` the transaction set; `None` when there was nothing to write.
    pub next_cfg: Option<i64>,
}

/// A connection to ovsdb-server.
pub struct Ovsdb {
    rpc: Client,
    apply_timeout: Duration,
    monitors: u64,
}

impl Ovsdb {
    /// Connects to the server at `path` (`DEFAULT_SOCKET` on Debian).
    pub fn connect(path: &Path) -> Result<Self, OvsError> {
        Ok(Ovsdb {
            rpc: Client::connect(path)?,
            apply_timeout: DEFAULT_APPLY_TIMEOUT,
            monitors: 0,
        })
    }

    /// Connects to `DEFAULT_SOCKET`.
    pub fn connect_default() -> Result<Self, OvsError> {
        Self::connect(Path::new(DEFAULT_SOCKET))
    }

    pub fn path(&self) -> &Path {
        self.rpc.path()
    }

    /// How long a write waits for ovs-vswitchd.
    pub fn set_apply_timeout(&mut self, timeout: Duration) {
        self.apply_timeout = timeout;
    }

    /// How long one request waits for its reply.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.rpc.set_timeout(timeout);
    }

    /// The connection's descriptor, for a caller's `poll` (see `watch_ports`).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.rpc.fd()
    }

    /// Asks the server to tell this connection about every change to bridges, ports and
    /// interfaces (`monitor_cond`; the initial rows are dropped): afterwards each change
    /// arrives as an `update2` notification (`drain_updates`).
    pub fn watch_ports(&mut self) -> Result<(), OvsError> {
        let tables = json!({
            "Bridge": [{"columns": ["name", "ports"]}],
            "Port": [{"columns": ["name", "interfaces", "vlan_mode", "tag", "trunks", "external_ids"]}],
            "Interface": [{"columns": ["name", "external_ids"]}],
        });
        self.rpc
            .call("monitor_cond", json!([DB, "virt-vlan-watch", tables]))?;
        Ok(())
    }

    /// Reads what has arrived (waiting at most `wait`) and counts the change notifications of
    /// `watch_ports`; `Err(Rpc(Closed))` when the server went away.
    pub fn drain_updates(&mut self, wait: Duration) -> Result<usize, OvsError> {
        let mut n = 0;
        let deadline = Instant::now() + wait;
        while self
            .rpc
            .wait_notification(deadline, |m| m.method == "update2")?
            .is_some()
        {
            n += 1;
        }
        // nothing else is asked for; nothing else is kept
        drop(self.rpc.take_notifications());
        Ok(n)
    }

    /// Notifications the server sent that no one has taken yet.
    pub fn take_notifications(&mut self) -> Vec<Notification> {
        self.rpc.take_notifications()
    }

    /// Sends one transaction; each operation's result, or `Refused` naming the failure.
    pub fn transact(&mut self, ops: &[Op]) -> Result<Vec<Value>, OvsError> {
        let result = self.rpc.call("transact", ops::transact_params(DB, ops))?;
        match ops::op_results(&result, ops.len()).map_err(|e| self.decode(e))? {
            Ok(results) => Ok(results),
            Err(failure) => Err(OvsError::Refused {
                path: self.path().to_path_buf(),
                failure,
            }),
        }
    }

    /// Bridges → ports → interfaces, with the ports' VLAN columns and everyone's
    /// `external_ids`, in one transaction of selects.
    pub fn read(&mut self) -> Result<Snapshot, OvsError> {
        let results = self.transact(&[
            Op::select(DB, vec![], &["cur_cfg", "next_cfg"]),
            Op::select(
                "Bridge",
                vec![],
                &["_uuid", "name", "ports", "external_ids"],
            ),
            Op::select(
                "Port",
                vec![],
                &[
                    "_uuid",
                    "name",
                    "interfaces",
                    "vlan_mode",
                    "tag",
                    "trunks",
                    "external_ids",
                ],
            ),
            Op::select(
                "Interface",
                vec![],
                &["_uuid", "name", "type", "external_ids"],
            ),
        ])?;
        parse_snapshot(&results).map_err(|e| self.decode(e))
    }

    /// Writes every change in one transaction: per port a `wait` that its guarded columns are
    /// still as read, then an `update` of the three VLAN columns and the marks; then
    /// `next_cfg += 1`. Does not wait for ovs-vswitchd (`wait_applied`).
    pub fn write_port_vlans(&mut self, changes: &[PortChange]) -> Result<Written, OvsError> {
        let ports: Vec<WrittenPort> = changes
            .iter()
            .map(|c| WrittenPort {
                uuid: c.uuid.clone(),
                name: c.name.clone(),
                before: c.read.clone(),
                after: c.after(),
            })
            .collect();
        let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
        let next_cfg = self.guarded_write(
            &format!("virt-vlan: set VLANs of {}", names.join(", ")),
            ports.iter().map(|p| (p, &p.before, &p.after)),
        )?;
        Ok(Written { ports, next_cfg })
    }

    /// Waits until ovs-vswitchd has applied configuration `next_cfg` (its `cur_cfg` reached
    /// it), for at most the apply timeout.
    pub fn wait_applied(&mut self, next_cfg: i64) -> Result<(), OvsError> {
        self.monitors += 1;
        let id = json!(["virt-vlan-cfg", self.monitors]);
        let initial = self
            .rpc
            .call("monitor", json!([DB, id, {DB: {"columns": ["cur_cfg"]}}]))?;
        let deadline = Instant::now() + self.apply_timeout;
        let mut cur = cur_cfg_of(&initial);
        let outcome = loop {
            if cur.is_some_and(|c| c >= next_cfg) {
                break Ok(());
            }
            let update = self.rpc.wait_notification(deadline, |n| {
                n.method == "update" && n.params.get(0) == Some(&id)
            });
            match update {
                Ok(Some(n)) => cur = cur_cfg_of(&n.params[1]).or(cur),
                Ok(None) => {
                    break Err(OvsError::NotApplied {
                        path: self.path().to_path_buf(),
                        next_cfg,
                        cur_cfg: cur.unwrap_or(0),
                        after: self.apply_timeout,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.rpc.call("monitor_cancel", json!([id]))?;
        // Updates that raced the cancel are ours to drop.
        while let Some(_stale) = self.rpc.wait_notification(Instant::now(), |n| {
            n.method == "update" && n.params.get(0) == Some(&id)
        })? {}
        outcome
    }

    /// `write_port_vlans`, then `wait_applied`. When ovs-vswitchd does not apply it in time the
    /// write stays in the database; callers that must undo it use the two halves.
    pub fn set_port_vlans(&mut self, changes: &[PortChange]) -> Result<Written, OvsError> {
        let written = self.write_port_vlans(changes)?;
        if let Some(n) = written.next_cfg {
            self.wait_applied(n)?;
        }
        Ok(written)
    }

    /// Replaces each port's guarded columns with `after`, guarded by `before`, in one
    /// transaction, and waits for ovs-vswitchd to apply it.
    pub fn replace_ports(&mut self, ports: &[WrittenPort]) -> Result<(), OvsError> {
        let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        let next_cfg = self.guarded_write(
            &format!("virt-vlan: set VLANs of {}", names.join(", ")),
            ports.iter().map(|p| (p, &p.before, &p.after)),
        )?;
        match next_cfg {
            Some(n) => self.wait_applied(n),
            None => Ok(()),
        }
    }

    /// Puts back what `written` replaced, guarded: a port someone changed since our write is
    /// not touched, and the whole undo fails with `Conflict`. Waits for ovs-vswitchd.
    pub fn rollback(&mut self, written: &Written) -> Result<(), OvsError> {
        let names: Vec<&str> = written.ports.iter().map(|p| p.name.as_str()).collect();
        let next_cfg = self.guarded_write(
            &format!("virt-vlan: roll back VLANs of {}", names.join(", ")),
            written.ports.iter().map(|p| (p, &p.after, &p.before)),
        )?;
        match next_cfg {
            Some(n) => self.wait_applied(n),
            None => Ok(()),
        }
    }

    /// One transaction: for each port, wait until its guarded columns are `expect`, then set
    /// them to `new`; bump `next_cfg` and return it.
    fn guarded_write<'a>(
        &mut self,
        comment: &str,
        ports: impl Iterator<Item = (&'a WrittenPort, &'a PortState, &'a PortState)>,
    ) -> Result<Option<i64>, OvsError> {
        let mut txn = vec![Op::comment(comment)];
        let mut waits: HashMap<usize, String> = HashMap::new();
        for (port, expect, new) in ports {
            let here = vec![Condition::uuid_is(&port.uuid)];
            waits.insert(txn.len(), port.name.clone());
            txn.push(Op::wait_unchanged(
                "Port",
                here.clone(),
                &GUARDED,
                vec![expect.row()],
            ));
            txn.push(Op::update("Port", here, new.row()));
        }
        if waits.is_empty() {
            return Ok(None);
        }
        txn.push(Op::mutate(DB, vec![], vec![Mutation::add("next_cfg", 1)]));
        txn.push(Op::select(DB, vec![], &["next_cfg"]));
        let results = match self.transact(&txn) {
            Err(OvsError::Refused { path, failure })
                if failure.error == "timed out"
                    && failure.index.is_some_and(|i| waits.contains_key(&i)) =>
            {
                let port = waits[&failure.index.unwrap()].clone();
                return Err(OvsError::Conflict { path, port });
            }
            other => other?,
        };
        let rows = ops::select_rows(&results[txn.len() - 1]).map_err(|e| self.decode(e))?;
        let next = rows
            .first()
            .and_then(|r| r.get("next_cfg"))
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                self.decode(DecodeError(
                    "no Open_vSwitch row (run `ovs-vsctl init`)".into(),
                ))
            })?;
        Ok(Some(next))
    }

    fn decode(&self, source: DecodeError) -> OvsError {
        OvsError::Decode {
            path: self.path().to_path_buf(),
            source,
        }
    }
}

/// `cur_cfg` from a monitor's table updates (`{"Open_vSwitch": {uuid: {"new": {...}}}}`).
fn cur_cfg_of(updates: &Value) -> Option<i64> {
    updates
        .get(DB)?
        .as_object()?
        .values()
        .find_map(|u| u.get("new")?.get("cur_cfg")?.as_i64())
}

fn col<'r>(row: &'r Row, name: &str) -> Result<&'r Value, DecodeError> {
    row.get(name)
        .ok_or_else(|| DecodeError(format!("a row without column {name}")))
}

fn string_col(row: &Row, name: &str) -> Result<String, DecodeError> {
    let v = col(row, name)?;
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| DecodeError(format!("{name} is not a string: {v}")))
}

fn u16_of(v: i64, what: &str) -> Result<u16, DecodeError> {
    u16::try_from(v)
        .ok()
        .filter(|v| *v <= 4095)
        .ok_or_else(|| DecodeError(format!("{what} {v} is not 0-4095")))
}

/// The port VLAN columns of a Port row.
pub fn parse_port_vlans(row: &Row) -> Result<PortVlanColumns, DecodeError> {
    let vlan_mode = match ops::parse_optional_string(col(row, "vlan_mode")?)? {
        None => None,
        Some(m) => {
            Some(VlanMode::parse(&m).ok_or_else(|| DecodeError(format!("unknown vlan_mode {m}")))?)
        }
    };
    let tag = ops::parse_optional_integer(col(row, "tag")?)?
        .map(|t| u16_of(t, "tag"))
        .transpose()?;
    let trunks = ops::parse_integer_set(col(row, "trunks")?)?
        .into_iter()
        .map(|t| u16_of(t, "trunk"))
        .collect::<Result<_, _>>()?;
    Ok(PortVlanColumns {
        vlan_mode,
        tag,
        trunks,
    })
}

/// Assembles the four selects of `Ovsdb::read`.
fn parse_snapshot(results: &[Value]) -> Result<Snapshot, DecodeError> {
    let [ovs, bridges, ports, ifaces] = results else {
        return Err(DecodeError(format!(
            "4 select results, got {}",
            results.len()
        )));
    };
    let ovs = ops::select_rows(ovs)?;
    let root = ovs
        .first()
        .ok_or_else(|| DecodeError("no Open_vSwitch row (run `ovs-vsctl init`)".into()))?;
    let cfg = |name| {
        col(root, name)?
            .as_i64()
            .ok_or_else(|| DecodeError(format!("{name} is not an integer")))
    };
    let (cur_cfg, next_cfg) = (cfg("cur_cfg")?, cfg("next_cfg")?);

    let mut iface_by_uuid = HashMap::new();
    for row in ops::select_rows(ifaces)? {
        let i = Interface {
            uuid: ops::parse_uuid(col(&row, "_uuid")?)?,
            name: string_col(&row, "name")?,
            kind: string_col(&row, "type")?,
            external_ids: ops::parse_string_map(col(&row, "external_ids")?)?,
        };
        iface_by_uuid.insert(i.uuid.clone(), i);
    }
    let mut port_by_uuid = HashMap::new();
    for row in ops::select_rows(ports)? {
        let mut interfaces = Vec::new();
        for u in ops::parse_uuid_set(col(&row, "interfaces")?)? {
            interfaces.extend(iface_by_uuid.get(&u).cloned());
        }
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        let p = Port {
            uuid: ops::parse_uuid(col(&row, "_uuid")?)?,
            name: string_col(&row, "name")?,
            state: PortState {
                vlans: parse_port_vlans(&row)?,
                external_ids: ops::parse_string_map(col(&row, "external_ids")?)?,
            },
            interfaces,
        };
        port_by_uuid.insert(p.uuid.clone(), p);
    }
    let mut out = Vec::new();
    for row in ops::select_rows(bridges)? {
        let mut ports = Vec::new();
        for u in ops::parse_uuid_set(col(&row, "ports")?)? {
            ports.extend(port_by_uuid.get(&u).cloned());
        }
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(Bridge {
            uuid: ops::parse_uuid(col(&row, "_uuid")?)?,
            name: string_col(&row, "name")?,
            external_ids: ops::parse_string_map(col(&row, "external_ids")?)?,
            ports,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Snapshot {
        bridges: out,
        cur_cfg,
        next_cfg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn select(rows: Value) -> Value {
        json!({ "rows": rows })
    }

    #[test]
    fn a_snapshot_from_four_selects() {
        let results = [
            select(json!([{"cur_cfg": 3, "next_cfg": 4}])),
            select(json!([{"_uuid": ["uuid", "b1"], "name": "ovsbr0",
                           "ports": ["set", [["uuid", "p1"], ["uuid", "p2"]]],
                           "external_ids": ["map", []]}])),
            select(json!([
                {"_uuid": ["uuid", "p1"], "name": "vnet0", "interfaces": ["uuid", "i1"],
                 "vlan_mode": "native-tagged", "tag": 4, "trunks": ["set", []],
                 "external_ids": ["map", [["virt-vlan-owned", "true"]]]},
                {"_uuid": ["uuid", "p2"], "name": "eth1", "interfaces": ["uuid", "i2"],
                 "vlan_mode": ["set", []], "tag": ["set", []], "trunks": ["set", [100, 200]],
                 "external_ids": ["map", []]},
            ])),
            select(json!([
                {"_uuid": ["uuid", "i1"], "name": "vnet0", "type": "",
                 "external_ids": ["map", [["attached-mac", "52:54:00:AA:00:01"],
                                          ["vm-id", "d1"], ["iface-id", "x"]]]},
                {"_uuid": ["uuid", "i2"], "name": "eth1", "type": "",
                 "external_ids": ["map", []]},
            ])),
        ];
        let s = parse_snapshot(&results).unwrap();
        assert_eq!((s.cur_cfg, s.next_cfg), (3, 4));
        let b = s.bridge("ovsbr0").unwrap();
        assert_eq!(
            b.ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["eth1", "vnet0"]
        );
        let (_, vnet0) = s.guest_port("d1", "52:54:00:aa:00:01").unwrap();
        assert_eq!(vnet0.name, "vnet0");
        assert!(vnet0.owned());
        assert_eq!(vnet0.interfaces[0].iface_id(), Some("x"));
        assert_eq!(
            vnet0.state.vlans,
            PortVlanColumns {
                vlan_mode: Some(VlanMode::NativeTagged),
                tag: Some(4),
                trunks: BTreeSet::new()
            }
        );
        let (_, eth1) = s.port("eth1").unwrap();
        assert!(!eth1.owned());
        assert_eq!(eth1.state.vlans.trunks, BTreeSet::from([100, 200]));
        assert_eq!(eth1.state.vlans.vlan_mode, None);

        let e = parse_snapshot(&[
            select(json!([])),
            select(json!([])),
            select(json!([])),
            select(json!([])),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("ovs-vsctl init"), "{e}");
    }

    #[test]
    fn port_state_rows_encode_unset_as_empty_sets() {
        let st = PortState::default();
        assert_eq!(
            Value::Object(st.row()),
            json!({"vlan_mode": ["set", []], "tag": ["set", []], "trunks": ["set", []],
                   "external_ids": ["map", []]})
        );
        let st = PortState {
            vlans: PortVlanColumns {
                vlan_mode: Some(VlanMode::NativeUntagged),
                tag: Some(10),
                trunks: BTreeSet::from([10, 20]),
            },
            external_ids: BTreeMap::from([("k".into(), "v".into())]),
        };
        let row = st.row();
        assert_eq!(parse_port_vlans(&row).unwrap(), st.vlans);
        assert_eq!(row["external_ids"], json!(["map", [["k", "v"]]]));
    }

    #[test]
    fn a_change_adds_our_marks_and_keeps_others() {
        let port = Port {
            uuid: "p1".into(),
            name: "vnet0".into(),
            state: PortState {
                vlans: PortVlanColumns::default(),
                external_ids: BTreeMap::from([("theirs".into(), "1".into())]),
            },
            interfaces: vec![],
        };
        let c = PortChange::new(&port, super::super::vlans::isolated(), "domain web1");
        let after = c.after();
        assert_eq!(after.external_ids["theirs"], "1");
        assert_eq!(after.external_ids[OWNED_KEY], "true");
        assert_eq!(after.external_ids[SOURCE_KEY], "domain web1");
    }

    #[test]
    fn retries_only_conflicts_and_only_so_often() {
        let conflict = || OvsError::Conflict {
            path: "/x".into(),
            port: "vnet0".into(),
        };
        let mut calls = 0;
        let r = retry_on_conflict(3, |_| {
            calls += 1;
            if calls < 3 {
                Err(conflict())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: Result<(), _> = retry_on_conflict(2, |_| {
            calls += 1;
            Err(conflict())
        });
        assert!(r.unwrap_err().is_conflict());
        assert_eq!(calls, 2);
        let mut calls = 0;
        let r: Result<(), _> = retry_on_conflict(5, |_| {
            calls += 1;
            Err(OvsError::Rpc(RpcError::Closed { path: "/x".into() }))
        });
        assert!(!r.unwrap_err().is_conflict());
        assert_eq!(calls, 1);
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = OvsError::NotApplied {
            path: "/run/db.sock".into(),
            next_cfg: 5,
            cur_cfg: 4,
            after: Duration::from_secs(10),
        };
        let msg = e.to_string();
        assert!(
            msg.contains("/run/db.sock") && msg.contains("is ovs-vswitchd running"),
            "{msg}"
        );
        let e = OvsError::Conflict {
            path: "/run/db.sock".into(),
            port: "vnet0".into(),
        };
        assert!(e.to_string().contains("re-read and retry"), "{e}");
        assert_eq!(
            cur_cfg_of(&json!({DB: {"u": {"new": {"cur_cfg": 7}}}})),
            Some(7)
        );
        assert_eq!(cur_cfg_of(&json!({})), None);
    }
}
