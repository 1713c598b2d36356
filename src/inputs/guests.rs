//! Guest ports of running domains, for runs that cover the whole host: from libvirt itself
//! when it can be asked (outside hooks), else from what its hooks told us (the store's
//! remembered domain, network and port XML). Also the network knowledge hooks resolve with.

use crate::config::Config;
use crate::error::BadInput;
use crate::intent::{GuestPort, Role};
use crate::libvirt_live::Object;
use crate::libvirt_xml::{Domain, Network, parse_domain, parse_hook_data, parse_network};
use crate::ownership::Record;
use crate::sources::{Networks, Resolved, resolve_domain};
use crate::state::HostState;
use crate::store::{Kind, Store};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};

/// Networks and per-port portgroups as hooks reported them.
#[derive(Default)]
pub struct NetworkKnowledge {
    pub networks: BTreeMap<String, Network>,
    pub port_groups: BTreeMap<String, String>,
}

impl NetworkKnowledge {
    /// What the store remembers from network hooks (unreadable entries are skipped with a
    /// note: they are our own files, rewritten at the next hook).
    pub fn remembered(store: &Store) -> NetworkKnowledge {
        let mut k = NetworkKnowledge::default();
        for (name, xml) in store.remembered(Kind::Network) {
            match parse_network(&xml) {
                Ok(n) => {
                    k.networks.insert(n.name.clone(), n);
                }
                Err(e) => tracing::warn!("remembered network {name}: {e}"),
            }
        }
        for (uuid, xml) in store.remembered(Kind::Port) {
            if let Ok((net, Some(port))) = parse_hook_data(&xml) {
                if let Some(g) = port.group {
                    k.port_groups.insert(uuid, g);
                }
                k.networks.entry(net.name.clone()).or_insert(net);
            }
        }
        k
    }

    pub fn view(&self) -> Networks<'_> {
        Networks {
            by_name: &self.networks,
            port_groups: &self.port_groups,
        }
    }
}

/// A running guest interface that libvirt gives a `<vlan>` of its own (interface, portgroup
/// or network), on the bridge it plugs into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibvirtVlanUse {
    pub domain: String,
    pub interface: String,
    pub bridge: String,
    /// Which `<vlan>`: `interface <vlan>`, `portgroup … <vlan>`…
    pub what: String,
}

/// Running domains and networks as one source saw them.
pub struct DomainView {
    pub domains: Vec<Domain>,
    pub knowledge: NetworkKnowledge,
    /// `libvirt` (asked it) or `hooks` (what its hooks last reported).
    pub from: &'static str,
    pub notes: Vec<String>,
}

impl DomainView {
    /// libvirt's running domains' live XML and its networks (outside hooks only).
    pub fn from_libvirt(store: &Store) -> Result<DomainView> {
        let live = crate::libvirt_live::running()?;
        let mut notes = Vec::new();
        let mut knowledge = NetworkKnowledge::remembered(store);
        let mut domains = Vec::new();
        for (what, xml) in crate::libvirt_live::xml_of(&live) {
            let parsed = xml.and_then(|x| {
                match &what {
                    Object::Domain(..) => domains.push(parse_domain(&x)?),
                    Object::Network(_) => {
                        let net = parse_network(&x)?;
                        knowledge.networks.insert(net.name.clone(), net);
                    }
                }
                Ok(())
            });
            // a domain may have stopped meanwhile
            if let Err(e) = parsed {
                notes.push(format!("{what}: {e:#}"));
            }
        }
        Ok(DomainView {
            domains,
            knowledge,
            from: "libvirt",
            notes,
        })
    }

    /// What libvirt's hooks last told us.
    pub fn from_hooks(store: &Store) -> DomainView {
        let mut notes = Vec::new();
        let mut domains = Vec::new();
        for (name, xml) in store.remembered(Kind::Domain) {
            match parse_domain(&xml) {
                Ok(d) => domains.push(d),
                Err(e) => notes.push(format!("remembered domain {name}: {e}")),
            }
        }
        DomainView {
            domains,
            knowledge: NetworkKnowledge::remembered(store),
            from: "hooks",
            notes,
        }
    }

    /// libvirt if it answers (with `ask_libvirt`), else the hooks' memory.
    pub fn best(store: &Store, ask_libvirt: bool) -> DomainView {
        if ask_libvirt {
            match DomainView::from_libvirt(store) {
                Ok(v) => return v,
                Err(e) => {
                    let mut v = DomainView::from_hooks(store);
                    let note = format!(
                        "libvirt not reachable ({e:#}); using what its hooks last reported"
                    );
                    if crate::libvirt_live::maybe_running() {
                        // libvirtd is there but did not answer: worth a sysadmin's attention.
                        tracing::warn!("{note}");
                    } else {
                        v.notes.push(note);
                    }
                    return v;
                }
            }
        }
        DomainView::from_hooks(store)
    }

    /// Each domain's resolution (or why its VLAN data is unusable).
    pub fn resolve(&self, config: &Config) -> Vec<(String, Result<Resolved, BadInput>)> {
        self.domains
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    resolve_domain(d, config, &self.knowledge.view()),
                )
            })
            .collect()
    }
}

/// Every interface of the view's domains that libvirt gives a `<vlan>` of its own, with the
/// bridge it plugs into (for `check`). Malformed ones are `apply`'s business, not listed.
pub fn libvirt_vlan_uses(view: &DomainView) -> Vec<LibvirtVlanUse> {
    let nets = view.knowledge.view();
    let mut out = Vec::new();
    for d in &view.domains {
        for iface in &d.interfaces {
            let (Ok(Some((_, what))), Some(bridge)) = (
                crate::sources::libvirt_vlan(d, iface, &nets),
                crate::sources::bridge_of(iface, &nets),
            ) else {
                continue;
            };
            out.push(LibvirtVlanUse {
                domain: d.name.clone(),
                interface: iface.label(),
                bridge,
                what,
            });
        }
    }
    out
}

/// Guest ports found for a whole-host run.
pub struct Gathered {
    pub ports: Vec<GuestPort>,
    pub notes: Vec<String>,
    /// `libvirt` or `hooks`.
    pub from: &'static str,
    /// Domains whose VLAN data is malformed, with why: their recorded ports are kept as they
    /// are (in `ports`), and the run must end as a failure.
    pub refused: Vec<String>,
}

impl Gathered {
    /// The refused domains as one bad-input error, if there were any.
    pub fn refused_result(&self) -> Result<()> {
        if self.refused.is_empty() {
            return Ok(());
        }
        Err(BadInput(self.refused.join("; ")).into())
    }
}

/// Keeps the ports whose taps are on a bridge now; notes the others.
fn on_bridges(ports: Vec<GuestPort>, state: &HostState, notes: &mut Vec<String>) -> Vec<GuestPort> {
    ports
        .into_iter()
        .filter(|p| {
            let there = state.bridge_of(&p.ifname).is_some();
            if !there {
                notes.push(format!(
                    "{}: tap {} is not on a bridge now; skipped",
                    p.origin, p.ifname
                ));
            }
            there
        })
        .collect()
}

/// Every running domain's guest ports whose taps are on a bridge now (see `DomainView::best`).
/// A domain whose VLAN data is malformed is listed in `refused`, naming it, and its recorded
/// ports keep what they have: one guest's bad XML never stops the others.
pub fn gather(
    config: &Config,
    store: &Store,
    state: &HostState,
    ask_libvirt: bool,
) -> Result<Gathered> {
    let view = DomainView::best(store, ask_libvirt);
    let mut notes = view.notes.clone();
    let mut ports = Vec::new();
    let mut refused = Vec::new();
    let mut refused_domains = BTreeSet::new();
    for (name, r) in view.resolve(config) {
        match r {
            Ok(r) => {
                notes.extend(r.notes);
                ports.extend(r.ports);
            }
            Err(e) => {
                refused.push(format!("{e}; its ports are left as they are"));
                refused_domains.insert(name);
            }
        }
    }
    let mut ports = on_bridges(ports, state, &mut notes);
    if !refused_domains.is_empty() {
        let record = store.load_unlocked()?;
        let covered = ports.iter().map(|p| p.ifname.clone()).collect();
        ports.extend(
            recorded_guests(&record, state, &covered)
                .into_iter()
                .filter(|p| {
                    p.origin
                        .domain
                        .as_ref()
                        .is_some_and(|d| refused_domains.contains(d))
                }),
        );
    }
    Ok(Gathered {
        ports,
        notes,
        from: view.from,
        refused,
    })
}

/// Recorded libvirt guest ports still on their bridge that `covered` does not name: their
/// recorded VLANs, so a run that does not know their domain does not strip them.
pub fn recorded_guests(
    record: &Record,
    state: &HostState,
    covered: &BTreeSet<String>,
) -> Vec<GuestPort> {
    record
        .iter()
        .filter(|(b, p, r)| {
            r.role == Role::Guest
                && r.origin.domain.is_some()
                && !covered.contains(*p)
                && state.ifindex(b, p) == Some(r.ifindex)
        })
        .map(|(_, p, r)| GuestPort::new(p.clone(), r.desired.clone(), r.origin.clone()))
        .collect()
}

/// One domain's guest ports.
pub fn resolve(d: &Domain, config: &Config, k: &NetworkKnowledge) -> Result<Resolved, BadInput> {
    resolve_domain(d, config, &k.view())
}
