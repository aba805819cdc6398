//! Arbitrary bytes through the bencode and metainfo decoders: no panic, and whatever parses
//! re-encodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gotorrent_http::fuzzing::metainfo(data);
});
