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
    pub nat: NatSettings,
    pub ddns: DdnsSettings,
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

/// Largest `storage.s3.cache_mib`.
const MAX_CACHE_MIB: u64 = 1 << 20;

/// The `storage.s3` section. Credentials are never read from here, only from the standard
/// `AWS_*` environment variables.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct S3Settings {
    pub bucket: Option<String>,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub redirect_files: bool,
    pub cache_mib: u64,
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

/// The `nat` section: port mapping on the home router.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NatSettings {
    pub mapping: NatMapping,
    pub protocols: Vec<crate::reach::Protocol>,
    pub gateway: Option<String>,
    pub lease_secs: u64,
    pub check_interval_secs: u64,
}

/// Whether to ask the gateway for a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NatMapping {
    /// When the server listens on a non-loopback address and no public URL is set.
    Auto,
    On,
    Off,
}

impl std::str::FromStr for NatMapping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(NatMapping::Auto),
            "on" => Ok(NatMapping::On),
            "off" => Ok(NatMapping::Off),
            _ => Err(format!("{s:?}: expected auto, on or off")),
        }
    }
}

/// The `ddns` section: a DNS name kept at the external address (RFC 2136 + TSIG).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DdnsSettings {
    pub name: Option<String>,
    pub zone: Option<String>,
    pub server: Option<String>,
    pub key_name: Option<String>,
    pub algorithm: String,
    pub secret_env: String,
    pub ttl_secs: u32,
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
    pub nat: Option<NatMapping>,
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
    /// Port mapping and dynamic DNS.
    pub reach: crate::reach::ReachConfig,
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
        // Only `ddns.secret_env` names the variable; keep the environment to read it later.
        let env_for_secret = env.clone();
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
        if let Some(nat) = overrides.nat {
            let value = serde_json::to_value(nat).expect("an enum serialises");
            builder = builder.set_override("nat.mapping", value.as_str().unwrap_or_default())?;
        }
        let config = builder.build()?;
        let mut unknown = Vec::new();
        let settings: Settings =
            serde_ignored::deserialize(config, |path| unknown.push(path.to_string()))?;
        if let Some(key) = unknown.into_iter().next() {
            return Err(unknown_key(key, &env_names));
        }
        let s3 = settings.s3_config(&aws)?;
        let ddns_secret = env_for_secret
            .get(&settings.ddns.secret_env)
            .filter(|v| !v.is_empty())
            .cloned();
        settings.validate(s3, ddns_secret)
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
        if s3.cache_mib > MAX_CACHE_MIB {
            return Err(invalid(
                "storage.s3.cache_mib",
                &s3.cache_mib.to_string(),
                &format!("at most {MAX_CACHE_MIB} (1 TiB)"),
            ));
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
            cache_bytes: s3.cache_mib << 20,
        }))
    }

    fn validate(
        self,
        s3: Option<S3Config>,
        ddns_secret: Option<String>,
    ) -> Result<Validated, SettingsError> {
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
        let reach = self.reach_config(bind, public_url.is_some(), ddns_secret)?;
        Ok(Validated {
            raw: self,
            bind,
            public_url,
            tracker,
            piece_length,
            announce_interval,
            rescan_interval,
            s3,
            reach,
        })
    }
}

impl Settings {
    /// Port mapping on (`nat.mapping`, "auto" resolved against the bind address and public URL)
    /// and the DNS name to keep current, checked.
    fn reach_config(
        &self,
        bind: SocketAddr,
        public_url_set: bool,
        ddns_secret: Option<String>,
    ) -> Result<crate::reach::ReachConfig, SettingsError> {
        let nat = &self.nat;
        let invalid = |key: &'static str, value: String, message: String| SettingsError::Invalid {
            key,
            value,
            message,
        };
        let mapping = match nat.mapping {
            NatMapping::On => true,
            NatMapping::Off => false,
            NatMapping::Auto => !bind.ip().is_loopback() && !public_url_set,
        };
        if nat.protocols.is_empty() && mapping {
            return Err(invalid(
                "nat.protocols",
                "[]".into(),
                "name at least one of upnp, pcp, nat-pmp, or set nat.mapping = \"off\"".into(),
            ));
        }
        let gateway = nat
            .gateway
            .as_deref()
            .filter(|g| !g.is_empty())
            .map(|g| {
                g.parse().map_err(|_| {
                    invalid(
                        "nat.gateway",
                        g.to_owned(),
                        "expected an IPv4 address, e.g. 192.168.1.1".into(),
                    )
                })
            })
            .transpose()?;
        let check_interval = Duration::from_secs(nat.check_interval_secs);
        let lease = Duration::from_secs(nat.lease_secs);
        if nat.check_interval_secs == 0 {
            return Err(invalid(
                "nat.check_interval_secs",
                "0".into(),
                "must be at least 1".into(),
            ));
        }
        // Renewed at every check: a lease shorter than two checks could lapse in between.
        if lease < 2 * check_interval {
            return Err(invalid(
                "nat.lease_secs",
                nat.lease_secs.to_string(),
                format!(
                    "must be at least twice nat.check_interval_secs ({})",
                    nat.check_interval_secs
                ),
            ));
        }
        let ddns = self.ddns_config(ddns_secret)?;
        Ok(crate::reach::ReachConfig {
            mapping,
            protocols: nat.protocols.clone(),
            gateway,
            lease,
            check_interval,
            ddns,
        })
    }

    /// The dynamic DNS update to make, when `ddns.name` is set: every other key is then needed.
    fn ddns_config(
        &self,
        secret: Option<String>,
    ) -> Result<Option<crate::reach::DdnsConfig>, SettingsError> {
        use crate::reach::ddns;
        let d = &self.ddns;
        let Some(name) = d.name.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let required = |key: &'static str, value: &Option<String>| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SettingsError::Invalid {
                    key,
                    value: String::new(),
                    message: format!("ddns.name = {name:?} needs it too"),
                })
        };
        let invalid = |key: &'static str, value: &str| {
            let value = value.to_owned();
            move |message: String| SettingsError::Invalid {
                key,
                value,
                message,
            }
        };
        let zone = required("ddns.zone", &d.zone)?;
        let server = required("ddns.server", &d.server)?;
        let key_name = required("ddns.key_name", &d.key_name)?;
        let name = ddns::parse_name(name).map_err(invalid("ddns.name", name))?;
        let zone = ddns::parse_name(&zone).map_err(invalid("ddns.zone", &zone))?;
        if !zone.zone_of(&name) {
            return Err(SettingsError::Invalid {
                key: "ddns.name",
                value: name.to_string(),
                message: format!(
                    "is not inside ddns.zone = {zone:?}",
                    zone = zone.to_string()
                ),
            });
        }
        let server = server.parse().map_err(|_| SettingsError::Invalid {
            key: "ddns.server",
            value: server.clone(),
            message: "expected IP:PORT of the zone's primary server, e.g. 192.0.2.53:53".into(),
        })?;
        let secret = secret.ok_or_else(|| SettingsError::Invalid {
            key: "ddns.secret_env",
            value: d.secret_env.clone(),
            message: "this environment variable must hold the TSIG key's secret (base64, as \
                      tsig-keygen prints it)"
                .into(),
        })?;
        let secret = data_encoding::BASE64
            .decode(secret.trim().as_bytes())
            .map_err(|e| SettingsError::Invalid {
                key: "ddns.secret_env",
                value: d.secret_env.clone(),
                message: format!("the secret in this variable is not base64: {e}"),
            })?;
        Ok(Some(crate::reach::DdnsConfig {
            server,
            zone,
            name,
            ttl: d.ttl_secs,
            key_name: ddns::parse_name(&key_name).map_err(invalid("ddns.key_name", &key_name))?,
            algorithm: ddns::parse_algorithm(&d.algorithm)
                .map_err(invalid("ddns.algorithm", &d.algorithm))?,
            secret,
        }))
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
    fn port_mapping_is_automatic_only_off_loopback_without_a_public_url() {
        let on = |env: &[(&str, &str)], overrides: Overrides| {
            load(env, overrides).unwrap().reach.mapping
        };
        assert!(!on(&[], Overrides::default()));
        assert!(on(&[("PORT", "9000")], Overrides::default()));
        let with_url = Overrides {
            bind: Some("0.0.0.0:8080".into()),
            public_url: Some("https://files.example.com".into()),
            ..Default::default()
        };
        assert!(!on(&[], with_url));
        let forced = Overrides {
            nat: Some(NatMapping::On),
            ..Default::default()
        };
        assert!(on(&[], forced));
    }

    #[test]
    fn nat_and_ddns_errors_name_the_key() {
        let short_lease = [
            ("GOTORRENT__NAT__LEASE_SECS", "60"),
            ("GOTORRENT__NAT__CHECK_INTERVAL_SECS", "60"),
        ];
        let e = load(&short_lease, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("nat.lease_secs") && e.contains("twice"), "{e}");
        let e = load(
            &[("GOTORRENT__NAT__GATEWAY", "router.lan")],
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("nat.gateway") && e.contains("router.lan"), "{e}");

        let ddns = [
            ("GOTORRENT__DDNS__NAME", "seeder.home.test"),
            ("GOTORRENT__DDNS__ZONE", "home.test"),
            ("GOTORRENT__DDNS__SERVER", "192.0.2.53:53"),
            ("GOTORRENT__DDNS__KEY_NAME", "ddns-key"),
        ];
        let e = load(&ddns, Overrides::default()).unwrap_err().to_string();
        assert!(
            e.contains("ddns.secret_env") && e.contains("GOTORRENT_DDNS_SECRET"),
            "{e}"
        );
        let with_secret: Vec<_> = ddns
            .iter()
            .copied()
            .chain([("GOTORRENT_DDNS_SECRET", "c2VjcmV0")])
            .collect();
        let reach = load(&with_secret, Overrides::default()).unwrap().reach;
        assert_eq!(reach.ddns.unwrap().secret, b"secret");
        let outside: Vec<_> = with_secret
            .iter()
            .copied()
            .chain([("GOTORRENT__DDNS__ZONE", "other.test")])
            .collect();
        let e = load(&outside, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ddns.name") && e.contains("other.test"), "{e}");
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
        let readme = include_str!("../docs/configuration.md");
        let documented: std::collections::BTreeSet<String> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(key, _)| key.to_owned()))
            .filter(|key| key.contains('.') && !key.contains(' '))
            .collect();
        let known: std::collections::BTreeSet<String> = known_keys().into_iter().collect();
        assert_eq!(
            documented, known,
            "docs/configuration.md's table vs the settings"
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

        let huge = [
            bucket[0],
            bucket[1],
            ("GOTORRENT__STORAGE__S3__CACHE_MIB", "2000000"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
        ];
        let err = load(&huge, Overrides::default()).unwrap_err().to_string();
        assert!(
            err.contains("storage.s3.cache_mib") && err.contains("2000000"),
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
