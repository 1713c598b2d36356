//! The kvmvlan hook dispatcher, for when virt-vlan is installed as libvirt's main hook: after
//! its own work it runs every executable in `<hooks>/<driver>_<op>_<subop>.d/` in name
//! order, as `script <object> <config>` with the hook's stdin, each with its own config
//! (`<hooks>/conf/<script>.conf`), a log rewritten each run
//! (`/var/log/virt-vlan/hooks/<driver>_<op>_<subop>_<object>_<script>.log`) and a time limit.
//! Scripts not owned by root, or writable by group or others, are refused: libvirt runs them
//! as root. The time limit is wait-timeout's (SIGCHLD-driven, no polling); only the kill of
//! the script's whole process group is ours, which no crate does for a `Child`.

use crate::hook_call::Call;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use wait_timeout::ChildExt;

/// What happened to one script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
    Refused(String),
}

/// Runs the scripts for `call` and returns the hook's exit code: non-zero if any script
/// failed or was refused and libvirt honours failure for this op.
pub fn run(hooks: &Path, call: &Call, stdin: &str, limit: Duration) -> i32 {
    let results = run_scripts(
        hooks,
        &crate::logging::log_dir().join("hooks"),
        call,
        stdin,
        limit,
    );
    let mut bad = false;
    for (script, outcome) in &results {
        match outcome {
            Outcome::Ok => tracing::info!("dispatcher: {script}: ok"),
            Outcome::Failed(why) | Outcome::Refused(why) => {
                bad = true;
                tracing::error!("dispatcher: {script}: {why}");
                if call.failure_aborts() {
                    eprintln!("virt-vlan: hook script {script}: {why}");
                }
            }
        }
    }
    if bad && call.failure_aborts() { 1 } else { 0 }
}

/// The scripts' directory and what each did.
pub fn run_scripts(
    hooks: &Path,
    logs: &Path,
    call: &Call,
    stdin: &str,
    limit: Duration,
) -> Vec<(String, Outcome)> {
    let phase = format!("{}_{}_{}", call.driver, call.op, call.subop);
    let dir = hooks.join(format!("{phase}.d"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut scripts: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    scripts.sort();
    let _ = std::fs::create_dir_all(logs);
    let mut out = Vec::new();
    for path in scripts {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue; // not an executable: kvmvlan's dispatcher skipped these too
        }
        if let Some(why) = unsafe_script(&meta) {
            out.push((
                name,
                Outcome::Refused(format!("refused: {} {why}", path.display())),
            ));
            continue;
        }
        let stem = Path::new(&name)
            .file_stem()
            .map_or(name.clone(), |s| s.to_string_lossy().into_owned());
        let config = hooks.join("conf").join(format!("{stem}.conf"));
        let log = logs.join(format!(
            "{phase}_{}_{stem}.log",
            crate::store::file_name(&call.object)
        ));
        out.push((
            name,
            run_one(&path, &call.object, &config, stdin, &log, limit),
        ));
    }
    out
}

/// Why a script must not run as root, if it must not.
fn unsafe_script(meta: &std::fs::Metadata) -> Option<String> {
    if meta.uid() != 0 {
        return Some(format!("is owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "is writable by group or others (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    None
}

fn run_one(
    path: &Path,
    object: &str,
    config: &Path,
    stdin: &str,
    log: &Path,
    limit: Duration,
) -> Outcome {
    let log_file = match std::fs::File::create(log) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(format!("cannot write its log {}: {e}", log.display())),
    };
    let err_file = match log_file.try_clone() {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(format!("cannot write its log: {e}")),
    };
    let mut c = Command::new(path);
    c.arg(object)
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(log_file)
        .stderr(err_file);
    // its own process group, so a timeout takes its children too
    c.process_group(0);
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => return Outcome::Failed(format!("cannot run it: {e}")),
    };
    // fed from a thread: a script that never reads its stdin must still meet its time limit
    if let Some(mut i) = child.stdin.take() {
        let bytes = stdin.as_bytes().to_vec();
        std::thread::spawn(move || {
            let _ = i.write_all(&bytes);
        });
    }
    match child.wait_timeout(limit) {
        Ok(Some(s)) if s.success() => Outcome::Ok,
        Ok(Some(s)) => Outcome::Failed(format!("exited with {s} (log: {})", log.display())),
        Ok(None) => {
            // SAFETY: kill(2) on the script's own process group (it leads it).
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            Outcome::Failed(format!(
                "killed after {}s (log: {})",
                limit.as_secs(),
                log.display()
            ))
        }
        Err(e) => Outcome::Failed(format!("cannot wait for it: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vv-disp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn call(op: &str) -> Call {
        Call::new(
            "qemu",
            &["vm1".to_string(), op.to_string(), "begin".to_string()],
            true,
        )
    }

    #[test]
    fn runs_scripts_in_order_with_argv_stdin_config_and_a_fresh_log() {
        let root = tmp("order");
        let hooks = root.join("hooks");
        let logs = root.join("logs");
        let d = hooks.join("qemu_started_begin.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(hooks.join("conf")).unwrap();
        script(
            &d,
            "20-second.sh",
            "echo second \"$1\" \"$2\" >> \"$(dirname \"$2\")/../order\"",
            0o755,
        );
        script(
            &d,
            "10-first.sh",
            "echo first \"$1\" >> \"$(dirname \"$2\")/../order\"; cat",
            0o755,
        );
        std::fs::write(d.join("README"), "not executable").unwrap();
        let r = run_scripts(
            &hooks,
            &logs,
            &call("started"),
            "<domain/>",
            Duration::from_secs(5),
        );
        assert_eq!(
            r,
            vec![
                ("10-first.sh".to_string(), Outcome::Ok),
                ("20-second.sh".to_string(), Outcome::Ok)
            ]
        );
        let order = std::fs::read_to_string(hooks.join("order")).unwrap();
        assert_eq!(
            order,
            format!(
                "first vm1\nsecond vm1 {}\n",
                hooks.join("conf/20-second.conf").display()
            )
        );
        let log = logs.join("qemu_started_begin_vm1_10-first.log");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "<domain/>",
            "stdin passed through, logged"
        );
        // rewritten, not appended, on the next run
        run_scripts(
            &hooks,
            &logs,
            &call("started"),
            "<x/>",
            Duration::from_secs(5),
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "<x/>");
        assert!(
            run_scripts(&hooks, &logs, &call("stopped"), "", Duration::from_secs(5)).is_empty()
        );
    }

    #[test]
    fn failures_timeouts_and_unsafe_scripts() {
        let root = tmp("fail");
        let hooks = root.join("hooks");
        let d = hooks.join("qemu_start_begin.d");
        std::fs::create_dir_all(&d).unwrap();
        script(&d, "a-fails", "echo nope >&2; exit 3", 0o755);
        script(&d, "b-hangs", "sleep 30 & sleep 30", 0o755);
        script(&d, "c-writable", "true", 0o777);
        let nobody = script(&d, "d-not-root", "true", 0o755);
        std::os::unix::fs::chown(&nobody, Some(65534), None).unwrap();
        let start = Instant::now();
        let r = run_scripts(
            &hooks,
            &root.join("logs"),
            &call("start"),
            "",
            Duration::from_millis(500),
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the hung script was killed"
        );
        assert!(
            matches!(&r[0].1, Outcome::Failed(w) if w.contains("exit status: 3")),
            "{r:?}"
        );
        assert!(
            matches!(&r[1].1, Outcome::Failed(w) if w.contains("killed after")),
            "{r:?}"
        );
        assert!(
            matches!(&r[2].1, Outcome::Refused(w) if w.contains("writable by group or others (mode 777)")),
            "{r:?}"
        );
        assert!(
            matches!(&r[3].1, Outcome::Refused(w) if w.contains("owned by uid 65534")),
            "{r:?}"
        );
        let log =
            std::fs::read_to_string(root.join("logs/qemu_start_begin_vm1_a-fails.log")).unwrap();
        assert_eq!(log, "nope\n");
    }
}
