//! One libvirt hook invocation as libvirt makes it: which driver, object, operation and
//! sub-operation, and whether the binary runs as the driver's main hook. Parsed from argv,
//! shared by the hook handlers (`hook`) and the kvmvlan-style script dispatcher
//! (`dispatcher`), which therefore do not depend on each other.

use std::path::Path;

/// Drivers libvirt runs hooks for.
pub const DRIVERS: &[&str] = &["qemu", "lxc", "network", "daemon", "libxl", "bhyve"];

/// One hook call as libvirt makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub driver: String,
    pub object: String,
    pub op: String,
    pub subop: String,
    /// Installed as `/etc/libvirt/hooks/<driver>` (then the kvmvlan dispatcher runs too).
    pub main_hook: bool,
}

impl Call {
    /// A hook call from argv when the binary is installed as a hook: `argv[0]` is
    /// `…/hooks/<driver>` or `…/hooks/<driver>.d/<anything>`.
    pub fn from_argv0(argv0: &Path, args: &[String]) -> Option<Call> {
        let name = argv0.file_name()?.to_str()?;
        let parent = argv0
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|p| p.to_str());
        let (driver, main_hook) = if DRIVERS.contains(&name) {
            (name, true)
        } else {
            let d = parent?.strip_suffix(".d")?;
            if !DRIVERS.contains(&d) {
                return None;
            }
            (d, false)
        };
        Some(Call::new(driver, args, main_hook))
    }

    /// From `driver object op subop [extra]` (missing values are `-`, as libvirt passes).
    pub fn new(driver: &str, args: &[String], main_hook: bool) -> Call {
        let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| "-".to_string());
        Call {
            driver: driver.to_string(),
            object: arg(0),
            op: arg(1),
            subop: arg(2),
            main_hook,
        }
    }

    /// Whether libvirt gives up on what it was doing when this hook fails.
    pub fn failure_aborts(&self) -> bool {
        match self.driver.as_str() {
            "qemu" | "lxc" | "libxl" | "bhyve" => {
                matches!(
                    self.op.as_str(),
                    "prepare" | "start" | "started" | "migrate" | "restore"
                )
            }
            "network" => matches!(self.op.as_str(), "start" | "started" | "port-created"),
            _ => false,
        }
    }
}
