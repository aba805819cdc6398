//! gotorrent-http: an HTTP-native file seeder and BitTorrent-compatible tracker in one process.
//!
//! Layers, from the wire inwards: `server` (actix-web handlers, thin) → `seeder` / `tracker`
//! (state and policy, no HTTP) → `storage` / `db` (files and SQLite). `metainfo`, `bencode` and
//! `types` are pure protocol code shared by all of them and by the CLI. `settings` validates the
//! configuration once; `bootstrap` turns it into services and jobs; `app` wires them to the
//! HTTP layer. docs/architecture.md says where a change goes.

pub mod api_client;
pub mod app;
pub mod bencode;
pub mod bootstrap;
pub mod cli;
pub mod db;
pub mod directory;
pub mod download;
pub mod fetch;
pub mod fuzzing;
pub mod magnet;
pub mod metainfo;
pub mod per_thread;
pub mod reach;
pub mod seeder;
pub mod server;
pub mod settings;
pub mod storage;
pub mod telemetry;
pub mod tracker;
pub mod types;
