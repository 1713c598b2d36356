//! Guest ports of running domains, for runs that cover the whole host: from libvirt itself
//! when it can be asked (outside hooks), else from what its hooks told us (the store's
//! remembered domain, network and port XML). Also the network knowledge hooks resolve with.

use crate::config::Config;
use crate::error::BadInput;
use crate::intent::GuestPort;
use crate::libvirt_xml::{Domain, Network, parse_domain, parse_hook_data, parse_network};
use crate::sources::{Networks, resolve_domain};
use crate::state::HostState;
use crate::store::{Kind, Store};
use anyhow::Result;
use std::collections::BTreeMap;

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

/// Guest ports found for a whole-host run.
pub struct Gathered {
    pub ports: Vec<GuestPort>,
    pub notes: Vec<String>,
    /// `libvirt` or `hooks` (what libvirt's hooks last told us).
    pub from: &'static str,
}

/// Every running domain's guest ports whose taps are on a bridge now. Asks libvirt when
/// `ask_libvirt` and it answers, else uses the hooks' memory. A domain whose VLAN data is
/// malformed fails the whole run (bad input), naming it.
pub fn gather(
    config: &Config,
    store: &Store,
    state: &HostState,
    ask_libvirt: bool,
) -> Result<Gathered> {
    let mut notes = Vec::new();
    let mut live = None;
    if ask_libvirt {
        match crate::libvirt_live::running() {
            Ok(l) => live = Some(l),
            Err(e) => notes.push(format!(
                "libvirt not reachable ({e:#}); using what its hooks last reported"
            )),
        }
    }
    let (domains, knowledge, from) = match live {
        Some(l) => {
            let mut k = NetworkKnowledge::remembered(store);
            for n in &l.networks {
                match crate::libvirt_live::network_xml(n).and_then(|x| Ok(parse_network(&x)?)) {
                    Ok(net) => {
                        k.networks.insert(net.name.clone(), net);
                    }
                    Err(e) => notes.push(format!("network {n}: {e:#}")),
                }
            }
            let mut domains = Vec::new();
            for d in &l.domains {
                match crate::libvirt_live::domain_xml(d) {
                    Ok(x) => domains.push(parse_domain(&x)?),
                    // it may have stopped meanwhile
                    Err(e) => notes.push(format!("domain {d}: {e:#}")),
                }
            }
            (domains, k, "libvirt")
        }
        None => {
            let mut domains = Vec::new();
            for (name, xml) in store.remembered(Kind::Domain) {
                match parse_domain(&xml) {
                    Ok(d) => domains.push(d),
                    Err(e) => notes.push(format!("remembered domain {name}: {e}")),
                }
            }
            (domains, NetworkKnowledge::remembered(store), "hooks")
        }
    };
    let mut ports = Vec::new();
    for d in &domains {
        let r = resolve(d, config, &knowledge)?;
        notes.extend(r.notes);
        for p in r.ports {
            if state.bridge_of(&p.ifname).is_some() {
                ports.push(p);
            } else {
                notes.push(format!(
                    "{}: tap {} is not on a bridge now; skipped",
                    p.origin, p.ifname
                ));
            }
        }
    }
    Ok(Gathered { ports, notes, from })
}

/// One domain's guest ports.
pub fn resolve(
    d: &Domain,
    config: &Config,
    k: &NetworkKnowledge,
) -> Result<crate::sources::Resolved, BadInput> {
    resolve_domain(d, config, &k.view())
}
