//! The one AFL++ fuzz binary: `virt-vlan-fuzz <target>` feeds AFL's inputs to the target of
//! that name in `virt_vlan::fuzz_targets` (the functions `cargo test` replays the corpus
//! through), in AFL's persistent mode. `virt-vlan-fuzz --list` names the targets.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    if name == "--list" {
        for (n, _) in virt_vlan::fuzz_targets::TARGETS {
            println!("{n}");
        }
        return;
    }
    let Some(target) = virt_vlan::fuzz_targets::target(&name) else {
        eprintln!("usage: virt-vlan-fuzz <target> | --list");
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| target(data));
}
