//! What `check` reads about the host besides the kernel's bridges, for its pure findings:
//! libvirt's daemons (`/proc`) and version, virt-vlan's hook entries
//! (`/etc/libvirt/hooks`), AppArmor (`/sys/module/apparmor`, libvirtd's profile and its local
//! file), running `virt-vlan watch` daemons (`/proc/*/cmdline`), and the running guests'
//! `type='bridge'` interfaces (from the domain view `check` already has). Processes are read
//! with procfs; the rest are a file or two each. Each probe fails soft: what cannot be read is
//! reported as unknown or absent, never as an error.

use super::{AppArmor, BridgeInterface, Daemon, Hook, HookEntries, HookState, HostFacts, Libvirt};
use crate::guests::DomainView;
use crate::install::{APPARMOR_LOCAL, APPARMOR_PROFILE, HOOKED};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// libvirt's daemons: the monolithic one and the modular ones that run hooks.
const DAEMONS: &[&str] = &["libvirtd", "virtqemud", "virtlxcd", "virtnetworkd"];

/// Their sockets: a socket-activated libvirt (Debian's default) listens with no daemon running.
const SOCKETS: &[&str] = &[
    "run/libvirt/libvirt-sock",
    "run/libvirt/virtqemud-sock",
    "run/libvirt/virtlxcd-sock",
    "run/libvirt/virtnetworkd-sock",
];

/// The host as it is now.
pub fn host_facts(view: &DomainView) -> HostFacts {
    let procs = processes();
    let root = Path::new("/");
    let daemons = libvirt_daemons(&procs);
    let listening = SOCKETS.iter().any(|s| root.join(s).exists());
    HostFacts {
        libvirt: (!daemons.is_empty() || listening).then(|| Libvirt {
            version: crate::install::libvirt_version(),
            daemons,
        }),
        hooks: hooks(root),
        apparmor: apparmor(root, Path::new("/sys")),
        watchers: watchers(&procs, std::process::id()),
        bridge_interfaces: bridge_interfaces(view),
    }
}

/// A process as `/proc` shows it.
#[derive(Clone, Debug, Default)]
pub struct Proc {
    pub pid: u32,
    pub comm: String,
    pub argv: Vec<String>,
    pub started: Option<SystemTime>,
}

/// Every process procfs can read (one that exits meanwhile is skipped).
pub fn processes() -> Vec<Proc> {
    let boot = procfs::boot_time_secs()
        .ok()
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    let ticks = procfs::ticks_per_second().max(1);
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter_map(|p| {
            let stat = p.stat().ok()?;
            Some(Proc {
                pid: u32::try_from(stat.pid).ok()?,
                comm: stat.comm,
                argv: p.cmdline().unwrap_or_default(),
                started: boot.map(|b| b + Duration::from_millis(stat.starttime * 1000 / ticks)),
            })
        })
        .collect()
}

fn libvirt_daemons(procs: &[Proc]) -> Vec<Daemon> {
    procs
        .iter()
        .filter(|p| DAEMONS.contains(&p.comm.as_str()))
        .map(|p| Daemon {
            name: p.comm.clone(),
            pid: p.pid,
            started: p.started,
        })
        .collect()
}

/// Running `virt-vlan watch` daemons (`watch --once` is not one), other than `me`.
pub fn watchers(procs: &[Proc], me: u32) -> Vec<u32> {
    procs
        .iter()
        .filter(|p| p.pid != me)
        .filter(|p| {
            p.argv
                .first()
                .is_some_and(|a0| Path::new(a0).file_name().is_some_and(|n| n == "virt-vlan"))
                && p.argv[1..].iter().any(|a| a == "watch")
                && !p.argv.iter().any(|a| a == "--once")
        })
        .map(|p| p.pid)
        .collect()
}

pub fn hooks(root: &Path) -> Vec<HookEntries> {
    let dir = root.join("etc/libvirt/hooks");
    HOOKED
        .iter()
        .map(|d| HookEntries {
            driver: d.to_string(),
            dot_d: hook(&dir.join(format!("{d}.d/virt-vlan"))),
            main: hook(&dir.join(d)),
        })
        .collect()
}

fn hook(path: &Path) -> Hook {
    let state = match path.symlink_metadata() {
        Err(_) => HookState::Missing,
        Ok(_) if !crate::install::is_ours(path) => HookState::Foreign,
        Ok(link) => HookState::Ours {
            target: std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default(),
            executable: std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0),
            since: link.modified().ok(),
        },
    };
    Hook {
        path: path.display().to_string(),
        state,
    }
}

/// `Some` when AppArmor is on and libvirtd has a profile.
pub fn apparmor(root: &Path, sys: &Path) -> Option<AppArmor> {
    let on = std::fs::read_to_string(sys.join("module/apparmor/parameters/enabled"))
        .is_ok_and(|s| s.trim_start().starts_with('Y'));
    if !on || !root.join(APPARMOR_PROFILE).exists() {
        return None;
    }
    let loaded = std::fs::read_to_string(sys.join("kernel/security/apparmor/profiles"))
        .ok()
        .map(|list| {
            list.lines().any(|l| {
                let name = l.rsplit_once(" (").map_or(l, |(n, _)| n);
                name == "libvirtd" || name == "/usr/sbin/libvirtd"
            })
        });
    let local = root.join(APPARMOR_LOCAL);
    Some(AppArmor {
        local: local.display().to_string(),
        loaded,
        rule_exes: crate::install::apparmor_rule_exes(
            &std::fs::read_to_string(&local).unwrap_or_default(),
        ),
    })
}

/// Running guests' interfaces of `type='bridge'` that are not a network's (a bridge-mode
/// network's interfaces show as `type='bridge'` with `<source network>` in live XML).
pub fn bridge_interfaces(view: &DomainView) -> Vec<BridgeInterface> {
    let mut out = Vec::new();
    for d in &view.domains {
        for i in &d.interfaces {
            if let (true, None, Some(bridge)) = (i.kind == "bridge", &i.network, &i.bridge) {
                out.push(BridgeInterface {
                    domain: d.name.clone(),
                    interface: i.label(),
                    bridge: bridge.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vv-probe-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn this_process_is_seen_with_its_start_time() {
        let me = processes()
            .into_iter()
            .find(|p| p.pid == std::process::id())
            .unwrap();
        assert!(!me.comm.is_empty() && !me.argv.is_empty(), "{me:?}");
        let age = SystemTime::now()
            .duration_since(me.started.unwrap())
            .unwrap();
        assert!(age < Duration::from_secs(3600), "{me:?}");
    }

    #[test]
    fn watchers_are_virt_vlan_watch_without_once() {
        let p = |pid, argv: &[&str]| Proc {
            pid,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let procs = [
            p(10, &["/usr/sbin/virt-vlan", "watch"]),
            p(11, &["virt-vlan", "--config", "/x.toml", "-v", "watch"]),
            p(12, &["/usr/sbin/virt-vlan", "watch", "--once"]),
            p(13, &["/usr/bin/watch", "virt-vlan", "show"]),
            p(14, &["virt-vlan", "show"]),
            p(15, &["/usr/sbin/virt-vlan", "watch"]),
        ];
        assert_eq!(watchers(&procs, 15), [10, 11]);
    }

    #[test]
    fn hook_entries_ours_dangling_and_foreign() {
        let root = tmp("hooks");
        let hooks = root.join("etc/libvirt/hooks");
        std::fs::create_dir_all(hooks.join("qemu.d")).unwrap();
        std::fs::create_dir_all(hooks.join("lxc.d")).unwrap();
        let exe = root.join("virt-vlan");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&exe, hooks.join("qemu.d/virt-vlan")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/virt-vlan", hooks.join("lxc.d/virt-vlan"))
            .unwrap();
        std::fs::write(hooks.join("network"), "#!/bin/sh\n").unwrap();
        let h = super::hooks(&root);
        assert_eq!(h.len(), 4);
        assert!(
            matches!(&h[0].dot_d.state, HookState::Ours { executable: true, target, since: Some(_) } if *target == exe.display().to_string()),
            "{h:?}"
        );
        assert!(
            matches!(
                &h[1].dot_d.state,
                HookState::Ours {
                    executable: false,
                    ..
                }
            ),
            "{h:?}"
        );
        assert_eq!(h[2].main.state, HookState::Foreign);
        assert_eq!(h[3].dot_d.state, HookState::Missing);
    }

    #[test]
    fn apparmor_on_with_and_without_the_rule() {
        let root = tmp("aa");
        let sys = root.join("sys");
        std::fs::create_dir_all(sys.join("module/apparmor/parameters")).unwrap();
        std::fs::create_dir_all(root.join("etc/apparmor.d/local")).unwrap();
        assert!(apparmor(&root, &sys).is_none(), "no module file: off");
        std::fs::write(sys.join("module/apparmor/parameters/enabled"), "Y\n").unwrap();
        assert!(apparmor(&root, &sys).is_none(), "no libvirtd profile");
        std::fs::write(root.join(APPARMOR_PROFILE), "profile libvirtd {}\n").unwrap();
        let aa = apparmor(&root, &sys).unwrap();
        assert_eq!(aa.loaded, None);
        assert!(aa.rule_exes.is_empty());
        std::fs::write(
            root.join(APPARMOR_LOCAL),
            crate::install::apparmor_rule(Path::new("/usr/sbin/virt-vlan")),
        )
        .unwrap();
        std::fs::create_dir_all(sys.join("kernel/security/apparmor")).unwrap();
        std::fs::write(
            sys.join("kernel/security/apparmor/profiles"),
            "virt-aa-helper (enforce)\nlibvirtd (enforce)\n",
        )
        .unwrap();
        let aa = apparmor(&root, &sys).unwrap();
        assert_eq!(aa.loaded, Some(true));
        assert_eq!(aa.rule_exes, ["/usr/sbin/virt-vlan"]);
    }
}
