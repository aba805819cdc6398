//! Typed configuration, loaded in layers and validated once at start-up into [`Settings`].
//!
//! Order (later wins): config/default.toml compiled into the binary, an optional `--config` file,
//! `GOTORRENT__SECTION__KEY` environment variables, the PaaS variables `PORT` and
//! `RAILWAY_PUBLIC_DOMAIN`, then command-line flags and [`Overrides::set`].
//!
//! Each section has a file of its own: the section as written (strings and numbers, private to
//! this module) and its `validate`, which gives what the rest of the program sees (addresses,
//! URLs, durations, enums for backends); `[nat]` and `[ddns]` make one [`ReachConfig`], and
//! `[log]` is the same written and validated. Invariants: a key no section has is an error
//! naming it and the nearest real key; an invalid value is an error naming its key and the
//! value; a deprecated key still works, with a warning in [`Settings::warnings`].

mod ddns;
mod log;
mod nat;
mod seeder;
mod server;
mod storage;
mod tracker;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};
use url::Url;

pub use crate::reach::ReachConfig;
pub use crate::tracker::PrivateSeeders;
pub use log::{LogFormat, LogSettings};
pub use nat::NatMapping;
pub use seeder::SeederSettings;
pub use server::ServerSettings;
pub use storage::StorageSettings;
pub use tracker::{TrackerSettings, TrackerStoreConfig};

const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Every section as written in a file or the environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct SettingsFile {
    server: server::ServerSection,
    storage: storage::StorageSection,
    seeder: seeder::SeederSection,
    tracker: tracker::TrackerSection,
    nat: nat::NatSection,
    ddns: ddns::DdnsSection,
    log: LogSettings,
}

/// The configuration, validated: what the bootstrap layer turns into services.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub seeder: SeederSettings,
    pub tracker: TrackerSettings,
    /// Port mapping (`[nat]`) and dynamic DNS (`[ddns]`).
    pub reach: ReachConfig,
    pub log: LogSettings,
    /// One line per deprecated key that was set, to log once logging is up.
    pub warnings: Vec<String>,
}

/// Values from command-line flags, and keys set by name ([`Overrides::set`]), applied last and
/// validated with everything else.
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
    /// Dotted keys and their values, in the order set (the last of a key wins); see
    /// [`Overrides::set`].
    pub keys: Vec<(String, String)>,
}

impl Overrides {
    /// Sets a key by its dotted name (`tracker.max_peers`), as a config file would: the value
    /// is parsed and validated with the rest, and an unknown key is refused.
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.keys.push((key.to_owned(), value.to_string()));
        self
    }
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

impl SettingsError {
    fn invalid(key: &'static str, value: &str, message: impl Into<String>) -> Self {
        SettingsError::Invalid {
            key,
            value: value.to_owned(),
            message: message.into(),
        }
    }
}

impl Settings {
    /// Loads every layer from the process environment.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Settings, SettingsError> {
        Self::load_with_env(file, overrides, std::env::vars().collect())
    }

    /// Loads with an explicit environment, so tests need not touch the process environment.
    pub fn load_with_env(
        file: Option<&Path>,
        overrides: &Overrides,
        env: HashMap<String, String>,
    ) -> Result<Settings, SettingsError> {
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
        let aws: HashMap<&str, String> = storage::AWS_VARIABLES
            .into_iter()
            .filter_map(|name| Some((name, var(name)?)))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("GOTORRENT")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env.clone())),
        );
        if let Some(port) = port {
            builder = builder.set_override("server.bind", format!("0.0.0.0:{port}"))?;
        }
        if let Some(domain) = railway_domain {
            builder = builder.set_default("server.public_url", format!("https://{domain}"))?;
        }
        for (key, value) in overrides.flags().chain(overrides.keys.iter().cloned()) {
            builder = builder.set_override(key, value)?;
        }
        let config = builder.build()?;
        let mut unknown = Vec::new();
        let file: SettingsFile =
            serde_ignored::deserialize(config, |path| unknown.push(path.to_string()))?;
        if let Some(key) = unknown.into_iter().next() {
            let set_by_name = overrides.keys.iter().any(|(k, _)| *k == key);
            return Err(unknown_key(key, &env_names, set_by_name));
        }
        // Only `ddns.secret_env` names the variable holding the secret.
        let ddns_secret = env
            .get(&file.ddns.secret_env)
            .filter(|v| !v.is_empty())
            .cloned();
        file.validate(&aws, ddns_secret)
    }
}

impl Overrides {
    /// The flags as dotted keys and values.
    fn flags(&self) -> impl Iterator<Item = (String, String)> {
        let path = |p: &Option<PathBuf>| p.as_deref().map(|p| p.to_string_lossy().into_owned());
        let off = |set: bool| set.then(|| "false".to_owned());
        let nat = self.nat.map(|nat| nat.as_str().to_owned());
        [
            ("server.bind", self.bind.clone()),
            ("server.public_url", self.public_url.clone()),
            ("seeder.tracker", self.tracker.clone()),
            ("storage.data_dir", path(&self.data_dir)),
            ("storage.state_dir", path(&self.state_dir)),
            ("tracker.enabled", off(self.no_tracker)),
            ("seeder.enabled", off(self.no_seeder)),
            ("nat.mapping", nat),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value?)))
    }
}

impl SettingsFile {
    fn validate(
        self,
        aws: &HashMap<&str, String>,
        ddns_secret: Option<String>,
    ) -> Result<Settings, SettingsError> {
        let mut warnings = Vec::new();
        let storage = self.storage.validate(aws)?;
        let server = self.server.validate()?;
        let seeder = self.seeder.validate()?;
        let tracker = self.tracker.validate(&mut warnings)?;
        let mut reach = self
            .nat
            .validate(server.bind, server.public_url.is_some())?;
        reach.ddns = self.ddns.validate(ddns_secret)?;
        Ok(Settings {
            server,
            storage,
            seeder,
            tracker,
            reach,
            log: self.log.validate()?,
            warnings,
        })
    }
}

/// Every key the settings have, dotted (`storage.data_dir`), optional ones included, deprecated
/// ones not.
fn known_keys() -> Vec<String> {
    let defaults: SettingsFile = Config::builder()
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
fn unknown_key(key: String, env_names: &[String], set_by_name: bool) -> SettingsError {
    let variable = format!("GOTORRENT__{}", key.replace('.', "__")).to_ascii_uppercase();
    let origin = match env_names
        .iter()
        .find(|name| name.to_ascii_uppercase().starts_with(&variable))
    {
        Some(name) => format!("from {name}"),
        None if set_by_name => "set by name".to_owned(),
        None => "in the config file".to_owned(),
    };
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

fn parse_http_url(key: &'static str, value: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(value).map_err(|e| SettingsError::invalid(key, value, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(SettingsError::invalid(
            key,
            value,
            "expected an http:// or https:// URL with a host",
        ));
    }
    Ok(url)
}

/// A count that must be at least 1.
fn at_least_one(key: &'static str, value: usize) -> Result<usize, SettingsError> {
    match value {
        0 => Err(SettingsError::invalid(key, "0", "must be at least 1")),
        n => Ok(n),
    }
}

/// A number of seconds that must be at least 1.
fn positive_secs(key: &'static str, secs: u64) -> Result<Duration, SettingsError> {
    match secs {
        0 => Err(SettingsError::invalid(key, "0", "must be at least 1")),
        n => Ok(Duration::from_secs(n)),
    }
}

/// A bearer token: at least 16 characters when set.
fn check_token(key: &'static str, token: Option<String>) -> Result<Option<String>, SettingsError> {
    if token.as_deref().is_some_and(|t| t.len() < 16) {
        return Err(SettingsError::invalid(
            key,
            "(hidden)",
            "a token must be at least 16 characters",
        ));
    }
    Ok(token)
}
