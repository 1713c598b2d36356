//! The ownership record on disk under `/run/virt-vlan/` (gone at reboot, like the VLANs it
//! describes) and the lock that serialises every virt-vlan process: hooks for several guests,
//! `apply` and `watch` can run at once, and each read-plan-apply-record cycle holds the lock.

use crate::ownership::Record;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Default state directory; `VIRT_VLAN_STATE_DIR` overrides it (tests, chroots).
pub const DEFAULT_DIR: &str = "/run/virt-vlan";

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
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "ownership record {} is damaged; move it away to start over \
                     (virt-vlan will then treat every VID on the host as foreign)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Replaces the record atomically (write a temporary file, rename over).
    pub fn save(&self, _lock: &Locked, record: &Record) -> Result<()> {
        let path = self.record_path();
        let tmp = self.dir.join("ownership.json.tmp");
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(record)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }
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
