//! The `virt-vlan` command line: argument parsing and exit codes (0 success, 1 runtime
//! failure, 2 bad input). The work is in `virt_vlan::commands`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use virt_vlan::commands;
use virt_vlan::config::DEFAULT_PATH;
use virt_vlan::logging::Sink;

/// Turns a Linux bridge into a managed 802.1Q switch for libvirt/KVM guests.
#[derive(Parser)]
#[command(name = "virt-vlan", version, about)]
struct Cli {
    /// Config file.
    #[arg(long, global = true, env = "VIRT_VLAN_CONFIG", default_value = DEFAULT_PATH)]
    config: PathBuf,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make every managed bridge, uplink, the bridges' own ports and every configured port
    /// carry exactly the VLANs the config asks for.
    Apply {
        /// Print the plan as `ip link` / `bridge vlan` commands and change nothing.
        #[arg(long, conflicts_with = "confirm")]
        dry_run: bool,
        /// Show the plan and apply it only after a yes on stdin.
        #[arg(long)]
        confirm: bool,
        /// Print kernel traffic (reads, writes) as JSON on stderr.
        #[arg(long)]
        stats: bool,
    },
    /// One row per port of each managed bridge: role, PVID, untagged, tagged, source.
    Show {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the config and whether the host can do what it asks.
    Check,
    /// Convert another tool's configuration to virt-vlan TOML (printed on stdout).
    #[command(subcommand)]
    Import(Import),
    /// Run as a libvirt hook: `hook <driver> <object> <op> <subop> [extra]`, XML on stdin.
    /// (Installed as /etc/libvirt/hooks/<driver>[.d/virt-vlan], argv[0] says the driver.)
    Hook {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(virt_vlan::hook::DRIVERS))]
        driver: String,
        /// object op subop [extra], as libvirt passes them.
        #[arg(num_args = 0.., allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The detached helper of the network `port-created` hook (not for people).
    #[command(hide = true)]
    HookWaitPort { uuid: String },
    /// Keep every managed bridge right as things happen: hot-plugs no hook sees, VLANs changed
    /// by hand, bridges re-created. Event-driven; SIGHUP reloads the config.
    Watch {
        /// Reconcile once and exit.
        #[arg(long)]
        once: bool,
    },
    /// Install the libvirt hook entries, a default config, the AppArmor rule and the
    /// virt-vlan-watch systemd unit.
    Install {
        /// Install under this directory instead of / (packaging, tests).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Remove what install put there (the config is kept).
        #[arg(long)]
        uninstall: bool,
        /// Install as libvirt's main hook /etc/libvirt/hooks/<driver> (never replacing
        /// another program's), which also runs kvmvlan-style <driver>_<op>_<subop>.d/ scripts.
        #[arg(long)]
        main_hook: bool,
    },
}

#[derive(Subcommand)]
enum Import {
    /// kvmvlan's bridge_init.conf and vlan_filtering.conf.
    Kvmvlan {
        #[arg(long, value_name = "FILE")]
        bridge_init: PathBuf,
        #[arg(long, value_name = "FILE")]
        vlan_filtering: PathBuf,
    },
}

fn main() -> ExitCode {
    // The guest-start critical path needs no argument parser: as libvirt runs it (argv[0]
    // names the driver), or as `virt-vlan hook <driver> <object> <op> <subop> [extra]`
    // without options.
    let argv: Vec<String> = std::env::args().collect();
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
    let cli = Cli::parse();
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
        Command::Show { json } => commands::show(&cli.config, json),
        Command::Check => commands::check(&cli.config),
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
        } => commands::install(root, uninstall, main_hook),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("virt-vlan: {e:#}");
            ExitCode::from(virt_vlan::error::exit_code(&e) as u8)
        }
    }
}
