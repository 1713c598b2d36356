//! The `virt-vlan` entry point: the hook fast path (no argument parser on the guest-start
//! critical path), then the command line (`cli`), logging, dispatch and exit codes (0
//! success, 1 runtime failure, 2 bad input). The work is in `virt_vlan::commands`.

mod cli;
mod package_files;

use clap::Parser;
use cli::{Cli, Command, Import};
use std::path::PathBuf;
use std::process::ExitCode;
use virt_vlan::commands;
use virt_vlan::config::DEFAULT_PATH;
use virt_vlan::logging::Sink;

fn main() -> ExitCode {
    // The guest-start critical path needs no argument parser: as libvirt runs it (argv[0]
    // names the driver), or as `virt-vlan hook <driver> <object> <op> <subop> [extra]`
    // without options.
    // Arguments that are not UTF-8 must not panic (`std::env::args` would): a hook refuses
    // them naming which; anything else goes to clap, which takes them for paths and refuses
    // them elsewhere.
    let argv_os: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Some(argv) = argv_os
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
    else {
        if let Some(bad) = hook_call_with_bad_argument(&argv_os) {
            eprintln!("virt-vlan: hook argument `{bad}` is not UTF-8 text; refused");
            return ExitCode::from(2);
        }
        return run_cli(Cli::parse_from(&argv_os));
    };
    let call = argv
        .first()
        .and_then(|a0| virt_vlan::hook::Call::from_argv0(std::path::Path::new(a0), &argv[1..]))
        .or_else(|| match argv.get(1..) {
            Some([hook, driver, rest @ ..])
                if hook == "hook"
                    && virt_vlan::hook::DRIVERS.contains(&driver.as_str())
                    && rest.len() <= 4
                    && rest.iter().all(|a| !a.starts_with("--")) =>
            {
                Some(virt_vlan::hook::Call::new(driver, rest, false))
            }
            _ => None,
        });
    if let Some(call) = call {
        virt_vlan::logging::init(Sink::File(tracing::Level::INFO));
        let config = std::env::var_os("VIRT_VLAN_CONFIG")
            .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from);
        return ExitCode::from(virt_vlan::hook::run(&call, &config) as u8);
    }
    run_cli(Cli::parse_from(&argv))
}

/// For a hook call (by argv[0] or `hook DRIVER`) with an argument that is not UTF-8: that
/// argument, shown lossily.
fn hook_call_with_bad_argument(argv: &[std::ffi::OsString]) -> Option<String> {
    let a0 = std::path::Path::new(argv.first()?);
    let is_hook = virt_vlan::hook::Call::from_argv0(a0, &[]).is_some()
        || argv.get(1).is_some_and(|a| a == "hook");
    let bad = argv.iter().skip(1).find(|a| a.to_str().is_none())?;
    is_hook.then(|| bad.to_string_lossy().escape_debug().to_string())
}

fn run_cli(cli: Cli) -> ExitCode {
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    match cli.command {
        Command::Hook { .. } => {
            virt_vlan::logging::init(Sink::File(level.max(tracing::Level::INFO)))
        }
        Command::HookWaitPort { .. } => virt_vlan::logging::init(Sink::File(tracing::Level::INFO)),
        Command::Watch { .. } => {
            virt_vlan::logging::init(Sink::Daemon(level.max(tracing::Level::INFO)))
        }
        _ => virt_vlan::logging::init(Sink::Stderr(level)),
    }
    let result = match cli.command {
        Command::Apply {
            dry_run,
            confirm,
            stats,
        } => commands::apply(&cli.config, dry_run, confirm, stats),
        Command::Show { json, diagram, svg } => {
            commands::show(&cli.config, json, diagram, svg.as_deref())
        }
        Command::Check { json, strict } => commands::check(&cli.config, json, strict),
        Command::Import(Import::Kvmvlan {
            bridge_init,
            vlan_filtering,
        }) => commands::import_kvmvlan(&bridge_init, &vlan_filtering),
        Command::Hook { driver, args } => {
            let call = virt_vlan::hook::Call::new(&driver, &args, false);
            return ExitCode::from(virt_vlan::hook::run(&call, &cli.config) as u8);
        }
        Command::HookWaitPort { uuid } => virt_vlan::hook::wait_port(&cli.config, &uuid)
            .map(|()| 0)
            .inspect_err(|e| tracing::error!("{e:#}")),
        Command::Watch { once } => virt_vlan::watch::run(&cli.config, once).map(|()| 0),
        Command::Install {
            root,
            uninstall,
            main_hook,
            package,
        } => commands::install(root, uninstall, main_hook, package),
        Command::PackageFiles { dir } => package_files::write(&dir).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("virt-vlan: {e:#}");
            ExitCode::from(virt_vlan::error::exit_code(&e) as u8)
        }
    }
}
