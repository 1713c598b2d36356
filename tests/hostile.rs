//! Hostile inputs, end to end, on this machine (issue 11): one table of cases — configs, argv,
//! domain XML and `<hookData>` on a hook's stdin, kvmvlan INI files, names with newlines,
//! `../`, 16+ bytes, shell metacharacters, NUL and non-UTF-8 bytes, DTD/entity tricks, deep
//! nesting and oversized input — each run through the real binary, which must refuse it
//! before it asks the kernel anything: with the documented exit code (2 for bad input; 1
//! where libvirt runs a hook whose failure refuses the start, 0 where a hook only logs), a
//! message naming the file and line or the element, no panic, within a time limit, and
//! nothing written outside the case's temporary directory. Each case runs in a network
//! namespace of its own (when this runs as root), so even a case that got through could not
//! change this machine's kernel; this machine's own kernel dump is compared before and after.
//! Cases that need a kernel with VLAN filtering are in `tests/lab_hostile.rs`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

const BIN: &str = env!("CARGO_BIN_EXE_virt-vlan");

/// How long one case may take (a debug build, on a machine shared with the lab VM).
const LIMIT: Duration = Duration::from_secs(5);
/// For the cases that read tens of megabytes.
const BIG_LIMIT: Duration = Duration::from_secs(20);
/// Longest stderr a refusal may print: a hostile megabyte must not be echoed back.
const MAX_STDERR: usize = 16 << 10;

/// The text of a file or of stdin; the large ones are made only when their case runs.
#[derive(Clone)]
enum Text {
    Bytes(&'static [u8]),
    Owned(Vec<u8>),
    Gen(fn() -> Vec<u8>),
}

impl Text {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Text::Bytes(b) => b.to_vec(),
            Text::Owned(b) => b.clone(),
            Text::Gen(f) => f(),
        }
    }
}

/// One hostile case. In `args`, `env` and `want`, `{dir}` is the case's directory, `{cfg}`
/// its config file, `{bi}`/`{vf}` its kvmvlan files.
struct Case {
    category: &'static str,
    id: String,
    args: Vec<Vec<u8>>,
    /// Run through a symlink to the binary at `{dir}/<this>`, as libvirt runs a hook.
    argv0: Option<&'static str>,
    /// Written to `{cfg}` (which VIRT_VLAN_CONFIG names).
    config: Option<Text>,
    /// More files under `{dir}`.
    files: Vec<(&'static str, Text)>,
    env: Vec<(&'static str, Vec<u8>)>,
    stdin: Option<Text>,
    code: i32,
    /// Substrings of stderr; `log:…` of the hook log file instead.
    want: Vec<String>,
    /// Hooks print nothing on stdout (for migrate it would replace the domain XML).
    quiet_stdout: bool,
    limit: Duration,
}

impl Case {
    fn new(category: &'static str, id: &str, args: &[&[u8]], code: i32, want: &[&str]) -> Case {
        Case {
            category,
            id: id.to_string(),
            args: args.iter().map(|a| a.to_vec()).collect(),
            argv0: None,
            config: Some(Text::Bytes(GOOD_CONFIG.as_bytes())),
            files: Vec::new(),
            env: Vec::new(),
            stdin: None,
            code,
            want: want.iter().map(|w| w.to_string()).collect(),
            quiet_stdout: false,
            limit: LIMIT,
        }
    }
}

/// A valid config whose bridge does not exist: a case that got past validation would fail
/// later with exit 1 and a different message, so it cannot pass by accident.
const GOOD_CONFIG: &str = "[bridges.br-absent]\n";

/// The config the hook cases run with.
const HOOK_CONFIG: &str = "[bridges.br0]\nallowed = \"1-1000\"\n[bridges.br0.uplinks.up0]\ntagged = \"100\"\n[hooks]\nport_wait = 1\n";

// ---------------------------------------------------------------------------------------
// Configs: (id, text, line the message must name (0: the file only), what else it must say)
// ---------------------------------------------------------------------------------------

type ConfigRow = (&'static str, &'static [u8], usize, &'static [&'static str]);

const CONFIGS: &[ConfigRow] = &[
    // TOML syntax
    ("toml-unclosed-table", b"[bridges.br0\n", 1, &[]),
    ("toml-missing-value", b"[bridges.br0]\nvlan_filtering =\n", 2, &[]),
    ("toml-missing-equals", b"[bridges.br0]\nvlan_filtering true\n", 2, &[]),
    ("toml-duplicate-key", b"[bridges.br0]\nvlan_filtering = true\nvlan_filtering = false\n", 3, &["duplicate key"]),
    ("toml-duplicate-table", b"[bridges.br0]\n[bridges.br0]\n", 2, &[]),
    ("toml-unterminated-string", b"[bridges.br0]\nvlan_protocol = \"802.1Q\n", 2, &[]),
    ("toml-bad-escape", b"[bridges.br0]\nvlan_protocol = \"802\\q\"\n", 2, &[]),
    ("toml-surrogate-escape", b"[bridges.\"\\uD800\"]\n", 1, &[]),
    ("toml-newline-in-string", b"[bridges.br0]\nallowed = \"1-\n5\"\n", 3, &[]),("toml-array-of-tables-clash", b"[[bridges]]\n", 1, &["bridges"]),
    ("toml-ports-as-table", b"[ports]\ninterface = \"v0\"\n", 1, &["ports"]),
    ("toml-garbage", b"\x01\x02\x03\n", 1, &[]),
    ("toml-nul-byte", b"[bridges.br0]\n\x00\n", 2, &[]),
    ("toml-cr-only-lines", b"[bridges.br0]\rvlan_filtering = true\r", 1, &[]),
    // wrong types
    ("type-filtering-string", b"[bridges.br0]\nvlan_filtering = \"yes\"\n", 2, &["bridges.br0.vlan_filtering"]),
    ("type-default-pvid-string", b"[bridges.br0]\ndefault_pvid = \"5\"\n", 2, &["bridges.br0.default_pvid"]),
    ("type-default-pvid-float", b"[bridges.br0]\ndefault_pvid = 1.5\n", 2, &["default_pvid", "1.5"]),
    ("type-default-pvid-bool", b"[bridges.br0]\ndefault_pvid = true\n", 2, &["default_pvid"]),
    ("type-default-pvid-date", b"[bridges.br0]\ndefault_pvid = 1979-05-27\n", 2, &["default_pvid"]),
    ("type-bridges-int", b"bridges = 3\n", 1, &["bridges"]),
    ("type-bridge-int", b"[bridges]\nbr0 = 5\n", 2, &["bridges.br0"]),
    ("type-ports-int", b"ports = 5\n", 1, &["ports"]),
    ("type-tagged-array", b"[bridges.br0.self]\ntagged = [1, 2]\n", 2, &["bridges.br0.self.tagged"]),
    ("type-tagged-bool", b"[bridges.br0.self]\ntagged = true\n", 2, &["bridges.br0.self.tagged"]),
    ("type-tagged-float", b"[bridges.br0.self]\ntagged = 5.0\n", 2, &["bridges.br0.self.tagged"]),
    ("type-on-demand-string", b"[bridges.br0.uplinks.eth0]\non_demand = \"yes\"\n", 2, &["on_demand"]),
    ("type-native-int", b"[bridges.br0.self]\nnative = 1\n", 2, &["native"]),
    ("type-native-unknown", b"[bridges.br0.self]\nnative = \"sideways\"\n", 2, &["native", "sideways"]),
    ("type-protocol-unknown", b"[bridges.br0]\nvlan_protocol = \"802.1x\"\n", 2, &["vlan_protocol", "802.1x"]),
    ("type-protocol-ethertype", b"[bridges.br0]\nvlan_protocol = 33024\n", 2, &["vlan_protocol"]),
    ("type-interface-int", b"[[ports]]\ninterface = 5\n", 2, &["ports.interface"]),
    ("type-self-int", b"[bridges.br0]\nself = 5\n", 2, &["bridges.br0.self"]),
    ("type-uplinks-array", b"[bridges.br0]\nuplinks = []\n", 2, &["bridges.br0.uplinks"]),
    ("type-allowed-float", b"[bridges.br0]\nallowed = 1.5\n", 2, &["bridges.br0.allowed"]),
    ("type-on-error-int", b"[hooks]\non_error = 1\n", 2, &["hooks.on_error"]),
    ("type-on-error-unknown", b"[hooks]\non_error = \"explode\"\n", 2, &["hooks.on_error", "explode"]),
    ("type-script-timeout-string", b"[hooks]\nscript_timeout = \"5\"\n", 2, &["hooks.script_timeout"]),
    ("type-hooks-int", b"hooks = 5\n", 1, &["hooks"]),
    // unknown keys
    ("unknown-top-level", b"x = 1\n", 1, &["unknown field `x`"]),
    ("unknown-bridge-typo", b"[bridges.br0]\nvlan_filterin = true\n", 2, &["unknown field `vlan_filterin`"]),
    ("unknown-uplink-singular", b"[bridges.br0.uplink.eth0]\n", 1, &["unknown field `uplink`"]),
    ("unknown-self-key", b"[bridges.br0.self]\nvid = 5\n", 2, &["unknown field `vid`"]),
    ("unknown-uplink-key", b"[bridges.br0.uplinks.eth0]\ntrunk = true\n", 2, &["unknown field `trunk`"]),
    ("unknown-port-key", b"[[ports]]\ninterface = \"v0\"\nvlan = 5\n", 3, &["unknown field `vlan`"]),
    ("unknown-hooks-key", b"[hooks]\ntimeout = 5\n", 2, &["unknown field `timeout`"]),
    ("unknown-on-demand-on-port", b"[[ports]]\ninterface = \"v0\"\non_demand = true\n", 3, &["unknown field `on_demand`"]),
    // VIDs
    ("vid-port-pvid-0", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 0\n", 4, &["ports.pvid", "VID 0"]),
    ("vid-port-pvid-4095", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 4095\n", 4, &["ports.pvid", "VID 4095 is reserved"]),
    ("vid-port-pvid-4096", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 4096\n", 4, &["ports.pvid", "VID 4096 is out of range"]),
    ("vid-port-pvid-negative", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = -1\n", 4, &["ports.pvid", "-1"]),
    ("vid-port-pvid-huge", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 99999999999999999999999\n", 4, &["ports.pvid", "99999999999999999999999"]),
    ("vid-port-pvid-65536", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 65536\n", 4, &["VID 65536 is out of range"]),
    ("vid-port-pvid-u64-max", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 18446744073709551615\n", 4, &["ports.pvid"]),
    ("vid-port-pvid-hex", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 0xfff\n", 4, &["VID 4095 is reserved"]),
    ("vid-default-pvid-4095", b"[bridges.br0]\ndefault_pvid = 4095\n", 2, &["bridges.br0.default_pvid", "4095"]),
    ("vid-default-pvid-4096", b"[bridges.br0]\ndefault_pvid = 4096\n", 2, &["bridges.br0.default_pvid", "VID 4096"]),
    ("vid-default-pvid-negative", b"[bridges.br0]\ndefault_pvid = -1\n", 2, &["bridges.br0.default_pvid", "-1"]),
    ("vid-self-pvid-0", b"[bridges.br0.self]\npvid = 0\n", 2, &["bridges.br0.self.pvid", "VID 0"]),
    ("vid-uplink-pvid-4095", b"[bridges.br0.uplinks.eth0]\npvid = 4095\n", 2, &["bridges.br0.uplinks.eth0.pvid", "4095"]),
    ("vid-tagged-0", b"[bridges.br0.self]\ntagged = \"0\"\n", 2, &["bridges.br0.self.tagged", "VID 0"]),
    ("vid-tagged-4095-in-list", b"[bridges.br0.uplinks.eth0]\ntagged = \"100,4095\"\n", 2, &["bridges.br0.uplinks.eth0.tagged", "VID 4095"]),
    ("vid-tagged-4096-range-end", b"[bridges.br0.self]\ntagged = \"4000-4096\"\n", 2, &["tagged", "VID 4096"]),
    ("vid-tagged-negative-int", b"[bridges.br0.self]\ntagged = -5\n", 2, &["tagged", "VID -5"]),
    ("vid-tagged-negative-string", b"[bridges.br0.self]\ntagged = \"-1\"\n", 2, &["tagged", "`-1`"]),
    ("vid-tagged-huge-string", b"[bridges.br0.self]\ntagged = \"99999999999999999999999\"\n", 2, &["tagged", "VID 99999999999999999999999 is out of range"]),
    ("vid-tagged-huge-int", b"[bridges.br0.self]\ntagged = 4294967296\n", 2, &["tagged", "4294967296"]),
    ("vid-tagged-reversed", b"[bridges.br0.self]\ntagged = \"20-10\"\n", 2, &["tagged", "range 20-10 is reversed"]),
    ("vid-tagged-overlap", b"[bridges.br0.self]\ntagged = \"1-10,5\"\n", 2, &["tagged", "5 is listed twice"]),
    ("vid-tagged-overlapping-ranges", b"[bridges.br0.self]\ntagged = \"1-10,8-12\"\n", 2, &["tagged", "8-10 is listed twice"]),
    ("vid-tagged-repeat", b"[bridges.br0.self]\ntagged = \"7,7\"\n", 2, &["tagged", "7 is listed twice"]),
    ("vid-tagged-double-dash", b"[bridges.br0.self]\ntagged = \"1--2\"\n", 2, &["tagged", "`1--2`"]),
    ("vid-tagged-open-range", b"[bridges.br0.self]\ntagged = \"1-\"\n", 2, &["tagged", "`1-`"]),
    ("vid-tagged-empty-item", b"[bridges.br0.self]\ntagged = \"1,,2\"\n", 2, &["tagged", "`1,,2`"]),
    ("vid-tagged-hex", b"[bridges.br0.self]\ntagged = \"0x10\"\n", 2, &["tagged", "`0x10`"]),
    ("vid-tagged-plus", b"[bridges.br0.self]\ntagged = \"+5\"\n", 2, &["tagged", "`+5`"]),
    ("vid-tagged-fullwidth-digit", "[bridges.br0.self]\ntagged = \"\u{ff15}\"\n".as_bytes(), 2, &["tagged", "\u{ff15}"]),
    ("vid-tagged-three-part-range", b"[bridges.br0.self]\ntagged = \"1-2-3\"\n", 2, &["tagged", "1-2-3"]),
    ("vid-tagged-shell", b"[bridges.br0.self]\ntagged = \"1;reboot\"\n", 2, &["tagged", "1;reboot"]),
    ("vid-untagged-4095", b"[bridges.br0.self]\nuntagged = \"4095\"\n", 2, &["untagged", "4095"]),
    ("vid-untagged-and-tagged", b"[bridges.br0.self]\nuntagged = \"5\"\ntagged = \"5\"\n", 1, &["5"]),
    ("vid-pvid-also-tagged", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\npvid = 5\ntagged = \"5\"\n", 2, &["pvid 5"]),
    ("vid-allowed-0", b"[bridges.br0]\nallowed = \"0-10\"\n", 2, &["bridges.br0.allowed", "VID 0"]),
    ("vid-allowed-4095", b"[bridges.br0]\nallowed = \"4095\"\n", 2, &["bridges.br0.allowed", "4095"]),
    ("vid-allowed-reversed", b"[bridges.br0]\nallowed = \"10-1\"\n", 2, &["bridges.br0.allowed", "reversed"]),
    ("vid-pvid-outside-allowed", b"[bridges.br0]\nallowed = \"100-199\"\n[[ports]]\ninterface = \"v0\"\npvid = 200\n", 5, &["ports.pvid", "VID 200 is outside bridge br0's allowed VIDs"]),
    ("vid-tagged-outside-allowed", b"[bridges.br0]\nallowed = \"1-10\"\n[bridges.br1]\n[[ports]]\ninterface = \"v0\"\nbridge = \"br0\"\ntagged = \"5-20\"\n", 4, &["VID 11-20 is outside bridge br0"]),
    // names
    ("name-bridge-empty", b"[bridges.\"\"]\n", 1, &["bridge name", "empty"]),
    ("name-bridge-16-bytes", b"[bridges.sixteen-bytes-xx]\n", 1, &["bridge name", "16 bytes"]),
    ("name-bridge-multibyte-16-bytes", "[bridges.\"\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\"]\n".as_bytes(), 1, &["bridge name", "16 bytes"]),
    ("name-bridge-slash", b"[bridges.\"br/0\"]\n", 1, &["bridge name", "contains `/`"]),
    ("name-bridge-dotdot", b"[bridges.\"..\"]\n", 1, &["bridge name", "`..` cannot be"]),
    ("name-bridge-dot", b"[bridges.\".\"]\n", 1, &["bridge name", "`.` cannot be"]),
    ("name-bridge-traversal", b"[bridges.\"../etc\"]\n", 1, &["bridge name", "contains `/`"]),
    ("name-bridge-newline", b"[bridges.\"br\\n0\"]\n", 1, &["bridge name", "whitespace"]),
    ("name-bridge-space", b"[bridges.\"br 0\"]\n", 1, &["bridge name", "whitespace"]),
    ("name-bridge-tab", b"[bridges.\"br\\t0\"]\n", 1, &["bridge name", "whitespace"]),
    ("name-bridge-nul", b"[bridges.\"br\\u0000\"]\n", 1, &["bridge name", "NUL"]),
    ("name-bridge-colon", b"[bridges.\"br:0\"]\n", 1, &["bridge name", "contains `:`"]),
    ("name-bridge-escape-char", b"[bridges.\"br\\u001b[31m\"]\n", 1, &["bridge name", "control"]),
    ("name-bridge-shell-rm", b"[bridges.\"br0;rm -rf /\"]\n", 1, &["bridge name"]),
    ("name-bridge-shell-subst-space", b"[bridges.\"$(reboot now)\"]\n", 1, &["bridge name", "whitespace"]),
    ("name-bridge-del", b"[bridges.\"br\\u007f\"]\n", 1, &["bridge name", "control"]),
    ("name-uplink-empty", b"[bridges.br0.uplinks.\"\"]\n", 1, &["uplink name", "empty"]),
    ("name-uplink-16-bytes", b"[bridges.br0.uplinks.sixteen-bytes-xx]\n", 1, &["uplink name", "16 bytes"]),
    ("name-uplink-slash", b"[bridges.br0.uplinks.\"e/0\"]\n", 1, &["uplink name", "contains `/`"]),
    ("name-uplink-dotdot", b"[bridges.br0.uplinks.\"..\"]\n", 1, &["uplink name", "cannot be"]),
    ("name-uplink-newline", b"[bridges.br0.uplinks.\"eth0\\nx\"]\n", 1, &["uplink name", "whitespace"]),
    ("name-uplink-nul", b"[bridges.br0.uplinks.\"eth\\u0000\"]\n", 1, &["uplink name", "NUL"]),
    ("name-uplink-shell", b"[bridges.br0.uplinks.\"`reboot` x\"]\n", 1, &["uplink name", "whitespace"]),
    ("name-port-empty", b"[bridges.br0]\n[[ports]]\ninterface = \"\"\n", 3, &["ports.interface", "empty"]),
    ("name-port-16-bytes", b"[bridges.br0]\n[[ports]]\ninterface = \"sixteen-bytes-xx\"\n", 3, &["ports.interface", "16 bytes"]),
    ("name-port-long", b"[bridges.br0]\n[[ports]]\ninterface = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n", 3, &["ports.interface", "at most 15 bytes"]),
    ("name-port-slash", b"[bridges.br0]\n[[ports]]\ninterface = \"a/b\"\n", 3, &["ports.interface", "contains `/`"]),
    ("name-port-traversal", b"[bridges.br0]\n[[ports]]\ninterface = \"../passwd\"\n", 3, &["ports.interface", "contains `/`"]),
    ("name-port-dotdot", b"[bridges.br0]\n[[ports]]\ninterface = \"..\"\n", 3, &["ports.interface", "cannot be"]),
    ("name-port-newline", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\\nv1\"\n", 3, &["ports.interface", "whitespace"]),
    ("name-port-space-shell", b"[bridges.br0]\n[[ports]]\ninterface = \"g1; rm -rf\"\n", 3, &["ports.interface", "whitespace"]),
    ("name-port-nul", b"[bridges.br0]\n[[ports]]\ninterface = \"v\\u0000\"\n", 3, &["ports.interface", "NUL"]),
    ("name-port-bell", b"[bridges.br0]\n[[ports]]\ninterface = \"v\\u0007\"\n", 3, &["ports.interface", "control"]),
    ("name-port-mac-without-domain", b"[bridges.br0]\n[[ports]]\ninterface = \"52:54:00:12:34:56\"\n", 3, &["ports.interface"]),
    ("name-port-missing", b"[bridges.br0]\n[[ports]]\npvid = 2\n", 2, &["missing key `interface`"]),
    ("name-domain-empty", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\ndomain = \"\"\n", 4, &["ports.domain", "not a libvirt domain name"]),
    ("name-domain-blank", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\ndomain = \"   \"\n", 4, &["ports.domain", "not a libvirt domain name"]),
    ("name-domain-traversal", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\ndomain = \"../../etc\"\n", 4, &["ports.domain", "not a libvirt domain name"]),
    ("name-domain-newline", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\ndomain = \"vm\\nx\"\n", 4, &["ports.domain"]),
    ("name-domain-nul", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\ndomain = \"vm\\u0000\"\n", 4, &["ports.domain"]),
    ("name-port-bridge-unknown", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\nbridge = \"br9\"\n", 4, &["ports.bridge", "br9 is not a managed bridge"]),
    ("name-port-bridge-traversal", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\nbridge = \"../br0\"\n", 4, &["ports.bridge"]),
    // one role per interface
    ("role-uplink-on-two-bridges", b"[bridges.br0.uplinks.eth0]\n[bridges.br1.uplinks.eth0]\n", 2, &["eth0 is already an uplink of br0 at {cfg}:1"]),
    ("role-port-is-uplink", b"[bridges.br0.uplinks.eth0]\n[[ports]]\ninterface = \"eth0\"\n", 2, &["already an uplink"]),
    ("role-port-twice", b"[bridges.br0]\n[[ports]]\ninterface = \"v0\"\n[[ports]]\ninterface = \"v0\"\n", 4, &["already configured at {cfg}:2"]),
    ("role-bridge-own-uplink", b"[bridges.br0.uplinks.br0]\n", 1, &["a bridge cannot be its own uplink"]),
    ("role-uplink-is-bridge", b"[bridges.br0]\n[bridges.br1.uplinks.br0]\n", 2, &["br0 is a managed bridge, not a port"]),
    ("role-port-is-bridge", b"[bridges.br0]\n[[ports]]\ninterface = \"br0\"\n", 2, &["is a managed bridge"]),
    // [hooks]
    ("hooks-script-timeout-negative", b"[hooks]\nscript_timeout = -1\n", 2, &["hooks.script_timeout", "-1"]),
    ("hooks-script-timeout-huge", b"[hooks]\nscript_timeout = 18446744073709551615\n", 2, &["hooks.script_timeout", "more than a day"]),
    ("hooks-port-wait-huge", b"[hooks]\nport_wait = 18446744073709551615\n", 2, &["hooks.port_wait", "more than a day"]),
    ("hooks-port-wait-day-and-a-second", b"[hooks]\nport_wait = 86401\n", 2, &["hooks.port_wait", "86401 seconds"]),
    ("hooks-port-wait-float", b"[hooks]\nport_wait = 1e3\n", 2, &["hooks.port_wait"]),
    // encoding
    ("utf8-bad-byte-line-3", b"[bridges.br0]\n\n# caf\xe9\n", 3, &["not UTF-8 text (byte 0xe9"]),
    ("utf8-utf16-bom", b"\xff\xfe[\x00b\x00]\x00\n\x00", 1, &["not UTF-8 text (byte 0xff"]),
    ("utf8-overlong-slash", b"[bridges.\"br\xc0\xaf\"]\n", 1, &["not UTF-8 text (byte 0xc0"]),
    ("utf8-surrogate-bytes", b"[bridges.br0]\n[bridges.\"\xed\xa0\x80\"]\n", 2, &["not UTF-8 text (byte 0xed"]),
    ("utf8-truncated-sequence", b"[bridges.br0]\nallowed = \"1\xe2\x82\"\n", 2, &["not UTF-8 text"]),
];

/// Configs made by a function: (id, generator, line, needles, time limit).
type GenConfigRow = (
    &'static str,
    fn() -> Vec<u8>,
    usize,
    &'static [&'static str],
);

const GEN_CONFIGS: &[GenConfigRow] = &[
    (
        "deep-arrays-100k",
        || nest("x = ", "[", "]", "", 100_000),
        1,
        &["recurs"],
    ),
    (
        "deep-inline-tables-100k",
        || nest("x = ", "{a=", "}", "1", 100_000),
        1,
        &["recurs"],
    ),
    (
        "deep-dotted-header-100k",
        || format!("[{}b]\n", "a.".repeat(100_000)).into_bytes(),
        1,
        &["…"],
    ),
    (
        "deep-allowed-arrays",
        || nest("[bridges.br0]\nallowed = ", "[", "]", "", 100_000),
        2,
        &["bridges.br0.allowed"],
    ),
    (
        "key-one-mebibyte",
        || format!("{} = 1\n", "k".repeat(1 << 20)).into_bytes(),
        1,
        &["unknown field"],
    ),
    (
        "file-17-mib",
        || {
            let mut v = b"[bridges.br0]\n".to_vec();
            v.resize(17 << 20, b'\n');
            v
        },
        0,
        &["more than 16 MiB"],
    ),
    (
        "vid-list-of-5000-items",
        || {
            let list: Vec<String> = (1..=5000).map(|v| v.to_string()).collect();
            format!("[bridges.br0.self]\ntagged = \"{}\"\n", list.join(",")).into_bytes()
        },
        2,
        &["VID 4095 is reserved"],
    ),
    (
        "ports-20000-then-a-duplicate",
        || {
            let mut s = String::from("[bridges.br0]\n");
            for i in 0..20_000 {
                s.push_str(&format!("[[ports]]\ninterface = \"v{i}\"\npvid = 5\n"));
            }
            s.push_str("[[ports]]\ninterface = \"v19999\"\npvid = 5\n");
            s.into_bytes()
        },
        60_002,
        &["already configured at {cfg}:59999"],
    ),
];

fn nest(prefix: &str, open: &str, close: &str, inner: &str, depth: usize) -> Vec<u8> {
    format!(
        "{prefix}{}{inner}{}\n",
        open.repeat(depth),
        close.repeat(depth)
    )
    .into_bytes()
}

/// The commands a config case is given in turn: every one of them reads the config first.
const CONFIG_COMMANDS: &[&[&str]] = &[
    &["check"],
    &["apply"],
    &["apply", "--dry-run"],
    &["show"],
    &["watch", "--once"],
    &["check", "--json"],
    &["show", "--json"],
    &["apply", "--stats"],
    &["show", "--diagram"],
    &["apply", "--confirm"],
];

fn config_cases() -> Vec<Case> {
    let rows = CONFIGS
        .iter()
        .map(|(id, text, line, want)| (*id, Text::Bytes(text), *line, *want))
        .chain(
            GEN_CONFIGS
                .iter()
                .map(|(id, f, line, want)| (*id, Text::Gen(*f), *line, *want)),
        );
    rows.enumerate()
        .map(|(i, (id, text, line, needles))| {
            let cmd = CONFIG_COMMANDS[i % CONFIG_COMMANDS.len()];
            let mut args: Vec<&[u8]> = vec![b"--config", b"{cfg}"];
            args.extend(cmd.iter().map(|a| a.as_bytes()));
            let mut want = vec![if line == 0 {
                "{cfg}: ".to_string()
            } else {
                format!("{{cfg}}:{line}: ")
            }];
            want.extend(needles.iter().map(|n| n.to_string()));
            let mut c = Case::new("config", id, &args, 2, &[]);
            c.want = want;
            c.config = Some(text);
            c.limit = BIG_LIMIT;
            c
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Arguments: (id, argv, exit code, needles). The config is valid (its bridge is absent).
// ---------------------------------------------------------------------------------------

type ArgvRow = (
    &'static str,
    &'static [&'static [u8]],
    i32,
    &'static [&'static str],
);

const ARGVS: &[ArgvRow] = &[
    ("unknown-flag", &[b"apply", b"--frobnicate"], 2, &["--frobnicate"]),
    ("unknown-subcommand", &[b"nonsense"], 2, &["nonsense"]),
    ("no-subcommand", &[], 2, &["Usage"]),
    ("dry-run-and-confirm", &[b"apply", b"--dry-run", b"--confirm"], 2, &["--confirm"]),
    ("json-and-diagram", &[b"show", b"--json", b"--diagram"], 2, &["--diagram"]),
    ("flag-with-value", &[b"apply", b"--stats=yes"], 2, &["--stats"]),
    ("extra-positional", &[b"check", b"extra"], 2, &["extra"]),
    ("config-twice", &[b"--config", b"{cfg}", b"--config", b"{cfg}", b"check"], 2, &["--config"]),
    ("config-empty", &[b"--config", b"", b"check"], 2, &["--config"]),
    ("config-missing", &[b"--config", b"{dir}/nope.toml", b"check"], 2, &["{dir}/nope.toml: cannot read config"]),
    ("config-is-directory", &[b"--config", b"{dir}", b"apply"], 2, &["{dir}: cannot read", "directory"]),
    ("config-is-dev-zero", &[b"--config", b"/dev/zero", b"apply", b"--dry-run"], 2, &["/dev/zero: more than 16 MiB"]),
    ("config-traversal", &[b"--config", b"{dir}/../../../../../../nonexistent/x.toml", b"check"], 2, &["nonexistent/x.toml: cannot read config"]),
    ("config-path-newline", &[b"--config", b"{dir}/a\nb.toml", b"show"], 2, &["cannot read config"]),
    ("config-path-non-utf8", &[b"--config", b"{dir}/\xff.toml", b"check"], 2, &["\u{fffd}.toml: cannot read config"]),
    ("config-path-shell", &[b"--config", b"{dir}/$(reboot);`halt`.toml", b"check"], 2, &["$(reboot);`halt`.toml: cannot read config"]),
    ("config-path-huge", &[b"--config", b"{dir}/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.toml", b"check"], 2, &["cannot read config"]),("subcommand-non-utf8", &[b"\xff"], 2, &[]),
    ("argument-non-utf8", &[b"apply", b"\xfe\xff"], 2, &[]),
    ("hook-unknown-driver", &[b"hook", b"vmware", b"vm", b"start", b"begin", b"-"], 2, &["vmware"]),
    ("hook-driver-traversal", &[b"hook", b"../../qemu", b"vm", b"start", b"begin", b"-"], 2, &["../../qemu"]),
    ("hook-object-non-utf8", &[b"hook", b"qemu", b"vm\xff", b"start", b"begin", b"-"], 2, &["hook argument `vm\u{fffd}` is not UTF-8"]),
    ("hook-op-non-utf8", &[b"hook", b"network", b"lan", b"\xc0\xaf", b"begin", b"-"], 2, &["is not UTF-8"]),
    ("hook-wait-port-without-uuid", &[b"hook-wait-port"], 2, &["<UUID>"]),
    ("import-missing-arguments", &[b"import", b"kvmvlan"], 2, &["--bridge-init"]),
    ("import-unknown-format", &[b"import", b"netplan"], 2, &["netplan"]),
    ("import-missing-file", &[b"import", b"kvmvlan", b"--bridge-init", b"{dir}/none.conf", b"--vlan-filtering", b"{dir}/none.conf"], 2, &["{dir}/none.conf: cannot read"]),
    ("import-directory", &[b"import", b"kvmvlan", b"--bridge-init", b"{dir}", b"--vlan-filtering", b"{dir}"], 2, &["{dir}: cannot read"]),
    ("import-dev-zero", &[b"import", b"kvmvlan", b"--bridge-init", b"/dev/zero", b"--vlan-filtering", b"/dev/null"], 2, &["/dev/zero: more than 16 MiB"]),
    ("import-non-utf8-path", &[b"import", b"kvmvlan", b"--bridge-init", b"{dir}/\xff", b"--vlan-filtering", b"{dir}/\xff"], 2, &["\u{fffd}: cannot read"]),
    ("install-root-is-file", &[b"install", b"--root", b"{cfg}"], 2, &["--root {cfg}: not a directory"]),
    ("install-root-dev-null", &[b"install", b"--root", b"/dev/null", b"--uninstall"], 2, &["--root /dev/null: not a directory"]),
    ("show-svg-without-file", &[b"show", b"--svg"], 2, &["--svg"]),
    ("verbose-300-times-bad-config", &[b"--config", b"{dir}/nope.toml", b"-vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", b"check"], 2, &["nope.toml: cannot read config"]),
    ("long-unknown-subcommand", &[b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"], 2, &[]),
    ("package-files-without-dir", &[b"package-files"], 2, &["<DIR>"]),
];

fn argv_cases() -> Vec<Case> {
    let mut out: Vec<Case> = ARGVS
        .iter()
        .map(|(id, args, code, want)| Case::new("argv", id, args, *code, want))
        .collect();
    // the environment names the config
    let env_cases: [(&str, &[u8], &[&str]); 4] = [
        (
            "env-config-missing",
            b"{dir}/gone.toml",
            &["{dir}/gone.toml: cannot read config"],
        ),
        (
            "env-config-non-utf8",
            b"{dir}/\xfe\xff.toml",
            &["\u{fffd}\u{fffd}.toml: cannot read config"],
        ),
        ("env-config-directory", b"{dir}", &["{dir}: cannot read"]),
        (
            "env-config-dev-zero",
            b"/dev/zero",
            &["/dev/zero: more than 16 MiB"],
        ),
    ];
    for (id, value, want) in env_cases {
        let mut c = Case::new("argv", id, &[b"apply", b"--dry-run"], 2, want);
        c.env.push(("VIRT_VLAN_CONFIG", value.to_vec()));
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Domain XML on a qemu/lxc hook's stdin
// ---------------------------------------------------------------------------------------

/// A guest's interface on managed br0 (line 9 of [`domain`]).
const IFACE: &str = "<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet0'/><alias name='net0'/></interface>";
/// Metadata giving it VLAN 100 (line 5 of [`domain`]).
const META: &str =
    "<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='100'/></vv:vlan></vv:interface>";

/// A live domain XML: `meta` on line 5 inside our `<vv:vlans>`, `iface` on line 9.
fn domain(meta: &str, iface: &str) -> String {
    format!(
        "<domain type='kvm' id='1'>\n  <name>vm1</name>\n  <metadata>\n    <vv:vlans xmlns:vv='urn:virt-vlan:1'>\n      {meta}\n    </vv:vlans>\n  </metadata>\n  <devices>\n    {iface}\n  </devices>\n</domain>\n"
    )
}

/// A domain's XML for a case.
#[derive(Clone, Copy)]
enum Xml {
    /// Our metadata (line 5) around [`IFACE`].
    Meta(&'static str),
    /// [`META`] around this interface (line 9).
    Iface(&'static str),
    /// No metadata, this interface (line 9).
    Bare(&'static str),
    Raw(&'static [u8]),
    Gen(fn() -> Vec<u8>),
}

type DomainRow = (
    &'static str,
    &'static str,
    &'static str,
    Xml,
    i32,
    &'static [&'static str],
);

/// (id, driver, op, XML, exit code, needles). libvirt refuses a start (or prepare, migrate)
/// when the hook exits non-zero, and virt-vlan's hooks exit 1 then (README: "Hook script
/// execution failed: … unexpected exit status 1"); reconnect and the other ops only log.
const DOMAINS: &[DomainRow] = &[
    // not XML, or not a domain
    ("empty-stdin", "qemu", "start", Xml::Raw(b""), 1, &["domain XML: line 1: not well-formed XML"]),
    ("unclosed-root", "qemu", "start", Xml::Raw(b"<domain>"), 1, &["domain XML: line 1: not well-formed XML"]),
    ("plain-text", "qemu", "start", Xml::Raw(b"hello"), 1, &["domain XML: line 1: not well-formed XML"]),
    ("mismatched-tags", "qemu", "start", Xml::Raw(b"<domain>\n<name>x</domain>"), 1, &["line 2: not well-formed XML"]),
    ("two-roots", "qemu", "start", Xml::Raw(b"<domain><name>a</name></domain>\n<domain/>"), 1, &["line 2: not well-formed XML", "2:1"]),
    ("unquoted-attribute", "qemu", "start", Xml::Raw(b"<domain type=kvm><name>a</name></domain>"), 1, &["line 1: not well-formed XML"]),
    ("undefined-entity", "qemu", "start", Xml::Raw(b"<domain>\n<name>&foo;</name></domain>"), 1, &["line 2: not well-formed XML", "foo"]),
    ("nul-char-reference", "qemu", "start", Xml::Raw(b"<domain><name>a&#0;</name></domain>"), 1, &["line 1: not well-formed XML"]),
    ("surrogate-char-reference", "qemu", "start", Xml::Meta("<vv:interface alias='net0'><vv:vlan><vv:tag id='&#xD800;'/></vv:vlan></vv:interface>"), 1, &["line 5"]),("control-char-reference", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='a&#1;b'/></interface>"), 1, &["line 9: not well-formed XML"]),("raw-nul-byte", "qemu", "start", Xml::Raw(b"<domain>\n<name>a\x00b</name></domain>"), 1, &["line 2: not well-formed XML"]),
    ("lt-in-text", "qemu", "start", Xml::Raw(b"<domain><name>a < b</name></domain>"), 1, &["line 1: not well-formed XML"]),
    ("unterminated-cdata", "qemu", "start", Xml::Raw(b"<domain><name><![CDATA[x</name></domain>"), 1, &["line 1: not well-formed XML"]),
    ("double-dash-in-comment", "qemu", "start", Xml::Raw(b"<domain><!-- a -- b --><name>a</name></domain>"), 1, &["line 1: not well-formed XML"]),
    ("root-is-network", "qemu", "start", Xml::Raw(b"<network><name>lan</name></network>"), 1, &["root element is <network>, not <domain>"]),
    ("no-name", "qemu", "start", Xml::Raw(b"<domain type='kvm'><devices/></domain>"), 1, &["<domain> has no <name>"]),
    ("blank-name", "qemu", "start", Xml::Raw(b"<domain><name>  \n </name></domain>"), 1, &["<domain> has no <name>"]),
    ("foreign-namespace-root", "qemu", "start", Xml::Raw(b"<domain xmlns='urn:evil'><name>vm1</name></domain>"), 1, &["<domain> has no <name>"]),
    // encodings
    ("non-utf8-line-3", "qemu", "start", Xml::Raw(b"<domain>\n<name>vm1</name>\n<description>caf\xe9</description></domain>"), 1, &["hook stdin:3: not UTF-8 text (byte 0xe9"]),
    ("utf16-bom", "qemu", "start", Xml::Raw(b"\xff\xfe<\x00d\x00/\x00>\x00"), 1, &["hook stdin:1: not UTF-8 text (byte 0xff"]),
    ("latin1-declared", "qemu", "start", Xml::Raw(b"<?xml version='1.0' encoding='ISO-8859-1'?>\n<domain><name>m\xfcller</name></domain>"), 1, &["hook stdin:2: not UTF-8"]),
    ("overlong-utf8-slash", "qemu", "prepare", Xml::Raw(b"<domain><name>..\xc0\xaf..\xc0\xafetc</name></domain>"), 1, &["hook stdin:1: not UTF-8 text (byte 0xc0"]),
    // DTDs and entities
    ("billion-laughs", "qemu", "start", Xml::Raw(BILLION_LAUGHS), 1, &["domain XML: line 2: <!DOCTYPE> refused"]),
    ("external-entity-passwd", "qemu", "start", Xml::Raw(b"<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>\n<domain><name>&x;</name></domain>"), 1, &["line 2: <!DOCTYPE> refused"]),
    ("external-dtd", "qemu", "start", Xml::Raw(b"<!DOCTYPE domain SYSTEM 'http://192.0.2.1/evil.dtd'>\n<domain><name>a</name></domain>"), 1, &["line 1: <!DOCTYPE> refused"]),
    ("parameter-entity", "qemu", "start", Xml::Raw(b"\n\n<!DOCTYPE d [<!ENTITY % p SYSTEM 'file:///etc/shadow'> %p;]>\n<domain><name>a</name></domain>"), 1, &["line 3: <!DOCTYPE> refused"]),
    ("quadratic-blowup", "qemu", "start", Xml::Gen(|| {
        let big = "a".repeat(100_000);
        format!("<!DOCTYPE d [<!ENTITY a '{big}'>]>\n<domain><name>{}</name></domain>", "&a;".repeat(10_000)).into_bytes()
    }), 1, &["line 1: <!DOCTYPE> refused"]),
    ("dtd-in-prepare", "qemu", "prepare", Xml::Raw(BILLION_LAUGHS), 1, &["<!DOCTYPE> refused"]),
    ("dtd-in-migrate", "qemu", "migrate", Xml::Raw(BILLION_LAUGHS), 1, &["<!DOCTYPE> refused"]),
    ("dtd-in-reconnect-only-logs", "qemu", "reconnect", Xml::Raw(BILLION_LAUGHS), 0, &["log:reconnect vm1: domain XML: line 2: <!DOCTYPE> refused"]),
    // size and depth
    ("deep-foreign-metadata-100k", "qemu", "start", Xml::Gen(|| {
        format!(
            "<domain>\n<name>vm1</name>\n<metadata>\n<x:a xmlns:x='urn:x'>{}{}</x:a>\n<vv:vlans xmlns:vv='urn:virt-vlan:1'><vv:interface alias='net0'><vv:vlan><vv:tag id='4095'/></vv:vlan></vv:interface></vv:vlans>\n</metadata>\n</domain>",
            "<x:a>".repeat(100_000),
            "</x:a>".repeat(100_000)
        )
        .into_bytes()
    }), 1, &["line 5: <tag id='4095'>: VID 4095 is reserved"]),
    ("deep-our-vlans-100k", "qemu", "start", Xml::Gen(|| {
        domain(&format!("{}{}", "<vv:vlans>".repeat(100_000), "</vv:vlans>".repeat(100_000)), IFACE).into_bytes()
    }), 1, &["metadata line 5: <vlans> in <vlans>"]),
    ("deep-inside-vlan-100k", "qemu", "start", Xml::Gen(|| {
        domain(&format!("<vv:interface alias='net0'><vv:vlan>{}{}</vv:vlan></vv:interface>", "<vv:x>".repeat(100_000), "</vv:x>".repeat(100_000)), IFACE).into_bytes()
    }), 1, &["line 5: <x> is not allowed in <vlan>"]),
    ("deep-unnamed-domain-100k", "qemu", "start", Xml::Gen(|| {
        format!("<domain>{}{}</domain>", "<a>".repeat(100_000), "</a>".repeat(100_000)).into_bytes()
    }), 1, &["<domain> has no <name>"]),
    ("stdin-33-mib", "qemu", "start", Xml::Gen(|| {
        let mut v = domain(META, IFACE).into_bytes();
        v.resize(33 << 20, b' ');
        v
    }), 1, &["hook stdin: more than 32 MiB; refused"]),
    ("stdin-64-mib", "qemu", "prepare", Xml::Gen(|| {
        let mut v = b"<domain><name>vm1</name><devices>".to_vec();
        while v.len() < 64 << 20 {
            v.extend_from_slice(IFACE.as_bytes());
            v.push(b'\n');
        }
        v
    }), 1, &["hook stdin: more than 32 MiB; refused"]),
    ("metadata-20000-entries-bad-last", "qemu", "start", Xml::Gen(|| {
        let entries: Vec<String> = (0..20_000)
            .map(|i| format!("<vv:interface alias='n{i}'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"))
            .chain(std::iter::once("<vv:interface alias='last'><vv:vlan><vv:tag id='0'/></vv:vlan></vv:interface>".to_string()))
            .collect();
        domain(&entries.join("\n      "), IFACE).into_bytes()
    }), 1, &["line 20005: <tag id='0'>: VID 0"]),
    ("interfaces-20000-bad-target-last", "qemu", "start", Xml::Gen(|| {
        let mut meta = Vec::new();
        let mut ifaces = Vec::new();
        for i in 0..20_000u32 {
            let mac = format!("52:54:01:{:02x}:{:02x}:{:02x}", i >> 16, (i >> 8) & 255, i & 255);
            meta.push(format!("<vv:interface mac='{mac}'><vv:vlan><vv:tag id='{}'/></vv:vlan></vv:interface>", 1 + i % 1000));
            let target = if i == 19_999 { "../../x".to_string() } else { format!("vnet{i}") };
            ifaces.push(format!("<interface type='bridge'><mac address='{mac}'/><source bridge='br0'/><target dev='{target}'/></interface>"));
        }
        domain(&meta.join("\n      "), &ifaces.join("\n    ")).into_bytes()
    }), 1, &["(line 40007): <target dev>: interface name `../../x` contains `/`"]),
    ("name-one-mebibyte", "qemu", "prepare", Xml::Gen(|| {
        format!("<domain><name>{}</name></domain>", "v".repeat(1 << 20)).into_bytes()
    }), 1, &["domain name `vvvv", "1048576 bytes"]),
    ("mac-selector-one-mebibyte", "qemu", "start", Xml::Gen(|| {
        domain(&format!("<vv:interface mac='{}'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>", "5".repeat(1 << 20)), IFACE).into_bytes()
    }), 1, &["metadata line 5: <interface mac=", "not a MAC address"]),
    // our metadata, malformed (line 5)
    ("meta-vid-0", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='0'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='0'>: VID 0"]),
    ("meta-vid-4095", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='4095'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='4095'>: VID 4095 is reserved"]),
    ("meta-vid-4096", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='4096'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='4096'>: VID 4096 is out of range"]),
    ("meta-vid-negative", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='-1'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='-1'>: not a number"]),
    ("meta-vid-huge", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='99999999999999999999999'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='99999999999999999999999'>"]),
    ("meta-vid-word", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='ten'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='ten'>: not a number"]),
    ("meta-vid-empty", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id=''/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id=''>: not a number"]),
    ("meta-vid-hex", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='0x10'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='0x10'>: not a number"]),
    ("meta-vid-two-numbers", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='5 6'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='5 6'>: not a number"]),
    ("meta-vid-range", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='1-4094'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='1-4094'>: not a number"]),
    ("meta-tag-without-id", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag/></vv:vlan></vv:interface>"), 1, &["line 5: <tag> without id"]),
    ("meta-tag-unknown-attribute", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='5' colour='red'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag> has unknown attribute 'colour'"]),
    ("meta-native-mode-bogus", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan trunk='yes'><vv:tag id='5' nativeMode='both'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='5' nativeMode='both'>: nativeMode must be"]),
    ("meta-two-native-modes", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan trunk='yes'><vv:tag id='5' nativeMode='untagged'/><vv:tag id='6' nativeMode='tagged'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='6'>: only one tag may have nativeMode"]),
    ("meta-trunk-no-two-tags", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan trunk='no'><vv:tag id='5'/><vv:tag id='6'/></vv:vlan></vv:interface>"), 1, &["line 5: <vlan trunk='no'> with more than one tag"]),
    ("meta-trunk-no-native", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan trunk='no'><vv:tag id='5' nativeMode='untagged'/></vv:vlan></vv:interface>"), 1, &["line 5: <vlan trunk='no'> with a nativeMode tag"]),
    ("meta-trunk-maybe", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan trunk='maybe'><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["line 5: <vlan trunk='maybe'>: trunk must be"]),
    ("meta-native-without-trunk", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='5' nativeMode='untagged'/></vv:vlan></vv:interface>"), 1, &["line 5: a nativeMode tag needs a trunk"]),
    ("meta-vlan-without-tags", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan/></vv:interface>"), 1, &["line 5: <vlan> has no <tag id='N'/>"]),
    ("meta-foreign-element-in-vlan", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='5'/><vv:script>reboot</vv:script></vv:vlan></vv:interface>"), 1, &["line 5: <script> is not allowed in <vlan>"]),
    ("meta-duplicate-tag", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='5'/><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='5'> is listed twice"]),
    ("meta-no-selector", "qemu", "start", Xml::Meta("<vv:interface><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["metadata line 5: <interface> needs one of mac="]),
    ("meta-two-selectors", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01' alias='net0'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["metadata line 5: <interface> names the interface twice"]),
    ("meta-unknown-interface-attribute", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01' onload='x'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["metadata line 5: <interface> has unknown attribute 'onload'"]),
    ("meta-mac-short", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["metadata line 5: <interface mac=\"52:54:00:00:00\">: not a MAC address"]),
    ("meta-mac-long", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01:02'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["line 5", "not a MAC address"]),
    ("meta-mac-dashes", "qemu", "start", Xml::Meta("<vv:interface mac='52-54-00-00-00-01'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["line 5", "not a MAC address"]),
    ("meta-mac-empty", "qemu", "start", Xml::Meta("<vv:interface mac=''><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["line 5", "not a MAC address"]),
    ("meta-mac-non-hex", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:0g'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["line 5", "not a MAC address"]),
    ("meta-mac-cisco", "qemu", "start", Xml::Meta("<vv:interface mac='5254.0000.0001'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["line 5", "not a MAC address"]),
    ("meta-mac-shell", "qemu", "start", Xml::Meta("<vv:interface mac='$(reboot)'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["line 5", "$(reboot)", "not a MAC address"]),
    ("meta-mac-newline", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01&#10;'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>"), 1, &["line 5", "not a MAC address"]),
    ("meta-duplicate-mac-other-case", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>\n<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='6'/></vv:vlan></vv:interface>"), 1, &["metadata line 6: <interface mac=\"52:54:00:00:00:01\"> is listed twice (first at line 5)"]),
    ("meta-duplicate-alias", "qemu", "start", Xml::Meta("<vv:interface alias='net0'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface><vv:interface alias='net0'><vv:vlan><vv:tag id='6'/></vv:vlan></vv:interface>"), 1, &["is listed twice (first at line 5)"]),
    ("meta-mac-and-alias-same-interface", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface>\n      <vv:interface alias='net0'><vv:vlan><vv:tag id='6'/></vv:vlan></vv:interface>"), 1, &["metadata line 6: <interface alias=\"net0\"> names interface net0", "as <interface mac=\"52:54:00:00:00:01\"> at line 5"]),
    ("meta-alias-and-target-same-interface", "qemu", "start", Xml::Meta("<vv:interface target='vnet0'><vv:vlan><vv:tag id='5'/></vv:vlan></vv:interface><vv:interface alias='net0'><vv:vlan><vv:tag id='6'/></vv:vlan></vv:interface>"), 1, &["names interface net0", "at line 5"]),
    ("meta-wrong-element", "qemu", "start", Xml::Meta("<vv:port mac='52:54:00:00:00:01'/>"), 1, &["metadata line 5: <port> in <vlans>"]),
    ("meta-foreign-element-in-vlans", "qemu", "start", Xml::Meta("<x:interface xmlns:x='urn:x' mac='52:54:00:00:00:01'/>"), 1, &["metadata line 5: <interface> in <vlans>"]),
    ("meta-interface-without-vlan", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'/>"), 1, &["metadata line 5: <interface mac=\"52:54:00:00:00:01\"> has no <vlan>"]),
    ("meta-interface-two-vlans", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='5'/></vv:vlan><vv:vlan><vv:tag id='6'/></vv:vlan></vv:interface>"), 1, &["metadata line 5", "more than one child"]),
    ("meta-interface-other-child", "qemu", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlans/></vv:interface>"), 1, &["metadata line 5: <vlans> in <interface>: expected <vlan>"]),
    ("meta-other-block", "qemu", "start", Xml::Raw(b"<domain>\n<name>vm1</name>\n<metadata>\n<vv:ports xmlns:vv='urn:virt-vlan:1'/>\n</metadata></domain>"), 1, &["metadata line 4: <ports> in urn:virt-vlan:1: expected <vlans>"]),
    ("meta-in-lxc", "lxc", "start", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='4095'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='4095'>"]),
    ("meta-on-started", "qemu", "started", Xml::Meta("<vv:interface alias='net0'><vv:vlan><vv:tag id='0'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='0'>"]),
    ("meta-on-reconnect-only-logs", "qemu", "reconnect", Xml::Meta("<vv:interface alias='net0'><vv:vlan><vv:tag id='0'/></vv:vlan></vv:interface>"), 0, &["log:reconnect vm1: domain vm1: metadata <interface alias=\"net0\">: line 5: <tag id='0'>"]),
    // the interface itself (line 9)
    ("target-slash", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='a/b'/></interface>"), 1, &["interface 52:54:00:00:00:01 (line 9): <target dev>: interface name `a/b` contains `/`"]),
    ("target-traversal", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='../../../etc/passwd'/></interface>"), 1, &["(line 9): <target dev>", "is 19 bytes"]),
    ("target-16-bytes", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='sixteen-bytes-xx'/></interface>"), 1, &["(line 9): <target dev>", "16 bytes"]),
    ("target-multibyte-18-bytes", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}'/></interface>"), 1, &["(line 9): <target dev>", "18 bytes"]),
    ("target-newline", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet0&#10;vnet1'/></interface>"), 1, &["(line 9): <target dev>", "whitespace"]),
    ("target-tab", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet0&#9;'/></interface>"), 1, &["(line 9): <target dev>", "whitespace"]),
    ("target-space-shell", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='x; reboot'/></interface>"), 1, &["(line 9): <target dev>", "whitespace"]),
    ("target-dotdot", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='..'/></interface>"), 1, &["(line 9): <target dev>", "`..` cannot be"]),
    ("target-empty", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev=''/></interface>"), 1, &["(line 9): <target dev>", "empty"]),
    ("target-colon", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet0:1'/></interface>"), 1, &["(line 9): <target dev>", "contains `:`"]),
    ("target-escape-sequence", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='v&#x85;x'/></interface>"), 1, &["(line 9): <target dev>", "whitespace"]),
    ("iface-vlan-4095", "qemu", "start", Xml::Bare("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><vlan><tag id='4095'/></vlan><target dev='vnet0'/></interface>"), 1, &["interface <vlan>: line 9: <tag id='4095'>: VID 4095 is reserved"]),
    ("iface-vlan-trunk-bogus", "qemu", "start", Xml::Bare("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><vlan trunk='1'><tag id='5'/></vlan><target dev='vnet0'/></interface>"), 1, &["interface <vlan>: line 9: <vlan trunk='1'>"]),
    ("iface-vlan-malformed-under-metadata", "qemu", "start", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><vlan><tag id='0'/></vlan><target dev='vnet0'/></interface>"), 1, &["interface <vlan>: line 9: <tag id='0'>"]),
    // migrate begin on the destination: decided without the kernel
    ("migrate-vid-not-allowed", "qemu", "migrate", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='2000'/></vv:vlan></vv:interface>"), 1, &["VID 2000 is not allowed on bridge br0 here"]),
    ("migrate-bridge-not-managed", "qemu", "migrate", Xml::Iface("<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br9'/><target dev='vnet0'/></interface>"), 1, &["bridge br9 is not managed by virt-vlan on this host"]),
    ("migrate-vid-not-carried", "qemu", "migrate", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='200'/></vv:vlan></vv:interface>"), 1, &["VID 200 leaves bridge br0 by no uplink here"]),
    ("migrate-no-bridge", "qemu", "migrate", Xml::Iface("<interface type='network'><mac address='52:54:00:00:00:01'/><source network='nowhere'/></interface>"), 1, &["cannot tell which bridge it plugs into"]),
    ("migrate-malformed", "qemu", "migrate", Xml::Raw(b"<domain><name>vm1</name>"), 1, &["line 1: not well-formed XML"]),
    ("migrate-metadata-bad", "qemu", "migrate", Xml::Meta("<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='4095'/></vv:vlan></vv:interface>"), 1, &["line 5: <tag id='4095'>"]),
    ("prepare-malformed", "qemu", "prepare", Xml::Raw(b"<domain\n"), 1, &["line 1: not well-formed XML"]),
    ("prepare-name-with-traversal-then-bad-xml", "qemu", "prepare", Xml::Raw(b"<domain><name>../../etc/passwd</name>\n<devices>"), 1, &["line 2: not well-formed XML"]),
];

const BILLION_LAUGHS: &[u8] = b"<?xml version='1.0'?>
<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'><!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'><!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'><!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'><!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'><!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'><!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'><!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>]>
<domain><name>&lol9;</name></domain>";

fn domain_cases() -> Vec<Case> {
    DOMAINS
        .iter()
        .map(|(id, driver, op, xml, code, want)| {
            let text = match *xml {
                Xml::Meta(m) => owned(domain(m, IFACE)),
                Xml::Iface(i) => owned(domain(META, i)),
                Xml::Bare(i) => owned(domain("", i)),
                Xml::Raw(b) => Text::Bytes(b),
                Xml::Gen(f) => Text::Gen(f),
            };
            let args: [&[u8]; 6] = [
                b"hook",
                driver.as_bytes(),
                b"vm1",
                op.as_bytes(),
                b"begin",
                b"-",
            ];
            let mut c = Case::new("domain-xml", id, &args, *code, want);
            c.config = Some(Text::Bytes(HOOK_CONFIG.as_bytes()));
            c.stdin = Some(text);
            c.quiet_stdout = true;
            c.limit = BIG_LIMIT;
            c
        })
        .collect()
}

fn owned(s: String) -> Text {
    Text::Owned(s.into_bytes())
}

// ---------------------------------------------------------------------------------------
// The network hook's <hookData>
// ---------------------------------------------------------------------------------------

/// `<hookData>` with the network on lines 2-8 and `port` from line 9.
fn hook_data(port: &str) -> String {
    format!(
        "<hookData>\n  <network>\n    <name>lan</name>\n    <forward mode='bridge'/>\n    <bridge name='br0'/>\n    <portgroup name='pg-bad'><vlan><tag id='0'/></vlan></portgroup>\n    <portgroup name='pg-ok'><vlan><tag id='7'/></vlan></portgroup>\n  </network>\n{port}\n</hookData>\n"
    )
}

type NetRow = (
    &'static str,
    &'static str,
    NetXml,
    i32,
    &'static [&'static str],
);

#[derive(Clone, Copy)]
enum NetXml {
    /// A `<networkport>` (from line 9) in [`hook_data`].
    Port(&'static str),
    Raw(&'static [u8]),
    Gen(fn() -> Vec<u8>),
}

/// (id, op, stdin, exit code, needles): port-created and network start/started refuse
/// (exit 1); port-deleted and updated only log.
const NETWORKS: &[NetRow] = &[
    ("malformed", "port-created", NetXml::Raw(b"<hookData><network>"), 1, &["network XML: line 1: not well-formed XML"]),
    ("no-network", "port-created", NetXml::Raw(b"<hookData><networkport/></hookData>"), 1, &["network XML: no <network> element"]),
    ("no-network-name", "port-created", NetXml::Raw(b"<hookData><network><bridge name='br0'/></network></hookData>"), 1, &["<network> has no <name>"]),
    ("no-networkport", "port-created", NetXml::Port(""), 1, &["port-created without <networkport>"]),
    ("port-no-uuid", "port-created", NetXml::Port("<networkport><mac address='52:54:00:00:00:01'/></networkport>"), 1, &["hook XML: line 9: <networkport> has no <uuid>"]),
    ("port-empty-uuid", "port-created", NetXml::Port("<networkport><uuid></uuid><mac address='52:54:00:00:00:01'/></networkport>"), 1, &["line 9: <networkport> has no <uuid>"]),
    ("port-uuid-traversal", "port-created", NetXml::Port("<networkport><uuid>../../../etc/passwd</uuid><mac address='52:54:00:00:00:01'/></networkport>"), 1, &["line 9: <networkport> <uuid>../../../etc/passwd</uuid>: not a UUID"]),
    ("port-uuid-option", "port-created", NetXml::Port("<networkport><uuid>--help</uuid><mac address='52:54:00:00:00:01'/></networkport>"), 1, &["<uuid>--help</uuid>: not a UUID"]),
    ("port-uuid-37-chars", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f000</uuid><mac address='52:54:00:00:00:01'/></networkport>"), 1, &["not a UUID"]),
    ("port-uuid-newline", "port-created", NetXml::Port("<networkport><uuid>f64c4c65&#10;x</uuid><mac address='52:54:00:00:00:01'/></networkport>"), 1, &["<uuid>f64c4c65\\nx</uuid>: not a UUID"]),
    ("port-uuid-shell", "port-created", NetXml::Port("<networkport><uuid>$(reboot)</uuid><mac address='52:54:00:00:00:01'/></networkport>"), 1, &["<uuid>$(reboot)</uuid>: not a UUID"]),
    ("port-no-mac", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid></networkport>"), 1, &["line 9: <networkport> has no <mac address>"]),
    ("port-mac-bad", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid>\n<mac address='zz'/></networkport>"), 1, &["line 10: <networkport> <mac address='zz'>: not a MAC address"]),
    ("port-mac-short", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid><mac address='52:54:00:00:00'/></networkport>"), 1, &["<mac address='52:54:00:00:00'>: not a MAC address"]),
    ("port-vlan-4095", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid><owner><name>vm1</name></owner><mac address='52:54:00:00:00:01'/><plug type='bridge' bridge='br0'/>\n<vlan><tag id='4095'/></vlan></networkport>"), 1, &["interface <vlan>: line 10: <tag id='4095'>: VID 4095 is reserved"]),
    ("port-vlan-duplicate-tag", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid><owner><name>vm1</name></owner><mac address='52:54:00:00:00:01'/><plug type='bridge' bridge='br0'/><vlan><tag id='5'/><tag id='5'/></vlan></networkport>"), 1, &["line 9: <tag id='5'> is listed twice"]),
    ("port-vlan-trunk-bogus", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid><owner><name>vm1</name></owner><mac address='52:54:00:00:00:01'/><plug type='bridge' bridge='br0'/><vlan trunk='sure'><tag id='5'/></vlan></networkport>"), 1, &["<vlan trunk='sure'>: trunk must be"]),
    ("port-vlan-not-allowed", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid><owner><name>vm1</name></owner><mac address='52:54:00:00:00:01'/><plug type='bridge' bridge='br0'/><vlan><tag id='2000'/></vlan></networkport>"), 1, &["VID 2000 is not allowed on bridge br0 (allowed = \"1-1000\" at {cfg}:1)"]),
    ("port-group-vlan-bad", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid><owner><name>vm1</name></owner><group>pg-bad</group><mac address='52:54:00:00:00:01'/><plug type='bridge' bridge='br0'/></networkport>"), 1, &["portgroup pg-bad of network lan <vlan>: line 6", "line 6: <tag id='0'>"]),
    ("port-owner-traversal-vlan-bad", "port-created", NetXml::Port("<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid><owner><name>../../etc/shadow</name></owner><mac address='52:54:00:00:00:01'/><plug type='bridge' bridge='br0'/><vlan><tag id='0'/></vlan></networkport>"), 1, &["domain ../../etc/shadow interface", "<tag id='0'>"]),
    (
        "network-vlan-bad",
        "port-created",
        NetXml::Raw(b"<hookData>\n<network><name>lan</name><bridge name='br0'/><vlan><tag id='4096'/></vlan></network>\n<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid><owner><name>vm1</name></owner><mac address='52:54:00:00:00:01'/><plug type='bridge' bridge='br0'/></networkport></hookData>"),
        1,
        &["network lan <vlan>: line 2: <tag id='4096'>: VID 4096 is out of range"],
    ),
    ("dtd", "port-created", NetXml::Raw(b"<!DOCTYPE h [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>\n<hookData><network><name>&e;</name></network></hookData>"), 1, &["line 1: <!DOCTYPE> refused"]),
    ("non-utf8", "port-created", NetXml::Raw(b"<hookData>\n<network><name>l\xe4n</name></network></hookData>"), 1, &["hook stdin:2: not UTF-8 text (byte 0xe4"]),
    ("stdin-33-mib", "port-created", NetXml::Gen(|| {
        let mut v = hook_data("").into_bytes();
        v.resize(33 << 20, b'\n');
        v
    }), 1, &["hook stdin: more than 32 MiB"]),
    ("deep-port-100k", "port-created", NetXml::Gen(|| {
        hook_data(&format!("<networkport>{}{}<mac address='52:54:00:00:00:01'/></networkport>", "<x>".repeat(100_000), "</x>".repeat(100_000))).into_bytes()
    }), 1, &["line 9: <networkport> has no <uuid>"]),
    ("start-malformed", "start", NetXml::Raw(b"<hookData><network><name>lan</name>"), 1, &["network XML: line 1: not well-formed XML"]),
    ("started-no-name", "started", NetXml::Raw(b"<hookData><network><name> </name></network></hookData>"), 1, &["<network> has no <name>"]),
    ("port-deleted-malformed-only-logs", "port-deleted", NetXml::Raw(b"<hookData>"), 0, &["log:network XML: line 1: not well-formed XML"]),
    ("updated-dtd-only-logs", "updated", NetXml::Raw(BILLION_LAUGHS), 0, &["log:network XML: line 2: <!DOCTYPE> refused"]),
];

fn network_cases() -> Vec<Case> {
    let mut out: Vec<Case> = NETWORKS
        .iter()
        .map(|(id, op, xml, code, want)| {
            let text = match xml {
                NetXml::Port(p) => owned(hook_data(p)),
                NetXml::Raw(b) => Text::Bytes(b),
                NetXml::Gen(f) => Text::Gen(*f),
            };
            let args: [&[u8]; 6] = [b"hook", b"network", b"lan", op.as_bytes(), b"begin", b"-"];
            let mut c = Case::new("network-hook", id, &args, *code, want);
            c.config = Some(Text::Bytes(HOOK_CONFIG.as_bytes()));
            c.stdin = Some(text);
            c.quiet_stdout = true;
            c.limit = BIG_LIMIT;
            c
        })
        .collect();
    // what an earlier hook remembered is hostile too: a damaged file in the state directory
    let mut c = Case::new(
        "network-hook",
        "remembered-domain-malformed",
        &[b"hook", b"network", b"lan", b"port-created", b"begin", b"-"],
        1,
        &[
            "domain XML: line 1: not well-formed XML",
            "(as remembered in {dir}/state/domains/vm1.xml)",
        ],
    );
    c.config = Some(Text::Bytes(HOOK_CONFIG.as_bytes()));
    c.files
        .push(("state/domains/vm1.xml", Text::Bytes(b"<domain><name>vm1")));
    c.stdin = Some(owned(hook_data(
        "<networkport><uuid>f64c4c65-1e32-4cf4-b69a-d0ff19327f00</uuid><owner><name>vm1</name></owner><mac address='52:54:00:00:00:01'/><plug type='bridge' bridge='br0'/></networkport>",
    )));
    c.quiet_stdout = true;
    out.push(c);
    out
}

// ---------------------------------------------------------------------------------------
// Hooks and the config, and the binary installed as libvirt's hook (argv[0])
// ---------------------------------------------------------------------------------------

fn hook_install_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let bad_meta = domain(
        "<vv:interface mac='52:54:00:00:00:01'><vv:vlan><vv:tag id='4095'/></vv:vlan></vv:interface>",
        IFACE,
    );
    let ok = domain(META, IFACE);
    // (id, argv0 under {dir}, args, config, stdin, code, needles)
    type Row = (
        &'static str,
        Option<&'static str>,
        &'static [&'static [u8]],
        &'static [u8],
        String,
        i32,
        &'static [&'static str],
    );
    let rows: Vec<Row> = vec![
        (
            "dot-d-entry-bad-metadata",
            Some("root/etc/libvirt/hooks/qemu.d/virt-vlan"),
            &[b"vm1", b"start", b"begin", b"-"],
            HOOK_CONFIG.as_bytes(),
            bad_meta.clone(),
            1,
            &["line 5: <tag id='4095'>"],
        ),
        (
            "main-hook-bad-metadata",
            Some("root/etc/libvirt/hooks/qemu"),
            &[b"vm1", b"start", b"begin", b"-"],
            HOOK_CONFIG.as_bytes(),
            bad_meta.clone(),
            1,
            &["line 5: <tag id='4095'>"],
        ),
        (
            "dot-d-entry-non-utf8-object",
            Some("root/etc/libvirt/hooks/qemu.d/virt-vlan"),
            &[b"vm\xff1", b"start", b"begin", b"-"],
            HOOK_CONFIG.as_bytes(),
            ok.clone(),
            2,
            &["hook argument `vm\u{fffd}1` is not UTF-8"],
        ),
        (
            "main-hook-non-utf8-subop",
            Some("root/etc/libvirt/hooks/lxc"),
            &[b"ct1", b"start", b"\xff", b"-"],
            HOOK_CONFIG.as_bytes(),
            ok.clone(),
            2,
            &["is not UTF-8"],
        ),
        (
            "network-dot-d-bad-port",
            Some("root/etc/libvirt/hooks/network.d/virt-vlan"),
            &[b"lan", b"port-created", b"begin", b"-"],
            HOOK_CONFIG.as_bytes(),
            hook_data(
                "<networkport><uuid>../x</uuid><mac address='52:54:00:00:00:01'/></networkport>",
            ),
            1,
            &["not a UUID"],
        ),
        (
            "start-with-bad-config",
            None,
            &[b"hook", b"qemu", b"vm1", b"start", b"begin", b"-"],
            b"[bridges.br0]\ndefault_pvid = 4095\n",
            ok.clone(),
            1,
            &["{cfg}:2: bridges.br0.default_pvid: VID 4095 is reserved"],
        ),
        (
            "start-with-non-utf8-config",
            None,
            &[b"hook", b"qemu", b"vm1", b"start", b"begin", b"-"],
            b"[bridges.br0]\n# \xff\n",
            ok.clone(),
            1,
            &["{cfg}:2: not UTF-8 text"],
        ),
        (
            "migrate-with-bad-config",
            None,
            &[b"hook", b"qemu", b"vm1", b"migrate", b"begin", b"-"],
            b"[bridges.br0.self]\ntagged = \"1-\"\n",
            ok.clone(),
            1,
            &["{cfg}:2: bridges.br0.self.tagged"],
        ),
        (
            "port-created-with-bad-config",
            None,
            &[b"hook", b"network", b"lan", b"port-created", b"begin", b"-"],
            b"[[ports]]\ninterface = \"a/b\"\n",
            hook_data(""),
            1,
            &["{cfg}:2: ports.interface"],
        ),
        (
            "daemon-start-with-bad-config-only-logs",
            None,
            &[b"hook", b"daemon", b"-", b"start", b"-", b"shutdown"],
            b"[bridges.\"../x\"]\n",
            String::new(),
            0,
            &["log:{cfg}:1: bridges.\"../x\": bridge name"],
        ),
        (
            "stopped-with-damaged-record-only-logs",
            None,
            &[b"hook", b"qemu", b"vm1", b"stopped", b"end", b"-"],
            HOOK_CONFIG.as_bytes(),
            ok.clone(),
            0,
            &["log:ownership.json is damaged"],
        ),
        (
            "wait-port-uuid-traversal",
            None,
            &[b"hook-wait-port", b"../../../etc/passwd"],
            HOOK_CONFIG.as_bytes(),
            String::new(),
            1,
            &["port ../../../etc/passwd: nothing remembered about it"],
        ),
    ];
    for (id, argv0, args, config, stdin, code, want) in rows {
        let mut c = Case::new("hook-entry", id, args, code, want);
        c.argv0 = argv0;
        c.config = Some(Text::Bytes(config));
        c.stdin = Some(owned(stdin));
        c.quiet_stdout = id != "wait-port-uuid-traversal";
        if id == "stopped-with-damaged-record-only-logs" {
            c.files
                .push(("state/ownership.json", Text::Bytes(b"{\"ports\": [")));
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------
// kvmvlan's INI files: (id, bridge_init.conf, vlan_filtering.conf, needles); always exit 2
// ---------------------------------------------------------------------------------------

type KvmRow = (
    &'static str,
    &'static [u8],
    &'static [u8],
    &'static [&'static str],
);

const KVMVLANS: &[KvmRow] = &[
    (
        "key-before-section",
        b"key = 1\n",
        b"",
        &["{bi}:1: `key` before any [section]"],
    ),
    (
        "unclosed-section",
        b"[br0\n",
        b"",
        &["{bi}:1: expected `key = value`, found `[br0`"],
    ),
    (
        "empty-section-name",
        b"[]\n",
        b"",
        &["{bi}:1: []: interface name is empty"],
    ),
    (
        "line-without-equals",
        b"[br0]\ntrunk-port eth0\n",
        b"",
        &["{bi}:2: expected `key = value`"],
    ),
    (
        "duplicate-section",
        b"",
        b"[v0]\nguest = vm\n[v0]\nguest = vm\n",
        &["{vf}:3: section [v0] appears twice"],
    ),
    (
        "duplicate-section-spaced",
        b"",
        b"[v0]\nguest = vm\n[ v0 ]\nguest = vm\n",
        &["{vf}:3: section [v0] appears twice"],
    ),
    (
        "typo-quest",
        b"",
        b"[veth1]\nquest = vm02\npvid = 20\n",
        &["{vf}:2: [veth1]: unknown key `quest` (did you mean `guest`?)"],
    ),
    (
        "unknown-bridge-key",
        b"[br0]\ntrunk-ports = eth0\n",
        b"",
        &["{bi}:2: [br0]: unknown key `trunk-ports`"],
    ),
    (
        "unknown-default-key",
        b"[DEFAULT]\nbogus = 1\n[br0]\n",
        b"",
        &["{bi}:2: [br0]: unknown key `bogus`"],
    ),
    (
        "bridge-16-bytes",
        b"[sixteen-bytes-xx]\n",
        b"",
        &["{bi}:1: [sixteen-bytes-xx]: interface name", "16 bytes"],
    ),
    (
        "bridge-slash",
        b"[br/0]\n",
        b"",
        &["{bi}:1: [br/0]: interface name `br/0` contains `/`"],
    ),
    ("bridge-dotdot", b"[..]\n", b"", &["{bi}:1: [..]"]),
    (
        "trunk-port-slash",
        b"[br0]\ntrunk-port = ../eth0\n",
        b"",
        &["{bi}:2: trunk-port: interface name `../eth0` contains `/`"],
    ),
    (
        "trunk-port-shell",
        b"[br0]\ntrunk-port = eth0;reboot x\n",
        b"",
        &["{bi}:2: trunk-port", "whitespace"],
    ),
    (
        "trunk-port-is-bridge",
        b"[br0]\ntrunk-port = br0\n",
        b"",
        &["{bi}:2: bridges.br0.uplinks.br0: a bridge cannot be its own uplink"],
    ),
    (
        "trunk-port-on-two-bridges",
        b"[br0]\ntrunk-port = eth0\n[br1]\ntrunk-port = eth0\n",
        b"",
        &["{bi}:4: bridges.br1.uplinks.eth0: eth0 is already an uplink of br0 at {bi}:2"],
    ),
    (
        "trunk-pvid-4095",
        b"[br0]\ntrunk-port = eth0\ntrunk-pvid = 4095\n",
        b"",
        &["{bi}:3: trunk-pvid: VID 4095 is reserved"],
    ),
    (
        "trunk-tags-duplicate",
        b"[br0]\ntrunk-port = eth0\ntrunk-tags = 5 5\n",
        b"",
        &["{bi}:3: trunk-tags: VID 5 is listed twice"],
    ),
    (
        "trunk-tags-range",
        b"[br0]\ntrunk-port = eth0\ntrunk-tags = 5-9\n",
        b"",
        &["{bi}:3: trunk-tags: `5-9` is not a VID"],
    ),
    (
        "br-pvid-0",
        b"[br0]\nbr-pvid = 0\n",
        b"",
        &["{bi}:2: br-pvid: VID 0"],
    ),
    (
        "br-pvid-word",
        b"[br0]\nbr-pvid = one\n",
        b"",
        &["{bi}:2: br-pvid: `one` is not a VID"],
    ),
    (
        "pvid-4096",
        b"",
        b"[v0]\nguest = vm\npvid = 4096\n",
        &["{vf}:3: pvid: VID 4096 is out of range"],
    ),
    (
        "pvid-negative",
        b"",
        b"[v0]\nguest = vm\npvid = -1\n",
        &["{vf}:3: pvid: `-1` is not a VID"],
    ),
    (
        "tagged-huge",
        b"",
        b"[v0]\nguest = vm\ntagged = 99999999999999999999999\n",
        &["{vf}:3: tagged: `99999999999999999999999` is not a VID"],
    ),
    (
        "tagged-from-default-bad",
        b"",
        b"[DEFAULT]\ntagged = 0\n[v0]\nguest = vm\n",
        &["{vf}:2: tagged: VID 0"],
    ),
    (
        "port-16-bytes",
        b"",
        b"[sixteen-bytes-xx]\nguest = vm\n",
        &["{vf}:1: [sixteen-bytes-xx]: interface name", "16 bytes"],
    ),
    (
        "port-mac-as-name",
        b"",
        b"[52:54:00:00:00:01]\nguest = vm\n",
        &["{vf}:1: [52:54:00:00:00:01]"],
    ),
    (
        "guest-traversal",
        b"",
        b"[v0]\nguest = ../../etc\npvid = 3\n",
        &["{vf}:2: ports.domain: domain: not a libvirt domain name"],
    ),
    (
        "guest-with-nul",
        b"",
        b"[v0]\nguest = vm\x00x\n",
        &["{vf}:2: ports.domain", "not a libvirt domain name"],
    ),
    (
        "non-utf8-bridge-init",
        b"[br0]\n[\xff]\n",
        b"",
        &["{bi}:2: not UTF-8 text (byte 0xff"],
    ),
    (
        "non-utf8-vlan-filtering",
        b"",
        b"\n\n[v\xe9]\n",
        &["{vf}:3: not UTF-8 text (byte 0xe9"],
    ),
    (
        "utf16-file",
        b"\xff\xfe[\x00b\x00r\x00]\x00",
        b"",
        &["{bi}:1: not UTF-8 text"],
    ),
];

/// kvmvlan files made by a function: (id, bridge_init.conf, vlan_filtering.conf, needles).
type GenKvmRow = (
    &'static str,
    fn() -> Vec<u8>,
    fn() -> Vec<u8>,
    &'static [&'static str],
);

const GEN_KVMVLANS: &[GenKvmRow] = &[
    (
        "sections-100000-then-a-duplicate",
        || b"[br0]\n".to_vec(),
        || {
            let mut s = String::new();
            for i in 0..100_000 {
                s.push_str(&format!("[v{i}]\nguest = vm{i}\n"));
            }
            s.push_str("[v99999]\nguest = vm\n");
            s.into_bytes()
        },
        &["{vf}:200001: section [v99999] appears twice"],
    ),
    (
        "ports-50000-then-a-vid-the-config-refuses",
        || b"[br0]\ntrunk-port = eth0\n".to_vec(),
        || {
            let mut s = String::new();
            for i in 0..50_000 {
                s.push_str(&format!("[v{i}]\nguest = vm\npvid = 5\n"));
            }
            // kvmvlan's own reader takes it; virt-vlan's config refuses it, named here
            s.push_str("[eth0]\nguest = ../vm\n");
            s.into_bytes()
        },
        &["{vf}:150002: ports.domain: domain: not a libvirt domain name"],
    ),
    (
        "file-17-mib",
        || {
            let mut v = b"[br0]\n".to_vec();
            v.resize(17 << 20, b'#');
            v
        },
        Vec::new,
        &["{bi}: more than 16 MiB"],
    ),
];

fn kvmvlan_cases() -> Vec<Case> {
    let rows = KVMVLANS
        .iter()
        .map(|(id, bi, vf, want)| (*id, Text::Bytes(bi), Text::Bytes(vf), *want))
        .chain(
            GEN_KVMVLANS
                .iter()
                .map(|(id, bi, vf, want)| (*id, Text::Gen(*bi), Text::Gen(*vf), *want)),
        );
    rows.map(|(id, bi, vf, want)| {
        let mut c = Case::new(
            "kvmvlan",
            id,
            &[
                b"import",
                b"kvmvlan",
                b"--bridge-init",
                b"{bi}",
                b"--vlan-filtering",
                b"{vf}",
            ],
            2,
            want,
        );
        c.files.push(("bridge_init.conf", bi));
        c.files.push(("vlan_filtering.conf", vf));
        c.limit = BIG_LIMIT;
        c
    })
    .collect()
}

// ---------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------

fn subst(s: &[u8], dir: &Path) -> Vec<u8> {
    let d = dir.as_os_str().as_bytes();
    let pairs: [(&[u8], Vec<u8>); 4] = [
        (b"{dir}", d.to_vec()),
        (b"{cfg}", [d, b"/virt-vlan.toml"].concat()),
        (b"{bi}", [d, b"/bridge_init.conf"].concat()),
        (b"{vf}", [d, b"/vlan_filtering.conf"].concat()),
    ];
    let mut out = Vec::new();
    let mut i = 0;
    'outer: while i < s.len() {
        for (k, v) in &pairs {
            if s[i..].starts_with(k) {
                out.extend_from_slice(v);
                i += k.len();
                continue 'outer;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(b)
}

/// Runs one case in `dir`; returns what is wrong with the outcome (nothing: it passed).
fn run(case: &Case, dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    if let Some(cfg) = &case.config {
        std::fs::write(dir.join("virt-vlan.toml"), cfg.bytes()).unwrap();
    }
    for (name, text) in &case.files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text.bytes()).unwrap();
    }
    let program = match case.argv0 {
        Some(rel) => {
            let link = dir.join(rel);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(BIN, &link).unwrap();
            link
        }
        None => PathBuf::from(BIN),
    };
    let mut c = Command::new(program);
    c.args(
        case.args
            .iter()
            .map(|a| subst(a, dir))
            .map(|a| os(&a).to_owned()),
    )
    .current_dir(dir)
    .env_remove("VIRT_VLAN_CONFIG")
    .env_remove("VIRT_VLAN_FAULT_KILL_AFTER_WRITES")
    .env("VIRT_VLAN_CONFIG", dir.join("virt-vlan.toml"))
    .env("VIRT_VLAN_STATE_DIR", dir.join("state"))
    .env("VIRT_VLAN_LOG_DIR", dir.join("log"))
    .env("VIRT_VLAN_ROOT", dir.join("root"))
    .env("RUST_BACKTRACE", "0")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in &case.env {
        c.env(k, os(&subst(v, dir)));
    }
    unsafe {
        // a network namespace of its own: nothing it could do reaches this machine's
        // interfaces (without the privilege for one the cases still refuse before any
        // kernel access, which is what they check)
        c.pre_exec(|| {
            libc::unshare(libc::CLONE_NEWNET);
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    let stdin = case.stdin.as_ref().map(Text::bytes).unwrap_or_default();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // the binary may refuse before reading it all: a broken pipe is expected then
        let _ = pipe.write_all(&stdin);
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status = match child.wait_timeout(case.limit).unwrap() {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            return vec![format!("still running after {:?}: killed", case.limit)];
        }
    };
    let took = start.elapsed();
    let _ = writer.join();
    let stdout = out_reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    let log = std::fs::read_to_string(dir.join("log/virt-vlan.log")).unwrap_or_default();
    let mut wrong = Vec::new();
    match status.code() {
        Some(code) if code == case.code => {}
        Some(code) => wrong.push(format!("exit {code}, wanted {}", case.code)),
        None => wrong.push(format!("killed by a signal: {status}")),
    }
    if stderr.contains("panicked") || log.contains("panicked") {
        wrong.push("panicked".into());
    }
    if stderr.len() > MAX_STDERR {
        wrong.push(format!("stderr is {} bytes", stderr.len()));
    }
    if case.quiet_stdout && !stdout.is_empty() {
        wrong.push(format!(
            "a hook printed on stdout: {:?}",
            String::from_utf8_lossy(&stdout[..stdout.len().min(200)])
        ));
    }
    for w in &case.want {
        let w = String::from_utf8_lossy(&subst(w.as_bytes(), dir)).into_owned();
        let (haystack, needle, place) = match w.strip_prefix("log:") {
            Some(n) => (&log, n.to_string(), "the hook log"),
            None => (&stderr, w.clone(), "stderr"),
        };
        if !haystack.contains(&needle) {
            wrong.push(format!("{place} lacks {needle:?}"));
        }
    }
    if case.code != 0 && stderr.trim().is_empty() {
        wrong.push("refused without a word on stderr".into());
    }
    if took > case.limit {
        wrong.push(format!("took {took:?}"));
    }
    if std::env::var_os("HOSTILE_VERBOSE").is_some() {
        let _ = writeln!(
            std::io::stderr(),
            "{} exit {:?} in {took:?}: {}",
            case.id,
            status.code(),
            stderr.trim_end().chars().take(400).collect::<String>()
        );
    }
    if !wrong.is_empty() {
        wrong.push(format!(
            "stderr: {}",
            stderr.chars().take(600).collect::<String>()
        ));
    }
    wrong
}

/// What the kernel says about this namespace's links and bridge VLANs (empty where iproute2
/// is missing): no case may change it.
fn kernel_dump() -> String {
    let mut out = String::new();
    if let Ok(o) = Command::new("ip")
        .args(["-d", "-j", "link", "show"])
        .output()
    {
        out.push_str(&without_timers(&o.stdout));
    }
    if let Ok(o) = Command::new("bridge")
        .args(["-d", "-j", "vlan", "show"])
        .output()
    {
        out.push_str(&without_timers(&o.stdout));
    }
    out
}

/// `ip -j` output without what changes by itself (a bridge's `*_timer` fields).
fn without_timers(json: &[u8]) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !k.ends_with("_timer"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(mut v) => {
            strip(&mut v);
            v.to_string()
        }
        Err(_) => String::from_utf8_lossy(json).into_owned(),
    }
}

/// The places virt-vlan writes outside a case's directory if nothing overrides them: none may
/// change while the cases run.
fn system_places() -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for p in [
        "/run/virt-vlan",
        "/var/log/virt-vlan",
        "/etc/virt-vlan",
        "/etc/libvirt/hooks",
        "/etc/apparmor.d/local",
    ] {
        let mut stack = vec![PathBuf::from(p)];
        while let Some(p) = stack.pop() {
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            out.insert(p.clone(), format!("{:?} {}", m.modified().ok(), m.len()));
            if m.is_dir()
                && let Ok(rd) = std::fs::read_dir(&p)
            {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    out
}

#[test]
fn hostile_inputs_are_refused_end_to_end() {
    let cases: Vec<Case> = [
        config_cases(),
        argv_cases(),
        domain_cases(),
        network_cases(),
        hook_install_cases(),
        kvmvlan_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut ids = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(
            ids.insert((c.category, c.id.clone())),
            "case {}/{} is listed twice",
            c.category,
            c.id
        );
    }
    let base = std::env::temp_dir().join(format!("vv-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let kernel_before = kernel_dump();
    let places_before = system_places();
    let only: Option<String> = std::env::var("HOSTILE_CASE").ok();
    let mut failed = Vec::new();
    let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ran = 0;
    for (i, case) in cases.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !case.id.contains(o.as_str())) {
            continue;
        }
        ran += 1;
        let dir = base.join(format!("{i:03}"));
        let wrong = run(case, &dir);
        if wrong.is_empty() {
            *by_category.entry(case.category).or_default() += 1;
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            failed.push(format!(
                "{}/{} ({}):\n    {}",
                case.category,
                case.id,
                dir.display(),
                wrong.join("\n    ")
            ));
        }
    }
    assert_eq!(
        kernel_dump(),
        kernel_before,
        "the kernel changed while the hostile cases ran"
    );
    assert_eq!(
        system_places(),
        places_before,
        "something was written outside the cases' directories"
    );
    assert!(
        failed.is_empty(),
        "{} of {ran} hostile cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    let _ = std::fs::remove_dir_all(&base);
    let passed: usize = by_category.values().sum();
    // straight to the file descriptor: seen without --nocapture, for RELIABILITY.md
    let _ = writeln!(
        std::io::stderr(),
        "hostile cases: {passed} passed ({})",
        by_category
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if only.is_none() {
        assert!(passed >= 200, "only {passed} hostile cases");
    }
}
