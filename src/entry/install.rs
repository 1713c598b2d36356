//! `virt-vlan install [--root DIR] [--uninstall] [--main-hook]`: puts virt-vlan where
//! libvirt runs hooks (a `<driver>.d/virt-vlan` symlink on libvirt ≥ 6.5, the main
//! `<driver>` hook otherwise or on request), a commented default config, and on AppArmor
//! hosts the libvirtd local rule it needs. Never replaces another program's hook; idempotent;
//! says what it did.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Hook drivers virt-vlan installs for.
pub const HOOKED: &[&str] = &["qemu", "lxc", "network", "daemon"];

pub const APPARMOR_BEGIN: &str = "# BEGIN virt-vlan (managed by `virt-vlan install`)";
const APPARMOR_END: &str = "# END virt-vlan";
/// libvirtd's AppArmor profile and the local file it includes (below the root).
pub const APPARMOR_PROFILE: &str = "etc/apparmor.d/usr.sbin.libvirtd";
pub const APPARMOR_LOCAL: &str = "etc/apparmor.d/local/usr.sbin.libvirtd";

pub struct Options {
    pub root: PathBuf,
    pub uninstall: bool,
    /// Install as `/etc/libvirt/hooks/<driver>` (runs the kvmvlan dispatcher too).
    pub main_hook: bool,
    /// The binary the hooks point to.
    pub exe: PathBuf,
    /// libvirt's version, if known (`(major, minor)`).
    pub libvirt: Option<(u32, u32)>,
    /// Run by the Debian package's maintainer scripts: dpkg owns the config (a conffile, which
    /// an admin may delete on purpose) and the unit, so only hook entries and the AppArmor
    /// rule are installed or removed.
    pub package: bool,
}

/// libvirt's version from `libvirtd --version` (or `virtqemud --version`).
pub fn libvirt_version() -> Option<(u32, u32)> {
    for daemon in ["libvirtd", "virtqemud"] {
        let Ok(o) = std::process::Command::new(daemon).arg("--version").output() else {
            continue;
        };
        let text = String::from_utf8_lossy(&o.stdout);
        let v = text.split_whitespace().last()?;
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        if let (Some(Some(a)), Some(Some(b))) = (parts.next(), parts.next()) {
            return Some((a, b));
        }
    }
    None
}

/// The commented config a fresh install gets: valid, manages nothing until edited.
pub const DEFAULT_CONFIG: &str = r#"# virt-vlan config. Nothing is managed until a bridge is listed here.
# Reference: README.md ("Config"). Check with `virt-vlan check`, preview with
# `virt-vlan apply --dry-run`.
#
# [bridges.br0]
# vlan_filtering = true      # switch it on (default true)
# default_pvid = 0           # VID a newly enslaved port gets; 0 = none, so an unconfigured port is isolated
# vlan_protocol = "802.1Q"   # or "802.1ad"
# allowed = "1-4094"         # VIDs guests on this bridge may be given (policy; default all)
# [bridges.br0.self]         # the bridge's own port: the host's access
# pvid = 1
# [bridges.br0.uplinks.eth0] # trunk towards the physical switch
# pvid = 1
# tagged = "100,200,300"
# on_demand = true           # also carry every VID a local guest port on this bridge uses
#
# Guests get their VLANs from libvirt's XML (domain metadata in urn:virt-vlan:1, <vlan>,
# portgroups); static ports can be listed too:
# [[ports]]
# domain = "vm1"
# interface = "net0"         # target dev, MAC or alias
# pvid = 100
#
# [hooks]
# on_error = "abort"         # or "isolate" (no VLAN, guest starts) or "warn"
"#;

/// The watcher's unit file name.
pub const UNIT_NAME: &str = "virt-vlan-watch.service";

/// Where a package puts units (below the root); a unit there makes `install` write none.
const PACKAGED_UNIT_DIRS: &[&str] = &["usr/lib/systemd/system", "lib/systemd/system"];

const UNIT_MARK: &str = "# Installed by `virt-vlan install`";

/// The systemd unit for `virt-vlan watch`, for `exe`, as `install` writes it.
pub fn watch_unit(exe: &Path) -> String {
    format!(
        "{UNIT_MARK}; `virt-vlan install --uninstall` removes it.\n{}",
        unit_body(exe)
    )
}

/// The same unit as the Debian package ships it (dpkg owns it; `install` leaves it alone).
pub fn packaged_unit(exe: &Path) -> String {
    format!(
        "# Shipped by the virt-vlan package (from `virt-vlan package-files`).\n{}",
        unit_body(exe)
    )
}

fn unit_body(exe: &Path) -> String {
    format!(
        "[Unit]
Description=virt-vlan watch: keep bridge VLANs right (hot-plug without hooks, drift)
Documentation=man:virt-vlan(8) man:virt-vlan-watch(8)
After=network-online.target libvirtd.service virtqemud.service virtnetworkd.service
Wants=network-online.target

[Service]
Type=exec
ExecStart={exe} watch
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
",
        exe = exe.display()
    )
}

/// The watch unit under `/etc/systemd/system` (on systemd hosts only).
fn systemd_unit(root: &Path, exe: &Path, uninstall: bool) -> Result<Option<String>> {
    let dir = root.join("etc/systemd/system");
    if !dir.is_dir() {
        return Ok(None);
    }
    let path = dir.join(UNIT_NAME);
    if let Some(packaged) = PACKAGED_UNIT_DIRS
        .iter()
        .map(|d| root.join(d).join(UNIT_NAME))
        .find(|p| !uninstall && p.exists())
    {
        return Ok(Some(format!(
            "{}: the package's {} is used; none written here",
            path.display(),
            packaged.display()
        )));
    }
    let old = std::fs::read_to_string(&path).ok();
    let ours = old.as_deref().is_none_or(|o| o.starts_with(UNIT_MARK));
    if uninstall {
        return Ok(Some(match old {
            None => format!("{}: not installed", path.display()),
            Some(_) if !ours => format!("{}: left alone (not virt-vlan's)", path.display()),
            Some(_) => {
                std::fs::remove_file(&path)?;
                format!("{}: removed", path.display())
            }
        }));
    }
    let new = watch_unit(exe);
    if !ours {
        return Ok(Some(format!(
            "{}: left alone (not virt-vlan's)",
            path.display()
        )));
    }
    if old.as_deref() == Some(new.as_str()) {
        return Ok(Some(format!("{}: already installed", path.display())));
    }
    std::fs::write(&path, new).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(format!(
        "{}: installed; `systemctl enable --now virt-vlan-watch` to run it",
        path.display()
    )))
}

/// What `install` did, a line per thing.
pub fn run(o: &Options) -> Result<Vec<String>> {
    // a wrong --root is the user's to fix (exit 2), not something failing half-way through
    if o.root.exists() && !o.root.is_dir() {
        return Err(crate::error::BadInput(format!(
            "--root {}: not a directory",
            o.root.display()
        ))
        .into());
    }
    let mut said = Vec::new();
    let hooks = o.root.join("etc/libvirt/hooks");
    let dot_d = !o.main_hook && o.libvirt.is_none_or(|v| v >= (6, 5));
    if !o.uninstall {
        if o.libvirt.is_none() {
            said.push(
                "libvirt not found here; assuming it runs <driver>.d/ hooks (libvirt >= 6.5)"
                    .into(),
            );
        }
        if !o.main_hook && !dot_d {
            said.push("libvirt < 6.5 runs only the main hook; installing as the main hook".into());
        }
    }
    for driver in HOOKED {
        let (dot, main) = (
            hooks.join(format!("{driver}.d/virt-vlan")),
            hooks.join(driver),
        );
        let (path, other) = if dot_d { (dot, main) } else { (main, dot) };
        said.push(hook_entry(&path, &o.exe, o.uninstall)?);
        // uninstalling takes ours away from the other place too (an earlier install of the
        // other kind, or another libvirt version's); anything else there is not mentioned
        if o.uninstall && is_ours(&other) {
            said.push(hook_entry(&other, &o.exe, true)?);
        }
    }
    if o.package {
        // dpkg's conffile
    } else if !o.uninstall {
        said.push(default_config(
            &o.root.join("etc/virt-vlan/virt-vlan.toml"),
        )?);
    } else {
        said.push(format!(
            "kept {} (remove it yourself if you want)",
            o.root.join("etc/virt-vlan/virt-vlan.toml").display()
        ));
    }
    if let Some(line) = apparmor(&o.root, &o.exe, o.uninstall)? {
        said.push(line);
    }
    if o.package {
        // dpkg's unit
    } else if let Some(line) = systemd_unit(&o.root, &o.exe, o.uninstall)? {
        said.push(line);
    }
    if !o.uninstall {
        said.push("restart libvirtd (or virtqemud/virtnetworkd) so it runs the new hooks".into());
    }
    Ok(said)
}

/// Whether `path` is a hook entry of ours: a symlink to a file named `virt-vlan`.
pub fn is_ours(path: &Path) -> bool {
    std::fs::read_link(path).is_ok_and(|t| t.file_name().is_some_and(|n| n == "virt-vlan"))
}

fn hook_entry(path: &Path, exe: &Path, uninstall: bool) -> Result<String> {
    let exists = path.symlink_metadata().is_ok();
    if uninstall {
        if !exists {
            return Ok(format!("{}: not installed", path.display()));
        }
        if !is_ours(path) {
            return Ok(format!("{}: left alone (not virt-vlan's)", path.display()));
        }
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
        if let Some(dir) = path
            .parent()
            .filter(|d| d.extension().is_some_and(|e| e == "d"))
        {
            let _ = std::fs::remove_dir(dir); // only if empty
        }
        return Ok(format!("{}: removed", path.display()));
    }
    if exists {
        if std::fs::read_link(path).is_ok_and(|t| t == exe) {
            return Ok(format!("{}: already installed", path.display()));
        }
        if !is_ours(path) {
            bail!(
                "{} is another program's hook; virt-vlan will not replace it. Install with the \
                 <driver>.d/ entries instead (the default), or merge it by hand",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    std::fs::create_dir_all(path.parent().unwrap())
        .with_context(|| format!("cannot create {}", path.parent().unwrap().display()))?;
    std::os::unix::fs::symlink(exe, path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(format!(
        "{} -> {}: installed",
        path.display(),
        exe.display()
    ))
}

fn default_config(path: &Path) -> Result<String> {
    if path.exists() {
        return Ok(format!("{}: kept (already there)", path.display()));
    }
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(path, DEFAULT_CONFIG)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(format!(
        "{}: written (commented; manages nothing until you edit it)",
        path.display()
    ))
}

/// The libvirtd AppArmor local rule, between its markers: hooks run confined by libvirtd's
/// profile and need a netlink socket, our binary, state and log directories.
pub fn apparmor_rule(exe: &Path) -> String {
    format!(
        "{APPARMOR_BEGIN}\n  network netlink dgram,\n  network netlink raw,\n  {} rmix,\n  \
         /run/virt-vlan/ rw,\n  /run/virt-vlan/** rwk,\n  /var/log/virt-vlan/ rw,\n  \
         /var/log/virt-vlan/** rw,\n  /etc/virt-vlan/** r,\n{APPARMOR_END}\n",
        exe.display()
    )
}

/// The binaries the local rule at `text` lets libvirtd run (none: no rule of ours).
pub fn apparmor_rule_exes(text: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for l in text.lines() {
        if l == APPARMOR_BEGIN {
            inside = true;
        } else if l == APPARMOR_END {
            inside = false;
        } else if inside && let Some(exe) = l.trim().strip_suffix(" rmix,") {
            out.push(exe.to_string());
        }
    }
    out
}

fn apparmor(root: &Path, exe: &Path, uninstall: bool) -> Result<Option<String>> {
    if !root.join("etc/apparmor.d").is_dir() {
        return Ok(None);
    }
    let local = root.join(APPARMOR_LOCAL);
    let old = std::fs::read_to_string(&local).unwrap_or_default();
    let kept: Vec<&str> = {
        let mut inside = false;
        old.lines()
            .filter(|l| {
                if *l == APPARMOR_BEGIN {
                    inside = true;
                }
                let keep = !inside;
                if *l == APPARMOR_END {
                    inside = false;
                }
                keep
            })
            .collect()
    };
    let mut new = kept.join("\n");
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    if !uninstall {
        new.push_str(&apparmor_rule(exe));
    }
    if new == old {
        return Ok(Some(format!(
            "{}: already {}",
            local.display(),
            if uninstall { "clean" } else { "has the rule" }
        )));
    }
    std::fs::create_dir_all(local.parent().unwrap())?;
    std::fs::write(&local, &new).with_context(|| format!("cannot write {}", local.display()))?;
    let mut line = format!(
        "{}: rule {}",
        local.display(),
        if uninstall { "removed" } else { "added" }
    );
    if root == Path::new("/") {
        let profile = Path::new("/").join(APPARMOR_PROFILE);
        let reloaded = profile.exists()
            && std::process::Command::new("apparmor_parser")
                .arg("-r")
                .arg(&profile)
                .status()
                .is_ok_and(|s| s.success());
        line.push_str(if reloaded {
            "; profile reloaded"
        } else {
            "; reload libvirtd's AppArmor profile to activate it"
        });
    }
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vv-install-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn opts(root: &Path, libvirt: Option<(u32, u32)>) -> Options {
        Options {
            root: root.to_path_buf(),
            uninstall: false,
            main_hook: false,
            exe: PathBuf::from("/usr/local/sbin/virt-vlan"),
            libvirt,
            package: false,
        }
    }

    #[test]
    fn dot_d_entries_config_and_apparmor_idempotently() {
        let root = tmp("dotd");
        std::fs::create_dir_all(root.join("etc/apparmor.d/local")).unwrap();
        std::fs::write(
            root.join("etc/apparmor.d/local/usr.sbin.libvirtd"),
            "# site rules\n  /srv/** r,\n",
        )
        .unwrap();
        let said = run(&opts(&root, Some((9, 0)))).unwrap();
        for d in HOOKED {
            let p = root.join(format!("etc/libvirt/hooks/{d}.d/virt-vlan"));
            assert_eq!(
                std::fs::read_link(&p).unwrap(),
                PathBuf::from("/usr/local/sbin/virt-vlan")
            );
        }
        assert!(said.iter().any(|l| l.ends_with("installed")), "{said:?}");
        let cfg = std::fs::read_to_string(root.join("etc/virt-vlan/virt-vlan.toml")).unwrap();
        crate::config::Config::parse("default", &cfg).expect("the default config is valid");
        let aa =
            std::fs::read_to_string(root.join("etc/apparmor.d/local/usr.sbin.libvirtd")).unwrap();
        assert!(
            aa.starts_with("# site rules\n  /srv/** r,\n# BEGIN virt-vlan"),
            "{aa}"
        );
        assert!(aa.contains("network netlink dgram,"));
        // again: nothing changes
        let said = run(&opts(&root, Some((9, 0)))).unwrap();
        assert!(
            said.iter()
                .filter(|l| l.ends_with("already installed"))
                .count()
                == 4,
            "{said:?}"
        );
        assert!(said.iter().any(|l| l.ends_with("kept (already there)")));
        assert!(said.iter().any(|l| l.ends_with("already has the rule")));
        assert_eq!(
            std::fs::read_to_string(root.join("etc/apparmor.d/local/usr.sbin.libvirtd")).unwrap(),
            aa
        );
        // uninstall removes ours, keeps the config and the site's own rules
        let mut u = opts(&root, Some((9, 0)));
        u.uninstall = true;
        run(&u).unwrap();
        assert!(!root.join("etc/libvirt/hooks/qemu.d").exists());
        assert!(root.join("etc/virt-vlan/virt-vlan.toml").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("etc/apparmor.d/local/usr.sbin.libvirtd")).unwrap(),
            "# site rules\n  /srv/** r,\n"
        );
    }

    #[test]
    fn installs_the_watch_unit_on_systemd_hosts() {
        let root = tmp("unit");
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        let said = run(&opts(&root, Some((9, 0)))).unwrap();
        assert!(
            said.iter()
                .any(|l| l.contains("virt-vlan-watch.service: installed")),
            "{said:?}"
        );
        let unit = std::fs::read_to_string(root.join("etc/systemd/system/virt-vlan-watch.service"))
            .unwrap();
        assert!(unit.contains("ExecStart=/usr/local/sbin/virt-vlan watch"));
        assert!(unit.contains("After=network-online.target libvirtd.service"));
        assert!(unit.contains("Restart=on-failure"));
        let said = run(&opts(&root, Some((9, 0)))).unwrap();
        assert!(
            said.iter()
                .any(|l| l.contains("virt-vlan-watch.service: already installed")),
            "{said:?}"
        );
        let mut u = opts(&root, Some((9, 0)));
        u.uninstall = true;
        run(&u).unwrap();
        assert!(
            !root
                .join("etc/systemd/system/virt-vlan-watch.service")
                .exists()
        );
        // somebody's own unit of that name is left alone
        std::fs::write(
            root.join("etc/systemd/system/virt-vlan-watch.service"),
            "[Unit]\n",
        )
        .unwrap();
        let said = run(&opts(&root, Some((9, 0)))).unwrap();
        assert!(said.iter().any(|l| l.contains("left alone")), "{said:?}");
    }

    #[test]
    fn never_clobbers_a_foreign_hook() {
        let root = tmp("foreign");
        let hooks = root.join("etc/libvirt/hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        std::fs::write(hooks.join("qemu"), "#!/bin/bash\n# kvmvlan dispatcher\n").unwrap();
        let mut o = opts(&root, Some((9, 0)));
        o.main_hook = true;
        let e = run(&o).unwrap_err().to_string();
        assert!(e.contains("is another program's hook"), "{e}");
        assert_eq!(
            std::fs::read_to_string(hooks.join("qemu")).unwrap(),
            "#!/bin/bash\n# kvmvlan dispatcher\n"
        );
        // the .d entry sits beside it happily
        run(&opts(&root, Some((9, 0)))).unwrap();
        assert!(is_ours(&hooks.join("qemu.d/virt-vlan")));
        // and uninstall leaves the foreign main hook alone
        o.uninstall = true;
        let said = run(&o).unwrap();
        assert!(said.iter().any(|l| l.contains("left alone")), "{said:?}");
        assert!(hooks.join("qemu").exists());
    }

    #[test]
    fn old_libvirt_gets_the_main_hook() {
        let root = tmp("old");
        let said = run(&opts(&root, Some((6, 0)))).unwrap();
        assert!(said[0].contains("installing as the main hook"), "{said:?}");
        assert!(is_ours(&root.join("etc/libvirt/hooks/qemu")));
        assert!(!root.join("etc/libvirt/hooks/qemu.d").exists());
    }

    #[test]
    fn package_mode_leaves_config_and_unit_to_dpkg_and_uninstall_takes_every_entry_of_ours() {
        let root = tmp("package");
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        let mut o = opts(&root, Some((9, 0)));
        o.package = true;
        let said = run(&o).unwrap();
        assert!(is_ours(&root.join("etc/libvirt/hooks/qemu.d/virt-vlan")));
        assert!(
            !root.join("etc/virt-vlan/virt-vlan.toml").exists(),
            "{said:?}"
        );
        assert!(!root.join("etc/systemd/system").join(UNIT_NAME).exists());
        // an older install's main hook of ours goes with the .d entries; a foreign one stays
        std::os::unix::fs::symlink(
            "/usr/local/sbin/virt-vlan",
            root.join("etc/libvirt/hooks/qemu"),
        )
        .unwrap();
        std::fs::write(root.join("etc/libvirt/hooks/lxc"), "#!/bin/sh\n").unwrap();
        o.uninstall = true;
        let said = run(&o).unwrap();
        assert!(!root.join("etc/libvirt/hooks/qemu").exists(), "{said:?}");
        assert!(!root.join("etc/libvirt/hooks/qemu.d").exists(), "{said:?}");
        assert!(root.join("etc/libvirt/hooks/lxc").exists(), "{said:?}");
        assert!(
            !said.iter().any(|l| l.contains("hooks/lxc: left alone")),
            "{said:?}"
        );
    }

    #[test]
    fn a_packaged_unit_makes_install_write_none() {
        let root = tmp("packaged-unit");
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib/systemd/system")).unwrap();
        std::fs::write(
            root.join("usr/lib/systemd/system").join(UNIT_NAME),
            packaged_unit(Path::new("/usr/sbin/virt-vlan")),
        )
        .unwrap();
        let said = run(&opts(&root, Some((9, 0)))).unwrap();
        assert!(
            said.iter().any(|l| l.contains("the package's")
                && l.contains("usr/lib/systemd/system/virt-vlan-watch.service is used")),
            "{said:?}"
        );
        assert!(!root.join("etc/systemd/system").join(UNIT_NAME).exists());
        assert!(
            packaged_unit(Path::new("/usr/sbin/virt-vlan"))
                .contains("ExecStart=/usr/sbin/virt-vlan watch")
        );
    }

    #[test]
    fn the_apparmor_rule_names_the_binaries_it_allows() {
        let text = format!(
            "# site\n{}{}",
            apparmor_rule(Path::new("/usr/sbin/virt-vlan")),
            "  /usr/local/sbin/virt-vlan rmix,\n"
        );
        assert_eq!(apparmor_rule_exes(&text), ["/usr/sbin/virt-vlan"]);
        assert!(apparmor_rule_exes("# site\n").is_empty());
    }
}
