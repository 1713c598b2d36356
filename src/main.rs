//! The `virt-vlan` command line: argument parsing and exit codes (0 success, 1 runtime
//! failure, 2 bad input). The work is in `virt_vlan::commands`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use virt_vlan::commands;
use virt_vlan::config::DEFAULT_PATH;

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
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
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
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("virt-vlan: {e:#}");
            ExitCode::from(virt_vlan::error::exit_code(&e) as u8)
        }
    }
}
