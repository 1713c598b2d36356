//! Asking libvirt directly, through `virsh`, for running domains' live XML and the networks'
//! XML. Only ever outside hooks (`apply`, `watch`): a hook calling libvirt can deadlock it.
//! Every call has a time limit, so a wedged libvirtd cannot hang virt-vlan.

use anyhow::{Context, Result, anyhow, bail};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What libvirt says is running.
pub struct Live {
    pub domains: Vec<String>,
    pub networks: Vec<String>,
}

/// The libvirt connection: `LIBVIRT_DEFAULT_URI` if set, else `qemu:///system`.
fn uri() -> String {
    std::env::var("LIBVIRT_DEFAULT_URI").unwrap_or_else(|_| "qemu:///system".to_string())
}

/// Runs `virsh -c URI args…`, returning stdout; an error if virsh is missing, fails, or takes
/// longer than `limit`.
pub fn virsh(args: &[&str], limit: Duration) -> Result<String> {
    let mut child = Command::new("virsh")
        .arg("-q")
        .arg("-c")
        .arg(uri())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run virsh")?;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "virsh {} took longer than {}s",
                args.join(" "),
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(anyhow!("virsh {}: {}", args.join(" "), stderr.trim()));
    }
    Ok(stdout)
}

const LIMIT: Duration = Duration::from_secs(20);

/// Running domains and active networks, or an error if libvirt cannot be reached.
pub fn running() -> Result<Live> {
    let names = |s: String| -> Vec<String> {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    Ok(Live {
        domains: names(virsh(&["list", "--name"], LIMIT)?),
        networks: names(virsh(&["net-list", "--name"], LIMIT)?),
    })
}

pub fn domain_xml(name: &str) -> Result<String> {
    virsh(&["dumpxml", "--domain", name], LIMIT)
}

pub fn network_xml(name: &str) -> Result<String> {
    virsh(&["net-dumpxml", "--network", name], LIMIT)
}
