//! Real BitTorrent clients and other programs, run to completion with a time limit. A missing
//! program fails the test naming the package that provides it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn require(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!("{program} is missing: install the Debian package {package} (.ci/test does)")
    })
}

pub fn python_with_libtorrent() -> &'static str {
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let ok = Command::new(python)
        .args(["-c", "import libtorrent"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "python3-libtorrent is missing: install the Debian package python3-libtorrent (.ci/test does)");
    python
}

/// Runs `cmd` to completion within `limit`, returning its combined output; fails on a non-zero exit.
pub fn run(mut cmd: Command, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// aria2c downloads `torrent` into `out` (DHT, LPD and PEX off: only the torrent's trackers and
/// web seeds), within 90 s.
pub async fn aria2c_download(torrent: &Path, out: &Path) {
    let mut get = Command::new(require("aria2c", "aria2"));
    get.args([
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--seed-time=0",
        "--summary-interval=0",
        "--console-log-level=warn",
        "--file-allocation=none",
    ])
    .arg(format!("--dir={}", out.display()))
    .arg(torrent);
    actix_web::rt::task::spawn_blocking(move || run(get, Duration::from_secs(90)))
        .await
        .unwrap();
}

/// libtorrent (tests/it/support/lt_client.py) downloads `torrent` into `out` from its web seeds
/// alone, within 100 s; returns its log.
pub async fn libtorrent_webseed_download(torrent: &Path, out: &Path) -> String {
    std::fs::create_dir_all(out).unwrap();
    let mut cmd = Command::new(python_with_libtorrent());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/lt_client.py"))
        .arg("webseed")
        .arg(torrent)
        .arg(out);
    actix_web::rt::task::spawn_blocking(move || run(cmd, Duration::from_secs(100)))
        .await
        .unwrap()
}
