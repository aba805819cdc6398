//! Replays the checked-in fuzz corpus (tests/fuzz/corpus, grown by `cargo +nightly fuzz run`)
//! through the same property checks as the fuzz targets, so CI covers them on stable.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "fuzz input {} fails its properties",
            path.display()
        );
        inputs += 1;
    }
    inputs
}

#[test]
fn the_metainfo_corpus_keeps_its_properties() {
    let inputs = replay("metainfo", gotorrent_http::fuzzing::metainfo);
    assert!(inputs >= 3, "the corpus is missing");
}

#[test]
fn the_tracker_query_corpus_keeps_its_properties() {
    let inputs = replay("tracker_query", gotorrent_http::fuzzing::tracker_query);
    assert!(inputs >= 4, "the corpus is missing");
}
