//! The floor under the one-connection-per-announce figure: an actix-web app that answers every
//! request with the same short bencoded body, served by gotorrent-http's own accept loops
//! (`gotorrent_http::server::workers`). `benches/run.py` measures it beside opentracker: what
//! separates the two is the framework's cost per connection, not the tracker's work.
//!
//! `cargo run --release --example empty_app -- 127.0.0.1:0` prints "listening on port N".

use actix_web::{web, App, HttpResponse};
use anyhow::Context;
use gotorrent_http::server::workers;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let addr = bind
        .parse()
        .with_context(|| format!("not a socket address: {bind}"))?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (local, listeners) =
        workers::bind(addr, cores).with_context(|| format!("cannot bind {addr}"))?;
    println!("listening on port {}", local.port());
    let app = || {
        App::new().default_service(web::to(|| async {
            HttpResponse::Ok()
                .content_type("text/plain")
                .body("d8:intervali1800e5:peers0:e")
        }))
    };
    workers::Server::start(listeners, app, workers::Config::default())?
        .run()
        .await
        .context("server failed")
}
