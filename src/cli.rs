//! Command-line interface: the argument types (clap) and what each subcommand does.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::metainfo::create;
use crate::server::Application;
use crate::settings::{Overrides, Settings};
use crate::telemetry;
use crate::types::PieceLength;

#[derive(Debug, Parser)]
#[command(
    name = "gotorrent-http",
    version,
    about = "Share files over plain HTTP: a seeder and a tracker in one process, with SHA-256-verified chunks and real BitTorrent metainfo"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a hybrid v1 + v2 .torrent for a file.
    Create(CreateArgs),
    /// Run the server: seed the data dir and track seeders.
    Serve(ServeArgs),
    /// Run the server, sharing these files as well as the data dir.
    Seed {
        /// Files to share, named by their file name.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Print the OpenAPI document (JSON).
    Openapi,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file to make a torrent of.
    pub file: PathBuf,
    /// Piece (chunk) length in bytes: a power of two, at least 16384.
    #[arg(long, default_value_t = 1 << 20)]
    pub piece_length: u64,
    /// Tracker URL (a base URL gets /announce appended); repeat for a BEP 12 announce-list.
    #[arg(long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Web-seed URL (BEP 19 url-list), e.g. http://host:8080/files/; repeatable.
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Where to write the .torrent [default: torrents/<name>.torrent].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML config file layered over the compiled-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address HOST:PORT [default: 127.0.0.1:8080; PORT env: 0.0.0.0:$PORT].
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: Option<String>,
    /// Directory of files to share [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory for the state database [default: ./state].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// URL others reach this server at [default: http://<bind>].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Tracker to announce to, base or /announce URL [default: this server].
    #[arg(long, value_name = "URL")]
    pub tracker: Option<String>,
    /// Turn the tracker role off.
    #[arg(long)]
    pub no_tracker: bool,
    /// Turn the seeder role off.
    #[arg(long)]
    pub no_seeder: bool,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            bind: self.bind.clone(),
            data_dir: self.data_dir.clone(),
            state_dir: self.state_dir.clone(),
            public_url: self.public_url.clone(),
            tracker: self.tracker.clone(),
            no_tracker: self.no_tracker,
            no_seeder: self.no_seeder,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Create(args) => create_torrent(&args),
        Command::Serve(args) => serve(&args, Vec::new()).await,
        Command::Seed { files, serve: args } => serve(&args, files).await,
        Command::Openapi => {
            println!("{}", crate::server::openapi::json());
            Ok(())
        }
    }
}

async fn serve(args: &ServeArgs, seed_files: Vec<PathBuf>) -> anyhow::Result<()> {
    let settings = Settings::load(args.config.as_deref(), &args.overrides())?;
    telemetry::init(&settings.raw.log);
    let app = Application::build(settings, seed_files).await?;
    eprintln!(
        "gotorrent-http listening on port {}; public URL {} (Swagger UI at {}swagger-ui/)",
        app.port(),
        app.public_url(),
        app.public_url()
    );
    app.run_until_stopped().await.context("server failed")
}

fn create_torrent(args: &CreateArgs) -> anyhow::Result<()> {
    let piece_length = PieceLength::new(args.piece_length).context("--piece-length")?;
    let trackers = args
        .trackers
        .iter()
        .map(|t| announce_url(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for seed in &args.web_seeds {
        check_http_url(seed).with_context(|| format!("--web-seed {seed:?}"))?;
    }
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "hashing {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let meta = create::from_path(
        &args.file,
        piece_length,
        trackers,
        args.web_seeds.clone(),
        &|done| bar.set_position(done),
    )?;
    bar.finish_and_clear();
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| Path::new("torrents").join(format!("{}.torrent", meta.name)));
    write_atomically(&output, &meta.bytes)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("{}", output.display());
    println!("info-hash v2: {}", meta.info_hash_v2);
    println!("info-hash v1: {}", meta.info_hash_v1);
    Ok(())
}

/// A tracker given by its base URL gets /announce appended; any other URL is kept as given.
fn announce_url(tracker: &str) -> anyhow::Result<String> {
    let mut url = check_http_url(tracker).with_context(|| format!("--tracker {tracker:?}"))?;
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/announce");
    }
    Ok(url.into())
}

fn check_http_url(s: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(s)?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && url.host().is_some(),
        "expected an http:// or https:// URL"
    );
    Ok(url)
}

/// Writes via a temporary file and a rename, so a crash never leaves a truncated .torrent.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
