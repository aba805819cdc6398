//! `download` end to end: real and fake seeders on port 0, faults, resume, and the tracker.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::fake_seeder::{Behaviour, FakeSeeder};
use crate::support::{content, poll, Running, TestApp};
use gotorrent_http::download::{self, Options, Report, Silent};
use gotorrent_http::metainfo::create;
use gotorrent_http::types::PieceLength;
use url::Url;

const PIECE: usize = 16 * 1024;

/// A file's bytes and its torrent (16 KiB pieces) written to a temp dir.
struct Fixture {
    dir: tempfile::TempDir,
    data: Vec<u8>,
    torrent: PathBuf,
}

fn fixture(len: usize, url_list: Vec<String>) -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("download ü ")
        .tempdir()
        .unwrap();
    let data = content(len);
    let meta = create::from_bytes(
        "file ü.bin",
        &data,
        PieceLength::new(PIECE as u64).unwrap(),
        vec![],
        url_list,
    )
    .unwrap();
    let torrent = dir.path().join("file.torrent");
    std::fs::write(&torrent, &meta.bytes).unwrap();
    Fixture { dir, data, torrent }
}

impl Fixture {
    fn out_dir(&self) -> PathBuf {
        self.dir.path().join("out dir")
    }

    fn options(&self, seeders: &[&str]) -> Options {
        let mut options = Options::new(self.torrent.to_str().unwrap(), self.out_dir());
        options.seeders = seeders.iter().map(|s| Url::parse(s).unwrap()).collect();
        options
    }

    fn assert_downloaded(&self, report: &Report) {
        assert_eq!(report.path, self.out_dir().join("file ü.bin"));
        assert!(
            std::fs::read(&report.path).unwrap() == self.data,
            "downloaded bytes differ"
        );
        assert!(!self.out_dir().join("file ü.bin.part").exists());
        assert!(!self.out_dir().join("file ü.bin.part.pieces").exists());
    }
}

fn bytes_from(report: &Report, url: &str) -> u64 {
    report
        .seeders
        .iter()
        .filter(|s| s.url.starts_with(url))
        .map(|s| s.bytes)
        .sum()
}

#[actix_web::test]
async fn downloads_from_a_torrent_url_and_detects_a_finished_file() {
    // Arrange: a real server sharing a 3-piece file (1 MiB pieces, short last one).
    let data = content(2 * 1024 * 1024 + 4321);
    let app = TestApp::spawn_with(&[("movie ü.mkv", &data[..])], |_| {}).await;
    let v2 = app.wait_for_torrent("movie ü.mkv").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = tempfile::tempdir().unwrap();
    let options = Options::new(format!("{}/torrents/{v2}", app.url), out.path());

    // Act
    let report = download::download(&options, &Silent).await.unwrap();

    // Assert
    assert_eq!(std::fs::read(out.path().join("movie ü.mkv")).unwrap(), data);
    assert_eq!(report.fetched_bytes, data.len() as u64);
    assert_eq!(
        report.seeders.len(),
        1,
        "the web seed is the same server: used once"
    );
    let again = download::download(&options, &Silent).await.unwrap();
    assert!(again.already_complete);
    assert_eq!(again.fetched_bytes, 0);
}

#[actix_web::test]
async fn downloads_by_info_hash_through_the_tracker() {
    let data = content(300_000);
    let app = TestApp::spawn_with(&[("by hash.bin", &data[..])], |_| {}).await;
    let summary = app.wait_for_torrent("by hash.bin").await;
    let out = tempfile::tempdir().unwrap();
    for hash in [
        summary["info_hash_v1"].as_str().unwrap(),
        summary["info_hash_v2"].as_str().unwrap(),
    ] {
        let dir = out.path().join(hash);
        let mut options = Options::new(hash, &dir);
        options.tracker = Some(
            Url::parse(&format!("{}/announce", app.url))
                .map(gotorrent_http::types::tracker_base)
                .unwrap(),
        );
        download::download(&options, &Silent).await.unwrap();
        assert_eq!(std::fs::read(dir.join("by hash.bin")).unwrap(), data);
    }
    let mut no_tracker = Options::new(summary["info_hash_v2"].as_str().unwrap(), out.path());
    no_tracker.tracker = None;
    let err = download::download(&no_tracker, &Silent)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--tracker"), "{err}");
}

#[actix_web::test]
async fn three_seeders_share_the_work() {
    // Arrange: A is tracker and seeder; B and C seed the same file and announce to A.
    let data = content(6 * 1024 * 1024);
    let a = TestApp::spawn_with(&[("big.bin", &data[..])], |_| {}).await;
    let v2 = a.wait_for_torrent("big.bin").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut others = Vec::new();
    for _ in 0..2 {
        let tracker = a.url.clone();
        others.push(
            TestApp::spawn_with(&[("big.bin", &data[..])], |o| {
                o.no_tracker = true;
                o.tracker = Some(tracker);
            })
            .await,
        );
    }
    poll("three seeders to be listed", || async {
        a.peer_urls(&v2).await.len() == 3
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let mut options = Options::new(v2.as_str(), out.path());
    options.tracker = Some(Url::parse(&a.url).unwrap());

    // Act
    let report = download::download(&options, &Silent).await.unwrap();

    // Assert
    assert_eq!(std::fs::read(out.path().join("big.bin")).unwrap(), data);
    assert_eq!(report.seeders.len(), 3, "{:?}", report.seeders);
    let used = report.seeders.iter().filter(|s| s.bytes > 0).count();
    assert!(used >= 2, "{:?}", report.seeders);
    assert_eq!(
        report.seeders.iter().map(|s| s.bytes).sum::<u64>(),
        data.len() as u64
    );
}

#[actix_web::test]
async fn a_seeder_sending_bad_data_is_dropped_and_the_file_is_still_right() {
    let fx = fixture(40 * PIECE + 99, vec![]);
    let corrupt = FakeSeeder::start(fx.data.clone(), PIECE, Behaviour::Corrupt).await;
    let good = FakeSeeder::start(
        fx.data.clone(),
        PIECE,
        Behaviour::Slow(Duration::from_millis(2)),
    )
    .await;

    let report = download::download(&fx.options(&[&corrupt.url, &good.url]), &Silent)
        .await
        .unwrap();

    fx.assert_downloaded(&report);
    let bad = report
        .seeders
        .iter()
        .find(|s| s.url.starts_with(&corrupt.url))
        .unwrap();
    assert_eq!(bad.bytes, 0);
    assert_eq!(bad.bad_pieces, 3);
    assert!(
        bad.dropped.as_deref().unwrap().contains("verification"),
        "{bad:?}"
    );
    assert_eq!(bytes_from(&report, &good.url), fx.data.len() as u64);
}

#[actix_web::test]
async fn a_seeder_dying_mid_download_is_survived() {
    let fx = fixture(60 * PIECE, vec![]);
    let dying = FakeSeeder::start(fx.data.clone(), PIECE, Behaviour::DieAfter(10)).await;
    let steady = FakeSeeder::start(
        fx.data.clone(),
        PIECE,
        Behaviour::Slow(Duration::from_millis(5)),
    )
    .await;

    let report = download::download(&fx.options(&[&dying.url, &steady.url]), &Silent)
        .await
        .unwrap();

    fx.assert_downloaded(&report);
    assert!(bytes_from(&report, &dying.url) <= 10 * PIECE as u64);
    assert!(bytes_from(&report, &steady.url) >= 50 * PIECE as u64);
}

#[actix_web::test]
async fn retry_after_is_honoured_and_a_web_seed_ignoring_range_is_not_trusted() {
    let range_ignorer_data = content(20 * PIECE);
    let ignorer =
        FakeSeeder::start(range_ignorer_data.clone(), PIECE, Behaviour::IgnoresRange).await;
    let fx = fixture(20 * PIECE, vec![format!("{}/files/", ignorer.url)]);
    let busy = FakeSeeder::start(fx.data.clone(), PIECE, Behaviour::Unavailable(2)).await;

    let started = std::time::Instant::now();
    let report = download::download(&fx.options(&[&busy.url]), &Silent)
        .await
        .unwrap();

    fx.assert_downloaded(&report);
    assert_eq!(
        bytes_from(&report, &ignorer.url),
        0,
        "200 to a Range request is never used"
    );
    assert!(ignorer.requests() > 0, "the web seed was tried");
    assert_eq!(bytes_from(&report, &busy.url), fx.data.len() as u64);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After: 1"
    );
}

/// Prints how long `what` took (for the closing note's figures) and fails past 15 s.
fn took_under_15_s(what: &str, started: std::time::Instant) {
    let took = started.elapsed();
    println!("{what}: {took:?}");
    assert!(took < Duration::from_secs(15), "{what}: {took:?}");
}

#[actix_web::test]
async fn a_seeder_that_only_drips_loses_its_requests_to_a_good_one() {
    let fx = fixture(40 * PIECE, vec![]);
    let drip = FakeSeeder::start(
        fx.data.clone(),
        PIECE,
        Behaviour::Drip(Duration::from_millis(50)),
    )
    .await;
    let good = FakeSeeder::start(fx.data.clone(), PIECE, Behaviour::Good).await;
    let mut options = fx.options(&[&drip.url, &good.url]);
    // A 16 KiB piece gets 2 s plus 0.25 s at this floor rate; the drip needs 800 s for one.
    options.min_rate = 64 * 1024;

    let started = std::time::Instant::now();
    let report = download::download(&options, &Silent).await.unwrap();

    fx.assert_downloaded(&report);
    assert_eq!(bytes_from(&report, &good.url), fx.data.len() as u64);
    assert_eq!(
        bytes_from(&report, &drip.url),
        0,
        "its pieces went to the good seeder"
    );
    took_under_15_s("with a dripping seeder beside a good one", started);
}

#[actix_web::test]
async fn max_rate_paces_the_download() {
    // 64 pieces of 16 KiB = 1 MiB at 2 MiB/s: half a second at least, where unpaced it takes
    // a few milliseconds on loopback.
    let fx = fixture(64 * PIECE, vec![]);
    let seeder = FakeSeeder::start(fx.data.clone(), PIECE, Behaviour::Good).await;
    let mut options = fx.options(&[&seeder.url]);
    options.max_rate = Some(2 * 1024 * 1024);

    let started = std::time::Instant::now();
    let report = download::download(&options, &Silent).await.unwrap();

    fx.assert_downloaded(&report);
    let took = started.elapsed();
    // The last request may start at (1 MiB - one piece) / rate.
    assert!(took >= Duration::from_millis(480), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[actix_web::test]
async fn with_only_a_dripping_seeder_it_ends_with_a_clear_error() {
    let fx = fixture(4 * PIECE, vec![]);
    let drip = FakeSeeder::start(
        fx.data.clone(),
        PIECE,
        Behaviour::Drip(Duration::from_millis(200)),
    )
    .await;

    let started = std::time::Instant::now();
    let error = download::download(&fx.options(&[&drip.url]), &Silent)
        .await
        .unwrap_err();

    let text = format!("{error:#}");
    assert!(
        text.contains("no usable seeders left") && text.contains("4 of 4 pieces missing"),
        "{text}"
    );
    took_under_15_s("with only a dripping seeder, the error", started);
}

#[actix_web::test]
async fn a_hostile_tracker_peer_list_is_filtered_not_fatal() {
    let fx = fixture(8 * PIECE, vec![]);
    let good = FakeSeeder::start(fx.data.clone(), PIECE, Behaviour::Good).await;
    let tracker = FakeSeeder::start(Vec::new(), PIECE, Behaviour::Good).await;
    let mut peers: Vec<serde_json::Value> = ["mailto:x@y", "data:,x", "not a url", "ftp://h/"]
        .iter()
        .map(|u| serde_json::json!({"url": u}))
        .collect();
    peers.extend((0..100_000).map(|_| serde_json::json!({"url": good.url})));
    tracker.set_peers(serde_json::json!({"peers": peers}).to_string());
    let mut options = fx.options(&[]);
    options.tracker = Some(Url::parse(&tracker.url).unwrap());

    let report = download::download(&options, &Silent).await.unwrap();

    fx.assert_downloaded(&report);
    assert_eq!(
        report.seeders.len(),
        1,
        "100,000 copies of one seeder are one seeder"
    );

    // A peer list past the size limit is refused, not read whole.
    let huge = format!(r#"{{"peers":[],"pad":"{}"}}"#, "x".repeat(5 << 20));
    tracker.set_peers(huge);
    let mut options = fx.options(&[&good.url]);
    options.output_dir = fx.dir.path().join("again");
    options.tracker = Some(Url::parse(&tracker.url).unwrap());
    let report = download::download(&options, &Silent).await.unwrap();
    assert_eq!(report.seeders.len(), 1);
}

#[actix_web::test]
async fn torrents_with_pieces_over_the_buffer_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let meta = create::from_bytes(
        "huge pieces.bin",
        &content(1000),
        PieceLength::new(64 << 20).unwrap(),
        vec![],
        vec![],
    )
    .unwrap();
    let torrent = dir.path().join("huge.torrent");
    std::fs::write(&torrent, &meta.bytes).unwrap();

    let error = download::download(
        &Options::new(torrent.to_str().unwrap(), dir.path()),
        &Silent,
    )
    .await
    .unwrap_err()
    .to_string();

    assert!(
        error.contains("pieces of 64 MiB") && error.contains("limit of 32 MiB"),
        "{error}"
    );
    assert!(
        !dir.path().join("huge pieces.bin.part").exists(),
        "nothing written"
    );
}

/// CPU time (user + system) of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[actix_web::test]
async fn waiting_on_a_stalled_request_does_not_spin() {
    let fx = fixture(2 * PIECE, vec![]);
    let stalled = FakeSeeder::start(fx.data.clone(), PIECE, Behaviour::Stall).await;
    let mut child = gotorrent()
        .args([
            "download",
            fx.torrent.to_str().unwrap(),
            "--quiet",
            "--seeder",
            &stalled.url,
            "-o",
        ])
        .arg(fx.out_dir())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll("both requests to stall", || async {
        stalled.requests() >= 2
    })
    .await;

    let before = cpu_ticks(child.id());
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let spent = cpu_ticks(child.id()) - before;
    child.kill().unwrap();
    child.wait().unwrap();

    // 2 s at 100 ticks/s: a spinning loop burns most of 200 ticks; waiting burns none.
    assert!(spent <= 4, "{spent} ticks of CPU in 2 s of waiting");
}

fn gotorrent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gotorrent-http"))
}

fn recorded_pieces(record: &Path) -> usize {
    // 8-byte magic + 32-byte info-hash, then 4 bytes per verified piece.
    std::fs::metadata(record).map_or(0, |m| (m.len().saturating_sub(40) / 4) as usize)
}

/// Runs `download <args> -o <out>` in the real binary and kills it with SIGKILL once `record`
/// lists at least `pieces` pieces; returns how many it lists then.
async fn download_killed_after(args: &[&str], out: &Path, record: &Path, pieces: usize) -> usize {
    let mut child = gotorrent()
        .arg("download")
        .args(args)
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll("some pieces to be recorded", || async {
        recorded_pieces(record) >= pieces
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    recorded_pieces(record)
}

#[actix_web::test]
async fn resumes_after_kill_9_fetching_only_missing_pieces_even_without_the_record() {
    // Arrange: a slow seeder and the real binary, killed with SIGKILL once pieces are recorded.
    let fx = fixture(64 * PIECE, vec![]);
    let slow = FakeSeeder::start(
        fx.data.clone(),
        PIECE,
        Behaviour::Slow(Duration::from_millis(40)),
    )
    .await;
    let record = fx.out_dir().join("file ü.bin.part.pieces");
    let args = [
        fx.torrent.to_str().unwrap(),
        "--seeder",
        &slow.url,
        "--connections",
        "2",
    ];
    let recorded = download_killed_after(&args, &fx.out_dir(), &record, 8).await;
    assert!(recorded < 64, "killed too late: {recorded} pieces recorded");
    // A second copy of the partial state, with its record lost.
    let lost = fx.dir.path().join("record lost");
    std::fs::create_dir_all(&lost).unwrap();
    std::fs::copy(
        fx.out_dir().join("file ü.bin.part"),
        lost.join("file ü.bin.part"),
    )
    .unwrap();

    // Act: resume both against a counting seeder.
    let counting = FakeSeeder::start(fx.data.clone(), PIECE, Behaviour::Good).await;
    let report = download::download(&fx.options(&[&counting.url]), &Silent)
        .await
        .unwrap();
    let mut rehash = fx.options(&[&counting.url]);
    rehash.output_dir = lost.clone();
    let rehashed = download::download(&rehash, &Silent).await.unwrap();

    // Assert
    fx.assert_downloaded(&report);
    assert_eq!(report.resumed_pieces, recorded);
    assert_eq!(report.fetched_pieces as usize, 64 - recorded);
    assert!(
        rehashed.resumed_pieces >= recorded,
        "re-verified the .part instead of fetching"
    );
    assert_eq!(std::fs::read(lost.join("file ü.bin")).unwrap(), fx.data);
    assert_eq!(
        counting.requests(),
        64 - recorded + 64 - rehashed.resumed_pieces
    );
}

#[actix_web::test]
async fn with_every_seeder_gone_it_exits_non_zero_and_keeps_the_partial_state() {
    let fx = fixture(8 * PIECE, vec![]);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };

    let out = gotorrent()
        .args([
            "download",
            fx.torrent.to_str().unwrap(),
            "--seeder",
            &closed,
            "-o",
        ])
        .arg(fx.out_dir())
        .output()
        .unwrap();

    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        error.contains("file ü.bin") && error.contains("8 of 8 pieces missing"),
        "{error}"
    );
    assert!(fx.out_dir().join("file ü.bin.part").exists());
    assert!(!fx.out_dir().join("file ü.bin").exists());
}

/// `download <v2> --seed` against `tracker`, once the tracker lists it as a second seeder:
/// the running downloader and the URL it seeds at.
async fn downloader_seeding(tracker: &TestApp, v2: &str, out: &Path) -> (Running, String) {
    let child = gotorrent()
        .args([
            "download",
            v2,
            "--tracker",
            &tracker.url,
            "--seed",
            "--bind",
            "127.0.0.1:0",
            "--quiet",
            "-o",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    poll("the downloader to announce itself as a seeder", || async {
        tracker.peer_urls(v2).await.len() == 2
    })
    .await;
    let seeder = tracker
        .peer_urls(v2)
        .await
        .into_iter()
        .find(|u| *u != tracker.url)
        .unwrap();
    (running, seeder)
}

async fn get_chunk(seeder: &str, v2: &str, index: u32) -> Vec<u8> {
    let response = reqwest::get(format!("{seeder}/chunks/{v2}/{index}"));
    response.await.unwrap().bytes().await.unwrap().to_vec()
}

#[actix_web::test]
async fn with_seed_the_downloader_becomes_a_seeder() {
    let data = content(100_000);
    let tracker = TestApp::spawn_with(&[("pass it on.bin", &data[..])], |_| {}).await;
    let v2 = tracker.wait_for_torrent("pass it on.bin").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = tempfile::tempdir().unwrap();
    let (_downloader, new_seeder) = downloader_seeding(&tracker, &v2, out.path()).await;
    let served = get_chunk(&new_seeder, &v2, 0).await;
    assert_eq!(served, &data[..]);
}

#[actix_web::test]
async fn with_seed_the_downloader_serves_the_torrent_it_downloaded_whatever_its_piece_length() {
    // Arrange: a torrent of 16 KiB pieces, where a new server hashes with 1 MiB by default.
    let data = content(100_000);
    let tracker = TestApp::spawn_with(&[("small pieces ü.bin", &data[..])], |o| {
        o.set("seeder.piece_length", 16384);
    })
    .await;
    let v2 = tracker.wait_for_torrent("small pieces ü.bin").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = tempfile::tempdir().unwrap();

    // Act: it announces the torrent it downloaded (before, another info-hash, never listed).
    let (_downloader, new_seeder) = downloader_seeding(&tracker, &v2, out.path()).await;

    // Assert: and serves its pieces.
    let piece = get_chunk(&new_seeder, &v2, 3).await;
    assert_eq!(piece, &data[3 * 16384..4 * 16384]);
}

/// A folder of many small files, a nested multi-piece file and an empty one.
fn folder_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| (format!("album ü/small {i:02}.txt"), content(3000 + i)))
        .collect();
    files.push((
        "album ü/disc 2/video <1>.bin".into(),
        content(40 * PIECE + 77),
    ));
    files.push(("album ü/empty".into(), Vec::new()));
    files
}

/// Records the seeders in use each time a download advances.
#[derive(Default)]
struct SeedersSeen(std::sync::Mutex<Vec<usize>>);

impl download::Progress for SeedersSeen {
    fn advanced(&self, _bytes: u64, seeders_in_use: usize) {
        self.0.lock().unwrap().push(seeders_in_use);
    }
}

#[actix_web::test]
async fn progress_counts_the_seeder_serving_a_one_connection_download() {
    // Arrange: one seeder, one request at a time, so it has none in flight as each piece lands.
    let data = content(6 * 16384);
    let app = TestApp::spawn_with(&[("one at a time.bin", &data[..])], |o| {
        o.set("seeder.piece_length", 16384);
    })
    .await;
    let v2 = app.wait_for_torrent("one at a time.bin").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = tempfile::tempdir().unwrap();
    let mut options = Options::new(format!("{}/torrents/{v2}", app.url), out.path());
    options.connections = 1;
    let seen = SeedersSeen::default();

    // Act
    download::download(&options, &seen).await.unwrap();

    // Assert
    let seen = seen.0.into_inner().unwrap();
    assert_eq!(seen.len(), 6, "one report per piece");
    assert!(seen.iter().all(|n| *n == 1), "{seen:?}");
}

/// Records what a download reports about files.
#[derive(Default)]
struct FilesSeen(std::sync::Mutex<Vec<(usize, usize)>>);

impl download::Progress for FilesSeen {
    fn files(&self, done: usize, total: usize) {
        self.0.lock().unwrap().push((done, total));
    }
}

#[actix_web::test]
async fn a_folder_downloads_from_two_seeders_and_resumes_after_kill_9() {
    // Arrange: two servers sharing the same folder (16 KiB pieces), the binary paced to
    // 200 kB/s and killed with SIGKILL once some pieces are recorded.
    let files = folder_files();
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
    let a = TestApp::spawn_with(&borrowed, |o| {
        o.set("seeder.piece_length", PIECE);
    })
    .await;
    let b = TestApp::spawn_with(&borrowed, |o| {
        o.no_tracker = true;
        o.set("seeder.piece_length", PIECE);
    })
    .await;
    let v2 = a.wait_for_torrent("album ü").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        b.wait_for_torrent("album ü").await["info_hash_v2"],
        v2.as_str()
    );
    let torrent_url = format!("{}/torrents/{v2}", a.url);
    let out = tempfile::Builder::new()
        .prefix("folder out ü ")
        .tempdir()
        .unwrap();
    let record = out.path().join("album ü.part.pieces");
    let args = [&torrent_url, "--seeder", &b.url, "--max-rate", "200000"];
    let recorded = download_killed_after(&args, out.path(), &record, 10).await;
    assert!(out.path().join("album ü.part").is_dir());
    assert!(
        !out.path().join("album ü").exists(),
        "the final folder appeared early"
    );

    // Act: resume from both seeders.
    let mut options = Options::new(&torrent_url, out.path());
    options.seeders = vec![Url::parse(&a.url).unwrap(), Url::parse(&b.url).unwrap()];
    let seen = FilesSeen::default();
    let report = download::download(&options, &seen).await.unwrap();

    // Assert: the whole tree, verified, renamed into place; both seeders served.
    assert_eq!(report.path, out.path().join("album ü"));
    for (path, data) in &files {
        let got = std::fs::read(out.path().join(path)).unwrap();
        assert!(got == *data, "{path} differs");
    }
    assert!(!out.path().join("album ü.part").exists());
    assert!(!record.exists());
    assert_eq!(report.resumed_pieces, recorded);
    assert!(bytes_from(&report, &a.url) > 0 && bytes_from(&report, &b.url) > 0);
    let seen = seen.0.lock().unwrap();
    assert_eq!(seen.last(), Some(&(files.len(), files.len())), "{seen:?}");
    assert!(seen[0].0 < files.len());
}

/// A folder torrent listing `paths` (one byte each: "x"), encoded without validation, as a
/// hostile tracker could serve it.
fn hostile_torrent(paths: &[&str]) -> Vec<u8> {
    use gotorrent_http::bencode::Value;
    use gotorrent_http::metainfo::{layout, merkle, FileSpec};
    use std::collections::BTreeMap;
    let pl = PieceLength::new(PIECE as u64).unwrap();
    let specs = paths
        .iter()
        .map(|p| FileSpec {
            path: p.split('/').map(String::from).collect(),
            length: 1,
            executable: false,
            pieces_root: Some(merkle::piece_hash(b"x", pl, 1)),
        })
        .collect();
    let files = layout::number(specs, pl);
    let info = Value::Dict(BTreeMap::from([
        (b"file tree".to_vec(), layout::file_tree(&files)),
        (b"files".to_vec(), layout::v1_files(&files, pl, true)),
        (b"meta version".to_vec(), Value::Int(2)),
        (b"name".to_vec(), Value::bytes("innocent")),
        (b"piece length".to_vec(), Value::Int(PIECE as i64)),
        (b"pieces".to_vec(), Value::Bytes(vec![0; 20 * paths.len()])),
    ]));
    Value::Dict(BTreeMap::from([(b"info".to_vec(), info)])).encode()
}

#[actix_web::test]
async fn a_hostile_folder_torrent_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let deep = ["d"; 40].join("/");
    for paths in [
        &["../../escape.txt"][..],
        &["ok.txt", "/etc/passwd"],
        &["ok.txt", "a\\b"],
        &["README", "readme"],
        &["A/x", "a/x"],
        &["Docs", "docs/x"],
        &[deep.as_str()],
    ] {
        // Arrange
        let torrent = dir.path().join("hostile.torrent");
        std::fs::write(&torrent, hostile_torrent(paths)).unwrap();
        let out = dir.path().join("out");

        // Act
        let err = download::download(&Options::new(torrent.to_str().unwrap(), &out), &Silent)
            .await
            .unwrap_err();

        // Assert
        assert!(
            format!("{err:#}").contains("unsafe file path"),
            "{paths:?}: {err:#}"
        );
        assert!(!out.exists(), "{paths:?}: something was written");
    }
}

#[actix_web::test]
async fn a_symbolic_link_inside_the_partial_folder_is_not_written_through() {
    // Arrange: a .part folder whose sub-directory is a link to a directory elsewhere.
    let files = folder_files();
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
    let app = TestApp::spawn_with(&borrowed, |_| {}).await;
    let v2 = app.wait_for_torrent("album ü").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = tempfile::tempdir().unwrap();
    let elsewhere = out.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(out.path().join("album ü.part")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.path().join("album ü.part/disc 2")).unwrap();

    // Act
    let options = Options::new(format!("{}/torrents/{v2}", app.url), out.path());
    let err = download::download(&options, &Silent).await.unwrap_err();

    // Assert
    assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[actix_web::test]
async fn a_folder_downloads_from_a_web_seed_alone() {
    // Arrange: a torrent made by `create DIR` whose only source is the server's /files/.
    let files = folder_files();
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
    let app = TestApp::spawn_with(&borrowed, |_| {}).await;
    app.wait_for_torrent("album ü").await;
    let out = tempfile::tempdir().unwrap();
    let torrent = out.path().join("web seed only.torrent");
    let status = gotorrent()
        .arg("create")
        .arg(app.data_dir.join("album ü"))
        .args(["--web-seed", &format!("{}/files/", app.url), "-o"])
        .arg(&torrent)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // Act
    let options = Options::new(torrent.to_str().unwrap(), out.path().join("got"));
    let report = download::download(&options, &Silent).await.unwrap();

    // Assert
    assert!(
        report
            .seeders
            .iter()
            .all(|s| s.url.contains("/files/album%20%C3%BC")),
        "{:?}",
        report.seeders
    );
    for (path, data) in &files {
        assert!(
            std::fs::read(out.path().join("got").join(path)).unwrap() == *data,
            "{path}"
        );
    }
    // A finished folder made read-only is still recognised as finished, not fetched again.
    use std::os::unix::fs::PermissionsExt;
    for (path, _) in &files {
        let file = out.path().join("got").join(path);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let again = download::download(&options, &Silent).await.unwrap();
    assert!(again.already_complete);
}
