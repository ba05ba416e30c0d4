//! Replays every file of the `ws_frames` fuzz corpus (`fuzz/corpus/ws_frames/`) through
//! the same invariant checks the fuzz target runs, so CI exercises them on stable Rust.

use std::path::Path;

#[test]
fn ws_frames_corpus_keeps_its_invariants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ws_frames");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for file in &files {
        let data = std::fs::read(file).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| gangway_tunnel::fuzzing::ws_frames(&data));
        assert!(
            outcome.is_ok(),
            "ws_frames: {} fails its invariant",
            file.display()
        );
    }
}
