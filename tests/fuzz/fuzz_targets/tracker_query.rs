//! Arbitrary text through the tracker's query parsers, magnet URIs and Range headers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gotorrent_http::fuzzing::tracker_query(data);
});
