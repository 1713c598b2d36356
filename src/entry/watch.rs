//! `virt-vlan watch`: event-driven reconciliation for what hooks cannot see — a `type='bridge'`
//! hot-plug (no hook runs), `bridge vlan del` by hand, a bridge re-created by ifupdown or
//! NetworkManager, an uplink re-enslaved. It subscribes to rtnetlink link notifications
//! (and to libvirt's domain events through `virsh event`), never polls, acts on a lone change
//! at once and coalesces a burst into one run of the shared pipeline, and resynchronises from
//! a full dump when the kernel drops notifications. Its own writes come back as notifications that match what it wanted, so they
//! trigger nothing. Where Open vSwitch runs, it also monitors ovsdb-server's bridges, ports and
//! interfaces (`monitor_cond`): any change there makes a run (drift repaired, new guest ports
//! given their VLANs, deleted ones pruned from on-demand uplinks), and when ovsdb-server goes
//! away it connects again with a back-off and resynchronises. SIGHUP reloads the config,
//! SIGTERM/SIGINT end it cleanly.

use crate::apply::Mode;
use crate::config::Config;
use crate::guests::{DomainView, recorded_guests};
use crate::host_switch::{HostSwitch, ovsdb_socket};
use crate::intent::{GuestPort, Scope};
use crate::linkwatch::{Event, LinkChange, LinkEvents};
use crate::ovs::db::Ovsdb;
use crate::session;
use crate::state::HostState;
use crate::store::Store;
use crate::switch::Switch;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// After a relevant notification, the notifications already queued are read with it. If they
/// move one port only, the run starts at once: a lone change waits for nothing. If they move
/// several (a burst: 100 enslaves arrive a few ms apart), the watcher waits up to `QUIET` at a
/// time for more before running...
const QUIET: Duration = Duration::from_millis(25);
/// ... but never longer than this in all.
const MAX_COALESCE: Duration = Duration::from_millis(250);

/// After libvirt's event stream ends, try subscribing again this soon, doubling while
/// libvirtd stays away, up to the maximum.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(500);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(8);

/// SIGHUP and SIGTERM/SIGINT as readable sockets the event loop polls: signal-hook's
/// async-signal-safe handlers write a byte to one socket per kind.
struct Signals {
    reload: std::os::unix::net::UnixStream,
    stop: std::os::unix::net::UnixStream,
}

/// What a signal asks of the watcher.
enum Asked {
    Reload,
    Stop,
}

impl Signals {
    fn register() -> Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::low_level::pipe;
        let (reload, reload_w) = std::os::unix::net::UnixStream::pair()?;
        let (stop, stop_w) = std::os::unix::net::UnixStream::pair()?;
        pipe::register(SIGHUP, reload_w).context("cannot handle SIGHUP")?;
        pipe::register(SIGTERM, stop_w.try_clone()?).context("cannot handle SIGTERM")?;
        pipe::register(SIGINT, stop_w).context("cannot handle SIGINT")?;
        reload.set_nonblocking(true)?;
        stop.set_nonblocking(true)?;
        Ok(Signals { reload, stop })
    }

    /// Drains both sockets: what was asked since the last look (a stop wins).
    fn take(&mut self) -> Option<Asked> {
        let drained = |s: &mut std::os::unix::net::UnixStream| {
            let mut buf = [0u8; 64];
            let mut any = false;
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                any = true;
            }
            any
        };
        if drained(&mut self.stop) {
            return Some(Asked::Stop);
        }
        drained(&mut self.reload).then_some(Asked::Reload)
    }
}

/// `virsh -c URI event --all --loop`: a line per libvirt domain event of one driver (started,
/// defined, metadata changed, device added…). Its end means libvirtd went away.
struct LibvirtEvents {
    child: std::process::Child,
}

impl LibvirtEvents {
    fn start(uri: &str) -> Option<LibvirtEvents> {
        let mut command = std::process::Command::new("virsh");
        command
            .args(["-q", "-c", uri, "event", "--all", "--loop"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        // If the watcher is killed outright (SIGKILL, OOM), virsh must not outlive it.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().ok()?;
        let fd = child.stdout.as_ref()?.as_raw_fd();
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Some(LibvirtEvents { child })
    }

    fn fd(&self) -> i32 {
        self.child.stdout.as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    /// Drains what is readable: (lines, still alive).
    fn read(&mut self) -> (Vec<String>, bool) {
        let mut buf = [0u8; 4096];
        let mut text = String::new();
        let Some(out) = self.child.stdout.as_mut() else {
            return (Vec::new(), false);
        };
        loop {
            match out.read(&mut buf) {
                Ok(0) => return (text.lines().map(str::to_string).collect(), false),
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return (text.lines().map(str::to_string).collect(), false),
            }
        }
        (text.lines().map(str::to_string).collect(), true)
    }
}

impl Drop for LibvirtEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the watcher keeps between events; all of it bounded by the host's links and domains.
pub struct Watcher {
    config_path: PathBuf,
    config: Config,
    store: Store,
    /// ovsdb-server's change notifications, where Open vSwitch runs.
    ovs: Option<Ovsdb>,
    /// When the OVSDB connection ended: the time to connect again.
    ovs_retry_at: Option<Instant>,
    ovs_retry_delay: Duration,
    /// ifindex → (name, master ifindex or 0), as last seen.
    links: BTreeMap<u32, (String, u32)>,
    /// Managed bridges present now: ifindex → name.
    bridges: BTreeMap<u32, String>,
    domains: Option<DomainView>,
    /// Ports on managed bridges no source claimed after asking libvirt: not asked about again.
    unclaimed: BTreeSet<u32>,
    /// A libvirt guest's port moved since the domains were last read: read their live XML
    /// again before repairing it, so an older intent is never written over a newer one.
    guests_moved: bool,
    /// One event stream per libvirt driver that answered (qemu, lxc).
    libvirt_events: Vec<LibvirtEvents>,
    /// When libvirt's event streams ended (libvirtd stopped or restarting): the time to try
    /// subscribing again, or to check that a new subscription held. Only then does the
    /// watcher wake up without an event.
    resubscribe_at: Option<Instant>,
    resubscribe_delay: Duration,
    /// The link notification socket's fd, once subscribed: a reaction's read of the kernel is
    /// reused by its run only if nothing has arrived on it since.
    events_fd: Option<i32>,
    /// Runs of the pipeline so far (for the log and tests).
    pub runs: u64,
}

impl Watcher {
    pub fn new(config_path: &Path) -> Result<Watcher> {
        let config = Config::load(config_path)?;
        Ok(Watcher {
            config_path: config_path.to_path_buf(),
            config,
            store: Store::open_default(),
            ovs: None,
            ovs_retry_at: None,
            ovs_retry_delay: RESUBSCRIBE_FIRST,
            links: BTreeMap::new(),
            bridges: BTreeMap::new(),
            domains: None,
            unclaimed: BTreeSet::new(),
            guests_moved: false,
            libvirt_events: Vec::new(),
            resubscribe_at: None,
            resubscribe_delay: RESUBSCRIBE_FIRST,
            events_fd: None,
            runs: 0,
        })
    }

    /// The config as far as the host can serve it now: a daemon repairs what it can and says
    /// what it cannot, where `apply` refuses the whole run.
    fn servable(&self, state: &HostState) -> Config {
        let mut c = self.config.clone();
        c.bridges.retain(|name, b| {
            let there = state.bridges.contains_key(name);
            if !there {
                tracing::warn!("{}: bridge {name} does not exist now; waiting for it", b.at);
            }
            there
        });
        for b in c.bridges.values_mut() {
            let name = b.name.clone();
            b.uplinks.retain(|up, hp| {
                let ok = state.bridge_of(up).is_some_and(|x| x.name == name);
                if !ok {
                    tracing::warn!(
                        "{}: uplink {up} is not a port of {name} now; waiting for it",
                        hp.at
                    );
                }
                ok
            });
        }
        let bridges: BTreeSet<String> = c.bridges.keys().cloned().collect();
        c.ports.retain(|p| {
            if p.domain.is_some() {
                return true;
            }
            let ok = state.bridge_of(&p.interface).is_some_and(|b| {
                bridges.contains(&b.name) && p.bridge.as_ref().is_none_or(|w| *w == b.name)
            });
            if !ok {
                tracing::info!(
                    "{}: port {} is not on its managed bridge now",
                    p.at,
                    p.interface
                );
            }
            ok
        });
        c
    }

    /// Guest ports: running domains' (libvirt's view, else the hooks'), asking libvirt again
    /// when a port nobody claims appears on a managed bridge, and recorded guests whose
    /// domain is not known (never stripped for want of knowledge).
    fn guests(&mut self, config: &Config, state: &HostState) -> Vec<GuestPort> {
        if self.domains.is_none() || std::mem::take(&mut self.guests_moved) {
            self.refresh_domains();
        }
        let mut ports = self.resolved(config, state);
        let claimed = |ports: &[GuestPort]| -> BTreeSet<String> {
            ports.iter().map(|p| p.ifname.clone()).collect()
        };
        let unknown: Vec<u32> = config
            .bridges
            .keys()
            .filter_map(|b| state.bridges.get(b))
            .flat_map(|b| b.ports.values())
            .filter(|p| {
                !claimed(&ports).contains(&p.name)
                    && !config
                        .bridges
                        .values()
                        .any(|b| b.uplinks.contains_key(&p.name))
                    && !config.ports.iter().any(|c| c.interface == p.name)
                    && !self.unclaimed.contains(&p.ifindex)
            })
            .map(|p| p.ifindex)
            .collect();
        if !unknown.is_empty() {
            // a miss: maybe a domain we have not seen (or a hot-plug): ask libvirt again
            self.refresh_domains();
            ports = self.resolved(config, state);
            let now = claimed(&ports);
            for i in unknown {
                let name = self.links.get(&i).map(|l| l.0.clone()).unwrap_or_default();
                if !now.contains(&name) {
                    self.unclaimed.insert(i);
                }
            }
        }
        let covered = claimed(&ports);
        match self.store.load_unlocked() {
            Ok(record) => ports.extend(recorded_guests(&record, state, &covered)),
            Err(e) => tracing::error!("{e:#}"),
        }
        ports
    }

    fn resolved(&self, config: &Config, state: &HostState) -> Vec<GuestPort> {
        let Some(view) = &self.domains else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, r) in view.resolve(config) {
            match r {
                Ok(r) => out.extend(
                    r.ports
                        .into_iter()
                        .filter(|p| state.bridge_of(&p.ifname).is_some()),
                ),
                Err(e) => tracing::error!("domain {name}: {e}; its ports are left as they are"),
            }
        }
        out
    }

    fn refresh_domains(&mut self) {
        let view = DomainView::best(&self.store, true);
        for n in &view.notes {
            tracing::info!("{n}");
        }
        if view.from == "libvirt" && self.libvirt_events.is_empty() {
            self.subscribe();
        }
        self.domains = Some(view);
    }

    /// Subscribes to every libvirt driver's domain events (those that answer).
    fn subscribe(&mut self) {
        self.libvirt_events = crate::libvirt_live::uris()
            .iter()
            .filter(|u| crate::libvirt_live::maybe_running_at(u))
            .filter_map(|u| LibvirtEvents::start(u))
            .collect();
    }

    /// Reads the kernel, remembers which links are where, and runs the pipeline over every
    /// managed bridge — on that same read when no notification has come since (one dump per
    /// reaction instead of two). Failures are logged: a daemon keeps going.
    pub fn reconcile(&mut self, why: &str) -> Result<()> {
        let start = Instant::now();
        let managed: BTreeSet<String> = self.config.bridges.keys().cloned().collect();
        let mut sw = HostSwitch::open(&self.config)?;
        let state = sw.read(&managed)?;
        self.links.clear();
        self.bridges.clear();
        for b in state.bridges.values() {
            self.links.insert(b.ifindex, (b.name.clone(), b.ifindex));
            if managed.contains(&b.name) {
                self.bridges.insert(b.ifindex, b.name.clone());
            }
            for p in b.ports.values() {
                self.links.insert(p.ifindex, (p.name.clone(), b.ifindex));
            }
        }
        state.require_vlan_support(&managed)?;
        let config = self.servable(&state);
        let guests = self.guests(&config, &state);
        self.runs += 1;
        sw.reuse_read(state);
        let events_fd = self.events_fd;
        let outcome = session::run_on(
            sw,
            &self.store,
            &config,
            &guests,
            &Scope::Host,
            Mode::Apply,
            &|| events_fd.is_some_and(|fd| !readable(fd)),
        )?;
        let changed = outcome.plan.changed_ports();
        if changed.is_empty() && outcome.plan.settings.is_empty() {
            tracing::debug!("{why}: nothing to do ({:?})", start.elapsed());
        } else {
            tracing::info!(
                "{why}: {} write(s), ports {} ({:.1} ms)",
                outcome.stats.writes,
                changed.into_iter().collect::<Vec<_>>().join(" "),
                start.elapsed().as_secs_f64() * 1000.0
            );
        }
        Ok(())
    }

    /// Reads the libvirt event streams at `ready`; returns why to run, if at all. A stream
    /// that ended means libvirtd went away: every stream is dropped and subscribing again is
    /// scheduled, with a back-off while libvirtd stays away.
    fn libvirt_news(&mut self, ready: &[usize]) -> Option<String> {
        let mut lines = Vec::new();
        let mut ended = false;
        for i in ready {
            let (l, alive) = self.libvirt_events[*i].read();
            lines.extend(l);
            ended |= !alive;
        }
        if ended {
            tracing::info!("libvirt's event stream ended (libvirtd gone?); subscribing again");
            self.libvirt_events.clear();
            // a subscription that ended at once: libvirtd is still away, wait longer
            self.resubscribe_delay = match self.resubscribe_at {
                Some(_) => (self.resubscribe_delay * 2).min(RESUBSCRIBE_MAX),
                None => RESUBSCRIBE_FIRST,
            };
            self.resubscribe_at = Some(Instant::now() + self.resubscribe_delay);
        }
        if lines.is_empty() && !ended {
            return None;
        }
        self.domains = None; // ask again at the next run
        self.unclaimed.clear();
        Some(format!(
            "libvirt: {}",
            lines.last().map_or("went away", |l| l.trim())
        ))
    }

    /// At the resubscribe time: subscribes again if libvirt looks reachable, and if the new
    /// streams are still there a moment later (a failed `virsh event` ends at once), runs a
    /// full resynchronisation from libvirt's live XML — events may have been missed.
    fn libvirt_tick(&mut self) -> Option<String> {
        let at = self.resubscribe_at?;
        if Instant::now() < at {
            return None;
        }
        if self.libvirt_events.is_empty() {
            if crate::libvirt_live::maybe_running() {
                self.subscribe();
            }
            if self.libvirt_events.is_empty() {
                self.resubscribe_delay = (self.resubscribe_delay * 2).min(RESUBSCRIBE_MAX);
            }
            // check the streams again shortly (or try again later)
            self.resubscribe_at = Some(Instant::now() + self.resubscribe_delay);
            return None;
        }
        // the streams held: libvirt is back
        self.resubscribe_at = None;
        self.domains = None;
        self.unclaimed.clear();
        Some("libvirt is back: resynchronising".to_string())
    }

    /// Connects to ovsdb-server and monitors it, if its socket is there. `false` when it is
    /// there but does not answer (try again later).
    fn watch_ovs(&mut self) -> bool {
        let socket = ovsdb_socket(&self.config);
        if !socket.exists() {
            return true;
        }
        match Ovsdb::connect(&socket).and_then(|mut db| db.watch_ports().map(|()| db)) {
            Ok(db) => {
                self.ovs = Some(db);
                true
            }
            Err(e) => {
                tracing::warn!("cannot watch Open vSwitch: {e}");
                false
            }
        }
    }

    /// Reads ovsdb-server's notifications; returns why to run, if at all. A connection that
    /// ended schedules connecting again, with a back-off while the server stays away.
    fn ovs_news(&mut self) -> Option<String> {
        let db = self.ovs.as_mut()?;
        match db.drain_updates(Duration::from_millis(5)) {
            Ok(0) => None,
            Ok(n) => Some(format!("Open vSwitch: {n} change(s)")),
            Err(e) => {
                tracing::info!("{e}; connecting again");
                self.ovs = None;
                self.ovs_retry_delay = RESUBSCRIBE_FIRST;
                self.ovs_retry_at = Some(Instant::now() + self.ovs_retry_delay);
                None
            }
        }
    }

    /// At the reconnect time: connects again; once it holds, a full resynchronisation
    /// (changes made while it was away were not seen).
    fn ovs_tick(&mut self) -> Option<String> {
        let at = self.ovs_retry_at?;
        if Instant::now() < at {
            return None;
        }
        if self.watch_ovs() && self.ovs.is_some() {
            self.ovs_retry_at = None;
            tracing::info!("Open vSwitch is back: resynchronising");
            return Some("Open vSwitch is back".to_string());
        }
        self.ovs_retry_delay = (self.ovs_retry_delay * 2).min(RESUBSCRIBE_MAX);
        self.ovs_retry_at = Some(Instant::now() + self.ovs_retry_delay);
        None
    }

    /// Whether a notification can mean something is not as it should be.
    fn relevant(&mut self, c: &LinkChange, record: &crate::ownership::Record) -> bool {
        if c.deleted {
            let was = self.links.remove(&c.ifindex);
            return was.is_some_and(|(_, m)| self.bridges.contains_key(&m));
        }
        let name = c.name.clone().unwrap_or_default();
        // a managed bridge (re)appearing
        if self.config.bridges.contains_key(&name) && !self.bridges.contains_key(&c.ifindex) {
            return true;
        }
        let master = c.master.unwrap_or(0);
        let before = self.links.insert(c.ifindex, (name.clone(), master));
        if !c.bridge_family {
            // enslaved or released: a port joined or left a managed bridge
            let old = before.map_or(0, |(_, m)| m);
            let moved = old != master
                && (self.bridges.contains_key(&old) || self.bridges.contains_key(&master));
            // a guest's tap taken off and put back (libvirt's update-device): its domain's
            // live XML may have changed with it
            if moved
                && let Some(bridge) = self.bridges.get(&master)
                && record
                    .get(bridge, &name)
                    .is_some_and(|r| r.ifindex == c.ifindex && r.origin.domain.is_some())
            {
                self.guests_moved = true;
            }
            return moved;
        }
        // a bridge notification: a port's (or a bridge's own) VLANs or state changed
        if !self.bridges.contains_key(&master) {
            return false;
        }
        let bridge = &self.bridges[&master];
        match (record.get(bridge, &name), &c.vlans) {
            // ours: only a change away from what we wanted matters (our own writes match) —
            // and, on a guest's tap, any VID appearing beside it: libvirt ≥ 11 writes a
            // changed `<vlan>` there itself (update-device, hot-plug), and the guest's
            // live XML says whether that is libvirt's (replaced) or a person's (kept)
            (Some(r), Some(v)) if r.ifindex == c.ifindex => {
                let ours = r.desired.members().union(&r.owned);
                let changed = v.restricted_to(&ours) != r.desired;
                let guest = r.role == crate::intent::Role::Guest && r.origin.domain.is_some();
                if changed || (guest && !v.members().is_subset(&ours)) {
                    self.guests_moved |= guest;
                    true
                } else {
                    false
                }
            }
            // someone else's port (not ours, not configured): a VLAN change there is theirs
            (None, Some(_)) => {
                self.config
                    .bridges
                    .get(bridge)
                    .is_some_and(|b| b.uplinks.contains_key(&name))
                    || self.config.ports.iter().any(|p| p.interface == name)
            }
            _ => true,
        }
    }
}

/// Runs the watcher until SIGTERM/SIGINT (or once, with `once`).
pub fn run(config_path: &Path, once: bool) -> Result<()> {
    let mut signals = Signals::register()?;
    let mut w = Watcher::new(config_path)?;
    let mut events = LinkEvents::subscribe()?;
    w.events_fd = Some(events.fd());
    if once {
        return w.reconcile("once");
    }
    if !w.watch_ovs() {
        w.ovs_retry_at = Some(Instant::now() + w.ovs_retry_delay);
    }
    if let Err(e) = w.reconcile("start") {
        tracing::error!("start: {e:#}");
    }
    tracing::info!("watching {} bridge(s)", w.config.bridges.len());
    loop {
        let mut fds = vec![
            libc::pollfd {
                fd: events.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.reload.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        fds.extend(w.libvirt_events.iter().map(|e| libc::pollfd {
            fd: e.fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        let ovs_at = fds.len();
        if let Some(db) = &w.ovs {
            fds.push(libc::pollfd {
                fd: db.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // wake without an event only to subscribe to libvirt, or connect to ovsdb-server,
        // again (see `libvirt_tick`, `ovs_tick`)
        let wake = [w.resubscribe_at, w.ovs_retry_at]
            .into_iter()
            .flatten()
            .min();
        let timeout = wake.map_or(-1, |at| {
            at.saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32
        });
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("poll failed");
        }
        if fds[1].revents != 0 || fds[2].revents != 0 {
            match signals.take() {
                Some(Asked::Reload) => match Config::load(&w.config_path) {
                    Ok(c) => {
                        tracing::info!("SIGHUP: config {} reloaded", w.config_path.display());
                        w.config = c;
                        w.unclaimed.clear();
                        if let Err(e) = w.reconcile("config reloaded") {
                            tracing::error!("{e:#}");
                        }
                    }
                    Err(e) => tracing::error!("SIGHUP: keeping the old config: {e:#}"),
                },
                Some(Asked::Stop) => {
                    tracing::info!("asked to stop: exiting after {} run(s)", w.runs);
                    return Ok(());
                }
                None => {}
            }
        }
        let mut why: Option<String> = None;
        let ready: Vec<usize> = (0..w.libvirt_events.len())
            .filter(|i| fds[3 + i].revents != 0)
            .collect();
        if !ready.is_empty() {
            why = w.libvirt_news(&ready);
        }
        if why.is_none() {
            why = w.libvirt_tick();
        }
        if fds.get(ovs_at).is_some_and(|f| f.revents != 0) {
            why = w.ovs_news().or(why);
        }
        if why.is_none() {
            why = w.ovs_tick();
        }
        if fds[0].revents != 0 {
            why = collect(&mut w, &mut events, why)?;
        }
        if let Some(why) = why
            && let Err(e) = w.reconcile(&why)
        {
            tracing::error!("{why}: {e:#}");
        }
    }
}

/// Whether `fd` has something to read now.
fn readable(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    unsafe { libc::poll(&mut pfd, 1, 0) != 0 }
}

/// Reads notifications, and after the first relevant one every notification already queued,
/// and in a burst those that follow (see [`QUIET`]). Returns why to run, if at all.
fn collect(
    w: &mut Watcher,
    events: &mut LinkEvents,
    mut why: Option<String>,
) -> Result<Option<String>> {
    let record = w.store.load_unlocked().unwrap_or_default();
    let mut batch = events.read()?;
    let started = Instant::now();
    let mut seen = 0usize;
    // the links whose notifications were relevant: more than one is a burst
    let mut moved = BTreeSet::new();
    loop {
        for e in batch {
            seen += 1;
            match e {
                Event::Overrun => {
                    tracing::warn!("netlink notifications were dropped (ENOBUFS): resynchronising");
                    why.get_or_insert_with(|| "resync after overrun".to_string());
                }
                Event::Link(c) => {
                    if w.relevant(&c, &record) {
                        moved.insert(c.ifindex);
                        why.get_or_insert_with(|| describe(&c));
                    }
                }
            }
        }
        if why.is_none() {
            return Ok(None);
        }
        let left = MAX_COALESCE.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        batch = events.read()?;
        if batch.is_empty() {
            if moved.len() < 2 {
                break;
            }
            batch = events.wait(Some(QUIET.min(left)))?;
            if batch.is_empty() {
                break;
            }
        }
    }
    Ok(why.map(|w| {
        if seen > 1 {
            format!("{w} (+{} notifications)", seen - 1)
        } else {
            w
        }
    }))
}

fn describe(c: &LinkChange) -> String {
    let name = c
        .name
        .clone()
        .unwrap_or_else(|| format!("ifindex {}", c.ifindex));
    match (c.deleted, c.bridge_family) {
        (true, _) => format!("{name} went away"),
        (false, true) => format!("{name}: bridge port changed"),
        (false, false) => format!("{name}: link changed"),
    }
}
