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
                    Object::Domain(_) => domains.push(parse_domain(&x)?),
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

/// Guest ports found for a whole-host run.
pub struct Gathered {
    pub ports: Vec<GuestPort>,
    pub notes: Vec<String>,
    /// `libvirt` or `hooks`.
    pub from: &'static str,
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
/// A domain whose VLAN data is malformed fails the whole run (bad input), naming it.
pub fn gather(
    config: &Config,
    store: &Store,
    state: &HostState,
    ask_libvirt: bool,
) -> Result<Gathered> {
    let view = DomainView::best(store, ask_libvirt);
    let mut notes = view.notes.clone();
    let mut ports = Vec::new();
    for (_, r) in view.resolve(config) {
        let r = r?;
        notes.extend(r.notes);
        ports.extend(r.ports);
    }
    let ports = on_bridges(ports, state, &mut notes);
    Ok(Gathered {
        ports,
        notes,
        from: view.from,
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
        .map(|(_, p, r)| GuestPort {
            ifname: p.clone(),
            vlans: r.desired.clone(),
            origin: r.origin.clone(),
        })
        .collect()
}

/// One domain's guest ports.
pub fn resolve(d: &Domain, config: &Config, k: &NetworkKnowledge) -> Result<Resolved, BadInput> {
    resolve_domain(d, config, &k.view())
}
