//! The `virt-vlan` command line as clap's derive describes it: every command, option and help
//! text, and the exit codes. The man pages and shell completions of the Debian package are
//! generated from this one definition (`package_files`), so they never drift from `--help`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use virt_vlan::config::DEFAULT_PATH;

const EXIT_CODES: &str = "Exit codes: 0 success; 1 runtime failure (the kernel refused, a port \
vanished, a bridge is missing); 2 bad input (arguments, config, policy).";

const CHECK_EXIT_CODES: &str = "Exit codes, by the worst finding: 0 nothing wrong (warnings are \
allowed unless --strict); 1 at least one error: something is broken now; 2 bad input (arguments \
or config: nothing else was checked); 3 with --strict, warnings but no error. With --json, stdout \
is one JSON document in every case: {\"status\": \"ok\"|\"warning\"|\"error\"|\"bad-input\", \
\"exit\": N, \"counts\": {...}, \"findings\": [{\"level\", \"id\", \"message\"}...]}; scripts \
should match findings by their stable id, not by message text.";

/// Turns a Linux bridge into a managed 802.1Q switch for libvirt/KVM guests.
#[derive(Parser)]
#[command(
    name = "virt-vlan",
    version,
    about,
    long_about = "Turns a Linux bridge into a managed 802.1Q switch for libvirt/KVM guests: \
        each port (guest taps, the uplink to the physical switch, the bridge's own port) carries \
        exactly the VLANs it should. The config is one TOML file; guests' VLANs come from their \
        libvirt XML (virt-vlan metadata, <vlan>, portgroups) and are applied by libvirt's hooks \
        before the guest runs.",
    after_long_help = EXIT_CODES
)]
pub struct Cli {
    /// Config file.
    #[arg(long, global = true, env = "VIRT_VLAN_CONFIG", default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Make every managed bridge, uplink, the bridges' own ports and every configured port
    /// carry exactly the VLANs the config asks for.
    #[command(after_long_help = EXIT_CODES)]
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
        #[arg(long, conflicts_with = "diagram")]
        json: bool,
        /// Draw each managed bridge as a switch: its ports with PVID and VIDs, the uplinks on
        /// the left, guests on the right, the host's own port below.
        #[arg(long)]
        diagram: bool,
        /// Also write the diagram as SVG to FILE (`-`: stdout, instead of the table).
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Check the config and whether the host can do what it asks: bridges, kernel, uplinks
    /// and the VIDs they carry, libvirt's hooks, the AppArmor rule, the watcher.
    #[command(after_long_help = CHECK_EXIT_CODES)]
    Check {
        /// One JSON document on stdout instead of lines.
        #[arg(long)]
        json: bool,
        /// Warnings fail too (exit 3).
        #[arg(long)]
        strict: bool,
    },
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
        /// Called by the Debian package, which ships the config and the unit itself: only the
        /// hook entries and the AppArmor rule.
        #[arg(long, hide = true)]
        package: bool,
    },
    /// Write the files the Debian package ships that come from this binary: man pages,
    /// shell completions, the systemd unit, the default config, the AppArmor rule.
    #[command(hide = true)]
    PackageFiles {
        /// Directory to write them to (created).
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum Import {
    /// kvmvlan's bridge_init.conf and vlan_filtering.conf.
    Kvmvlan {
        #[arg(long, value_name = "FILE")]
        bridge_init: PathBuf,
        #[arg(long, value_name = "FILE")]
        vlan_filtering: PathBuf,
    },
}
