//! Real servers the scale-out tests run against, each started on free loopback ports in its own
//! temp dir and killed on drop: Redis, Garage (an S3-compatible object store) and haproxy.
//! A missing program fails the test with the command that installs it; nothing is skipped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago (for servers that cannot bind port 0 and report it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answers_tcp(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (and waited for) when the test ends, however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// kill -9 of a child, if it is running, and waits for it.
pub fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A real redis-server (Debian's), on a free port with its own temp dir, append-only with an
/// fsync per write, so what it acknowledged survives a kill -9. Killed when dropped.
pub struct RedisServer {
    pub url: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port();
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}/0"),
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.restart();
        server
    }

    /// Starts it (again) on the same port and data.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is required (Debian package redis-server; .ci/test installs it)");
        self.child = Some(child);
        wait_until("redis-server", Duration::from_secs(20), || self.answers());
    }

    /// kill -9.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0u8; 7];
        socket.write_all(b"PING\r\n").is_ok()
            && socket.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A single-node Garage (replication factor 1) with one bucket, a read-write key and a
/// read-only key, both known in advance.
pub struct Garage {
    /// The S3 API, http://127.0.0.1:PORT.
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    /// A key that may read the bucket but not write to it.
    pub read_only_key_id: String,
    pub read_only_secret: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

pub const GARAGE_REGION: &str = "garage";

impl Garage {
    pub fn start() -> Garage {
        let dir = tempfile::Builder::new().prefix("garage").tempdir().unwrap();
        let (s3, rpc, admin) = (free_port(), free_port(), free_port());
        let config = format!(
            r#"metadata_dir = "{root}/meta"
data_dir = "{root}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{GARAGE_REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "test-admin-token-0123456789"
"#,
            root = dir.path().display(),
            secret = "1".repeat(64),
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new("garage")
            .arg("-c")
            .arg(dir.path().join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("garage is required (cargo install garage --locked; .ci/test installs it)");
        let garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "shared-files".into(),
            key_id: format!("GK{}", "a1".repeat(12)),
            secret: "b2".repeat(32),
            read_only_key_id: format!("GK{}", "c3".repeat(12)),
            read_only_secret: "d4".repeat(32),
            dir,
            child: Some(child),
        };
        wait_until("garage", Duration::from_secs(30), || {
            garage.cli_quiet(&["status"])
        });
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.split('@').next().unwrap().trim().to_owned();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        for (id, secret, name) in [
            (&garage.key_id, &garage.secret, "test-rw"),
            (
                &garage.read_only_key_id,
                &garage.read_only_secret,
                "test-ro",
            ),
        ] {
            garage.cli(&["key", "import", "--yes", "-n", name, id, secret]);
        }
        garage.cli(&["bucket", "create", &garage.bucket]);
        garage.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &garage.bucket,
            "--key",
            "test-rw",
        ]);
        garage.cli(&[
            "bucket",
            "allow",
            "--read",
            &garage.bucket,
            "--key",
            "test-ro",
        ]);
        wait_until("garage's S3 API", Duration::from_secs(30), || {
            answers_tcp(s3)
        });
        garage
    }

    fn command(&self) -> Command {
        let mut command = Command::new("garage");
        command
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .env("RUST_LOG", "warn");
        command
    }

    fn cli_quiet(&self, args: &[&str]) -> bool {
        self.command()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs the garage CLI against this node; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A client for the bucket with the read-write key, to put and delete test objects.
    pub fn client(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region(GARAGE_REGION)
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret)
            .build()
            .unwrap()
    }

    pub async fn put(&self, key: &str, bytes: &[u8]) {
        use object_store::ObjectStoreExt;
        let path = object_store::path::Path::parse(key).unwrap();
        self.client()
            .put(&path, bytes.to_vec().into())
            .await
            .unwrap_or_else(|e| panic!("putting {key}: {e}"));
    }

    pub async fn delete(&self, key: &str) {
        use object_store::ObjectStoreExt;
        let path = object_store::path::Path::parse(key).unwrap();
        self.client().delete(&path).await.unwrap();
    }

    /// Every key in the bucket under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        use futures_util::StreamExt;
        use object_store::ObjectStore;
        let prefix = object_store::path::Path::parse(prefix).unwrap();
        let client = self.client();
        let listed: Vec<_> = client.list(Some(&prefix)).collect().await;
        listed
            .into_iter()
            .map(|o| o.unwrap().location.to_string())
            .collect()
    }

    /// The environment of a gotorrent-http sharing `prefix` of the bucket, with the read-write
    /// key (or the read-only one).
    pub fn env(&self, prefix: &str, read_only: bool) -> Vec<(String, String)> {
        let (id, secret) = match read_only {
            false => (&self.key_id, &self.secret),
            true => (&self.read_only_key_id, &self.read_only_secret),
        };
        [
            ("GOTORRENT__STORAGE__BACKEND", "s3"),
            ("GOTORRENT__STORAGE__S3__BUCKET", self.bucket.as_str()),
            ("GOTORRENT__STORAGE__S3__PREFIX", prefix),
            ("GOTORRENT__STORAGE__S3__ENDPOINT", self.endpoint.as_str()),
            ("GOTORRENT__STORAGE__S3__REGION", GARAGE_REGION),
            ("AWS_ACCESS_KEY_ID", id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Garage {
    /// kill -9.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// haproxy balancing HTTP over `backends` (round robin, health-checked with GET /ready, a
/// failed connection retried on another server).
pub struct Haproxy {
    /// Holds its configuration and log.
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Haproxy {
    /// Listens on `port` (see [`free_port`]), so backends can be told the public URL first.
    pub fn start(port: u16, backends: &[u16]) -> Haproxy {
        let dir = tempfile::Builder::new()
            .prefix("haproxy")
            .tempdir()
            .unwrap();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, port)| format!("    server s{i} 127.0.0.1:{port} check\n"))
            .collect();
        let config = format!(
            "global
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch 1
    option forwardfor
    retry-on conn-failure empty-response response-timeout
frontend public
    bind 127.0.0.1:{port}
    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server inter 200ms fall 1 rise 1
{servers}"
        );
        std::fs::write(dir.path().join("haproxy.cfg"), config).unwrap();
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(dir.path().join("haproxy.cfg"))
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("haproxy.log")).unwrap())
            .spawn()
            .expect("haproxy is required (Debian package haproxy; .ci/test installs it)");
        wait_until("haproxy", Duration::from_secs(20), || answers_tcp(port));
        Haproxy {
            _dir: dir,
            child: Some(child),
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
