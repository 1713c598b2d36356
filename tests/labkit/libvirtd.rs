//! libvirtd (with virtlogd) for the lab suites that start real guests: started, stopped and
//! brought back by their pids. Waits end on what the daemon does — it answers, or its process
//! is gone — not on a guess of how fast an emulated machine is; a long cap only stops a hung
//! daemon from holding the suite for ever.

use super::{checked, must, wait_for};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a living libvirtd may take to answer before it counts as hung.
const ANSWER_CAP_SECS: u64 = 900;

/// The pid in `pidfile` if that process lives.
fn alive(pidfile: &str) -> Option<String> {
    let pid = std::fs::read_to_string(pidfile).ok()?;
    let pid = pid.trim().to_string();
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// libvirtd's pid, if it runs.
pub fn pid() -> Option<String> {
    alive("/run/libvirtd.pid")
}

/// Whether libvirtd answers on qemu:///system now.
pub fn answers() -> bool {
    Command::new("virsh")
        .args(["-c", "qemu:///system", "list"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits until libvirtd answers; fails at once if its process goes away meanwhile.
pub fn wait_answering() {
    let started = Instant::now();
    wait_for(ANSWER_CAP_SECS, || {
        answers() || (pid().is_none() && started.elapsed() > Duration::from_secs(10))
    });
    assert!(
        answers(),
        "libvirtd {} after {:.0} s",
        match pid() {
            Some(p) => format!("(pid {p}) runs but does not answer"),
            None => "exited (or never started)".into(),
        },
        started.elapsed().as_secs_f64()
    );
}

/// Starts virtlogd (unless it runs) and libvirtd, and waits until libvirtd answers.
pub fn start() {
    must("mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/cache/libvirt /run/libvirt");
    if alive("/run/virtlogd.pid").is_none() {
        must("virtlogd -d");
    }
    let mut c = Command::new("libvirtd");
    c.arg("-d");
    checked(c, "libvirtd -d");
    wait_answering();
}

/// Stops libvirtd by its pid (SIGTERM), leaving the guests running.
pub fn stop() {
    let Some(pid) = pid() else {
        return;
    };
    must(&format!("kill -TERM {pid}"));
    assert!(
        wait_for(120, || !Path::new(&format!("/proc/{pid}")).exists()),
        "libvirtd (pid {pid}) did not stop on SIGTERM"
    );
}

/// libvirt looks for hook entries only when it starts: a restart makes it see new ones.
pub fn restart() {
    stop();
    start();
}

/// Brings libvirtd back if an earlier test (or the machine's load) left it down or not
/// answering yet, so one test's failure stays that test's. Returns whether it started it.
pub fn ensure() -> bool {
    if answers() {
        return false;
    }
    if pid().is_some() {
        wait_answering();
        return false;
    }
    eprintln!("libvirtd is not running: starting it again");
    start();
    true
}
