//! The state directory `/run/virt-vlan/` (gone at reboot, like the VLANs it describes): the
//! ownership record, the lock that serialises every virt-vlan process (hooks for several
//! guests, `apply` and `watch` can run at once; each read-plan-apply-record cycle holds it),
//! and what libvirt's hooks told us — domain XML, network XML, network ports — since a hook
//! must never ask libvirt itself.

use crate::ownership::Record;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What libvirt told a hook, kept as the XML it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A running domain's live XML, by domain name.
    Domain,
    /// A network's XML, by network name.
    Network,
    /// A `port-created` hook's `<hookData>`, by port uuid.
    Port,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Domain => "domains",
            Kind::Network => "networks",
            Kind::Port => "ports",
        }
    }
}

/// A name as a file name: ASCII letters, digits, `.`, `_`, `-` and non-ASCII characters
/// kept, every other ASCII byte `%XX` (domain names are the user's and may hold anything
/// libvirt allows; escaping non-ASCII too tripled a name's length, past what a file name can
/// hold for names libvirt itself stores as files).
pub fn file_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let kept = c.is_ascii_alphanumeric()
            || c == '_'
            || c == '-'
            || (c == '.' && !out.is_empty())
            || !c.is_ascii();
        if kept {
            out.push(c);
        } else {
            out.push_str(&format!("%{:02X}", c as u32));
        }
    }
    out
}

/// Longest name part of a remembered file: a file name holds 255 bytes, and
/// `.xml.tmp.<pid>` must fit beside it.
const MAX_FILE_NAME: usize = 230;

fn unfile_name(s: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// Default state directory; `VIRT_VLAN_STATE_DIR` overrides it (tests, chroots).
pub const DEFAULT_DIR: &str = "/run/virt-vlan";

/// Largest ownership record read: a host with thousands of ports records a few MiB.
const MAX_RECORD: u64 = 64 << 20;

/// The state directory.
pub struct Store {
    dir: PathBuf,
}

/// Held while a process reads, changes and records the host; released on drop.
pub struct Locked {
    _file: File,
}

impl Store {
    pub fn open_default() -> Store {
        let dir = std::env::var_os("VIRT_VLAN_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        Store { dir }
    }

    pub fn at(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record_path(&self) -> PathBuf {
        self.dir.join("ownership.json")
    }

    /// Waits for the exclusive lock.
    pub fn lock(&self) -> Result<Locked> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create state directory {}", self.dir.display()))?;
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open lock {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Locked { _file: file })
    }

    /// Reads the record; a missing file is an empty record. A record that cannot be parsed is
    /// an error: guessing would risk removing VIDs that are not ours.
    pub fn load(&self, _lock: &Locked) -> Result<Record> {
        self.load_unlocked()
    }

    /// Reads the record without the lock, for read-only views (`show`).
    pub fn load_unlocked(&self) -> Result<Record> {
        let path = self.record_path();
        // Only a regular file is read: a FIFO put there would block every run, a device could
        // be endless. Opened without following a FIFO's writer (O_NONBLOCK), checked, bounded.
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&path);
        let text = match opened {
            Ok(f) => {
                let kind = f.metadata().map(|m| m.file_type());
                if !kind.as_ref().is_ok_and(|k| k.is_file()) {
                    anyhow::bail!(
                        "ownership record {} is {}, not a regular file; move it away to start \
                         over (virt-vlan will then treat every VID on the host as foreign)",
                        path.display(),
                        kind.map_or_else(|e| format!("unreadable ({e})"), kind_of)
                    );
                }
                crate::text::read_limited(f, &path.display().to_string(), MAX_RECORD)
                    .map_err(|e| anyhow::anyhow!("ownership record {e}"))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Record::default()),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => anyhow::bail!(
                "ownership record {} is a symbolic link; refused (move it away to start over)",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        {
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "ownership record {} is damaged; move it away to start over \
                     (virt-vlan will then treat every VID on the host as foreign)",
                    path.display()
                )
            })
        }
    }

    /// Replaces the record atomically (write a temporary file, rename over).
    pub fn save(&self, _lock: &Locked, record: &Record) -> Result<()> {
        write_atomically(
            &self.record_path(),
            serde_json::to_string_pretty(record)?.as_bytes(),
        )
    }

    /// Keeps what a hook was told about `name`.
    pub fn remember(&self, kind: Kind, name: &str, xml: &str) -> Result<()> {
        let file = file_name(name);
        if file.len() > MAX_FILE_NAME {
            let start: String = name.chars().take(40).collect();
            return Err(crate::error::BadInput(format!(
                "{} name `{}…` is {} bytes: too long for a name libvirt keeps as a file",
                kind.dir().trim_end_matches('s'),
                start.escape_debug(),
                name.len()
            ))
            .into());
        }
        let dir = self.dir.join(kind.dir());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomically(&dir.join(format!("{file}.xml")), xml.as_bytes())
    }

    /// The file what a hook was told about `name` is kept in.
    pub fn path_of(&self, kind: Kind, name: &str) -> PathBuf {
        self.dir
            .join(kind.dir())
            .join(format!("{}.xml", file_name(name)))
    }

    pub fn forget(&self, kind: Kind, name: &str) {
        let _ = std::fs::remove_file(
            self.dir
                .join(kind.dir())
                .join(format!("{}.xml", file_name(name))),
        );
    }

    /// Everything remembered of one kind, as (name, XML), by name.
    pub fn remembered(&self, kind: Kind) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(kind.dir())) else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let name = unfile_name(file.strip_suffix(".xml")?)?;
                Some((name, std::fs::read_to_string(e.path()).ok()?))
            })
            .collect();
        out.sort();
        out
    }

    pub fn recall(&self, kind: Kind, name: &str) -> Option<String> {
        std::fs::read_to_string(
            self.dir
                .join(kind.dir())
                .join(format!("{}.xml", file_name(name))),
        )
        .ok()
    }
}

/// What a file that is not a regular one is, in words.
fn kind_of(k: std::fs::FileType) -> String {
    use std::os::unix::fs::FileTypeExt;
    let what = if k.is_dir() {
        "a directory"
    } else if k.is_fifo() {
        "a FIFO"
    } else if k.is_socket() {
        "a socket"
    } else if k.is_block_device() || k.is_char_device() {
        "a device"
    } else {
        "a special file"
    };
    what.to_string()
}

/// Writes `path` so that readers see the old or the new content, never a part. No fsync:
/// the state directory lives in /run (tmpfs), gone at reboot with the VLANs it describes,
/// so only the rename's atomicity matters, and hooks sit on the guest-start path.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{Origin, Role};
    use crate::ownership::PortRecord;
    use crate::port_vlans::PortVlans;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("virt-vlan-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_missing_is_empty() {
        let store = Store::at(&tmpdir("rt"));
        let lock = store.lock().unwrap();
        assert_eq!(store.load(&lock).unwrap(), Record::default());
        let mut r = Record::default();
        r.set(
            "br0",
            "vnet0",
            PortRecord {
                ifindex: 3,
                role: Role::Guest,
                owned: "100".parse().unwrap(),
                desired: PortVlans::access(100),
                origin: Origin::new("metadata"),
            },
        );
        store.save(&lock, &r).unwrap();
        assert_eq!(store.load(&lock).unwrap(), r);
        let _ = std::fs::remove_dir_all(store.dir());
    }

    #[test]
    fn damaged_record_is_an_error_naming_the_file() {
        let store = Store::at(&tmpdir("bad"));
        let lock = store.lock().unwrap();
        std::fs::write(store.dir().join("ownership.json"), "{not json").unwrap();
        let e = format!("{:#}", store.load(&lock).unwrap_err());
        assert!(e.contains("ownership.json is damaged"), "{e}");
        let _ = std::fs::remove_dir_all(store.dir());
    }

    #[test]
    fn a_record_that_is_no_regular_file_is_refused_without_blocking() {
        let store = Store::at(&tmpdir("kinds"));
        let lock = store.lock().unwrap();
        let path = store.dir().join("ownership.json");
        let load = || format!("{:#}", store.load(&lock).unwrap_err());
        // a FIFO nobody writes to: reading it would block every run
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = load();
        assert!(
            e.contains("ownership.json is a FIFO, not a regular file"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let e = load();
        assert!(
            e.contains("ownership.json is a directory, not a regular file"),
            "{e}"
        );
        std::fs::remove_dir(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let e = load();
        assert!(e.contains("ownership.json is a symbolic link"), "{e}");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"{\"bridges\": \xff}").unwrap();
        let e = load();
        assert!(e.contains("ownership.json:1: not UTF-8"), "{e}");
        let _ = std::fs::remove_dir_all(store.dir());
    }

    #[test]
    fn remembers_xml_under_safe_file_names() {
        let store = Store::at(&tmpdir("remember"));
        for name in [
            "vm1",
            "../../etc/passwd",
            "a b/c%",
            ".hidden",
            "ünï",
            &"日本".repeat(30),
        ] {
            store
                .remember(Kind::Domain, name, &format!("<domain>{name}</domain>"))
                .unwrap();
        }
        let files: Vec<String> = std::fs::read_dir(store.dir().join("domains"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            files
                .iter()
                .all(|f| !f.contains('/') && !f.starts_with('.')),
            "{files:?}"
        );
        let got: Vec<String> = store
            .remembered(Kind::Domain)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(got.len(), 6);
        assert!(got.contains(&"../../etc/passwd".to_string()) && got.contains(&"ünï".to_string()));
        assert_eq!(
            store.recall(Kind::Domain, "a b/c%").unwrap(),
            "<domain>a b/c%</domain>"
        );
        store.forget(Kind::Domain, "a b/c%");
        assert!(store.recall(Kind::Domain, "a b/c%").is_none());
        assert!(store.remembered(Kind::Network).is_empty());
        let e = store.remember(Kind::Domain, &"x".repeat(300), "<domain/>");
        assert!(format!("{:#}", e.unwrap_err()).contains("300 bytes"));
        let _ = std::fs::remove_dir_all(store.dir());
    }

    #[test]
    fn lock_is_exclusive_between_open_files() {
        let store = Store::at(&tmpdir("lock"));
        let held = store.lock().unwrap();
        let other = OpenOptions::new()
            .write(true)
            .open(store.dir().join("lock"))
            .unwrap();
        assert!(other.try_lock().is_err(), "a second locker must wait");
        drop(held);
        assert!(other.try_lock().is_ok());
        let _ = std::fs::remove_dir_all(store.dir());
    }
}
