//! `virt-vlan package-files DIR` (hidden): the files the Debian package ships that come from
//! this binary, so each has one source of truth — man pages for the command and every
//! subcommand (clap_mangen, from the clap definition in `cli`), bash/zsh/fish completions
//! (clap_complete), and the texts `install` writes (the watch unit for /usr/sbin, the
//! commented config, the AppArmor rule). `make deb` runs it before cargo-deb packs them.

use crate::cli::Cli;
use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_mangen::roff::{Roff, bold, italic, roman};
use std::path::Path;
use virt_vlan::install;

/// Where the package installs the binary.
pub const PACKAGED_EXE: &str = "/usr/sbin/virt-vlan";

pub fn write(dir: &Path) -> Result<()> {
    let put = |rel: &str, text: &[u8]| -> Result<()> {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap())
            .with_context(|| format!("cannot create {}", path.parent().unwrap().display()))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    for (name, page) in man_pages()? {
        put(&format!("man/{name}"), &page)?;
    }
    for (shell, file) in [
        (clap_complete::Shell::Bash, "virt-vlan"),
        (clap_complete::Shell::Zsh, "_virt-vlan"),
        (clap_complete::Shell::Fish, "virt-vlan.fish"),
    ] {
        let mut out = Vec::new();
        let mut cmd = without_hidden(&Cli::command());
        clap_complete::generate(shell, &mut cmd, "virt-vlan", &mut out);
        put(&format!("completions/{shell}/{file}"), &out)?;
    }
    let exe = Path::new(PACKAGED_EXE);
    put(
        &format!("systemd/{}", install::UNIT_NAME),
        install::packaged_unit(exe).as_bytes(),
    )?;
    put("virt-vlan.toml", install::DEFAULT_CONFIG.as_bytes())?;
    put(
        "apparmor/usr.sbin.libvirtd.local",
        install::apparmor_rule(exe).as_bytes(),
    )?;
    Ok(())
}

/// `cmd` without its hidden subcommands and options, which clap_complete would offer (it
/// completes whatever the tree holds, and clap has no way to take a subcommand out).
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    // clap takes `&'static str` names (without its `string` feature); this runs once per build
    let mut c = clap::Command::new(&*cmd.get_name().to_string().leak());
    if let Some(about) = cmd.get_about() {
        c = c.about(about.clone());
    }
    if let Some(v) = cmd.get_version() {
        c = c.version(&*v.to_string().leak());
    }
    c.args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(without_hidden),
        )
}

/// `(file name, roff)` for `virt-vlan(8)` and every visible subcommand, nested ones included
/// (`virt-vlan-import-kvmvlan(8)`).
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut top = Cli::command().disable_help_subcommand(true);
    top.build();
    let mut out = Vec::new();
    page(&top, true, &mut out)?;
    Ok(out)
}

fn page(cmd: &clap::Command, top: bool, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("virt-vlan")
        .source(format!("virt-vlan {}", env!("CARGO_PKG_VERSION")));
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let mut w = Vec::new();
    man.render_title(&mut w)?;
    man.render_name_section(&mut w)?;
    man.render_synopsis_section(&mut w)?;
    man.render_description_section(&mut w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut w)?;
    }
    let visible: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    if !visible.is_empty() {
        man.render_subcommands_section(&mut w)?;
    }
    let mut roff = Roff::new();
    if let Some(codes) = cmd.get_after_long_help() {
        roff.control("SH", ["EXIT STATUS"]);
        roff.text([roman(codes.to_string())]);
    }
    if top {
        roff.control("SH", ["FILES"]);
        for (path, what) in [
            (
                virt_vlan::config::DEFAULT_PATH,
                "the config (or --config, or VIRT_VLAN_CONFIG)",
            ),
            (
                "/etc/libvirt/hooks/{qemu,lxc,network,daemon}.d/virt-vlan",
                "the hook entries `virt-vlan install` puts in place (symlinks to this binary)",
            ),
            (
                "/run/virt-vlan/",
                "the ownership record (which VIDs on which port are virt-vlan's) and what the hooks were told",
            ),
            (
                "/var/log/virt-vlan/virt-vlan.log",
                "the hooks' log (rotated at 1 MiB)",
            ),
        ] {
            roff.control("TP", []);
            roff.text([bold(path)]);
            roff.text([roman(what)]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = if top {
        visible
            .iter()
            .map(|s| s.get_display_name().unwrap_or(s.get_name()).to_string())
            .collect()
    } else {
        vec!["virt-vlan".to_string()]
    };
    see.extend(["bridge".to_string(), "virsh".to_string()]);
    let mut refs = Vec::new();
    for (i, s) in see.iter().enumerate() {
        refs.push(bold(s.clone()));
        let section = match s.as_str() {
            "virsh" => "(1)",
            _ => "(8)",
        };
        refs.push(roman(if i + 1 < see.len() {
            format!("{section}, ")
        } else {
            section.to_string()
        }));
    }
    roff.text(refs);
    if top {
        roff.control("PP", []);
        roff.text([
            roman("README.md in the source tree describes the config, the hooks and "),
            italic("virt-vlan watch"),
            roman(" in full."),
        ]);
    }
    roff.to_writer(&mut w)?;
    if cmd.get_version().is_some() {
        man.render_version_section(&mut w)?;
    }
    out.push((format!("{name}.8"), w));
    for s in visible {
        page(s, false, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_man_page_for_the_command_and_every_visible_subcommand() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "virt-vlan.8",
            "virt-vlan-apply.8",
            "virt-vlan-show.8",
            "virt-vlan-check.8",
            "virt-vlan-import.8",
            "virt-vlan-import-kvmvlan.8",
            "virt-vlan-hook.8",
            "virt-vlan-watch.8",
            "virt-vlan-install.8",
        ] {
            assert!(names.contains(&want), "{want} missing: {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("package-files") || n.contains("wait-port")),
            "hidden commands get no page: {names:?}"
        );
        let check = String::from_utf8(
            pages
                .iter()
                .find(|(n, _)| n == "virt-vlan-check.8")
                .unwrap()
                .1
                .clone(),
        )
        .unwrap();
        assert!(check.starts_with(".ie"), "{check}");
        assert!(check.contains(".TH virt-vlan-check 8"), "{check}");
        assert!(check.contains(".SH \"EXIT STATUS\""), "{check}");
        assert!(check.contains("\\-\\-strict"), "{check}");
        let top = String::from_utf8(pages[0].1.clone()).unwrap();
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut without_hidden(&Cli::command()),
            "virt-vlan",
            &mut bash,
        );
        let bash = String::from_utf8(bash).unwrap();
        assert!(
            bash.contains("apply show check import hook watch install"),
            "{bash}"
        );
        assert!(bash.contains("--diagram") && bash.contains("--strict"));
        assert!(
            !bash.contains("package-files")
                && !bash.contains("hook-wait-port")
                && !bash.contains("--package"),
            "hidden commands are not offered"
        );
        assert!(top.contains(".SH FILES"), "{top}");
        assert!(top.contains("virt\\-vlan\\-watch"), "{top}");
    }
}
