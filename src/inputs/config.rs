//! The TOML config a user writes: managed bridges (settings, uplinks, the bridge's own port,
//! guest policy) and static guest ports. Reading it checks everything that can be checked
//! without the kernel, and every complaint names the file, the line and the key.

use crate::netdev::{check_ifname, parse_mac};
use crate::port_vlans::{Native, PortVlans};
use crate::vid::{VidSet, check_vid};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use toml::Spanned;

/// Where the config file lives unless `--config` or `VIRT_VLAN_CONFIG` say otherwise.
pub const DEFAULT_PATH: &str = "/etc/virt-vlan/virt-vlan.toml";

/// A place in the config file, printed as `file:line`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Bad config: the message already names file, line and key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The Ethertype a bridge tags with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum VlanProtocol {
    #[serde(rename = "802.1Q")]
    Dot1Q,
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

impl VlanProtocol {
    pub fn ethertype(self) -> u16 {
        match self {
            VlanProtocol::Dot1Q => 0x8100,
            VlanProtocol::Dot1Ad => 0x88a8,
        }
    }

    pub fn from_ethertype(t: u16) -> Option<Self> {
        match t {
            0x8100 => Some(VlanProtocol::Dot1Q),
            0x88a8 => Some(VlanProtocol::Dot1Ad),
            _ => None,
        }
    }
}

impl fmt::Display for VlanProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VlanProtocol::Dot1Q => "802.1Q",
            VlanProtocol::Dot1Ad => "802.1ad",
        })
    }
}

/// What a hook does when a guest's VLANs cannot be applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Refuse to start the guest (libvirt honours the hook's non-zero exit).
    #[default]
    Abort,
    /// Strip the port to no VLAN at all and let the guest start, cut off.
    Isolate,
    /// Log and let the guest start with whatever the port has.
    Warn,
}

/// The whole validated config.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: String,
    pub bridges: BTreeMap<String, BridgeConfig>,
    pub ports: Vec<PortConfig>,
    pub hooks: HookConfig,
    /// `[ovs] socket`: where ovsdb-server listens, when not Debian's default.
    pub ovs_socket: Option<String>,
}

/// One managed bridge.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    pub name: String,
    pub vlan_filtering: bool,
    /// `Some(0)`: a newly enslaved port gets no VLAN. `None`: leave the kernel's value.
    pub default_pvid: Option<u16>,
    /// `None`: leave the kernel's value.
    pub vlan_protocol: Option<VlanProtocol>,
    /// VIDs guest ports on this bridge may be given.
    pub allowed: VidSet,
    pub self_port: Option<HostPort>,
    pub uplinks: BTreeMap<String, HostPort>,
    pub at: Place,
}

/// The bridge's own port or an uplink.
#[derive(Clone, Debug)]
pub struct HostPort {
    pub vlans: PortVlans,
    /// Also carry every VID a guest port on this bridge uses.
    pub on_demand: bool,
    pub at: Place,
}

/// A static guest port from `[[ports]]`.
#[derive(Clone, Debug)]
pub struct PortConfig {
    /// A netdev name; with `domain`, also the guest interface's MAC or alias.
    pub interface: String,
    pub domain: Option<String>,
    /// The bridge the port must be on, when the user said so.
    pub bridge: Option<String>,
    pub vlans: PortVlans,
    pub at: Place,
}

/// `[hooks]`: how libvirt hooks behave.
#[derive(Clone, Debug)]
pub struct HookConfig {
    pub on_error: OnError,
    /// Seconds a kvmvlan-style dispatcher script may run.
    pub script_timeout: u64,
    /// Seconds the port-created helper waits for libvirt to plug the tap in.
    pub port_wait: u64,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            on_error: OnError::Abort,
            script_timeout: 30,
            port_wait: 30,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    bridges: BTreeMap<Spanned<String>, Spanned<RawBridge>>,
    #[serde(default)]
    ports: Vec<Spanned<RawPort>>,
    #[serde(default)]
    hooks: Option<RawHooks>,
    #[serde(default)]
    ovs: Option<RawOvs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOvs {
    socket: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBridge {
    vlan_filtering: Option<bool>,
    default_pvid: Option<Spanned<u64>>,
    vlan_protocol: Option<Spanned<String>>,
    allowed: Option<VidSet>,
    #[serde(rename = "self")]
    self_port: Option<Spanned<RawHostPort>>,
    #[serde(default)]
    uplinks: BTreeMap<Spanned<String>, Spanned<RawHostPort>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostPort {
    pvid: Option<Spanned<u64>>,
    #[serde(default)]
    untagged: VidSet,
    #[serde(default)]
    tagged: VidSet,
    #[serde(default)]
    native: Native,
    #[serde(default)]
    on_demand: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    interface: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    bridge: Option<Spanned<String>>,
    pvid: Option<Spanned<u64>>,
    #[serde(default)]
    untagged: VidSet,
    #[serde(default)]
    tagged: VidSet,
    #[serde(default)]
    native: Native,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    on_error: Option<OnError>,
    script_timeout: Option<Spanned<u64>>,
    port_wait: Option<Spanned<u64>>,
}

/// Longest `[hooks]` wait, in seconds: a day. Anything longer is a typo, and a deadline that
/// far out cannot even be computed.
pub const MAX_HOOK_WAIT: u64 = 86_400;

impl Config {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let f = std::fs::File::open(path)
            .map_err(|e| ConfigError(format!("{file}: cannot read config: {e}")))?;
        let text =
            crate::text::read_limited(f, &file, crate::text::MAX_FILE).map_err(ConfigError)?;
        Config::parse(&file, &text)
    }

    /// Validates config text; `file` only names it in messages.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        let src = Source {
            file,
            text,
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            src.error(offset, e.message().trim_end())
        })?;
        let mut bridges = BTreeMap::new();
        for (name, bridge) in raw.bridges {
            let at = src.place(name.span().start);
            let name = name.into_inner();
            check_ifname(&name)
                .map_err(|e| src.error(bridge.span().start, &format!("bridge name: {e}")))?;
            let b = src.bridge(&name, bridge, at)?;
            bridges.insert(name, b);
        }
        let mut ports = Vec::new();
        for port in raw.ports {
            ports.push(src.port(port, &bridges)?);
        }
        let d = HookConfig::default();
        let hooks = match raw.hooks {
            None => d,
            Some(h) => HookConfig {
                on_error: h.on_error.unwrap_or(d.on_error),
                script_timeout: src.seconds(h.script_timeout)?.unwrap_or(d.script_timeout),
                port_wait: src.seconds(h.port_wait)?.unwrap_or(d.port_wait),
            },
        };
        let config = Config {
            path: file.to_string(),
            bridges,
            ports,
            hooks,
            ovs_socket: raw.ovs.and_then(|o| o.socket),
        };
        config.check_cross_references()?;
        Ok(config)
    }

    /// The bridge whose `allowed` policy a static port is checked against before the kernel is
    /// asked: the one the port names, else the only managed bridge.
    fn static_bridge_of<'a>(
        bridges: &'a BTreeMap<String, BridgeConfig>,
        port_bridge: Option<&str>,
    ) -> Option<&'a BridgeConfig> {
        match port_bridge {
            Some(b) => bridges.get(b),
            None if bridges.len() == 1 => bridges.values().next(),
            None => None,
        }
    }

    /// Checks that need the whole file: one role per interface, one entry per port.
    fn check_cross_references(&self) -> Result<(), ConfigError> {
        let mut uplink_of: BTreeMap<&str, (&str, &Place)> = BTreeMap::new();
        for b in self.bridges.values() {
            if b.uplinks.contains_key(&b.name) {
                let at = &b.uplinks[&b.name].at;
                return Err(ConfigError(format!(
                    "{at}: bridges.{0}.uplinks.{0}: a bridge cannot be its own uplink; \
                     use [bridges.{0}.self] for the bridge's own port",
                    b.name
                )));
            }
            for (name, up) in &b.uplinks {
                if self.bridges.contains_key(name) {
                    return Err(ConfigError(format!(
                        "{}: bridges.{}.uplinks.{name}: {name} is a managed bridge, not a port",
                        up.at, b.name
                    )));
                }
                if let Some((other, at)) = uplink_of.insert(name, (&b.name, &up.at)) {
                    return Err(ConfigError(format!(
                        "{}: bridges.{}.uplinks.{name}: {name} is already an uplink of {other} at {at}",
                        up.at, b.name
                    )));
                }
            }
        }
        let mut seen: BTreeMap<(Option<&str>, &str), &Place> = BTreeMap::new();
        for p in &self.ports {
            if p.domain.is_none() {
                if let Some((bridge, at)) = uplink_of.get(p.interface.as_str()) {
                    return Err(ConfigError(format!(
                        "{}: ports.interface: {} is already an uplink of {bridge} at {at}",
                        p.at, p.interface
                    )));
                }
                if self.bridges.contains_key(&p.interface) {
                    return Err(ConfigError(format!(
                        "{}: ports.interface: {} is a managed bridge; use [bridges.{}.self]",
                        p.at, p.interface, p.interface
                    )));
                }
            }
            let key = (p.domain.as_deref(), p.interface.as_str());
            if let Some(first) = seen.insert(key, &p.at) {
                return Err(ConfigError(format!(
                    "{}: ports.interface: {} is already configured at {first}",
                    p.at, p.interface
                )));
            }
        }
        Ok(())
    }

    /// Static ports that belong to `domain` (none when `domain` is `None`: ports of no domain).
    pub fn ports_of_domain<'a>(
        &'a self,
        domain: Option<&'a str>,
    ) -> impl Iterator<Item = &'a PortConfig> + 'a {
        self.ports
            .iter()
            .filter(move |p| p.domain.as_deref() == domain)
    }
}

/// The text being read, for turning byte offsets into `file:line` and key paths.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
    /// Where each line starts: a place is a binary search, not a count of the newlines
    /// before it (which made a config with thousands of ports quadratic to read).
    line_starts: Vec<usize>,
}

impl Source<'_> {
    fn place(&self, offset: usize) -> Place {
        Place {
            file: self.file.to_string(),
            line: self.line_starts.partition_point(|s| *s <= offset),
        }
    }

    /// `file:line: [table] key: message`, the key path read off the text around `offset`.
    fn error(&self, offset: usize, message: &str) -> ConfigError {
        let place = self.place(offset);
        let lines: Vec<&str> = self.text.lines().collect();
        let here = lines.get(place.line - 1).copied().unwrap_or("").trim();
        let table = lines[..place.line.min(lines.len())]
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
        let key = here
            .split_once('=')
            .map(|(k, _)| k.trim())
            .filter(|k| !k.starts_with('['));
        let path = match (table, key) {
            (Some(t), Some(k)) => format!("{t}.{k}"),
            (Some(t), None) => t.to_string(),
            (None, Some(k)) => k.to_string(),
            (None, None) => String::new(),
        };
        // a hostile key may be megabytes long (and the TOML reader's message repeat it):
        // name its start
        let cut = |s: String, n: usize| match s.char_indices().nth(n) {
            Some((at, _)) => format!("{}…", &s[..at]),
            None => s,
        };
        let path = cut(path, 80);
        let message = cut(message.to_string(), 400);
        if path.is_empty() {
            ConfigError(format!("{place}: {message}"))
        } else {
            ConfigError(format!("{place}: {path}: {message}"))
        }
    }

    /// A `[hooks]` duration in seconds, at most [`MAX_HOOK_WAIT`].
    fn seconds(&self, v: Option<Spanned<u64>>) -> Result<Option<u64>, ConfigError> {
        match v {
            Some(v) if *v.get_ref() > MAX_HOOK_WAIT => Err(self.error(
                v.span().start,
                &format!(
                    "{} seconds is more than a day ({MAX_HOOK_WAIT}); refused",
                    v.get_ref()
                ),
            )),
            v => Ok(v.map(Spanned::into_inner)),
        }
    }

    fn vid(&self, v: &Spanned<u64>, allow_zero: bool) -> Result<u16, ConfigError> {
        if allow_zero && *v.get_ref() == 0 {
            return Ok(0);
        }
        check_vid(*v.get_ref()).map_err(|e| self.error(v.span().start, &e.to_string()))
    }

    fn port_vlans(
        &self,
        pvid: Option<&Spanned<u64>>,
        native: Native,
        untagged: VidSet,
        tagged: VidSet,
        at: usize,
    ) -> Result<PortVlans, ConfigError> {
        let pvid = pvid.map(|p| self.vid(p, false)).transpose()?;
        PortVlans::build(pvid, native, untagged, tagged).map_err(|e| self.error(at, &e))
    }

    fn host_port(&self, raw: Spanned<RawHostPort>) -> Result<HostPort, ConfigError> {
        let at = raw.span().start;
        let r = raw.into_inner();
        Ok(HostPort {
            vlans: self.port_vlans(r.pvid.as_ref(), r.native, r.untagged, r.tagged, at)?,
            on_demand: r.on_demand,
            at: self.place(at),
        })
    }

    fn bridge(
        &self,
        name: &str,
        raw: Spanned<RawBridge>,
        at: Place,
    ) -> Result<BridgeConfig, ConfigError> {
        let r = raw.into_inner();
        let default_pvid = r
            .default_pvid
            .as_ref()
            .map(|v| self.vid(v, true))
            .transpose()?;
        let vlan_protocol = r
            .vlan_protocol
            .map(|p| match p.get_ref().as_str() {
                "802.1Q" | "802.1q" => Ok(VlanProtocol::Dot1Q),
                "802.1ad" | "802.1AD" => Ok(VlanProtocol::Dot1Ad),
                other => Err(self.error(
                    p.span().start,
                    &format!("`{other}` is not a VLAN protocol; use \"802.1Q\" or \"802.1ad\""),
                )),
            })
            .transpose()?;
        let self_port = r.self_port.map(|s| self.host_port(s)).transpose()?;
        let mut uplinks = BTreeMap::new();
        for (uname, up) in r.uplinks {
            check_ifname(uname.get_ref())
                .map_err(|e| self.error(uname.span().start, &format!("uplink name: {e}")))?;
            uplinks.insert(uname.into_inner(), self.host_port(up)?);
        }
        Ok(BridgeConfig {
            name: name.to_string(),
            vlan_filtering: r.vlan_filtering.unwrap_or(true),
            default_pvid,
            vlan_protocol,
            allowed: r.allowed.unwrap_or_else(VidSet::all),
            self_port,
            uplinks,
            at,
        })
    }

    fn port(
        &self,
        raw: Spanned<RawPort>,
        bridges: &BTreeMap<String, BridgeConfig>,
    ) -> Result<PortConfig, ConfigError> {
        let start = raw.span().start;
        let r = raw.into_inner();
        let interface = r
            .interface
            .ok_or_else(|| self.error(start, "missing key `interface`"))?;
        let domain = r
            .domain
            .map(|d| {
                if d.get_ref().trim().is_empty() || d.get_ref().contains(['/', '\n', '\0']) {
                    Err(self.error(d.span().start, "domain: not a libvirt domain name"))
                } else {
                    Ok(d.into_inner())
                }
            })
            .transpose()?;
        let iface = interface.get_ref();
        // With a domain, the interface may also be named by MAC or alias.
        let ok = match &domain {
            Some(_) if parse_mac(iface).is_some() => Ok(()),
            _ => check_ifname(iface),
        };
        ok.map_err(|e| self.error(interface.span().start, &e))?;
        let bridge = match r.bridge {
            Some(b) if !bridges.contains_key(b.get_ref()) => {
                return Err(self.error(
                    b.span().start,
                    &format!(
                        "bridge {} is not a managed bridge ([bridges.{}])",
                        b.get_ref(),
                        b.get_ref()
                    ),
                ));
            }
            b => b.map(Spanned::into_inner),
        };
        let vlans = self.port_vlans(r.pvid.as_ref(), r.native, r.untagged, r.tagged, start)?;
        if let Some(b) = Config::static_bridge_of(bridges, bridge.as_deref()) {
            let outside = vlans.members().difference(&b.allowed);
            if !outside.is_empty() {
                let key_at = r
                    .pvid
                    .as_ref()
                    .filter(|p| outside.contains(*p.get_ref() as u16))
                    .map_or(start, |p| p.span().start);
                return Err(self.error(
                    key_at,
                    &format!(
                        "VID {outside} is outside bridge {}'s allowed VIDs ({})",
                        b.name, b.allowed
                    ),
                ));
            }
        }
        Ok(PortConfig {
            interface: interface.into_inner(),
            domain,
            bridge,
            vlans,
            at: self.place(start),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[bridges.br0]
vlan_filtering = true      # switch it on (default true)
default_pvid = 0           # VID a newly enslaved port gets; 0 = none
vlan_protocol = "802.1Q"   # or "802.1ad"
allowed = "1-4094"         # VIDs guests on this bridge may be given
[bridges.br0.self]         # the bridge's own port: the host's access
pvid = 1
tagged = "200"
[bridges.br0.uplinks.eth0] # trunk towards the physical switch
pvid = 1
tagged = "100,200,300"
on_demand = true
[[ports]]
interface = "veth0"
pvid = 100
tagged = "200,300"
native = "untagged"
[ovs]
socket = "/run/openvswitch/db.sock"
"#;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse("t.toml", text).map_err(|e| e.0)
    }

    fn s(x: &str) -> VidSet {
        x.parse().unwrap()
    }

    #[test]
    fn reads_the_readme_example() {
        let c = parse(EXAMPLE).unwrap();
        let b = &c.bridges["br0"];
        assert!(b.vlan_filtering);
        assert_eq!(b.default_pvid, Some(0));
        assert_eq!(b.vlan_protocol, Some(VlanProtocol::Dot1Q));
        assert_eq!(b.allowed, VidSet::all());
        let me = b.self_port.as_ref().unwrap();
        assert_eq!(me.vlans.pvid, Some(1));
        assert_eq!(me.vlans.tagged, s("200"));
        let up = &b.uplinks["eth0"];
        assert!(up.on_demand);
        assert_eq!(up.vlans.tagged, s("100,200,300"));
        assert_eq!(up.at.line, 10);
        assert_eq!(c.ports.len(), 1);
        assert_eq!(c.ports[0].interface, "veth0");
        assert_eq!(c.ovs_socket.as_deref(), Some("/run/openvswitch/db.sock"));
        assert_eq!(
            c.ports[0].vlans.to_string(),
            "pvid 100 untagged 100 tagged 200,300"
        );
        assert_eq!(c.ports[0].at.line, 14);
        assert_eq!(c.hooks.on_error, OnError::Abort);
    }

    #[test]
    fn defaults_leave_the_kernel_alone() {
        let c = parse("[bridges.br1]\n").unwrap();
        let b = &c.bridges["br1"];
        assert!(b.vlan_filtering);
        assert_eq!(b.default_pvid, None);
        assert_eq!(b.vlan_protocol, None);
        assert!(b.self_port.is_none() && b.uplinks.is_empty());
        assert!(parse("").unwrap().bridges.is_empty());
    }

    /// Every bad input names file, line and the offending key.
    #[test]
    fn bad_input_names_file_line_and_key() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "[bridges.br0]\nvlan_filterin = true\n",
                "t.toml:2:",
                &["vlan_filterin", "unknown field"],
            ),
            (
                "[bridges.br0]\nvlan_filtering = \"yes\"\n",
                "t.toml:2:",
                &["bridges.br0.vlan_filtering"],
            ),
            (
                "[bridges.br0.uplinks.eth0]\ntagged = \"100,4095\"\n",
                "t.toml:2:",
                &["bridges.br0.uplinks.eth0.tagged", "4095"],
            ),
            (
                "[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 0\n",
                "t.toml:4:",
                &["ports.pvid", "VID 0"],
            ),
            (
                "[bridges.br0]\n[[ports]]\ninterface = \"v0\"\ntagged = \"20-10\"\n",
                "t.toml:4:",
                &["ports.tagged", "reversed"],
            ),
            (
                "[bridges.br0]\n[[ports]]\ninterface = \"v0\"\ntagged = \"1-10,5\"\n",
                "t.toml:4:",
                &["ports.tagged", "listed twice"],
            ),
            (
                "[bridges.br0]\ndefault_pvid = 4095\n",
                "t.toml:2:",
                &["bridges.br0.default_pvid", "4095"],
            ),
            (
                "[bridges.br0]\nvlan_protocol = \"802.1x\"\n",
                "t.toml:2:",
                &["vlan_protocol", "802.1x"],
            ),
            (
                "[bridges.br0]\n[[ports]]\ninterface = \"averyveryverylongname\"\n",
                "t.toml:3:",
                &["ports.interface", "15 bytes"],
            ),
            (
                "[bridges.br0]\n[[ports]]\ninterface = \"a/b\"\n",
                "t.toml:3:",
                &["ports.interface", "/"],
            ),
            (
                "[bridges.br0]\n[[ports]]\ninterface = \"a b\"\n",
                "t.toml:3:",
                &["ports.interface", "whitespace"],
            ),
            (
                "[bridges.\"a b\"]\n",
                "t.toml:1:",
                &["bridge name", "whitespace"],
            ),
            (
                "[bridges.br0.uplinks.\"e/0\"]\n",
                "t.toml:1:",
                &["uplink name", "/"],
            ),
            (
                "[bridges.br0]\nallowed = \"100-199\"\n[[ports]]\ninterface = \"v0\"\npvid = 200\n",
                "t.toml:5:",
                &["ports.pvid", "200", "allowed"],
            ),
            (
                "[bridges.br0]\n[[ports]]\npvid = 2\n",
                "t.toml:2:",
                &["interface"],
            ),
            (
                "[bridges.br0]\n[[ports]]\ninterface = \"v0\"\nbridge = \"br9\"\n",
                "t.toml:4:",
                &["ports.bridge", "br9"],
            ),
            (
                "[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 5\ntagged = \"5\"\n",
                "t.toml:2:",
                &["pvid 5"],
            ),
            ("bridges = 3\n", "t.toml:1:", &["bridges"]),
            ("[bridges.br0\n", "t.toml:1:", &[]),
            (
                "[bridges.br0.uplinks.eth0]\n[bridges.br1.uplinks.eth0]\n",
                "t.toml:2:",
                &["eth0 is already an uplink of br0 at t.toml:1"],
            ),
            (
                "[bridges.br0.uplinks.eth0]\n[[ports]]\ninterface = \"eth0\"\n",
                "t.toml:2:",
                &["already an uplink"],
            ),
            (
                "[bridges.br0]\n[[ports]]\ninterface = \"v0\"\n[[ports]]\ninterface = \"v0\"\n",
                "t.toml:4:",
                &["already configured at t.toml:2"],
            ),
            ("[bridges.br0.uplinks.br0]\n", "t.toml:1:", &["own uplink"]),
            (
                "[hooks]\non_error = \"explode\"\n",
                "t.toml:2:",
                &["hooks.on_error"],
            ),
        ];
        for (text, place, needles) in cases {
            let e = parse(text).expect_err(text);
            assert!(e.starts_with(place), "{text:?} -> {e}");
            for n in *needles {
                assert!(e.contains(n), "{text:?} -> {e} (wanted {n})");
            }
        }
    }

    #[test]
    fn allowed_is_checked_only_where_the_bridge_is_known() {
        // two bridges, no `bridge` key: the kernel decides which bridge, so it is checked later
        let c = parse(
            "[bridges.br0]\nallowed = \"1-10\"\n[bridges.br1]\n[[ports]]\ninterface = \"v0\"\npvid = 20\n",
        )
        .unwrap();
        assert_eq!(c.ports[0].bridge, None);
        let e = parse(
            "[bridges.br0]\nallowed = \"1-10\"\n[bridges.br1]\n[[ports]]\ninterface = \"v0\"\nbridge = \"br0\"\ntagged = \"5-20\"\n",
        )
        .unwrap_err();
        assert!(e.contains("VID 11-20 is outside bridge br0"), "{e}");
    }

    #[test]
    fn domain_ports_may_be_named_by_mac_or_alias() {
        let c = parse(
            "[bridges.br0]\n[[ports]]\ndomain = \"vm1\"\ninterface = \"52:54:00:12:34:56\"\npvid = 5\n\
             [[ports]]\ndomain = \"vm1\"\ninterface = \"net1\"\npvid = 6\n",
        )
        .unwrap();
        assert_eq!(c.ports_of_domain(Some("vm1")).count(), 2);
        assert_eq!(c.ports_of_domain(None).count(), 0);
        // a MAC is not a netdev name without a domain
        assert!(parse("[[ports]]\ninterface = \"52:54:00:12:34:56\"\n").is_err());
    }

    #[test]
    fn hooks_section() {
        let c = parse("[hooks]\non_error = \"isolate\"\nscript_timeout = 5\n").unwrap();
        assert_eq!(c.hooks.on_error, OnError::Isolate);
        assert_eq!(c.hooks.script_timeout, 5);
        assert_eq!(c.hooks.port_wait, 30);
    }
}
