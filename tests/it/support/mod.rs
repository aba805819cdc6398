//! Test harness: the real application on port 0 with temporary data and state dirs, and one
//! helper per endpoint, so tests read like the README.

pub mod clients;
pub mod fake_seeder;
mod servers;

pub use servers::{free_port, kill, Garage, Haproxy, RedisServer, Running};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gotorrent_http::app::Application;
use gotorrent_http::settings::{Overrides, Settings};
use gotorrent_http::storage::StorageConfig;
use serde_json::Value;

pub struct TestApp {
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    pub handle: gotorrent_http::server::workers::Handle,
    _dirs: Option<tempfile::TempDir>,
}

/// Settings for a test server: loopback, port 0, one worker, the given dirs, no rate limit,
/// then `tweak`'s flags and keys, all validated as a user's would be.
pub fn test_settings(
    data_dir: &Path,
    state_dir: &Path,
    tweak: impl FnOnce(&mut Overrides),
) -> Settings {
    test_settings_with_env(data_dir, state_dir, tweak, Default::default())
}

/// [`test_settings`] with these environment variables.
pub fn test_settings_with_env(
    data_dir: &Path,
    state_dir: &Path,
    tweak: impl FnOnce(&mut Overrides),
    env: std::collections::HashMap<String, String>,
) -> Settings {
    let mut overrides = Overrides {
        bind: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir.to_owned()),
        state_dir: Some(state_dir.to_owned()),
        ..Overrides::default()
    };
    overrides.set("server.workers", 1);
    // Tests poll quickly: the rate limit's own tests switch it back on.
    overrides.set("tracker.rate_limit_per_second", 0);
    tweak(&mut overrides);
    Settings::load_with_env(None, &overrides, env).unwrap()
}

impl TestApp {
    /// A server with both roles over fresh temp dirs.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[], |_| {}).await
    }

    /// A server whose data dir holds `files` (name, bytes) from the start, with `tweak`'s flags
    /// and keys.
    pub async fn spawn_with(
        files: &[(&str, &[u8])],
        tweak: impl FnOnce(&mut Overrides),
    ) -> TestApp {
        let dirs = tempfile::Builder::new()
            .prefix("gotorrent test ü ")
            .tempdir()
            .unwrap();
        let data_dir = dirs.path().join("data dir");
        let state_dir = dirs.path().join("state");
        std::fs::create_dir_all(&data_dir).unwrap();
        for (name, bytes) in files {
            let path = data_dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let settings = test_settings(&data_dir, &state_dir, tweak);
        let mut app = Self::start(settings, vec![]).await;
        app._dirs = Some(dirs);
        app
    }

    /// A server with both roles sharing `prefix` of Garage's bucket (with its read-only key if
    /// `read_only`), over a fresh state dir.
    pub async fn spawn_s3(
        garage: &Garage,
        prefix: &str,
        read_only: bool,
        tweak: impl FnOnce(&mut Overrides),
    ) -> TestApp {
        let dirs = tempfile::Builder::new()
            .prefix("gotorrent s3 test ")
            .tempdir()
            .unwrap();
        let env = garage.env(prefix, read_only).into_iter().collect();
        let settings = test_settings_with_env(
            &dirs.path().join("unused data dir"),
            &dirs.path().join("state"),
            tweak,
            env,
        );
        let mut app = Self::start(settings, vec![]).await;
        app._dirs = Some(dirs);
        app
    }

    /// Starts an app from explicit settings (the caller owns the dirs).
    pub async fn start(settings: Settings, seed_files: Vec<PathBuf>) -> TestApp {
        let data_dir = match &settings.storage.backend {
            StorageConfig::Local { data_dir } => data_dir.clone(),
            StorageConfig::ObjectStore(_) => PathBuf::new(),
        };
        let app = Application::build(settings, seed_files.into())
            .await
            .unwrap();
        let port = app.port();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        let test_app = TestApp {
            url: format!("http://127.0.0.1:{port}"),
            port,
            data_dir,
            client: reqwest::Client::new(),
            handle,
            _dirs: None,
        };
        test_app.wait_until_healthy().await;
        test_app
    }

    async fn wait_until_healthy(&self) {
        poll("server health", || async {
            self.health().await.status().is_success()
        })
        .await;
    }

    pub fn write_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.data_dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Waits until a shared file of this name is listed, and returns its summary.
    pub async fn wait_for_torrent(&self, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listed = self.list_torrents().await;
            if let Some(found) = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
            {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for torrent {name:?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET {path}` on this server (a path with its query, as it goes on the wire).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn health(&self) -> reqwest::Response {
        self.get("/health").await
    }

    pub async fn ready(&self) -> reqwest::Response {
        self.get("/ready").await
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    pub async fn list_torrents(&self) -> Value {
        self.get("/torrents").await.json().await.unwrap()
    }

    /// `GET /torrents` with a query (`limit=2&after=...`), the response as it came.
    pub async fn list_torrents_page(&self, query: &str) -> reqwest::Response {
        self.get(&format!("/torrents?{query}")).await
    }

    pub async fn get_torrent(&self, info_hash: &str) -> reqwest::Response {
        self.get(&format!("/torrents/{info_hash}")).await
    }

    pub async fn get_manifest(&self, info_hash: &str) -> reqwest::Response {
        self.get(&format!("/torrents/{info_hash}/manifest")).await
    }

    pub async fn register_torrent(&self, bytes: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}/torrents", self.url))
            .header("content-type", "application/x-bittorrent")
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// `GET /chunks/{file}/{index}`; `file` is put in the URL as given (encode it yourself).
    pub async fn get_chunk(
        &self,
        file: &str,
        index: &str,
        range: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .get(format!("{}/chunks/{file}/{index}", self.url));
        if let Some(range) = range {
            req = req.header("range", range);
        }
        req.send().await.unwrap()
    }

    /// `GET /files/{name}` with extra headers; `name` is put in the URL as given.
    pub async fn get_file(&self, name: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.get(format!("{}/files/{name}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// `HEAD /files/{name}`; `name` is put in the URL as given.
    pub async fn head_file(&self, name: &str) -> reqwest::Response {
        self.client
            .head(format!("{}/files/{name}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn announce(&self, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/announce", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn peers(&self, info_hash: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/peers", self.url))
            .query(&[("info_hash", info_hash)])
            .send()
            .await
            .unwrap()
    }

    /// The URLs `GET /peers` lists for a torrent.
    pub async fn peer_urls(&self, info_hash: &str) -> Vec<String> {
        let peers: Value = self.peers(info_hash).await.json().await.unwrap();
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["url"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The live seeders' URLs once there are `count`: a seeder announces a moment after its
    /// torrent is listed, so a test that needs it listed waits here.
    pub async fn wait_for_seeders(&self, info_hash: &str, count: usize) -> Vec<String> {
        poll(&format!("{count} live seeders of {info_hash}"), || async {
            self.peer_urls(info_hash).await.len() == count
        })
        .await;
        self.peer_urls(info_hash).await
    }

    /// The body of `GET {url}` (a full URL), whatever the status.
    pub async fn get_bytes(&self, url: &str) -> actix_web::web::Bytes {
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    /// `GET /scrape` for these raw info-hashes (none: everything), decoded.
    pub async fn scrape(&self, hashes: &[[u8; 20]]) -> gotorrent_http::bencode::Value {
        scrape_at(&self.url, hashes).await
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// The real binary, started with `args` and `env`, once it says which port it listens on.
/// Returns the child (kill it when done) and its base URL; its stderr keeps being drained so it
/// never blocks on a full pipe.
pub fn spawn_binary(
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gotorrent-http"))
        .args(args)
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on port") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "gotorrent-http exited before listening"
        );
    }
    let port = line
        .split("port ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, format!("http://127.0.0.1:{port}"))
}

/// One HTTP/1.1 request with the request target exactly as given (no client normalises it),
/// on a fresh connection. Returns the status and the body.
pub async fn raw_request(
    url: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    // Head and body in one write: a body arriving after the server answered (a refusal never
    // reads it) and closed would draw a reset that can destroy the unread response.
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut body = response[head_end + 4..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
}

/// Polls `check` until it holds, failing after 20 s. Readiness is polled, never slept for.
pub async fn poll<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deterministic, non-repeating test content.
pub fn content(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Asserts an error response: the status, and a JSON `{error, message}` body.
pub async fn assert_json_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
    body
}

/// (complete, incomplete, downloaded) of one torrent in a decoded scrape response.
/// `GET {base_url}/scrape` for `hashes`, decoded, whatever the status (any server, not only a
/// [`TestApp`]).
pub async fn scrape_at(base_url: &str, hashes: &[[u8; 20]]) -> gotorrent_http::bencode::Value {
    let query: Vec<String> = hashes
        .iter()
        .map(|h| {
            format!(
                "info_hash={}",
                percent_encoding::percent_encode(h, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect();
    let url = format!("{base_url}/scrape?{}", query.join("&"));
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    gotorrent_http::bencode::decode(&body).unwrap().value
}

/// The value of an unlabelled metric in `GET {base_url}/metrics`.
pub async fn metric(base_url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} at {base_url}:\n{text}"))
}

pub fn scrape_stats(scrape: &gotorrent_http::bencode::Value, hash: &[u8; 20]) -> (i64, i64, i64) {
    let file = scrape
        .get("files")
        .unwrap()
        .as_dict()
        .unwrap()
        .get(&hash[..])
        .expect("hash in scrape");
    let n = |k| file.get(k).unwrap().as_int().unwrap();
    (n("complete"), n("incomplete"), n("downloaded"))
}

pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
