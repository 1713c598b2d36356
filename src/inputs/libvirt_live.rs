//! Asking libvirt directly, through `virsh`, for running domains' live XML (qemu guests and
//! LXC containers) and the networks' XML. Only ever outside hooks (`apply`, `watch`): a hook calling libvirt can deadlock it.
//! Every call has a time limit, so a wedged libvirtd cannot hang virt-vlan.

use anyhow::{Context, Result, anyhow, bail};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What libvirt says is running.
pub struct Live {
    /// Running domains as (connection URI, name): qemu guests and LXC containers alike.
    pub domains: Vec<(String, String)>,
    pub networks: Vec<String>,
}

/// The system drivers whose domains plug into bridges.
pub const SYSTEM_URIS: &[&str] = &["qemu:///system", "lxc:///system"];

/// The libvirt connections to ask: `LIBVIRT_DEFAULT_URI` alone if set, else every system
/// driver (qemu guests and LXC containers).
pub fn uris() -> Vec<String> {
    match std::env::var("LIBVIRT_DEFAULT_URI") {
        Ok(u) => vec![u],
        Err(_) => SYSTEM_URIS.iter().map(|u| u.to_string()).collect(),
    }
}

/// The connection networks are asked on (networks are one driver, whatever the domain's).
pub fn uri() -> String {
    uris().remove(0)
}

/// Sockets a local system libvirt listens on, per driver (monolithic libvirtd, or the
/// modular per-driver daemon).
fn system_sockets(uri: &str) -> &'static [&'static str] {
    match uri {
        "qemu:///system" => &["/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock"],
        "lxc:///system" => &["/run/libvirt/libvirt-sock", "/run/libvirt/virtlxcd-sock"],
        _ => &[],
    }
}

/// Whether asking libvirt at `uri` can succeed at all: for a local system URI, one of its
/// sockets must exist. Saves starting virsh on hosts where libvirtd is not running.
pub fn maybe_running_at(uri: &str) -> bool {
    let sockets = system_sockets(uri);
    sockets.is_empty() || sockets.iter().any(|s| std::path::Path::new(s).exists())
}

/// Whether any of the connections to ask may answer.
pub fn maybe_running() -> bool {
    uris().iter().any(|u| maybe_running_at(u))
}

/// Runs `virsh -c URI args…`, returning stdout; an error if virsh is missing, fails, or takes
/// longer than `limit`.
pub fn virsh(uri: &str, args: &[&str], limit: Duration) -> Result<String> {
    let mut child = Command::new("virsh")
        .arg("-q")
        .arg("-c")
        .arg(uri)
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
    let status = match wait_timeout::ChildExt::wait_timeout(&mut child, limit)? {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "virsh {} took longer than {}s",
                args.join(" "),
                limit.as_secs()
            );
        }
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
fn virsh_many(uri: &str, cmds: &[Vec<String>]) -> Result<Vec<String>> {
    if cmds.is_empty() {
        return Ok(Vec::new());
    }
    let quote = |a: &String| format!("'{}'", a.replace('\'', "'\\''"));
    let script = cmds
        .iter()
        .map(|c| c.iter().map(quote).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(&format!(" ; echo {SEP} ; "));
    let out = virsh(uri, &[&script], LIMIT)?;
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

fn names(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Running domains of every driver and active networks, or an error if libvirt cannot be
/// reached. A driver other than the first that does not answer (libvirt without its LXC
/// driver installed) has no domains; the first one must answer.
pub fn running() -> Result<Live> {
    let uris = uris();
    if !uris.iter().any(|u| maybe_running_at(u)) {
        bail!("libvirt is not running (no socket in /run/libvirt)");
    }
    let lists = virsh_many(
        &uris[0],
        &[cmd(&["list", "--name"]), cmd(&["net-list", "--name"])],
    )?;
    let mut live = Live {
        domains: names(&lists[0])
            .into_iter()
            .map(|d| (uris[0].clone(), d))
            .collect(),
        networks: names(&lists[1]),
    };
    for uri in &uris[1..] {
        if !maybe_running_at(uri) {
            continue;
        }
        match virsh(uri, &["list", "--name"], LIMIT) {
            Ok(out) => live
                .domains
                .extend(names(&out).into_iter().map(|d| (uri.clone(), d))),
            Err(e) => tracing::debug!("{uri}: {e:#}"),
        }
    }
    Ok(live)
}

/// A libvirt object whose XML is asked for.
pub enum Object {
    /// A domain by (connection URI, name).
    Domain(String, String),
    Network(String),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Domain(u, n) if u.starts_with("qemu") => write!(f, "domain {n}"),
            Object::Domain(u, n) => write!(f, "domain {n} ({u})"),
            Object::Network(n) => write!(f, "network {n}"),
        }
    }
}

/// The live XML of these domains and networks, one virsh run per connection; if that fails
/// (one stopped meanwhile), one run each, so one missing object does not hide the others.
pub fn xml_of(live: &Live) -> Vec<(Object, Result<String>)> {
    let mut per_uri: Vec<(String, Vec<Object>)> = Vec::new();
    let mut add = |uri: &str, o: Object| match per_uri.iter_mut().find(|(u, _)| u == uri) {
        Some((_, objs)) => objs.push(o),
        None => per_uri.push((uri.to_string(), vec![o])),
    };
    for (u, d) in &live.domains {
        add(u, Object::Domain(u.clone(), d.clone()));
    }
    let net_uri = uri();
    for n in &live.networks {
        add(&net_uri, Object::Network(n.clone()));
    }
    let mut out = Vec::new();
    for (uri, objects) in per_uri {
        let cmds: Vec<Vec<String>> = objects
            .iter()
            .map(|o| match o {
                Object::Domain(_, d) => cmd(&["dumpxml", "--domain", d]),
                Object::Network(n) => cmd(&["net-dumpxml", "--network", n]),
            })
            .collect();
        match virsh_many(&uri, &cmds) {
            Ok(outs) => out.extend(objects.into_iter().zip(outs.into_iter().map(Ok))),
            Err(_) => out.extend(objects.into_iter().zip(cmds).map(|(o, c)| {
                let args: Vec<&str> = c.iter().map(String::as_str).collect();
                (o, virsh(&uri, &args, LIMIT))
            })),
        }
    }
    out
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
