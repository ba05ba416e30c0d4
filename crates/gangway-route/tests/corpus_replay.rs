//! Replays every file of the fuzz corpora (`fuzz/corpus/<target>/`) through the same
//! invariant checks the fuzz targets run, so CI exercises them on stable Rust.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
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
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its invariant",
            file.display()
        );
    }
}

#[test]
fn route_expr_corpus_keeps_its_invariants() {
    replay("route_expr", gangway_route::fuzzing::route_expr);
}

#[test]
fn route_table_corpus_keeps_its_invariants() {
    replay("route_table", gangway_route::fuzzing::route_table);
}

#[test]
fn normalize_corpus_keeps_its_invariants() {
    replay("normalize", gangway_route::fuzzing::normalize);
}
