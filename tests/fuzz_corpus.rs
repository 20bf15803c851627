//! Replays every fuzz corpus through its target on stable Rust, so that an
//! input a fuzzer once found interesting (and every crash it found, kept in
//! the corpus after the fix) is checked by `cargo test` without a fuzzer.
//!
//! The target bodies are `fuzz/src/lib.rs`, included here as they are: the
//! list of targets is written once, there.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The names of the entries of `dir` (file stems when `suffix` is given,
/// keeping only files with that suffix).
fn names_in(dir: &Path, suffix: Option<&str>) -> BTreeSet<String> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| match suffix {
            Some(suffix) => name.strip_suffix(suffix).map(str::to_owned),
            None => Some(name),
        })
        .collect()
}

/// Every target in the list has a `fuzz_targets/<name>.rs` and a corpus
/// folder, and nothing else does: a target cannot be fuzzed without being
/// replayed here, nor a corpus be left unreplayed.
#[test]
fn the_target_list_matches_the_fuzz_targets_and_the_corpora() {
    let listed: BTreeSet<String> = targets::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        listed.len(),
        targets::TARGETS.len(),
        "a target is listed twice"
    );
    let dir = fuzz_dir();
    assert_eq!(names_in(&dir.join("fuzz_targets"), Some(".rs")), listed);
    assert_eq!(names_in(&dir.join("corpus"), None), listed);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    for name in &listed {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
    }
}

/// How long one input may run before the replay calls it a hang (the
/// slowest corpus input takes milliseconds).
const PER_INPUT: Duration = Duration::from_secs(10);

/// Every file of every corpus runs through its target without a panic and
/// without breaking the target's checks, each within [`PER_INPUT`] (so that
/// an input that once hung fails here in seconds, not by stalling the
/// suite); an empty or missing corpus fails, so that this test cannot pass
/// by testing nothing.
#[test]
fn every_corpus_file_passes_its_target() {
    let corpus = fuzz_dir().join("corpus");
    for &(name, target) in targets::TARGETS {
        let dir = corpus.join(name);
        let files = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect::<Vec<_>>();
        assert!(!files.is_empty(), "corpus {} is empty", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let (done, finished) = mpsc::channel();
            // A hung input's thread is left behind; the failing test ends
            // the process.
            std::thread::spawn(move || {
                target(&data);
                let _ = done.send(());
            });
            match finished.recv_timeout(PER_INPUT) {
                Ok(()) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{name}: {} fails (see the panic above)", file.display())
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{name}: {} runs for over {PER_INPUT:?}", file.display())
                }
            }
        }
    }
}
