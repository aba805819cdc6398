//! gotorrent-http: an HTTP-native file seeder and BitTorrent-compatible tracker in one process.
//!
//! Layers, from the wire inwards: `server` (actix-web handlers, thin) → `seeder` / `tracker`
//! (state and policy, no HTTP) → `storage` / `db` (files and SQLite). `metainfo`, `bencode` and
//! `types` are pure protocol code shared by all of them and by the CLI.

pub mod bencode;
pub mod metainfo;
pub mod types;
