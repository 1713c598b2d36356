# virt-vlan: every command works on a fresh Debian machine from a clean clone.
#   make demo   installs what it needs, boots the lab VM, shows the main job working
#   make test   every test: lint, unit tests here, lab tests in the lab VM
#   make bench  benchmarks in the lab VM, writes BENCHMARKS.md
#   make fuzz   fuzzes every reader of outside input (AFL++), writes fuzz/last-run.md
#   make reliability  prints the reliability figures and writes RELIABILITY.md

# lab_deb installs the package `make deb` builds, so `lab` builds it first.
LAB_SUITES := lab lab_hostile lab_libvirt lab_libvirt_live lab_ovs lab_deb lab_migrate

.PHONY: all build deps lint unit lab test demo bench deb fuzz reliability
all: build

build:
	cargo build --release

deps:
	lab/install-deps

# The lab suites are `test = false` (they run in the VM), which --all-targets leaves out.
LAB_TESTS := $(foreach s,$(LAB_SUITES),--test $(s))

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets $(LAB_TESTS) -- -D warnings

unit:
	cargo test

lab: deps deb
	lab/run-tests $(LAB_SUITES)

test: deps lint unit lab

demo: deps
	cargo build --release
	lab/vm lab/demo

bench:
	bench/run

# A Debian package, target/debian/virt-vlan_<version>-1_<arch>.deb: cargo-deb (installed
# into ~/.cargo/bin if missing) packs the binary with what it generates from itself — man
# pages, completions, the watch unit, the commented config, the AppArmor rule.
deb:
	cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.' || \
		cargo install cargo-deb --locked --version 3.8.0
	command -v dpkg-shlibdeps >/dev/null || \
		{ apt-get update && apt-get install -y --no-install-recommends dpkg-dev; }
	cargo build --release
	rm -rf target/package-files target/debian/virt-vlan_*.deb
	target/release/virt-vlan package-files target/package-files
	cargo deb --no-build

# AFL++ (through afl.rs, on stable Rust) on every parser of outside input, FUZZ_SECONDS (60)
# per target at nice 19; findings land in fuzz/regressions/, which `cargo test` replays.
fuzz:
	fuzz/run

# The reliability figures (hostile inputs, fuzzing, kills, faults, guests at once) from the
# tests themselves, printed and written to RELIABILITY.md; the lab part boots the VM per root.
reliability: deps
	lab/reliability
