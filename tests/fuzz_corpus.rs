//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and every input a fuzzer ever crashed or
//! hung on (`fuzz/regressions/<target>/`) through the same target functions the AFL binary
//! runs, so plain `cargo test` (and CI) guards against regressions without AFL or nightly.
//! A directory walk and `catch_unwind` per file, naming every failing input: no crate needed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use virt_vlan::fuzz_targets::{TARGETS, target};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Files of `fuzz/<kind>/<target>/`, sorted (none when the folder does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Folders of `fuzz/<kind>/` that name no target: a renamed target would silently stop being
/// replayed.
fn stray_folders(kind: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind)) else {
        return Vec::new();
    };
    dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| target(n).is_none() && !n.starts_with('.'))
        .collect()
}

/// Runs every file of `kind` through its target; names each one that panics or is slow.
fn replay(kind: &str) -> usize {
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, run) in TARGETS {
        for file in inputs(kind, name) {
            let data = std::fs::read(&file).unwrap();
            let start = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| run(&data)));
            let took = start.elapsed();
            count += 1;
            if let Err(e) = result {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: panicked: {msg}", file.display()));
            } else if took > Duration::from_secs(2) {
                failures.push(format!("{}: took {took:?} (a hang?)", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    count
}

#[test]
fn every_corpus_input_passes_its_target() {
    for (name, _) in TARGETS {
        assert!(
            !inputs("corpus", name).is_empty(),
            "fuzz/corpus/{name}/ is empty: seed it"
        );
    }
    assert_eq!(stray_folders("corpus"), Vec::<String>::new());
    replay("corpus");
}

#[test]
fn every_input_a_fuzzer_ever_failed_on_passes_now() {
    assert_eq!(stray_folders("regressions"), Vec::<String>::new());
    replay("regressions");
}
