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
pub fn uri() -> String {
    std::env::var("LIBVIRT_DEFAULT_URI").unwrap_or_else(|_| "qemu:///system".to_string())
}

/// Sockets a local system libvirt listens on (monolithic libvirtd, modular virtqemud).
const SYSTEM_SOCKETS: &[&str] = &["/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock"];

/// Whether asking libvirt can succeed at all: for the local system URI, one of its sockets
/// must exist. Saves starting virsh on hosts where libvirtd is not running.
pub fn maybe_running() -> bool {
    let u = uri();
    if u != "qemu:///system" && u != "lxc:///system" {
        return true;
    }
    SYSTEM_SOCKETS
        .iter()
        .any(|s| std::path::Path::new(s).exists())
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

/// Separates the outputs of several commands in one virsh run. No leading dash: virsh's
/// `echo` would take it for an option.
const SEP: &str = "virt-vlan-answer-separator-7c3e";

/// Runs several virsh commands in one virsh process (`cmd1 ; echo SEP ; cmd2 …`) and
/// returns each one's output.
fn virsh_many(cmds: &[Vec<String>]) -> Result<Vec<String>> {
    if cmds.is_empty() {
        return Ok(Vec::new());
    }
    let quote = |a: &String| format!("'{}'", a.replace('\'', "'\\''"));
    let script = cmds
        .iter()
        .map(|c| c.iter().map(quote).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(&format!(" ; echo {SEP} ; "));
    let out = virsh(&[&script], LIMIT)?;
    let parts = split_answers(&out);
    if parts.len() != cmds.len() {
        bail!(
            "virsh gave {} answers to {} commands",
            parts.len(),
            cmds.len()
        );
    }
    Ok(parts)
}

/// Splits one virsh run's output at the separators `virsh_many` asked for. Under `-q` virsh's
/// `echo` ends its line only sometimes, so a separator may run into the next answer.
fn split_answers(out: &str) -> Vec<String> {
    out.split(SEP)
        .enumerate()
        .map(|(i, part)| {
            let part = if i == 0 {
                part
            } else {
                part.strip_prefix('\n').unwrap_or(part)
            };
            part.to_string()
        })
        .collect()
}

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Running domains and active networks, or an error if libvirt cannot be reached.
pub fn running() -> Result<Live> {
    if !maybe_running() {
        bail!("libvirt is not running (no socket in /run/libvirt)");
    }
    let names = |s: &str| -> Vec<String> {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let lists = virsh_many(&[cmd(&["list", "--name"]), cmd(&["net-list", "--name"])])?;
    Ok(Live {
        domains: names(&lists[0]),
        networks: names(&lists[1]),
    })
}

/// A libvirt object whose XML is asked for.
pub enum Object {
    Domain(String),
    Network(String),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Domain(n) => write!(f, "domain {n}"),
            Object::Network(n) => write!(f, "network {n}"),
        }
    }
}

/// The live XML of these domains and networks in one virsh run; if that fails (one stopped
/// meanwhile), one run each, so one missing object does not hide the others.
pub fn xml_of(live: &Live) -> Vec<(Object, Result<String>)> {
    let mut cmds = Vec::new();
    let mut objects = Vec::new();
    for d in &live.domains {
        cmds.push(cmd(&["dumpxml", "--domain", d]));
        objects.push(Object::Domain(d.clone()));
    }
    for n in &live.networks {
        cmds.push(cmd(&["net-dumpxml", "--network", n]));
        objects.push(Object::Network(n.clone()));
    }
    match virsh_many(&cmds) {
        Ok(outs) => objects.into_iter().zip(outs.into_iter().map(Ok)).collect(),
        Err(_) => objects
            .into_iter()
            .zip(cmds)
            .map(|(o, c)| {
                let args: Vec<&str> = c.iter().map(String::as_str).collect();
                (o, virsh(&args, LIMIT))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_is_not_an_option_to_virsh_echo() {
        assert!(!SEP.starts_with('-'));
    }

    #[test]
    fn answers_split_at_separators_with_or_without_newline() {
        // what `virsh -q 'list --name ; echo SEP ; net-list --name'` really prints
        let out = format!("vm1\nvm2\n{SEP}lan\n");
        assert_eq!(split_answers(&out), vec!["vm1\nvm2\n", "lan\n"]);
        let out = format!("<domain/>\n{SEP}\n<network/>\n{SEP}\n\n");
        assert_eq!(
            split_answers(&out),
            vec!["<domain/>\n", "<network/>\n", "\n"]
        );
    }

    #[test]
    fn one_answer_without_separator() {
        assert_eq!(split_answers("vm1\n"), vec!["vm1\n"]);
    }
}
