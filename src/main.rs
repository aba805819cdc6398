//! The `gotorrent-http` binary: parse the command line and dispatch; the work lives in the library.

use clap::Parser;

#[actix_web::main]
async fn main() {
    let cli = gotorrent_http::cli::Cli::parse();
    if let Err(e) = gotorrent_http::cli::run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
