//! Soak test: the real server under concurrent chunk requests, announces (JSON and BEP 3) and
//! whole downloads, for a bounded time. Reports throughput, errors, and the server's RSS and
//! open file descriptors after warm-up and at the end; fails on any error or a leak.
//!
//!     cargo bench --bench soak                  # 60 s (SOAK_SECONDS to change)
//!     SOAK_HOSTILE=1 cargo bench --bench soak   # the same, beside hostile traffic
//!
//! Hostile traffic: BEP 3 `completed` announces and native announces for random info-hashes
//! (each a new swarm), requests with invented HTTP methods, and 10 MiB POST /torrents bodies of
//! empty lists. Peers expire after 10 s in this run (a 5 s announce interval), so the caps and
//! the expiry both take part and RSS must level off.
//!
//! Under `cargo test` (no `--bench` flag) it runs a 3-second smoke version with hostile traffic,
//! so it cannot rot.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// The test harness's helper for running the real binary; the rest of the harness is unused here.
#[path = "../tests/it/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

const FILE_BYTES: usize = 32 * 1024 * 1024;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data: &Path, state: &Path) -> Server {
    let args: [&OsStr; 7] = [
        "serve".as_ref(),
        "--bind".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
    ];
    let env = [
        ("GOTORRENT__TRACKER__RATE_LIMIT_PER_SECOND", "0"),
        // Every soak client is 127.0.0.1: the per-client stream cap would refuse them.
        ("GOTORRENT__SEEDER__MAX_STREAMS_PER_CLIENT", "512"),
        ("GOTORRENT__LOG__LEVEL", "warn"),
        ("GOTORRENT__SEEDER__PIECE_LENGTH", "262144"),
        // Peers expire after twice this: a hostile run's swarms come and go within the soak.
        ("GOTORRENT__TRACKER__ANNOUNCE_INTERVAL_SECS", "5"),
    ];
    let (child, url) = support::spawn_binary(&args, &env);
    Server { child, url }
}

/// (RSS in KiB, open file descriptors) of a process.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

#[derive(Default)]
struct Counts {
    chunks: AtomicU64,
    bytes: AtomicU64,
    announces: AtomicU64,
    downloads: AtomicU64,
    errors: AtomicU64,
    hostile: AtomicU64,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = match std::env::var("SOAK_SECONDS") {
        Ok(s) => s.parse().expect("SOAK_SECONDS is a number of seconds"),
        Err(_) if full => 60,
        Err(_) => 3,
    };
    let hostile = !full || std::env::var("SOAK_HOSTILE").is_ok_and(|v| v == "1");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ok = runtime.block_on(soak(Duration::from_secs(seconds), hostile, full));
    std::process::exit(if ok { 0 } else { 1 });
}

/// Requests no well-behaved client sends, in a loop until `stop`; counts them.
fn spawn_hostile(
    url: &str,
    http: &reqwest::Client,
    counts: &Arc<Counts>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for worker in 0..3u64 {
        let (http, url, counts, stop) =
            (http.clone(), url.to_owned(), counts.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = worker << 40;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let random: String = format!("{:040x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let escaped: String = random
                    .as_bytes()
                    .chunks(2)
                    .map(|p| format!("%{}", std::str::from_utf8(p).unwrap()))
                    .collect();
                let request = match n % 3 {
                    0 => http.get(format!(
                        "{url}/announce?info_hash={escaped}&peer_id=-XX0001-{:012}&port=6881&left=0&event=completed",
                        n % 1_000_000_000_000
                    )),
                    1 => http.post(format!("{url}/announce")).json(&serde_json::json!({
                        "info_hash": format!("{random}{:024x}", n),
                        "url": format!("http://10.{}.{}.{}:8080", n % 250, n / 250 % 250, worker),
                    })),
                    _ => http.request(
                        reqwest::Method::from_bytes(format!("X{n}").as_bytes()).unwrap(),
                        format!("{url}/torrents"),
                    ),
                };
                let _ = request.send().await;
                counts.hostile.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let (http, url, counts, stop) = (http.clone(), url.to_owned(), counts.clone(), stop.clone());
    tasks.push(tokio::spawn(async move {
        let mut body = b"l".to_vec();
        body.extend(b"le".repeat((5 << 20) - 1));
        body.push(b'e');
        let body = actix_web::web::Bytes::from(body);
        while !stop.load(Ordering::Relaxed) {
            let _ = http
                .post(format!("{url}/torrents"))
                .body(body.clone())
                .send()
                .await;
            counts.hostile.fetch_add(1, Ordering::Relaxed);
        }
    }));
    tasks
}

/// `judge_rss`: whether RSS growth fails the run (over a smoke run's 2 s, a 10 MiB body in
/// flight at either reading is noise, not a leak).
async fn soak(duration: Duration, hostile: bool, judge_rss: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let content: Vec<u8> = (0..FILE_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(data_dir.join("soak.bin"), &content).unwrap();
    let server = start_server(&data_dir, &dir.path().join("state"));
    let http = reqwest::Client::new();

    let torrent = loop {
        let list: serde_json::Value =
            match http.get(format!("{}/torrents", server.url)).send().await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
        if let Some(t) = list.as_array().and_then(|a| a.first()) {
            break t.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let v2 = torrent["info_hash_v2"].as_str().unwrap().to_owned();
    let pieces = torrent["piece_count"].as_u64().unwrap();
    let pid = server.child.id();

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Hostile runs warm up past the first expiry (10 s), so the tables have reached their
    // steady size when RSS is first read.
    let warm_up = match hostile {
        true => duration.min(Duration::from_secs(30)) / 2,
        false => duration.min(Duration::from_secs(5)) / 2,
    };
    let mut tasks = Vec::new();
    if hostile {
        tasks.extend(spawn_hostile(&server.url, &http, &counts, &stop));
    }
    for worker in 0..8u64 {
        let (http, url, v2, counts, stop) = (
            http.clone(),
            server.url.clone(),
            v2.clone(),
            counts.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut index = worker;
            while !stop.load(Ordering::Relaxed) {
                index = (index * 7 + 3) % pieces;
                match http.get(format!("{url}/chunks/{v2}/{index}")).send().await {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(b) => {
                            counts.chunks.fetch_add(1, Ordering::Relaxed);
                            counts.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                        }
                        Err(_) => drop(counts.errors.fetch_add(1, Ordering::Relaxed)),
                    },
                    _ => drop(counts.errors.fetch_add(1, Ordering::Relaxed)),
                }
            }
        }));
    }
    for worker in 0..4u32 {
        let (http, url, counts, stop) = (
            http.clone(),
            server.url.clone(),
            counts.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let hash = format!("{:064x}", n % 1000);
                let native = http
                    .post(format!("{url}/announce"))
                    .json(&serde_json::json!({"info_hash": hash, "url": format!("http://10.0.{worker}.{}:8080", n % 250)}))
                    .send()
                    .await;
                let peer = format!("{:020}", u64::from(worker) * 1_000_000 + u64::from(n % 5000));
                let bt = http
                    .get(format!("{url}/announce?info_hash={}&peer_id={peer}&port=6881&left=0", "%42".repeat(20)))
                    .send()
                    .await;
                match (native, bt) {
                    (Ok(a), Ok(b)) if a.status() == 200 && b.status() == 200 => {
                        counts.announces.fetch_add(2, Ordering::Relaxed);
                    }
                    _ => drop(counts.errors.fetch_add(1, Ordering::Relaxed)),
                }
            }
        }));
    }
    {
        let (url, v2, counts, stop) =
            (server.url.clone(), v2.clone(), counts.clone(), stop.clone());
        let out = dir.path().join("downloads");
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut options = gotorrent_http::download::Options::new(v2.as_str(), &out);
                options.tracker = Some(url::Url::parse(&url).unwrap());
                match gotorrent_http::download::download(
                    &options,
                    &gotorrent_http::download::Silent,
                )
                .await
                {
                    Ok(report) => {
                        let _ = std::fs::remove_file(report.path);
                        counts.downloads.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => drop(counts.errors.fetch_add(1, Ordering::Relaxed)),
                }
            }
        }));
    }

    tokio::time::sleep(warm_up).await;
    let (rss_before, fds_before) = footprint(pid);
    let started = Instant::now();
    let base_chunks = counts.chunks.load(Ordering::Relaxed);
    let base_bytes = counts.bytes.load(Ordering::Relaxed);
    // RSS every 10 s, so a level can be told from a climb.
    let mut samples = vec![rss_before];
    let measured = duration.saturating_sub(warm_up);
    while started.elapsed() + Duration::from_secs(10) < measured {
        tokio::time::sleep(Duration::from_secs(10)).await;
        samples.push(footprint(pid).0);
    }
    tokio::time::sleep(measured.saturating_sub(started.elapsed())).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (rss_after, fds_after) = footprint(pid);
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }

    let chunks = counts.chunks.load(Ordering::Relaxed) - base_chunks;
    let bytes = counts.bytes.load(Ordering::Relaxed) - base_bytes;
    let errors = counts.errors.load(Ordering::Relaxed);
    println!(
        "soak: {:.0} s measured after {:.1} s warm-up",
        elapsed,
        warm_up.as_secs_f64()
    );
    println!(
        "  chunks        {chunks} ({:.0}/s, {:.1} MB/s)",
        chunks as f64 / elapsed,
        bytes as f64 / elapsed / 1e6
    );
    println!(
        "  announces     {} (JSON and BEP 3, whole run)",
        counts.announces.load(Ordering::Relaxed)
    );
    println!(
        "  downloads     {} verified whole-file downloads of 32 MiB",
        counts.downloads.load(Ordering::Relaxed)
    );
    if hostile {
        println!(
            "  hostile       {} requests beside (random info-hashes, invented methods, 10 MiB bodies)",
            counts.hostile.load(Ordering::Relaxed)
        );
    }
    println!("  errors        {errors}");
    println!("  server RSS    {rss_before} KiB -> {rss_after} KiB (every 10 s: {samples:?} KiB)");
    println!("  server fds    {fds_before} -> {fds_after}");
    let rss_ok = !judge_rss || rss_after <= rss_before + rss_before / 2 + 16 * 1024;
    let fds_ok = fds_after <= fds_before + 16;
    if !(errors == 0 && rss_ok && fds_ok) {
        println!("soak FAILED: errors {errors}, RSS growth ok {rss_ok}, fd growth ok {fds_ok}");
        return false;
    }
    println!("soak passed");
    true
}
