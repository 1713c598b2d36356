//! `virt-vlan import kvmvlan`: reads kvmvlan's `bridge_init.conf` (bridges, one trunk port,
//! the bridge's PVID) and `vlan_filtering.conf` (guest tap names, guest, PVID, tagged VIDs) —
//! Python ConfigParser INI files — and writes the equivalent virt-vlan TOML.

use crate::config::Config;
use crate::error::BadInput;
use crate::netdev::check_ifname;
use crate::vid::{VidSet, check_vid};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One INI section: key → (value, line).
type Section = BTreeMap<String, (String, usize)>;

/// A parsed INI file: `[DEFAULT]` apart, other sections in file order.
struct Ini {
    file: String,
    defaults: Section,
    sections: Vec<(String, usize, Section)>,
}

impl Ini {
    /// Parses ConfigParser syntax: `[section]`, `key = value` or `key: value`, `#`/`;`
    /// comment lines, inline ` ;`/` #` comments, indented continuation lines.
    fn parse(file: &str, text: &str) -> Result<Ini, BadInput> {
        let mut ini = Ini {
            file: file.to_string(),
            defaults: Section::new(),
            sections: Vec::new(),
        };
        let mut current: Option<usize> = None; // None = before any section; usize::MAX = DEFAULT
        let mut names = std::collections::HashSet::new();
        let mut last_key: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if raw.starts_with([' ', '\t'])
                && let (Some(k), Some(sec)) = (&last_key, current)
            {
                let section = if sec == usize::MAX {
                    &mut ini.defaults
                } else {
                    &mut ini.sections[sec].2
                };
                if let Some((v, _)) = section.get_mut(k) {
                    v.push(' ');
                    v.push_str(strip_inline_comment(trimmed));
                    continue;
                }
            }
            if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                let name = name.trim().to_string();
                if name == "DEFAULT" {
                    current = Some(usize::MAX);
                } else {
                    if !names.insert(name.clone()) {
                        return Err(BadInput(format!(
                            "{file}:{line}: section [{name}] appears twice"
                        )));
                    }
                    ini.sections.push((name, line, Section::new()));
                    current = Some(ini.sections.len() - 1);
                }
                last_key = None;
                continue;
            }
            let Some(pos) = trimmed.find(['=', ':']) else {
                return Err(BadInput(format!(
                    "{file}:{line}: expected `key = value`, found `{trimmed}`"
                )));
            };
            let key = trimmed[..pos].trim().to_lowercase();
            let value = strip_inline_comment(trimmed[pos + 1..].trim()).to_string();
            let section = match current {
                None => {
                    return Err(BadInput(format!(
                        "{file}:{line}: `{key}` before any [section]"
                    )));
                }
                Some(usize::MAX) => &mut ini.defaults,
                Some(s) => &mut ini.sections[s].2,
            };
            section.insert(key.clone(), (value, line));
            last_key = Some(key);
        }
        Ok(ini)
    }

    /// A key of a section, falling back to `[DEFAULT]`, with its line.
    fn get<'a>(&'a self, section: &'a Section, key: &str) -> Option<(&'a str, usize)> {
        section
            .get(key)
            .or_else(|| self.defaults.get(key))
            .map(|(v, l)| (v.as_str(), *l))
    }

    /// Refuses keys kvmvlan does not know (a typo there silently did nothing).
    fn check_keys(&self, name: &str, section: &Section, known: &[&str]) -> Result<(), BadInput> {
        for (k, (_, line)) in section.iter().chain(self.defaults.iter()) {
            if !known.contains(&k.as_str()) {
                let hint = known
                    .iter()
                    .find(|c| close(c, k))
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(BadInput(format!(
                    "{}:{line}: [{name}]: unknown key `{k}`{hint}; kvmvlan knows {}",
                    self.file,
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn vid(&self, value: &str, line: usize, key: &str) -> Result<u16, BadInput> {
        let n: u64 = value.trim().parse().map_err(|_| {
            BadInput(format!(
                "{}:{line}: {key}: `{value}` is not a VID",
                self.file
            ))
        })?;
        check_vid(n).map_err(|e| BadInput(format!("{}:{line}: {key}: {e}", self.file)))
    }

    /// A space-separated VID list (kvmvlan's `trunk-tags`, `tagged`).
    fn vid_list(&self, value: &str, line: usize, key: &str) -> Result<VidSet, BadInput> {
        let mut set = VidSet::new();
        for item in value.split([' ', ',', '\t']).filter(|s| !s.is_empty()) {
            let v = self.vid(item, line, key)?;
            if set.contains(v) {
                return Err(BadInput(format!(
                    "{}:{line}: {key}: VID {v} is listed twice",
                    self.file
                )));
            }
            set.insert(v);
        }
        Ok(set)
    }
}

fn strip_inline_comment(s: &str) -> &str {
    let cut = [" ;", " #", "\t;", "\t#"]
        .iter()
        .filter_map(|m| s.find(m))
        .min();
    cut.map_or(s, |i| &s[..i]).trim()
}

/// Two keys one typo apart (same length, one letter differs).
fn close(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.chars().zip(b.chars()).filter(|(x, y)| x != y).count() == 1
}

/// The TOML being written, and where in kvmvlan's files its lines came from: a complaint of
/// the config reader about the TOML is told about the kvmvlan line instead.
struct Out {
    text: String,
    /// (first TOML line, `file:line` it came from), ascending.
    from: Vec<(usize, String)>,
    /// Lines in `text[..counted]` (counted as it grows: counting all of it each time made a
    /// large import quadratic).
    lines: usize,
    counted: usize,
}

impl Out {
    /// The lines written from now on come from `file:line`.
    fn from(&mut self, file: &str, line: usize) {
        self.lines += self.text[self.counted..].matches('\n').count();
        self.counted = self.text.len();
        self.from.push((self.lines + 1, format!("{file}:{line}")));
    }

    /// `message` with every `(imported config):N` replaced by the kvmvlan place of line N.
    fn locate(&self, message: &str) -> String {
        const NAME: &str = "(imported config):";
        let mut out = String::new();
        let mut rest = message;
        while let Some(i) = rest.find(NAME) {
            out.push_str(&rest[..i]);
            rest = &rest[i + NAME.len()..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let n: usize = rest[..digits].parse().unwrap_or(0);
            let i = self.from.partition_point(|(first, _)| *first <= n);
            match i.checked_sub(1).map(|i| &self.from[i]) {
                Some((_, place)) => out.push_str(place),
                None => out.push_str(&format!("{NAME}{n}")),
            }
            rest = &rest[digits..];
        }
        out.push_str(rest);
        out
    }
}

/// Converts the two kvmvlan files to virt-vlan TOML. Returns the TOML and notes for stderr
/// (sections kvmvlan itself never applied). The TOML is checked by virt-vlan's own config
/// reader before it is returned; what it refuses is named by the kvmvlan file and line.
pub fn import(
    bridge_init: (&str, &str),
    vlan_filtering: (&str, &str),
) -> Result<(String, Vec<String>), BadInput> {
    let bi = Ini::parse(bridge_init.0, bridge_init.1)?;
    let vf = Ini::parse(vlan_filtering.0, vlan_filtering.1)?;
    let mut notes = Vec::new();
    let mut out = Out {
        text: String::new(),
        from: Vec::new(),
        lines: 0,
        counted: 0,
    };
    let _ = writeln!(
        out.text,
        "# virt-vlan config imported from kvmvlan\n#   {}\n#   {}\n# kvmvlan switched vlan_filtering on and left default_pvid alone; so does this.\n",
        one_line(&bi.file),
        one_line(&vf.file)
    );

    for (bridge, line, sec) in &bi.sections {
        bi.check_keys(
            bridge,
            sec,
            &["trunk-port", "trunk-pvid", "trunk-tags", "br-pvid"],
        )?;
        check_ifname(bridge)
            .map_err(|e| BadInput(format!("{}:{line}: [{bridge}]: {e}", bi.file)))?;
        let key = toml_key(bridge);
        out.from(&bi.file, *line);
        let _ = writeln!(out.text, "[bridges.{key}]\nvlan_filtering = true\n");
        if let Some((v, l)) = bi.get(sec, "br-pvid").filter(|(v, _)| !v.is_empty()) {
            let pvid = bi.vid(v, l, "br-pvid")?;
            out.from(&bi.file, l);
            let _ = writeln!(out.text, "[bridges.{key}.self]\npvid = {pvid}\n");
        }
        match bi.get(sec, "trunk-port").filter(|(v, _)| !v.is_empty()) {
            None => {
                notes.push(format!(
                    "{}:{line}: [{bridge}] has no trunk-port; kvmvlan skipped its trunk, so there is no uplink",
                    bi.file
                ));
            }
            Some((port, l)) => {
                check_ifname(port)
                    .map_err(|e| BadInput(format!("{}:{l}: trunk-port: {e}", bi.file)))?;
                out.from(&bi.file, l);
                let _ = writeln!(out.text, "[bridges.{key}.uplinks.{}]", toml_key(port));
                if let Some((v, l)) = bi.get(sec, "trunk-pvid").filter(|(v, _)| !v.is_empty()) {
                    out.from(&bi.file, l);
                    let _ = writeln!(out.text, "pvid = {}", bi.vid(v, l, "trunk-pvid")?);
                }
                if let Some((v, l)) = bi.get(sec, "trunk-tags") {
                    let tags = bi.vid_list(v, l, "trunk-tags")?;
                    if !tags.is_empty() {
                        out.from(&bi.file, l);
                        let _ = writeln!(out.text, "tagged = \"{tags}\"");
                    }
                }
                out.text.push('\n');
            }
        }
    }

    for (iface, line, sec) in &vf.sections {
        vf.check_keys(iface, sec, &["guest", "pvid", "tagged"])?;
        check_ifname(iface).map_err(|e| BadInput(format!("{}:{line}: [{iface}]: {e}", vf.file)))?;
        let Some((guest, gl)) = vf.get(sec, "guest").filter(|(g, _)| !g.is_empty()) else {
            notes.push(format!(
                "{}:{line}: [{iface}] names no guest; kvmvlan never applied it, so it is not imported",
                vf.file
            ));
            let _ = writeln!(
                out.text,
                "# [{}] from {}:{line} names no guest: not imported\n",
                one_line(iface),
                one_line(&vf.file)
            );
            continue;
        };
        out.from(&vf.file, *line);
        let _ = writeln!(out.text, "[[ports]]");
        out.from(&vf.file, gl);
        let _ = writeln!(out.text, "domain = \"{}\"", toml_escape(guest));
        out.from(&vf.file, *line);
        let _ = writeln!(out.text, "interface = \"{}\"", toml_escape(iface));
        let pvid = match vf.get(sec, "pvid").filter(|(v, _)| !v.is_empty()) {
            Some((v, l)) => Some((vf.vid(v, l, "pvid")?, l)),
            None => None,
        };
        if let Some((p, l)) = pvid {
            out.from(&vf.file, l);
            let _ = writeln!(out.text, "pvid = {p}");
        }
        let pvid = pvid.map(|(p, _)| p);
        if let Some((v, l)) = vf.get(sec, "tagged") {
            let mut tags = vf.vid_list(v, l, "tagged")?;
            if let Some(p) = pvid.filter(|p| tags.contains(*p)) {
                tags.remove(p);
                notes.push(format!(
                    "{}:{l}: [{iface}] lists its pvid {p} in tagged too; kvmvlan left it untagged, so does this",
                    vf.file
                ));
            }
            if !tags.is_empty() {
                out.from(&vf.file, l);
                let _ = writeln!(out.text, "tagged = \"{tags}\"");
            }
        }
        out.text.push('\n');
    }

    Config::parse("(imported config)", &out.text).map_err(|e| {
        BadInput(format!(
            "{} (in the virt-vlan config it converts to)",
            out.locate(&e.to_string())
        ))
    })?;
    Ok((out.text, notes))
}

/// A TOML string's content: quotes, backslashes and control characters escaped.
fn toml_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A TOML key: bare when TOML allows it, else quoted (`eth0.100` is one key, not two).
fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_string()
    } else {
        format!("\"{}\"", toml_escape(s))
    }
}

/// A name for a comment line: a newline in it would end the comment.
fn one_line(s: &str) -> String {
    s.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kvmvlan's own sample files, as shipped.
    const BRIDGE_INIT: &str = "\
############################################################################
# VLAN configuration for bridges
############################################################################

[DEFAULT]
# Physical port of the bridge
trunk-port =
trunk-pvid = 1
trunk-tags =
br-pvid = 1

[br0]
trunk-port = eth0
trunk-pvid = 1
trunk-tags = 200 201 202
br-pvid = 1
";

    const VLAN_FILTERING: &str = "\
[DEFAULT]
# Qemu guest name
guest =
# Interface PVID
pvid = 1
# Space separated list of additional 802.1q tags
tagged =

[veth0]
guest = vm01
pvid = 1
tagged = 400 4

[veth1]
guest = vm02
pvid = 20
tagged = 100 200 300
";

    #[test]
    fn names_that_are_not_bare_toml_keys_are_quoted_and_errors_name_the_ini_line() {
        let (toml, _) = import(
            ("bi.conf", "[br.0]\ntrunk-port = eth0.100\ntrunk-tags = 5\n"),
            ("vf.conf", "[v\"0]\nguest = a\"b\\c\npvid = 5\n"),
        )
        .unwrap();
        let c = Config::parse("x", &toml).unwrap();
        assert_eq!(
            c.bridges["br.0"].uplinks["eth0.100"].vlans.to_string(),
            "tagged 5"
        );
        assert_eq!(c.ports[0].interface, "v\"0");
        assert_eq!(c.ports[0].domain.as_deref(), Some("a\"b\\c"));
        let e = import(
            (
                "bi.conf",
                "[br0]\ntrunk-port = eth0\n\n[br1]\ntrunk-port = eth0\n",
            ),
            ("vf.conf", ""),
        )
        .unwrap_err();
        assert!(
            e.0.starts_with(
                "bi.conf:5: bridges.br1.uplinks.eth0: eth0 is already an uplink of br0 at bi.conf:2"
            ),
            "{}",
            e.0
        );
    }

    #[test]
    fn imports_the_kvmvlan_samples() {
        let (toml, notes) = import(
            ("bridge_init.conf", BRIDGE_INIT),
            ("vlan_filtering.conf", VLAN_FILTERING),
        )
        .unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        let c = Config::parse("x", &toml).unwrap();
        let b = &c.bridges["br0"];
        assert!(b.vlan_filtering);
        assert_eq!(b.default_pvid, None);
        assert_eq!(
            b.self_port.as_ref().unwrap().vlans.to_string(),
            "pvid 1 untagged 1"
        );
        assert_eq!(
            b.uplinks["eth0"].vlans.to_string(),
            "pvid 1 untagged 1 tagged 200-202"
        );
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0].domain.as_deref(), Some("vm01"));
        assert_eq!(c.ports[0].interface, "veth0");
        assert_eq!(
            c.ports[0].vlans.to_string(),
            "pvid 1 untagged 1 tagged 4,400"
        );
        assert_eq!(
            c.ports[1].vlans.to_string(),
            "pvid 20 untagged 20 tagged 100,200,300"
        );
    }

    #[test]
    fn the_sample_typo_quest_is_caught_with_a_hint() {
        let typo = VLAN_FILTERING.replace("guest = vm02", "quest = vm02");
        let e = import(("b", BRIDGE_INIT), ("vlan_filtering.conf", &typo))
            .unwrap_err()
            .0;
        assert!(
            e.starts_with(
                "vlan_filtering.conf:15: [veth1]: unknown key `quest` (did you mean `guest`?)"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_file_and_line() {
        let bad = BRIDGE_INIT.replace("trunk-tags = 200 201 202", "trunk-tags = 200 4095");
        let e = import(("bridge_init.conf", &bad), ("v", VLAN_FILTERING))
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("bridge_init.conf:15: trunk-tags: VID 4095 is reserved"),
            "{e}"
        );
        let bad = VLAN_FILTERING.replace("pvid = 20", "pvid = twenty");
        let e = import(("b", BRIDGE_INIT), ("vf", &bad)).unwrap_err().0;
        assert!(e.starts_with("vf:16: pvid: `twenty` is not a VID"), "{e}");
        let e = import(("b", "[br0]\nnonsense\n"), ("vf", ""))
            .unwrap_err()
            .0;
        assert!(e.starts_with("b:2: expected `key = value`"), "{e}");
        let e = import(("b", "trunk-port = x\n"), ("vf", "")).unwrap_err().0;
        assert!(e.contains("before any [section]"), "{e}");
        let e = import(("b", "[averyveryverylongbridge]\n"), ("vf", ""))
            .unwrap_err()
            .0;
        assert!(e.contains("15 bytes"), "{e}");
    }

    #[test]
    fn sections_kvmvlan_never_applied_are_reported_not_dropped_silently() {
        let (toml, notes) = import(("b", "[br1]\n"), ("vf", "[vnet5]\npvid = 5\n")).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("no trunk-port"));
        assert!(notes[1].contains("names no guest"));
        assert!(toml.contains("# [vnet5] from vf:1 names no guest: not imported"));
    }

    #[test]
    fn names_reach_the_config_as_written() {
        // found by fuzzing: `\u…` in a tap name was decoded by TOML into another name; same
        // cause, seen while fixing it: a `.` in a bridge name split its table
        let (toml, _) = import(
            ("b", "[br.0]\ntrunk-port = e\\th.1\n"),
            ("vf", "[qq\\uEFBC]\nguest = vm\n"),
        )
        .unwrap();
        let c = Config::parse("x", &toml).unwrap();
        assert!(c.bridges["br.0"].uplinks.contains_key("e\\th.1"), "{toml}");
        assert_eq!(c.ports[0].interface, "qq\\uEFBC");
    }

    #[test]
    fn ini_details_inline_comments_colons_continuations() {
        let (toml, notes) = import(
            (
                "b",
                "[br0]\ntrunk-port: bond0 ; the LACP pair\ntrunk-tags = 10\n  11 12\n",
            ),
            ("vf", "[vnet0]\nGuest = web\npvid = 10\ntagged = 10 11\n"),
        )
        .unwrap();
        let c = Config::parse("x", &toml).unwrap();
        assert_eq!(
            c.bridges["br0"].uplinks["bond0"].vlans.tagged.to_string(),
            "10-12"
        );
        assert_eq!(
            c.ports[0].vlans.to_string(),
            "pvid 10 untagged 10 tagged 11"
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("lists its pvid 10 in tagged too"));
    }
}
