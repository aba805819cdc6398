//! Turns validated [`Settings`](crate::settings::Settings) into the parts of a running server:
//! where others reach it ([`reach()`]), the tracker and its stores ([`tracker()`]), the seeder
//! and its storage ([`seeder()`]), and the background jobs that keep them current ([`jobs`]).
//! One small function per part; [`crate::app::Application`] calls them in order and hands the
//! services to the HTTP layer. Nothing here speaks HTTP.

pub mod jobs;
mod reach;
mod seeder;
mod tracker;

pub use reach::reach;
pub use seeder::{seeder, TorrentUrlsFor};
pub use tracker::{tracker, tracker_client};
