//! Open vSwitch daemons for lab tests: a private ovsdb-server with its own database, socket
//! and logs, and ovs-vswitchd (userspace datapath in a namespace of its own, or the kernel
//! datapath in a given namespace), stopped by their pids when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where Debian's Open vSwitch (and so libvirt's `ovs-vsctl` and virt-vlan) looks.
pub const SYSTEM_RUNDIR: &str = "/run/openvswitch";
pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// One private Open vSwitch: ovsdb-server, and ovs-vswitchd when asked for. Dropping it stops
/// both (by the pids in their pidfiles) and removes the directory.
pub struct Ovs {
    pub dir: PathBuf,
    pub sock: PathBuf,
    vswitchd: bool,
}

impl Ovs {
    pub fn start(test: &str, vswitchd: bool) -> Ovs {
        let vswitchd_cmd = ["unshare", "--net", "--"];
        Ovs::start_with(test, vswitchd.then_some(&vswitchd_cmd[..]), None)
    }

    /// ovs-vswitchd with the kernel datapath (openvswitch.ko) in network namespace `ns`: its
    /// bridges and internal ports are netdevs there, and its ports are that namespace's.
    pub fn start_in_netns(test: &str, ns: &str) -> Ovs {
        Ovs::load_module();
        Ovs::start_with(test, Some(&["ip", "netns", "exec", ns]), None)
    }

    /// The host's Open vSwitch as libvirt and virt-vlan find it by default: the database
    /// socket at /run/openvswitch/db.sock, ovs-vswitchd with the kernel datapath in the VM's
    /// own namespace (where libvirt's taps are).
    pub fn start_system(test: &str) -> Ovs {
        Ovs::load_module();
        std::fs::create_dir_all(SYSTEM_RUNDIR).unwrap();
        Ovs::start_with(
            test,
            Some(&["env"]),
            Some(&Path::new(SYSTEM_RUNDIR).join("db.sock")),
        )
    }

    fn load_module() {
        let modprobe = Command::new("modprobe")
            .arg("openvswitch")
            .status()
            .unwrap();
        assert!(
            modprobe.success(),
            "modprobe openvswitch failed: the lab kernel's openvswitch.ko is needed"
        );
    }

    /// ovsdb-server here (its socket in its directory unless `sock` says where); ovs-vswitchd
    /// (when `vswitchd` says how to wrap it) too.
    pub fn start_with(test: &str, vswitchd: Option<&[&str]>, sock: Option<&Path>) -> Ovs {
        let dir = PathBuf::from(format!("/tmp/virt-vlan-ovs-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ovs = Ovs {
            sock: sock.map_or_else(|| dir.join("db.sock"), Path::to_path_buf),
            dir,
            vswitchd: vswitchd.is_some(),
        };
        let d = ovs.dir.display().to_string();
        ovs.run("ovsdb-tool", &["create", &format!("{d}/conf.db"), SCHEMA]);
        ovs.start_ovsdb();
        ovs.vsctl_no_wait(&["init"]);
        if let Some(wrap) = vswitchd {
            ovs.start_vswitchd(wrap);
        }
        ovs
    }

    fn start_ovsdb(&self) {
        let d = self.dir.display().to_string();
        self.run(
            "ovsdb-server",
            &[
                &format!("{d}/conf.db"),
                &format!("--remote=punix:{}", self.sock.display()),
                &format!("--pidfile={d}/ovsdb.pid"),
                &format!("--unixctl={d}/ovsdb.ctl"),
                "--detach",
                &format!("--log-file={d}/ovsdb.log"),
            ],
        );
    }

    /// Stops ovsdb-server (by its pid) and starts it again on the same database.
    pub fn restart_ovsdb(&self) {
        let pid = std::fs::read_to_string(self.dir.join("ovsdb.pid")).unwrap();
        stop(pid.trim().parse().unwrap());
        self.start_ovsdb();
    }

    pub fn start_vswitchd(&self, wrap: &[&str]) {
        let d = self.dir.display().to_string();
        let args = [
            "ovs-vswitchd".to_string(),
            format!("unix:{}", self.sock.display()),
            format!("--pidfile={d}/vswitchd.pid"),
            format!("--unixctl={d}/vswitchd.ctl"),
            "--detach".into(),
            format!("--log-file={d}/vswitchd.log"),
        ];
        let mut all: Vec<&str> = wrap[1..].to_vec();
        all.extend(args.iter().map(String::as_str));
        self.run(wrap[0], &all);
    }

    /// Stops ovs-vswitchd (by its pid) and starts it again the same way.
    pub fn restart_vswitchd(&self, wrap: &[&str]) {
        let pid = std::fs::read_to_string(self.dir.join("vswitchd.pid")).unwrap();
        stop(pid.trim().parse().unwrap());
        self.start_vswitchd(wrap);
    }

    /// Runs `program args` with the daemons' run, log and database directories pointed here.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install openvswitch-switch)"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// ovs-vsctl as another client would run it; waits for ovs-vswitchd when it runs.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.sock.display());
        let mut all = vec![db.as_str(), "--timeout=20"];
        if !self.vswitchd {
            all.push("--no-wait");
        }
        all.extend_from_slice(args);
        self.run("ovs-vsctl", &all).trim().to_string()
    }

    pub fn vsctl_no_wait(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.sock.display());
        let mut all = vec![db.as_str(), "--timeout=20", "--no-wait"];
        all.extend_from_slice(args);
        self.run("ovs-vsctl", &all).trim().to_string()
    }

    /// `ovs-vsctl get Port NAME COLUMN`, unquoted.
    pub fn get(&self, name: &str, column: &str) -> String {
        self.vsctl(&["get", "Port", name, column])
            .trim_matches('"')
            .to_string()
    }

    /// The three VLAN columns as ovs-vsctl prints them: `(vlan_mode, tag, trunks)`.
    pub fn vlan_columns(&self, name: &str) -> (String, String, String) {
        (
            self.get(name, "vlan_mode"),
            self.get(name, "tag"),
            self.get(name, "trunks"),
        )
    }

    pub fn cfg(&self, column: &str) -> i64 {
        self.vsctl(&["get", "Open_vSwitch", ".", column])
            .parse()
            .unwrap()
    }

    /// The database log's records (one per committed transaction), as `ovsdb-tool` prints them.
    pub fn log_records(&self) -> Vec<String> {
        let log = self.run(
            "ovsdb-tool",
            &[
                "show-log",
                "-m",
                &self.dir.join("conf.db").display().to_string(),
            ],
        );
        log.split("\nrecord ").map(str::to_string).collect()
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for pidfile in ["vswitchd.pid", "ovsdb.pid"] {
            if let Some(pid) = std::fs::read_to_string(self.dir.join(pidfile))
                .ok()
                .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
            {
                stop(pid);
            }
        }
        // the system socket must not outlive its server: virt-vlan would find it and fail
        let _ = std::fs::remove_file(&self.sock);
        if self.sock.starts_with(SYSTEM_RUNDIR) {
            // the kernel datapath outlives ovs-vswitchd; later suites must not meet it
            let _ = Command::new("ovs-dpctl")
                .args(["del-dp", "ovs-system"])
                .stderr(std::process::Stdio::null())
                .status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept {} for its logs", self.dir.display());
        }
    }
}

/// Stops one daemon we started: SIGTERM, then SIGKILL after 5 s.
pub fn stop(pid: libc::pid_t) {
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    };
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive() {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
