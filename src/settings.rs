//! Typed configuration, loaded in layers and validated once at start-up.
//!
//! Order (later wins): config/default.toml compiled into the binary, an optional `--config` file,
//! `GOTORRENT__SECTION__KEY` environment variables, the PaaS variables `PORT` and
//! `RAILWAY_PUBLIC_DOMAIN`, then command-line flags.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::storage::S3Config;
use crate::types::PieceLength;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// The only place S3 credentials are read from.
const AWS_VARIABLES: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub seeder: SeederSettings,
    pub tracker: TrackerSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerSettings {
    pub bind: String,
    pub public_url: Option<String>,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub trusted_proxy_hops: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StorageSettings {
    pub backend: StorageBackend,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub rescan_interval_secs: u64,
    pub s3: S3Settings,
}

/// Where shared files are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// `storage.data_dir` on this machine.
    Local,
    /// A bucket on an S3-compatible object store (`storage.s3.*`).
    S3,
}

/// The `storage.s3` section. Credentials are never read from here, only from the standard
/// `AWS_*` environment variables.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct S3Settings {
    pub bucket: Option<String>,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub redirect_files: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SeederSettings {
    pub enabled: bool,
    pub piece_length: u64,
    pub max_streams: usize,
    pub max_streams_per_client: usize,
    pub uploads: bool,
    pub max_upload_bytes: u64,
    pub tracker: Option<String>,
    pub tracker_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TrackerSettings {
    pub enabled: bool,
    pub announce_interval_secs: u64,
    pub max_peers: usize,
    pub accept_ip_param: bool,
    pub write_token: Option<String>,
    pub read_token: Option<String>,
    pub allowlist: bool,
    pub private_seeders: PrivateSeeders,
    pub verify_seeders: bool,
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub max_torrents: usize,
    pub max_swarms: usize,
    pub max_peers_per_swarm: usize,
    pub max_seeders: usize,
    pub max_bittorrent_peers: usize,
    pub redis_url: Option<String>,
}

/// Which seeder URLs on loopback or private addresses the tracker lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivateSeeders {
    /// A private address only from a client on a private or loopback network, a loopback one
    /// only from the same machine.
    SameNetwork,
    /// Every address (a tracker for one LAN or laptop).
    Always,
    /// Public addresses only.
    Never,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

/// Values from command-line flags, applied last.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub tracker: Option<String>,
    pub no_tracker: bool,
    pub no_seeder: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("unknown configuration key {key} ({origin}){}", suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default())]
    UnknownKey {
        key: String,
        /// Where it was set: the environment variable's name, or the config file.
        origin: String,
        suggestion: Option<String>,
    },
    #[error("configuration key {key}: {message} (got {value:?})")]
    Invalid {
        key: &'static str,
        value: String,
        message: String,
    },
}

/// Settings after validation: parsed addresses and URLs, derived defaults filled in.
#[derive(Debug, Clone)]
pub struct Validated {
    pub raw: Settings,
    pub bind: SocketAddr,
    /// `None` until the listener is bound, when it may be derived from the real port.
    pub public_url: Option<Url>,
    /// Base URL of the external tracker; `None` means this server is its own tracker.
    pub tracker: Option<Url>,
    pub piece_length: PieceLength,
    pub announce_interval: Duration,
    pub rescan_interval: Duration,
    /// With `storage.backend = "s3"`: the bucket and the credentials to read it.
    pub s3: Option<S3Config>,
}

impl Settings {
    /// Loads every layer from the process environment.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Validated, SettingsError> {
        Self::load_with_env(file, overrides, std::env::vars().collect())
    }

    /// Loads with an explicit environment, so tests need not touch the process environment.
    pub fn load_with_env(
        file: Option<&Path>,
        overrides: &Overrides,
        env: HashMap<String, String>,
    ) -> Result<Validated, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        let env_names: Vec<String> = env
            .keys()
            .filter(|k| k.starts_with("GOTORRENT__"))
            .cloned()
            .collect();
        let (port, railway_domain) = (var("PORT"), var("RAILWAY_PUBLIC_DOMAIN"));
        let aws: HashMap<&str, String> = AWS_VARIABLES
            .into_iter()
            .filter_map(|name| Some((name, var(name)?)))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("GOTORRENT")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        if let Some(port) = port {
            builder = builder.set_override("server.bind", format!("0.0.0.0:{port}"))?;
        }
        if let Some(domain) = railway_domain {
            builder = builder.set_default("server.public_url", format!("https://{domain}"))?;
        }
        let flags = [
            ("server.bind", overrides.bind.clone()),
            ("server.public_url", overrides.public_url.clone()),
            ("seeder.tracker", overrides.tracker.clone()),
            (
                "storage.data_dir",
                overrides.data_dir.as_deref().map(path_string),
            ),
            (
                "storage.state_dir",
                overrides.state_dir.as_deref().map(path_string),
            ),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                builder = builder.set_override(key, value)?;
            }
        }
        if overrides.no_tracker {
            builder = builder.set_override("tracker.enabled", false)?;
        }
        if overrides.no_seeder {
            builder = builder.set_override("seeder.enabled", false)?;
        }
        let config = builder.build()?;
        let mut unknown = Vec::new();
        let settings: Settings =
            serde_ignored::deserialize(config, |path| unknown.push(path.to_string()))?;
        if let Some(key) = unknown.into_iter().next() {
            return Err(unknown_key(key, &env_names));
        }
        let s3 = settings.s3_config(&aws)?;
        settings.validate(s3)
    }

    /// The S3 bucket to share from, when `storage.backend = "s3"`, with the credentials from
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    fn s3_config(&self, aws: &HashMap<&str, String>) -> Result<Option<S3Config>, SettingsError> {
        let var = |name: &str| aws.get(name).cloned();
        if self.storage.backend != StorageBackend::S3 {
            return Ok(None);
        }
        let s3 = &self.storage.s3;
        let invalid = |key: &'static str, value: &str, message: &str| SettingsError::Invalid {
            key,
            value: value.to_owned(),
            message: message.to_owned(),
        };
        let bucket = s3.bucket.clone().filter(|b| !b.is_empty()).ok_or_else(|| {
            invalid(
                "storage.s3.bucket",
                "",
                "storage.backend = \"s3\" needs a bucket (GOTORRENT__STORAGE__S3__BUCKET)",
            )
        })?;
        if bucket.contains('/') {
            return Err(invalid(
                "storage.s3.bucket",
                &bucket,
                "a bucket name has no '/'; put the path in storage.s3.prefix",
            ));
        }
        let prefix = s3.prefix.trim_matches('/').to_owned();
        if prefix
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
            && !prefix.is_empty()
        {
            return Err(invalid(
                "storage.s3.prefix",
                &s3.prefix,
                "expected folder names separated by single '/', without '.' or '..'",
            ));
        }
        let endpoint = s3
            .endpoint
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| parse_http_url("storage.s3.endpoint", e))
            .transpose()?;
        if s3.region.is_empty() {
            return Err(invalid("storage.s3.region", "", "must not be empty"));
        }
        let (Some(access_key_id), Some(secret_access_key)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(invalid(
                "storage.backend",
                "s3",
                "reading a bucket needs the environment variables AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)",
            ));
        };
        Ok(Some(S3Config {
            bucket,
            prefix,
            endpoint,
            region: s3.region.clone(),
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
            redirect_files: s3.redirect_files,
        }))
    }

    fn validate(self, s3: Option<S3Config>) -> Result<Validated, SettingsError> {
        let bind = self
            .server
            .bind
            .parse()
            .map_err(|_| SettingsError::Invalid {
                key: "server.bind",
                value: self.server.bind.clone(),
                message: "expected HOST:PORT with a numeric IP address, e.g. 127.0.0.1:8080".into(),
            })?;
        let public_url = self
            .server
            .public_url
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_http_url("server.public_url", s))
            .transpose()?;
        let tracker = self
            .seeder
            .tracker
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_http_url("seeder.tracker", s).map(tracker_base))
            .transpose()?;
        let piece_length =
            PieceLength::new(self.seeder.piece_length).map_err(|e| SettingsError::Invalid {
                key: "seeder.piece_length",
                value: self.seeder.piece_length.to_string(),
                message: e.to_string(),
            })?;
        let positive = |key: &'static str, n: u64| {
            if n == 0 {
                Err(SettingsError::Invalid {
                    key,
                    value: n.to_string(),
                    message: "must be at least 1".into(),
                })
            } else {
                Ok(Duration::from_secs(n))
            }
        };
        let announce_interval = positive(
            "tracker.announce_interval_secs",
            self.tracker.announce_interval_secs,
        )?;
        if let Some(url) = self.tracker.redis_url.as_deref().filter(|u| !u.is_empty()) {
            let parsed = Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "redis" | "rediss"));
            if parsed.is_none() {
                return Err(SettingsError::Invalid {
                    key: "tracker.redis_url",
                    value: url.to_owned(),
                    message: "expected redis://HOST[:PORT][/DB] (or rediss:// for TLS)".into(),
                });
            }
        }
        let rescan_interval = positive(
            "storage.rescan_interval_secs",
            self.storage.rescan_interval_secs,
        )?;
        for (key, token) in [
            ("tracker.write_token", &self.tracker.write_token),
            ("tracker.read_token", &self.tracker.read_token),
            ("seeder.tracker_token", &self.seeder.tracker_token),
        ] {
            if token.as_deref().is_some_and(|t| t.len() < 16) {
                return Err(SettingsError::Invalid {
                    key,
                    value: "(hidden)".into(),
                    message: "a token must be at least 16 characters".into(),
                });
            }
        }
        for (key, value) in [
            ("tracker.max_peers", self.tracker.max_peers),
            ("seeder.max_streams", self.seeder.max_streams),
            (
                "seeder.max_streams_per_client",
                self.seeder.max_streams_per_client,
            ),
            ("tracker.max_torrents", self.tracker.max_torrents),
            (
                "seeder.max_upload_bytes",
                usize::try_from(self.seeder.max_upload_bytes).unwrap_or(usize::MAX),
            ),
            ("tracker.max_swarms", self.tracker.max_swarms),
            (
                "tracker.max_peers_per_swarm",
                self.tracker.max_peers_per_swarm,
            ),
            ("tracker.max_seeders", self.tracker.max_seeders),
            (
                "tracker.max_bittorrent_peers",
                self.tracker.max_bittorrent_peers,
            ),
            (
                "tracker.rate_limit_burst",
                self.tracker.rate_limit_burst as usize,
            ),
        ] {
            if value == 0 {
                return Err(SettingsError::Invalid {
                    key,
                    value: "0".into(),
                    message: "must be at least 1".into(),
                });
            }
        }
        Ok(Validated {
            raw: self,
            bind,
            public_url,
            tracker,
            piece_length,
            announce_interval,
            rescan_interval,
            s3,
        })
    }
}

/// Every key the settings have, dotted (`storage.data_dir`), optional ones included.
fn known_keys() -> Vec<String> {
    let defaults: Settings = Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .build()
        .and_then(Config::try_deserialize)
        .expect("the compiled-in defaults deserialise");
    let tree = serde_json::to_value(defaults).expect("settings serialise");
    let mut keys = Vec::new();
    leaf_keys("", &tree, &mut keys);
    keys
}

/// The dotted paths of every non-table value under `value`.
fn leaf_keys(path: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value.as_object() {
        Some(table) => {
            for (name, value) in table {
                let path = match path {
                    "" => name.clone(),
                    _ => format!("{path}.{name}"),
                };
                leaf_keys(&path, value, out);
            }
        }
        None => out.push(path.to_owned()),
    }
}

/// The error for a key no setting has, naming where it came from and the closest real key.
fn unknown_key(key: String, env_names: &[String]) -> SettingsError {
    let variable = format!("GOTORRENT__{}", key.replace('.', "__")).to_ascii_uppercase();
    let origin = env_names
        .iter()
        .find(|name| name.to_ascii_uppercase().starts_with(&variable))
        .map_or_else(
            || "in the config file".to_owned(),
            |name| format!("from {name}"),
        );
    let suggestion = known_keys()
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(&k, &key), k))
        .filter(|(distance, k)| *distance <= 3.max(k.len() / 3))
        .min()
        .map(|(_, k)| k);
    SettingsError::UnknownKey {
        key,
        origin,
        suggestion,
    }
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn parse_http_url(key: &'static str, value: &str) -> Result<Url, SettingsError> {
    let invalid = |message: &str| SettingsError::Invalid {
        key,
        value: value.to_owned(),
        message: message.to_owned(),
    };
    let url = Url::parse(value).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("expected an http:// or https:// URL with a host"));
    }
    Ok(url)
}

/// Accepts a tracker's base URL or its /announce URL and returns the base.
pub fn tracker_base(mut url: Url) -> Url {
    let path = url.path().trim_end_matches('/');
    let base = path.strip_suffix("/announce").unwrap_or(path).to_owned();
    url.set_path(&base);
    url.set_query(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)], overrides: Overrides) -> Result<Validated, SettingsError> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with_env(None, &overrides, env)
    }

    #[test]
    fn compiled_in_defaults_are_valid() {
        let s = load(&[], Overrides::default()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.piece_length.get(), 1 << 20);
        assert!(s.public_url.is_none() && s.tracker.is_none());
        assert!(s.raw.seeder.enabled && s.raw.tracker.enabled);
    }

    #[test]
    fn paas_variables_set_bind_and_public_url() {
        let s = load(
            &[
                ("PORT", "9999"),
                ("RAILWAY_PUBLIC_DOMAIN", "x.up.railway.app"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.bind.to_string(), "0.0.0.0:9999");
        assert_eq!(s.public_url.unwrap().as_str(), "https://x.up.railway.app/");
    }

    #[test]
    fn gotorrent_variables_override_the_defaults() {
        let s = load(
            &[
                ("GOTORRENT__SERVER__BIND", "127.0.0.1:9000"),
                ("GOTORRENT__TRACKER__ANNOUNCE_INTERVAL_SECS", "5"),
                ("GOTORRENT__SEEDER__ENABLED", "false"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.announce_interval, Duration::from_secs(5));
        assert!(!s.raw.seeder.enabled);
        let err = load(
            &[("GOTORRENT__SEEDER__PIECE_LENGTH", "1000")],
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("seeder.piece_length") && err.contains("1000"),
            "{err}"
        );
    }

    #[test]
    fn flags_win_over_the_environment() {
        let overrides = Overrides {
            bind: Some("127.0.0.1:0".into()),
            public_url: Some("http://example.com".into()),
            no_tracker: true,
            ..Overrides::default()
        };
        let s = load(
            &[("PORT", "9999"), ("RAILWAY_PUBLIC_DOMAIN", "x")],
            overrides,
        )
        .unwrap();
        assert_eq!(s.bind.port(), 0);
        assert_eq!(s.public_url.unwrap().host_str(), Some("example.com"));
        assert!(!s.raw.tracker.enabled);
    }

    #[test]
    fn errors_name_the_key_and_value() {
        let overrides = Overrides {
            bind: Some("nonsense".into()),
            ..Overrides::default()
        };
        let err = load(&[], overrides).unwrap_err().to_string();
        assert!(
            err.contains("server.bind") && err.contains("nonsense"),
            "{err}"
        );

        let overrides = Overrides {
            tracker: Some("ftp://x".into()),
            ..Overrides::default()
        };
        let err = load(&[], overrides).unwrap_err().to_string();
        assert!(err.contains("seeder.tracker"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key_and_the_nearest_one() {
        let err = load(
            &[("GOTORRENT__STORAGE__BACKND", "s3")],
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("storage.backnd") && err.contains("GOTORRENT__STORAGE__BACKND"),
            "{err}"
        );
        let err = load(
            &[("GOTORRENT__TRACKER__ALLOW_PRIVATE_SEEDERS", "true")],
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("did you mean tracker.private_seeders"),
            "{err}"
        );
        let err = load(&[("GOTORRENT__NEWSECTION__KEY", "1")], Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("newsection"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("typo.toml");
        std::fs::write(&file, "[seeder]\nmax_stream = 3\n").unwrap();
        let err = Settings::load_with_env(Some(&file), &Overrides::default(), HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("seeder.max_stream ") && err.contains("in the config file"),
            "{err}"
        );
        assert!(err.contains("did you mean seeder.max_streams?"), "{err}");
    }

    #[test]
    fn every_key_is_documented_in_the_compiled_in_defaults() {
        for key in known_keys() {
            let (_, name) = key.rsplit_once('.').unwrap();
            assert!(
                DEFAULTS.contains(&format!("\n{name} = "))
                    || DEFAULTS.contains(&format!("\n# {name} = ")),
                "{key} is not in config/default.toml"
            );
        }
    }

    #[test]
    fn the_readme_configuration_table_lists_exactly_the_keys() {
        let readme = include_str!("../README.md");
        let documented: std::collections::BTreeSet<String> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(key, _)| key.to_owned()))
            .filter(|key| key.contains('.') && !key.contains(' '))
            .collect();
        let known: std::collections::BTreeSet<String> = known_keys().into_iter().collect();
        assert_eq!(
            documented, known,
            "README.md's Configuration table vs the settings"
        );
    }

    #[test]
    fn the_s3_backend_takes_its_bucket_from_settings_and_credentials_from_aws_variables() {
        let s = load(
            &[
                ("GOTORRENT__STORAGE__BACKEND", "s3"),
                ("GOTORRENT__STORAGE__S3__BUCKET", "files"),
                ("GOTORRENT__STORAGE__S3__PREFIX", "/shared/"),
                ("GOTORRENT__STORAGE__S3__ENDPOINT", "http://127.0.0.1:3900"),
                ("AWS_ACCESS_KEY_ID", "GK0123"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
            ],
            Overrides::default(),
        )
        .unwrap();
        let s3 = s.s3.unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str(), s3.region.as_str()),
            ("files", "shared", "us-east-1")
        );
        assert_eq!(s3.endpoint.unwrap().as_str(), "http://127.0.0.1:3900/");
        assert_eq!(
            (s3.access_key_id.as_str(), s3.session_token),
            ("GK0123", None)
        );
        assert!(load(&[], Overrides::default()).unwrap().s3.is_none());
    }

    #[test]
    fn s3_errors_name_the_key_or_the_missing_variable() {
        let s3 = [("GOTORRENT__STORAGE__BACKEND", "s3")];
        let err = load(&s3, Overrides::default()).unwrap_err().to_string();
        assert!(
            err.contains("storage.s3.bucket") && err.contains("GOTORRENT__STORAGE__S3__BUCKET"),
            "{err}"
        );

        let bucket = [s3[0], ("GOTORRENT__STORAGE__S3__BUCKET", "files")];
        let err = load(&bucket, Overrides::default()).unwrap_err().to_string();
        assert!(
            err.contains("AWS_ACCESS_KEY_ID") && err.contains("AWS_SECRET_ACCESS_KEY"),
            "{err}"
        );

        let bad = [
            bucket[0],
            bucket[1],
            ("GOTORRENT__STORAGE__S3__ENDPOINT", "garage:3900"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
        ];
        let err = load(&bad, Overrides::default()).unwrap_err().to_string();
        assert!(
            err.contains("storage.s3.endpoint") && err.contains("garage:3900"),
            "{err}"
        );

        let err = load(
            &[("GOTORRENT__STORAGE__BACKEND", "ftp")],
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ftp") && err.contains("backend"), "{err}");
    }

    #[test]
    fn tracker_announce_url_becomes_its_base() {
        let url = Url::parse("http://t.example:8080/x/announce?a=1").unwrap();
        assert_eq!(tracker_base(url).as_str(), "http://t.example:8080/x");
    }
}
