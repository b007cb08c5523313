//! Replays every committed fuzz input on the stable toolchain: the seed corpora
//! (`fuzz/corpus/<target>/`) and the inputs that once crashed a target
//! (`fuzz/regressions/<target>/`), kept forever. A crash found by `cargo fuzz` is fixed and
//! its input added to `fuzz/regressions/<target>/`, which makes it a test here.

use std::path::{Path, PathBuf};

use veritas_reliability::targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn every_target_has_seeds_and_every_committed_input_passes() {
    let root = fuzz_dir();
    let mut replayed = 0;
    for (name, body) in TARGETS {
        let seeds = inputs(&root.join("corpus").join(name));
        assert!(
            seeds.iter().any(|p| p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
            "fuzz/corpus/{name} has no seed"
        );
        let regressions = inputs(&root.join("regressions").join(name));
        for input in seeds.iter().chain(&regressions) {
            let data = std::fs::read(input).expect("readable corpus file");
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "{name}: {} fails", input.display());
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} fuzz inputs");
}

#[test]
fn the_fuzz_targets_and_the_bodies_match() {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut files: Vec<String> = inputs(&dir)
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(
        files, names,
        "fuzz/fuzz_targets/*.rs against targets::TARGETS"
    );
}
