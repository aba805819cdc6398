//! Command-line interface: the argument types (clap) and what each subcommand does.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::{Application, Seeds};
use crate::metainfo::{create, Metainfo};
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
    /// Run the server, sharing these files and folders as well as the data dir.
    Seed {
        /// Files or folders to share, named by their file name (a folder is one multi-file
        /// torrent).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A .torrent describing one of them (matched by its name): that file or folder is
        /// served under this torrent, its piece length and info-hashes, once its bytes are
        /// checked against it; repeatable.
        #[arg(long = "torrent", value_name = "FILE")]
        torrents: Vec<PathBuf>,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Download a torrent from every seeder at once, verifying each piece; resumes.
    Download(DownloadArgs),
    /// Print the OpenAPI document (JSON).
    Openapi,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// A .torrent path, an http(s) URL of a .torrent, a magnet URI, or an info-hash (v1 or v2
    /// hex) with --tracker.
    pub source: String,
    /// Directory the file lands in, as DIR/<name>.
    #[arg(short, long, value_name = "DIR", default_value = "downloads")]
    pub output_dir: PathBuf,
    /// Tracker base or /announce URL [default: the torrent's announce URL].
    #[arg(long, value_name = "URL")]
    pub tracker: Option<String>,
    /// A seeder's base URL to fetch from as well; repeatable.
    #[arg(long = "seeder", value_name = "URL")]
    pub seeders: Vec<String>,
    /// Requests in flight over all seeders.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: u16,
    /// Pieces failing verification before a seeder is dropped.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_bad_pieces: u32,
    /// Slowest rate a request is given time for, in bytes per second: a seeder that misses two
    /// such deadlines in a row is dropped.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_rate: u64,
    /// Fastest rate to download at, in bytes per second over all seeders (like curl's
    /// --limit-rate) [default: no limit].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rate: Option<u64>,
    /// Print only errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// After finishing, keep running as a seeder of the file, announcing to the tracker.
    #[arg(long)]
    pub seed: bool,
    /// With --seed: listen address HOST:PORT [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT", requires = "seed")]
    pub bind: Option<String>,
    /// With --seed: the URL others reach this seeder at.
    #[arg(long, value_name = "URL", requires = "seed")]
    pub public_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file or folder to make a torrent of. A folder becomes a multi-file torrent named
    /// after it: its regular files, in byte-wise path order, leaving out hidden names
    /// (`.git`, `.env`, ...) and symbolic links that lead outside it or to directories.
    pub file: PathBuf,
    /// Piece (chunk) length in bytes: a power of two, at least 16384.
    #[arg(long, default_value_t = 1 << 20)]
    pub piece_length: u64,
    /// Tracker URL (a base URL gets /announce appended); repeat for a BEP 12 announce-list.
    #[arg(long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Web-seed URL (BEP 19 url-list); repeatable. A directory URL ending in '/', e.g.
    /// http://host:8080/files/, is written for a single file as the file's full URL,
    /// URL<name> percent-encoded, as the server's own torrents carry it; a folder keeps the
    /// directory URL, and a URL that names the file (no trailing '/') is written as given.
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Where to write the .torrent [default: torrents/<name>.torrent].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Write a v1-only torrent (no SHA-256 piece hashes) for clients that cannot open hybrid
    /// torrents, such as transmission 3.00.
    #[arg(long)]
    pub v1_only: bool,
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
    /// Port mapping on the home router (UPnP, PCP, NAT-PMP): auto, on or off [default: auto,
    /// which maps when listening on a non-loopback address with no public URL].
    #[arg(long, value_name = "MODE")]
    pub nat: Option<crate::settings::NatMapping>,
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
            nat: self.nat,
            ..Overrides::default()
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Create(args) => create_torrent(&args),
        Command::Serve(args) => serve(&args, Seeds::default()).await,
        Command::Seed {
            files,
            torrents,
            serve: args,
        } => {
            let torrents = torrents
                .iter()
                .map(|path| read_torrent(path))
                .collect::<anyhow::Result<_>>()?;
            serve(&args, Seeds { files, torrents }).await
        }
        Command::Download(args) => download(&args).await,
        Command::Openapi => {
            println!("{}", crate::server::openapi::json());
            Ok(())
        }
    }
}

/// A .torrent file, parsed and checked.
fn read_torrent(path: &Path) -> anyhow::Result<crate::metainfo::Metainfo> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("--torrent {}: cannot read it", path.display()))?;
    crate::metainfo::Metainfo::from_bytes(&bytes)
        .with_context(|| format!("--torrent {}: not a usable torrent", path.display()))
}

async fn serve(args: &ServeArgs, seeds: Seeds) -> anyhow::Result<()> {
    let settings = Settings::load(args.config.as_deref(), &args.overrides())?;
    telemetry::init(&settings.log);
    let app = Application::build(settings, seeds).await?;
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
    let source = create::Source::open(&args.file)?;
    for (path, why) in &source.skipped {
        eprintln!("warning: left out {}: {why}", path.display());
    }
    let web_seeds: Vec<String> = args
        .web_seeds
        .iter()
        .map(|seed| crate::seeder::web_seed_entry(seed, &source.name, source.is_folder))
        .collect();
    let size = source.total_length();
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
    let progress = |done| bar.set_position(done);
    let (name, bytes, hashes) = if args.v1_only {
        let torrent = source.v1_torrent(piece_length, &trackers, &web_seeds, &progress)?;
        let hashes = format!("info-hash v1: {}", torrent.info_hash_v1);
        (torrent.name, torrent.bytes, hashes)
    } else {
        let meta = source.torrent(piece_length, &trackers, &web_seeds, &progress)?;
        let hashes = format!(
            "info-hash v2: {}\ninfo-hash v1: {}",
            meta.info_hash_v2, meta.info_hash_v1
        );
        (meta.name.clone(), meta.bytes.to_vec(), hashes)
    };
    bar.finish_and_clear();
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| Path::new("torrents").join(format!("{name}.torrent")));
    write_atomically(&output, &bytes)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("{}", output.display());
    println!("{hashes}");
    Ok(())
}

async fn download(args: &DownloadArgs) -> anyhow::Result<()> {
    let level = if args.quiet { "error" } else { "warn" };
    telemetry::init(&crate::settings::LogSettings {
        format: crate::settings::LogFormat::Text,
        level: level.into(),
    });
    let mut options = crate::download::Options::new(args.source.clone(), args.output_dir.clone());
    options.tracker = args
        .tracker
        .as_deref()
        .map(|t| check_http_url(t).map(crate::types::tracker_base))
        .transpose()
        .with_context(|| {
            format!(
                "--tracker {:?}",
                args.tracker.as_deref().unwrap_or_default()
            )
        })?;
    options.seeders = args
        .seeders
        .iter()
        .map(|s| check_http_url(s).with_context(|| format!("--seeder {s:?}")))
        .collect::<anyhow::Result<_>>()?;
    options.connections = usize::from(args.connections);
    options.max_bad_pieces = args.max_bad_pieces;
    options.min_rate = args.min_rate;
    options.max_rate = args.max_rate;

    let bar = DownloadBar::new(args.quiet);
    let report = crate::download::download(&options, &bar).await?;
    if !args.quiet {
        println!("{}", summary(&report));
    }
    if args.seed {
        seed_after_download(args, &report).await?;
    }
    Ok(())
}

/// One line: size, time, mean rate and bytes per seeder.
pub fn summary(report: &crate::download::Report) -> String {
    if report.already_complete {
        return format!(
            "{} is already complete and verified: nothing to fetch",
            report.path.display()
        );
    }
    let secs = report.elapsed.as_secs_f64().max(1e-3);
    let per_seeder: Vec<String> = report
        .seeders
        .iter()
        .filter(|s| s.bytes > 0 || s.dropped.is_some())
        .map(|s| {
            let dropped = s
                .dropped
                .as_ref()
                .map_or(String::new(), |why| format!(" (dropped: {why})"));
            format!("{} {}{dropped}", s.url, indicatif::HumanBytes(s.bytes))
        })
        .collect();
    format!(
        "{}: {} in {:.1} s ({}/s), {} fetched, {} pieces resumed; from {}",
        report.path.display(),
        indicatif::HumanBytes(report.length),
        secs,
        indicatif::HumanBytes((report.fetched_bytes as f64 / secs) as u64),
        indicatif::HumanBytes(report.fetched_bytes),
        report.resumed_pieces,
        if per_seeder.is_empty() {
            "no seeder".to_owned()
        } else {
            per_seeder.join(", ")
        }
    )
}

/// Turns this downloader into a seeder of the file it fetched. Its state lives in
/// `<output dir>/.gotorrent/`, so the downloads dir itself is not scanned.
async fn seed_after_download(
    args: &DownloadArgs,
    report: &crate::download::Report,
) -> anyhow::Result<()> {
    let home = args.output_dir.join(".gotorrent");
    let overrides = Overrides {
        bind: args.bind.clone(),
        data_dir: Some(home.join("data")),
        state_dir: Some(home.join("state")),
        public_url: args.public_url.clone(),
        tracker: report.tracker.as_ref().map(|t| t.to_string()),
        no_tracker: report.tracker.is_some(),
        ..Overrides::default()
    };
    let settings = Settings::load(None, &overrides)?;
    // Served under the torrent it was downloaded as (its piece length, its info-hashes), not one
    // hashed anew with this server's default piece length.
    let seeds = Seeds {
        files: vec![report.path.clone()],
        torrents: vec![Metainfo::clone(&report.meta)],
    };
    let app = Application::build(settings, seeds).await?;
    if !args.quiet {
        eprintln!(
            "seeding {} at {} (Ctrl-C to stop)",
            report.name,
            app.public_url()
        );
    }
    app.run_until_stopped().await.context("seeder failed")
}

/// The download's progress bar: bytes, rate, ETA and seeders in use; hidden when quiet or not
/// on a terminal.
struct DownloadBar {
    bar: ProgressBar,
    /// "3/10 files, " for a folder, else empty.
    files: std::sync::Mutex<String>,
}

impl DownloadBar {
    fn new(quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return DownloadBar::wrap(ProgressBar::hidden());
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .expect("a valid template"),
        );
        DownloadBar::wrap(bar)
    }

    fn wrap(bar: ProgressBar) -> Self {
        DownloadBar {
            bar,
            files: std::sync::Mutex::default(),
        }
    }
}

impl crate::download::Progress for DownloadBar {
    fn started(&self, name: &str, total: u64, have: u64) {
        self.bar.set_prefix(name.to_owned());
        self.bar.set_length(total);
        self.bar.set_position(have);
        self.bar.reset_eta();
    }

    fn advanced(&self, bytes: u64, seeders: usize) {
        self.bar.inc(bytes);
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        self.bar.set_message(format!("{files}{seeders} seeders"));
    }

    fn files(&self, done: usize, total: usize) {
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = format!("{done}/{total} files, ");
    }

    fn finished(&self) {
        self.bar.finish_and_clear();
    }
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

/// Writes via a temporary file in the same directory, synced, then renamed over `path`, and
/// syncs the directory: a crash leaves the old file or the whole new one, never a truncated one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir
        }
        None => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.suffix(".partial");
    // As std::fs::write creates files (tempfile's own default is owner-only): the umask decides.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // On failure the temporary file is removed as it drops.
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn written_atomically_into_new_dirs_over_old_files_with_nothing_left_behind() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("torrents ü/a b.torrent");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(names(path.parent().unwrap()), ["a b.torrent"]);

        // Modes as std::fs::write gives them (the umask's), not a temporary file's 0600.
        use std::os::unix::fs::PermissionsExt;
        let plain = root.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&path), mode(&plain));
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let taken = root.path().join("a directory.torrent");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("inside"), b"x").unwrap();
        assert!(write_atomically(&taken, b"data").is_err());
        assert_eq!(names(root.path()), ["a directory.torrent"]);
        assert_eq!(names(&taken), ["inside"]);
    }
}
