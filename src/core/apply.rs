//! The pipeline every entry point runs: read the kernel, resolve the intent, plan, apply,
//! verify by re-reading, and on any refusal or mismatch put back what this run changed.
//! The caller holds the store lock and saves the updated record.

use crate::config::Config;
use crate::intent::{GuestPort, Role, Scope, resolve};
use crate::ownership::{PortRecord, Record};
use crate::plan::{Plan, PortPlan, RELEASED, plan_ports, plan_settings, restore_port};
use crate::state::HostState;
use crate::switch::{Stats, Switch};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    /// False for a dry run.
    pub applied: bool,
    /// Kernel traffic of this run.
    pub stats: Stats,
    /// Record entries dropped because their port is gone or was re-created.
    pub stale: Vec<(String, String)>,
    /// Guest ports isolated because their source asks for VIDs their bridge does not allow
    /// (see `Intent::violations`): the run managed everything else, but did not succeed.
    pub violations: Vec<String>,
    /// Guest ports left out because their taps went away during the run (`Intent::skipped`).
    pub skipped: Vec<String>,
}

impl Outcome {
    /// The violations as one bad-input error, if there were any.
    pub fn policy_result(&self) -> Result<()> {
        if self.violations.is_empty() {
            return Ok(());
        }
        Err(crate::error::BadInput(self.violations.join("; ")).into())
    }
}

/// How a run ends: print the plan, apply it, or show it and apply after a yes.
pub enum Mode<'a> {
    DryRun,
    Apply,
    /// Called with the plan before anything changes; `false` declines.
    Confirm(&'a mut dyn FnMut(&Plan) -> bool),
}

/// Persists the record written ahead of kernel writes (see [`claims`]); an error stops the
/// run before it writes anything.
pub type Journal<'a> = &'a mut dyn FnMut(&Record) -> Result<()>;

/// Runs the pipeline for `scope`. On success `record` holds the new ownership; on failure the
/// host is as it was (as far as the kernel lets us put it back) and `record` is unchanged.
///
/// Before its first kernel write, and again before the port writes, the run hands `journal`
/// the record with every VID it may be about to own claimed already (write-ahead): a run
/// killed between a kernel write and saving the record leaves nothing that the next run
/// cannot attribute and clean up.
pub fn reconcile(
    sw: &mut dyn Switch,
    config: &Config,
    guests: &[GuestPort],
    record: &mut Record,
    scope: &Scope,
    mode: Mode,
    journal: Journal,
) -> Result<Outcome> {
    let start = sw.stats();
    let managed: BTreeSet<String> = config.bridges.keys().cloned().collect();
    let before = sw.read(&managed)?;
    before.require_vlan_support(&managed)?;
    let mut rec = record.clone();
    let stale = rec.drop_stale(&before);
    let intent = resolve(config, &before, guests, &rec, scope)?;
    let settings = plan_settings(&intent, &before)?;

    // The plan as it will be: the kernel's reaction to settings changes is simulated exactly,
    // so a dry run and a confirmation show what the real run does.
    let mut simulated = before.clone();
    for s in &settings {
        if let Some(p) = s.default_pvid {
            simulated.simulate_default_pvid(&s.bridge, p);
        }
    }
    let shown = plan_all(&intent, &settings, &before, &simulated, &rec)?;
    // what a switch cannot express is refused before anything changes, dry run included
    sw.prepare(&shown.ports)?;
    let done = |plan, applied, sw: &dyn Switch| Outcome {
        plan,
        applied,
        stats: delta(sw.stats(), start),
        stale: stale.clone(),
        violations: intent.violations.clone(),
        skipped: intent.skipped.clone(),
    };
    let confirming = matches!(mode, Mode::Confirm(_));
    match mode {
        Mode::DryRun => return Ok(done(shown, false, sw)),
        Mode::Confirm(ask) => {
            if !shown.is_empty() && !ask(&shown) {
                return Ok(done(shown, false, sw));
            }
        }
        Mode::Apply => {}
    }

    let mut plan = shown;
    if !settings.is_empty() {
        journal(&claims(&rec, &plan)).context("cannot record what this run is about to do")?;
        let changed = Plan {
            settings: settings.clone(),
            ports: Vec::new(),
        };
        for (i, s) in settings.iter().enumerate() {
            if let Err(e) = sw.set_settings(s) {
                let done_so_far = Plan {
                    settings: settings[..i].to_vec(),
                    ports: Vec::new(),
                };
                let rb = undo(sw, &managed, &before, &done_so_far, &mut *journal, record);
                return Err(e.context(format!("cannot change settings of bridge {}{rb}", s.bridge)));
            }
        }
        // Plan ports against what the kernel really did.
        let real = sw
            .read(&managed)
            .and_then(|now| plan_all(&intent, &settings, &before, &now, &rec));
        match real {
            Ok(real) if confirming && real.writes() != plan.writes() => {
                let rb = undo(sw, &managed, &before, &changed, &mut *journal, record);
                bail!("the host changed while waiting for confirmation; run again{rb}");
            }
            Ok(real) => {
                if let Err(e) = sw.prepare(&real.ports) {
                    let rb = undo(sw, &managed, &before, &changed, &mut *journal, record);
                    return Err(e.context(rb.trim_start_matches("; ").to_string()));
                }
                plan = real
            }
            Err(e) => {
                let rb = undo(sw, &managed, &before, &changed, &mut *journal, record);
                return Err(e.context(rb.trim_start_matches("; ").to_string()));
            }
        }
    }

    let writes = plan.writes();
    if writes.is_empty() && plan.settings.is_empty() {
        // Converged: one read was all it took.
        record_outcome(&mut rec, &plan);
        *record = rec;
        return Ok(done(plan, true, sw));
    }
    if let Err(e) = journal(&claims(&rec, &plan)) {
        let rb = undo(sw, &managed, &before, &plan, &mut *journal, record);
        return Err(e.context(format!("cannot record what this run is about to do{rb}")));
    }
    // A guest's tap that vanished before its write (ENODEV) is judged with the re-read below:
    // gone for good is its guest stopping, not this run's failure.
    let failures: Vec<String> = sw
        .write(&writes)
        .into_iter()
        .filter_map(|r| r.err())
        .filter(|e| {
            e.errno != libc::ENODEV
                || !plan
                    .ports
                    .iter()
                    .any(|p| p.bridge == e.bridge && p.port == e.port && may_vanish(p))
        })
        .map(|e| e.to_string())
        .collect();
    if !failures.is_empty() {
        let rb = undo(sw, &managed, &before, &plan, &mut *journal, record);
        return Err(anyhow!("{}{rb}", failures.join("; ")));
    }

    // Bridge settings are read again only if this run changed some.
    let settings_of = if plan.settings.is_empty() {
        BTreeSet::new()
    } else {
        managed.clone()
    };
    let after = sw
        .read(&settings_of)
        .context("cannot re-read the kernel to verify")?;
    let vanished = vanished_guest_ports(&plan, &after);
    plan.ports
        .retain(|p| !vanished.contains(&(p.bridge.clone(), p.port.clone())));
    let mismatches = verify(&plan, &after);
    if !mismatches.is_empty() {
        let rb = undo(sw, &managed, &before, &plan, &mut *journal, record);
        return Err(anyhow!(
            "the kernel does not show what was applied: {}{rb}",
            mismatches.join("; ")
        ));
    }

    record_outcome(&mut rec, &plan);
    *record = rec;
    let mut outcome = done(plan, true, sw);
    outcome.skipped.extend(vanished.iter().map(|(b, p)| {
        format!("{p} on {b} went away during the run (its guest is stopping?); nothing to keep")
    }));
    Ok(outcome)
}

/// A port whose interface may vanish mid-run without that being the run's failure: a libvirt
/// guest's tap, or a port being released (their guests stop and libvirt deletes them). Never
/// a bridge's own port, an uplink or a port the config names.
fn may_vanish(p: &PortPlan) -> bool {
    !p.is_self
        && match p.role {
            None => true,
            Some(Role::Guest) => p.origin.domain.is_some(),
            Some(_) => false,
        }
}

/// The plan's [`may_vanish`] ports whose interface is on no bridge any more in `after` (gone,
/// not moved): nothing is left on them to verify, keep or roll back.
fn vanished_guest_ports(plan: &Plan, after: &HostState) -> BTreeSet<(String, String)> {
    let present: BTreeSet<u32> = after
        .bridges
        .values()
        .flat_map(|b| b.ports.values().map(|p| p.ifindex))
        .collect();
    plan.ports
        .iter()
        .filter(|p| may_vanish(p) && !present.contains(&p.ifindex))
        .map(|p| (p.bridge.clone(), p.port.clone()))
        .collect()
}

/// Writes an applied plan into the record: what each managed port now owns and wants,
/// released ports forgotten, a changed `default_pvid`'s old value remembered.
fn record_outcome(rec: &mut Record, plan: &Plan) {
    for s in &plan.settings {
        if s.default_pvid.is_some() {
            rec.note_default_pvid_change(&s.bridge, s.ifindex, s.before.default_pvid);
        }
    }
    for p in &plan.ports {
        match p.role {
            Some(role) => rec.set(
                &p.bridge,
                &p.port,
                PortRecord {
                    ifindex: p.ifindex,
                    role,
                    owned: p.owned_after.clone(),
                    desired: p.desired.clone(),
                    origin: p.origin.clone(),
                },
            ),
            None if p.origin.what == RELEASED => {
                rec.remove(&p.bridge, &p.port);
            }
            None => {}
        }
    }
}

/// The record written ahead of `plan`'s kernel writes: every VID the plan removes or will own
/// is claimed for its port, and a changed `default_pvid`'s old value is noted. Claims are a
/// superset of the truth whatever happens next — a claimed VID the port does not carry means
/// nothing, and one it does carry was ours to add or to replace — so a run that dies after any
/// write leaves a record the next run converges from.
pub fn claims(rec: &Record, plan: &Plan) -> Record {
    let mut out = rec.clone();
    for s in &plan.settings {
        if s.default_pvid.is_some() {
            out.note_default_pvid_change(&s.bridge, s.ifindex, s.before.default_pvid);
        }
    }
    for p in &plan.ports {
        let Some(role) = p.role else { continue };
        let mut owned = rec.owned(&p.bridge, &p.port, p.ifindex);
        owned = owned.union(&p.del).union(&p.owned_after);
        out.set(
            &p.bridge,
            &p.port,
            PortRecord {
                ifindex: p.ifindex,
                role,
                owned,
                desired: p.desired.clone(),
                origin: p.origin.clone(),
            },
        );
    }
    out
}

/// Port plans for every bridge in the intent against `now` (the kernel after settings), and
/// bystander restores where a `default_pvid` change moved ports that are not ours.
fn plan_all(
    intent: &crate::intent::Intent,
    settings: &[crate::plan::SettingsChange],
    before: &HostState,
    now: &HostState,
    rec: &Record,
) -> Result<Plan> {
    let mut plan = Plan {
        settings: settings.to_vec(),
        ports: Vec::new(),
    };
    for b in intent.bridges.values() {
        let current: Vec<u16> = [before, now]
            .iter()
            .filter_map(|h| h.bridges.get(&b.name))
            .map(|bs| bs.settings.default_pvid)
            .collect();
        let ifindex = now.bridges.get(&b.name).map_or(0, |bs| bs.ifindex);
        let defaults = rec.enslave_defaults(&b.name, ifindex, &current);
        plan.ports.extend(plan_ports(b, now, &defaults, |br, p, i| {
            rec.owned(br, p, i)
        })?);
        if settings
            .iter()
            .any(|s| s.bridge == b.name && s.default_pvid.is_some())
        {
            plan.ports
                .extend(restore_bystanders(before, now, &b.name, |p| {
                    b.ports.contains_key(p) || b.released.contains(p)
                }));
        }
    }
    Ok(plan)
}

fn delta(now: Stats, start: Stats) -> Stats {
    Stats {
        writes: now.writes - start.writes,
        reads: now.reads - start.reads,
    }
}

/// Ports of `bridge` that a `default_pvid` change moved although they are not ours: the
/// kernel renumbers every port still on the old default; we put bystanders back.
fn restore_bystanders(
    before: &HostState,
    now: &HostState,
    bridge: &str,
    is_ours: impl Fn(&str) -> bool,
) -> Vec<PortPlan> {
    let (Some(b0), Some(b1)) = (before.bridges.get(bridge), now.bridges.get(bridge)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !is_ours(bridge) && b0.self_vlans != b1.self_vlans {
        out.push(restore_port(
            bridge,
            bridge,
            b1.ifindex,
            true,
            &b1.self_vlans,
            &b0.self_vlans,
        ));
    }
    for (name, p1) in &b1.ports {
        if is_ours(name) {
            continue;
        }
        if let Some(p0) = b0
            .ports
            .get(name)
            .filter(|p0| p0.ifindex == p1.ifindex && p0.vlans != p1.vlans)
        {
            out.push(restore_port(
                bridge, name, p1.ifindex, false, &p1.vlans, &p0.vlans,
            ));
        }
    }
    out
}

/// Mismatches between the plan and the kernel after applying it.
fn verify(plan: &Plan, after: &HostState) -> Vec<String> {
    let mut out = Vec::new();
    for p in &plan.ports {
        match (
            after.ifindex(&p.bridge, &p.port),
            after.vlans(&p.bridge, &p.port),
        ) {
            (Some(i), Some(v)) if i == p.ifindex => {
                if let Err(m) = p.verify(v) {
                    out.push(m);
                }
            }
            _ => out.push(format!(
                "port {} left bridge {} during apply",
                p.port, p.bridge
            )),
        }
    }
    for s in &plan.settings {
        let Some(b) = after.bridges.get(&s.bridge) else {
            out.push(format!("bridge {} vanished during apply", s.bridge));
            continue;
        };
        let got = b.settings;
        if s.vlan_filtering.is_some_and(|f| f != got.vlan_filtering)
            || s.default_pvid.is_some_and(|p| p != got.default_pvid)
            || s.vlan_protocol.is_some_and(|p| p != got.vlan_protocol)
        {
            out.push(format!(
                "bridge {}: wanted `{}`, kernel has {:?}",
                s.bridge,
                s.command(),
                got
            ));
        }
    }
    out
}

/// Rolls `plan` back and, if that put the host back as it was, the ownership record too (the
/// claims written ahead are then moot); an incomplete rollback keeps the claims, so the next
/// run can still attribute what was left behind. Returns a `; …` suffix for the message.
fn undo(
    sw: &mut dyn Switch,
    managed: &BTreeSet<String>,
    before: &HostState,
    plan: &Plan,
    journal: Journal,
    original: &Record,
) -> String {
    let (mut text, complete) = rollback(sw, managed, before, plan);
    if complete && let Err(e) = journal(original) {
        let _ = write!(
            text,
            "; the ownership record keeps this run's claims: {e:#}"
        );
    }
    text
}

/// Puts back what `plan` changed: settings first (the kernel renumbers default ports when
/// `default_pvid` changes), then every planned port, and every port of a bridge whose settings
/// changed, exactly as `before` had them. Returns a `; …` suffix for the error message, and
/// whether the host is as it was.
fn rollback(
    sw: &mut dyn Switch,
    managed: &BTreeSet<String>,
    before: &HostState,
    plan: &Plan,
) -> (String, bool) {
    let mut problems = Vec::new();
    for s in plan.settings.iter().rev() {
        if let Err(e) = sw.set_settings(&s.undo()) {
            problems.push(format!("settings of {}: {e:#}", s.bridge));
        }
    }
    let now = match sw.read(managed) {
        Ok(n) => n,
        Err(e) => {
            return (
                format!("; rollback could not re-read the kernel: {e:#}"),
                false,
            );
        }
    };
    let mut targets: BTreeSet<(String, String)> = plan
        .ports
        .iter()
        .map(|p| (p.bridge.clone(), p.port.clone()))
        .collect();
    for s in &plan.settings {
        if let Some(b) = before.bridges.get(&s.bridge) {
            targets.insert((s.bridge.clone(), s.bridge.clone()));
            targets.extend(b.ports.keys().map(|p| (s.bridge.clone(), p.clone())));
        }
    }
    let mut restores = Vec::new();
    let mut gone = Vec::new();
    for (bridge, port) in &targets {
        let (Some(i0), Some(v0)) = (before.ifindex(bridge, port), before.vlans(bridge, port))
        else {
            continue;
        };
        match (now.ifindex(bridge, port), now.vlans(bridge, port)) {
            (Some(i1), Some(v1)) if i1 == i0 => {
                if v1 != v0 {
                    restores.push(restore_port(bridge, port, i0, port == bridge, v1, v0));
                }
            }
            _ => gone.push(port.clone()),
        }
    }
    let fixed: Vec<String> = restores.iter().map(|p| p.port.clone()).collect();
    let writes: Vec<_> = restores.iter().flat_map(|p| p.writes()).collect();
    for r in sw.write(&writes) {
        if let Err(e) = r {
            problems.push(e.to_string());
        }
    }
    let mut out = String::new();
    if problems.is_empty() {
        let _ = write!(out, "; rolled back");
        if fixed.is_empty() && plan.settings.is_empty() {
            out.push_str(" (nothing had changed)");
        } else {
            if !plan.settings.is_empty() {
                let names: Vec<&str> = plan.settings.iter().map(|s| s.bridge.as_str()).collect();
                let _ = write!(out, " settings of {}", names.join(", "));
            }
            if !fixed.is_empty() {
                let _ = write!(out, " ports {}", fixed.join(", "));
            }
        }
        out.push_str(": the host is as it was");
    } else {
        let _ = write!(out, "; ROLLBACK INCOMPLETE: {}", problems.join("; "));
    }
    if !gone.is_empty() {
        let _ = write!(out, " (gone meanwhile: {})", gone.join(", "));
    }
    (out, problems.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{Origin, Role};
    use crate::port_vlans::{Native, PortVlans};
    use crate::state::{BridgeSettings, BridgeState, PortState};
    use crate::switch::fake::FakeKernel;
    use crate::vid::VidSet;

    fn s(x: &str) -> VidSet {
        x.parse().unwrap()
    }

    const CONF: &str = r#"
[bridges.br0]
default_pvid = 0
[bridges.br0.self]
pvid = 1
tagged = "200"
[bridges.br0.uplinks.eth0]
pvid = 1
tagged = "100,200,300"
on_demand = true
[[ports]]
interface = "veth0"
pvid = 100
tagged = "200,300"
[[ports]]
interface = "veth1"
pvid = 300
"#;

    /// A bridge as the kernel leaves it: filtering off, default_pvid 1, every port (and the
    /// bridge itself) in VLAN 1.
    fn fresh_kernel(ports: &[&str]) -> FakeKernel {
        let mut b = BridgeState {
            name: "br0".into(),
            ifindex: 1,
            settings: BridgeSettings::default(),
            self_vlans: PortVlans::access(1),
            ports: Default::default(),
            ..Default::default()
        };
        for (i, p) in ports.iter().enumerate() {
            b.ports.insert(
                p.to_string(),
                PortState {
                    name: p.to_string(),
                    ifindex: 10 + i as u32,
                    mac: None,
                    vlans: PortVlans::access(1),
                },
            );
        }
        let mut k = FakeKernel::default();
        k.state.bridges.insert("br0".into(), b);
        k
    }

    /// The pipeline with a journal that keeps nothing (the record is checked as returned).
    fn run(
        k: &mut FakeKernel,
        c: &Config,
        guests: &[GuestPort],
        rec: &mut Record,
        scope: &Scope,
        mode: Mode,
    ) -> Result<Outcome> {
        reconcile(k, c, guests, rec, scope, mode, &mut |_| Ok(()))
    }

    fn config(text: &str) -> Config {
        Config::parse("t.toml", text).unwrap()
    }

    #[test]
    fn apply_from_empty_then_converged_reapply_writes_nothing() {
        let c = config(CONF);
        let mut k = fresh_kernel(&["eth0", "veth0", "veth1", "other"]);
        let mut rec = Record::default();
        let out = run(&mut k, &c, &[], &mut rec, &Scope::Host, Mode::Apply).unwrap();
        assert!(out.applied);
        assert_eq!(
            k.port_vlans("br0", "veth0").to_string(),
            "pvid 100 untagged 100 tagged 200,300"
        );
        assert_eq!(k.port_vlans("br0", "veth1"), PortVlans::access(300));
        assert_eq!(
            k.port_vlans("br0", "eth0").to_string(),
            "pvid 1 untagged 1 tagged 100,200,300"
        );
        assert_eq!(
            k.port_vlans("br0", "br0").to_string(),
            "pvid 1 untagged 1 tagged 200"
        );
        // default_pvid 0 stripped VID 1 from `other`, which is not ours: it was put back
        assert_eq!(k.port_vlans("br0", "other"), PortVlans::access(1));
        let b = &k.state.bridges["br0"].settings;
        assert!(b.vlan_filtering);
        assert_eq!(b.default_pvid, 0);
        assert_eq!(rec.get("br0", "veth0").unwrap().owned, s("100,200,300"));
        assert_eq!(rec.get("br0", "eth0").unwrap().role, Role::Uplink);
        assert!(rec.get("br0", "other").is_none());

        let again = run(&mut k, &c, &[], &mut rec, &Scope::Host, Mode::Apply).unwrap();
        assert_eq!(again.stats.writes, 0, "converged host: zero writes");
        assert!(again.plan.is_empty());
    }

    #[test]
    fn dry_run_changes_nothing_and_predicts_the_real_run() {
        let c = config(CONF);
        let mut k = fresh_kernel(&["eth0", "veth0", "veth1", "other"]);
        let snapshot = k.state.clone();
        let mut rec = Record::default();
        let dry = run(&mut k, &c, &[], &mut rec, &Scope::Host, Mode::DryRun).unwrap();
        assert!(!dry.applied);
        assert_eq!(dry.stats.writes, 0);
        assert_eq!(k.state, snapshot);
        assert_eq!(rec, Record::default());
        let real = run(&mut k, &c, &[], &mut rec, &Scope::Host, Mode::Apply).unwrap();
        assert_eq!(
            dry.plan, real.plan,
            "the dry run shows exactly what the real run does"
        );
        let text = dry.plan.render();
        assert!(
            text.contains("ip link set dev br0 type bridge vlan_filtering 1 vlan_default_pvid 0"),
            "{text}"
        );
        assert!(
            text.contains("bridge vlan add dev other vid 1 pvid untagged master"),
            "{text}"
        );
    }

    #[test]
    fn removing_a_port_from_config_removes_owned_vids_only() {
        let c = config(CONF);
        let mut k = fresh_kernel(&["eth0", "veth0", "veth1"]);
        let mut rec = Record::default();
        run(&mut k, &c, &[], &mut rec, &Scope::Host, Mode::Apply).unwrap();
        // someone adds a foreign VID to veth1
        k.state
            .bridges
            .get_mut("br0")
            .unwrap()
            .ports
            .get_mut("veth1")
            .unwrap()
            .vlans
            .set(
                777,
                crate::port_vlans::VlanFlags {
                    pvid: false,
                    untagged: false,
                },
            );
        // veth1 leaves the config. It is a static port, so it is released, not forgotten.
        let c2 = config(&CONF.replace("[[ports]]\ninterface = \"veth1\"\npvid = 300\n", ""));
        assert_eq!(c2.ports.len(), 1);
        // The record says veth1 is a guest port: a host-scope run releases it.
        run(&mut k, &c2, &[], &mut rec, &Scope::Host, Mode::Apply).unwrap();
        let v = k.port_vlans("br0", "veth1");
        assert_eq!(
            v.members(),
            s("777"),
            "owned 300 went, foreign 777 stayed: {v}"
        );
        assert!(rec.get("br0", "veth1").is_none());
        // on-demand uplink no longer carries 300? It is also static on eth0, so it stays.
        assert!(k.port_vlans("br0", "eth0").tagged.contains(300));
    }

    #[test]
    fn on_demand_vids_are_pruned_when_the_guest_goes() {
        let c = config(&CONF.replace("pvid = 300", "pvid = 400"));
        let mut k = fresh_kernel(&["eth0", "veth0", "veth1"]);
        let mut rec = Record::default();
        run(&mut k, &c, &[], &mut rec, &Scope::Host, Mode::Apply).unwrap();
        assert!(k.port_vlans("br0", "eth0").tagged.contains(400));
        let c2 = config(&CONF.replace("[[ports]]\ninterface = \"veth1\"\npvid = 300\n", ""));
        run(&mut k, &c2, &[], &mut rec, &Scope::Host, Mode::Apply).unwrap();
        assert!(!k.port_vlans("br0", "eth0").tagged.contains(400));
    }

    #[test]
    fn a_guest_tap_vanishing_mid_apply_is_noted_and_the_rest_applies() {
        let c = config(CONF);
        let mut k = fresh_kernel(&["eth0", "veth0", "veth1", "vnet5"]);
        k.vanish.insert("vnet5".into());
        let mut origin = Origin::new("metadata");
        origin.domain = Some("web1".into());
        let g = GuestPort::new("vnet5", PortVlans::access(42), origin);
        let mut rec = Record::default();
        let out = run(&mut k, &c, &[g], &mut rec, &Scope::Host, Mode::Apply).unwrap();
        assert!(out.applied);
        assert_eq!(out.skipped.len(), 1, "{:?}", out.skipped);
        assert!(
            out.skipped[0].contains("vnet5 on br0 went away"),
            "{:?}",
            out.skipped
        );
        assert_eq!(k.port_vlans("br0", "veth1"), PortVlans::access(300));
        assert!(
            rec.get("br0", "vnet5").is_none(),
            "nothing recorded for a gone tap"
        );
        assert!(rec.get("br0", "veth1").is_some());
    }

    #[test]
    fn a_port_vanishing_mid_apply_rolls_back_everything() {
        let c = config(CONF);
        let mut k = fresh_kernel(&["eth0", "veth0", "veth1", "other"]);
        k.vanish.insert("veth1".into());
        let snapshot = k.state.clone();
        let mut rec = Record::default();
        let mut saved: Vec<Record> = Vec::new();
        let e = reconcile(
            &mut k,
            &c,
            &[],
            &mut rec,
            &Scope::Host,
            Mode::Apply,
            &mut |r| {
                saved.push(r.clone());
                Ok(())
            },
        )
        .unwrap_err();
        assert!(
            saved.len() >= 2 && saved[0] != Record::default(),
            "claims were written ahead"
        );
        assert_eq!(
            saved.last(),
            Some(&Record::default()),
            "a complete rollback puts the saved record back as it was"
        );
        let msg = format!("{e:#}");
        assert!(
            msg.contains("port veth1 on br0 vanished during apply"),
            "{msg}"
        );
        assert!(msg.contains("rolled back"), "{msg}");
        assert!(msg.contains("the host is as it was"), "{msg}");
        // everything but the vanished port is exactly as before, settings included
        let mut expect = snapshot;
        expect.bridges.get_mut("br0").unwrap().ports.remove("veth1");
        assert_eq!(k.state, expect);
        assert_eq!(rec, Record::default(), "record untouched on failure");
    }

    #[test]
    fn verify_catches_a_silent_failure_and_rolls_back() {
        let c = config(CONF);
        let mut k = fresh_kernel(&["eth0", "veth0", "veth1"]);
        k.ignore_once.insert("veth0".into());
        let snapshot = k.state.clone();
        let mut rec = Record::default();
        let e = format!(
            "{:#}",
            reconcile(
                &mut k,
                &c,
                &[],
                &mut rec,
                &Scope::Host,
                Mode::Apply,
                &mut |_| Ok(())
            )
            .unwrap_err()
        );
        assert!(
            e.contains(
                "port veth0 on br0: wanted pvid 100 untagged 100 tagged 200,300, kernel has none"
            ),
            "{e}"
        );
        assert!(e.contains("rolled back"), "{e}");
        assert_eq!(k.state, snapshot);
    }

    #[test]
    fn bad_input_changes_nothing() {
        let c = config(
            "[bridges.br0]\nallowed = \"1-99\"\n[bridges.br1]\n[[ports]]\ninterface = \"veth0\"\npvid = 100\n",
        );
        let mut k = fresh_kernel(&["veth0"]);
        k.state.bridges.insert(
            "br1".into(),
            BridgeState {
                name: "br1".into(),
                ifindex: 99,
                ..Default::default()
            },
        );
        let snapshot = k.state.clone();
        let e = run(
            &mut k,
            &c,
            &[],
            &mut Record::default(),
            &Scope::Host,
            Mode::Apply,
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        assert_eq!(k.state, snapshot);
        assert_eq!(k.stats.writes, 0);
    }

    #[test]
    fn guest_ports_in_port_scope_leave_other_guests_alone() {
        let c = config(CONF);
        let mut k = fresh_kernel(&["eth0", "veth0", "veth1", "vnet0", "vnet1"]);
        let mut rec = Record::default();
        run(&mut k, &c, &[], &mut rec, &Scope::Host, Mode::Apply).unwrap();
        let g = |name: &str, v: PortVlans| {
            GuestPort::new(
                name,
                v,
                Origin {
                    what: "metadata".into(),
                    domain: Some("vm".into()),
                    interface: None,
                },
            )
        };
        let trunk =
            PortVlans::build(Some(500), Native::Untagged, VidSet::new(), s("501-502")).unwrap();
        run(
            &mut k,
            &c,
            &[g("vnet0", trunk.clone())],
            &mut rec,
            &Scope::Ports(["vnet0".into()].into()),
            Mode::Apply,
        )
        .unwrap();
        assert_eq!(k.port_vlans("br0", "vnet0"), trunk);
        // vnet1 is nobody's: after default_pvid 0 it stayed in VLAN 1 (restored), untouched now
        assert_eq!(k.port_vlans("br0", "vnet1"), PortVlans::access(1));
        assert_eq!(k.port_vlans("br0", "eth0").tagged, s("100,200,300,500-502"));
        // a second guest keeps the first one's on-demand VIDs on the uplink
        run(
            &mut k,
            &c,
            &[g("vnet1", PortVlans::access(600))],
            &mut rec,
            &Scope::Ports(["vnet1".into()].into()),
            Mode::Apply,
        )
        .unwrap();
        assert_eq!(
            k.port_vlans("br0", "eth0").tagged,
            s("100,200,300,500-502,600")
        );
        // vnet0 goes away (tap deleted): a bridges-scope run prunes its VIDs from the uplink
        k.state
            .bridges
            .get_mut("br0")
            .unwrap()
            .ports
            .remove("vnet0");
        reconcile(
            &mut k,
            &c,
            &[],
            &mut rec,
            &Scope::Bridges {
                bridges: ["br0".into()].into(),
                release: Default::default(),
            },
            Mode::Apply,
            &mut |_| Ok(()),
        )
        .unwrap();
        assert_eq!(k.port_vlans("br0", "eth0").tagged, s("100,200,300,600"));
        assert!(rec.get("br0", "vnet0").is_none());
    }

    #[test]
    fn rollback_after_default_pvid_change_restores_every_port() {
        // default_pvid 0 -> 1 makes the kernel add VID 1 to every port lacking it; a failure
        // afterwards must take it off again everywhere
        let c = config(
            "[bridges.br0]\ndefault_pvid = 1\n[[ports]]\ninterface = \"veth0\"\npvid = 10\n",
        );
        let mut k = fresh_kernel(&["veth0", "x", "y"]);
        let bs = k.state.bridges.get_mut("br0").unwrap();
        bs.settings.default_pvid = 0;
        bs.settings.vlan_filtering = true;
        bs.self_vlans = PortVlans::none();
        for p in bs.ports.values_mut() {
            p.vlans = PortVlans::access(7);
        }
        k.ignore_once.insert("veth0".into());
        let snapshot = k.state.clone();
        let e = run(
            &mut k,
            &c,
            &[],
            &mut Record::default(),
            &Scope::Host,
            Mode::Apply,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("the host is as it was"), "{e:#}");
        assert_eq!(k.state, snapshot);
    }

    /// The crash test: a host with a foreign VID on a configured port and libvirt's own VLAN on
    /// a guest's tap; the first apply killed after each of its writes in turn (no rollback, the
    /// record as last written ahead); then a normal run; then a run that takes every port
    /// away. The outcome must equal the same sequence without the crash: the kernel matches
    /// the intent, and no VID virt-vlan added is left behind for nobody to remove.
    #[test]
    fn a_run_killed_after_any_write_leaves_a_record_the_next_run_converges_from() {
        let c = config(CONF);
        let released = config(
            "[bridges.br0]\ndefault_pvid = 0\n[bridges.br0.uplinks.eth0]\npvid = 1\non_demand = true\n",
        );
        let guests = || {
            let mut g = GuestPort::new(
                "vnet0",
                PortVlans::access(42),
                Origin {
                    what: "metadata".into(),
                    domain: Some("vm".into()),
                    interface: None,
                },
            );
            g.replaceable = s("7");
            vec![g]
        };
        let host = || {
            let mut k = fresh_kernel(&["eth0", "veth0", "veth1", "vnet0"]);
            let b = k.state.bridges.get_mut("br0").unwrap();
            b.ports.get_mut("veth0").unwrap().vlans.set(
                555,
                crate::port_vlans::VlanFlags {
                    pvid: false,
                    untagged: false,
                },
            );
            b.ports.get_mut("vnet0").unwrap().vlans = PortVlans::access(7);
            k
        };
        let noop = &mut |_: &Record| Ok(());

        // without a crash
        let mut clean = host();
        let mut rec = Record::default();
        reconcile(
            &mut clean,
            &c,
            &guests(),
            &mut rec,
            &Scope::Host,
            Mode::Apply,
            noop,
        )
        .unwrap();
        let converged = clean.state.clone();
        let total = clean.stats.writes;
        assert!(total >= 6, "the crash points must cover settings and ports");
        let mut rec_clean = rec.clone();
        reconcile(
            &mut clean,
            &released,
            &[],
            &mut rec_clean,
            &Scope::Host,
            Mode::Apply,
            noop,
        )
        .unwrap();
        let emptied = clean.state.clone();
        assert!(
            emptied
                .vlans("br0", "veth0")
                .unwrap()
                .members()
                .contains(555),
            "the foreign VID stays"
        );

        for n in 0..total {
            let mut k = host();
            k.die_after_writes = Some(n);
            let disk = std::cell::RefCell::new(Record::default());
            let mut journal = |r: &Record| {
                *disk.borrow_mut() = r.clone();
                Ok(())
            };
            let mut rec = Record::default();
            let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                reconcile(
                    &mut k,
                    &c,
                    &guests(),
                    &mut rec,
                    &Scope::Host,
                    Mode::Apply,
                    &mut journal,
                )
            }));
            assert!(crashed.is_err(), "crash point {n} was reached");
            k.die_after_writes = None;
            let mut rec = disk.into_inner();
            reconcile(
                &mut k,
                &c,
                &guests(),
                &mut rec,
                &Scope::Host,
                Mode::Apply,
                noop,
            )
            .unwrap_or_else(|e| panic!("after a crash at write {n}: {e:#}"));
            assert_eq!(k.state, converged, "after a crash at write {n}");
            reconcile(
                &mut k,
                &released,
                &[],
                &mut rec,
                &Scope::Host,
                Mode::Apply,
                noop,
            )
            .unwrap();
            assert_eq!(k.state, emptied, "orphaned VIDs after a crash at write {n}");
        }
    }
}
