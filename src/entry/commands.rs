//! Bodies of the CLI commands: wire config, store, kernel and the pure core together, and
//! print. Each returns the exit code for success paths; errors carry their own.

use crate::apply::Mode;
use crate::check::Level;
use crate::config::Config;
use crate::error::BadInput;
use crate::intent::Scope;
use crate::store::Store;
use crate::switch::Switch;
use anyhow::{Context, Result};
use std::io::{BufRead, Write};
use std::path::Path;

/// `virt-vlan apply [--dry-run | --confirm] [--stats]`: the config's bridges and ports and
/// every running guest's ports (learnt from libvirt, or from its hooks if it cannot be asked).
pub fn apply(config_path: &Path, dry_run: bool, confirm: bool, stats: bool) -> Result<u8> {
    let config = Config::load(config_path)?;
    let store = Store::open_default();
    let state = read_host(&config)?;
    state.require_vlan_support(config.bridges.keys())?;
    let guests = crate::guests::gather(&config, &store, &state, true)?;
    for n in &guests.notes {
        tracing::info!("{n}");
    }
    let render = |plan: &crate::plan::Plan| {
        plan.render_with(&|p| {
            state
                .bridges
                .get(&p.bridge)
                .is_some_and(|b| b.kind == crate::state::BridgeKind::OpenVswitch)
                .then(|| crate::ovs::switch::commands(p))
        })
    };
    let mut ask = |plan: &crate::plan::Plan| -> bool {
        print!("{}", render(plan));
        eprint!("apply these {} change(s)? [y/N] ", plan.write_count());
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        matches!(answer.trim(), "y" | "Y" | "yes")
    };
    let mode = match (dry_run, confirm) {
        (true, _) => Mode::DryRun,
        (false, true) => Mode::Confirm(&mut ask),
        (false, false) => Mode::Apply,
    };
    let outcome = crate::session::run(&store, &config, &guests.ports, &Scope::Host, mode)?;
    if dry_run {
        print!("{}", render(&outcome.plan));
    } else if !outcome.applied {
        if !outcome.plan.is_empty() {
            println!("not applied: nothing changed");
        }
    } else if outcome.plan.is_empty() {
        println!("nothing to do: the host already matches {}", config.path);
    } else {
        let changed = outcome.plan.changed_ports();
        println!(
            "applied {} change(s) to {} port(s) and {} bridge setting(s); verified",
            outcome.plan.write_count(),
            changed.len(),
            outcome.plan.settings.len()
        );
    }
    if stats {
        eprintln!("{}", serde_json::to_string(&outcome.stats)?);
    }
    // Every other port was managed; guests in violation or with malformed XML make the run
    // a failure.
    guests.refused_result()?;
    outcome.policy_result()?;
    Ok(0)
}

/// Reads the kernel for `config`'s bridges.
fn read_host(config: &Config) -> Result<crate::state::HostState> {
    let mut sw = crate::host_switch::HostSwitch::open(config)?;
    sw.read(&config.bridges.keys().cloned().collect())
}

/// `virt-vlan show [--json | --diagram] [--svg FILE]`
pub fn show(config_path: &Path, json: bool, diagram: bool, svg: Option<&Path>) -> Result<u8> {
    let config = Config::load(config_path)?;
    let state = read_host(&config)?;
    let record = Store::open_default().load_unlocked()?;
    if let Err(e) = state.require_vlan_support(config.bridges.keys()) {
        eprintln!("virt-vlan: {e}");
    }
    let rows = crate::show::rows(&config, &state, &record);
    for name in config
        .bridges
        .keys()
        .filter(|b| !state.bridges.contains_key(*b))
    {
        eprintln!("virt-vlan: bridge {name} does not exist");
    }
    let svg_to_stdout = svg.is_some_and(|p| p == Path::new("-"));
    if let Some(path) = svg.filter(|_| !svg_to_stdout) {
        std::fs::write(path, crate::show::diagram::svg(&rows))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if svg_to_stdout {
        print!("{}", crate::show::diagram::svg(&rows));
    } else if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if diagram {
        print!("{}", crate::show::diagram::text(&rows));
    } else {
        print!("{}", crate::show::table(&rows));
    }
    Ok(0)
}

/// `virt-vlan check [--json] [--strict]`: the exit code says the worst finding (see
/// `crate::check::exit_code`). With `--json`, stdout is one JSON document even when the config
/// cannot be read (then `status` is `bad-input`) or the kernel cannot be asked.
pub fn check(config_path: &Path, json: bool, strict: bool) -> Result<u8> {
    let findings = match gather_findings(config_path) {
        Ok(f) => f,
        Err(e) => {
            if json {
                let code = crate::error::exit_code(&e) as u8;
                let f = crate::check::Finding {
                    level: Level::Error,
                    id: if code == 2 { "config" } else { "runtime" },
                    message: format!("{e:#}"),
                };
                println!("{}", crate::check::json_report(&[f], code, code == 2));
            }
            return Err(e);
        }
    };
    let code = crate::check::exit_code(&findings, strict);
    if json {
        println!("{}", crate::check::json_report(&findings, code, false));
    } else {
        for f in &findings {
            println!("{f}");
        }
    }
    Ok(code)
}

fn gather_findings(config_path: &Path) -> Result<Vec<crate::check::Finding>> {
    let config = Config::load(config_path)?;
    let store = Store::open_default();
    let record = store.load_unlocked()?;
    let view = crate::guests::DomainView::best(&store, true);
    let uses = crate::guests::libvirt_vlan_uses(&view);
    // the bridges libvirt's <vlan>s plug into are read too, managed or not
    let mut bridges: std::collections::BTreeSet<String> = config.bridges.keys().cloned().collect();
    bridges.extend(uses.iter().map(|u| u.bridge.clone()));
    let state = crate::host_switch::HostSwitch::open(&config)?.read(&bridges)?;
    let host = crate::check::probe::host_facts(&view);
    Ok(crate::check::check(&config, &state, &record, &uses, &host))
}

/// `virt-vlan install [--root DIR] [--uninstall] [--main-hook]`
pub fn install(
    root: std::path::PathBuf,
    uninstall: bool,
    main_hook: bool,
    package: bool,
) -> Result<u8> {
    let exe = std::env::current_exe().context("cannot find my own executable")?;
    let o = crate::install::Options {
        root,
        uninstall,
        main_hook,
        exe,
        libvirt: crate::install::libvirt_version(),
        package,
    };
    for line in crate::install::run(&o)? {
        println!("{line}");
    }
    Ok(0)
}

/// `virt-vlan import kvmvlan --bridge-init FILE --vlan-filtering FILE`
pub fn import_kvmvlan(bridge_init: &Path, vlan_filtering: &Path) -> Result<u8> {
    let read = |p: &Path| {
        std::fs::File::open(p)
            .map_err(|e| format!("{}: cannot read: {e}", p.display()))
            .and_then(|f| {
                crate::text::read_limited(f, &p.display().to_string(), crate::text::MAX_FILE)
            })
            .map_err(BadInput)
            .context("import kvmvlan")
    };
    let bi = read(bridge_init)?;
    let vf = read(vlan_filtering)?;
    let (toml, notes) = crate::kvmvlan::import(
        (&bridge_init.display().to_string(), &bi),
        (&vlan_filtering.display().to_string(), &vf),
    )?;
    for n in notes {
        eprintln!("virt-vlan: note: {n}");
    }
    print!("{toml}");
    Ok(0)
}
