//! The integration tests: one binary, one module per area, over the real application on port 0
//! and real clients and servers. `support` starts them; the namespace lab (`tests/home`) runs in
//! a test binary of its own.

mod support;

mod api_fuzz;
mod bench_smoke;
mod bittorrent_protocol;
mod cli;
mod download;
mod faults;
mod fuzz_corpus;
mod image;
mod ops;
mod real_clients;
mod scale_out;
mod security;
mod seeder_api;
mod tracker_api;
mod web;
