//! The fuzz corpora, replayed: every input the fuzzers kept (fuzz/corpus/T)
//! and every crash they found (fuzz/regressions/T) goes through the same
//! harness as under libFuzzer (`etcd_audit::fuzz`), so a crash fixed once
//! stays fixed. A panic fails the test and names the input.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect(),
        Err(_) => vec![],
    };
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_runs_clean() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (target, harness) in etcd_audit::fuzz::TARGETS {
        assert!(fuzz.join("fuzz_targets").join(format!("{target}.rs")).is_file(), "no fuzz target {target}");
        for kind in ["corpus", "regressions"] {
            for input in inputs(&fuzz.join(kind).join(target)) {
                let bytes = std::fs::read(&input).unwrap();
                let ran = std::panic::catch_unwind(|| harness(&bytes));
                assert!(ran.is_ok(), "{target}: {} panics", input.display());
                replayed += 1;
            }
        }
    }
    let targets = std::fs::read_dir(fuzz.join("fuzz_targets")).unwrap().count();
    assert_eq!(targets, etcd_audit::fuzz::TARGETS.len(), "a target without a harness in etcd_audit::fuzz");
    assert!(replayed > 100, "only {replayed} inputs: is fuzz/corpus there?");
}
