# virt-vlan: every command works on a fresh Debian machine from a clean clone.
#   make demo   installs what it needs, boots the lab VM, shows the main job working
#   make test   every test: lint, unit tests here, lab tests in the lab VM
#   make bench  benchmarks in the lab VM, writes BENCHMARKS.md

LAB_SUITES := lab lab_libvirt lab_libvirt_live

.PHONY: all build deps lint unit lab test demo bench
all: build

build:
	cargo build --release

deps:
	lab/install-deps

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

unit:
	cargo test

lab: deps
	lab/run-tests $(LAB_SUITES)

test: deps lint unit lab

demo: deps
	cargo build --release
	lab/vm lab/demo

bench:
	bench/run
