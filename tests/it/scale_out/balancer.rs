//! The whole scale-out deployment on loopback: Garage (the bucket), Redis, two tracker instances
//! and two S3-backed seeder instances (the real binary), haproxy in front of each pair. A
//! download through the balancers survives kill -9 of one seeder and one tracker in the middle,
//! nothing a tracker acknowledged is lost, and killed instances rejoin with empty state dirs.

use std::ffi::OsString;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gotorrent_http::metainfo::create;
use gotorrent_http::types::PieceLength;
use sha2::{Digest, Sha256};

use crate::support::{
    free_port, kill, metric, poll, scrape_at, scrape_stats, spawn_binary, Garage, Haproxy,
    RedisServer,
};

const OBJECT: &str = "e2e/big file ü.bin";
const SIZE: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug)]
enum Role {
    Tracker,
    Seeder,
}

/// One gotorrent-http process on a fixed port, so haproxy finds it again after a restart.
struct Instance {
    role: Role,
    port: u16,
    env: Vec<(String, String)>,
    extra_args: Vec<String>,
    child: Option<Child>,
    /// A fresh, empty state dir on every start: instances keep nothing locally.
    state: Option<tempfile::TempDir>,
}

impl Instance {
    fn new(role: Role, env: Vec<(String, String)>, extra_args: Vec<String>) -> Instance {
        Instance {
            role,
            port: free_port(),
            env,
            extra_args,
            child: None,
            state: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let state = tempfile::tempdir().unwrap();
        let role_flag = match self.role {
            Role::Tracker => "--no-seeder",
            Role::Seeder => "--no-tracker",
        };
        let mut args: Vec<OsString> = ["serve", role_flag, "--bind"]
            .iter()
            .map(OsString::from)
            .collect();
        args.push(format!("127.0.0.1:{}", self.port).into());
        args.push("--state-dir".into());
        args.push(state.path().into());
        args.extend(self.extra_args.iter().map(OsString::from));
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (child, _) = spawn_binary(&args, &env);
        self.child = Some(child);
        self.state = Some(state);
    }

    fn kill_9(&mut self) {
        assert!(
            self.child.is_some(),
            "killing an instance that is not running"
        );
        kill(&mut self.child);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A timeline of what happened when, printed for the record.
struct Timeline(Instant);

impl Timeline {
    fn mark(&self, what: &str) {
        println!("t={:>6.2}s {what}", self.0.elapsed().as_secs_f64());
    }
}

/// What the trackers acknowledged while instances were being killed.
#[derive(Default)]
struct Acknowledged {
    registrations: Vec<String>,
    completed: u64,
    refused: u64,
}

/// Registers small torrents and announces BitTorrent "completed" events through the tracker
/// balancer until told to stop, keeping what was acknowledged.
async fn keep_writing(
    tracker: String,
    completed_for: [u8; 20],
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acknowledged>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let meta = create::from_bytes(
            &format!("written {n}.bin"),
            format!("registration {n}").as_bytes(),
            PieceLength::new(16384).unwrap(),
            vec![],
            vec![],
        )
        .unwrap();
        let registered = client
            .post(format!("{tracker}/torrents"))
            .header("content-type", "application/x-bittorrent")
            .body(meta.bytes.to_vec())
            .send()
            .await;
        match registered {
            Ok(r) if r.status().is_success() => acked
                .lock()
                .unwrap()
                .registrations
                .push(meta.info_hash_v2.to_string()),
            _ => acked.lock().unwrap().refused += 1,
        }
        let announce = format!(
            "{tracker}/announce?info_hash={}&peer_id=-XX0001-{n:012}&port=6881&left=0&event=completed",
            percent_encoding::percent_encode(&completed_for, percent_encoding::NON_ALPHANUMERIC)
        );
        let answered = match client.get(announce).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.ok(),
            _ => None,
        };
        match answered {
            Some(body) if !body.windows(14).any(|w| w == b"failure reason") => {
                acked.lock().unwrap().completed += 1
            }
            _ => acked.lock().unwrap().refused += 1,
        }
    }
}

#[actix_web::test]
async fn a_download_through_haproxy_survives_kill_9_of_a_seeder_and_a_tracker() {
    // Arrange: the bucket with a 64 MiB object, Redis, and the two balancers' ports.
    let timeline = Timeline(Instant::now());
    let garage = Garage::start();
    let bytes: Vec<u8> = (0..SIZE).map(|i| (i * 7 + i / 4096) as u8).collect();
    garage.put(OBJECT, &bytes).await;
    let redis = RedisServer::start();
    let (tracker_port, seeder_port) = (free_port(), free_port());
    let tracker_lb = format!("http://127.0.0.1:{tracker_port}");
    let seeder_lb = format!("http://127.0.0.1:{seeder_port}");
    timeline.mark("garage (64 MiB object) and redis up");

    let common = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        [
            ("GOTORRENT__LOG__LEVEL", "warn"),
            ("GOTORRENT__TRACKER__RATE_LIMIT_PER_SECOND", "0"),
            // haproxy adds X-Forwarded-For (option forwardfor).
            ("GOTORRENT__SERVER__TRUSTED_PROXY_HOPS", "1"),
        ]
        .iter()
        .chain(pairs)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let mut trackers: Vec<Instance> = (0..2)
        .map(|_| {
            Instance::new(
                Role::Tracker,
                common(&[
                    ("GOTORRENT__TRACKER__REDIS_URL", redis.url.as_str()),
                    ("GOTORRENT__TRACKER__ANNOUNCE_INTERVAL_SECS", "2"),
                ]),
                vec![],
            )
        })
        .collect();
    let mut seeder_env = common(&[("GOTORRENT__STORAGE__RESCAN_INTERVAL_SECS", "1")]);
    seeder_env.extend(garage.env("e2e", false));
    let mut seeders: Vec<Instance> = (0..2)
        .map(|_| {
            Instance::new(
                Role::Seeder,
                seeder_env.clone(),
                vec![
                    "--public-url".into(),
                    seeder_lb.clone(),
                    "--tracker".into(),
                    tracker_lb.clone(),
                ],
            )
        })
        .collect();
    let _tracker_haproxy = Haproxy::start(tracker_port, &[trackers[0].port, trackers[1].port]);
    let _seeder_haproxy = Haproxy::start(seeder_port, &[seeders[0].port, seeders[1].port]);
    trackers.iter_mut().for_each(Instance::start);
    timeline.mark("two trackers up");
    seeders[0].start();
    // The first seeder hashes the object and writes the sidecar; the second reads it.
    let client = reqwest::Client::new();
    let sidecar_dir = "e2e/.gotorrent-http/torrents";
    poll("the first seeder's sidecar torrent", || async {
        !garage.keys(sidecar_dir).await.is_empty()
    })
    .await;
    seeders[1].start();
    timeline.mark("two seeders up (the second from the sidecar)");
    assert_eq!(
        metric(&seeders[1].url(), "gotorrent_hashed_bytes_total").await,
        0.0
    );

    let expected = gotorrent_http::metainfo::create::from_bytes(
        "big file ü.bin",
        &bytes,
        PieceLength::new(1 << 20).unwrap(),
        vec![],
        vec![],
    )
    .unwrap();
    let v2 = expected.info_hash_v2.to_string();
    let v1 = expected.info_hash_v1.0;
    poll("the seeders' URL listed by the trackers", || async {
        let peers = client
            .get(format!("{tracker_lb}/peers?info_hash={v2}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        peers.contains(&seeder_lb)
    })
    .await;
    timeline.mark("torrent registered and the seeder balancer listed");

    // Act: download through the balancers at 16 MiB/s (about 4 s) while writes go on.
    let out = tempfile::tempdir().unwrap();
    let mut download = std::process::Command::new(env!("CARGO_BIN_EXE_gotorrent-http"))
        .args([
            "download",
            &v2,
            "--quiet",
            "--max-rate",
            "16777216",
            "--tracker",
        ])
        .arg(&tracker_lb)
        .arg("-o")
        .arg(out.path())
        .spawn()
        .unwrap();
    timeline.mark("download started");
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let writer = actix_web::rt::spawn(keep_writing(
        tracker_lb.clone(),
        v1,
        stop.clone(),
        acked.clone(),
    ));

    let served = || async {
        metric(&seeders[0].url(), "gotorrent_bytes_served_total").await
            + metric(&seeders[1].url(), "gotorrent_bytes_served_total").await
    };
    poll("a quarter of the download served", || async {
        served().await >= (SIZE / 4) as f64
    })
    .await;
    seeders[0].kill_9();
    timeline.mark("kill -9 seeder 0 (a quarter served)");
    poll("half of the download served", || async {
        metric(&seeders[1].url(), "gotorrent_bytes_served_total").await >= (SIZE / 4) as f64
    })
    .await;
    trackers[0].kill_9();
    timeline.mark("kill -9 tracker 0 (half served)");

    let status = actix_web::rt::task::spawn_blocking(move || download.wait())
        .await
        .unwrap()
        .unwrap();
    timeline.mark("download finished");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    // Assert: the file is byte-identical.
    assert!(status.success(), "download failed: {status}");
    let got = std::fs::read(out.path().join("big file ü.bin")).unwrap();
    assert_eq!(got.len(), SIZE);
    assert!(
        Sha256::digest(&got) == Sha256::digest(&bytes),
        "downloaded bytes differ"
    );

    // Every acknowledged registration and completed event is still there, through the
    // balancer, then on the killed tracker restarted with an empty state dir.
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    println!(
        "acknowledged: {} registrations, {} completed announces; {} writes refused or cut",
        acked.registrations.len(),
        acked.completed,
        acked.refused
    );
    assert!(
        acked.registrations.len() > 10 && acked.completed > 10,
        "the writer made progress"
    );
    trackers[0].start();
    timeline.mark("tracker 0 restarted with an empty state dir");
    for tracker in [tracker_lb.as_str(), &trackers[0].url()] {
        for hash in &acked.registrations {
            let status = client
                .get(format!("{tracker}/torrents/{hash}"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "registration {hash} lost at {tracker}");
        }
        let (_, _, downloaded) = scrape_stats(&scrape_at(tracker, &[v1]).await, &v1);
        assert!(
            downloaded as u64 >= acked.completed,
            "{tracker}: {downloaded} completed counted, {} acknowledged",
            acked.completed
        );
    }

    // The killed seeder rejoins with an empty state dir and serves without hashing.
    seeders[0].start();
    timeline.mark("seeder 0 restarted with an empty state dir");
    let seeder = seeders[0].url();
    poll("the restarted seeder serving", || async {
        client
            .get(format!("{seeder}/chunks/{v2}/63"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    let last = client
        .get(format!("{seeder}/chunks/{v2}/63"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&last[..], &bytes[63 << 20..]);
    assert_eq!(metric(&seeder, "gotorrent_hashed_bytes_total").await, 0.0);
    timeline.mark("checked");
}
