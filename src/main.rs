//! The `gotorrent-http` binary: parse the command line and dispatch; the work lives in the library.

use clap::Parser;

#[actix_web::main]
async fn main() {
    let cli = gotorrent_http::cli::Cli::parse();
    if let Err(e) = gotorrent_http::cli::run(cli).await {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, skipping a cause its parent already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}
